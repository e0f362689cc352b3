"""set, comment, batch, cancel, reopen, block, unblock (SPEC §4 transitions, §5)."""
from conftest import assert_error, at


def snapshot(kb):
    return kb("list").out, kb("event", "list", "--limit", "100000").out


def new(kb, title="t", *args, env=None):
    res = kb("create", title, *args, env=env)
    assert res.rc == 0, res
    return res.json["id"]


def last_event(kb, task):
    return kb("event", "list", "--task", task).json["events"][-1]


# -- set -------------------------------------------------------------------------------


def test_set_fields(kb):
    goal = new(kb, "G", "--kind", "goal")
    t = new(kb, "old title")
    res = kb("set", t, "--title", "new title", "--body", "b", "--priority", "4", "--project", "p",
             "--assignee", "w1", "--role", "qa", "--goal", goal, "--not-before", "2031-01-01T00:00:00Z",
             "--max-attempts", "5", "--review", agent="lead")
    assert res.rc == 0, res
    doc = res.json
    assert (doc["title"], doc["body"], doc["priority"], doc["project"], doc["assignee"], doc["role_boundary"],
            doc["goal"], doc["not_before"], doc["max_attempts"], doc["review"]) == (
        "new title", "b", 4, "p", "w1", "qa", goal, "2031-01-01T00:00:00Z", 5, True)
    event = last_event(kb, t)
    assert event["kind"] == "updated" and event["actor"] == "lead"
    assert event["data"]["fields"]["title"] == "new title" and event["data"]["fields"]["priority"] == 4
    assert kb("set", t, "--no-review").json["review"] is False


def test_set_clear(kb):
    t = new(kb, "t", "--body", "b", "--project", "p", "--assignee", "a", "--role", "r",
            "--not-before", "2031-01-01T00:00:00Z", "--max-attempts", "2")
    doc = kb("set", t, "--clear", "body,project", "--clear", "assignee", "--clear", "role",
             "--clear", "not-before", "--clear", "max_attempts").json
    assert doc["body"] is None and doc["project"] is None and doc["assignee"] is None
    assert doc["role_boundary"] is None and doc["not_before"] is None and doc["max_attempts"] is None
    assert doc["ready"] is True


def test_set_updates_updated_at(kb):
    t = kb("create", "t", env=at(0)).json
    doc = kb("set", t["id"], "--priority", "2", env=at(60)).json
    assert doc["created_at"] == t["created_at"] and doc["updated_at"] != t["updated_at"]


def test_set_errors_change_nothing(kb):
    t = new(kb)
    plain = new(kb, "plain")
    before = snapshot(kb)
    for args, code in (
        (["set", t], "usage"),
        (["set", t, "--priority", "high"], "invalid"),
        (["set", t, "--title", ""], "invalid"),
        (["set", t, "--clear", "title"], "invalid"),
        (["set", t, "--clear", "status"], "invalid"),
        (["set", t, "--max-attempts", "0"], "invalid"),
        (["set", t, "--not-before", "someday"], "invalid"),
        (["set", t, "--goal", plain], "invalid"),
        (["set", t, "--goal", "TASK-404"], "not_found"),
        (["set", "TASK-404", "--priority", "1"], "not_found"),
        (["set", t, "--review", "--no-review"], "usage"),
        (["set", t, "--status", "done"], "usage"),
    ):
        assert_error(kb(*args), code)
    assert snapshot(kb) == before


# -- comment ---------------------------------------------------------------------------


def test_comment(kb):
    t = new(kb)
    res = kb("comment", t, "--message", "first note", agent="alice")
    assert res.rc == 0
    doc = res.json
    assert doc["body"] == "first note" and doc["actor"] == "alice" and doc["task"] == t
    kb("comment", t, "second note")
    shown = kb("show", t).json
    assert [c["body"] for c in shown["comments"]] == ["first note", "second note"]
    assert shown["comments"][1]["actor"]  # the login name when no agent is set
    assert last_event(kb, t)["kind"] == "commented"
    before = snapshot(kb)
    assert_error(kb("comment", t, "--message", ""), "invalid")
    assert_error(kb("comment", "TASK-404", "--message", "x"), "not_found")
    assert_error(kb("comment", t), "usage")
    assert snapshot(kb) == before


# -- block / unblock -------------------------------------------------------------------


def test_block_a_todo_task_without_a_token(kb):
    t = new(kb)
    res = kb("block", t, "--reason", "waiting on legal", agent="pm")
    assert res.rc == 0
    doc = res.json
    assert doc["status"] == "blocked" and doc["ready"] is False
    event = last_event(kb, t)
    assert event["kind"] == "blocked" and event["data"]["reason"] == "waiting on legal"
    assert kb("show", t).json["reason"] == "waiting on legal"
    assert kb("claim", agent="w").json == {}
    res = kb("unblock", t, "--reason", "legal said yes")
    assert res.rc == 0 and res.json["status"] == "todo" and res.json["ready"] is True
    assert last_event(kb, t)["kind"] == "unblocked"
    # a todo task may be blocked without an agent too
    assert kb("block", t, "--reason", "again").json["status"] == "blocked"


def test_block_a_claimed_task_needs_the_holders_token(kb):
    t = new(kb)
    tok = kb("claim", agent="w1").json["lease_token"]
    before = snapshot(kb)
    missing = assert_error(kb("block", t, "--reason", "r", agent="w1"), "lease_lost")
    # the error says the token is missing, not "token None", which reads as a lease gone
    assert missing["error"] == f"no lease token given for {t}: pass the lease_token its claim returned"
    assert_error(kb("block", t, "--reason", "r", "--token", str(tok + 1), agent="w1"), "lease_lost")
    assert_error(kb("block", t, "--reason", "r", "--token", str(tok)), "usage")  # no agent
    assert_error(kb("block", t, agent="w1"), "usage")  # no reason
    assert_error(kb("block", t, "--reason", "", "--token", str(tok), agent="w1"), "invalid")
    assert snapshot(kb) == before
    doc = kb("block", t, "--reason", "need creds", "--token", str(tok), agent="w1").json
    assert doc["status"] == "blocked" and doc["claimed_by"] is None and doc["lease_until"] is None
    assert_error(kb("complete", t, "--token", str(tok), agent="w1"), "lease_lost")
    kb("unblock", t)
    again = kb("claim", agent="w2").json
    assert again["id"] == t and again["lease_token"] > tok and again["attempts"] == 0


def test_block_and_unblock_state_errors(kb):
    t = new(kb)
    done = new(kb, "done")
    tok = kb("claim", done, agent="w").json["lease_token"]
    kb("complete", done, "--token", str(tok), agent="w")
    before = snapshot(kb)
    assert_error(kb("unblock", t), "conflict")
    assert_error(kb("block", done, "--reason", "r"), "conflict")
    assert_error(kb("block", "TASK-404", "--reason", "r"), "not_found")
    assert snapshot(kb) == before


# -- cancel / reopen -------------------------------------------------------------------


def test_cancel_any_open_status(kb):
    todo = new(kb, "todo")
    claimed = new(kb, "claimed")
    tok = kb("claim", claimed, agent="w").json["lease_token"]
    blocked = new(kb, "blocked")
    kb("block", blocked, "--reason", "r")
    review = new(kb, "review", "--review")
    rtok = kb("claim", review, agent="w").json["lease_token"]
    kb("complete", review, "--token", str(rtok), agent="w")
    for t, was in ((todo, "todo"), (claimed, "in_progress"), (blocked, "blocked"), (review, "in_review")):
        doc = kb("cancel", t, "--reason", "scope cut", agent="pm").json
        assert doc["status"] == "cancelled" and doc["claimed_by"] is None and doc["lease_until"] is None
        event = last_event(kb, t)
        assert event["kind"] == "cancelled" and event["data"]["from"] == was
        assert event["data"]["reason"] == "scope cut"
    assert_error(kb("complete", claimed, "--token", str(tok), agent="w"), "lease_lost")
    assert_error(kb("cancel", todo), "conflict")


def test_reopen_closed_tasks(kb):
    done = new(kb, "done")
    tok = kb("claim", done, agent="w").json["lease_token"]
    kb("complete", done, "--token", str(tok), agent="w")
    cancelled = new(kb, "cancelled")
    kb("cancel", cancelled)
    failed = kb("create", "failed", "--max-attempts", "1", env=at(0)).json["id"]
    kb("claim", failed, "--lease", "1m", agent="w", env=at(0))
    kb("lease", "reap", env=at(100))
    for t, was in ((done, "done"), (cancelled, "cancelled"), (failed, "failed")):
        doc = kb("reopen", t).json
        assert doc["status"] == "todo" and doc["attempts"] == 0
        assert last_event(kb, t)["kind"] == "reopened" and last_event(kb, t)["data"]["from"] == was
    open_task = new(kb, "open")
    before = snapshot(kb)
    assert_error(kb("reopen", open_task), "conflict")
    assert_error(kb("reopen", "TASK-404"), "not_found")
    assert snapshot(kb) == before


# -- batch -----------------------------------------------------------------------------


def test_batch_complete_all_or_nothing(kb):
    ids = [new(kb, f"t{n}") for n in range(3)]
    toks = {t: kb("claim", t, agent="w").json["lease_token"] for t in ids}
    before = snapshot(kb)
    pairs = [f"{t}:{toks[t]}" for t in ids]
    bad = pairs[:2] + [f"{ids[2]}:{toks[ids[2]] + 100}"]
    assert_error(kb("batch", "complete", *bad, agent="w"), "lease_lost")
    assert_error(kb("batch", "complete", pairs[0], "garbage", agent="w"), "invalid")
    assert_error(kb("batch", "complete", *pairs), "usage")  # no agent
    assert snapshot(kb) == before
    res = kb("batch", "complete", *pairs, agent="w")
    assert res.rc == 0
    assert [(d["id"], d["status"]) for d in res.json] == [(t, "done") for t in ids]


def test_batch_set_priority_and_project(kb):
    ids = [new(kb, f"t{n}") for n in range(3)]
    res = kb("batch", "set-priority", "7", ids[0], ids[2])
    assert res.rc == 0 and [d["priority"] for d in res.json] == [7, 7]
    assert kb("show", ids[1]).json["priority"] == 0
    res = kb("batch", "set-project", "infra", *ids)
    assert [d["project"] for d in res.json] == ["infra"] * 3
    before = snapshot(kb)
    assert_error(kb("batch", "set-priority", "7", ids[0], "TASK-404"), "not_found")
    assert_error(kb("batch", "set-priority", "high", ids[0]), "invalid")
    assert_error(kb("batch", "claim", "0", agent="w"), "invalid")
    assert_error(kb("batch", "explode", agent="w"), "usage")
    assert snapshot(kb) == before
