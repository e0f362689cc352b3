"""kanban: a coordination board for AI agents, as a git-style toolkit.

    from kanban import Board
    with Board(".kanban/board.db") as board:
        task = board.claim(agent="worker-1")

Board is imported lazily so that the CLI's start-up stays small.
"""
__version__ = "0.1.0"
__all__ = ["Board", "KanbanError", "__version__"]


def __getattr__(name):
    if name == "Board":
        from .board import Board

        return Board
    if name == "KanbanError":
        from .errors import KanbanError

        return KanbanError
    raise AttributeError(name)
