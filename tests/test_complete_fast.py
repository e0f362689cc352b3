"""complete's common case is one statement (`complete_task`: the UPDATE with every check in
its WHERE); every other case goes the way it always went, reading and checking the task
(Board._complete_checked).  Two boards built alike, one completing through _complete and
one through _complete_checked alone, get the same answers and the same errors and end
with the same tables and hook events, on SQLite and on PostgreSQL: done, in a goal (which
rolls up), with dependents, with a summary, review tasks, --review, an open run, another
agent with the holder's token, a wrong, missing, spent or expired token, an unknown task,
a team board."""
import pytest
import test_claim_set
from conftest import T0
from test_claim_set import fill, same_boards

from kanban.board import parse_id
from kanban.errors import KanbanError

boards = test_claim_set.boards  # the fixture: two boards built alike, on SQLite and on PostgreSQL


def complete_both(fast, checked, task, token, agent, summary=None, review=False):
    """The same completion on each board: _complete on `fast`, _complete_checked on
    `checked`; the answer (or the error) they agree on."""
    def on(board, how):
        try:
            return board._write(lambda: how(parse_id(task), token, summary, review, agent))
        except KanbanError as exc:
            return exc.to_dict()
    answer = on(fast, fast._complete)
    assert answer == on(checked, checked._complete_checked), (task, token, agent)
    return answer


def claim_both(fast, checked, agent, task=None, **where):
    claimed = fast.claim(agent, task, **where)
    assert claimed == checked.claim(agent, task, **where)
    return claimed


def test_every_case_answers_and_writes_what_the_checked_path_does(boards, monkeypatch):
    fast, checked = boards()
    ids = [fill(board) for board in (fast, checked)][0]
    claims = {}
    while True:
        claimed = claim_both(fast, checked, "w1")
        if not claimed:
            break
        claims[claimed["title"]] = claimed
    assert {"review", "in-inner-a", "waited-on-by-two"} <= set(claims)

    def finish(title, agent="w1", token=None, **how):
        claim = claims[title]
        return complete_both(fast, checked, claim["id"], claim["lease_token"] if token is None else token, agent,
                             **how)

    assert finish("plain-5a")["status"] == "done"
    assert finish("plain-5a")["code"] == "lease_lost"  # the token is spent: the task is done
    assert finish("waited-on-by-two")["status"] == "done"  # a task waits on it: ready now
    assert finish("in-inner-a")["status"] == "done"
    assert finish("in-inner-b")["status"] == "done"  # the last of its goal: the goal is done
    assert fast.show(ids["inner"])["status"] == "done"
    assert finish("plain-1", summary="did \"it\" \u2713")["status"] == "done"
    assert finish("review")["status"] == "in_review"  # a review task
    assert finish("review-in-goal", summary="look")["status"] == "in_review"
    assert finish("plain-5b", review=True)["status"] == "in_review"  # --review
    assert finish("plain-0", agent="w3")["status"] == "done"  # another agent with the token: a holder
    assert finish("web-a", token=claims["web-a"]["lease_token"] + 1000)["code"] == "lease_lost"
    for board in (fast, checked):
        board.run_start(claims["web-a"]["id"], agent="w1", token=claims["web-a"]["lease_token"])
    assert finish("web-a")["status"] == "done"  # its run is closed with it
    assert complete_both(fast, checked, claims["web-b"]["id"], None, "w1")["code"] == "lease_lost"
    assert complete_both(fast, checked, "TASK-999", 1, "w1")["code"] == "not_found"
    assert complete_both(fast, checked, ids["outer"], 1, "w1")["code"] == "conflict"  # a goal, todo
    monkeypatch.setenv("KANBAN_NOW", str(T0 + 86400))  # every lease has run out
    assert finish("web-b")["code"] == "lease_lost"
    for board in (fast, checked):
        board.reap()
        board.set_team({"name": "crew", "coordinator": "lead", "members": {"lead": {}, "w1": {}, "w2": {}},
                        "operators": ["ops"]})
    claims = {claim["title"]: claim for claim in (claim_both(fast, checked, "w1") for _ in range(3))}
    first, second, third = claims
    assert finish(first, agent="mallory")["code"] == "forbidden"  # not on the team
    assert finish(first)["status"] == "done"
    assert finish(second, agent="ops")["status"] == "done"  # an operator, with the holder's token
    assert finish(third, summary="on a team board")["status"] == "done"
    same_boards(fast, checked, boards)


def test_the_one_statement_finishes_only_a_task_nothing_else_must_look_at(boards, monkeypatch):
    board, _ = boards()
    ids = fill(board)

    def one_statement(claim, agent="w1", token=None):
        """Did `complete_task` finish the task?  (When it did not, it changed nothing.)"""
        params = {"id": parse_id(claim["id"]), "agent": agent,
                  "token": claim["lease_token"] if token is None else token}
        return board._write(lambda: board.db.row(board.db.sql("complete_task"), dict(params, now=board.now)))

    claims = {}
    while claimed := board.claim("w1", lease="1h"):
        claims[claimed["title"]] = claimed
    assert one_statement(claims["review"]) is None  # a review task goes to review
    assert one_statement(claims["plain-0"], agent="w2") is None  # another agent becomes a holder
    assert one_statement(claims["plain-0"], token=claims["plain-0"]["lease_token"] + 1000) is None
    board.run_start(claims["plain-1"]["id"], agent="w1", token=claims["plain-1"]["lease_token"])
    assert one_statement(claims["plain-1"]) is None  # its open run closes with it
    for plain in ("plain-0", "in-inner-a", "waited-on-by-two"):  # a plain task, one in a goal, one waited on
        row = one_statement(claims[plain])
        assert row["id"] == parse_id(claims[plain]["id"]) and row["status"] == "done"
        assert one_statement(claims[plain]) is None  # done now
    assert board.show(ids["plain-0"])["status"] == "done"
    board.set_team({"name": "crew", "coordinator": "lead", "members": {"lead": {}, "w1": {}}})
    assert one_statement(claims["plain-5a"]) is None  # a team board: the role gate looks at it
    board.set_team(None, actor="lead")
    monkeypatch.setenv("KANBAN_NOW", str(T0 + 7200))
    assert one_statement(claims["plain-5a"]) is None  # the lease has run out


def test_a_plain_complete_is_one_update_and_its_event(tmp_path, monkeypatch):
    """On SQLite, counted: the statements of a complete between BEGIN and COMMIT."""
    from kanban import Board
    from kanban.bench import prepare

    path = str(tmp_path / "board.db")
    prepare(path, 10, None)
    with Board(path) as board:
        seen = []
        board.db.conn.exec_trace = lambda _cursor, sql, _bindings: seen.append(sql.split()[0]) or True
        claimed = board.claim("w1")
        seen.clear()
        assert board.complete(claimed["id"], claimed["lease_token"], agent="w1")["status"] == "done"
        assert seen == ["BEGIN", "UPDATE", "INSERT", "COMMIT"], seen
        seen.clear()
        claimed = board.claim("w1")
        seen.clear()
        with pytest.raises(KanbanError):
            board.complete(claimed["id"], claimed["lease_token"] + 1, agent="w1")
        assert seen == ["BEGIN", "UPDATE", "SELECT", "ROLLBACK"], seen  # then read, checked, refused
