"""Seed 004's Verify step: after the coordinator's goal is worked, the event log holds
at least created, linked, status_changed, run_started and run_completed."""


def test_team_trace_leaves_the_seeds_audit_trail(kb, board):
    goal = kb("create", "Q3 Analytics Roadmap", "--kind", "goal", agent="coordinator").json["id"]
    a1 = kb("create", "Scope pipeline work", "--assignee", "data-engineer", "--goal", goal,
            agent="coordinator").json["id"]
    b1 = kb("create", "Market scan: AI agent space", "--assignee", "researcher", "--goal", goal,
            agent="coordinator").json["id"]
    c1 = kb("create", "Pressure-test plan", "--assignee", "reviewer", "--goal", goal,
            "--depends-on", f"{a1},{b1}", agent="coordinator").json["id"]
    for task, member in ((a1, "data-engineer"), (b1, "researcher"), (c1, "reviewer")):
        claimed = kb("claim", task, agent=member).json
        board.run_start(task, agent=member, token=claimed["lease_token"])
        assert kb("complete", task, "--token", claimed["lease_token"], agent=member).rc == 0
    assert kb("show", goal).json["status"] == "done"
    events = kb("event", "list", "--limit", "1000").json["events"]
    kinds = {e["kind"] for e in events}
    assert {"created", "linked", "status_changed", "run_started", "run_completed"} <= kinds
    links = [(e["task"], e["data"]) for e in events if e["kind"] == "linked"]
    assert (c1, {"depends_on": a1}) in links and (c1, {"goal": goal}) in links
    changed = [e for e in events if e["kind"] == "status_changed"]
    assert [(e["task"], e["data"]["from"], e["data"]["to"]) for e in changed] == [(goal, "todo", "done")]


def test_the_seeds_verify_queries_run_on_the_board_file(kb):
    """`SELECT count(*) FROM tasks` and `SELECT kind, count(*) FROM task_events GROUP BY kind`,
    run by the sqlite3 shell as the seed does (in a separate process: never two SQLite
    copies in this one)."""
    import shutil
    import subprocess

    import pytest

    if not shutil.which("sqlite3"):
        pytest.skip("no sqlite3 shell on this machine")
    kb("create", "one", agent="coordinator")
    kb("create", "two", "--depends-on", "TASK-1", agent="coordinator")
    count = subprocess.run(["sqlite3", str(kb.path), "SELECT count(*) FROM tasks"],
                           capture_output=True, text=True, timeout=30)
    assert count.stdout.strip() == "2", count.stderr
    kinds = subprocess.run(["sqlite3", str(kb.path), "SELECT kind, count(*) FROM task_events GROUP BY kind"],
                           capture_output=True, text=True, timeout=30)
    assert sorted(kinds.stdout.split()) == ["created|2", "linked|1"], kinds.stderr


LIFECYCLE = [  # (command, expected status change in task_events) for one task, TASK-1
    (("create", "one", "--review"), None),
    (("claim", "TASK-1"), ("todo", "in_progress", "claimed")),
    (("release", ), ("in_progress", "todo", "released")),
    (("claim", "TASK-1"), ("todo", "in_progress", "claimed")),
    (("complete", ), ("in_progress", "in_review", "submitted_for_review")),
    (("reject", "TASK-1", "--reason", "no"), ("in_review", "todo", "rejected")),
    (("block", "TASK-1", "--reason", "wait"), ("todo", "blocked", "blocked")),
    (("unblock", "TASK-1"), ("blocked", "todo", "unblocked")),
    (("move", "TASK-1", "in_review"), ("todo", "in_review", "")),  # move's own status_changed event
    (("approve", "TASK-1"), ("in_review", "done", "approved")),
    (("reopen", "TASK-1"), ("done", "todo", "reopened")),
    (("cancel", "TASK-1"), ("todo", "cancelled", "cancelled")),
]


def _live_lifecycle(run_kb):
    token = None
    for command, _ in LIFECYCLE:
        agent = "judge" if command[0] in ("reject", "approve", "move") else "w1"
        args = list(command)
        if command[0] == "release":
            args = ["lease", "release", "TASK-1", "--token", str(token)]
        elif command[0] == "complete":
            args = ["complete", "TASK-1", "--token", str(token)]
        res = run_kb(*args, agent=agent)
        assert res.rc == 0, res
        if command[0] == "claim":
            token = res.json["lease_token"]
    return [expected for _, expected in LIFECYCLE if expected]


def test_every_status_change_is_a_status_changed_row_of_task_events(kb):
    """Whatever native event moved a task, task_events shows it as status_changed {from, to}."""
    import shutil
    import subprocess

    import pytest

    if not shutil.which("sqlite3"):
        pytest.skip("no sqlite3 shell on this machine")
    expected = _live_lifecycle(kb)
    rows = subprocess.run(["sqlite3", str(kb.path), "SELECT json_extract(data, '$.from'), json_extract(data, '$.to'),"
                           " json_extract(data, '$.event') FROM task_events WHERE kind = 'status_changed'"
                           " AND task_id = 1 ORDER BY id"], capture_output=True, text=True, timeout=30)
    assert [tuple(line.split("|")) for line in rows.stdout.split()] == expected, rows.stderr
    kinds = subprocess.run(["sqlite3", str(kb.path), "SELECT DISTINCT kind FROM task_events"],
                           capture_output=True, text=True, timeout=30).stdout.split()
    assert "status_changed" in kinds and "claimed" in kinds  # the native events stay as they are


def test_status_changed_rows_on_postgres(tmp_path):
    import os
    import uuid

    import pytest
    from conftest import run

    server = os.environ.get("KANBAN_TEST_PG", "")
    if not server:
        pytest.skip("KANBAN_TEST_PG is not set: name a PostgreSQL server to test the Postgres backend")
    from kanban.store.postgres import connect

    schema = "k_" + uuid.uuid4().hex[:12]
    with connect(server) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = server + ("&" if "?" in server else "?") + f"options=-csearch_path%3D{schema}"
    try:
        assert run("init", env={"KANBAN_DB": url}).rc == 0

        def run_kb(*args, agent=None):
            return run(*args, env={"KANBAN_DB": url, "KANBAN_AGENT": agent})
        expected = _live_lifecycle(run_kb)
        with connect(url) as conn:
            rows = conn.execute(
                "SELECT data::jsonb ->> 'from', data::jsonb ->> 'to', data::jsonb ->> 'event' FROM task_events"
                " WHERE kind = 'status_changed' AND task_id = 1 ORDER BY id").fetchall()
        assert [tuple(v or "" for v in r) for r in rows] == expected
    finally:
        with connect(server) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
