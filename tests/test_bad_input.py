"""The bad-input matrix (issue 5): whatever a caller types, a clean answer.

Hypothesis generates malformed task ids, durations, times, priorities and counts,
tokens, enumerations, unknown options and verbs, bad titles (huge, blank, not
UTF-8) and bad `create --stdin` lines, plus SQL and shell metacharacters, and FTS
query syntax for `search`.  Each must give exit 2, nothing on stdout, one JSON line
on stderr with a code from the closed list and no traceback - and the board must be
unchanged: the same `list` and `event list`, the same bytes in the database and its
WAL.  Inputs that are legitimately valid (a title in any script, with quotes, `$()`
or `; DROP TABLE`, any search query) must work, and must stay inert.

Oracles are kanban's own parsers (clock.parse_duration, board.parse_int, ...):
an input they accept is valid and is not used where a refusal is expected.
"""
import hashlib
import json
import os

import pytest
from conftest import ROOT, run
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kanban import Board, KanbanError
from kanban.board import CLEARABLE, EVENT_KINDS, STATUSES, parse_id, parse_int
from kanban.clock import parse_duration, parse_time
from kanban.dispatch import ALIASES
from kanban.errors import CODES

NOW = "2030-01-01T00:00:00Z"
SETTINGS = settings(max_examples=int(os.environ.get("KANBAN_FUZZ_EXAMPLES", "25")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])
TRIED = {"refused": 0, "accepted": 0}

# -- generators ------------------------------------------------------------------------------

# text an argv can carry: no NUL; lone surrogates stand for bytes that are not UTF-8
# (Python passes them back to the OS as those bytes)
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
RAW_BYTES = st.binary(min_size=1, max_size=20).filter(lambda b: b"\x00" not in b).map(
    lambda b: b.decode("utf-8", "surrogateescape"))
NASTY = st.sampled_from([
    "", " ", "0", "-0", "-1", "+1", "1.5", "1e3", "1e400", "-1e400", "nan", "inf", "-inf", "Infinity",
    "0x10", "0b1", "1_000", "١٢", "٥m", "99999999999999999999", "-99999999999999999999", "9" * 400,
    "TASK-", "TASK-0", "TASK--1", "TASK-1.0", "TASK-١", "task-x", "TASK-99999999999999999999",
    "'; DROP TABLE tasks; --", "\" OR 1=1 --", "$(touch /tmp/kanban-fuzz-pwned)", "`id`", "; rm -rf ~",
    "%s%n", "{}", "[]", "null", "true", "\\", "\n", "\t", "\x1b[2J", "\u202e", "😀", "NEAR(", "\"", "*",
    "1d2", "5 m", "m", "ms", "5mm", "-5m", "+-5m", "+", "+nan", "+1e400s", "1y", "P1D", "T10:00",
    "2030-13-01", "2030-02-30T00:00:00Z", "2030-01-01T25:00:00Z", "yesterday", "now", "1e12", "-1e12",
])
JUNK = st.one_of(NASTY, TEXT, RAW_BYTES)


def refused_by(parser):
    """Keep only values `parser` refuses (the invalid ones)."""
    def invalid(value):
        try:
            parser(value)
        except KanbanError:
            return True
        except Exception:  # noqa: BLE001 - the parser itself would crash: a finding, keep it
            return True
        return False
    return invalid


def help_flag(value):
    return value in ("-h", "--help")


# -- the boards --------------------------------------------------------------------------------

def board_env(path):
    return {"KANBAN_DB": path, "KANBAN_NOW": NOW, "KANBAN_AGENT": "fuzzer"}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A board with a task in each state; refused commands must leave it exactly so."""
    path = tmp_path_factory.mktemp("bad-input") / ".kanban" / "board.db"
    env = board_env(path)
    steps = [
        ("init",),
        ("create", "todo task", "--body", "with a body"),            # TASK-1 todo
        ("create", "claimed task"),                                   # TASK-2 in_progress
        ("create", "review task", "--review"),                        # TASK-3 in_review
        ("create", "done task"),                                      # TASK-4 done
        ("create", "blocked task"),                                   # TASK-5 blocked
        ("create", "a goal", "--kind", "goal"),                       # TASK-6 goal
        ("claim", "TASK-2", "--agent", "w1"),
        ("claim", "TASK-3", "--agent", "w1"),
        ("complete", "TASK-3", "--token", "{TASK-3}", "--agent", "w1"),
        ("claim", "TASK-4", "--agent", "w1"),
        ("complete", "TASK-4", "--token", "{TASK-4}", "--agent", "w1"),
        ("block", "TASK-5", "--reason", "waiting"),
        ("dep", "add", "TASK-1", "TASK-4"),
    ]
    tokens = {}  # each claim's token, by "{TASK-n}"
    for step in steps:
        res = run(*[tokens.get(part, part) for part in step], env=env)
        assert res.rc == 0, (step, res)
        if step[0] == "claim":
            tokens["{" + step[1] + "}"] = str(res.json["lease_token"])
    yield path
    print(f"\nbad inputs tried: {TRIED['refused']} refused, {TRIED['accepted']} valid ones accepted")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A board for inputs that are valid and change it."""
    path = tmp_path_factory.mktemp("weird-valid") / ".kanban" / "board.db"
    assert run("init", env=board_env(path)).rc == 0
    return path


def dump(path):
    """What a refused command must not change: tasks, events, and the files' bytes."""
    with Board(str(path)) as board:
        logical = json.dumps([board.list()["tasks"], board.events(limit=100000)["events"]], sort_keys=True)
    digest = hashlib.sha256()
    for name in (str(path), str(path) + "-wal"):
        if os.path.exists(name):
            with open(name, "rb") as handle:
                digest.update(handle.read())
    return logical, digest.hexdigest()


def assert_clean_error(res, allowed):
    """Exit 2, nothing on stdout, one JSON line on stderr, a code from the closed list."""
    assert res.rc == 2, res
    assert res.out == "", res
    assert "Traceback" not in res.err and 'File "' not in res.err, res
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert len(lines) == 1, res
    error = json.loads(lines[0])
    assert error["code"] in CODES, error
    assert error["code"] in allowed, (error, res)
    assert isinstance(error["error"], str) and error["error"], error
    assert error["retryable"] is (error["code"] == "busy")
    return error


def refused(path, args, allowed, stdin=None):
    """Run a command that must be refused; the board must not change."""
    before = dump(path)
    res = run(*args, env=board_env(path), input=stdin)
    TRIED["refused"] += 1
    error = assert_clean_error(res, allowed)
    assert dump(path) == before, f"{args!r} was refused ({error}) but changed the board"
    return error


# -- ids ---------------------------------------------------------------------------------------

ID_COMMANDS = [
    ["show", "{}"], ["complete", "{}", "--token", "1"], ["approve", "{}"], ["reject", "{}", "--reason", "r"],
    ["block", "{}", "--reason", "r"], ["unblock", "{}"], ["cancel", "{}"], ["reopen", "{}"],
    ["dep", "add", "{}", "TASK-1"], ["dep", "add", "TASK-1", "{}"], ["dep", "rm", "{}", "TASK-4"],
    ["dep", "list", "{}"], ["comment", "{}", "--message", "m"], ["set", "{}", "--priority", "1"],
    ["lease", "renew", "{}", "--token", "1"], ["lease", "release", "{}", "--token", "1"],
    ["event", "log", "{}", "--message", "m"], ["claim", "{}"], ["claim", "--for-review", "{}"],
    ["list", "--goal", "{}"], ["event", "list", "--task", "{}"], ["create", "t", "--depends-on", "{}"],
    ["create", "t", "--goal", "{}"], ["batch", "complete", "{}:1"], ["batch", "set-priority", "1", "{}"],
]


def existing_id(value):
    try:
        return parse_id(value) <= 6
    except KanbanError:
        return False


@SETTINGS
@given(template=st.sampled_from(ID_COMMANDS), value=JUNK)
def test_bad_ids(shared, template, value):
    assume(not existing_id(value) and not help_flag(value) and value.strip() != "")
    if template[0] == "create":  # "a,b" lists: every part is an id
        assume(not all(existing_id(part) for part in value.split(",") if part.strip()))
    if template[0] == "batch" and template[1] == "complete":
        assume(":" not in value)
    args = [part.replace("{}", value) for part in template]
    refused(shared, args, {"invalid", "not_found", "usage"})


# -- durations, times, numbers -------------------------------------------------------------------

DURATION_COMMANDS = [
    ["claim", "--lease", "{}"], ["claim", "--wait", "{}"], ["claim", "--for-review", "--lease", "{}"],
    ["lease", "renew", "TASK-2", "--token", "1", "--lease", "{}"], ["batch", "claim", "1", "--lease", "{}"],
    ["event", "log", "TASK-1", "--message", "m", "--ttl", "{}"], ["prune", "--before", "{}"],
]


@SETTINGS
@given(template=st.sampled_from(DURATION_COMMANDS), value=JUNK.filter(refused_by(parse_duration)))
def test_bad_durations(shared, template, value):
    # an empty value means "not given" (the default), as for environment variables
    assume(value != "" and not help_flag(value))
    refused(shared, [part.replace("{}", value) for part in template], {"invalid", "usage"})


@SETTINGS
@given(template=st.sampled_from([["create", "t", "--not-before", "{}"], ["set", "TASK-1", "--not-before", "{}"]]),
       value=JUNK.filter(refused_by(parse_time)))
def test_bad_times(shared, template, value):
    assume(value != "" and not help_flag(value))
    refused(shared, [part.replace("{}", value) for part in template], {"invalid", "usage"})


INTEGER_COMMANDS = [
    (["create", "t", "--priority", "{}"], None), (["set", "TASK-1", "--priority", "{}"], None),
    (["batch", "set-priority", "{}", "TASK-1"], None), (["create", "t", "--max-attempts", "{}"], 1),
    (["set", "TASK-1", "--max-attempts", "{}"], 1), (["list", "--limit", "{}"], 1),
    (["event", "list", "--limit", "{}"], 1), (["search", "task", "--limit", "{}"], 1),
    (["batch", "claim", "{}"], 1), (["complete", "TASK-2", "--token", "{}"], 1),
    (["lease", "renew", "TASK-2", "--token", "{}"], 1), (["lease", "release", "TASK-2", "--token", "{}"], 1),
    (["block", "TASK-2", "--reason", "r", "--token", "{}"], 1), (["approve", "TASK-3", "--token", "{}"], 1),
]


@SETTINGS
@given(case=st.sampled_from(INTEGER_COMMANDS), value=JUNK)
def test_bad_integers(shared, case, value):
    template, minimum = case
    assume(refused_by(lambda v: parse_int(v, "n", minimum=minimum))(value))
    assume(value != "" and not help_flag(value))
    refused(shared, [part.replace("{}", value) for part in template], {"invalid", "usage"})


def valid_statuses(value):
    parts = [s.strip() for s in value.split(",")]
    return value == "" or all(p in STATUSES for p in parts)


def valid_clear(value):
    parts = [p.strip().replace("-", "_") for p in value.split(",") if p.strip()]
    return bool(parts) and all(p in CLEARABLE for p in parts)


def valid_cursor(value):
    return value == "" or (value.isascii() and value.isdigit() and len(value) <= 18)


ENUM_COMMANDS = [
    (["list", "--status", "{}"], valid_statuses), (["event", "list", "--kind", "{}"], lambda v: v in EVENT_KINDS),
    (["create", "t", "--kind", "{}"], lambda v: v in ("", "task", "goal")),
    (["list", "--format", "{}"], lambda v: v in ("", "json", "table")),
    (["doctor", "--format", "{}"], lambda v: v in ("", "json", "table")),
    (["set", "TASK-1", "--clear", "{}"], valid_clear), (["event", "list", "--since", "{}"], valid_cursor),
]


@SETTINGS
@given(case=st.sampled_from(ENUM_COMMANDS), value=st.one_of(JUNK, st.sampled_from(STATUSES + EVENT_KINDS)))
def test_bad_enumerations(shared, case, value):
    template, valid = case
    assume(not valid(value) and not help_flag(value))
    refused(shared, [part.replace("{}", value) for part in template], {"invalid", "usage"})


# -- the command line itself ----------------------------------------------------------------------

VERBS = sorted({name[len("kanban-"):] for folder in ("libexec", "porcelain") if (ROOT / folder).is_dir()
                for name in os.listdir(ROOT / folder)} | set(ALIASES) | {"help", "commands"})
PLUMBING = sorted(name[len("kanban-"):] for name in os.listdir(ROOT / "libexec"))


@SETTINGS
@given(verb=st.one_of(JUNK, st.from_regex(r"[a-z][a-z-]{0,12}", fullmatch=True)))
def test_unknown_verbs(shared, verb):
    assume(verb not in VERBS and verb.strip() and not verb.startswith("-"))
    error = refused(shared, [verb], {"usage"})
    assert "not a kanban command" in error["error"]


@SETTINGS
@given(verb=st.sampled_from(PLUMBING), option=st.from_regex(r"--[a-z][a-z-]{0,15}(=x)?", fullmatch=True))
def test_unknown_options(shared, verb, option):
    assume(option.split("=")[0] not in ("--help",))
    usage = run(verb, "--help", env=board_env(shared)).out
    assume(option.split("=")[0] not in usage)
    refused(shared, [verb, option], {"usage"})


@pytest.mark.parametrize("args", [
    ["claim", "--agent", ""],  # an empty agent is no agent
    ["create"], ["complete", "TASK-2"], ["dep"], ["lease"], ["event"], ["batch", "claim"],
    ["claim", "--agent", "a\x01b"], ["claim", "--agent", "x" * 201], ["create", "t", "--project", "\x1b[31m"],
])
def test_bad_command_lines(shared, args):
    env = dict(board_env(shared), KANBAN_AGENT=None)
    before = dump(shared)
    res = run(*args, env=env)
    TRIED["refused"] += 1
    assert_clean_error(res, {"usage", "invalid"})
    assert dump(shared) == before


# -- titles and create --stdin -------------------------------------------------------------------

@SETTINGS
@given(title=st.one_of(
    st.integers(10_001, 60_000).map(lambda n: "x" * n),         # longer than a title may be
    st.sampled_from(["", " ", "\t\n", "\u3000"]).map(str),       # blank
    RAW_BYTES.filter(lambda s: any(0xDC80 <= ord(c) <= 0xDCFF for c in s)),  # not UTF-8
))
def test_bad_titles(shared, title):
    assume(not title.startswith("-"))
    refused(shared, ["create", title], {"invalid"})


BAD_LINES = [
    "{", "not json", "[1, 2]", "5", "null", '"title"', '{"title": null}', '{"title": 5}', '{"title": ""}',
    '{"title": "a\\u0000b"}', '{"title": "x", "priority": "high"}', '{"title": "x", "priority": 1.5}',
    '{"title": "x", "priority": true}', '{"title": "x", "review": "yes"}', '{"title": "x", "review": 1}',
    '{"title": "x", "depends_on": 5}', '{"title": "x", "depends_on": ["TASK-999"]}',
    '{"title": "x", "goal": "no-such-key"}', '{"title": "x", "goal": "TASK-1"}',
    '{"title": "x", "max_attempts": 0}', '{"title": "x", "max_attempts": "x"}', '{"title": "x", "kind": "epic"}',
    '{"title": "x", "not_before": "soon"}', '{"title": "x", "key": ""}', '{"title": "x", "key": "a\\u0001"}',
    '{"title": "x", "colour": "red"}', '{"title": "x", "body": "' + "b" * 1_000_001 + '"}',
    '{"title": "x", "project": 7}', '{"title": "' + "t" * 10_001 + '"}', '{"title": "\\ud800"}',
]


@SETTINGS
@given(good_before=st.integers(0, 2), bad=st.one_of(
    st.sampled_from(BAD_LINES),
    st.fixed_dictionaries({"title": st.one_of(st.integers(), st.lists(st.integers()), st.none(), st.booleans())}
                          ).map(json.dumps)),
    good_after=st.integers(0, 2))
def test_bad_stdin_lines(shared, good_before, bad, good_after):
    """One bad line fails the whole batch: nothing is created."""
    good = [json.dumps({"title": f"fine {i}"}) for i in range(good_before + good_after)]
    lines = good[:good_before] + [bad] + good[good_before:]
    error = refused(shared, ["create", "--stdin"], {"invalid", "not_found"}, stdin="\n".join(lines) + "\n")
    if good_before or good_after:
        assert error.get("line", good_before + 1) == good_before + 1


def test_huge_body_on_stdin_is_refused(shared):
    line = json.dumps({"title": "big", "body": "b" * 1_000_001})
    refused(shared, ["create", "--stdin"], {"invalid"}, stdin=line + "\n")


# -- regressions: inputs that once reached users as internal errors --------------------------------

@pytest.mark.parametrize("args", [
    ["create", "bad \udcff\udcfe bytes"],             # not UTF-8: was internal (UnicodeEncodeError)
    ["show", "TASK-1", "--events", "99999999999999999999"],  # was internal (OverflowError)
    ["prune", "--before", "1e308"],                   # was internal (int(inf))
    ["claim", "--lease", "1e306d"],
    ["create", "t", "--depends-on", "\udc80"],          # a reference that is not UTF-8: was internal
    ["create", "t", "--goal", "x\udcff"],
])
def test_former_internal_errors(shared, args):
    error = refused(shared, args, {"invalid"})
    assert error["code"] == "invalid"


def test_old_dates_print_as_iso_8601(scratch):
    res = run("create", "long ago", "--not-before", "0001-01-01", env=board_env(scratch))
    assert res.rc == 0, res
    assert res.json["not_before"] == "0001-01-01T00:00:00Z"  # four-digit year, as ISO-8601 needs


# -- valid, however strange: accepted, exact, inert -------------------------------------------------

MARKER = "/tmp/kanban-fuzz-pwned"
STRANGE = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=200),
    st.sampled_from([
        "'; DROP TABLE tasks; --", "Robert'); DROP TABLE tasks;--", "\" OR 1=1 --", f"$(touch {MARKER})",
        f"`touch {MARKER}`", f"; touch {MARKER}", f"| touch {MARKER}", f"&& touch {MARKER} &", "%s%s%n%x",
        "{{7*7}}", "${HOME}", "../../etc/passwd", "\x1b[31mred\x1b[0m", "line\nbreak", "\u202eevil", "😀" * 50,
        "ｆｕｌｌｗｉｄｔｈ", "e\u0301", "ﷺ", "\\x00", "NULL", "null", "TASK-1", "*", "\"", "a" * 10_000,
    ]))


@SETTINGS
@given(title=STRANGE, body=st.one_of(st.none(), STRANGE))
def test_strange_titles_are_kept_exactly(scratch, title, body):
    assume(title.strip() and not title.startswith("-") and not help_flag(title))
    assume(body is None or not body.startswith("-"))
    env = board_env(scratch)
    args = ["create", title] + (["--body", body] if body is not None else [])
    res = run(*args, env=env)
    TRIED["accepted"] += 1
    assert res.rc == 0, res
    created = res.json
    assert created["title"] == title and created["body"] == body
    shown = run("show", created["id"], env=env)
    assert shown.rc == 0 and shown.json["title"] == title and shown.json["body"] == body
    assert not os.path.exists(MARKER), "a title was run by a shell"


FTS = st.lists(st.one_of(
    st.sampled_from(["AND", "OR", "NOT", "NEAR", "NEAR(", ")", "(", "\"", "*", "^", ":", "-", "+", "{", "}",
                     "title:", "body:", "a*", "\"todo task\"", "task", "DROP", "'", ";", "--", "\\", "%", "_"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=8)),
    min_size=1, max_size=6).map(" ".join)


@SETTINGS
@given(query=FTS)
def test_any_search_query_is_answered(shared, query):
    """FTS syntax is searched for as words, never parsed: an answer, or `invalid` when blank."""
    assume(not query.startswith("-") and not help_flag(query))
    before = dump(shared)
    res = run("search", query, env=board_env(shared))
    if not query.strip():
        TRIED["refused"] += 1
        assert_clean_error(res, {"invalid"})
    else:
        TRIED["accepted"] += 1
        assert res.rc == 0, res
        assert isinstance(res.json["tasks"], list)
    assert dump(shared) == before


def test_search_finds_words_next_to_fts_syntax(shared):
    res = run("search", "(todo", "task*\"", env=board_env(shared))
    assert res.rc == 0, res
    assert [t["id"] for t in res.json["tasks"]] == ["TASK-1"]


# -- backup targets that are the board under another name ----------------------------------------------

@pytest.mark.parametrize("target", ["board.db", "board.db-wal", "board.db-shm", "board.db.lock", "via-symlink",
                                    "via-hard-link", "dot-dot"])
def test_backup_never_overwrites_the_board(shared, tmp_path, target):
    """`backup .kanban/board.db-wal` once replaced the WAL with the copy: every commit not yet
    checkpointed was lost.  Any name of the board or its companions is refused."""
    folder = shared.parent
    if target == "via-symlink":
        (tmp_path / "link").symlink_to(folder)
        dest = tmp_path / "link" / "board.db"
    elif target == "via-hard-link":
        dest = tmp_path / "hard.db"
        os.link(shared, dest)
    elif target == "dot-dot":
        dest = folder / ".." / folder.name / "board.db"
    else:
        dest = folder / target
    error = refused(shared, ["backup", str(dest)], {"invalid"})
    assert "cannot be the board" in error["error"]


# -- times outside the years 1 to 9999 --------------------------------------------------------------

OUT_OF_RANGE_TIMES = ["10000-01-01T00:59:59Z", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00",
                      "-99999999999"]


@pytest.mark.parametrize("value", OUT_OF_RANGE_TIMES)
@pytest.mark.parametrize("template", [["create", "t", "--not-before", "{}"], ["set", "TASK-1", "--not-before", "{}"]])
def test_times_past_9999_or_before_1_are_refused(shared, template, value):
    error = refused(shared, [part.replace("{}", value) for part in template], {"invalid"})
    assert "9999" in error["error"] or "bad" in error["error"], error


@pytest.mark.parametrize("value", OUT_OF_RANGE_TIMES)
def test_stdin_times_past_9999_are_refused(shared, value):
    refused(shared, ["create", "--stdin"], {"invalid"}, stdin=json.dumps({"title": "x", "not_before": value}) + "\n")


def test_the_last_and_first_representable_times_are_kept(scratch):
    for stamp in ("9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"):
        res = run("create", "edge of time", "--not-before", stamp, env=board_env(scratch))
        assert res.rc == 0 and res.json["not_before"] == stamp, res


# -- create --stdin values of the wrong shape ---------------------------------------------------------

@pytest.mark.parametrize("line", [
    {"title": "x", "kind": []}, {"title": "x", "kind": {}}, {"title": "x", "kind": ["goal"]},
    {"title": "x", "depends_on": [[1]]}, {"title": "x", "depends_on": [{"id": 1}]},
    {"title": "x", "goal": [1]}, {"title": "x", "goal": {"id": 6}},
])
def test_stdin_values_of_the_wrong_shape_are_invalid(shared, line):
    refused(shared, ["create", "--stdin"], {"invalid"}, stdin=json.dumps(line) + "\n")


# -- YAML plans and team manifests: aliases, anchors, depth, size ---------------------------------

def _laughs(levels, width=9):
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for n in range(1, levels):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


YAML_BOMBS = {
    "self-alias": "a: &a [*a]\n",
    "self-alias-in-mapping": "a: &a {b: *a}\n",
    "alias-inside-its-anchor": "goals: &g\n  - key: x\n    title: t\n    tasks: *g\n",
    "billion-laughs": _laughs(9),
    "laughs-as-a-plan": "version: 1\nname: p\n" + _laughs(6, 12) + "tasks: *a5\n",
    "deep-flow": "a: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "deep-flow-mapping": "a: " + "{b: " * 5000 + "1" + "}" * 5000 + "\n",
    "deep-block": "a:\n" + "".join("  " * i + "- \n" for i in range(1, 400)),
    "deep-through-aliases": "a: &a " + "[" * 40 + "1" + "]" * 40 + "\nb: &b " + "[" * 40 + "*a" + "]" * 40 + "\n",
    "too-large": "name: p\nversion: 1\nbody: " + "x" * (5 * 1024 * 1024) + "\n",
}


def yaml_refused(args, text, tmp_path, shared):
    import time

    path = tmp_path / "doc.yaml"
    path.write_text(text)
    started = time.monotonic()
    error = refused(shared, [*args, str(path)], {"invalid"})
    assert time.monotonic() - started < 15, f"{args} took {time.monotonic() - started:.1f} s to refuse"
    return error


@pytest.mark.parametrize("bomb", sorted(YAML_BOMBS))
@pytest.mark.parametrize("args", [["plan", "lint"], ["plan", "apply"], ["team", "validate"]])
def test_yaml_bombs_are_refused_fast(shared, tmp_path, args, bomb):
    yaml_refused(args, YAML_BOMBS[bomb], tmp_path, shared)


@pytest.mark.parametrize("bomb", ["self-alias", "billion-laughs", "deep-flow"])
def test_yaml_bombs_on_stdin(shared, bomb):
    refused(shared, ["plan", "lint", "-"], {"invalid"}, stdin=YAML_BOMBS[bomb])


def test_anchors_and_aliases_within_bounds_still_work(scratch, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("""version: 1
name: anchored
defaults: &common {project: web, priority: 2}
tasks:
  - {key: a, title: first, <<: *common}
  - {key: b, title: second, <<: *common, depends_on: [a]}
""")
    res = run("plan", "apply", str(plan), env=board_env(scratch))
    assert res.rc == 0, res


YAML_SCALAR = st.one_of(st.integers(-5, 5), st.sampled_from(["x", "lol", "''", "null", "true"]))


@st.composite
def yaml_with_aliases(draw):
    """Small documents of anchors and aliases, some nested deep or expanded wide."""
    lines, anchors = [], []
    for n in range(draw(st.integers(1, 8))):
        depth = draw(st.integers(1, 80))
        width = draw(st.integers(1, 12))
        items = [f"*{draw(st.sampled_from(anchors))}" if anchors and draw(st.booleans())
                 else str(draw(YAML_SCALAR)) for _ in range(width)]
        lines.append(f"k{n}: &n{n} " + "[" * depth + ", ".join(items) + "]" * depth)
        anchors.append(f"n{n}")
    if draw(st.booleans()):
        lines.append(f"tasks: *{draw(st.sampled_from(anchors))}")
    return "version: 1\nname: fuzz\n" + "\n".join(lines) + "\n"


@SETTINGS
@given(text=yaml_with_aliases(), args=st.sampled_from([["plan", "lint"], ["team", "validate"]]))
def test_any_yaml_gets_a_clean_answer_fast(shared, tmp_path_factory, text, args):
    import time

    path = tmp_path_factory.mktemp("yaml") / "doc.yaml"
    path.write_text(text)
    started = time.monotonic()
    res = run(*args, str(path), env=board_env(shared))
    assert time.monotonic() - started < 15
    if res.rc != 0:
        assert_clean_error(res, {"invalid"})


def test_deeply_nested_json_on_stdin_is_invalid(shared):
    deep = '{"title": "x", "body": ' + "[" * 200_000 + "]" * 200_000 + "}"
    error = refused(shared, ["create", "--stdin"], {"invalid"}, stdin=deep + "\n")
    assert "deep" in error["error"]
