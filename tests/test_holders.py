"""The review gate's memory (SPEC §5 approve/reject, claim --for-review): nobody who ever
held a task judges it.  A claim for work leaves a `claimed` event whose actor is the
holder, and that is all it writes for the gate; the `holders` table keeps the agents that
acted with a holder's token, and every holder of a board a claim wrote rows for (a board
from before).  The gate reads both, on SQLite and on PostgreSQL: approve, reject,
claim --for-review (by id and the pick), move to done, the board view's holders and the
board filtered by agent."""
import pytest
from conftest import T0, backends, drop_pg_schemas, new_pg_schema

from kanban import Board
from kanban.board import init, parse_id
from kanban.errors import KanbanError


@pytest.fixture(params=backends())
def board(request, tmp_path, monkeypatch):
    """A new board on this test's backend, the board clock fixed at T0."""
    monkeypatch.setenv("KANBAN_NOW", str(T0))
    if request.param == "sqlite":
        where = str(tmp_path / "board.db")
    else:
        schema, where = new_pg_schema()
    init(where)
    with Board(where) as opened:
        yield opened
    if request.param == "postgres":
        drop_pg_schemas(schema)


def holders_table(board):
    return board._read(lambda: sorted(tuple(r) for r in board.db.execute("SELECT task_id, agent FROM holders")))


def refused(call):
    with pytest.raises(KanbanError) as error:
        call()
    assert error.value.code == "forbidden", error.value.to_dict()
    return error.value


def submitted(board, worker="w1", title="needs review"):
    """A review task `worker` claimed and completed: in review, its claim only in the event log."""
    task = board.create(title, review=True, actor="lead")["id"]
    claim = board.claim(worker, task)
    assert board.complete(task, claim["lease_token"], agent=worker)["status"] == "in_review"
    return task


def test_a_claim_writes_no_holders_row_and_its_event_keeps_the_holder_out(board):
    task = submitted(board)
    assert holders_table(board) == []
    assert board.holders_of([task]) == {task: ["w1"]}
    assert board.claim_review("w1") == {}  # the pick passes over it
    error = refused(lambda: board.claim_review("w1", task))
    assert error.message == f"w1 worked on {task} and may not review it"
    refused(lambda: board.approve(task, agent="w1"))
    refused(lambda: board.reject(task, "no", agent="w1"))
    refused(lambda: board.move(task, "done", actor="w1"))
    assert board.show(task)["status"] == "in_review"
    assert board.approve(task, agent="r1")["status"] == "done"


def test_every_claim_of_every_attempt_counts(board):
    task = board.create("t", review=True, actor="lead")["id"]
    first = board.claim("first", task, lease="1m")
    board.release(task, first["lease_token"], agent="first")
    second = board.claim("second", task)
    board.complete(task, second["lease_token"], agent="second")
    assert board.holders_of([task]) == {task: ["first", "second"]}
    for agent in ("first", "second"):
        refused(lambda agent=agent: board.approve(task, agent=agent))
    assert board.claim_review("third")["id"] == task


def test_claims_made_together_count(board):
    tasks = [board.create(f"t{n}", review=True, actor="lead")["id"] for n in range(3)]
    claims = board.claim_many("w1", 3)
    assert sorted(claim["id"] for claim in claims) == sorted(tasks)
    board.complete_many([(claim["id"], claim["lease_token"]) for claim in claims], agent="w1")
    assert holders_table(board) == []
    assert board.holders_of(tasks) == {task: ["w1"] for task in tasks}
    assert board.claim_review("w1") == {}
    for task in tasks:
        refused(lambda task=task: board.approve(task, agent="w1"))


def test_a_review_claim_does_not_make_a_holder(board):
    task = submitted(board)
    review = board.claim_review("r1")
    assert review["id"] == task
    board.release(task, review["lease_token"], agent="r1")
    assert board.holders_of([task]) == {task: ["w1"]}
    # r1 only reviewed it: r1 may review it again, and judge it
    again = board.claim_review("r1")
    assert again["id"] == task
    assert board.approve(task, agent="r1", token=again["lease_token"])["status"] == "done"
    assert board.recent("done", agent="r1")["tasks"] == []  # the board by agent: r1 never held it
    assert [t["id"] for t in board.recent("done", agent="w1")["tasks"]] == [task]


def test_an_agent_acting_with_the_holders_token_is_kept_in_the_holders_table(board):
    task = board.create("t", review=True, actor="lead")["id"]
    claim = board.claim("w1", task)
    board.complete(task, claim["lease_token"], agent="helper")
    assert holders_table(board) == [(parse_id(task), "helper")]
    assert board.holders_of([task]) == {task: ["helper", "w1"]}
    refused(lambda: board.approve(task, agent="helper"))
    refused(lambda: board.approve(task, agent="w1"))


def test_a_board_from_before_keeps_its_holders_rows(board):
    """A board whose claims wrote `holders` rows: a row counts with no claim in the event
    log to back it (here, an agent whose claim is not on this board)."""
    task = submitted(board, worker="w1")
    other = board.create("other", review=True, actor="lead")["id"]
    board.complete(other, board.claim("w2", other)["lease_token"], agent="w2")
    board.db.write(lambda: board.db.execute(board.db.sql("add_holder"), (parse_id(task), "old-hand")))
    assert board.holders_of([task, other]) == {task: ["old-hand", "w1"], other: ["w2"]}
    refused(lambda: board.claim_review("old-hand", task))
    refused(lambda: board.approve(task, agent="old-hand"))
    assert [t["id"] for t in board.recent("in_review", agent="old-hand")["tasks"]] == [task]
    assert board.claim_review("old-hand")["id"] == other  # the pick passes over the task it held


def test_the_gate_holds_after_a_prune(board, monkeypatch):
    task = submitted(board)
    board.log(task, "a note", agent="w1")
    board.log(task, "the newest, never pruned", agent="w1")
    monkeypatch.setenv("KANBAN_NOW", str(T0 + 90 * 86400))
    assert board.prune("1s")["pruned"] == 1
    refused(lambda: board.approve(task, agent="w1"))
    assert board.holders_of([task]) == {task: ["w1"]}
