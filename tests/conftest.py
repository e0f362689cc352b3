"""Shared fixtures: a scratch board per test, and a runner for the real CLI.

Tests read the board through kanban itself (the CLI or kanban.Board), never through
the stdlib sqlite3 module in the same process: two copies of SQLite in one process
on the same file give stale reads.
"""
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KANBAN = ROOT / "bin" / "kanban"
sys.path.insert(0, str(ROOT / "lib"))
T0 = 1_900_000_000  # 2030-03-17T17:46:40Z: the board clock where a test moves time
# the closed list of error codes, as SPEC §3 gives it (not read from the code under test)
CODES = {"usage", "invalid", "not_found", "conflict", "lease_lost", "forbidden", "cycle", "busy",
         "hook_rejected", "db_error", "internal"}


# -- both backends ------------------------------------------------------------------
# A test that runs on SQLite and on PostgreSQL takes `backends()` as its fixture's params;
# its PostgreSQL boards each live in a schema of their own on KANBAN_TEST_PG.
PG_SERVER = os.environ.get("KANBAN_TEST_PG", "")
# what kanban prints for people is fitted to COLUMNS and LINES when they are set: the
# suite's answers must not depend on the terminal (or test runner: pytest-xdist's workers
# set COLUMNS=80) it was started from; a test that wants a width says so
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


def backends():
    """pytest params: sqlite, and postgres (skipped, saying why, without KANBAN_TEST_PG)."""
    return [pytest.param("sqlite", id="sqlite"),
            pytest.param("postgres", id="postgres", marks=pytest.mark.skipif(
                not PG_SERVER, reason="KANBAN_TEST_PG is not set: name a PostgreSQL server to test the"
                " Postgres backend"))]


def new_pg_schema():
    """A new, empty schema on KANBAN_TEST_PG: (its name, the board location that uses it)."""
    import uuid

    from kanban.store.postgres import connect

    schema = "k_" + uuid.uuid4().hex[:12]
    with connect(PG_SERVER) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return schema, PG_SERVER + ("&" if "?" in PG_SERVER else "?") + f"options=-csearch_path%3D{schema}"


def drop_pg_schemas(*schemas):
    from kanban.store.postgres import connect

    with connect(PG_SERVER) as conn:
        for schema in schemas:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def schema_board(path, version):
    """A board file as kanban `version` made it (its first `version` migrations, WAL), empty:
    the open apsw connection to it.  Opening it with Board migrates it to the current schema."""
    import apsw

    from kanban.store.sqlite import MIGRATIONS, run_migration

    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL")
    with conn:
        for step in MIGRATIONS[:version]:
            run_migration(conn, step)
        conn.execute(f"PRAGMA user_version={version}")
    return conn


def explain_programs(conn, sql):
    """The opcodes of each program EXPLAIN lists for `sql`: the statement's own first,
    then each trigger program it codes, each numbered from 0 again."""
    programs, last = [[]], -1
    for row in conn.execute("EXPLAIN " + sql):
        if row[0] < last:
            programs.append([])
        programs[-1].append(row[1])
        last = row[0]
    return programs


def at(seconds):
    return {"KANBAN_NOW": T0 + seconds}


def assert_error(res, code):
    assert res.rc == 2, res
    assert res.out == "", res
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert len(lines) == 1, res
    doc = json.loads(lines[0])
    assert doc["code"] == code and doc["code"] in CODES, res
    assert isinstance(doc["error"], str) and doc["error"], res
    assert doc["retryable"] is (code == "busy"), res
    return doc


class Result:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    @property
    def json(self):
        return json.loads(self.out)

    @property
    def error(self):
        lines = [line for line in self.err.splitlines() if line.startswith("{")]
        assert lines, f"no JSON error on stderr: {self.err!r}"
        return json.loads(lines[-1])

    def __repr__(self):
        return f"Result(rc={self.rc}, out={self.out!r}, err={self.err!r})"


def exec_path_with(folder, verb, text):
    """A folder for KANBAN_EXEC_PATH holding one executable command file, kanban-VERB."""
    folder.mkdir(exist_ok=True)
    command = folder / f"kanban-{verb}"
    command.write_text(text)
    command.chmod(0o755)
    return folder


@contextlib.contextmanager
def reaped(proc):
    """`with reaped(proc):` a process the block leaves running (a failed test) is killed."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def default_sigint():
    """Popen's preexec_fn for a test that sends SIGINT: the child gets SIGINT's default
    action, as a terminal's foreground job has, whatever the suite inherited (a job
    started in the background by a shell runs with SIGINT ignored, and so would its
    children: Python then never raises KeyboardInterrupt)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run(*args, env=None, input=None, cwd=None, timeout=60):
    """Run `kanban ARGS...`; env entries of None are removed from the environment."""
    full = dict(os.environ)
    for key in [k for k in full if k.startswith("KANBAN_")]:
        del full[key]
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = str(value)
    proc = subprocess.run([str(KANBAN), *map(str, args)], capture_output=True, text=True, env=full,
                          input=input, cwd=cwd, timeout=timeout)
    return Result(proc)


@pytest.fixture(scope="session", autouse=True)
def _private_runtime(tmp_path_factory):
    """The suite's own XDG_RUNTIME_DIR: a Postgres test's per-user helper listens there,
    not in the user's folder, and every helper still serving at the end is stopped (the pid
    its socket's lock file names: store/helper.py `stop`) instead of idling on for five
    minutes after the suite."""
    folder = tmp_path_factory.mktemp("runtime")
    folder.chmod(0o700)
    before = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("XDG_RUNTIME_DIR", None)
    else:
        os.environ["XDG_RUNTIME_DIR"] = before
    from kanban.store import helper

    helper.stop(folder)


@pytest.fixture
def board_path(tmp_path):
    path = tmp_path / ".kanban" / "board.db"
    res = run("init", env={"KANBAN_DB": path})
    assert res.rc == 0, res
    return path


@pytest.fixture
def kb(board_path):
    """kb('claim', agent='w1', env={...}) -> Result, against this test's board."""
    def runner(*args, agent=None, env=None, input=None, cwd=None, timeout=60):
        merged = {"KANBAN_DB": board_path}
        if agent is not None:
            merged["KANBAN_AGENT"] = agent
        merged.update(env or {})
        return run(*args, env=merged, input=input, cwd=cwd, timeout=timeout)
    runner.path = board_path
    return runner


@pytest.fixture
def board(board_path):
    from kanban import Board

    with Board(str(board_path)) as b:
        yield b
