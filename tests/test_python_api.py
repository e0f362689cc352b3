"""SPEC section 10: `from kanban import Board` does what the verbs do, with their checks.

A misspelt or unknown field must not be dropped on the floor: the CLI refuses an
unknown option, `create --stdin` an unknown field, and so does the Python API, rather
than creating a task without what the caller asked for.
"""
import pytest

from kanban import Board, KanbanError


def code_of(call):
    with pytest.raises(KanbanError) as caught:
        call()
    return caught.value.code


def test_create_refuses_an_unknown_field_and_creates_nothing(board):
    assert code_of(lambda: board.create("t", prority=5)) == "invalid"
    # the task document's name for the role is not create's: refused, not ignored
    assert code_of(lambda: board.create("t", role_boundary="qa")) == "invalid"
    with pytest.raises(KanbanError, match="prority"):
        board.create("t", prority=5)
    assert board.list()["tasks"] == []
    assert board.events()["events"] == []
    made = board.create("t", role="qa", priority=5)
    assert (made["role_boundary"], made["priority"]) == ("qa", 5)


def test_set_review_takes_a_bool_only(board):
    task = board.create("t")
    assert code_of(lambda: board.set(task["id"], review="false")) == "invalid"
    assert board.show(task["id"])["review"] is False
    assert board.set(task["id"], review=True)["review"] is True
    assert board.set(task["id"], review=False)["review"] is False


def test_a_missing_board_is_not_found_unless_created(tmp_path):
    path = tmp_path / "board.db"
    assert code_of(lambda: Board(str(path))) == "not_found"
    assert not path.exists()
    with Board(str(path), create=True) as board:
        assert board.create("t")["id"] == "TASK-1"
