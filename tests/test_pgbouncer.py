"""A Postgres board through PgBouncer in transaction mode: every verb answers as it does
directly, `claim --wait` waits by polling (LISTEN needs a session of its own), and a
crowd of agents larger than the server connections the pooler may use claims without
a double claim.  Each test starts its own PgBouncer (the Debian `pgbouncer` package) on
a free loopback port, with a pool of 4 server connections; it needs KANBAN_TEST_PG."""
import json
import os
import subprocess
import threading
import time
import uuid

import pytest
from conftest import KANBAN, assert_error, run

from kanban import pgbouncer
from kanban.store import helper as pg_helper

SERVER = os.environ.get("KANBAN_TEST_PG", "")
PGBOUNCER = pgbouncer.find()
pytestmark = [
    pytest.mark.skipif(not SERVER, reason="KANBAN_TEST_PG is not set: name a PostgreSQL server "
                       "(e.g. KANBAN_TEST_PG=postgresql://postgres@127.0.0.1:5432/test)"),
    pytest.mark.skipif(not PGBOUNCER, reason="pgbouncer is not installed (Debian: apt-get install pgbouncer; "
                       ".ci/run installs it when root)"),
]
T0 = "2030-01-01T00:00:00Z"
POOL = 4  # server connections the pooler may open: far fewer than the clients below


def server_sql(sql):
    from kanban.store.postgres import connect

    with connect(SERVER) as conn:
        conn.execute(sql)


@pytest.fixture
def bouncer():
    """A PgBouncer in transaction mode in front of a fresh schema: the board's URL."""
    schema = "k_" + uuid.uuid4().hex[:12]
    server_sql(f"CREATE SCHEMA {schema}")
    try:
        with pgbouncer.started(SERVER, schema, pool=POOL) as bouncer:
            bouncer.schema = schema
            yield bouncer
    finally:
        server_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def runtime(tmp_path):
    """A folder of its own for the per-user helper (XDG_RUNTIME_DIR); the helper a test
    started is stopped after it."""
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    yield folder
    pg_helper.stop(folder)


def wait_for_helper(runtime):
    for _ in range(200):
        if list((runtime / "kanban").glob("pg-*.sock")) and pg_helper.serving(runtime):
            return
        time.sleep(0.05)
    raise AssertionError("no helper started")


def direct_board():
    schema = "k_" + uuid.uuid4().hex[:12]
    return schema, SERVER + ("&" if "?" in SERVER else "?") + f"options=-csearch_path%3D{schema}"


SCRIPT = [
    ("init",), ("create", "design", "--body", "the searchable body"), ("create", "build", "--depends-on", "TASK-1"),
    ("create", "goal", "--kind", "goal"), ("set", "TASK-2", "--goal", "TASK-3"), ("claim", "--agent", "w1"),
    ("lease", "renew", "TASK-1", "--token", "1", "--agent", "w1"),
    ("event", "log", "TASK-1", "half way", "--token", "1", "--agent", "w1"),
    ("complete", "TASK-1", "--token", "1", "--agent", "w1"), ("claim", "--agent", "w2"),
    ("block", "TASK-2", "waiting", "--token", "2", "--agent", "w2"), ("unblock", "TASK-2"),
    ("claim", "TASK-2", "--agent", "w2"), ("complete", "TASK-2", "--token", "3", "--review", "--agent", "w2"),
    ("claim", "--for-review", "--agent", "r1"), ("approve", "TASK-2", "--agent", "r1"),
    ("comment", "TASK-1", "well done"), ("dep", "list", "TASK-2"), ("show", "TASK-3"), ("list",),
    ("search", "searchable"), ("stats",), ("event", "list"), ("lease", "reap"), ("prune", "--vacuum"),
    ("create", "x"), ("cancel", "TASK-4"), ("reopen", "TASK-4"), ("limit", "list"),
]


def answer(res):
    if res.rc == 2:
        return 2, {k: v for k, v in res.error.items() if k not in ("detail", "db")}
    docs = [json.loads(line) for line in res.out.splitlines() if line.strip()]
    for doc in docs:
        if isinstance(doc, dict):
            doc.pop("db", None)
    return res.rc, docs


@pytest.mark.parametrize("helper", ["1", "0"])
def test_every_verb_answers_through_pgbouncer_as_it_does_directly(bouncer, helper, runtime, tmp_path):
    schema, direct = direct_board()
    env = {"KANBAN_NOW": T0, "KANBAN_PG_HELPER": helper, "XDG_RUNTIME_DIR": runtime}
    try:
        for args in SCRIPT:
            pooled = run(*args, env=dict(env, KANBAN_DB=bouncer.url))
            plain = run(*args, env=dict(env, KANBAN_DB=direct))
            assert answer(pooled) == answer(plain), (args, pooled, plain)
        doctor = run("doctor", env=dict(env, KANBAN_DB=bouncer.url))
        assert doctor.rc == 0 and doctor.json["ok"] is True, doctor
        exported = run("export", env=dict(env, KANBAN_DB=bouncer.url))
        assert exported.out == run("export", env=dict(env, KANBAN_DB=direct)).out
        backup = run("backup", tmp_path / "copy.db", env=dict(env, KANBAN_DB=bouncer.url))
        assert backup.rc == 0 and backup.json["integrity"] == "ok", backup
    finally:
        server_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.mark.parametrize("helper", ["1", "0"])
def test_a_cli_call_through_pgbouncer_connects_once(bouncer, helper, runtime):
    """One client connection per call (none when the helper has a session to lend),
    and none refused: kanban sends PgBouncer no startup option to refuse."""
    env = {"KANBAN_DB": bouncer.url, "KANBAN_PG_HELPER": helper, "XDG_RUNTIME_DIR": runtime}
    assert run("init", env=env).rc == 0
    if helper == "1":
        wait_for_helper(runtime)
    calls = [("create", "a"), ("claim", "--agent", "w1"), ("list",), ("show", "TASK-1"), ("stats",),
             ("complete", "TASK-1", "--token", "1", "--agent", "w1")]
    before = bouncer.logins()
    for args in calls:
        res = run(*args, env=env)
        assert res.rc == 0, (args, res)
    made = bouncer.logins() - before
    assert bouncer.refusals() == 0
    if helper == "0":
        assert made == len(calls)
    else:  # the helper connects for a call, or lends a session a call before it gave back
        assert 1 <= made <= len(calls)


@pytest.mark.parametrize("helper", ["1", "0"])
def test_a_session_through_pgbouncer_is_known_as_pooled_and_waits_without_listen(bouncer, helper, runtime,
                                                                                  monkeypatch):
    from kanban import Board
    from kanban.board import init
    monkeypatch.setenv("KANBAN_PG_HELPER", helper)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    schema, direct = direct_board()
    try:
        init(bouncer.url)
        init(direct)
        if helper == "1":
            wait_for_helper(runtime)
        for url, pooled in ((bouncer.url, True), (direct, False)):
            with Board(url) as board:
                assert isinstance(board.db.conn, pg_helper.Remote) is (helper == "1")
                assert board.db.pooled is pooled, url
                board.wait_for_work(0.2)
                assert board.db._listening is not pooled  # LISTEN only on a session of its own
    finally:
        server_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.mark.parametrize("helper", ["1", "0"])
def test_a_startup_option_through_pgbouncer_is_a_db_error_that_says_where_the_schema_goes(bouncer, helper, runtime):
    env = {"KANBAN_DB": bouncer.url + "?options=-csearch_path%3Delsewhere", "KANBAN_PG_HELPER": helper,
           "XDG_RUNTIME_DIR": runtime}
    for _ in range(2):  # the first call starts the helper and connects directly; the second goes through it
        doc = assert_error(run("list", env=env), "db_error")
        assert "connect_query" in doc["error"], doc
        if helper == "1":
            wait_for_helper(runtime)


def test_claim_wait_through_pgbouncer_polls(bouncer, runtime):
    env = dict(os.environ, KANBAN_DB=bouncer.url, XDG_RUNTIME_DIR=str(runtime))
    mine = {"KANBAN_DB": bouncer.url, "XDG_RUNTIME_DIR": runtime}
    assert run("init", env=mine).rc == 0
    waiter = subprocess.Popen([str(KANBAN), "claim", "--wait", "30s", "--agent", "w1"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        assert waiter.poll() is None
        started = time.monotonic()
        assert run("create", "late", env=mine).rc == 0
        out, err = waiter.communicate(timeout=20)
        assert waiter.returncode == 0, err
        assert json.loads(out)["title"] == "late"
        assert time.monotonic() - started < 5, "the waiter should find the task within a few polls"
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()


def test_a_crowd_larger_than_the_pool_claims_each_task_once(bouncer, runtime):
    agents, tasks = 10, 24
    url = bouncer.url
    mine = {"KANBAN_DB": url, "XDG_RUNTIME_DIR": runtime}
    assert run("init", env=mine).rc == 0
    lines = "".join(json.dumps({"title": f"t{n}"}) + "\n" for n in range(tasks))
    assert run("create", "--stdin", env=mine, input=lines).rc == 0
    script = ("for i in $(seq 1 20); do "
              "out=$(kanban claim --agent \"$AGENT\") || exit 3; "
              "[ \"$out\" = '{}' ] && break; "
              "id=$(printf '%s' \"$out\" | python3 -c 'import json,sys; d=json.load(sys.stdin); "
              "print(d[\"id\"], d[\"lease_token\"])'); "
              "set -- $id; kanban complete \"$1\" --token \"$2\" --agent \"$AGENT\" >/dev/null || exit 4; done")
    env = dict(os.environ, KANBAN_DB=url, XDG_RUNTIME_DIR=str(runtime),
               PATH=f"{KANBAN.parent}:{os.environ['PATH']}", KANBAN_BUSY_TIMEOUT="60s")
    crowd = [subprocess.Popen(["sh", "-c", script], env=dict(env, AGENT=f"a{n}"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in range(agents)]
    results = [(p.wait(300), p.stderr.read()) for p in crowd]
    assert all(rc == 0 for rc, _ in results), results
    listed = run("list", "--status", "done", "--limit", "1000", env=mine).json["tasks"]
    assert len(listed) == tasks
    events = run("event", "list", "--kind", "claimed", "--limit", "1000", env=mine).json["events"]
    claimed = [e["task"] for e in events]
    assert len(claimed) == len(set(claimed)) == tasks, "a task was claimed twice"
    tokens = [e["data"]["token"] for e in events]
    assert len(set(tokens)) == len(tokens)


def test_64_agents_through_a_pool_of_4_finish(bouncer, monkeypatch):
    """64 agents, each call on a new session as a CLI call makes one, through 4 server
    connections: every task done within the time limit, each claimed once.  (Hundreds of
    sessions make PgBouncer write hundreds of log lines: a harness that piped them and
    never read the pipe stalled PgBouncer, and every agent with it, past 64 KiB.)"""
    from kanban import Board, KanbanError
    from kanban.board import init

    monkeypatch.setenv("KANBAN_PG_HELPER", "0")
    monkeypatch.setenv("KANBAN_BUSY_TIMEOUT", "60s")
    agents, tasks = 64, 256
    init(bouncer.url)
    with Board(bouncer.url) as board:
        board.create_many([{"title": f"t{n}"} for n in range(tasks)], actor="test")
    failures, done = [], []

    def agent(name):
        try:
            while True:
                with Board(bouncer.url) as board:
                    claim = board.claim(name)
                if not claim:
                    return
                with Board(bouncer.url) as board:
                    board.complete(claim["id"], claim["lease_token"], agent=name)
                done.append(claim["id"])
        except KanbanError as exc:
            failures.append((name, exc.to_dict()))

    crowd = [threading.Thread(target=agent, args=(f"a{n}",), daemon=True) for n in range(agents)]
    for thread in crowd:
        thread.start()
    deadline = time.monotonic() + 180
    for thread in crowd:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in crowd), \
        f"stalled: {len(done)} of {tasks} tasks done after 180 s"
    assert failures == []
    assert len(done) == len(set(done)) == tasks
    assert bouncer.logins() > 2 * tasks  # the sessions really went through PgBouncer
