"""The claim+complete cycle's quick paths answer what the general code answers: an agent
name seen before, an int lease token, a claim naming no role or project, the times an
answer mostly leaves unset, and both halves of a write group commit may share (alone,
and asked for its batch)."""
import pytest
from conftest import T0

from kanban import Board
from kanban.board import _ClaimWrite, _CompleteWrite, _Later, _name, parse_int, parse_token
from kanban.errors import KanbanError


def _outcome(fn, *args):
    try:
        return fn(*args)
    except KanbanError as exc:
        return exc.to_dict()


@pytest.mark.parametrize("token", [1, 7, 2**62, 2**62 + 1, 0, -3, True, False, "7", " 12 ", "x", 1.5])
def test_lease_token_quick_path_answers_as_parse_int(token):
    assert _outcome(parse_token, token) == _outcome(parse_int, token, "lease token", 1)


@pytest.mark.parametrize("agent", ["w1", "w1", "", None, 0, " ", "bad\x01name", "x" * 201])
def test_agent_quick_path_answers_as_the_first_look(agent):
    first = _outcome(Board._agent, agent)
    assert _outcome(Board._agent, agent) == first  # the second look may take the quick path
    if agent:
        assert first == _outcome(_name, agent, "agent")


def test_claim_and_complete_answers_with_and_without_the_rare_fields(tmp_path, monkeypatch):
    """not_before and a role/project given take the general path; the answers print them
    as a read does."""
    monkeypatch.setenv("KANBAN_NOW", str(T0))
    with Board(str(tmp_path / "board.db"), create=True) as board:
        board.create("later", not_before=str(T0 - 60), role="dev", project="p")
        board.create("plain")
        for role, project in (("dev", "p"), (None, None)):
            claimed = board.claim("w1", role=role, project=project)
            token = claimed.pop("lease_token")
            assert claimed == board._read(lambda claimed=claimed: board._task(int(claimed["id"][5:])))
            done = board.complete(claimed["id"], token, agent="w1")
            assert done == board._read(lambda done=done: board._task(int(done["id"][5:])))
            assert done["lease_until"] is None and done["status"] == "done"
        assert claimed["not_before"] is None
        assert board._read(lambda: board._task(1))["not_before"] is not None
        with pytest.raises(KanbanError) as bad_role:
            board.claim("w1", role="")
        assert bad_role.value.code == "invalid"


def _made(answers):
    """A batch's answers as their callers get them (Board._commit makes a _Later)."""
    return [answer.make() if type(answer) is _Later else answer for answer in answers]


def test_shared_writes_alone_and_in_a_batch(tmp_path):
    """A _SharedWrite called is its write alone; its batch (what group commit asks for
    when threads write) runs the same write for its items, and boards' batches of the
    same kind share a key."""
    path = str(tmp_path / "board.db")
    with Board(path, create=True) as board, Board(path) as other:
        for n in range(3):
            board.create(f"t{n}")
        one = board._commit(_ClaimWrite((board, "w1", None, None, 60_000)))
        key, item, run = _ClaimWrite((board, "w2", None, None, 60_000)).batch
        assert (key, item) == (("claim", None, None, 60_000), "w2")
        assert key == _ClaimWrite((other, "w3", None, None, 60_000)).batch[0]
        two, three = _made(board._commit(lambda: run(["w2", "w3"])))
        assert [one["claimed_by"], two["claimed_by"], three["claimed_by"]] == ["w1", "w2", "w3"]
        done = board._commit(_CompleteWrite((board, 1, one["lease_token"], "w1")))
        assert done["status"] == "done"
        key, item, run = _CompleteWrite((board, 2, two["lease_token"], "w2")).batch
        assert (key, item) == (("complete",), (2, two["lease_token"], "w2"))
        assert key == _CompleteWrite((other, 3, three["lease_token"], "w3")).batch[0]
        answers = _made(board._commit(lambda: run([(2, two["lease_token"], "w2"), (3, three["lease_token"], "w3")])))
        assert [answer["status"] for answer in answers] == ["done", "done"]
