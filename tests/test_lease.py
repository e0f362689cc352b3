"""Leases and fencing tokens under KANBAN_NOW: expiry, attempts, renew, release, reap (SPEC §4, §5)."""

import uuid

import pytest
from conftest import T0, assert_error, at, backends, drop_pg_schemas, new_pg_schema, run
from test_schemas import validate


def iso(seconds):
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 + seconds))



def snapshot(kb, seconds=0):
    env = at(seconds)
    return kb("list", env=env).out, kb("event", "list", "--limit", "100000", env=env).out


@pytest.fixture
def claimed(kb):
    """One task, claimed by w1 at T0 with a 10 minute lease."""
    task = kb("create", "the task", env=at(0)).json
    got = kb("claim", "--lease", "10m", agent="w1", env=at(0)).json
    assert got["id"] == task["id"] and got["lease_until"] == iso(600)
    return got


def test_expired_lease_is_reclaimed_by_the_next_claim(kb, claimed):
    # still held one second before the end
    assert kb("claim", agent="w2", env=at(599)).json == {}
    second = kb("claim", agent="w2", env=at(601)).json
    assert second["id"] == claimed["id"] and second["claimed_by"] == "w2"
    assert second["attempts"] == 1 and second["lease_token"] > claimed["lease_token"]
    kinds = [e["kind"] for e in kb("event", "list", "--task", claimed["id"], env=at(601)).json["events"]]
    assert kinds == ["created", "claimed", "lease_expired", "claimed"]
    expired = kb("event", "list", "--kind", "lease_expired", env=at(601)).json["events"][0]
    assert expired["data"]["holder"] == "w1" and expired["data"]["attempts"] == 1


def test_stale_token_loses_every_holder_write(kb, claimed):
    old = claimed["lease_token"]
    tid = claimed["id"]
    second = kb("claim", agent="w2", env=at(700)).json
    before = snapshot(kb, 700)
    for args in (["complete", tid, "--token", old],
                 ["lease", "renew", tid, "--token", old],
                 ["lease", "release", tid, "--token", old],
                 ["block", tid, "--reason", "stuck", "--token", old],
                 ["event", "log", tid, "--message", "still here", "--token", old],
                 ["heartbeat", tid, "--token", old],
                 ["batch", "complete", f"{tid}:{old}"]):
        assert_error(kb(*args, agent="w1", env=at(700)), "lease_lost")
    assert snapshot(kb, 700) == before
    # the new holder's token works
    done = kb("complete", tid, "--token", second["lease_token"], agent="w2", env=at(700)).json
    assert done["status"] == "done"


def test_a_reaped_lease_loses_every_holder_write_block_too(kb, claimed):
    """Reaped, the task is todo: a todo task may be blocked without a token, but a
    holder's block with its old token is a holder write and fails lease_lost, as the others."""
    tid, tok = claimed["id"], claimed["lease_token"]
    assert [t["id"] for t in kb("lease", "reap", env=at(600)).json["expired"]] == [tid]
    before = snapshot(kb, 601)
    for args in (["complete", tid, "--token", tok],
                 ["lease", "renew", tid, "--token", tok],
                 ["lease", "release", tid, "--token", tok],
                 ["block", tid, "--reason", "r", "--token", tok],
                 ["event", "log", tid, "--message", "m", "--token", tok]):
        assert_error(kb(*args, agent="w1", env=at(601)), "lease_lost")
    assert_error(kb("block", tid, "--reason", "r", "--token", "999", agent="w1", env=at(601)), "lease_lost")
    assert snapshot(kb, 601) == before
    # without a token, anyone parks the todo task
    assert kb("block", tid, "--reason", "parked", agent="lead", env=at(601)).json["status"] == "blocked"


def holder_writes(tid, tok):
    """Every write a holder makes with its token (SPEC 5: each fails with lease_lost
    unless the token is the current one and the lease has not expired)."""
    return (["complete", tid, "--token", tok],
            ["lease", "renew", tid, "--token", tok],
            ["lease", "release", tid, "--token", tok],
            ["block", tid, "--reason", "r", "--token", tok],
            ["event", "log", tid, "--message", "m", "--token", tok])


@pytest.mark.parametrize("taken", [["cancel", "--reason", "dropped"], ["move", "done", "--force"],
                                   ["move", "blocked", "--reason", "parked", "--force"]])
def test_a_holder_whose_task_was_closed_under_it_loses_every_write_block_too(kb, claimed, taken):
    """SPEC §5: every write by a holder, block included, fails lease_lost unless its token is
    the current one.  A task cancelled, done or blocked by someone else under its holder: the
    holder's block said conflict ('only todo or in_progress tasks can be blocked') where its
    complete, renew, release and progress note say lease_lost."""
    tid, tok = claimed["id"], claimed["lease_token"]
    kb(taken[0], tid, *taken[1:], agent="lead", env=at(60))
    before = snapshot(kb, 61)
    for args in holder_writes(tid, tok):
        assert_error(kb(*args, agent="w1", env=at(61)), "lease_lost")
    assert snapshot(kb, 61) == before
    # a token that never was this task's, or none, on a closed task: its state refuses it
    assert_error(kb("block", tid, "--reason", "r", "--token", "999", agent="w1", env=at(61)), "conflict")
    assert_error(kb("block", tid, "--reason", "r", agent="w1", env=at(61)), "conflict")


def test_expired_but_not_yet_reclaimed_lease_is_lost(kb, claimed):
    tid, tok = claimed["id"], claimed["lease_token"]
    before = snapshot(kb, 600)
    for args in holder_writes(tid, tok):
        assert_error(kb(*args, agent="w1", env=at(600)), "lease_lost")
    assert snapshot(kb, 600) == before


def test_wrong_or_malformed_token(kb, claimed):
    tid, tok = claimed["id"], claimed["lease_token"]
    before = snapshot(kb)
    assert_error(kb("complete", tid, "--token", tok + 1, agent="w1", env=at(1)), "lease_lost")
    assert_error(kb("lease", "renew", tid, "--token", "0", agent="w1", env=at(1)), "invalid")
    assert_error(kb("complete", tid, "--token", "abc", agent="w1", env=at(1)), "invalid")
    assert_error(kb("complete", tid, "--token", "1.0", agent="w1", env=at(1)), "invalid")
    assert_error(kb("complete", tid, agent="w1", env=at(1)), "usage")  # --token is required
    assert_error(kb("complete", tid, "--token", tok, env=at(1)), "usage")  # no agent
    assert_error(kb("lease", "renew", tid, "--token", tok, env=at(1)), "usage")
    assert_error(kb("lease", "release", tid, "--token", tok, env=at(1)), "usage")
    assert_error(kb("lease", "renew", tid, "--token", tok, "--lease", "-5m", agent="w1", env=at(1)), "invalid")
    assert_error(kb("lease", "renew", "TASK-77", "--token", tok, agent="w1", env=at(1)), "not_found")
    assert_error(kb("lease", "bogus", tid, agent="w1", env=at(1)), "usage")
    assert snapshot(kb) == before


def test_complete_of_a_todo_task_is_a_conflict(kb):
    task = kb("create", "never claimed", env=at(0)).json
    before = snapshot(kb)
    assert_error(kb("complete", task["id"], "--token", "1", agent="w1", env=at(0)), "conflict")
    assert_error(kb("lease", "renew", task["id"], "--token", "1", agent="w1", env=at(0)), "conflict")
    assert snapshot(kb) == before


def test_attempts_count_expiries_and_fail_at_max_attempts(kb):
    task = kb("create", "flaky", "--max-attempts", "2", env=at(0)).json
    first = kb("claim", "--lease", "1m", agent="w1", env=at(0)).json
    reaped = kb("lease", "reap", env=at(61)).json
    assert [t["id"] for t in reaped["expired"]] == [task["id"]]
    again = reaped["expired"][0]
    assert again["status"] == "todo" and again["attempts"] == 1 and again["claimed_by"] is None
    assert again["lease_until"] is None
    second = kb("claim", "--lease", "1m", agent="w2", env=at(100)).json
    assert second["attempts"] == 1 and second["lease_token"] > first["lease_token"]
    # the next claim reaps it: the second expiry reaches max_attempts
    assert kb("claim", agent="w3", env=at(200)).json == {}
    shown = kb("show", task["id"], env=at(200)).json
    assert shown["status"] == "failed" and shown["attempts"] == 2
    assert shown["claimed_by"] is None and shown["lease_until"] is None and shown["ready"] is False
    failed = kb("event", "list", "--kind", "failed", env=at(200)).json["events"]
    assert len(failed) == 1 and failed[0]["task"] == task["id"]
    reason = failed[0]["data"]["reason"]
    assert "max_attempts" in reason and "2" in reason
    assert shown["reason"] == reason
    assert kb("list", "--status", "failed", env=at(200)).json["tasks"][0]["id"] == task["id"]


def test_unlimited_attempts_by_default(kb):
    task = kb("create", "t", env=at(0)).json
    for n in range(4):
        got = kb("claim", "--lease", "1m", agent="w", env=at(n * 100)).json
        assert got["id"] == task["id"] and got["attempts"] == n
    assert kb("lease", "reap", env=at(1000)).json["expired"][0]["attempts"] == 4


def test_release_keeps_attempts(kb):
    task = kb("create", "t", env=at(0)).json
    kb("claim", "--lease", "1m", agent="w1", env=at(0))
    kb("lease", "reap", env=at(61))
    got = kb("claim", agent="w1", env=at(100)).json
    released = kb("lease", "release", task["id"], "--token", got["lease_token"], agent="w1", env=at(101))
    assert released.rc == 0
    doc = released.json
    assert doc["status"] == "todo" and doc["attempts"] == 1
    assert doc["claimed_by"] is None and doc["lease_until"] is None and doc["ready"] is True
    kinds = [e["kind"] for e in kb("event", "list", "--task", task["id"], env=at(101)).json["events"]]
    assert kinds[-1] == "released"
    # the released token is dead
    assert_error(kb("complete", task["id"], "--token", got["lease_token"], agent="w1", env=at(102)), "lease_lost")


def test_renew_never_shortens(kb):
    task = kb("create", "t", env=at(0)).json
    got = kb("claim", "--lease", "1h", agent="w1", env=at(0)).json
    tid, tok = task["id"], got["lease_token"]
    res = kb("lease", "renew", tid, "--token", tok, "--lease", "10m", agent="w1", env=at(60))
    assert res.rc == 0 and res.json["lease_until"] == iso(3600)
    assert res.json["lease_token"] == tok  # renewing keeps the token
    res = kb("lease", "renew", tid, "--token", tok, "--lease", "2h", agent="w1", env=at(1800))
    assert res.json["lease_until"] == iso(1800 + 7200)
    # without --lease: the claim's lease
    res = kb("lease", "renew", tid, "--token", tok, agent="w1", env=at(8000))
    assert res.json["lease_until"] == iso(8000 + 3600)
    renewed = kb("event", "list", "--kind", "lease_renewed", env=at(8000)).json["events"]
    assert [e["data"]["lease_until"] for e in renewed] == [iso(3600), iso(9000), iso(11600)]


def test_renew_takes_kanban_lease_as_its_lease(kb, claimed):
    """SPEC §2: `KANBAN_LEASE` (or `--lease`) is the lease.  A renewal without --lease under
    KANBAN_LEASE renews by it (it took the claim's length and ignored the variable, a bad
    value too); --lease still wins, and without either the claim's length stays."""
    tid, tok = claimed["id"], claimed["lease_token"]  # a 10 minute claim at T0
    res = kb("heartbeat", tid, "--token", tok, agent="w1", env={**at(60), "KANBAN_LEASE": "1h"})
    assert res.rc == 0 and res.json["lease_until"] == iso(60 + 3600)
    res = kb("lease", "renew", tid, "--token", tok, "--lease", "2h", agent="w1", env={**at(60), "KANBAN_LEASE": "1h"})
    assert res.json["lease_until"] == iso(60 + 7200)
    res = kb("lease", "renew", tid, "--token", tok, agent="w1", env={**at(7200), "KANBAN_LEASE": ""})
    assert res.json["lease_until"] == iso(7200 + 600)
    before = kb("show", tid, env=at(7200)).out
    for bad in ("soon", "-5m", "0"):
        assert_error(kb("lease", "renew", tid, "--token", tok, agent="w1", env={**at(7200), "KANBAN_LEASE": bad}),
                     "invalid")
    assert kb("show", tid, env=at(7200)).out == before


def test_heartbeat_and_extend_lease_aliases(kb, claimed):
    tid, tok = claimed["id"], claimed["lease_token"]
    res = kb("heartbeat", tid, "--token", tok, "--lease", "30m", agent="w1", env=at(60))
    assert res.rc == 0 and res.json["lease_until"] == iso(60 + 1800)
    res = kb("extend-lease", tid, "--token", tok, "--lease", "1h", agent="w1", env=at(60))
    assert res.rc == 0 and res.json["lease_until"] == iso(60 + 3600)


def test_progress_with_token_renews(kb, claimed):
    tid, tok = claimed["id"], claimed["lease_token"]
    res = kb("event", "log", tid, "--message", "half way", "--token", tok, agent="w1", env=at(300))
    assert res.rc == 0 and res.json["kind"] == "progress"
    assert kb("show", tid, env=at(300)).json["lease_until"] == iso(300 + 600)
    # without a token: a note only
    kb("event", "log", tid, "--message", "note", agent="w1", env=at(400))
    assert kb("show", tid, env=at(400)).json["lease_until"] == iso(900)
    # a renewed lease survives past the original end
    assert kb("claim", agent="w2", env=at(700)).json == {}


def test_reap_expires_only_overdue_leases(kb):
    a = kb("create", "a", env=at(0)).json
    b = kb("create", "b", env=at(0)).json
    kb("claim", a["id"], "--lease", "1m", agent="w1", env=at(0))
    kb("claim", b["id"], "--lease", "1h", agent="w2", env=at(0))
    assert kb("lease", "reap", env=at(30)).json == {"expired": []}
    res = kb("lease", "reap", env=at(120)).json
    assert [t["id"] for t in res["expired"]] == [a["id"]]
    assert kb("show", b["id"], env=at(120)).json["status"] == "in_progress"
    assert kb("lease", "reap", env=at(120)).json == {"expired": []}


def test_leaving_in_progress_ends_the_lease(kb):
    ids = [kb("create", f"t{n}", env=at(0)).json["id"] for n in range(3)]
    toks = {t: kb("claim", t, agent="w1", env=at(0)).json["lease_token"] for t in ids}
    done = kb("complete", ids[0], "--token", toks[ids[0]], agent="w1", env=at(1)).json
    blocked = kb("block", ids[1], "--reason", "r", "--token", toks[ids[1]], agent="w1", env=at(1)).json
    cancelled = kb("cancel", ids[2], env=at(1)).json
    for doc, status in ((done, "done"), (blocked, "blocked"), (cancelled, "cancelled")):
        assert doc["status"] == status and doc["claimed_by"] is None and doc["lease_until"] is None


def test_claim_by_id_of_an_expired_task_reclaims_it(kb, claimed):
    assert_error(kb("claim", claimed["id"], agent="w2", env=at(300)), "conflict")
    got = kb("claim", claimed["id"], agent="w2", env=at(601)).json
    assert got["claimed_by"] == "w2" and got["attempts"] == 1
    assert got["lease_token"] > claimed["lease_token"]


def test_only_the_claim_answer_carries_the_token(kb, claimed):
    assert "lease_token" not in kb("show", claimed["id"], env=at(1)).json
    assert all("lease_token" not in t for t in kb("list", env=at(1)).json["tasks"])


@pytest.fixture(params=backends())
def anykb(request, tmp_path):
    """kb() on a new board of this test's backend."""
    schema = None
    if request.param == "sqlite":
        where = str(tmp_path / uuid.uuid4().hex / "board.db")
    else:
        schema, where = new_pg_schema()
    assert run("init", env={"KANBAN_DB": where}).rc == 0

    def call(*args, agent=None, env=None):
        return run(*args, env={"KANBAN_DB": where, **({"KANBAN_AGENT": agent} if agent else {}), **(env or {})})
    yield call
    if schema:
        drop_pg_schemas(schema)


def test_show_says_a_lease_ran_out_before_anything_reaped_it(anykb):
    """show of a task whose lease ran out but was not reaped said plain in_progress with the
    old holder: waiting_on now says the lease expired, when, and what the next claim does
    with the task (back to todo; failed on its last attempt; a review freed), without
    changing the task's own keys; a live lease says lease_expired false."""
    kb = anykb
    plain = kb("create", "plain", env=at(0)).json["id"]
    last = kb("create", "last try", "--max-attempts", "1", env=at(0)).json["id"]
    review = kb("create", "reviewed", "--review", env=at(0)).json["id"]
    claims = {task: kb("claim", task, "--lease", "10m", agent="w1", env=at(0)).json for task in (plain, last, review)}
    assert all(got["lease_until"] == iso(600) for got in claims.values())
    keys = set(kb("show", plain, env=at(0)).json)
    done = kb("complete", review, "--token", claims[review]["lease_token"], agent="w1", env=at(0)).json
    assert done["status"] == "in_review"
    assert kb("claim", "--for-review", review, "--lease", "10m", agent="r1", env=at(0)).json["claimed_by"] == "r1"

    live = validate("kanban-show", kb("show", plain, env=at(599)).json)
    assert live["waiting_on"] == [{"kind": "status", "status": "in_progress", "claimed_by": "w1",
                                   "lease_until": iso(600), "lease_expired": False}]
    shown = {task: kb("show", task, env=at(601)).json for task in (plain, last, review)}
    for doc in shown.values():
        validate("kanban-show", doc)
        assert set(doc) == keys and doc["claimed_by"] in ("w1", "r1") and doc["lease_until"] == iso(600)
        (entry,) = doc["waiting_on"]
        assert entry["kind"] == "status" and entry["lease_expired"] is True, entry
        assert entry["lease_until"] == iso(600) and iso(600) in entry["note"]
    assert shown[plain]["status"] == "in_progress" and "back to todo" in shown[plain]["waiting_on"][0]["note"]
    assert "fails the task" in shown[last]["waiting_on"][0]["note"]
    assert shown[review]["status"] == "in_review" and "another reviewer" in shown[review]["waiting_on"][0]["note"]
    assert "waiting on:" in kb("show", plain, "--format", "table", env=at(601)).out
    # what the note said is what the next claim does
    kb("lease", "reap", env=at(601))
    assert kb("show", plain, env=at(601)).json["status"] == "todo"
    assert kb("show", last, env=at(601)).json["status"] == "failed"
    after = kb("show", review, env=at(601)).json
    assert after["status"] == "in_review" and after["claimed_by"] is None


def test_show_of_a_holder_with_no_lease_end_is_not_expired(tmp_path):
    """A task with a holder and no lease_until (a hand-edited board: `kanban import` refuses
    such a file, tests/test_import_fit.py) shows its holder, lease_expired false, instead of
    failing."""
    import apsw

    target = str(tmp_path / "b.db")
    assert run("init", env={"KANBAN_DB": target}).rc == 0
    run("create", "t", env={"KANBAN_DB": target, **at(0)})
    conn = apsw.Connection(target)
    with conn:
        conn.execute("UPDATE tasks SET claimed_by = 'w1', status = 'in_progress' WHERE id = 1")
    conn.close()
    shown = run("show", "TASK-1", env={"KANBAN_DB": target, **at(0)})
    assert shown.rc == 0, shown
    assert shown.json["waiting_on"][0]["lease_expired"] is False
