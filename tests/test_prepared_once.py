"""A long-lived process (a server, a team, threads using the API) prepares each
statement once: the second time round, the same calls prepare nothing.

SQLite prepares a statement again on every run when its plan looked at a bound value
(`project = :project` did, before `+:project` and the planner stability guarantee), and
apsw's statement cache of 100 evicted the claim's own statements in a mixed workload.
Counted without a clock: SQLite asks the authorizer about every statement it prepares,
and only then.
"""
import apsw

from kanban import Board
from kanban.bench import prepare


def _workload(board):
    """A round of what agents and people do to a board, every claim variant included."""
    for role in (None, "dev"):
        for project in (None, "proj"):
            task = board.claim("w1", project=project, role=role)
            assert task, (role, project)
            token = task["lease_token"]
            board.renew(task["id"], token, agent="w1")
            board.log(task["id"], "working", token=token, agent="w1")
            board.complete(task["id"], token, agent="w1")
    for project in (None, "proj"):
        claims = board.claim_many("w3", 3, project=project)
        assert len(claims) == 3, project
        board.complete_many([(task["id"], task["lease_token"]) for task in claims], agent="w3")
    board.claim("w2", project="nowhere")  # nothing to claim
    board.list(project="proj")
    board.list(status="todo")
    board.show("TASK-1")
    board.events(task="TASK-1")
    board.events(kind="claimed")


def test_the_second_round_prepares_nothing(tmp_path):
    path = str(tmp_path / "board.db")
    prepare(path, 40, "proj")
    with Board(path) as other:
        for n in range(8):
            other.create(f"dev task {n}", project="proj", role="dev")
            other.create(f"dev task {n}", role="dev")
    board = Board(path)
    prepared = []

    def authorizer(*_args):
        prepared.append(1)
        return apsw.SQLITE_OK

    board.db.conn.authorizer = authorizer
    _workload(board)
    assert prepared, "the authorizer saw no statement prepared: the count below would prove nothing"
    prepared.clear()
    _workload(board)
    _workload(board)
    board.close()
    assert len(prepared) == 0, f"{len(prepared)} authorizer calls: statements were prepared again"
