"""kanban doctor warns about what a person should act on: a WAL grown to many times
the database (a reader that never ends its transaction starves the checkpoints) and
expired leases; stats --format table says '-' for a percentile with no data."""
import json

import apsw
from conftest import at


def findings(kb, **env):
    res = kb("doctor", env=env)
    assert res.rc == 0, res
    return [f["message"] for f in res.json["findings"] if f["level"] == "warning"]


def test_a_starved_wal_is_a_warning(kb):
    assert not [m for m in findings(kb) if "WAL" in m]
    reader = apsw.Connection(str(kb.path))
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM tasks").fetchall()  # a snapshot held open: no checkpoint passes it
    try:
        body = "x" * 100_000
        lines = "\n".join(json.dumps({"title": f"big {n}", "body": body}) for n in range(80))
        assert kb("create", "--stdin", input=lines).rc == 0
        wal = [m for m in findings(kb) if "WAL" in m]
        assert len(wal) == 1 and "times the size of the database" in wal[0] and "read transaction" in wal[0]
    finally:
        reader.execute("COMMIT")
        reader.close()


def test_expired_leases_are_a_warning(kb):
    task = kb("create", "held", env=at(0)).json["id"]
    kb("claim", task, "--lease", "1m", agent="w1", env=at(0))
    assert not [m for m in findings(kb, **at(30)) if "expired" in m]
    assert [m for m in findings(kb, **at(120)) if "1 expired lease(s)" in m]


def test_stats_table_never_says_none(kb):
    text = kb("stats", "--format", "table").out
    assert "None" not in text and "p50 -" in text
