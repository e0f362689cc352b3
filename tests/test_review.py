"""The review gate: complete --review, approve, reject, claim --for-review, self-review (SPEC §4, §5)."""

import pytest
from conftest import assert_error, at


def snapshot(kb, seconds=0):
    return (kb("list", env=at(seconds)).out,
            kb("event", "list", "--limit", "100000", env=at(seconds)).out)


def submit(kb, *create_args, worker="w1", review_flag=True):
    task = kb("create", "needs review", *create_args, env=at(0)).json
    got = kb("claim", task["id"], agent=worker, env=at(0)).json
    extra = ["--review"] if review_flag else []
    res = kb("complete", task["id"], "--token", got["lease_token"], "--summary", "did it", *extra,
             agent=worker, env=at(1))
    assert res.rc == 0, res
    return res.json


@pytest.fixture
def in_review(kb):
    return submit(kb)


def test_complete_review_goes_to_in_review(kb, in_review):
    assert in_review["status"] == "in_review"
    assert in_review["claimed_by"] is None and in_review["lease_until"] is None
    assert in_review["ready"] is False
    events = kb("event", "list", "--task", in_review["id"], env=at(1)).json["events"]
    assert [e["kind"] for e in events] == ["created", "claimed", "submitted_for_review"]
    assert events[-1]["actor"] == "w1" and events[-1]["data"]["summary"] == "did it"


def test_task_created_with_review_needs_review(kb):
    doc = submit(kb, "--review", review_flag=False)
    assert doc["status"] == "in_review" and doc["review"] is True


def test_approve_by_another_agent(kb, in_review):
    res = kb("approve", in_review["id"], "--comment", "looks good", agent="r1", env=at(2))
    assert res.rc == 0
    doc = res.json
    assert doc["status"] == "done" and doc["claimed_by"] is None and doc["lease_until"] is None
    shown = kb("show", in_review["id"], env=at(2)).json
    assert [c["body"] for c in shown["comments"]] == ["looks good"]
    approved = kb("event", "list", "--kind", "approved", env=at(2)).json["events"]
    assert len(approved) == 1 and approved[0]["actor"] == "r1"


def test_reject_sends_it_back_with_the_reason(kb, in_review):
    res = kb("reject", in_review["id"], "--reason", "tests are missing", agent="r1", env=at(2))
    assert res.rc == 0
    doc = res.json
    assert doc["status"] == "todo" and doc["ready"] is True and doc["claimed_by"] is None
    rejected = kb("event", "list", "--kind", "rejected", env=at(2)).json["events"]
    assert rejected[0]["data"]["reason"] == "tests are missing" and rejected[0]["actor"] == "r1"
    assert kb("show", in_review["id"], env=at(2)).json["reason"] == "tests are missing"
    # and it can be worked again
    again = kb("claim", agent="w1", env=at(3)).json
    assert again["id"] == in_review["id"]


def test_self_review_is_forbidden(kb, in_review):
    before = snapshot(kb, 2)
    assert_error(kb("approve", in_review["id"], agent="w1", env=at(2)), "forbidden")
    assert_error(kb("reject", in_review["id"], "--reason", "meh", agent="w1", env=at(2)), "forbidden")
    assert_error(kb("claim", "--for-review", in_review["id"], agent="w1", env=at(2)), "forbidden")
    assert kb("claim", "--for-review", agent="w1", env=at(2)).json == {}
    assert snapshot(kb, 2) == before


def test_any_former_holder_is_refused(kb):
    task = kb("create", "t", "--review", env=at(0)).json
    kb("claim", "--lease", "1m", agent="first", env=at(0))
    got = kb("claim", agent="second", env=at(120)).json  # first's lease expired
    kb("complete", task["id"], "--token", got["lease_token"], agent="second", env=at(121))
    assert_error(kb("approve", task["id"], agent="first", env=at(122)), "forbidden")
    assert_error(kb("approve", task["id"], agent="second", env=at(122)), "forbidden")
    assert kb("approve", task["id"], agent="third", env=at(122)).json["status"] == "done"


def test_self_review_refused_even_after_events_are_pruned(kb, in_review):
    kb("event", "log", in_review["id"], "--message", "note", agent="w1", env=at(1))
    kb("event", "log", in_review["id"], "--message", "the newest, kept", agent="w1", env=at(2))
    pruned = kb("prune", "--before", "1s", env=at(90 * 86400)).json
    assert pruned["pruned"] >= 1
    assert_error(kb("approve", in_review["id"], agent="w1", env=at(90 * 86400)), "forbidden")
    assert_error(kb("reject", in_review["id"], "--reason", "x", agent="w1", env=at(90 * 86400)), "forbidden")


def test_judging_needs_in_review_and_an_agent(kb):
    todo = kb("create", "plain", env=at(0)).json
    before = snapshot(kb)
    assert_error(kb("approve", todo["id"], agent="r1", env=at(0)), "conflict")
    assert_error(kb("reject", todo["id"], "--reason", "x", agent="r1", env=at(0)), "conflict")
    assert_error(kb("approve", "TASK-99", agent="r1", env=at(0)), "not_found")
    assert_error(kb("approve", todo["id"], env=at(0)), "usage")
    assert_error(kb("reject", todo["id"], "--reason", "x", env=at(0)), "usage")
    assert_error(kb("reject", todo["id"], agent="r1", env=at(0)), "usage")  # --reason is required
    assert snapshot(kb) == before


def test_approve_of_done_task_is_a_conflict(kb, in_review):
    kb("approve", in_review["id"], agent="r1", env=at(2))
    assert_error(kb("approve", in_review["id"], agent="r2", env=at(3)), "conflict")


def test_claim_for_review_gives_a_lease_and_approve_needs_its_token(kb, in_review):
    tid = in_review["id"]
    got = kb("claim", "--for-review", "--lease", "10m", agent="r1", env=at(10))
    assert got.rc == 0
    review = got.json
    assert review["id"] == tid and review["status"] == "in_review"
    assert review["claimed_by"] == "r1" and isinstance(review["lease_token"], int)
    assert review["lease_until"] is not None
    before = snapshot(kb, 20)
    held = f"approve: {tid} is held for review by r1: only that review claim's lease_token may judge it"
    assert assert_error(kb("approve", tid, agent="r1", env=at(20)), "lease_lost")["error"] == held  # no token
    assert_error(kb("approve", tid, "--token", review["lease_token"] + 1, agent="r1", env=at(20)), "lease_lost")
    # r1 holds the review: the error says so (not "token None")
    assert assert_error(kb("approve", tid, agent="r2", env=at(20)), "lease_lost")["error"] == held
    assert_error(kb("claim", "--for-review", tid, agent="r2", env=at(20)), "conflict")
    assert kb("claim", "--for-review", agent="r2", env=at(20)).json == {}
    assert snapshot(kb, 20) == before
    done = kb("approve", tid, "--token", review["lease_token"], agent="r1", env=at(20)).json
    assert done["status"] == "done" and done["claimed_by"] is None and done["lease_until"] is None


def test_reject_with_review_token(kb, in_review):
    tid = in_review["id"]
    review = kb("claim", "--for-review", agent="r1", env=at(10)).json
    assert_error(kb("reject", tid, "--reason", "no", agent="r1", env=at(11)), "lease_lost")
    doc = kb("reject", tid, "--reason", "no", "--token", review["lease_token"], agent="r1", env=at(11)).json
    assert doc["status"] == "todo" and doc["claimed_by"] is None


def test_review_lease_can_be_renewed_and_expires(kb, in_review):
    tid = in_review["id"]
    review = kb("claim", "--for-review", "--lease", "10m", agent="r1", env=at(10)).json
    tok = review["lease_token"]
    renewed = kb("lease", "renew", tid, "--token", tok, "--lease", "20m", agent="r1", env=at(20)).json
    assert renewed["status"] == "in_review" and renewed["claimed_by"] == "r1"
    # after it expires the task is still in review, unclaimed, and open to another reviewer
    other = kb("claim", "--for-review", agent="r2", env=at(20 + 1201)).json
    assert other["id"] == tid and other["claimed_by"] == "r2" and other["lease_token"] > tok
    assert_error(kb("approve", tid, "--token", tok, agent="r1", env=at(20 + 1202)), "lease_lost")
    assert kb("approve", tid, "--token", other["lease_token"], agent="r2", env=at(20 + 1202)).json["status"] == "done"


def test_release_of_a_review_claim(kb, in_review):
    tid = in_review["id"]
    review = kb("claim", "--for-review", agent="r1", env=at(10)).json
    doc = kb("lease", "release", tid, "--token", review["lease_token"], agent="r1", env=at(11)).json
    assert doc["status"] == "in_review" and doc["claimed_by"] is None
    assert kb("approve", tid, agent="r2", env=at(12)).json["status"] == "done"


def test_claim_for_review_picks_by_priority_and_skips_own_work(kb):
    low = submit(kb, "--priority", "1")
    high = submit(kb, "--priority", "5", worker="w2")
    assert kb("claim", "--for-review", agent="w2", env=at(5)).json["id"] == low["id"]
    assert kb("claim", "--for-review", agent="r9", env=at(5)).json["id"] == high["id"]
    assert kb("claim", "--for-review", agent="r8", env=at(5)).json == {}
    res = kb("claim", "--for-review", "--exit-code", agent="r8", env=at(5))
    assert res.rc == 1 and res.json == {}


def test_claim_for_review_of_a_todo_task_is_a_conflict(kb):
    task = kb("create", "t", env=at(0)).json
    assert_error(kb("claim", "--for-review", task["id"], agent="r1", env=at(0)), "conflict")


@pytest.mark.parametrize("path", ["complete", "block", "log", "renew", "release"])
def test_anyone_who_acted_with_the_holders_token_may_not_review(kb, path):
    """The gate refuses everyone who ever acted as a holder, by any path: not only the
    claimer, but an agent that completed, blocked, logged, renewed or released with
    another's token."""
    task = kb("create", "shared token", "--review", env=at(0)).json["id"]
    token = kb("claim", task, agent="w1", env=at(0)).json["lease_token"]
    if path == "complete":
        assert kb("complete", task, "--token", token, agent="w2", env=at(1)).rc == 0
    else:
        args = {"block": ["block", task, "--reason", "stuck", "--token", token],
                "log": ["event", "log", task, "--message", "half way", "--token", token],
                "renew": ["lease", "renew", task, "--token", token],
                "release": ["lease", "release", task, "--token", token]}[path]
        assert kb(*args, agent="w2", env=at(1)).rc == 0
        if path == "block":
            assert kb("unblock", task, agent="boss", env=at(1)).rc == 0
        if path in ("block", "release"):
            token = kb("claim", task, agent="w1", env=at(1)).json["lease_token"]
        assert kb("complete", task, "--token", token, agent="w1", env=at(2)).rc == 0
    for verb in (["approve", task], ["reject", task, "--reason", "no"], ["claim", "--for-review", task]):
        assert_error(kb(*verb, agent="w2", env=at(3)), "forbidden")
    assert kb("claim", "--for-review", agent="w2", env=at(3)).json == {}
    assert kb("approve", task, agent="r1", env=at(3)).json["status"] == "done"
