"""A Postgres board across a server restart: on a throwaway cluster of the tests' own
(tests/pgcluster.py), which they stop, crash and start again.

A waiting `claim --wait` rides out a restart (through the helper and directly), a
completion acknowledged before a crash restart is there after it, and a call made
while the server is down fails as the contract says: `db_error`, exit 2.
Runs where PostgreSQL's initdb and pg_ctl are installed, with or without KANBAN_TEST_PG.
"""
import json
import os
import subprocess
import time

import pgcluster
import pytest
from conftest import KANBAN, assert_error, reaped, run

from kanban import pgbouncer
from kanban.store import helper as pg_helper

BIN, WHY = pgcluster.find()
pytestmark = pytest.mark.skipif(BIN is None, reason=f"no PostgreSQL cluster of the tests' own: {WHY}")
pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")


@pytest.fixture(scope="module")
def cluster():
    with pgcluster.running() as owned:
        yield owned


@pytest.fixture
def board(cluster, tmp_path, request):
    """A board in a schema of its own; the helper in a folder of the test's."""
    schema = "r_" + request.node.name.split("[")[-1].strip("]").replace("-", "_")[:20] + f"_{os.getpid()}"
    url = f"{cluster.url}?options=-csearch_path%3D{schema}"
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {"KANBAN_DB": url, "XDG_RUNTIME_DIR": runtime, "KANBAN_PG_HELPER_IDLE": "20s"}

    def kb(*args, **extra):
        return run(*args, env=dict(env, **extra.pop("env", {})), **extra)
    kb.env = env
    assert kb("init").rc == 0
    yield kb
    pg_helper.stop(runtime)


def cli_env(extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.mark.parametrize("helper, mode", [("1", "fast"), ("0", "immediate")], ids=["helper-fast", "direct-crash"])
def test_claim_wait_rides_out_a_server_restart(cluster, board, helper, mode):
    """The server ends the waiter's LISTEN session and is gone for a while; the waiter
    reconnects and still gets the task created after the server is back."""
    env = cli_env(dict(board.env, KANBAN_PG_HELPER=helper, KANBAN_AGENT="waiter"))
    assert board("list", env={"KANBAN_PG_HELPER": helper}).rc == 0  # the helper is up, when there is one
    waiter = subprocess.Popen([str(KANBAN), "claim", "--wait", "60s", "--lease", "1m"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with reaped(waiter):
        time.sleep(1.0)  # listening by now
        cluster.restart(mode, down=1.5)
        assert waiter.poll() is None, waiter.communicate()
        created = board("create", "after the restart")
        assert created.rc == 0, created
        out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0, err
    claimed = json.loads(out)
    assert claimed["id"] == created.json["id"] and claimed["claimed_by"] == "waiter"


@pytest.mark.skipif(not pgbouncer.find(), reason="pgbouncer is not installed (Debian: apt-get install pgbouncer)")
def test_claim_wait_through_pgbouncer_rides_out_a_server_restart(cluster, board):
    """Through PgBouncer the waiter polls.  After a failed login to the server the pooler
    refuses new clients ('server login has been failing') for server_login_retry (15 s
    by default): kept short, a call made once the server is back gets through, and the
    waiter gets the task it creates."""
    schema = board.env["KANBAN_DB"].rsplit("%3D", 1)[1]
    with pgbouncer.running(cluster.url, schema, pool=2) as pooled:
        env = cli_env({"KANBAN_DB": pooled, "XDG_RUNTIME_DIR": board.env["XDG_RUNTIME_DIR"],
                       "KANBAN_AGENT": "waiter", "KANBAN_BUSY_TIMEOUT": "5s"})
        waiter = subprocess.Popen([str(KANBAN), "claim", "--wait", "60s", "--lease", "1m"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with reaped(waiter):
            time.sleep(1.0)
            cluster.restart("fast", down=1.5)  # the waiter's polls make the pooler's logins fail meanwhile
            time.sleep(2.0)
            assert waiter.poll() is None, waiter.communicate()
            created = board("create", "after the restart", env={"KANBAN_DB": pooled})  # a new client
            assert created.rc == 0, created
            out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0, err
    assert json.loads(out)["id"] == created.json["id"]


def test_a_completion_acknowledged_survives_a_crash_restart(cluster, board):
    task = board("create", "durable").json["id"]
    token = board("claim", task, "--agent", "w", "--lease", "1m").json["lease_token"]
    assert board("complete", task, "--token", token, "--agent", "w").rc == 0
    cluster.restart("immediate")  # no shutdown checkpoint: what was acknowledged is in the WAL
    shown = board("show", task)
    assert shown.rc == 0, shown
    assert shown.json["status"] == "done"
    assert [e["kind"] for e in shown.json["events"]][-1] == "completed"


def test_a_call_while_the_server_is_down_fails_as_db_error(cluster, board):
    task = board("create", "waits for the server").json["id"]
    cluster.stop_server("fast")
    try:
        for helper in ("1", "0"):
            down = board("claim", task, "--agent", "w", env={"KANBAN_PG_HELPER": helper})
            doc = assert_error(down, "db_error")
            assert "cannot reach" in doc["error"], doc
    finally:
        cluster.start_server()
    again = board("claim", task, "--agent", "w")
    assert again.rc == 0 and again.json["status"] == "in_progress", again


def test_a_work_loop_started_while_the_server_is_down_waits_for_it(cluster, board):
    """`kanban work` is a loop that rides out a restart; one that starts inside it (a
    supervisor restarting its agents) waits for the server instead of exiting 2."""
    task = board("create", "worked after the restart").json["id"]
    env = cli_env(dict(board.env, KANBAN_PG_HELPER="0", KANBAN_BUSY_TIMEOUT="30s"))
    cluster.stop_server("fast")
    try:
        loop = subprocess.Popen([str(KANBAN), "work", "--agent", "w", "--once", "--", "true"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with reaped(loop):
            time.sleep(1.5)
            assert loop.poll() is None, loop.communicate()
            cluster.start_server()
            out, err = loop.communicate(timeout=60)
    finally:
        if cluster.postmaster() is None:
            cluster.start_server()
    assert loop.returncode == 0, err
    assert "cannot reach the PostgreSQL server: trying again" in err
    assert board("show", task).json["status"] == "done"


@pytest.mark.skipif(not pgbouncer.find(), reason="pgbouncer is not installed (Debian: apt-get install pgbouncer)")
def test_whether_a_commit_stood_is_asked_again_through_a_pooler_while_the_server_comes_back(cluster, board,
                                                                                           monkeypatch):
    """A session lost during its COMMIT asks a new one whether the transaction committed
    (txid_status).  Through PgBouncer the new session is the pooler's, made at once even
    while the server is still down; the question then fails ('server login has been
    failing') and must be asked again until KANBAN_BUSY_TIMEOUT, not end the command with
    db_error: a soak's `kanban review` loop exited so after a server restart."""
    import threading

    from kanban.store.postgres import PgStore

    schema = board.env["KANBAN_DB"].rsplit("%3D", 1)[1]
    monkeypatch.setenv("KANBAN_PG_HELPER", "0")
    monkeypatch.setenv("KANBAN_BUSY_TIMEOUT", "20s")
    with pgbouncer.running(cluster.url, schema, pool=2) as pooled:
        store = PgStore(pooled)
        try:
            xid = store.write(lambda: store.conn.execute("SELECT txid_current()").fetchone()[0])
            cluster.stop_server("fast")
            back = threading.Timer(3.0, cluster.start_server)
            back.start()
            try:
                store._reconnect(time.monotonic() + 20)  # the pooler lets a client in, server or not
                # another client's query makes the pooler try the server, and fail: for
                # server_login_retry it then fails every query that needs a server at once
                other = threading.Thread(target=_query_through, args=(pooled,), daemon=True)
                other.start()
                time.sleep(0.5)
                assert store._committed(xid, time.monotonic() + 20) is True
            finally:
                back.join()
        finally:
            store.close()
            if cluster.postmaster() is None:
                cluster.start_server()


def _query_through(url):
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        pass
