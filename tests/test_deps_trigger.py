"""unmet_deps on a SQLite board of schema 11: migration 8's trigger with its body behind a view.

SQLite evaluates a trigger's WHEN inside the trigger's program, after making that
program's frame (sized for the body).  Schema 11 keeps the rule of migrations 1 and 8
(a task that becomes done, or stops being done, and has dependents moves each
dependent's unmet_deps by one) but its trigger's body is one INSERT into the view
deps_done_changes, which nobody reads; the view's INSTEAD OF trigger updates the
dependents.  These tests hold the new schema to the old one: the same counts after the
same writes, through every path that changes a status, on new and migrated boards.
"""
import apsw
import pytest
from conftest import explain_programs, run, schema_board

from kanban import Board
from kanban.store import SCHEMA_VERSION

UNMET = "SELECT id, unmet_deps FROM tasks ORDER BY id"
# what unmet_deps means: the deps of each task that are not done
COUNTED = ("SELECT t.id, (SELECT count(*) FROM deps d JOIN tasks dep ON dep.id = d.dep_id"
           " WHERE d.task_id = t.id AND dep.status <> 'done') FROM tasks t ORDER BY t.id")


def schema_objects(conn):
    return {name: (kind, table) for kind, name, table in conn.execute(
        "SELECT type, name, tbl_name FROM sqlite_schema WHERE name LIKE '%done%'")}


def counts(conn):
    return conn.execute(UNMET).fetchall()


def check(conn):
    """unmet_deps as the triggers kept it is what it means."""
    kept = counts(conn)
    assert kept == conn.execute(COUNTED).fetchall()
    return kept


@pytest.mark.parametrize("fresh", [True, False], ids=["new board", "migrated from schema 10"])
def test_the_trigger_writes_the_view_and_the_view_updates_the_dependents(tmp_path, fresh):
    path = tmp_path / "board.db"
    if fresh:
        Board(str(path), create=True).close()
    else:
        old = schema_board(path, 10)
        assert schema_objects(old) == {"deps_done": ("trigger", "tasks")}
        old.close()
    with Board(str(path)) as board:
        conn = board.db.conn
        assert board.db.version == SCHEMA_VERSION >= 11
        assert schema_objects(conn) == {
            "tasks_done_changed": ("trigger", "tasks"),
            "deps_done_changes": ("view", "deps_done_changes"),
            "deps_done_count": ("trigger", "deps_done_changes"),
        }
        assert conn.execute("PRAGMA recursive_triggers").fetchall() == [(0,)]
        # the program a status write runs for the trigger holds the INSERT into the view,
        # not the UPDATE of tasks (which opens tasks and its indexes to write)
        ops = explain_programs(conn, "UPDATE tasks SET status = 'done' WHERE id = 1")[1]  # the trigger's
        assert "Program" in ops and "OpenWrite" not in ops, ops
        assert conn.execute("SELECT count(*) FROM deps_done_changes").fetchall() == [(0,)]
        assert board.db.integrity() == ["ok"]
    doctor = run("doctor", env={"KANBAN_DB": str(path)})
    assert doctor.rc == 0 and doctor.json["ok"] is True
    assert doctor.json["schema_version"] == doctor.json["schema_expected"] == SCHEMA_VERSION


def test_unmet_deps_are_the_same_as_under_schema_10_after_the_same_writes(tmp_path):
    """The same statements on a schema 10 board and a schema 11 one: the same counts after
    every one, single rows and sets, into done, out of it, and within it or outside it."""
    old, new = schema_board(tmp_path / "old.db", 10), schema_board(tmp_path / "new.db", 11)
    assert "deps_done" in schema_objects(old) and "deps_done" not in schema_objects(new)
    writes = [
        *[f"INSERT INTO tasks(title, created_at, updated_at) VALUES ('t{n}', 1, 1)" for n in range(1, 9)],
        "UPDATE tasks SET status = 'done' WHERE id = 8",
        # 5 waits on 1, 2 and 8 (done); 6 on 1 and 5; 7 on 5 and 6; 3 and 4 on nothing
        "INSERT INTO deps(task_id, dep_id) VALUES (5, 1), (5, 2), (5, 8), (6, 1), (6, 5), (7, 5), (7, 6)",
        "UPDATE tasks SET status = 'in_progress' WHERE id = 1",
        "UPDATE tasks SET status = 'done' WHERE id = 1",
        "UPDATE tasks SET status = 'done' WHERE id = 1",  # done to done: no change
        "UPDATE tasks SET status = 'todo' WHERE id = 1",  # reopened
        "UPDATE tasks SET status = 'done' WHERE id IN (1, 2, 3)",  # a set, one without dependents
        "UPDATE tasks SET status = 'cancelled' WHERE id = 2",  # out of done, not to todo
        "UPDATE tasks SET status = 'done', title = 'renamed' WHERE id IN (2, 5)",
        "UPDATE tasks SET title = 'only the title' WHERE id = 5",  # no status written
        "UPDATE tasks SET status = 'in_review' WHERE status = 'done'",  # every done task at once
        "UPDATE tasks SET status = 'done' WHERE id <> 4",
        "DELETE FROM deps WHERE task_id = 7 AND dep_id = 6",
        "UPDATE tasks SET status = 'blocked' WHERE id IN (5, 6)",
        "INSERT INTO deps(task_id, dep_id) VALUES (4, 5), (4, 6)",
        "UPDATE tasks SET status = 'done' WHERE id = 6",
        "UPDATE tasks SET status = 'failed' WHERE id = 6",
    ]
    for sql in writes:
        with old:
            old.execute(sql)
        with new:
            new.execute(sql)
        assert counts(new) == check(old), sql
    assert any(unmet for _, unmet in counts(new))  # the walk ends with tasks still waiting


def finish(board, task, agent="w", review=False):
    claim = board.claim(agent, task)
    return board.complete(task, claim["lease_token"], agent=agent, review=review)


@pytest.mark.parametrize("fresh", [True, False], ids=["new board", "migrated from schema 10"])
def test_every_verb_that_changes_a_status_keeps_unmet_deps(tmp_path, fresh):
    path = tmp_path / "board.db"
    if fresh:
        Board(str(path), create=True).close()
    else:  # tasks and deps written under schema 10's trigger, one of them already done
        old = schema_board(path, 10)
        with old:
            for n in range(1, 4):
                old.execute("INSERT INTO tasks(title, created_at, updated_at) VALUES (?, 1, 1)", (f"old{n}",))
                old.execute("INSERT INTO events(task_id, kind, actor, at, data) VALUES (?, 'created', 'x', 1, '{}')",
                            (n,))
            old.execute("INSERT INTO deps(task_id, dep_id) VALUES (2, 1), (3, 1), (3, 2)")
            # finished_at as the board sets it with done (an import refuses a done task without one)
            old.execute("UPDATE tasks SET status = 'done', finished_at = 1 WHERE id = 1")
        assert counts(old) == [(1, 0), (2, 0), (3, 1)]
        old.close()
    with Board(str(path)) as board:
        conn = board.db.conn
        check(conn)
        new = lambda title, **fields: board.create(title, **fields)["id"]  # noqa: E731
        a, b = new("a"), new("b")
        c = new("c", depends_on=[a, b])
        d = new("d", depends_on=[c], review=True)
        e = new("e", depends_on=[a, d])
        goal = new("goal", kind="goal")
        g1, g2 = new("g1", goal=goal, project="p"), new("g2", goal=goal, project="p")
        after_goal = new("after the goal", depends_on=[goal])
        check(conn)

        finish(board, a)  # claim + complete
        assert dict(check(conn))[int(c.split("-")[1])] == 1
        board.reopen(a)
        check(conn)
        claims = [board.claim("w", t) for t in (a, b)]
        board.complete_many([(t["id"], t["lease_token"]) for t in claims], agent="w")  # kanban batch complete
        assert board.show(c)["ready"] is True
        check(conn)
        finish(board, c)
        finish(board, d, review=True)  # in_review is not done
        check(conn)
        review = board.claim_review("judge", d)
        board.reject(d, "again", agent="judge", token=review["lease_token"])
        check(conn)
        finish(board, d, review=True)
        review = board.claim_review("judge", d)
        board.approve(d, agent="judge", token=review["lease_token"])
        assert board.show(e)["ready"] is True
        check(conn)
        board.move(c, "todo", force=True)  # out of done by hand: d's count comes back
        check(conn)
        board.move(c, "done", force=True)
        board.move(a, "blocked", reason="hold on", force=True)
        check(conn)
        board.unblock(a)
        board.cancel(a)  # cancelled is not done: e still waits on it
        assert board.show(e)["ready"] is False
        check(conn)
        claims = board.claim_many("w", 2, project="p")  # kanban batch claim: g1 and g2, the goal's tasks
        assert sorted(t["id"] for t in claims) == sorted([g1, g2])
        board.complete_many([(t["id"], t["lease_token"]) for t in claims], agent="w")
        assert board.show(goal)["status"] == "done" and board.show(after_goal)["ready"] is True
        check(conn)
        g3 = new("g3", goal=goal)  # the goal is open again, so its dependent waits
        assert board.show(after_goal)["ready"] is False
        kept = check(conn)
        lines = list(board.export_lines())

    copy = tmp_path / "copy.db"
    with Board(str(copy), create=True) as imported:  # kanban import
        imported.import_lines(lines)
        assert check(imported.db.conn) == kept
        finish(imported, g3)  # the goal is done again, its dependent ready
        assert imported.show(after_goal)["ready"] is True
        check(imported.db.conn)
        backup = tmp_path / "backup.db"
        imported.backup(str(backup))  # a file whose schema write_board_file makes
        kept = check(imported.db.conn)
    with Board(str(backup)) as restored:
        assert schema_objects(restored.db.conn) == schema_objects(apsw.Connection(str(copy)))
        assert check(restored.db.conn) == kept
