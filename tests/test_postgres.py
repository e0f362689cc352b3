"""KANBAN_DB=postgresql://...: every verb, the same JSON as SQLite (SPEC §9).

The scenarios run through the real CLI against a SQLite board and a Postgres board
side by side and compare the answers (with KANBAN_NOW fixed, they are identical but
for the board's own name).  Each test gets its own Postgres schema, named in the URL
(`?options=-csearch_path=k_<random>`), dropped afterwards.  The tests that need a
server are skipped unless KANBAN_TEST_PG names one, e.g.
KANBAN_TEST_PG=postgresql://postgres@127.0.0.1:5432/test.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import KANBAN, ROOT, run

from kanban.store import SCHEMA_VERSION

SERVER = os.environ.get("KANBAN_TEST_PG", "")
needs_pg = pytest.mark.skipif(
    not SERVER, reason="KANBAN_TEST_PG is not set: name a PostgreSQL server to test the Postgres backend "
                       "(e.g. KANBAN_TEST_PG=postgresql://postgres@127.0.0.1:5432/test)")
T0 = "2030-01-01T00:00:00Z"


def schema_url(schema):
    return SERVER + ("&" if "?" in SERVER else "?") + f"options=-csearch_path%3D{schema}"


def server_sql(sql, url=None):
    """Run `sql` (one statement or several) on the test server, as kanban connects to it."""
    from kanban.store.postgres import connect

    with connect(url or SERVER) as conn:
        conn.execute(sql)


@pytest.fixture
def pg_url():
    """A URL naming a fresh, empty schema on the test server; dropped afterwards."""
    schema = "k_" + uuid.uuid4().hex[:12]
    server_sql(f"CREATE SCHEMA {schema}")
    yield schema_url(schema)
    server_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def runner(db):
    def call(*args, agent=None, env=None, input=None, timeout=60):
        merged = {"KANBAN_DB": db, "KANBAN_NOW": T0}
        if agent is not None:
            merged["KANBAN_AGENT"] = agent
        merged.update(env or {})
        return run(*args, env=merged, input=input, timeout=timeout)
    call.db = db
    return call


@pytest.fixture
def pg(pg_url):
    """kb() for a Postgres board: pg('claim', agent='w1') -> Result."""
    call = runner(pg_url)
    res = call("init")
    assert res.rc == 0, res
    return call


def _answer(res, tokens=None):
    """What must agree between the two backends: exit status and JSON (or error).  With
    `tokens` ({SQLite's token: Postgres's}), the fencing tokens in it are Postgres's."""
    if res.rc == 2:
        error = res.error
        answer = 2, {k: v for k, v in error.items() if k not in ("detail", "db")}
    else:
        body = [json.loads(line) for line in res.out.splitlines() if line.strip()]
        for doc in body:
            if isinstance(doc, dict):
                doc.pop("db", None)
                doc.pop("gitignore", None)  # a file board's .kanban/.gitignore: a server board has no folder
        answer = res.rc, body
    return answer if tokens is None else _as_tokens(answer, tokens)


def _as_tokens(value, tokens):
    """`value` with every fencing token (a "lease_token" or "token" field, "token N" in an
    error) translated by `tokens`."""
    if isinstance(value, dict):
        return {key: tokens.get(item, item) if key in ("lease_token", "token") and isinstance(item, int)
                else _as_tokens(item, tokens) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_as_tokens(item, tokens) for item in value)
    if isinstance(value, str):
        return re.sub(r"\btoken (\d+)", lambda m: f"token {tokens.get(int(m.group(1)), m.group(1))}", value)
    return value


def _claimed_tokens(value):
    """The lease_token of every claim in an answer, in order."""
    if isinstance(value, dict):
        return [value["lease_token"]] if isinstance(value.get("lease_token"), int) else []
    if isinstance(value, (list, tuple)):
        return [token for item in value for token in _claimed_tokens(item)]
    return []


@pytest.fixture
def both(kb, pg):
    """both('claim', agent='w1') runs the command on SQLite and on Postgres, asserts the
    two answers are the same, and returns the (parsed) answer.

    Fencing tokens are the one thing that differs: PostgreSQL draws them from a sequence
    (1, 2, 3, ...), SQLite from its event ids.  Both must increase claim after claim; the
    answers are compared, and returned, with Postgres's, and a token in the arguments
    (--token T, ID:T) is Postgres's, given to SQLite as its own."""
    to_pg, to_lite = {}, {}

    def lite_args(args):
        out = []
        for index, arg in enumerate(args):
            if index and args[index - 1] == "--token" and arg.isdigit():
                arg = str(to_lite.get(int(arg), arg))
            elif re.fullmatch(r"[^:]+:\d+", arg):
                task, token = arg.rsplit(":", 1)
                arg = f"{task}:{to_lite.get(int(token), token)}"
            out.append(arg)
        return out

    def learn(lite, server):
        for mine, theirs in zip(_claimed_tokens(lite[1]), _claimed_tokens(server[1]), strict=False):
            if theirs in to_lite:
                assert to_lite[theirs] == mine, (mine, theirs)
                continue
            assert all(mine > known for known in to_pg) and all(theirs > known for known in to_lite), \
                f"tokens must increase: sqlite {mine} after {sorted(to_pg)}, postgres {theirs} after {sorted(to_lite)}"
            to_pg[mine], to_lite[theirs] = theirs, mine

    def call(*args, agent=None, env=None, input=None):
        env = dict({"KANBAN_NOW": T0}, **(env or {}))
        lite = kb(*lite_args(args), agent=agent, env=env, input=input)
        server = pg(*args, agent=agent, env=env, input=input)
        if lite.rc != 2 and server.rc != 2:
            learn(_answer(lite), _answer(server))
        assert _answer(lite, to_pg) == _answer(server), f"{args}:\n sqlite:   {lite}\n postgres: {server}"
        rc, body = _answer(server)
        if rc == 2:
            return body
        return body[0] if len(body) == 1 else body
    call.kb, call.pg = kb, pg
    call.lite_token = lambda token: to_lite[token]  # SQLite's token for Postgres's
    call.as_pg = lambda value: _as_tokens(value, to_pg)
    return call


def later(minutes):
    return {"KANBAN_NOW": f"2030-01-01T{minutes // 60:02d}:{minutes % 60:02d}:00Z"}


# -- the same JSON -------------------------------------------------------------------

@needs_pg
def test_create_claim_complete_review_and_events(both):
    first = both("create", "write the parser", "--body", "tokens and a grammar", "--priority", "5",
                 "--project", "core")
    assert first["id"] == "TASK-1" and first["created"] is True
    both("create", "write the lexer", "--priority", "5", "--project", "core", "--review")
    both("create", "docs", "--key", "docs-1", "--not-before", "2030-01-01T01:00:00Z")
    assert both("create", "docs again", "--key", "docs-1")["created"] is False
    both("create", "for ops", "--role", "ops", "--assignee", "ana")
    both("create", "limited", "--max-attempts", "2", "--priority", "-1")
    claimed = both("claim", "--lease", "10m", agent="w1")
    assert claimed["id"] == "TASK-1" and claimed["lease_token"] == 1
    both("claim", "TASK-4", agent="w2")                                   # forbidden: role and assignee
    both("claim", "TASK-4", "--role", "ops", agent="bob")                 # forbidden: assignee
    lexer = both("claim", "TASK-2", "--project", "core", "--lease", "1h", agent="w2")
    both("claim", "TASK-2", agent="w3")                                   # conflict: in progress
    both("event", "log", "TASK-1", "--message", "half way", "--token", "1", agent="w1", env=later(5))
    both("lease", "renew", "TASK-1", "--token", "1", "--lease", "1h", agent="w1", env=later(6))
    both("lease", "renew", "TASK-1", "--token", "99", agent="w1")         # lease_lost
    both("complete", "TASK-1", "--token", "1", "--summary", "parsed", agent="w1", env=later(20))
    both("complete", "TASK-1", "--token", "1", agent="w1")                # lease_lost: gone
    both("complete", "TASK-3", "--token", "1", agent="w1")                # conflict: todo
    both("complete", "TASK-2", "--token", str(lexer["lease_token"]), agent="w2", env=later(21))
    both("claim", "--for-review", agent="w2")                             # {}: w2 held it
    review = both("claim", "--for-review", agent="judge", env=later(22))
    both("approve", "TASK-2", "--token", str(review["lease_token"]), agent="w2")  # forbidden
    both("reject", "TASK-2", "--reason", "needs tests", "--token", str(review["lease_token"]),
         agent="judge", env=later(23))
    again = both("claim", "TASK-2", agent="w2", env=later(24))
    both("complete", "TASK-2", "--token", str(again["lease_token"]), agent="w2", env=later(25))
    review = both("claim", "--for-review", "TASK-2", agent="judge", env=later(26))
    both("approve", "TASK-2", "--token", str(review["lease_token"]), "--comment", "good", agent="judge",
         env=later(27))
    both("claim", "--exit-code", agent="w9")                              # TASK-3 waits for 01:00
    assert both("claim", agent="w9", env=later(61))["id"] == "TASK-3"
    ops = both("claim", "--role", "ops", agent="ana", env=later(62))
    assert ops["id"] == "TASK-4"
    both("lease", "release", "TASK-4", "--token", str(ops["lease_token"]), agent="ana", env=later(63))
    both("show", "TASK-2", env=later(64))
    both("event", "list", "--limit", "1000", env=later(64))
    page = both("event", "list", "--limit", "4")
    both("event", "list", "--since", page["cursor"], "--limit", "4")
    both("event", "list", "--task", "TASK-2", "--kind", "claimed")
    both("event", "list", "--since", "999")
    both("event", "list", "--since", "nope")                              # invalid
    both("list")
    both("list", "--status", "done,in_review", "--project", "core")
    both("list", "--ready", "--limit", "2")
    both("list", "--assignee", "ana")
    both("stats", env=later(70))


@needs_pg
def test_block_unblock_cancel_reopen_set_comment(both):
    for n in range(4):
        both("create", f"task {n}")
    both("block", "TASK-1", "--reason", "waiting for the API")            # a todo task, no token
    both("block", "TASK-1", "--reason", "again")                          # conflict
    claimed = both("claim", agent="w1")
    both("block", "TASK-2", "--reason", "stuck")                          # usage: no agent
    both("block", "TASK-2", "--reason", "stuck", "--token", "999", agent="w1")   # lease_lost
    both("block", "TASK-2", "--reason", "stuck", "--token", str(claimed["lease_token"]), agent="w1")
    both("unblock", "TASK-2", "--reason", "fixed")
    both("unblock", "TASK-2")                                             # conflict
    both("cancel", "TASK-3", "--reason", "not needed")
    both("cancel", "TASK-3")                                              # conflict
    both("reopen", "TASK-3")
    both("reopen", "TASK-4")                                              # conflict
    both("set", "TASK-4", "--title", "renamed", "--priority", "9", "--project", "web", "--review",
         "--not-before", "+10m", "--max-attempts", "3")
    both("set", "TASK-4", "--clear", "project,not-before")
    both("set", "TASK-4", "--priority", "high")                           # invalid
    both("set", "TASK-4")                                                 # usage
    both("comment", "TASK-4", "--message", "looks fine")
    both("comment", "TASK-4", "second thought")
    both("comment", "TASK-404", "--message", "x")                         # not_found
    both("show", "TASK-4")
    both("show", "TASK-999")                                              # not_found
    both("show", "nope")                                                  # invalid
    both("create", "")                                                    # invalid
    both("create", "x", "--priority", "high")                             # invalid
    both("create", "x", "--depends-on", "TASK-404")                       # not_found
    both("claim")                                                         # usage: no agent
    both("list", "--status", "nope")                                      # invalid
    both("event", "list")


@needs_pg
def test_deps_goals_waiting_on_and_cycles(both):
    goal = both("create", "ship v1", "--kind", "goal")
    a = both("create", "a", "--goal", goal["id"])
    b = both("create", "b", "--goal", goal["id"], "--depends-on", a["id"])
    c = both("create", "c", "--depends-on", f"{a['id']},{b['id']}", "--not-before", "2030-01-02T00:00:00Z")
    both("dep", "add", a["id"], c["id"])                                  # cycle
    both("dep", "add", a["id"], goal["id"])                               # cycle: its own goal
    both("create", "d", "--goal", goal["id"], "--depends-on", goal["id"])  # cycle
    both("dep", "add", c["id"], "TASK-404")                               # not_found
    both("dep", "list", c["id"])
    both("dep", "rm", c["id"], b["id"])
    both("dep", "rm", c["id"], b["id"])                                   # not_found
    both("dep", "add", c["id"], b["id"], goal["id"])
    both("show", c["id"])
    both("show", goal["id"])
    both("list", "--goal", goal["id"])
    first = both("claim", agent="w1")
    both("cancel", b["id"], "--reason", "dropped")
    both("show", c["id"])                                                 # a cancelled dep says so
    both("complete", first["id"], "--token", str(first["lease_token"]), agent="w1")
    both("show", goal["id"])                                              # done: a done, b cancelled
    both("create", "late", "--goal", goal["id"])                          # reopens the goal
    both("show", goal["id"])
    both("claim", goal["id"], agent="w1")                                 # conflict: a goal
    both("list", "--ready")
    both("dep", "list", goal["id"])


@needs_pg
def test_stdin_batch_and_batch_verbs(both):
    lines = "\n".join(json.dumps(x) for x in [
        {"title": "epic", "kind": "goal", "key": "epic"},
        {"title": "one", "goal": "epic", "key": "one", "priority": 3},
        {"title": "two", "goal": "epic", "depends_on": ["one"], "key": "two", "review": True},
        {"title": "three", "depends_on": ["two", "one"], "project": "p"},
    ]) + "\n"
    both("create", "--stdin", input=lines)
    both("create", "--stdin", input=lines)                                # the keys win: created false
    both("create", "--stdin", input='{"title": "x", "colour": "red"}\n')  # invalid
    both("create", "--stdin", input='{"title": "x", "depends_on": ["nope"]}\n')  # not_found
    both("create", "--stdin", input='not json\n')                         # invalid
    for n in range(5):
        both("create", f"bulk {n}", "--priority", str(n % 3))
    claims = both("batch", "claim", "3", "--lease", "5m", agent="w1")
    pairs = [f"{c['id']}:{c['lease_token']}" for c in claims]
    both("batch", "complete", pairs[0], "TASK-1:999", agent="w1")         # all or nothing
    both("batch", "complete", *pairs, agent="w1")
    both("batch", "set-priority", "7", "TASK-8", "TASK-9")
    both("batch", "set-project", "ops", "TASK-8", "TASK-404")             # not_found, nothing changes
    both("batch", "set-project", "ops", "TASK-8", "TASK-9")
    both("batch", "claim", "10", agent="w2")
    both("batch", "claim", "2", agent="w3")                               # []
    both("list")
    both("event", "list", "--limit", "500")


@needs_pg
def test_leases_expire_by_the_board_clock(both):
    both("create", "flaky", "--max-attempts", "2")
    both("create", "steady", "--review")
    both("create", "other")
    both("claim", "TASK-1", "--lease", "10m", agent="w1")
    steady = both("claim", "TASK-2", "--lease", "10m", agent="w2")
    both("complete", "TASK-2", "--token", str(steady["lease_token"]), agent="w2")
    both("claim", "--for-review", "--lease", "5m", agent="judge")
    both("lease", "reap", env=later(6))                                   # the review lease
    both("lease", "reap", env=later(11))                                  # TASK-1: attempts 1
    again = both("claim", "TASK-1", "--lease", "10m", agent="w1", env=later(12))
    both("complete", "TASK-1", "--token", str(again["lease_token"]), agent="w1", env=later(30))  # lease_lost
    both("claim", agent="w3", env=later(30))                              # reaps TASK-1: failed
    both("show", "TASK-1", env=later(30))
    both("lease", "reap", env=later(31))
    both("stats", env=later(31))
    both("prune", "--before", "1d", env={"KANBAN_NOW": "2030-01-09T00:00:00Z"})
    both("event", "list", "--limit", "1000", env={"KANBAN_NOW": "2030-01-09T00:00:00Z"})


@needs_pg
def test_search_matches_and_ranks_as_fts5(both):
    docs = [
        ("Parser crash on empty input", "the parser crashes; parser must handle empty input"),
        ("Write the lexer", "tokens for the parser"),
        ("École naïve café", "accents are folded like FTS5's unicode61"),
        ("foo-bar baz", "hyphen-separated words: foo bar"),
        ("parser parser parser", None),
        ("Unrelated", "nothing to see here, a long body " + "word " * 40),
        ("a a a", ""),
        ("odd 'quotes' \"dq\" back\\slash 50% ?x :name %s %(k)s", "ünïcode 🚀 tab\tand\nnewline"),
    ]
    for title, body in docs:
        args = ["create", title] + (["--body", body] if body is not None else [])
        both(*args)
    for query in (["parser"], ["parser", "input"], ["ecole"], ["CAFE"], ["foo-bar"], ["bar"], ["a", "a"],
                  ['"quoted"'], ["--"], ["unicode"], ["slash", "50"], ["%s"], ["k"], ["parser", "--"],
                  ["nothing", "word"], ["zzz"]):
        both("search", *query)
    both("search", "parser", "--limit", "2")
    both("set", "TASK-2", "--title", "Write the parser's lexer")          # the index follows edits
    both("search", "parser")


@needs_pg
def test_goal_progress_team_gate_and_runs(both, tmp_path):
    from kanban import Board

    goal = both("create", "release", "--kind", "goal")
    both("create", "t1", "--goal", goal["id"], "--assignee", "dev")
    team = {"name": "crew", "coordinator": "lead", "members": {"lead": {}, "dev": {}}}
    for db in (both.kb.path, both.pg.db):
        with Board(str(db)) as board:
            board.set_team(team, actor="lead")
    both("create", "by dev", agent="dev")                                 # forbidden: not the coordinator
    both("create", "by lead", "--assignee", "dev", agent="lead")
    claimed = both("claim", "TASK-2", agent="dev")
    answers = []
    for db, token in ((both.kb.path, both.lite_token(claimed["lease_token"])), (both.pg.db, claimed["lease_token"])):
        os.environ["KANBAN_NOW"] = T0
        try:
            with Board(str(db)) as board:
                answers.append([board.run_start("TASK-2", agent="dev", token=token),
                                board.run_heartbeat("TASK-2", agent="dev", token=token),
                                board.stale_runs(60, actor="lead")])
        finally:
            del os.environ["KANBAN_NOW"]
    assert both.as_pg(answers[0]) == answers[1]
    both("show", "TASK-2")
    both("cancel", "TASK-2", agent="dev")                                 # forbidden
    both("cancel", "TASK-2", agent="lead")
    both("show", goal["id"])


@needs_pg
def test_init_doctor_and_backup(both, tmp_path):
    init = both("init")
    assert init == {"schema_version": SCHEMA_VERSION, "created": False}
    both("create", "a", "--body", "searchable body")
    both("create", "b", "--depends-on", "TASK-1")
    both("claim", agent="w1")
    doctor = both.pg("doctor").json
    assert doctor["ok"] is True and doctor["integrity"] == ["ok"] and doctor["schema_version"] == SCHEMA_VERSION
    assert doctor["db"].startswith("postgresql://") and doctor["server_version"]
    backup = both.pg("backup", tmp_path / "copy.db").json
    assert backup["integrity"] == "ok" and Path(backup["backup"]).exists()
    copy = runner(tmp_path / "copy.db")
    for args in (["list"], ["event", "list"], ["search", "searchable"], ["show", "TASK-2"]):
        assert copy(*args).json == both.pg(*args).json
    # the copy is a working SQLite board that goes on where the server left off
    assert copy("claim", agent="w2").json == {}
    assert copy("create", "c").json["id"] == both.pg("create", "c").json["id"]
    assert copy("complete", "TASK-1", "--token", "1", agent="w1").json["status"] == "done"
    # past the server's last token (1); the copy draws its tokens from its event ids
    assert copy("claim", agent="w3").json["lease_token"] > 1


# -- the Postgres board itself ------------------------------------------------------------

@needs_pg
def test_init_creates_the_schema_and_errors_are_the_closed_list(tmp_path):
    schema = "k_" + uuid.uuid4().hex[:12]
    url = schema_url(schema)
    try:
        assert run("show", "TASK-1", env={"KANBAN_DB": url}).error["code"] == "not_found"
        first = run("init", env={"KANBAN_DB": url})
        assert first.rc == 0 and first.json["created"] is True and first.json["schema_version"] == SCHEMA_VERSION
        assert run("init", env={"KANBAN_DB": url}).json["created"] is False
        server_sql(f"UPDATE {schema}.meta SET value = '99' WHERE key = 'schema_version'")
        res = run("list", env={"KANBAN_DB": url})
        assert res.rc == 2 and res.error["code"] == "db_error" and "newer" in res.error["error"]
    finally:
        server_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    refused = run("list", env={"KANBAN_DB": "postgresql://postgres@127.0.0.1:1/test"})
    assert refused.rc == 2 and refused.out == "" and refused.error["code"] == "db_error"
    assert "Traceback" not in refused.err
    secret = run("list", env={"KANBAN_DB": "postgresql://postgres:hunter2@127.0.0.1:1/test"})
    assert secret.error["code"] == "db_error" and "hunter2" not in secret.err


@needs_pg
def test_a_database_that_does_not_exist_is_no_board_not_an_unreachable_server():
    """A URL naming a database the server does not have: not_found, as a missing board file
    is (SPEC §3: a named board that does not exist), saying so; it said db_error 'cannot
    reach the PostgreSQL server', though the server answered."""
    from urllib.parse import urlsplit, urlunsplit

    name = "kanban_none_" + uuid.uuid4().hex[:12]
    parts = urlsplit(SERVER)
    url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    for args in (["list"], ["init"], ["create", "x"]):
        res = run(*args, env={"KANBAN_DB": url, "KANBAN_AGENT": "w1"})
        assert res.rc == 2 and res.out == "", res
        assert res.error["code"] == "not_found", res.error
        assert name in res.error["error"] and "cannot reach" not in res.error["error"], res.error
        assert "Traceback" not in res.err


@needs_pg
def test_an_older_board_is_migrated(pg_url):
    from kanban.store.postgres import PG_MIGRATIONS

    server_sql(PG_MIGRATIONS[0] + "; INSERT INTO meta(key, value) VALUES ('schema_version', '1');"
               " INSERT INTO tasks(title, body, created_at, updated_at) VALUES ('old task', 'findme', 0, 0)", pg_url)
    assert run("search", "findme", env={"KANBAN_DB": pg_url}).json["tasks"][0]["title"] == "old task"
    assert run("doctor", env={"KANBAN_DB": pg_url}).json["schema_version"] == SCHEMA_VERSION


@needs_pg
def test_a_schema_11_board_searches_its_greek_as_sqlite_after_the_migration(pg_url):
    from kanban.store.postgres import PG_MIGRATIONS

    server_sql("; ".join(PG_MIGRATIONS[:11]) + "; INSERT INTO meta(key, value) VALUES ('schema_version', '11');"
               " INSERT INTO tasks(title, body, created_at, updated_at) VALUES ('ΣΊΣΥΦΟΣ', 'µ', 0, 0)", pg_url)
    assert run("search", "σίσυφος", env={"KANBAN_DB": pg_url}).json["tasks"][0]["title"] == "ΣΊΣΥΦΟΣ"
    assert run("search", "μ", env={"KANBAN_DB": pg_url}).json["tasks"][0]["body"] == "µ"
    assert run("search", "σισυφος", env={"KANBAN_DB": pg_url}).json["tasks"] == []


@needs_pg
def test_claim_wait_wakes_when_work_arrives(pg):
    started = time.monotonic()
    waiter = subprocess.Popen([str(KANBAN), "claim", "--wait", "20s"], stdout=subprocess.PIPE, text=True,
                              env=dict(_clean_env(), KANBAN_DB=pg.db, KANBAN_AGENT="w1"))
    time.sleep(1.0)
    assert waiter.poll() is None
    pg("create", "late work", env={"KANBAN_NOW": None})
    out, _ = waiter.communicate(timeout=20)
    assert json.loads(out)["title"] == "late work"
    assert time.monotonic() - started < 10


def _clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}


@needs_pg
def test_many_processes_race_to_claim_and_none_double_claims(pg):
    tasks = 150
    pg("create", "--stdin", input="".join(json.dumps({"title": f"t{n}", "priority": n % 4}) + "\n"
                                          for n in range(tasks)), env={"KANBAN_NOW": None})
    procs = []
    env = _clean_env()
    env["KANBAN_DB"] = pg.db
    for n in range(24):
        # a shell loop of real `kanban claim` calls until there is nothing left
        script = (f'while :; do out=$("{KANBAN}" claim --exit-code --agent racer{n}); rc=$?; '
                  f'[ $rc -eq 0 ] || break; echo "$out"; done; echo "rc=$rc" >&2')
        procs.append(subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env))
    claims = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert "rc=1" in err, err                                      # ended on {} (--exit-code), never an error
        claims += [json.loads(line) for line in out.splitlines() if line.strip()]
    ids = [c["id"] for c in claims]
    tokens = [c["lease_token"] for c in claims]
    assert len(ids) == tasks and len(set(ids)) == tasks                # every task once: no double claims
    assert len(set(tokens)) == tasks
    events = pg("event", "list", "--kind", "claimed", "--limit", "1000", env={"KANBAN_NOW": None}).json["events"]
    assert sorted(e["task"] for e in events) == sorted(ids)
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert pg("stats", env={"KANBAN_NOW": None}).json["counts"]["in_progress"] == tasks


@needs_pg
def test_a_killed_claimer_loses_its_lease_and_its_open_transaction(pg):
    env = _clean_env()
    env.update(KANBAN_DB=pg.db, KANBAN_NOW=T0)
    pg("create", "first")
    pg("create", "second")
    # 1. killed mid-lease: a worker holds TASK-1 while its command runs
    worker = subprocess.Popen([str(KANBAN), "work", "--agent", "w1", "--lease", "10m", "--once", "--", "sleep", "60"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while pg("show", "TASK-1").json["status"] != "in_progress":
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.1)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    assert pg("show", "TASK-1").json["claimed_by"] == "w1"
    reaped = pg("lease", "reap", env=later(11)).json["expired"]
    assert [t["id"] for t in reaped] == ["TASK-1"] and reaped[0]["status"] == "todo" and reaped[0]["attempts"] == 1
    # 2. killed inside its claim transaction: its locks go with its connection, and the
    #    writers it held up (as a stuck SQLite writer would) go on at once
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(ROOT / "lib")], env=env, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "holding TASK-1"
    env["KANBAN_NOW"] = later(12)["KANBAN_NOW"]
    waiting = subprocess.Popen([str(KANBAN), "claim", "--agent", "w2"], env=env, stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    assert waiting.poll() is None
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    killed_at = time.monotonic()
    out, _ = waiting.communicate(timeout=30)
    assert json.loads(out)["id"] == "TASK-2"                               # it passed over the locked row
    assert time.monotonic() - killed_at < 5
    again = pg("claim", agent="w3", env=later(12)).json
    assert again["id"] == "TASK-1" and again["attempts"] == 1              # the killed claim never happened
    claimed = pg("event", "list", "--task", "TASK-1", "--kind", "claimed").json["events"]
    assert [e["actor"] for e in claimed] == ["w1", "w3"]


@needs_pg
def test_a_stuck_writer_makes_others_busy_not_hang(pg):
    env = _clean_env()
    env.update(KANBAN_DB=pg.db, KANBAN_NOW=T0)
    pg("create", "first")
    pg("create", "second")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(ROOT / "lib")], env=env, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "holding TASK-1"
        started = time.monotonic()
        res = pg("claim", agent="w2", env={"KANBAN_BUSY_TIMEOUT": "1s"})
        assert res.rc == 2 and res.out == "" and res.error["code"] == "busy" and res.error["retryable"] is True
        assert time.monotonic() - started < 8
    finally:
        holder.kill()
        holder.wait()
    assert pg("list", "--status", "in_progress").json["tasks"] == []      # the busy claim changed nothing


@needs_pg
def test_hooks_run_for_a_server_board(pg, tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    log = tmp_path / "hook.log"
    hook = hooks / "post-create"
    hook.write_text(f'#!/bin/sh\n{{ echo "$KANBAN_EVENT $KANBAN_TASK_ID $KANBAN_DB"; cat; echo; }} >> "{log}"\n')
    hook.chmod(0o755)
    res = pg("create", "hooked", env={"KANBAN_HOOKS_DIR": hooks})
    assert res.rc == 0 and res.json["title"] == "hooked"
    head, event = log.read_text().splitlines()[:2]
    assert head == f"created TASK-1 {pg.db}"
    assert json.loads(event)["kind"] == "created"


CHURN = r"""
import json, random, sys, time
sys.path.insert(0, sys.argv[1])
from kanban import Board, KanbanError
seed, seconds = int(sys.argv[2]), float(sys.argv[3])
rng = random.Random(seed)
codes = {}
with Board() as board:
    goals = [t["id"] for t in board.list(kind="goal")["tasks"]]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        tasks = [t["id"] for t in board.list(kind="task")["tasks"]]
        op = rng.choice(["create", "create", "work", "work", "dep", "cancel", "reopen", "goal"])
        try:
            if op == "create" or not tasks:
                deps = rng.sample(tasks, min(len(tasks), rng.randint(0, 2)))
                board.create(f"t{seed}", goal=rng.choice(goals + [None]), depends_on=deps, actor=f"a{seed}")
            elif op == "work":
                got = board.claim(f"a{seed}")
                if got:
                    board.complete(got["id"], got["lease_token"], agent=f"a{seed}")
            elif op == "dep":
                board.dep_add(rng.choice(tasks), [rng.choice(tasks)], actor=f"a{seed}")
            elif op == "cancel":
                board.cancel(rng.choice(tasks), actor=f"a{seed}")
            elif op == "reopen":
                board.reopen(rng.choice(tasks), actor=f"a{seed}")
            else:
                board.set(rng.choice(tasks), goal=rng.choice(goals), actor=f"a{seed}")
        except KanbanError as exc:
            codes[exc.code] = codes.get(exc.code, 0) + 1
print(json.dumps(codes))
"""


@needs_pg
def test_concurrent_writers_keep_the_board_consistent(pg):
    from kanban import Board

    for n in range(3):
        pg("create", f"goal {n}", "--kind", "goal")
    env = _clean_env()
    env["KANBAN_DB"] = pg.db
    procs = [subprocess.Popen([sys.executable, "-c", CHURN, str(ROOT / "lib"), str(seed), "6"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in range(6)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        codes = json.loads(out)
        assert set(codes) <= {"cycle", "conflict", "lease_lost"}, codes  # never busy, db_error or internal
    doctor = pg("doctor", env={"KANBAN_NOW": None}).json
    assert doctor["ok"] and doctor["findings"] == [], doctor              # unmet_deps kept exact
    with Board(pg.db) as board:
        tasks = board.list()["tasks"]
        events = board.events(limit=1_000_000)["events"]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))   # ids in commit order, no gaps
    by_id = {t["id"]: t for t in tasks}
    waits = {t["id"]: set(t["depends_on"]) for t in tasks}
    for t in tasks:
        if t["goal"]:
            waits[t["goal"]].add(t["id"])
    seen, active = set(), set()

    def visit(node):                                                       # no cycle through deps and goals
        assert node not in active, f"cycle through {node}"
        if node in seen:
            return
        active.add(node)
        for nxt in waits[node]:
            visit(nxt)
        active.discard(node)
        seen.add(node)
    for node in waits:
        visit(node)
    for goal in (t for t in tasks if t["kind"] == "goal"):
        members = [t for t in tasks if t["goal"] == goal["id"]]
        complete = bool(members) and all(m["status"] in ("done", "cancelled") for m in members)
        assert (goal["status"] == "done") == complete, (goal, [m["status"] for m in members])
    for t in tasks:
        unmet = [d for d in t["depends_on"] if by_id[d]["status"] != "done"]
        assert t["ready"] == (t["status"] == "todo" and t["kind"] == "task" and not unmet), t


RACE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from kanban import Board, KanbanError
op, me, count = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
won, codes = [], {}
with Board() as board:
    print("ready", flush=True)
    sys.stdin.readline()
    for n in range(1, count + 1):
        try:
            if op == "claim":        # everybody claims TASK-1, TASK-2, ... by id
                won.append(board.claim(f"w{me}", n)["id"])
            elif op == "finish":     # claim anything and complete it, until nothing is left
                got = board.claim(f"w{me}")
                if not got:
                    break
                board.complete(got["id"], got["lease_token"], agent=f"w{me}")
            elif op == "link":       # pairs (2n-1, 2n): half link one way, half the other
                a, b = (2 * n - 1, 2 * n) if me % 2 else (2 * n, 2 * n - 1)
                board.dep_add(a, [b], actor=f"w{me}")
        except KanbanError as exc:
            codes[exc.code] = codes.get(exc.code, 0) + 1
print(json.dumps({"won": won, "codes": codes}))
"""


def race(db, op, processes, count):
    """Start `processes` API agents, let them go at once, return their answers."""
    env = _clean_env()
    env["KANBAN_DB"] = db
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(ROOT / "lib"), op, str(me), str(count)], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for me in range(processes)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    answers = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        answers.append(json.loads(out))
    return answers


@needs_pg
def test_racing_claims_of_one_task_have_one_winner(pg):
    pg("create", "--stdin", input="".join(json.dumps({"title": f"t{n}"}) + "\n" for n in range(30)))
    answers = race(pg.db, "claim", 8, 30)
    won = [task for a in answers for task in a["won"]]
    assert sorted(won) == sorted(f"TASK-{n}" for n in range(1, 31))      # each task exactly once
    assert all(set(a["codes"]) <= {"conflict"} for a in answers), answers


@needs_pg
def test_racing_completions_finish_their_goal(pg):
    goal = pg("create", "g", "--kind", "goal").json["id"]
    pg("create", "--stdin", input="".join(json.dumps({"title": f"t{n}", "goal": goal}) + "\n" for n in range(40)))
    answers = race(pg.db, "finish", 8, 1000)
    assert all(a["codes"] == {} for a in answers), answers
    shown = pg("show", goal).json
    assert shown["status"] == "done" and shown["progress"] == {"total": 40, "done": 40, "cancelled": 0}
    assert len(pg("event", "list", "--task", goal, "--kind", "completed").json["events"]) == 1


@needs_pg
def test_racing_links_never_make_a_cycle(pg):
    pg("create", "--stdin", input="".join(json.dumps({"title": f"t{n}"}) + "\n" for n in range(40)))
    answers = race(pg.db, "link", 6, 20)
    assert all(set(a["codes"]) <= {"cycle"} for a in answers), answers
    for n in range(1, 21):
        a, b = f"TASK-{2 * n - 1}", f"TASK-{2 * n}"
        deps = (pg("dep", "list", a).json["depends_on"], pg("dep", "list", b).json["depends_on"])
        assert deps in (([b], []), ([], [a])), (n, deps)                  # one direction won
    assert pg("doctor").json["ok"]


HOLD = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from kanban import Board
board = Board()
def hold():
    answer = board._claim("w9", None, None, None, 600000)
    print("holding", answer["id"], flush=True)
    time.sleep(600)
board._write(hold)
"""


# -- without a server ---------------------------------------------------------------------

def test_every_sqlite_migration_has_a_postgres_one():
    from kanban.store.postgres import PG_MIGRATIONS
    from kanban.store.sqlite import MIGRATIONS

    assert len(PG_MIGRATIONS) == len(MIGRATIONS), "add the PostgreSQL text of the new migration to pg.py"


def test_the_search_table_is_sqlites_unicode61():
    """store/unicode61_table.py, which a Postgres board searches with, says what the SQLite
    kanban runs on does with each code point (run tools/unicode61.py when this fails)."""
    from kanban.store.unicode61 import scan
    from kanban.store.unicode61_table import FOLDS, SEPARATORS

    separators, folds, version = scan()
    assert {cp for start, end in SEPARATORS for cp in range(start, end + 1)} == separators, version
    assert FOLDS == folds, version


def test_the_sqlite_path_never_loads_the_postgres_backend(kb):
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from kanban import Board; "
            "b = Board(sys.argv[2]); b.create('x'); b.claim(agent='w'); b.close(); "
            "assert 'kanban.store.postgres' not in sys.modules and 'psycopg' not in sys.modules")
    subprocess.run([sys.executable, "-c", code, str(ROOT / "lib"), str(kb.path)], check=True)



def _with_password(url):
    """(url with a password, that password): the server's own, else one a trust server ignores."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    secret = parts.password or "hunter2"
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, f"{parts.username or 'postgres'}:{secret}@{host}", parts.path,
                       parts.query, parts.fragment)), secret


@needs_pg
def test_the_board_for_people_never_shows_the_password(pg_url):
    # kanban board's header (and its markdown and JSON, pasted into issues) names the board
    # as init and doctor do: the URL without its password
    url, secret = _with_password(pg_url)
    init = run("init", env={"KANBAN_DB": url})
    assert init.rc == 0, init
    run("create", "a task", env={"KANBAN_DB": url})
    for args in (["board"], ["board", "--format", "markdown"], ["board", "--format", "json"]):
        res = run(*args, env={"KANBAN_DB": url})
        assert res.rc == 0 and "TASK-1" in res.out, res
        assert secret not in res.out + res.err, (args, res.out)
    assert run("board", "--format", "json", env={"KANBAN_DB": url}).json["board"] == init.json["db"]


@needs_pg
def test_mcp_http_names_its_board_without_the_password(pg_url):
    # the line `kanban mcp --http` writes on stderr when it starts says which board it serves
    pytest.importorskip("mcp", reason="the mcp package (kanban's `mcp` extra) is not installed")
    import socket

    url, secret = _with_password(pg_url)
    assert run("init", env={"KANBAN_DB": url}).rc == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    proc = subprocess.Popen([str(KANBAN), "mcp", "--http", f"127.0.0.1:{port}"], env={**env, "KANBAN_DB": url},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
    finally:
        proc.terminate()
        rest = proc.communicate(timeout=30)[1]
    assert "serving MCP" in line and "postgres@" in line, line + rest
    assert secret not in line + rest
