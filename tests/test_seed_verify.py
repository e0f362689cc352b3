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
