"""kanban import refuses a file whose rows do not fit together (lib/kanban/fit.py), and
places every export of a real, busy board: on SQLite and on PostgreSQL (KANBAN_TEST_PG).

Before these checks an import placed, for instance, a task held by an agent with no
lease_until, a todo task with a lease, a done task with no finished_at, a lease token past
the token counter (the next claim would hand it out again), a dependency on a task the
file does not hold, or a cycle of dependencies: states no kanban command leaves, which
the board then misreads (doctor errors, claims that never come, tokens given twice).
"""
import copy
import json
import os
import sqlite3

import invariants
import pytest
from conftest import PG_SERVER, T0, assert_error, backends, drop_pg_schemas, new_pg_schema, run
from test_export import empty_board_on, export, new_board
from test_schemas import validate


def at(seconds):
    os.environ["KANBAN_NOW"] = str(T0 + seconds)


def busy_board(db):
    """A board where every status is held and every link made by kanban's own verbs: goals
    (one inside another, one done), deps (met, unmet, on a cancelled task), a task in
    progress under a renewed lease with an open run, one in review under a review claim,
    one in review unclaimed, done, failed at max_attempts by an expired lease, blocked from
    todo and from in progress, cancelled, reopened, rejected, moved by hand; comments, a
    WIP limit, an access token and, last, a team.  {name: task id}."""
    from kanban import Board

    saved = os.environ.get("KANBAN_NOW")
    try:
        at(0)
        with Board(str(db)) as board:
            def new(name, **fields):
                return board.create(name, actor="lead", **fields)["id"]

            ids = {"goal": new("the goal", kind="goal")}
            ids["sub_goal"] = new("a goal inside it", kind="goal", goal=ids["goal"])
            ids["done"] = new("done", goal=ids["sub_goal"], key="key-done", body="ünïcode ✓")
            ids["held"] = new("held", goal=ids["sub_goal"], depends_on=[ids["done"]], priority=2)
            ids["review_held"] = new("in review, claimed", goal=ids["goal"], review=True, depends_on=[ids["done"]])
            ids["review_open"] = new("in review, unclaimed", review=True)
            ids["failed"] = new("failed", max_attempts=1)
            ids["blocked"] = new("blocked from todo")
            ids["blocked_held"] = new("blocked from in progress")
            ids["cancelled"] = new("cancelled")
            ids["reopened"] = new("reopened")
            ids["rejected"] = new("rejected", review=True)
            ids["moved"] = new("moved to done")
            ids["waiting"] = new("waits", depends_on=[ids["held"], ids["cancelled"]], project="p", role="qa")
            ids["done_goal"] = new("a done goal", kind="goal")
            ids["done_goal_task"] = new("its task", goal=ids["done_goal"])

            def finish(name, agent="w1", **fields):
                claim = board.claim(agent, ids[name])
                board.complete(ids[name], claim["lease_token"], agent=agent, **fields)
                return claim

            finish("done", summary="all of it")
            at(10)
            held = board.claim("w1", ids["held"], lease="1h")
            board.log(ids["held"], "half way", token=held["lease_token"], agent="w1")
            board.renew(ids["held"], held["lease_token"], agent="w3")  # w1's token: w3 becomes a holder
            board.run_start(ids["held"], agent="w1", token=held["lease_token"])
            finish("review_held", agent="w2")
            board.claim_review("r1", ids["review_held"], lease="1h")
            board.comment(ids["review_held"], "looking", actor="r1")
            finish("review_open", agent="w2")
            finish("rejected", agent="w3")
            review = board.claim_review("r2", ids["rejected"])
            board.reject(ids["rejected"], "not yet", agent="r2", token=review["lease_token"])
            board.claim("w4", ids["failed"], lease="1s")
            board.block(ids["blocked"], "waiting on a person", agent="lead")
            blocked = board.claim("w5", ids["blocked_held"])
            board.block(ids["blocked_held"], "stuck", token=blocked["lease_token"], agent="w5")
            board.cancel(ids["cancelled"], reason="not needed", actor="lead")
            finish("reopened")
            board.reopen(ids["reopened"], actor="lead")
            board.move(ids["moved"], "done", actor="lead")
            finish("done_goal_task")
            at(60)
            assert board.reap(actor="lead")["expired"][0]["id"] == ids["failed"]
            board.limit_set("in_progress", 5, actor="lead")
            board.token_add("w1", actor="lead")
            board.set_team({"name": "t", "coordinator": "lead", "members": {"lead": {}, "w1": {}}})
            statuses = {t["id"]: t["status"] for t in board.list()["tasks"]}
    finally:
        if saved is None:
            os.environ.pop("KANBAN_NOW", None)
        else:
            os.environ["KANBAN_NOW"] = saved
    assert set(statuses.values()) == {"todo", "in_progress", "in_review", "blocked", "done", "failed", "cancelled"}
    assert statuses[ids["goal"]] == "todo" and statuses[ids["done_goal"]] == "done", statuses
    return {name: int(task_id.split("-")[1]) for name, task_id in ids.items()}


def content(db):
    """Everything a board holds: on SQLite every table's rows (sqlite_sequence, the meta
    keys an export leaves out) as SQL text; on PostgreSQL its export (rows and counters)."""
    if str(db).startswith("postgresql://"):
        return export(db)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture(params=backends())
def backend(request):
    return request.param


def board_on(backend, tmp_path, name, schemas):
    if backend == "sqlite":
        return new_board(str(tmp_path / f"{name}.db"))
    schema, url = new_pg_schema()
    schemas.append(schema)
    return new_board(url)


@pytest.fixture
def schemas():
    made = []
    yield made
    if made:
        drop_pg_schemas(*made)


def test_an_export_of_a_busy_board_imports_on_both_backends(tmp_path, backend, schemas):
    """Every status, leases (a worker's, a reviewer's), tokens, deps, goals: the export of a
    board that kanban's verbs made is placed whole into a new board of either backend, which
    exports the same bytes and which doctor and tests/invariants.py (the soak's checker)
    find as sound as the original."""
    source = board_on(backend, tmp_path, "source", schemas)
    busy_board(source)
    text = export(source)
    before = invariants.check(str(source))
    targets = [("sqlite", "sqlite")] + ([("postgres", "postgres")] if PG_SERVER else [])
    for target_backend, name in targets:
        target = board_on(target_backend, tmp_path, f"copy-{name}", schemas)
        res = run("import", "-", env={"KANBAN_DB": target}, input=text)
        assert res.rc == 0, res
        assert export(target) == text
        doctor = run("doctor", env={"KANBAN_DB": target})
        assert doctor.json["ok"] is True, doctor.json
        after = invariants.check(str(target))
        assert after["violations"] == before["violations"] == [], after
        assert after["outcome"] == before["outcome"]


# -- one file per rule that does not fit --------------------------------------------------------

def task_row(records, task_id):
    return next(r["row"] for r in records if r["type"] == "row" and r["table"] == "tasks"
                and r["row"]["id"] == task_id)


def rows_of(records, table):
    return [r["row"] for r in records if r["type"] == "row" and r["table"] == table]


def counter(records, name):
    return next(r for r in records if r["type"] == "counter" and r["name"] == name)


def add_row(records, table, row):
    records.insert(1, {"type": "row", "table": table, "row": row})


def lease_of(records, ids, name="held"):
    row = task_row(records, ids[name])
    return {column: row[column] for column in ("claimed_by", "lease_until", "lease_token", "lease_ms")}


def _held_todo(records, ids):
    task_row(records, ids["held"])["status"] = "todo"


def _done_leased(records, ids):
    task_row(records, ids["done"]).update(lease_of(records, ids))


def _goal_claimed(records, ids):
    task_row(records, ids["done_goal"]).update(lease_of(records, ids), status="in_progress", finished_at=None,
                                               started_at=T0 * 1000)


def _no_holder(records, ids):
    task_row(records, ids["held"]).update({column: None for column in lease_of(records, ids)})


def _token_past_counter(records, ids):
    task_row(records, ids["held"])["lease_token"] = counter(records, "lease_token")["value"] + 1


def _event_token_past_counter(records, ids):
    row = next(row for row in rows_of(records, "events")
               if row["kind"] == "claimed" and row["task_id"] == ids["review_held"] and row["actor"] == "r1")
    row["data"] = json.dumps(dict(json.loads(row["data"]), token=counter(records, "lease_token")["value"] + 5))


def _run_token_past_counter(records, ids):
    rows_of(records, "runs")[0]["lease_token"] = counter(records, "lease_token")["value"] + 1


def _cycle(records, ids):
    # done <- held already; now done waits on held too (its unmet_deps as the board would count)
    add_row(records, "deps", {"task_id": ids["done"], "dep_id": ids["held"]})
    task_row(records, ids["done"])["unmet_deps"] = 1


def _goal_cycle(records, ids):
    # a task of the goal waits on the goal (SPEC: "a task depending on its own goal")
    add_row(records, "deps", {"task_id": ids["review_held"], "dep_id": ids["goal"]})
    task_row(records, ids["review_held"])["unmet_deps"] = 1


def _tasks_counter_behind(records, ids):
    counter(records, "tasks")["value"] = max(ids.values()) - 1


# (name, change, the task the message names (or None), the fields it names)
BROKEN = [
    ("holder without lease_until", lambda r, i: task_row(r, i["held"]).update(lease_until=None),
     "held", ["lease_until"]),
    ("holder without lease_token", lambda r, i: task_row(r, i["held"]).update(lease_token=None),
     "held", ["lease_token"]),
    ("lease_until without a holder", lambda r, i: task_row(r, i["review_held"]).update(claimed_by=None),
     "review_held", ["claimed_by"]),
    ("a todo task with a lease", _held_todo, "held", ["status", "claimed_by", "lease_token"]),
    ("a done task with a lease", _done_leased, "done", ["status", "claimed_by"]),
    ("a goal in progress", _goal_claimed, "done_goal", ["kind", "status"]),
    ("in progress with no holder", _no_holder, "held", ["status", "claimed_by", "lease_until"]),
    ("in progress with no started_at", lambda r, i: task_row(r, i["held"]).update(started_at=None),
     "held", ["started_at"]),
    ("a lease token past the counter", _token_past_counter, "held", ["lease_token"]),
    ("a claimed event's token past the counter", _event_token_past_counter, "review_held", ["lease_token"]),
    ("a run's token past the counter", _run_token_past_counter, "held", ["lease_token"]),
    ("done without finished_at", lambda r, i: task_row(r, i["done"]).update(finished_at=None),
     "done", ["done", "finished_at"]),
    ("failed without finished_at", lambda r, i: task_row(r, i["failed"]).update(finished_at=None),
     "failed", ["failed", "finished_at"]),
    ("open with finished_at", lambda r, i: task_row(r, i["reopened"]).update(finished_at=T0 * 1000),
     "reopened", ["todo", "finished_at"]),
    ("blocked without reason", lambda r, i: task_row(r, i["blocked"]).update(reason=None),
     "blocked", ["blocked", "reason"]),
    ("goal_id names a task", lambda r, i: task_row(r, i["waiting"]).update(goal_id=i["done"]),
     "waiting", ["goal_id"]),
    ("goal_id names no task", lambda r, i: task_row(r, i["waiting"]).update(goal_id=999),
     "waiting", ["goal_id", "TASK-999"]),
    ("a dependency on a task not in the file",
     lambda r, i: rows_of(r, "deps")[0].update(dep_id=999), None, ["TASK-999"]),
    ("a dependency of a task not in the file",
     lambda r, i: rows_of(r, "deps")[0].update(task_id=999), None, ["TASK-999"]),
    ("a dependency on itself",
     lambda r, i: rows_of(r, "deps")[0].update(dep_id=rows_of(r, "deps")[0]["task_id"]), None, ["itself"]),
    ("a dependency cycle", _cycle, "done", ["depends on", "cycle"]),
    ("a task waiting on its own goal", _goal_cycle, "goal", ["is the goal of", "depends on", "cycle"]),
    ("unmet_deps that are not the deps' count", lambda r, i: task_row(r, i["waiting"]).update(unmet_deps=0),
     "waiting", ["unmet_deps"]),
    ("a status that is none of the seven", lambda r, i: task_row(r, i["blocked"]).update(status="parked"),
     "blocked", ["status"]),
    ("attempts that are not a number", lambda r, i: task_row(r, i["failed"]).update(attempts="one"),
     "failed", ["attempts"]),
    ("a task twice", lambda r, i: r.insert(1, copy.deepcopy(next(x for x in r if x.get("table") == "tasks"))),
     "goal", ["twice"]),
    ("an idempotency key twice", lambda r, i: task_row(r, i["moved"]).update(idempotency_key="key-done"),
     "moved", ["idempotency_key"]),
    ("a comment of a task not in the file", lambda r, i: rows_of(r, "comments")[0].update(task_id=999),
     None, ["comments.task_id", "TASK-999"]),
    ("a holder of a task not in the file", lambda r, i: rows_of(r, "holders")[0].update(task_id=999),
     None, ["holders.task_id", "TASK-999"]),
    ("an event of a task not in the file", lambda r, i: rows_of(r, "events")[0].update(task_id=999),
     None, ["events.task_id", "TASK-999"]),
    ("an event whose data is not JSON", lambda r, i: rows_of(r, "events")[0].update(data="{nope"),
     None, ["data"]),
    ("a tasks counter behind the ids", _tasks_counter_behind, None, ["tasks counter"]),
]


def render(records):
    """The records as an export's lines, the end record counting them again."""
    body = [r for r in records if r["type"] != "end"]
    end = {"type": "end", "rows": sum(r["type"] == "row" for r in body),
           "counters": sum(r["type"] == "counter" for r in body)}
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in body + [end])


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """The busy board's export (records) and its task ids, made once."""
    db = new_board(str(tmp_path_factory.mktemp("fit") / "source.db"))
    ids = busy_board(db)
    return [json.loads(line) for line in export(db).splitlines()], ids


@pytest.fixture(scope="module", params=backends())
def target(request, tmp_path_factory):
    """An empty board of each backend, for every broken file in turn: each is refused and
    leaves the board as it was, so the next one finds it empty again."""
    yield from empty_board_on(request.param, tmp_path_factory.mktemp("target"))


def test_the_unbroken_file_imports(source, tmp_path):
    records, _ = source
    db = new_board(str(tmp_path / "whole.db"))
    res = run("import", "-", env={"KANBAN_DB": db}, input=render(records))
    assert res.rc == 0, res


@pytest.mark.parametrize("name,change,task,words", BROKEN, ids=[case[0] for case in BROKEN])
def test_import_refuses_rows_that_do_not_fit_and_changes_nothing(source, target, name, change, task, words):
    records, ids = source
    records = copy.deepcopy(records)
    change(records, ids)
    text = render(records)
    assert text != render(source[0]), name
    before = content(target)
    res = run("import", "-", env={"KANBAN_DB": target}, input=text)
    # a cycle is refused as `dep add` refuses one (SPEC: `cycle`); every other misfit is `invalid`
    error = validate("error", assert_error(res, "cycle" if "cycle" in words else "invalid"))
    message = error["error"]
    assert message.startswith(("line ", "the export: ")) and "\n" not in message, message
    if task is not None:
        assert error["task"] == f"TASK-{ids[task]}" and f"TASK-{ids[task]}" in message, error
    for word in words:
        assert word in message or word in error.get("fields", []), (word, error)
    assert content(target) == before
