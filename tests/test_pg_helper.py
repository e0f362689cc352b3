"""The Postgres helper (lib/kanban/store/helper.py): CLI calls on a server board go
through one per-user process that keeps the driver imported and sessions open.  The
contract is the same either way; a killed helper loses nothing and holds no lease.
Each test gives the helper a folder of its own (XDG_RUNTIME_DIR).  Needs KANBAN_TEST_PG."""
import json
import os
import signal
import stat
import subprocess
import time
import uuid

import pytest
from conftest import KANBAN, run

from kanban.store import helper as pg_helper

SERVER = os.environ.get("KANBAN_TEST_PG", "")
pytestmark = pytest.mark.skipif(not SERVER, reason="KANBAN_TEST_PG is not set: name a PostgreSQL server "
                                "(e.g. KANBAN_TEST_PG=postgresql://postgres@127.0.0.1:5432/test)")
T0 = "2030-01-01T00:00:00Z"


def server_sql(sql):
    from kanban.store.postgres import connect

    with connect(SERVER) as conn:
        conn.execute(sql)


@pytest.fixture
def board(tmp_path):
    schema = "k_" + uuid.uuid4().hex[:12]
    url = SERVER + ("&" if "?" in SERVER else "?") + f"options=-csearch_path%3D{schema}"
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {"KANBAN_DB": url, "XDG_RUNTIME_DIR": runtime, "KANBAN_PG_HELPER_IDLE": "20s"}

    def kb(*args, **extra):
        return run(*args, env=dict(env, **extra.pop("env", {})), **extra)
    kb.env, kb.url, kb.runtime = env, url, runtime
    assert kb("init").rc == 0
    yield kb
    pg_helper.stop(runtime)
    server_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def pid(runtime):
    return pg_helper.serving(runtime)


def wait_for_helper(kb):
    for _ in range(200):
        sockets = list((kb.runtime / "kanban").glob("pg-*.sock"))
        if sockets and pid(kb.runtime):
            return sockets[0]
        time.sleep(0.05)
    raise AssertionError("no helper started")


def alive(process_id):
    try:
        os.kill(process_id, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_first_call_starts_a_private_helper_and_later_calls_use_it(board):
    sock = wait_for_helper(board)
    folder = sock.parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert "through the kanban helper" in board("doctor").json["driver"]
    assert "through the kanban helper" not in board("doctor", env={"KANBAN_PG_HELPER": "0"}).json["driver"]


def test_the_same_answers_with_and_without_the_helper(board, tmp_path):
    wait_for_helper(board)
    script = [("create", "a"), ("create", "b", "--depends-on", "TASK-1"), ("claim", "--agent", "w1"),
              ("complete", "TASK-1", "--token", "1", "--agent", "w1"), ("claim", "TASK-1", "--agent", "w2"),
              ("show", "TASK-2"), ("list",), ("search", "b"), ("stats",), ("event", "list")]
    other = "k_" + uuid.uuid4().hex[:12]
    direct_url = SERVER + ("&" if "?" in SERVER else "?") + f"options=-csearch_path%3D{other}"
    try:
        direct = {"KANBAN_DB": direct_url, "KANBAN_PG_HELPER": "0", "KANBAN_NOW": T0}
        assert run("init", env=direct).rc == 0
        for args in script:
            via, plain = board(*args, env={"KANBAN_NOW": T0}), run(*args, env=direct)
            assert via.rc == plain.rc, (args, via, plain)
            if via.rc == 0:
                assert json.loads(via.out) == json.loads(plain.out), args
            else:
                assert {k: v for k, v in via.error.items() if k not in ("db", "detail")} == \
                    {k: v for k, v in plain.error.items() if k not in ("db", "detail")}, args
    finally:
        server_sql(f"DROP SCHEMA IF EXISTS {other} CASCADE")


def test_a_killed_helper_loses_nothing_and_holds_no_lease(board):
    wait_for_helper(board)
    assert board("create", "kept").rc == 0
    claim = board("claim", "--agent", "w1").json
    os.kill(pid(board.runtime), signal.SIGKILL)
    # the next calls go directly (and start a new helper): everything committed is there
    listed = board("list").json["tasks"]
    assert [t["title"] for t in listed] == ["kept"] and listed[0]["claimed_by"] == "w1"
    done = board("complete", claim["id"], "--token", claim["lease_token"], "--agent", "w1")
    assert done.rc == 0 and done.json["status"] == "done", done


def test_a_waiting_claim_outlives_a_killed_helper(board):
    wait_for_helper(board)
    waiter = subprocess.Popen([str(KANBAN), "claim", "--wait", "60s", "--agent", "w1"],
                              env=dict(os.environ, **{k: str(v) for k, v in board.env.items()}),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        os.kill(pid(board.runtime), signal.SIGKILL)
        time.sleep(0.5)
        assert waiter.poll() is None, waiter.communicate()
        assert board("create", "late work").rc == 0
        out, err = waiter.communicate(timeout=30)
        assert waiter.returncode == 0, err
        assert json.loads(out)["title"] == "late work"
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()


def test_the_helper_leaves_when_idle(board):
    wait_for_helper(board)
    helper_pid = pid(board.runtime)
    os.kill(helper_pid, signal.SIGTERM)
    for _ in range(100):
        if not alive(helper_pid):
            break
        time.sleep(0.05)
    board("list", env={"KANBAN_PG_HELPER_IDLE": "2s"})  # starts a helper that leaves after 2 s
    wait_for_helper(board)
    second = pid(board.runtime)
    assert second != helper_pid
    board("list")
    for _ in range(150):
        if not alive(second):
            break
        time.sleep(0.1)
    assert not alive(second), "the helper stayed after being idle"
    assert not list((board.runtime / "kanban").glob("pg-*.sock")), "its socket stayed"


def test_another_users_folder_is_never_used(board, tmp_path):
    runtime = tmp_path / "open"
    (runtime / "kanban").mkdir(parents=True)
    (runtime / "kanban").chmod(0o777)
    res = board("list", env={"XDG_RUNTIME_DIR": runtime})
    assert res.rc == 0
    time.sleep(0.5)
    assert list((runtime / "kanban").iterdir()) == [], "no helper in a folder others can write"
