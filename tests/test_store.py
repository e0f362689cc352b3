"""Storage: where a location leads (files, file: and sqlite: URIs, servers), and that
only a kanban board is ever changed.  The Postgres cases need KANBAN_TEST_PG."""
import json
import os
import subprocess
import sys
import time
import uuid

import apsw
import pytest
from conftest import KANBAN, assert_error, run

from kanban.errors import KanbanError
from kanban.store import Store, locate
from kanban.store.postgres import PgStore
from kanban.store.sqlite import APPLICATION_ID, SqliteStore

SERVER = os.environ.get("KANBAN_TEST_PG", "")
needs_pg = pytest.mark.skipif(not SERVER, reason="KANBAN_TEST_PG is not set: name a PostgreSQL server "
                              "(e.g. KANBAN_TEST_PG=postgresql://postgres@127.0.0.1:5432/test)")


# -- the interface -------------------------------------------------------------------------

def test_both_backends_implement_the_whole_interface():
    for backend in (SqliteStore, PgStore):
        assert issubclass(backend, Store)
        assert not backend.__abstractmethods__, f"{backend.__name__} leaves {backend.__abstractmethods__}"


def test_board_py_holds_no_storage_details():
    from conftest import ROOT

    text = (ROOT / "lib" / "kanban" / "board.py").read_text()
    for needle in ("apsw", "/proc/mounts", '"://"', "getattr(self.db", "PRAGMA", "psycopg", "os.replace",
                   ".backend", "is_server"):
        assert needle not in text, needle


def test_no_import_circle():
    from conftest import ROOT

    code = ("import sys; sys.path.insert(0, sys.argv[1]); import kanban.store.postgres, kanban.store.sqlite; "
            "assert 'kanban.board' not in sys.modules, 'the store imports the board'")
    subprocess.run([sys.executable, "-c", code, str(ROOT / "lib")], check=True)


@pytest.mark.parametrize("location, backend, target", [
    ("board.db", "sqlite", "board.db"),
    ("/abs/board.db", "sqlite", "/abs/board.db"),
    ("sqlite:///x.db", "sqlite", "x.db"),
    ("sqlite:////abs/x.db", "sqlite", "/abs/x.db"),
    ("sqlite:x.db", "sqlite", "x.db"),
    ("file:x.db", "sqlite", "x.db"),
    ("file:/abs/x.db", "sqlite", "/abs/x.db"),
    ("file:///abs/x%20y.db", "sqlite", "/abs/x y.db"),
    ("file://localhost/abs/x.db", "sqlite", "/abs/x.db"),
    ("postgresql://u@h/db", "postgres", "postgresql://u@h/db"),
    ("postgres://u@h/db?options=-csearch_path%3Dt", "postgres", "postgres://u@h/db?options=-csearch_path%3Dt"),
])
def test_a_location_picks_its_backend(location, backend, target):
    where = locate(location)
    assert (where.backend, where.target) == (backend, target)


@pytest.mark.parametrize("location", ["file://x/board.db", "sqlite://x.db", "sqlite:///x.db?mode=ro",
                                      "file:x.db?mode=ro", "mysql://u@h/db", "sqlite:///"])
def test_a_location_kanban_cannot_serve_is_a_usage_error(tmp_path, location):
    res = run("init", env={"KANBAN_DB": location}, cwd=tmp_path)
    assert_error(res, "usage")
    assert list(tmp_path.iterdir()) == [], "nothing is created for a location refused"


@pytest.mark.parametrize("spelling", ["sqlite:///x.db", "file:x.db", "sqlite:x.db"])
def test_uri_spellings_of_a_relative_file(tmp_path, spelling):
    env = {"KANBAN_DB": spelling}
    init = run("init", env=env, cwd=tmp_path)
    assert init.rc == 0, init
    assert init.json["db"] == str(tmp_path / "x.db") and init.json["created"] is True
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("x.db")) == []
    assert run("create", "t", env=env, cwd=tmp_path).json["id"] == "TASK-1"
    doctor = run("doctor", env=env, cwd=tmp_path)
    assert doctor.rc == 0 and doctor.json["db"] == str(tmp_path / "x.db"), doctor
    backup = run("backup", tmp_path / "copy.db", env=env, cwd=tmp_path)
    assert backup.rc == 0 and backup.json["integrity"] == "ok", backup
    assert run("show", "TASK-1", env={"KANBAN_DB": tmp_path / "copy.db"}).json["title"] == "t"


def test_absolute_file_uris(tmp_path):
    for spelling in (f"file://{tmp_path}/a.db", f"file://localhost{tmp_path}/b.db", f"sqlite:///{tmp_path}/c.db"):
        res = run("init", env={"KANBAN_DB": spelling}, cwd="/")
        assert res.rc == 0, res
        assert os.path.exists(res.json["db"]) and res.json["db"].startswith(str(tmp_path)), res


def test_hooks_run_for_a_board_named_by_uri(tmp_path):
    folder = tmp_path / "hooks.d"
    folder.mkdir()
    hook = folder / "post-create"
    hook.write_text(f"#!/bin/sh\ncat > {tmp_path}/hook-ran\n")
    hook.chmod(0o755)
    env = {"KANBAN_DB": "sqlite:///x.db"}
    assert run("init", env=env, cwd=tmp_path).rc == 0
    assert run("create", "t", env=env, cwd=tmp_path).rc == 0
    assert json.loads((tmp_path / "hook-ran").read_text())["kind"] == "created"


# -- someone else's SQLite file ------------------------------------------------------------

def app_database(path, user_version=2, application_id=0):
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users(name) VALUES ('ada');"
                 "CREATE TABLE tasks(id INTEGER PRIMARY KEY, title TEXT);"
                 f"PRAGMA user_version={user_version}; PRAGMA application_id={application_id}")
    conn.close()
    return path.read_bytes()


@pytest.mark.parametrize("verb", [("list",), ("show", "TASK-1"), ("doctor",), ("stats",), ("init",),
                                  ("create", "x"), ("backup", "copy.db")])
def test_a_foreign_database_is_never_touched(tmp_path, verb):
    app = tmp_path / "app.db"
    before = app_database(app)
    res = run(*verb, env={"KANBAN_DB": app}, cwd=tmp_path)
    assert_error(res, "db_error")
    assert "not a kanban board" in res.error["error"]
    assert app.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"], "no .lock, -wal or -shm is left"


def test_a_database_marked_by_another_application(tmp_path):
    app = tmp_path / "app.db"
    before = app_database(app, user_version=1, application_id=0x12345678)
    assert_error(run("list", env={"KANBAN_DB": app}), "db_error")
    assert app.read_bytes() == before


def test_a_new_board_carries_the_mark_and_an_older_one_is_known_by_its_tables(tmp_path):
    path = tmp_path / "board.db"
    assert run("init", env={"KANBAN_DB": path}).rc == 0
    conn = apsw.Connection(str(path))
    assert conn.execute("PRAGMA application_id").fetchall()[0][0] == APPLICATION_ID
    conn.execute("PRAGMA application_id=0")  # a board made before the mark
    conn.close()
    assert run("create", "old", env={"KANBAN_DB": path}).json["id"] == "TASK-1"
    assert run("list", env={"KANBAN_DB": path}).json["tasks"][0]["title"] == "old"
    backup = run("backup", tmp_path / "copy.db", env={"KANBAN_DB": path}).json
    conn = apsw.Connection(backup["backup"])
    assert conn.execute("PRAGMA application_id").fetchall()[0][0] == APPLICATION_ID
    conn.close()


def test_concurrent_backups_to_one_file_each_publish_a_whole_board(kb, tmp_path):
    for n in range(20):
        kb("create", f"task {n}")
    dest = tmp_path / "copy.db"
    procs = [subprocess.Popen([str(KANBAN), "backup", str(dest)], env=dict(os.environ, KANBAN_DB=str(kb.path)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    outcomes = [(p.wait(60), p.stdout.read(), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _, _ in outcomes), outcomes
    assert len(run("list", "--limit", "100", env={"KANBAN_DB": dest}).json["tasks"]) == 20
    assert sorted(p.name for p in tmp_path.iterdir() if "copy" in p.name) == ["copy.db"]


# -- Postgres ------------------------------------------------------------------------------

def pg_sql(sql, params=None):
    from kanban.store.postgres import connect

    with connect(SERVER) as conn:
        found = conn.execute(sql, params)
        return found.fetchall() if found.description else None


def with_path(*schemas):
    return SERVER + ("&" if "?" in SERVER else "?") + "options=-csearch_path%3D" + "%2C".join(schemas)


@pytest.fixture
def schemas():
    made = []

    def name():
        made.append("k_" + uuid.uuid4().hex[:12])
        return made[-1]
    yield name
    for schema in made:
        pg_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@needs_pg
def test_a_search_path_never_falls_back_to_a_later_schemas_board(schemas):
    team_a, shared = schemas(), schemas()
    pg_sql(f"CREATE SCHEMA {shared}")
    assert run("init", env={"KANBAN_DB": with_path(shared)}).rc == 0
    url = with_path(team_a, shared)
    assert_error(run("list", env={"KANBAN_DB": url}), "not_found")
    init = run("init", env={"KANBAN_DB": url})
    assert init.rc == 0 and init.json["created"] is True, init
    assert run("create", "a's task", env={"KANBAN_DB": url}).rc == 0
    assert run("list", env={"KANBAN_DB": with_path(shared)}).json["tasks"] == []
    assert pg_sql(f"SELECT count(*) FROM {team_a}.tasks")[0][0] == 1


@needs_pg
@pytest.mark.parametrize("secret", ["hun%zzter2", "hunter2@x/y", "hun ter2", "hunter2:more"])
def test_a_malformed_password_is_never_shown(secret):
    base = SERVER.split("://", 1)[1].split("@", 1)[-1]
    url = f"postgresql://postgres:{secret}@{base.replace(':5432', ':1')}"
    res = run("list", env={"KANBAN_DB": url})
    assert res.rc == 2
    for piece in {secret, secret.replace("%zz", ""), "hunter2", "hun"}:
        assert piece not in res.err, res.err


@needs_pg
def test_a_waiting_claim_outlives_the_end_of_its_session(schemas):
    url = with_path(schemas())
    assert run("init", env={"KANBAN_DB": url}).rc == 0
    waiter = subprocess.Popen([str(KANBAN), "claim", "--wait", "60s", "--agent", "w1"],
                              env=dict(os.environ, KANBAN_DB=url), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        pid = None
        for _ in range(300):
            found = pg_sql("SELECT pid FROM pg_stat_activity WHERE application_name = 'kanban'"
                           " AND query ILIKE 'LISTEN%%' AND state = 'idle' AND pid <> pg_backend_pid()"
                           " AND backend_start > now() - interval '60 seconds'"
                           " ORDER BY backend_start DESC LIMIT 1")
            if found:
                pid = found[0][0]
                break
            time.sleep(0.1)
        assert pid, "the waiting claim never listened"
        pg_sql("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(0.5)
        assert waiter.poll() is None, waiter.communicate()
        assert run("create", "late work", env={"KANBAN_DB": url}).rc == 0
        out, err = waiter.communicate(timeout=30)
        assert waiter.returncode == 0, err
        assert json.loads(out)["title"] == "late work"
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()


# -- the SQL: written out in both dialects, never rewritten ---------------------------------

def _code(text):
    """SQL without its string literals (a placeholder inside a literal is text)."""
    import re

    return re.sub(r"'(?:[^']|'')*'", "''", text)


def _placeholders(text):
    """The SQLite and the psycopg placeholders of a statement: (sqlite, psycopg)."""
    import re

    code = _code(text)
    return (re.findall(r"\?|(?<![:\w]):[A-Za-z_]\w*", code),
            re.findall(r"%s|%\([A-Za-z_]\w*\)s", code))


def _asked_for():
    """Every name the modules that run SQL through the store ask for: db.sql("name")."""
    import re

    from conftest import ROOT

    names = set()
    for module in ("board.py", "transfer.py", "bench.py", "flow.py"):
        names |= set(re.findall(r'\.sql\("(\w+)"\)', (ROOT / "lib" / "kanban" / module).read_text()))
    from kanban.board import PEEK, PICK, PROBE

    names |= set(PICK.values()) | set(PEEK.values()) | set(PROBE.values())
    # the names board.py makes: not_role_n, scope_agent, ...
    names |= {f"not_{key}_n" for key in ("role", "project")} | {f"scope_{key}" for key in ("role", "project", "agent")}
    return names


def test_every_statement_is_written_in_both_dialects_each_with_its_own_placeholders():
    from kanban.store.queries import FRAGMENTS, POSTGRES, QUERIES, SQLITE

    assert not set(QUERIES) & set(FRAGMENTS)
    for name, texts in (QUERIES | FRAGMENTS).items():
        assert set(texts) == {"sqlite", "postgres"}, name
        sqlite, psycopg = _placeholders(texts["sqlite"])
        assert not psycopg and "%" not in _code(texts["sqlite"]), f"{name}: psycopg's placeholders in SQLite's text"
        sqlite, psycopg = _placeholders(texts["postgres"])
        assert not sqlite, f"{name}: SQLite's placeholders {sqlite} in PostgreSQL's text"
    used = _asked_for()
    assert used <= set(SQLITE) and used <= set(POSTGRES), used - set(SQLITE)


def test_no_sql_is_rewritten_at_run_time():
    """What board.py sends without a name has no parameters (its text reads alike on both
    backends); the Postgres store has no translator and uses `re` for URLs only."""
    import ast

    from conftest import ROOT

    for module in ("board.py", "transfer.py", "bench.py"):
        tree = ast.parse((ROOT / "lib" / "kanban" / module).read_text())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("rows", "row", "scalar", "execute")
                    and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "db"
                    and node.args and isinstance(node.args[0], (ast.Constant, ast.JoinedStr))):
                first = node.args[0]
                text = first.value if isinstance(first, ast.Constant) else "".join(
                    part.value for part in first.values if isinstance(part, ast.Constant))
                assert _placeholders(text) == ([], []), f"{module}: {text}"
                assert isinstance(first, ast.JoinedStr) or len(node.args) == 1, f"{module}: {text}"
    source = (ROOT / "lib" / "kanban" / "store" / "postgres.py").read_text()
    for gone in ("translate", "OVERRIDES", "LOCKING", "PRAGMAS", "Native"):
        assert gone not in source, gone
    tree = ast.parse(source)

    def uses_of_re(root):
        return {id(n) for n in ast.walk(root) if isinstance(n, ast.Attribute)
                and isinstance(n.value, ast.Name) and n.value.id == "re"}
    secrets = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_secrets")
    assert uses_of_re(tree) == uses_of_re(secrets), "postgres.py uses re beyond a URL's password"


def test_every_sqlite_statement_prepares_on_a_board(board_path):
    import apsw.ext

    from kanban.store.queries import FRAGMENTS, QUERIES, SQLITE

    conn = apsw.Connection(str(board_path))
    for texts in QUERIES.values():
        apsw.ext.query_info(conn, texts["sqlite"])  # prepared, not run: raises on a bad statement
    for name in ("status_in", "id_in", "status_is", "project_is", "assignee_is", "claimed_by_is", "kind_is",
                 "goal_is", "role_is", "ready", "touched_by"):
        apsw.ext.query_info(conn, SQLITE["task_select"] + " WHERE " + SQLITE[name] + SQLITE["limit"])
    apsw.ext.query_info(conn, SQLITE["task_select"] + SQLITE["search_join"])
    assert "set_column" in FRAGMENTS
    conn.close()


@needs_pg
def test_every_postgres_statement_prepares_on_a_server(schemas):
    """Each statement as it runs (its parameters bound as NULL by psycopg, as the store
    binds them), PREPAREd on a real board: the server parses and checks it all."""
    from kanban.store.postgres import connect, open_board
    from kanban.store.queries import POSTGRES, QUERIES

    class Nulls(dict):
        def __missing__(self, key):
            return None

    url = with_path(schemas())
    open_board(url, create=True).close()
    composed = {f"task where {name}": POSTGRES["task_select"] + " WHERE " + POSTGRES[name] + POSTGRES["limit"]
                for name in ("status_in", "id_in", "status_is", "project_is", "assignee_is", "claimed_by_is",
                             "kind_is", "goal_is", "role_is", "ready", "touched_by")}
    composed["search"] = POSTGRES["task_select"] + POSTGRES["search_join"]
    composed["update"] = ("UPDATE tasks SET " + POSTGRES["set_column"].format("title") + POSTGRES["where_id"]
                          + POSTGRES["task_returning"])
    with connect(url) as conn:
        cursor = conn.cursor()
        for name, text in {**{n: t["postgres"] for n, t in QUERIES.items()}, **composed}.items():
            sqlite, psycopg = _placeholders(text)
            if not psycopg:
                bound = text
            elif psycopg[0] == "%s":
                bound = cursor.mogrify(text, [None] * len(psycopg))
            else:
                bound = cursor.mogrify(text, Nulls())
            try:
                conn.execute(f"PREPARE kanban_check AS {bound}")
            except Exception as exc:  # noqa: BLE001 - say which statement
                raise AssertionError(f"{name}: {exc}\n{bound}") from None
            conn.execute("DEALLOCATE kanban_check")


@needs_pg
def test_the_postgres_store_runs_sqlite_text_as_it_is(schemas):
    """No translator behind the store: SQLite's placeholders reach the server as written."""
    from kanban.store.postgres import open_board

    db = open_board(with_path(schemas()), create=True)
    try:
        for sqlite_text, params, says in (("SELECT id FROM tasks WHERE id = ?", (1,), "placeholder"),
                                          ("SELECT id FROM tasks INDEXED BY tasks_claim", (), "syntax")):
            with pytest.raises(KanbanError) as failed:
                db.read(lambda text=sqlite_text, params=params: db.scalar(text, params))
            assert says in failed.value.extra["detail"], failed.value.extra
        assert db.read(lambda: db.scalar(db.sql("task_exists"), (1,))) is None
    finally:
        db.close()


@needs_pg
def test_a_postgres_integrity_check_checks_every_index_with_amcheck(schemas):
    """With the amcheck extension in the database, doctor's integrity runs bt_index_check
    on every B-tree index of the board (counted by the server's function statistics)."""
    from kanban.store.postgres import open_board

    schema = schemas()
    url = with_path(schema) + "%20-ctrack_functions%3Dall"
    db = open_board(url, create=True)
    try:
        pg_sql(f"CREATE EXTENSION IF NOT EXISTS amcheck SCHEMA {schema}")
        indexes = db.read(lambda: db.scalar(
            "SELECT count(*) FROM pg_class c JOIN pg_am a ON a.oid = c.relam"
            " WHERE c.relnamespace = current_schema()::regnamespace AND a.amname = 'btree'"))

        def check():
            return db.integrity(), db.rows("SELECT funcname, calls FROM pg_stat_xact_user_functions")
        integrity, calls = db.read(check)
        assert integrity == ["ok"]
        assert indexes > 10 and {"funcname": "bt_index_check", "calls": indexes} in calls, calls
        # a counter behind its table's ids is named
        db.write(lambda: db.execute("UPDATE counters SET value = -1 WHERE name = 'events'"))
        db.write(lambda: db.execute("INSERT INTO events(id, kind, at) VALUES (1, 'created', 0)"))
        assert db.read(db.integrity) == ["the id counter of events is behind its ids"]
    finally:
        db.close()
