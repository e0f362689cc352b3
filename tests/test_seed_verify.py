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
