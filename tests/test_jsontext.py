"""jsontext writes what json.dumps writes; the claim path imports only what it needs."""
import json
import os
import subprocess
import sys

import pytest
from conftest import KANBAN, ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from kanban.jsontext import dumps

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(values)
def test_dumps_matches_json(value):
    assert dumps(value) == json.dumps(value)
    assert dumps(value, ensure_ascii=False) == json.dumps(value, ensure_ascii=False)
    assert dumps(value, compact=True) == json.dumps(value, separators=(",", ":"))


def test_dumps_refuses_what_json_refuses():
    with pytest.raises(TypeError):
        dumps({"when": object()})


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
                 {"jsonschema", "tabulate", "yaml", "psycopg", "docopt", "json", "re", "typing",
                  "math"}}  # math: a shared library of its own (~0.16 ms), for nothing a claim needs
        assert not heavy, f"the hot path imported {sorted(heavy)}"
    assert "apsw" in claimed and "kanban.board" in claimed


def test_events_written_by_hand_are_what_dumps_writes(tmp_path, monkeypatch):
    """claim and complete write their events' data with f-strings: byte for byte what
    _event writes with dumps(compact=True)."""
    from kanban import Board
    from kanban.bench import prepare

    path = str(tmp_path / "board.db")
    prepare(path, 3, None)
    monkeypatch.setenv("KANBAN_NOW", "1900000000")
    with Board(path) as board:
        for lease in (None, "90s", "1500ms"):  # a whole and a fractional second
            task = board.claim("w1", lease=lease)
            board.complete(task["id"], task["lease_token"], agent="w1")
        stored = board.db.rows("SELECT kind, data FROM events WHERE kind IN ('claimed', 'completed') ORDER BY id")
    assert [r["kind"] for r in stored] == ["claimed", "completed"] * 3
    for r in stored:
        assert r["data"] == dumps(json.loads(r["data"]), compact=True)
    assert json.loads(stored[4]["data"])["lease_until"].endswith(".500Z")
