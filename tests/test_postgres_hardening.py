"""The hardening answers on Postgres too: the same JSON as SQLite for the inputs that
once broke the board (times past 9999, values of the wrong shape, the review gate by
any path of holding, goals inside goals).  Skipped unless KANBAN_TEST_PG names a server."""
import json

from test_postgres import both, needs_pg, pg, pg_url  # noqa: F401 - fixtures


@needs_pg
def test_out_of_range_times_and_wrong_shapes(both):  # noqa: F811 - the fixture imported above
    for stamp in ("10000-01-01T00:59:59Z", "9999-12-31T23:59:59-01:00", "-99999999999"):
        assert both("create", "t", "--not-before", stamp)["code"] == "invalid"
    assert both("create", "edge", "--not-before", "9999-12-31T23:59:59Z")["not_before"] == "9999-12-31T23:59:59Z"
    for line in ({"title": "x", "kind": []}, {"title": "x", "depends_on": [[1]]}, {"title": "x", "goal": {"id": 1}}):
        assert both("create", "--stdin", input=json.dumps(line) + "\n")["code"] == "invalid"


@needs_pg
def test_review_gate_remembers_every_holder(both):  # noqa: F811 - the fixture imported above
    task = both("create", "shared token", "--review")["id"]
    token = str(both("claim", task, agent="w1")["lease_token"])
    both("event", "log", task, "--message", "w2 helps", "--token", token, agent="w2")
    both("complete", task, "--token", token, agent="w1")
    assert both("approve", task, agent="w2")["code"] == "forbidden"
    assert both("approve", task, agent="r1")["status"] == "done"


@needs_pg
def test_give_back_counts_attempts_on_postgres(pg):  # noqa: F811 - the fixture imported above
    from kanban import Board

    with Board(pg.db) as board:
        task = board.create("refused every time", max_attempts=2, actor="boss")["id"]
        for attempt, status in ((1, "todo"), (2, "failed")):
            token = board.claim("w1", task)["lease_token"]
            back = board.give_back(task, token, "refused", agent="w1")
            assert back["attempts"] == attempt and back["status"] == status, back


@needs_pg
def test_goals_roll_up_the_same(both):  # noqa: F811 - the fixture imported above
    outer = both("create", "outer", "--kind", "goal")["id"]
    inner = both("create", "inner", "--kind", "goal", "--goal", outer)["id"]
    task = both("create", "work", "--goal", inner)["id"]
    waiting = both("create", "waits", "--depends-on", outer)["id"]
    both("block", inner, "--reason", "on hold")
    token = str(both("claim", task, agent="w1")["lease_token"])
    both("complete", task, "--token", token, agent="w1")
    assert both("unblock", inner)["status"] == "done"
    assert both("show", outer)["status"] == "done" and both("show", waiting)["ready"] is True
    assert both("reopen", inner)["status"] == "done"
    both("reopen", task)
    assert both("show", outer)["status"] == "todo"
