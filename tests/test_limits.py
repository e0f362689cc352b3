"""WIP limits (SPEC §5 `limit`): set, list, rm; a claim into a full limit claims nothing;
`show` says why; limits hold under concurrent claimers on SQLite and PostgreSQL, checked
from the event log."""
import multiprocessing
import os
import re
import time

from conftest import assert_error, at
from test_postgres import needs_pg, pg_url  # noqa: F401 - the fixture
from test_schemas import out


def make(kb, n, **fields):
    extra = [part for key, value in fields.items() for part in (f"--{key}", value)]
    return [kb("create", f"t{i}", *extra).json["id"] for i in range(n)]


def test_set_list_rm_fit_the_schema(kb):
    limit = out(kb, "limit", "set", "in_progress", "3")
    assert (limit["status"], limit["max"], limit["count"], limit["full"]) == ("in_progress", 3, 0, False)
    assert limit["role"] is limit["project"] is limit["agent"] is None
    again = out(kb, "limit", "set", "in_progress", "2")              # one limit per scope: changed, not added
    assert again["max"] == 2 and again["created_at"] == limit["created_at"]
    out(kb, "limit", "set", "in_review", "1", "--agent", "rev", "--project", "web")
    listed = out(kb, "limit", "list")["limits"]
    assert [(x["status"], x["max"], x["agent"]) for x in listed] == [("in_progress", 2, None), ("in_review", 1, "rev")]
    gone = out(kb, "limit", "rm", "in_review", "--agent", "rev", "--project", "web")
    assert gone["agent"] == "rev"
    assert len(out(kb, "limit", "list")["limits"]) == 1
    assert_error(kb("limit", "rm", "in_review", "--agent", "rev"), "not_found")
    assert_error(kb("limit", "set", "todo", "3"), "invalid")
    assert_error(kb("limit", "set", "in_progress", "-1"), "invalid")
    assert_error(kb("limit", "set", "in_progress", "three"), "invalid")
    assert_error(kb("limit", "set", "in_progress", "1", "--role", ""), "invalid")
    table = kb("limit", "list", "--format", "table")
    assert table.rc == 0 and "0/2" in table.out


def test_a_claim_into_a_full_limit_claims_nothing_and_show_says_why(kb):
    ids = make(kb, 4)
    kb("limit", "set", "in_progress", "2")
    assert kb("claim", agent="w1").json["id"] == ids[0]
    assert kb("claim", agent="w2").json["id"] == ids[1]
    res = kb("claim", agent="w3")
    assert res.rc == 0 and res.json == {}                             # as "nothing to claim"
    assert kb("claim", "--exit-code", agent="w3").rc == 1
    assert kb("claim", ids[3], agent="w3").json == {}                 # by id too
    assert kb("batch", "claim", "5", agent="w3").json == []
    shown = out(kb, "show", ids[2])
    assert shown["ready"] is True
    assert {"kind": "wip_limit", "status": "in_progress", "max": 2, "count": 2,
            "role": None, "project": None, "agent": None} in shown["waiting_on"]
    assert out(kb, "limit", "list")["limits"][0]["full"] is True
    first = kb("claim", agent="w1")  # nothing: the holder's task stays
    assert first.json == {}
    task = kb("show", ids[0]).json
    token = kb("event", "list", "--task", ids[0], "--kind", "claimed").json["events"][0]["data"]["token"]
    assert kb("complete", task["id"], "--token", token, agent="w1").rc == 0
    assert kb("claim", agent="w3").json["id"] == ids[2]               # room again


def test_scoped_limits_pass_over_full_scopes(kb):
    web = make(kb, 2, project="web", priority="5")
    api = make(kb, 2, project="api")
    kb("limit", "set", "in_progress", "1", "--project", "web")
    assert kb("claim", agent="w1").json["id"] == web[0]
    assert kb("claim", agent="w2").json["id"] == api[0]               # web is full: the next best elsewhere
    assert kb("claim", web[1], agent="w2").json == {}
    waits = [w for w in out(kb, "show", web[1])["waiting_on"] if w["kind"] == "wip_limit"]
    assert waits and waits[0]["project"] == "web"
    assert not [w for w in out(kb, "show", api[1])["waiting_on"] if w["kind"] == "wip_limit"]
    # an agent's own limit stops that agent only
    kb("limit", "set", "in_progress", "1", "--agent", "w2")
    assert kb("claim", agent="w2").json == {}
    assert kb("claim", agent="w3").json["id"] == api[1]
    # a role's limit counts the tasks of that role
    ops = make(kb, 2, role="ops")
    kb("limit", "set", "in_progress", "0", "--role", "ops")
    assert kb("claim", "--role", "ops", agent="w4").json == {}
    kb("limit", "rm", "in_progress", "--role", "ops")
    assert kb("claim", "--role", "ops", agent="w4").json["id"] == ops[0]


def test_review_limits(kb):
    ids = [kb("create", f"r{i}", "--review").json["id"] for i in range(4)]
    for n, task in enumerate(ids[:3]):
        claim = kb("claim", task, agent=f"w{n}").json
        assert kb("complete", task, "--token", claim["lease_token"], agent=f"w{n}").json["status"] == "in_review"
    # a reviewer's own limit caps the reviews it holds
    kb("limit", "set", "in_review", "1", "--agent", "rev")
    assert kb("claim", "--for-review", agent="rev").json["id"] == ids[0]
    assert kb("claim", "--for-review", agent="rev").json == {}
    assert kb("claim", "--for-review", agent="rev2").json["id"] == ids[1]
    # a full review column stops new work in its scope: the reviews come first
    kb("limit", "set", "in_review", "3")
    assert kb("claim", agent="w9").json == {}
    assert [w["status"] for w in out(kb, "show", ids[3])["waiting_on"] if w["kind"] == "wip_limit"] == ["in_review"]
    kb("limit", "set", "in_review", "4")
    assert kb("claim", agent="w9").json["id"] == ids[3]


def test_stats_show_counts_against_limits(kb):
    make(kb, 3)
    kb("limit", "set", "in_progress", "1")
    kb("claim", agent="w1")
    stats = out(kb, "stats")
    [limit] = stats["limits"]
    assert (limit["status"], limit["count"], limit["max"], limit["full"]) == ("in_progress", 1, 1, True)
    assert limit["full_s"] >= 0
    assert "1/1" in kb("stats", "--format", "table").out


# -- concurrency ---------------------------------------------------------------------------

LIMIT, CLAIMERS, TASKS = 3, 40, 60


def _claimer(db, name, start):
    """One claimer process: claim, hold the task a moment, complete; until the board is empty.
    Every claimer has the board open before any claims (`start`, a barrier): a process started
    late on a busy machine would otherwise find the first one done with most of the tasks."""
    from kanban import Board

    os.environ.pop("KANBAN_NOW", None)
    with Board(db) as board:
        start.wait(120)
        while True:
            task = board.claim(name)
            if task:
                time.sleep(0.01)
                board.complete(task["id"], task["lease_token"], agent=name)
            elif not board.list(status="todo", limit=1)["tasks"]:
                return
            else:
                time.sleep(0.02)


def _race(db):
    from kanban import Board

    with Board(db) as board:
        board.create_many([{"title": f"t{n}"} for n in range(TASKS)])
        board.limit_set("in_progress", LIMIT)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(CLAIMERS)
    procs = [ctx.Process(target=_claimer, args=(db, f"c{n}", start)) for n in range(CLAIMERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(240)
        assert proc.exitcode == 0
    with Board(db) as board:
        events, cursor = [], None
        while True:
            page = board.events(since=cursor, limit=1000)
            events += page["events"]
            if not page["events"]:
                break
            cursor = page["cursor"]
        assert board.stats()["counts"]["done"] == TASKS
    held, most = 0, 0
    for event in events:                                              # the log, in commit order
        if event["kind"] == "claimed":
            held += 1
        elif event["kind"] in ("completed", "submitted_for_review", "released", "lease_expired"):
            held -= 1
        most = max(most, held)
    assert most == LIMIT, most                                        # the limit was reached, never passed
    assert sum(e["kind"] == "claimed" for e in events) == TASKS


def test_forty_claimers_never_pass_a_limit_of_three_on_sqlite(board_path):
    _race(str(board_path))


@needs_pg
def test_forty_claimers_never_pass_a_limit_of_three_on_postgres(pg_url):  # noqa: F811
    from conftest import run

    assert run("init", env={"KANBAN_DB": pg_url}).rc == 0
    _race(pg_url)


def test_a_move_into_a_full_column_is_a_conflict_naming_the_limit_unless_forced(kb):
    ids = [kb("create", f"r{i}").json["id"] for i in range(3)]
    kb("limit", "set", "in_review", "1")
    assert kb("move", ids[0], "in_review").json["status"] == "in_review"
    doc = assert_error(kb("move", ids[1], "in_review"), "conflict")
    assert "in_review" in doc["error"] and "1/1" in doc["error"] and doc["limit"]["max"] == 1
    assert kb("show", ids[1]).json["status"] == "todo"                # refused: nothing changed
    assert kb("move", ids[1], "in_review", "--force").json["status"] == "in_review"
    assert out(kb, "limit", "list")["limits"][0]["count"] == 2        # past its limit, by hand


def test_the_terminal_board_shows_a_column_against_its_limit(kb):
    make(kb, 3)
    kb("limit", "set", "in_progress", "2", env=at(0))
    kb("claim", agent="w1", env=at(0))
    kb("claim", agent="w2", env=at(0))
    text = kb("board", env={"COLUMNS": "100", **at(600)}).out
    assert "IN PROGRESS 2/2 full (full 10m in all)" in text            # full since the second claim
    doc = kb("board", "--format", "json").json
    [limit] = [c["limit"] for c in doc["columns"] if c["status"] == "in_progress"]
    assert (limit["max"], limit["count"]) == (2, 2) and limit["full_s"] >= 0
    assert [c["limit"] for c in doc["columns"] if c["status"] == "todo"] == [None]


def _headers(table):
    """Each column's header in a `--format table` table: the header line's text over each
    run of dashes of the line under it."""
    lines = table.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("---"))
    return [lines[rule - 1][m.start():m.end()].strip() for m in re.finditer(r"-+", lines[rule])]


def test_every_column_of_a_limit_table_has_a_header(kb):
    """`limit list --format table` and the WIP table of `stats --format table` had a column
    headed by nothing, its cells "full": the column now says what it is (full now: yes)."""
    make(kb, 2)
    kb("limit", "set", "in_progress", "1")
    kb("claim", agent="w1")
    listed = kb("limit", "list", "--format", "table").out
    assert _headers(listed) == ["status", "role", "project", "agent", "wip", "full now"], listed
    assert listed.splitlines()[-1].split()[-2:] == ["1/1", "yes"], listed
    stats = kb("stats", "--format", "table").out
    wip = stats[stats.index("WIP limit"):]
    assert _headers(wip) == ["WIP limit", "scope", "wip", "full now", "time full"], stats
    assert wip.splitlines()[-1].split()[-3:-1] == ["1/1", "yes"], stats
    # the other tables for people: no column without a header either
    for args in (["list"], ["event", "list"], ["dep", "list", "TASK-1"], ["show", "TASK-1"], ["commands"]):
        table = kb(*args, "--format", "table").out
        assert all(_headers(table)), (args, table)
