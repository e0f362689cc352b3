"""The argv shape cache must answer exactly as docopt does (docopt is the oracle)."""
import os
from pathlib import Path

import pytest
from docopt import DocoptExit, docopt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kanban import argv as argv_cache
from kanban.cli import read_header
from kanban.errors import KanbanError

ROOT = Path(__file__).resolve().parent.parent
VERB_FILES = sorted((ROOT / "libexec").glob("kanban-*"))


def oracle(help_text, args):
    try:
        return ("ok", dict(docopt(help_text, argv=args, default_help=False)))
    except DocoptExit:
        return ("usage", None)


def cached(help_text, args):
    def run_docopt(tokens):
        try:
            return docopt(help_text, argv=tokens, default_help=False)
        except DocoptExit:
            raise KanbanError("usage", "bad arguments") from None
    try:
        return ("ok", dict(argv_cache.parse(help_text, args, run_docopt)))
    except KanbanError:
        return ("usage", None)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("KANBAN_NO_ARGV_CACHE", raising=False)


def tokens_for(help_text):
    options, words = argv_cache.grammar(help_text)
    values = st.sampled_from(["TASK-1", "5", "w1", "x y", "add", "-3", "--agent", "renew", "", "é", "--", "-"])
    option_tokens = [st.just(name) for name, takes in options.items() if not takes]
    option_tokens += [st.tuples(st.just(name), values).map(lambda p: f"{p[0]}={p[1]}")
                      for name, takes in options.items() if takes]
    option_tokens += [st.tuples(st.just(name), values).map(list)
                      for name, takes in options.items() if takes]
    pieces = st.one_of(*option_tokens, st.sampled_from(sorted(words)), values)

    def flatten(items):
        out = []
        for item in items:
            out.extend(item if isinstance(item, list) else [item])
        return out
    return st.lists(pieces, max_size=7).map(flatten)


@pytest.mark.parametrize("path", VERB_FILES, ids=lambda p: p.name)
def test_cache_agrees_with_docopt(path):
    help_text = read_header(path)[2]
    verb = path.name[len("kanban-"):]

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(tokens_for(help_text))
    def check(rest):
        args = [verb] + rest
        # twice: the first fills the cache, the second answers from it
        assert cached(help_text, args) == oracle(help_text, args)
        assert cached(help_text, args) == oracle(help_text, args)
    check()


def test_cache_is_used_and_survives_a_bad_file(tmp_path):
    help_text = read_header(ROOT / "libexec" / "kanban-claim")[2]
    calls = []

    def run_docopt(tokens):
        calls.append(tokens)
        return docopt(help_text, argv=tokens, default_help=False)
    first = argv_cache.parse(help_text, ["claim", "--agent", "a1"], run_docopt)
    second = argv_cache.parse(help_text, ["claim", "--agent=b2"], run_docopt)
    assert first["--agent"] == "a1" and second["--agent"] == "b2"
    assert len(calls) == 1, "the same shape must be answered from the cache"
    files = list(Path(os.environ["XDG_CACHE_HOME"], "kanban").glob("argv-*.marshal"))
    assert len(files) == 1
    files[0].write_bytes(b"\x00not marshal")
    assert argv_cache.parse(help_text, ["claim", "--agent", "c3"], run_docopt)["--agent"] == "c3"
    assert argv_cache.parse(help_text, ["claim", "--agent", "d4"], run_docopt)["--agent"] == "d4"
    assert len(calls) == 2, "a broken cache file is rebuilt, once"
