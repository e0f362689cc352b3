"""The tasks table's status CHECK is seven comparisons, not an IN list (schema 10).

SQLite evaluates `status IN (seven strings)` by building a temporary b-tree of the seven
each time a row's status is written; the comparisons build nothing.  The migration edits
the table's text in place (SQLite's documented procedure for changing constraints), so
it must accept and refuse exactly what the old CHECK did, on new and migrated boards.
"""
import apsw
import pytest
from conftest import explain_programs, schema_board

from kanban import Board
from kanban.store.sqlite import _STATUS_IN, _STATUS_OR, MIGRATIONS, run_migration

STATUSES = ("todo", "in_progress", "in_review", "blocked", "done", "failed", "cancelled")


def board_at_schema(path, version):
    """A board file as kanban `version` made it, with a task in it."""
    conn = schema_board(path, version)
    conn.execute("INSERT INTO tasks(title, created_at, updated_at) VALUES ('old task', 1, 1)")
    conn.execute("INSERT INTO events(task_id, kind, actor, at, data) VALUES (1, 'created', 'old', 1, '{}')")
    conn.close()


@pytest.mark.parametrize("fresh", [True, False], ids=["new board", "migrated from schema 8"])
def test_status_check_is_comparisons_and_the_same_rule(tmp_path, fresh):
    path = tmp_path / "board.db"
    if fresh:
        Board(str(path), create=True).close()
    else:
        board_at_schema(path, 8)
        text = apsw.Connection(str(path)).execute("SELECT sql FROM sqlite_schema WHERE name = 'tasks'").fetchall()
        assert _STATUS_IN in text[0][0]
    with Board(str(path)) as board:
        conn = board.db.conn
        assert board.db.scalar("PRAGMA user_version") >= 10
        text = board.db.scalar("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'tasks'")
        assert _STATUS_OR in text and _STATUS_IN not in text
        assert [r[0] for r in conn.execute("PRAGMA integrity_check")] == ["ok"]
        task = board.create("a task")["id"] if fresh else "TASK-1"
        task_id = int(task.split("-")[1])
        for status in STATUSES:  # every status the old CHECK accepted
            conn.execute("UPDATE tasks SET status = ? WHERE id = ?", (status, task_id))
        for bad in ("", "Done", "doing", "todo ", None):  # and nothing it refused
            with pytest.raises((apsw.ConstraintError,)):
                conn.execute("UPDATE tasks SET status = ? WHERE id = ?", (bad, task_id))
        # a write of status builds no temporary b-tree for the check
        ops = explain_programs(conn, "UPDATE tasks SET status = 'done' WHERE id = 1")[0]  # its own, not its triggers'
        assert "OpenEphemeral" not in ops, ops


def test_a_board_whose_check_is_not_kanbans_text_keeps_it(tmp_path):
    """Only the text migration 1 wrote is rewritten; anything else is left alone."""
    path = tmp_path / "board.db"
    board_at_schema(path, 8)
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA writable_schema=ON")
    version = conn.execute("PRAGMA schema_version").fetchall()[0][0]
    conn.execute("UPDATE sqlite_schema SET sql = replace(sql, 'status IN\n', 'status  IN\n') WHERE name = 'tasks'")
    conn.execute(f"PRAGMA schema_version={version + 1}")
    conn.execute("PRAGMA writable_schema=OFF")
    conn.close()
    with Board(str(path)) as board:
        text = board.db.scalar("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'tasks'")
        assert "status  IN\n" in text and _STATUS_OR not in text
        with pytest.raises(apsw.ConstraintError):
            board.db.execute("UPDATE tasks SET status = 'doing' WHERE id = 1")


def test_a_defensive_sqlite_keeps_the_old_check_and_migrates(tmp_path):
    """SQLite built or configured defensive cannot turn writable_schema on: the step leaves
    the CHECK as it is (the same rule) instead of failing the migration."""
    path = tmp_path / "board.db"
    board_at_schema(path, 9)
    conn = apsw.Connection(str(path))
    conn.config(apsw.SQLITE_DBCONFIG_DEFENSIVE, 1)
    with conn:
        run_migration(conn, MIGRATIONS[9])
    text = conn.execute("SELECT sql FROM sqlite_schema WHERE name = 'tasks'").fetchall()[0][0]
    assert _STATUS_IN in text and _STATUS_OR not in text
    assert [r[0] for r in conn.execute("PRAGMA integrity_check")] == ["ok"]
