"""t0000: the basic contract every verb shares."""


def test_claim_complete_cycle(kb):
    created = kb("create", "first task", "--priority", "3").json
    assert created["created"] is True and created["status"] == "todo" and created["ready"] is True
    claimed = kb("claim", agent="w1").json
    assert claimed["id"] == created["id"] and claimed["status"] == "in_progress"
    assert isinstance(claimed["lease_token"], int)
    done = kb("complete", claimed["id"], "--token", claimed["lease_token"], agent="w1").json
    assert done["status"] == "done" and done["claimed_by"] is None and done["lease_until"] is None


def test_nothing_to_claim(kb):
    res = kb("claim", agent="w1")
    assert res.rc == 0 and res.json == {}
    res = kb("claim", "--exit-code", agent="w1")
    assert res.rc == 1 and res.json == {}


def test_error_contract(kb):
    res = kb("show", "TASK-999")
    assert res.rc == 2 and res.out == ""
    assert res.error["code"] == "not_found" and res.error["retryable"] is False
    res = kb("no-such-verb")
    assert res.rc == 2 and res.out == "" and res.error["code"] == "usage"
    res = kb("claim")
    assert res.rc == 2 and res.error["code"] == "usage"
