"""SQLite and PostgreSQL give the same answers to the same commands (SPEC §9).

Each scenario runs one sequence of real `bin/kanban` commands, with a fixed KANBAN_NOW,
against a fresh SQLite board and a fresh Postgres board (a schema of its own on
KANBAN_TEST_PG), and compares, command by command, the exit status, stdout as text
(key order, 1 vs 1.0 vs "1", null vs [] all count) and the error on stderr (code,
message, every other key).  What must differ is normalised and nothing else: the
board's own location (`db`), a file board's `gitignore`, and the fencing tokens, which
SQLite draws from its event ids and Postgres from a sequence (both increasing; a
token given to a command is translated to the backend's own).
"""
import contextlib
import json
import re

import pytest
from conftest import PG_SERVER, drop_pg_schemas, new_pg_schema, run

pytestmark = pytest.mark.skipif(
    not PG_SERVER, reason="KANBAN_TEST_PG is not set: name a PostgreSQL server to compare the backends "
                          "(e.g. KANBAN_TEST_PG=postgresql://postgres@127.0.0.1:5432/test)")

T0 = "2030-01-01T00:00:00Z"


def at(minutes):
    """KANBAN_NOW `minutes` after T0."""
    days, rest = divmod(minutes, 24 * 60)
    return {"KANBAN_NOW": f"2030-01-{1 + days:02d}T{rest // 60:02d}:{rest % 60:02d}:00Z"}


def _tokens_in(value):
    if isinstance(value, dict):
        return [value["lease_token"]] if isinstance(value.get("lease_token"), int) else []
    if isinstance(value, list):
        return [token for item in value for token in _tokens_in(item)]
    return []


def _translate(value, tokens):
    if isinstance(value, dict):
        return {key: tokens.get(item, item) if key in ("lease_token", "token") and isinstance(item, int)
                else _translate(item, tokens) for key, item in value.items()}
    if isinstance(value, list):
        return [_translate(item, tokens) for item in value]
    if isinstance(value, str):
        value = re.sub(r'"token": (\d+)', lambda m: f'"token": {tokens.get(int(m.group(1)), m.group(1))}', value)
        return re.sub(r"\btoken (\d+)", lambda m: f"token {tokens.get(int(m.group(1)), m.group(1))}", value)
    return value


def _normal(doc):
    if isinstance(doc, dict):
        doc.pop("db", None)
        doc.pop("gitignore", None)
        if "vacuumed" in doc:
            doc.pop("pages_freed", None)  # prune --vacuum: the storage's own measure of the file
    return doc


class Both:
    """both(*args) runs `kanban ARGS` on each board; every difference is recorded and the
    test fails at its end listing them all (so one run shows every divergence)."""

    def __init__(self, lite_db, pg_db):
        self.lite_db, self.pg_db = lite_db, pg_db
        self.to_pg, self.to_lite = {}, {}
        self.diffs = []

    def _run(self, db, args, agent, env, input):
        merged = {"KANBAN_DB": db, "KANBAN_NOW": T0}
        if agent is not None:
            merged["KANBAN_AGENT"] = agent
        merged.update(env or {})
        return run(*args, env=merged, input=input)

    def _lite_args(self, args):
        out = []
        for index, arg in enumerate(args):
            arg = str(arg)
            if index and args[index - 1] == "--token" and arg.isdigit():
                arg = str(self.to_lite.get(int(arg), arg))
            elif re.fullmatch(r"TASK-\d+:\d+", arg):
                task, token = arg.rsplit(":", 1)
                arg = f"{task}:{self.to_lite.get(int(token), token)}"
            out.append(arg)
        return out

    @staticmethod
    def _answer(res):
        if res.rc == 2:
            lines = [line for line in res.err.splitlines() if line.strip()]
            try:
                error = json.loads(lines[-1])
            except (IndexError, ValueError):
                error = {"unparsed": res.err}
            error.pop("db", None)
            return 2, res.out, error
        docs = []
        for line in res.out.split("\n"):  # not splitlines(): a body may hold U+2028
            if line.strip():
                try:
                    docs.append(_normal(json.loads(line)))
                except ValueError:
                    docs.append(line)
        return res.rc, docs, res.err.strip()

    def __call__(self, *args, agent=None, env=None, input=None, note=""):
        lite = self._run(self.lite_db, self._lite_args(args), agent, env, input)
        server = self._run(self.pg_db, [str(a) for a in args], agent, env, input)
        a_lite, a_pg = self._answer(lite), self._answer(server)
        if a_lite[0] != 2 and a_pg[0] != 2:
            for mine, theirs in zip(_tokens_in(a_lite[1]), _tokens_in(a_pg[1]), strict=False):
                self.to_pg.setdefault(mine, theirs)
                self.to_lite.setdefault(theirs, mine)
        a_lite = _translate(list(a_lite), self.to_pg)
        a_pg = list(a_pg)
        if json.dumps(a_lite) != json.dumps(a_pg):
            self.diffs.append(f"{' '.join(map(str, args))} {note}\n  sqlite:   {json.dumps(a_lite)[:1500]}"
                              f"\n  postgres: {json.dumps(a_pg)[:1500]}")
        if a_pg[0] == 2:
            return a_pg[2]
        body = a_pg[1]
        return body[0] if len(body) == 1 else body

    def pg(self, *args, env=None, input=None, agent=None):
        return self._run(self.pg_db, [str(a) for a in args], agent, env, input)

    def lite(self, *args, env=None, input=None, agent=None):
        return self._run(self.lite_db, [str(a) for a in args], agent, env, input)

    def export_lines(self):
        """Both boards' exports, compared row by row: every table, every column, every
        counter, SQLite's tokens as Postgres's (and the token counter, which each keeps its
        own way, left out); then each export moved to the other backend and back, byte for
        byte."""
        lite, server = self.lite("export"), self.pg("export")
        assert lite.rc == server.rc == 0, (lite, server)

        def tokens(match):
            return match.group(1) + str(self.to_pg.get(int(match.group(2)), match.group(2)))

        def normal(text, translate):
            lines = []
            for line in text.split("\n"):
                if translate:
                    line = re.sub(r'("lease_token":|\\"token\\":)(\d+)', tokens, line)
                if '"name":"lease_token","type":"counter"' in line:
                    continue
                lines.append(re.sub(r'^\{"counters":\d+,', '{"counters":"N",', line))
            return lines

        mine, theirs = normal(lite.out, True), normal(server.out, False)
        for index, (one, two) in enumerate(zip(mine, theirs, strict=False)):
            if one != two:
                self.diffs.append(f"export line {index + 1}\n  sqlite:   {one}\n  postgres: {two}")
        if len(mine) != len(theirs):
            self.diffs.append(f"export: {len(mine)} lines on sqlite, {len(theirs)} on postgres")
        return lite.out, server.out

    def task_events(self):
        """The task_events view (the audit trail seed 004's Verify step reads with SQL) on
        both boards: the same rows, data written alike, SQLite's tokens as Postgres's."""
        import apsw

        from kanban.store.postgres import connect

        query = "SELECT id, task_id, kind, actor, at, data, expires_at FROM task_events ORDER BY id, kind"
        conn = apsw.Connection(str(self.lite_db), flags=apsw.SQLITE_OPEN_READONLY)
        try:
            mine = [list(row) for row in conn.execute(query)]
        finally:
            conn.close()
        with connect(self.pg_db) as server:
            theirs = [list(row) for row in server.execute(query).fetchall()]
        for row in mine:
            row[5] = re.sub(r'("token":)(\d+)', lambda m: m.group(1) + str(self.to_pg.get(int(m.group(2)),
                                                                                         m.group(2))), row[5])
        for one, two in zip(mine, theirs, strict=False):
            if one != two:
                self.diffs.append(f"task_events\n  sqlite:   {one}\n  postgres: {two}")
        if len(mine) != len(theirs):
            self.diffs.append(f"task_events: {len(mine)} rows on sqlite, {len(theirs)} on postgres")

    def check(self):
        assert not self.diffs, "the backends differ:\n" + "\n".join(self.diffs)


@pytest.fixture
def both(tmp_path):
    schema, url = new_pg_schema()
    lite_db = tmp_path / ".kanban" / "board.db"
    pair = Both(lite_db, url)
    try:
        pair("init")
        yield pair
        pair.task_events()
        lite_export, pg_export = pair.export_lines()
        other_schema, other_url = new_pg_schema()
        try:
            for index, (text, there) in enumerate(((lite_export, other_url),
                                                   (pg_export, tmp_path / "moved" / "board.db"))):
                assert run("init", env={"KANBAN_DB": there}).rc == 0
                moved = run("import", env={"KANBAN_DB": there}, input=text)
                assert moved.rc == 0, moved
                if run("export", env={"KANBAN_DB": there}).out != text:
                    way = ("sqlite to postgres", "postgres to sqlite")[index]
                    pair.diffs.append(f"export -> import -> export changed the board ({way})")
        finally:
            drop_pg_schemas(other_schema)
    finally:
        drop_pg_schemas(schema)
    pair.check()


def test_create(both):
    both("create", "plain")
    both("create", "full", "--body", "b\nwith ünïcode 🚀", "--priority", "-3", "--project", "p", "--role", "dev",
         "--assignee", "ann", "--not-before", "+10m", "--max-attempts", "2", "--review", "--key", "k1")
    both("create", "other fields", "--key", "k1", "--priority", "9")      # the key wins: created false
    both("create", "epic", "--kind", "goal", "--key", "epic")
    both("create", "in epic", "--goal", "TASK-4", "--depends-on", "TASK-1,TASK-2")
    both("create", "in epic again", "--goal", "TASK-4", "--depends-on", "TASK-5, TASK-5")
    both("create", "epoch", "--not-before", "1893456000")
    both("create", "iso", "--not-before", "2030-01-01T01:00:00+01:00")
    for bad in (["--priority", "1.5"], ["--priority", ""], ["--priority", "99999999999999999999"],
                ["--max-attempts", "0"], ["--max-attempts", "-1"], ["--max-attempts", "x"],
                ["--not-before", "tomorrow"], ["--kind", "epic"], ["--goal", "TASK-1"], ["--goal", "TASK-404"],
                ["--goal", "nope"], ["--depends-on", "TASK-4"], ["--depends-on", ""], ["--depends-on", "x"],
                ["--key", ""], ["--project", ""], ["--role", ""], ["--assignee", ""]):
        both("create", "bad", *bad, note="(bad)")
    both("create", "   ")
    both("create", "a goal with deps", "--kind", "goal", "--depends-on", "TASK-1")
    both("create", "goal in goal", "--kind", "goal", "--goal", "TASK-4")
    both("create", "goal review", "--kind", "goal", "--review")
    both("create")
    both("show", "TASK-4")
    both("list")
    both("event", "list")


def test_create_stdin(both):
    lines = [
        {"title": "epic", "kind": "goal", "key": "epic"},
        {"title": "one", "goal": "epic", "key": "one", "priority": 3, "body": "b", "project": "p",
         "role": "r", "assignee": "a", "not_before": "+5m", "max_attempts": 3, "review": True},
        {"title": "two", "goal": "TASK-1", "depends_on": ["one"], "key": "two"},
        {"title": "three", "depends_on": ["two", "TASK-2"]},
        {"title": "nulls", "body": None, "project": None, "goal": None, "depends_on": [], "review": False},
    ]
    text = "".join(json.dumps(x) + "\n" for x in lines)
    both("create", "--stdin", input=text)
    both("create", "--stdin", input=text)
    both("create", "--stdin", input="")
    both("create", "--stdin", input="\n\n")
    both("create", "--stdin", input='{"title": "x"}\n{"title": "y", "depends_on": ["z"]}\n{"title": "z", "key": "z"}\n')
    for bad in ('{"title": "x", "colour": "red"}', '{"title": 5}', '{"title": ""}', '[1]', '"x"', 'null',
                '{"title": "x", "priority": "3"}', '{"title": "x", "priority": 1.5}',
                '{"title": "x", "priority": true}',
                '{"title": "x", "review": "yes"}', '{"title": "x", "depends_on": "TASK-1"}',
                '{"title": "x", "depends_on": [1]}', '{"title": "x", "max_attempts": 0}',
                '{"title": "x", "kind": "epic"}', '{"title": "x", "goal": "TASK-2"}', '{"title": "x", "goal": "nokey"}',
                '{"title": "x", "not_before": "soon"}', '{"title": "x", "key": ""}',
                '{"title": "a", "key": "c1", "depends_on": ["c2"]}\n{"title": "b", "key": "c2", "depends_on": ["c1"]}',
                '{"title": "a", "key": "d"}\n{"title": "b", "key": "d"}',
                '{"title": "x"}\nnot json', '{"title": "x", "key": "self", "depends_on": ["self"]}'):
        both("create", "--stdin", input=bad + "\n", note="(bad)")
    both("create", "--stdin", "extra")
    both("list")
    both("event", "list", "--limit", "1000")


def test_claim(both):
    both("create", "low", "--priority", "1")
    both("create", "tie a", "--priority", "5")
    both("create", "tie b", "--priority", "5")
    both("create", "later", "--priority", "5", env=at(1))
    both("create", "ops only", "--priority", "9", "--role", "ops")
    both("create", "ann only", "--priority", "9", "--assignee", "ann")
    both("create", "ann ops", "--priority", "9", "--assignee", "ann", "--role", "ops")
    both("create", "web", "--priority", "0", "--project", "web")
    both("create", "future", "--priority", "20", "--not-before", "2030-01-01T00:30:00Z")
    both("create", "flaky", "--priority", "-5", "--max-attempts", "1", "--project", "flaky")
    both("claim", agent="w1", env=at(2))
    both("claim", agent="w1", env=at(2))
    both("claim", "--role", "ops", agent="w1", env=at(2))
    both("claim", "--role", "ops", agent="ann", env=at(2))
    both("claim", agent="ann", env=at(2))
    both("claim", "--project", "web", agent="w2", env=at(2))
    both("claim", "--project", "none", agent="w2", env=at(2))
    both("claim", "--project", "none", "--exit-code", agent="w2", env=at(2))
    both("claim", "TASK-9", agent="w2", env=at(2))                      # not before
    both("claim", agent="w3", env=at(31))                               # TASK-9 now
    both("claim", "TASK-1", agent="w3", env=at(31))                     # held? no: todo
    both("claim", "TASK-1", agent="w4", env=at(31))                     # conflict: held
    both("claim", "TASK-1", agent="w3", env=at(31))                     # again by holder
    both("claim", "TASK-5", agent="w4", env=at(31))
    both("claim", "TASK-404", agent="w4")
    both("claim", "nope", agent="w4")
    both("claim", "TASK-10", "--project", "web", agent="w4")
    both("claim", "TASK-10", "--lease", "1m", agent="w5", env=at(31))
    both("claim", "--project", "flaky", agent="w6", env=at(40))          # reclaims? failed at max
    both("show", "TASK-10", env=at(40))
    both("claim", "--lease", "0s", agent="w6")
    both("claim", "--lease", "-5m", agent="w6")
    both("claim", "--lease", "soon", agent="w6")
    both("claim", "--wait", "x", agent="w6")
    both("claim", "--for-review", "TASK-1", agent="w6")
    both("claim", "--for-review", agent="w6")
    both("claim", "--for-review", "--exit-code", agent="w6")
    both("claim", "--exit-code", agent="w7", env=at(100))
    both("claim", agent="w7", env=at(100))
    both("list", env=at(100))
    both("event", "list", "--limit", "1000", env=at(100))


def test_lease(both):
    both("create", "a")
    both("create", "b", "--max-attempts", "2")
    a = both("claim", "TASK-1", "--lease", "10m", agent="w1")
    b = both("claim", "TASK-2", "--lease", "10m", agent="w1")
    ta, tb = str(a["lease_token"]), str(b["lease_token"])
    both("lease", "renew", "TASK-1", "--token", ta, "--lease", "1m", agent="w1", env=at(1))  # never shorter
    both("lease", "renew", "TASK-1", "--token", ta, "--lease", "1h", agent="w1", env=at(2))
    both("lease", "renew", "TASK-1", "--token", ta, agent="w1", env=at(3))
    both("lease", "renew", "TASK-1", "--token", ta, agent="w2", env=at(3))       # another agent
    both("lease", "renew", "TASK-1", "--token", "x", agent="w1")
    both("lease", "renew", "TASK-1", "--token", "-1", agent="w1")
    both("lease", "renew", "TASK-1", agent="w1")
    both("lease", "renew", "TASK-404", "--token", ta, agent="w1")
    both("lease", "renew", "TASK-1", "--token", ta)
    both("lease", "renew", "TASK-1", "--token", ta, "--lease", "0", agent="w1")
    both("lease", "release", "TASK-2", "--token", ta, agent="w1")
    both("lease", "reap", agent="w1", env=at(5))                          # nothing
    both("lease", "reap", agent="w1", env=at(11))                         # TASK-2
    both("lease", "renew", "TASK-2", "--token", tb, agent="w1", env=at(12))  # lease_lost
    both("lease", "release", "TASK-1", "--token", ta, agent="w1", env=at(12))
    both("lease", "release", "TASK-1", "--token", ta, agent="w1", env=at(12))
    b2 = both("claim", "TASK-2", "--lease", "1m", agent="w2", env=at(13))
    both("lease", "reap", env=at(20))                                     # TASK-2 fails
    both("lease", "renew", "TASK-2", "--token", str(b2["lease_token"]), agent="w2", env=at(21))
    both("lease", "reap", env=at(21))
    both("lease", "bogus")
    both("lease")
    both("show", "TASK-2", env=at(21))
    both("stats", env=at(21))
    both("event", "list", "--limit", "1000", env=at(21))


def test_events(both):
    both("create", "a")
    both("create", "b")
    a = both("claim", "TASK-1", "--lease", "10m", agent="w1")
    t = str(a["lease_token"])
    both("event", "log", "TASK-1", "--message", "with token", "--token", t, agent="w1", env=at(5))
    both("event", "log", "TASK-1", "plain positional", agent="w1", env=at(6))
    both("event", "log", "TASK-2", "--message", "short lived", "--ttl", "1m", agent="w2", env=at(6))
    both("event", "log", "TASK-2", "--message", "forever", "--ttl", "never", agent="w2", env=at(6))
    both("event", "log", "TASK-2", "--message", "bad ttl", "--ttl", "0", agent="w2")
    both("event", "log", "TASK-2", "--message", "", agent="w2")
    both("event", "log", "TASK-2", "--message", "no agent")
    both("event", "log", "TASK-404", "--message", "x", agent="w2")
    both("event", "log", "TASK-1", "--message", "bad token", "--token", "999999", agent="w1")
    both("event", "log", "TASK-2", "--message", "token on todo", "--token", t, agent="w1")
    both("event", "list", env=at(6))
    both("event", "list", env=at(8))                                      # the short note is hidden
    page = both("event", "list", "--limit", "2")
    nxt = both("event", "list", "--since", page["cursor"], "--limit", "2")
    both("event", "list", "--since", nxt["cursor"], "--limit", "100")
    last = both("event", "list", "--since", nxt["cursor"])
    both("event", "list", "--since", last["cursor"])
    both("event", "list", "--since", "")
    both("event", "list", "--since", "-1")
    both("event", "list", "--since", "99999")
    both("event", "list", "--since", "abc")
    both("event", "list", "--kind", "progress")
    both("event", "list", "--kind", "nope")
    both("event", "list", "--kind", "created", "--task", "TASK-2")
    both("event", "list", "--task", "TASK-404")
    both("event", "list", "--task", "nope")
    both("event", "list", "--limit", "0")
    both("event", "list", "--limit", "-1")
    both("event", "list", "--limit", "x")
    both("event", "list", "--limit", "1", "--kind", "created")
    both("event", "list", "--format", "table")
    both("event", "list", "--format", "xml")
    both("event")
    both("event", "frob")


def test_complete_review_gates(both):
    both("create", "plain")
    both("create", "reviewed", "--review")
    both("create", "on request")
    p = both("claim", "TASK-1", agent="w1")
    r = both("claim", "TASK-2", agent="w1")
    q = both("claim", "TASK-3", agent="w2")
    both("complete", "TASK-1", "--token", str(p["lease_token"]), agent="w2")      # other agent
    both("complete", "TASK-1", "--token", str(p["lease_token"]), "--summary", "done it", agent="w1", env=at(1))
    both("complete", "TASK-2", "--token", str(r["lease_token"]), agent="w1", env=at(2))
    both("complete", "TASK-3", "--token", str(q["lease_token"]), "--review", "--summary", "look", agent="w2",
         env=at(3))
    both("complete", "TASK-3", "--token", str(q["lease_token"]), agent="w2")
    both("complete", "TASK-3", agent="w2")
    both("complete", "TASK-404", "--token", "1", agent="w2")
    both("approve", "TASK-1", agent="judge")                              # conflict: done
    both("approve", "TASK-2", agent="w1")                                 # forbidden: held it
    both("approve", "TASK-2")                                             # usage: no agent
    both("reject", "TASK-2", agent="judge")                               # usage: no reason
    both("reject", "TASK-2", "--reason", "", agent="judge")
    both("claim", "--for-review", "TASK-2", agent="w1")                   # forbidden
    rv = both("claim", "--for-review", "TASK-2", "--lease", "5m", agent="judge", env=at(4))
    both("claim", "--for-review", "TASK-2", agent="judge2", env=at(4))    # conflict: held for review
    both("approve", "TASK-2", agent="judge2", env=at(4))                  # someone holds the review
    both("approve", "TASK-2", "--token", "999999", agent="judge", env=at(4))
    both("reject", "TASK-2", "--reason", "tests", "--token", str(rv["lease_token"]), agent="judge", env=at(5))
    again = both("claim", "TASK-2", agent="w3", env=at(6))
    both("complete", "TASK-2", "--token", str(again["lease_token"]), agent="w3", env=at(7))
    both("approve", "TASK-2", agent="w3", env=at(8))                      # forbidden: held it
    both("approve", "TASK-2", agent="judge", env=at(8))                   # judge never held the work
    both("approve", "TASK-3", "--comment", "fine", agent="w9", env=at(9))
    both("approve", "TASK-3", agent="w9", env=at(9))
    both("reject", "TASK-1", "--reason", "x", agent="w9")
    both("reject", "TASK-404", "--reason", "x", agent="w9")
    both("show", "TASK-2", env=at(10))
    both("show", "TASK-3", env=at(10))
    both("event", "list", "--limit", "1000")


def test_block_cancel_reopen_and_goals(both):
    both("create", "goal", "--kind", "goal")
    both("create", "a", "--goal", "TASK-1")
    both("create", "b", "--goal", "TASK-1")
    both("create", "c")
    both("block", "TASK-2", "--reason", "waiting")
    both("block", "TASK-2", "--reason", "again")
    both("block", "TASK-3")
    both("block", "TASK-1", "--reason", "goal")
    both("unblock", "TASK-2", "--reason", "ok")
    both("unblock", "TASK-2")
    both("unblock", "TASK-1")
    c = both("claim", "TASK-4", agent="w1")
    both("block", "TASK-4", "--reason", "stuck", agent="w2")                          # no token
    both("block", "TASK-4", "--reason", "stuck", "--token", str(c["lease_token"]), agent="w1", env=at(1))
    both("cancel", "TASK-4", "--reason", "gone", env=at(2))
    both("reopen", "TASK-4", env=at(3))
    a = both("claim", "TASK-2", agent="w1", env=at(4))
    both("complete", "TASK-2", "--token", str(a["lease_token"]), agent="w1", env=at(5))
    both("cancel", "TASK-3", "--reason", "not needed", env=at(6))                     # the goal is done now
    both("show", "TASK-1", env=at(6))
    both("reopen", "TASK-3", env=at(7))                                               # the goal reopens?
    both("show", "TASK-1", env=at(7))
    both("cancel", "TASK-3", env=at(8))
    both("reopen", "TASK-1", env=at(8))                                               # a done goal
    both("cancel", "TASK-1", "--reason", "whole goal", env=at(9))
    both("show", "TASK-1", env=at(9))
    both("reopen", "TASK-1", env=at(10))
    both("reopen", "TASK-2", env=at(11))                                              # a done task
    both("show", "TASK-1", env=at(11))
    both("cancel", "TASK-404")
    both("reopen", "nope")
    both("list", env=at(12))
    both("event", "list", "--limit", "1000")


def test_deps(both):
    for name in "abcde":
        both("create", name)
    both("create", "g", "--kind", "goal")
    both("dep", "add", "TASK-2", "TASK-1")
    both("dep", "add", "TASK-3", "TASK-2", "TASK-1")
    both("dep", "add", "TASK-3", "TASK-2")                                 # again
    both("dep", "add", "TASK-1", "TASK-3")                                 # cycle
    both("dep", "add", "TASK-1", "TASK-1")                                 # self
    both("dep", "add", "TASK-4", "TASK-6")                                 # a goal as dep
    both("dep", "add", "TASK-6", "TASK-4")                                 # a goal depends
    both("dep", "add", "TASK-4", "TASK-404")
    both("dep", "add", "TASK-404", "TASK-1")
    both("dep", "add", "TASK-4", "nope")
    both("dep", "add", "TASK-4")
    both("dep", "list", "TASK-1")
    both("dep", "list", "TASK-2")
    both("dep", "list", "TASK-3")
    both("dep", "list", "TASK-404")
    both("dep", "rm", "TASK-3", "TASK-1")
    both("dep", "rm", "TASK-3", "TASK-1")
    both("dep", "rm", "TASK-3", "TASK-5")
    both("dep", "rm", "TASK-3", "TASK-2", "TASK-404")
    both("dep", "list", "TASK-3")
    both("dep", "list", "TASK-3", "--format", "table")
    both("set", "TASK-5", "--goal", "TASK-6")
    both("dep", "add", "TASK-6", "TASK-5")                                 # cycle through the goal
    both("show", "TASK-3")
    both("show", "TASK-6")
    both("event", "list", "--kind", "linked")
    both("event", "list", "--kind", "unlinked")


def test_show_list_search_comment_set(both):
    both("create", "goal", "--kind", "goal", "--project", "p")
    both("create", "Parser work", "--body", "the parser", "--goal", "TASK-1", "--project", "p", "--role", "dev",
         "--assignee", "ann", "--priority", "2")
    both("create", "lexer", "--depends-on", "TASK-2", "--not-before", "+1h", "--project", "q")
    both("create", "dep on cancelled", "--depends-on", "TASK-3")
    both("cancel", "TASK-3")
    both("limit", "set", "in_progress", "0", "--project", "p")
    for task in ("TASK-1", "TASK-2", "TASK-3", "TASK-4"):
        both("show", task)
    both("show", "TASK-2", "--events", "1")
    both("show", "TASK-2", "--events", "0")
    both("show", "TASK-2", "--events", "-1")
    both("show", "TASK-2", "--format", "table")
    both("show")
    both("comment", "TASK-2", "--message", "first")
    both("comment", "TASK-2", "second", env=at(1))
    both("comment", "TASK-2", "--message", "")
    both("comment", "TASK-2")
    both("show", "TASK-2")
    for args in ([], ["--status", "todo"], ["--status", "todo,cancelled"], ["--status", "TODO"], ["--status", "x"],
                 ["--status", ""], ["--project", "p"], ["--project", "none"], ["--assignee", "ann"],
                 ["--goal", "TASK-1"], ["--goal", "TASK-2"], ["--goal", "TASK-404"], ["--goal", "x"], ["--ready"],
                 ["--limit", "1"], ["--limit", "0"], ["--limit", "-1"], ["--limit", "x"],
                 ["--format", "table"]):
        both("list", *args)
    for args in (["parser"], ["PARSER"], ["pars*"], ["parser", "--status", "todo"], ["parser", "--project", "q"],
                 ["parser", "--limit", "0"], [], ["--status", "cancelled"], ["lexer", "--format", "table"],
                 ['"the parser"'], ["OR"], ["a", "OR", "b"], ["NOT"], ["parser", "--status", "bogus"]):
        both("search", *args)
    both("set", "TASK-3", "--title", "Lexer", "--body", "new", "--priority", "4", "--project", "q2",
         "--assignee", "bob", "--role", "r", "--goal", "TASK-1", "--not-before", "2030-02-01T00:00:00Z",
         "--max-attempts", "5", "--review")
    both("set", "TASK-3", "--no-review")
    both("set", "TASK-3", "--clear", "body", "project")
    both("set", "TASK-3", "--clear", "assignee,role", "--clear", "goal")
    both("set", "TASK-3", "--clear", "not_before", "--clear", "max_attempts")
    both("set", "TASK-3", "--clear", "title")
    both("set", "TASK-3", "--clear", "bogus")
    both("set", "TASK-3", "--clear", "priority")
    both("set", "TASK-3", "--title", "")
    both("set", "TASK-3", "--priority", "x")
    both("set", "TASK-3", "--max-attempts", "0")
    both("set", "TASK-3", "--goal", "TASK-2")
    both("set", "TASK-3", "--goal", "TASK-404")
    both("set", "TASK-3", "--not-before", "later")
    both("set", "TASK-3", "--project", "q2", "--clear", "project")
    both("set", "TASK-404", "--title", "x")
    both("set", "TASK-1", "--kind", "task")
    both("set", "TASK-3", "--title", "Lexer")                              # no change
    both("show", "TASK-3")
    both("event", "list", "--kind", "updated")


def test_batch_stats_prune(both):
    for n in range(6):
        both("create", f"t{n}", "--priority", str(n % 2), "--project", "a" if n < 3 else "b")
    claims = both("batch", "claim", "2", "--lease", "5m", agent="w1")
    both("batch", "claim", "0", agent="w1")
    both("batch", "claim", "-1", agent="w1")
    both("batch", "claim", "x", agent="w1")
    both("batch", "claim", "2", "--project", "a", "--role", "r", agent="w2")
    both("batch", "claim", "5", "--project", "zzz", "--exit-code", agent="w2")
    pairs = [f"{c['id']}:{c['lease_token']}" for c in claims]
    both("batch", "complete", pairs[0], pairs[0], agent="w1")
    both("batch", "complete", pairs[0], "TASK-6:1", agent="w1")
    both("batch", "complete", pairs[0], "TASK-404:1", agent="w1")
    both("batch", "complete", "TASK-1", agent="w1")
    both("batch", "complete", "x:y", agent="w1")
    both("batch", "complete", *pairs, agent="w1", env=at(2))
    both("batch", "set-priority", "7", "TASK-5", "TASK-6")
    both("batch", "set-priority", "x", "TASK-5")
    both("batch", "set-priority", "7", "TASK-5", "TASK-404")
    both("batch", "set-project", "", "TASK-5")
    both("batch", "set-project", "c", "TASK-5", "TASK-5")
    both("batch", "frob")
    both("batch")
    both("stats", env=at(3))
    both("stats", "--format", "table", env=at(3))
    for n in range(3):
        both("event", "log", "TASK-6", "--message", f"note {n}", "--ttl", "1h" if n else "never", agent="w3",
             env=at(n))
    both("prune", "--before", "30d", env=at(120))
    both("prune", "--before", "1m", env=at(120))
    both("prune", "--before", "0", env=at(120))
    both("prune", "--before", "x", env=at(120))
    both("prune", env=at(120))
    both("prune", "--vacuum", env=at(120))
    both("event", "list", "--limit", "1000", env=at(120))
    both("stats", env=at(120))


def test_move_and_limits(both):
    for name in ("a", "b", "c", "d"):
        both("create", name, "--project", "p", "--role", "dev")
    both("create", "reviewed", "--review")
    both("limit", "set", "in_progress", "1", "--project", "p")
    both("limit", "set", "in_progress", "2", "--role", "dev", "--agent", "w1")
    both("limit", "set", "in_review", "1")
    both("limit", "set", "in_progress", "3", "--project", "p")               # changes N
    both("limit", "set", "in_progress", "1", "--project", "p")
    both("limit", "set", "done", "1")
    both("limit", "set", "in_progress", "-1")
    both("limit", "set", "in_progress", "x")
    both("limit", "list")
    both("limit", "list", "--format", "table")
    c = both("claim", "--role", "dev", agent="w1")
    both("claim", "--role", "dev", agent="w2")                                 # full: {}
    both("claim", "--role", "dev", "--exit-code", agent="w2")
    both("claim", "TASK-2", "--role", "dev", agent="w2")
    both("show", "TASK-2")
    both("limit", "list")
    both("move", "TASK-2", "in_progress")                                     # not a column
    both("move", "TASK-2", "blocked")                                         # needs --reason
    both("move", "TASK-2", "blocked", "--reason", "paper", env=at(1))
    both("move", "TASK-2", "todo", env=at(2))
    both("move", "TASK-2", "todo", env=at(2))                                 # already there
    both("move", "TASK-1", "todo", env=at(3))                                 # held: --force
    both("move", "TASK-1", "todo", "--force", env=at(3))
    both("complete", "TASK-1", "--token", str(c["lease_token"]), agent="w1", env=at(4))  # lease_lost
    both("move", "TASK-2", "in_review", env=at(5))
    both("move", "TASK-3", "in_review", env=at(5))                            # review column full
    both("move", "TASK-3", "in_review", "--force", env=at(5))
    both("move", "TASK-2", "done", agent="w1", env=at(6))                     # w1 never held TASK-2
    both("move", "TASK-1", "done", agent="w1", env=at(6))                     # w1 held it: todo→done?
    both("move", "TASK-3", "done", "--agent", "me", env=at(6))
    both("move", "TASK-4", "cancelled", env=at(7))
    both("move", "TASK-4", "done", env=at(7))
    both("move", "TASK-404", "done")
    both("move", "TASK-5", "nowhere")
    r = both("claim", "TASK-5", agent="w5", env=at(8))
    both("complete", "TASK-5", "--token", str(r.get("lease_token")), agent="w5", env=at(8))
    both("move", "TASK-5", "done", agent="w5", env=at(9))                     # the review gate
    both("move", "TASK-5", "done", "--force", agent="w5", env=at(9))
    both("move", "TASK-5", "done", agent="w6", env=at(9))
    both("limit", "rm", "in_progress", "--project", "p")
    both("limit", "rm", "in_progress", "--project", "p")
    both("limit", "rm", "in_progress", "--role", "dev")
    both("limit", "rm", "in_progress", "--role", "dev", "--agent", "w1")
    both("limit", "rm", "bogus")
    both("limit", "list")
    both("list")
    both("event", "list", "--limit", "1000")


def test_export_import_round_trip_across_backends(both, tmp_path):
    both("create", "g", "--kind", "goal", "--key", "g")
    both("create", "a", "--goal", "TASK-1", "--body", "ünïcode\u2028line", "--priority", "3", "--review")
    both("create", "b", "--depends-on", "TASK-2", "--not-before", "+1h", "--max-attempts", "2")
    a = both("claim", "TASK-2", agent="w1", env=at(1))
    both("event", "log", "TASK-2", "--message", "note", "--token", str(a["lease_token"]), agent="w1", env=at(2))
    both("complete", "TASK-2", "--token", str(a["lease_token"]), agent="w1", env=at(3))
    both("comment", "TASK-3", "--message", "hi")
    both("limit", "set", "in_progress", "2", "--project", "p")
    lite_export = both.lite("export")
    pg_export = both.pg("export")
    assert lite_export.rc == 0 and pg_export.rc == 0, (lite_export, pg_export)
    # SQLite -> Postgres -> SQLite: byte-identical
    schema, url = new_pg_schema()
    try:
        assert run("init", env={"KANBAN_DB": url}).rc == 0
        imported = run("import", env={"KANBAN_DB": url}, input=lite_export.out)
        assert imported.rc == 0, imported
        again = run("export", env={"KANBAN_DB": url})
        assert again.out == lite_export.out
        back = tmp_path / "back" / "board.db"
        assert run("init", env={"KANBAN_DB": back}).rc == 0
        res = run("import", env={"KANBAN_DB": back}, input=again.out)
        assert res.rc == 0, res
        assert run("export", env={"KANBAN_DB": back}).out == lite_export.out
        # and the boards answer the same after the move
        for args in (["list"], ["show", "TASK-2"], ["event", "list"], ["limit", "list"], ["stats"]):
            one = run(*args, env={"KANBAN_DB": url, "KANBAN_NOW": T0})
            two = run(*args, env={"KANBAN_DB": back, "KANBAN_NOW": T0})
            assert one.rc == two.rc == 0 and _normal(one.json) == _normal(two.json), (args, one, two)
    finally:
        drop_pg_schemas(schema)
    # Postgres -> SQLite -> Postgres: byte-identical
    there = tmp_path / "there" / "board.db"
    assert run("init", env={"KANBAN_DB": there}).rc == 0
    assert run("import", env={"KANBAN_DB": there}, input=pg_export.out).rc == 0
    there_export = run("export", env={"KANBAN_DB": there})
    assert there_export.out == pg_export.out
    # the two exports differ only in what must: the fencing token counter
    both("import", input=lite_export.out)                                    # conflict: not empty
    both("import", input="")
    both("import", input="not json\n")


def test_doctor_shape(both):
    both("create", "a")
    lite, server = both.lite("doctor"), both.pg("doctor")
    assert lite.rc == server.rc == 0
    ld, pd = lite.json, server.json
    assert ld["ok"] is pd["ok"] is True
    assert ld["integrity"] == pd["integrity"] and ld["schema_version"] == pd["schema_version"]
    assert ld["findings"] == pd["findings"]
    assert set(ld) <= set(pd), set(ld) - set(pd)  # a server adds its version and schema
    for key in ld:
        assert type(ld[key]) is type(pd[key]) or None in (ld[key], pd[key]), key


def test_stats_and_charts(both):
    both("create", "g", "--kind", "goal")
    for n in range(1, 7):
        both("create", f"t{n}", "--goal", "TASK-1", "--priority", str(n), env=at(n))
    for n in range(1, 6):
        now = {"KANBAN_NOW": f"2030-01-0{n}T0{n}:{n * 7:02d}:0{n}.{n * 111:03d}Z"}
        c = both("claim", agent=f"w{n}", env=now)
        done = {"KANBAN_NOW": f"2030-01-0{n}T0{n + 1}:{n * 3:02d}:59.9{n}Z"}
        both("complete", c["id"], "--token", str(c["lease_token"]), agent=f"w{n}", env=done)
    both("cancel", "TASK-2", env=at(6 * 24 * 60))
    later = at(7 * 24 * 60)
    both("stats", env=later)
    both("stats", "--format", "table", env=later)
    for chart in ("cfd", "burndown", "throughput", "times"):
        for extra in ([], ["--format", "json"], ["--since", "3d", "--format", "json"],
                      ["--since", "2030-01-02T00:00:00Z"]):
            both("stats", "--chart", chart, *extra, env=later)
    both("stats", "--chart", "burndown", "--goal", "TASK-1", "--format", "json", env=later)
    both("stats", "--chart", "burndown", "--goal", "TASK-2", env=later)
    both("stats", "--chart", "burndown", "--goal", "TASK-404", env=later)
    both("stats", "--chart", "pie", env=later)
    both("stats", "--chart", "cfd", "--since", "x", env=later)
    both("show", "TASK-1", env=later)
    both("list", "--status", "done", env=later)


def test_hooks_and_the_review_memory(both, tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "post-claim").write_text("#!/bin/sh\necho 'post-claim says no' >&2\nexit 3\n")
    (hooks / "pre-complete").write_text(
        "#!/bin/sh\ncat >/dev/null\nif [ \"$KANBAN_TASK_ID\" = TASK-2 ]; then echo 'tests fail' >&2; exit 1; fi\n")
    (hooks / "post-complete").write_text("#!/bin/sh\ncat >/dev/null\necho \"done $KANBAN_TASK_ID $KANBAN_EVENT\" >&2\n")
    for hook in hooks.iterdir():
        hook.chmod(0o755)
    env = {"KANBAN_HOOKS_DIR": hooks}
    both("create", "a", "--review", env=env)
    both("create", "b", env=env)
    a = both("claim", "TASK-1", agent="w1", env=env)
    b = both("claim", "TASK-2", agent="w1", env=env)
    both("complete", "TASK-2", "--token", str(b["lease_token"]), agent="w1", env=env)      # hook_rejected
    both("complete", "TASK-2", "--token", str(b["lease_token"]), "--no-verify", agent="w1", env=env)
    both("event", "log", "TASK-1", "--message", "note", "--ttl", "1m", agent="w1", env=env)
    both("complete", "TASK-1", "--token", str(a["lease_token"]), agent="w1", env=env)
    both("prune", "--before", "1s", env=at(60 * 24))
    both("approve", "TASK-1", agent="w1", env=at(60 * 24))                                 # still held it
    both("reopen", "TASK-1", env=at(60 * 24))
    both("event", "list", "--limit", "1000", env=at(60 * 24))
    both("event", "list", "--kind", "hook_failed", env=at(60 * 24))


def test_reopen_failed_goals_and_waiting(both):
    both("create", "g", "--kind", "goal")
    both("create", "flaky", "--goal", "TASK-1", "--max-attempts", "1")
    both("create", "after", "--depends-on", "TASK-2")
    both("create", "other", "--goal", "TASK-1")
    both("claim", "TASK-2", "--lease", "1m", agent="w1")
    both("lease", "reap", env=at(2))                                                       # failed
    both("show", "TASK-3", env=at(2))                                                      # waits on a failed dep
    both("show", "TASK-1", env=at(2))
    o = both("claim", "TASK-4", agent="w2", env=at(3))
    both("complete", "TASK-4", "--token", str(o["lease_token"]), agent="w2", env=at(4))
    both("show", "TASK-1", env=at(4))                                                      # a failed task: not done
    both("reopen", "TASK-2", env=at(5))
    both("show", "TASK-2", env=at(5))
    f = both("claim", "TASK-2", agent="w3", env=at(6))
    both("complete", "TASK-2", "--token", str(f["lease_token"]), agent="w3", env=at(7))
    both("show", "TASK-1", env=at(7))                                                      # done now
    both("show", "TASK-3", env=at(7))                                                      # ready
    both("reopen", "TASK-2", env=at(8))                                                    # its dependent waits again
    both("show", "TASK-3", env=at(8))
    both("show", "TASK-1", env=at(8))
    both("cancel", "TASK-2", env=at(9))
    both("show", "TASK-1", env=at(9))
    both("create", "new", "--kind", "goal", env=at(10))
    both("set", "TASK-3", "--goal", "TASK-1", env=at(10))                                  # into a done goal
    both("show", "TASK-1", env=at(10))
    both("set", "TASK-3", "--goal", "TASK-5", env=at(11))
    both("show", "TASK-1", env=at(11))
    both("show", "TASK-5", env=at(11))
    both("move", "TASK-5", "done", env=at(12))
    both("move", "TASK-5", "blocked", "--reason", "x", env=at(12))
    both("move", "TASK-1", "cancelled", env=at(12))
    both("dep", "add", "TASK-3", "TASK-4", env=at(13))
    both("dep", "list", "TASK-4", env=at(13))
    both("claim", "--wait", "1s", agent="w9", env=at(14))
    both("claim", "--wait", "1s", "--exit-code", "--project", "none", agent="w9", env=at(14))
    both("batch", "claim", "3", agent="w9", env=at(14))
    both("list", env=at(15))
    both("event", "list", "--limit", "1000", env=at(15))


def test_import_errors(both, tmp_path):
    both("create", "a")
    text = both.lite("export").out
    lines = text.split("\n")
    schema, url = new_pg_schema()
    try:
        for bad in ("", "\n", lines[0] + "\n", "\n".join(lines[:-2]) + "\n", text + text,
                    text.replace('"schema_version":', '"schema_version":1'), text.replace('"tasks"', '"nope"'),
                    text.replace('"title":"a"', '"titel":"a"'), "[]\n", '{"type":"header"}\n'):
            answers = []
            for db in (url, tmp_path / "into" / "board.db"):
                run("init", env={"KANBAN_DB": db})
            for db in (url, tmp_path / "into" / "board.db"):
                res = run("import", env={"KANBAN_DB": db}, input=bad)
                err = res.error if res.rc == 2 else None
                if err:
                    err.pop("db", None)
                answers.append((res.rc, res.out, err))
            if answers[0] != answers[1]:
                both.diffs.append(f"import of {bad[:80]!r}\n  postgres: {answers[0]}\n  sqlite:   {answers[1]}")
        both("import", "/nonexistent/file")
    finally:
        drop_pg_schemas(schema)


def test_search_tokenises_every_script_as_fts5(both):
    """Postgres splits and folds text exactly as FTS5's unicode61 does, beyond Latin:
    Greek keeps its accents and folds final sigma, the micro sign is mu, long s is s,
    superscript and circled digits are token characters, Devanagari vowel signs split
    words, a variation selector separates."""
    for title in ("Σίσυφος μύθος", "ΣΊΣΥΦΟΣ", "µ micro", "ſtraße", "x² squared", "① circled",
                  "हिन्दी भाषा", "Ǖber ǖ", "ᾀ lt", "snow☃︎man", "Øresund", "Привет мир", "日本語"):
        both("create", title)
    for query in ("σίσυφος", "σισυφος", "ΣΙΣΥΦΟΣ", "μυθος", "μύθος", "μ", "µ", "straße", "ſtraße", "x²", "x2",
                  "①", "1", "हिन्दी", "ह", "न्दी", "ǖber", "uber", "ᾀ", "α", "snow", "man", "☃", "oresund",
                  "привет", "日本語"):
        both("search", query)


@contextlib.contextmanager
def scratch_database(options):
    """A board URL on a new database of KANBAN_TEST_PG made WITH `options`; dropped after."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    from kanban.store.postgres import connect

    name = "kparity_" + uuid.uuid4().hex[:10]
    with connect(PG_SERVER) as conn:
        try:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0 {options}")
        except Exception as exc:  # an older server, no ICU, no right to create a database
            pytest.skip(f"cannot make a database {options} on KANBAN_TEST_PG: {exc}")
    try:
        yield urlunsplit(urlsplit(PG_SERVER)._replace(path="/" + name))
    finally:
        with connect(PG_SERVER) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # the helper's sessions too


@pytest.fixture
def icu_database():
    """A database whose default collation is ICU's en-US (as on many servers), not C:
    text sorts as a dictionary does there."""
    with scratch_database("LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'") as url:
        yield url


def test_text_sorts_byte_by_byte_whatever_the_servers_collation(icu_database, tmp_path):
    lite, server = tmp_path / "board.db", icu_database
    pair = Both(lite, server)
    pair("init")
    for project in ("Beta", "alpha", "_x", "b", "B", "Éa", "a b", "ab"):
        pair("limit", "set", "in_progress", "3", "--project", project)
        pair("create", f"t {project}", "--project", project)
    pair("limit", "set", "in_review", "1", "--role", "Zed")
    pair("limit", "set", "in_review", "1", "--role", "zed")
    pair("limit", "list")
    pair("stats")
    c = pair("claim", "--project", "alpha", agent="w1")
    pair("show", c["id"])
    pair("list", "--format", "table")
    answers = []
    for db in (lite, server):
        from kanban import Board
        with Board(str(db)) as board:
            answers.append(board.projects())
    assert answers[0] == answers[1], answers
    pair.check()


def test_claim_picks_across_classes_in_one_order(both):
    """Open, assigned and role-bound tasks compete by priority, created_at, then id, on
    either backend (SQLite looks at the classes one by one, Postgres in one statement)."""
    both("create", "open5", "--priority", "5")
    both("create", "ann early", "--priority", "5", "--assignee", "ann", env={"KANBAN_NOW": "2029-12-31T00:00:00Z"})
    both("create", "ops earlier", "--priority", "5", "--role", "ops", env={"KANBAN_NOW": "2029-12-30T00:00:00Z"})
    both("create", "ann future", "--priority", "9", "--assignee", "ann", "--not-before", "2030-06-01T00:00:00Z")
    both("create", "ann p", "--priority", "9", "--assignee", "ann", "--project", "p")
    both("create", "ops p", "--priority", "7", "--role", "ops", "--project", "p")
    both("create", "open9 p later", "--priority", "9", "--project", "p", "--not-before", "2030-06-01T00:00:00Z")
    both("create", "ann ops", "--priority", "6", "--assignee", "ann", "--role", "ops")
    both("create", "bob ops", "--priority", "8", "--assignee", "bob", "--role", "ops")
    both("create", "open5 twin", "--priority", "5")
    both("create", "dev", "--priority", "5", "--role", "dev")
    both("limit", "set", "in_progress", "1", "--role", "dev")
    for _ in range(3):
        both("claim", "--role", "ops", "--project", "p", agent="ann")
    both("batch", "claim", "2", "--role", "ops", agent="ann")
    both("batch", "claim", "4", "--role", "dev", agent="cy")
    both("batch", "claim", "9", "--role", "ops", agent="bob")
    both("batch", "claim", "9", agent="ann", env=at(60 * 24 * 200))
    both("list", env=at(60 * 24 * 200))


def test_team_board_gates(both):
    from kanban import Board

    both("create", "goal", "--kind", "goal")
    team = {"name": "crew", "coordinator": "lead", "manifest": "team.yaml", "operators": ["ops"],
            "members": {"lead": {"role": "coordinator"}, "dev": {"role": "dev"}, "qa": {"role": "qa"}}}
    for db in (both.lite_db, both.pg_db):
        with Board(str(db)) as board:
            board.set_team(team, actor="lead")
    both("create", "by dev", agent="dev")                                     # forbidden
    both("create", "by stranger", agent="zed")                                # forbidden: not on the team
    both("create", "by nobody")                                               # no agent
    both("create", "work", "--assignee", "dev", "--goal", "TASK-1", agent="lead")
    both("create", "more", "--assignee", "qa", "--depends-on", "TASK-2", agent="ops")
    both("set", "TASK-2", "--priority", "3", agent="dev")
    both("set", "TASK-2", "--assignee", "qa", agent="dev")
    both("dep", "add", "TASK-3", "TASK-1", agent="dev")
    both("comment", "TASK-2", "--message", "hi", agent="qa")
    both("comment", "TASK-2", "--message", "hi", agent="zed")
    both("claim", "TASK-2", agent="qa")
    c = both("claim", "TASK-2", agent="dev")
    both("event", "log", "TASK-2", "--message", "going", agent="qa")
    both("block", "TASK-2", "--reason", "x", "--token", str(c.get("lease_token")), agent="qa")
    both("complete", "TASK-2", "--token", str(c.get("lease_token")), agent="qa")
    both("cancel", "TASK-3", agent="dev")
    both("move", "TASK-3", "blocked", "--reason", "wait", agent="qa")
    both("move", "TASK-3", "blocked", "--reason", "wait", agent="lead")
    both("unblock", "TASK-3", agent="lead")
    both("limit", "set", "in_progress", "1", agent="dev")
    both("limit", "set", "in_progress", "1", agent="ops")
    both("complete", "TASK-2", "--token", str(c.get("lease_token")), agent="dev", env=at(5))
    both("reopen", "TASK-2", agent="qa")
    both("show", "TASK-1")
    both("list")
    both("event", "list", "--limit", "1000")


def test_a_database_not_in_utf8_still_holds_a_board():
    """Schema 12's search table holds only ASCII rows where the server cannot store more."""
    for encoding in ("LATIN1", "SQL_ASCII"):
        with scratch_database(f"ENCODING '{encoding}' LOCALE 'C'") as url:
            assert run("init", env={"KANBAN_DB": url}).json["created"] is True
            assert run("create", "Hello World-x", env={"KANBAN_DB": url}).rc == 0
            assert [t["title"] for t in run("search", "WORLD", env={"KANBAN_DB": url}).json["tasks"]] == \
                ["Hello World-x"]


def test_search_is_the_same_on_a_turkish_server(tmp_path):
    """On a database whose collation is Turkish, lower('I') is 'ı': search folds as
    unicode61 does all the same (INFO is found by info)."""
    with scratch_database("LOCALE_PROVIDER icu ICU_LOCALE 'tr-TR' LOCALE 'C.UTF-8'") as url:
        pair = Both(tmp_path / "board.db", url)
        pair("init")
        for title in ("INFO desk", "İstanbul trip", "ıslak", "Iğdır"):
            pair("create", title)
        for query in ("info", "INFO", "istanbul", "İSTANBUL", "islak", "ıslak", "ığdır", "iğdır"):
            pair("search", query)
        pair.check()


def test_review_limits_and_review_claims(both):
    for n in range(4):
        both("create", f"r{n}", "--review", "--project", "p" if n % 2 else "q")
    tokens = []
    for n in range(4):
        c = both("claim", f"TASK-{n + 1}", agent=f"w{n}")
        tokens.append(c["lease_token"])
    both("limit", "set", "in_review", "1", "--agent", "judge")
    both("limit", "set", "in_review", "2", "--project", "p")
    for n in range(4):
        both("complete", f"TASK-{n + 1}", "--token", str(tokens[n]), agent=f"w{n}", env=at(n + 1))
    both("limit", "list")
    both("claim", agent="w9")                                                 # nothing todo
    r = both("claim", "--for-review", "--lease", "5m", agent="judge", env=at(10))
    both("claim", "--for-review", agent="judge", env=at(10))                  # judge's limit: {}
    both("claim", "--for-review", "--exit-code", agent="judge", env=at(10))
    both("claim", "--for-review", "TASK-4", agent="judge", env=at(10))
    both("claim", "--for-review", agent="judge2", env=at(10))
    both("show", "TASK-4", env=at(10))
    both("lease", "renew", r["id"], "--token", str(r["lease_token"]), "--lease", "1h", agent="judge", env=at(11))
    both("lease", "release", r["id"], "--token", str(r["lease_token"]), agent="judge", env=at(12))
    both("show", r["id"], env=at(12))
    both("claim", "--for-review", agent="judge", env=at(13))
    both("lease", "reap", env=at(60))
    both("move", "TASK-2", "todo", env=at(61))
    both("move", "TASK-2", "in_review", env=at(62))
    both("stats", env=at(63))
    both("event", "list", "--limit", "1000", env=at(63))
