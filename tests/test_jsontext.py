"""jsontext writes what json.dumps writes; the claim path imports only what it needs."""
import json
import os
import subprocess
import sys

import pytest
from conftest import KANBAN, ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from kanban import jsontext
from kanban.jsontext import dumps

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


def in_python(value, ensure_ascii=True, compact=False):
    """What jsontext's Python writer (a process's first small documents) writes."""
    out = []
    jsontext._write(value, out, ensure_ascii, (",", ":") if compact else (", ", ": "), [10 ** 9])
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(values | st.dictionaries(st.integers() | st.floats() | st.booleans() | st.none(), values, max_size=4))
def test_dumps_matches_json(value):
    for write in (dumps, in_python):  # dumps: the C encoder, after a test's first documents
        assert write(value) == json.dumps(value)
        assert write(value, ensure_ascii=False) == json.dumps(value, ensure_ascii=False)
        assert write(value, compact=True) == json.dumps(value, separators=(",", ":"))


def test_the_python_writer_matches_json_on_the_edges():
    class Text(str):
        pass

    class Number(int):
        def __repr__(self):
            return "not this"

    edges = ["\x7f\x00\x1f\u2028\u00e9\U0001f600\ud800\"\\\n\t\b\f\r", Text("x"), Number(3), -0.0, 1e300,
             float("nan"), float("inf"), float("-inf"), 10 ** 30, (1, [2, ()]), {Text("k"): Number(4)},
             {2: 2, 1.5: 3, True: 4, False: 5, None: 6, float("nan"): 7}, [], {}, ""]
    for value in edges:
        for ensure_ascii in (True, False):
            assert in_python(value, ensure_ascii) == json.dumps(value, ensure_ascii=ensure_ascii), value


def test_a_big_document_goes_to_the_c_encoder(monkeypatch):
    monkeypatch.setattr(jsontext, "_written", 0)
    monkeypatch.setattr(jsontext, "_ENCODERS", None)
    small, big = {"id": "TASK-1", "depends_on": []}, [{"id": n} for n in range(jsontext.BUDGET)]
    assert dumps(small) == json.dumps(small) and jsontext._ENCODERS is None
    assert dumps(big) == json.dumps(big) and jsontext._ENCODERS is not None


def test_dumps_refuses_what_json_refuses():
    for value in ({"when": object()}, {(1, 2): "a tuple key"}, [{1, 2}]):
        for write in (dumps, in_python):
            with pytest.raises(TypeError):
                write(value)


def imported_by(args, board_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update(KANBAN_DB=str(board_path), KANBAN_AGENT="w1")
    python = ROOT / ".venv" / "bin" / "python"
    proc = subprocess.run([str(python if python.exists() else sys.executable), "-E", "-X", "importtime",
                           str(KANBAN), *args], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 1), proc.stderr
    return {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}


def test_claim_and_complete_import_no_heavy_module(kb):
    for i in range(8):
        kb("create", f"task {i}")
    imported_by(["claim"], kb.path)  # the first call of a shape fills the argument cache
    claimed = set()
    for args in (["claim"], ["claim", "--lease", "5m"]):
        claimed |= imported_by(args, kb.path)
        imported_by(args, kb.path)
    first, second = (kb("claim", agent="w1").json for _ in range(2))
    imported_by(["complete", first["id"], "--token", str(first["lease_token"])], kb.path)
    done = imported_by(["complete", second["id"], "--token", str(second["lease_token"])], kb.path)
    assert kb("show", second["id"]).json["status"] == "done"
    for modules in (claimed, done):
        heavy = {m for m in modules if m.split(".")[0] in
                 {"jsonschema", "tabulate", "yaml", "psycopg", "docopt", "json", "re", "typing"}}
        assert not heavy, f"the hot path imported {sorted(heavy)}"
    assert "apsw" in claimed and "kanban.board" in claimed
