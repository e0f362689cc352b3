"""kanban export / kanban import: a whole board as JSON Lines, and back into an empty
board of either backend; export -> import -> export is byte-identical (SPEC §5).
The Postgres round trip needs KANBAN_TEST_PG."""
import json
import os
import uuid

import pytest
from conftest import assert_error, backends, drop_pg_schemas, new_pg_schema, run
from test_schemas import validate

SERVER = os.environ.get("KANBAN_TEST_PG", "")
needs_pg = pytest.mark.skipif(not SERVER, reason="KANBAN_TEST_PG is not set: name a PostgreSQL server "
                              "(e.g. KANBAN_TEST_PG=postgresql://postgres@127.0.0.1:5432/test)")


def busy_board(path):
    """A board with something in every table: goals, deps, leases, review, comments,
    runs, progress notes, a team manifest."""
    from kanban import Board

    with Board(str(path)) as board:
        goal = board.create("the goal", kind="goal", actor="lead")
        first = board.create("first", goal=goal["id"], body="ünïcode body ✓", priority=3, actor="lead")
        second = board.create("second", goal=goal["id"], depends_on=[first["id"]], review=True, actor="lead")
        board.create("later", project="p", role="qa", not_before="2031-01-01T00:00:00Z", actor="lead")
        claim = board.claim("w1")
        board.log(claim["id"], "half way", token=claim["lease_token"], agent="w1", ttl="1h")
        board.renew(claim["id"], claim["lease_token"], agent="w3")  # with w1's token: a holders row
        board.run_start(claim["id"], agent="w1", token=claim["lease_token"])
        board.complete(claim["id"], claim["lease_token"], summary="done \"quoted\"", agent="w1")
        claim = board.claim("w2")
        assert claim["id"] == second["id"]
        board.complete(claim["id"], claim["lease_token"], review=True, agent="w2")
        board.comment(second["id"], "looks right\nsecond line", actor="r1")
        board.set_team({"name": "t", "coordinator": "lead", "members": {"lead": {}, "w1": {}}})
    return path


def export(db):
    res = run("export", env={"KANBAN_DB": db})
    assert res.rc == 0, res
    return res.out


def new_board(db):
    assert run("init", env={"KANBAN_DB": db}).rc == 0, db
    return db


def test_export_import_export_is_byte_identical(tmp_path):
    source = str(busy_board(new_board(tmp_path / "a.db")))
    first = export(source)
    lines = first.splitlines()
    for line in lines:
        validate("kanban-export", json.loads(line))
    records = [json.loads(line) for line in lines]
    assert records[0]["type"] == "header" and records[-1]["type"] == "end"
    tables = {r["table"] for r in records if r["type"] == "row"}
    assert {"tasks", "deps", "events", "comments", "runs", "holders", "meta"} <= tables
    assert all(r["row"]["key"] not in ("lease_token", "schema_version") for r in records if r.get("table") == "meta")
    counters = {r["name"]: r["value"] for r in records if r["type"] == "counter"}
    given = [json.loads(r["row"]["data"])["token"] for r in records
             if r.get("table") == "events" and r["row"]["kind"] == "claimed"]
    assert counters["tasks"] == 4 and len(given) == 2 and counters["lease_token"] >= given[-1]

    target = str(new_board(tmp_path / "b.db"))
    res = run("import", "-", env={"KANBAN_DB": target}, input=first)
    assert res.rc == 0, res
    answer = validate("kanban-import", res.json)
    assert answer["tables"]["tasks"] == 4 and answer["counters"] == counters
    assert export(target) == first
    # the copy is a working board: ids and tokens go on, search finds the body, deps hold
    assert run("create", "fifth", env={"KANBAN_DB": target, "KANBAN_AGENT": "lead"}).json["id"] == "TASK-5"
    assert run("search", "unicode", env={"KANBAN_DB": target}).json["tasks"][0]["title"] == "first"
    for task in ("TASK-1", "TASK-2", "TASK-3", "TASK-4"):
        same = {"KANBAN_NOW": "2030-01-01T00:00:00Z"}
        assert run("show", task, env={"KANBAN_DB": target, **same}).json == \
            run("show", task, env={"KANBAN_DB": source, **same}).json
    assert run("claim", "--agent", "w1", env={"KANBAN_DB": target}).json["lease_token"] > counters["lease_token"]
    assert run("doctor", env={"KANBAN_DB": target}).json["ok"] is True


def test_import_refuses_a_board_that_is_not_empty(tmp_path):
    source = str(busy_board(new_board(tmp_path / "a.db")))
    text = export(source)
    before = text
    assert_error(run("import", "-", env={"KANBAN_DB": source}, input=text), "conflict")
    assert export(source) == before


def broken(text, how):
    lines = text.splitlines()
    if how == "cut":
        return "\n".join(lines[:-3]) + "\n"
    if how == "no end":
        return "\n".join(lines[:-1]) + "\n"
    if how == "end counts":
        return "\n".join(lines[:3] + lines[4:]) + "\n"
    if how == "not json":
        return "\n".join(lines[:2] + ["{nope"] + lines[2:]) + "\n"
    if how == "nested":
        return "\n".join(lines[:2] + ["[" * 100000 + "]" * 100000] + lines[2:]) + "\n"
    if how == "after end":
        return text + lines[1] + "\n"
    if how == "unknown table":
        return text.replace('"table":"comments"', '"table":"secrets"')
    if how == "unknown column":
        return text.replace('"body":"looks right', '"bodyx":"looks right')
    if how == "schema version":
        return text.replace('"schema_version":', '"schema_version":1', 1)
    if how == "no header":
        return "\n".join(lines[1:]) + "\n"
    if how == "unknown counter":
        return text.replace('"name":"comments"', '"name":"nothing"')
    if how == "a list value":
        return text.replace('"body":"looks right\\nsecond line"', '"body":["x"]')
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["cut", "no end", "end counts", "not json", "nested", "after end", "unknown table",
                                 "unknown column", "schema version", "no header", "unknown counter",
                                 "a list value"])
def test_import_refuses_what_it_cannot_place_and_places_nothing(tmp_path, how):
    text = export(str(busy_board(new_board(tmp_path / "a.db"))))
    bad = broken(text, how)
    assert bad != text
    target = str(new_board(tmp_path / "b.db"))
    empty = export(target)
    assert_error(run("import", "-", env={"KANBAN_DB": target}, input=bad), "invalid")
    assert export(target) == empty


def test_import_reads_a_file_or_says_it_is_missing(tmp_path):
    text = export(str(busy_board(new_board(tmp_path / "a.db"))))
    (tmp_path / "board.jsonl").write_text(text)
    target = str(new_board(tmp_path / "b.db"))
    assert_error(run("import", tmp_path / "nope.jsonl", env={"KANBAN_DB": target}), "not_found")
    assert run("import", tmp_path / "board.jsonl", env={"KANBAN_DB": target}).rc == 0
    assert export(target) == text


@needs_pg
def test_round_trip_sqlite_postgres_sqlite_is_byte_identical(tmp_path):
    from kanban.store.postgres import connect

    schema = "k_" + uuid.uuid4().hex[:12]
    url = SERVER + ("&" if "?" in SERVER else "?") + f"options=-csearch_path%3D{schema}"
    try:
        first = export(str(busy_board(new_board(tmp_path / "a.db"))))
        token = next(json.loads(line)["value"] for line in first.splitlines() if '"name":"lease_token"' in line)
        new_board(url)
        res = run("import", "-", env={"KANBAN_DB": url}, input=first)
        assert res.rc == 0, res
        assert validate("kanban-import", res.json)["db"].startswith("postgresql://")
        assert export(url) == first
        assert_error(run("import", "-", env={"KANBAN_DB": url}, input=first), "conflict")
        back = str(new_board(tmp_path / "back.db"))
        assert run("import", "-", env={"KANBAN_DB": back}, input=export(url)).rc == 0
        assert export(back) == first
        # the server board works on from where the file was
        assert run("create", "fifth", env={"KANBAN_DB": url, "KANBAN_AGENT": "lead"}).json["id"] == "TASK-5"
        assert run("search", "unicode", env={"KANBAN_DB": url}).json["tasks"][0]["title"] == "first"
        assert run("claim", "--agent", "w1", env={"KANBAN_DB": url}).json["lease_token"] == token + 1
    finally:
        with connect(SERVER) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.mark.parametrize("source", ["stdin", "file"])
def test_a_round_trip_keeps_texts_with_unicode_line_separators(tmp_path, source):
    """Only "\\n" ends a JSON Lines record: an export holds U+2028, U+2029 and U+0085 raw
    inside its strings (JSON needs no escape for them), and import must not cut there."""
    origin = str(new_board(tmp_path / "a.db"))
    env = {"KANBAN_DB": origin, "KANBAN_AGENT": "lead"}
    lines = json.dumps({"title": "a\u2028b", "body": "c\u2029d\u0085e\x0bf\x1cg"}, ensure_ascii=False)
    assert run("create", "--stdin", env=env, input=lines + "\n").rc == 0
    assert run("comment", "TASK-1", "--message", "line\u2028separator", env=env).rc == 0
    first = export(origin)
    assert "\u2028" in first and "\u0085" in first
    target = str(new_board(tmp_path / "b.db"))
    if source == "stdin":
        res = run("import", "-", env={"KANBAN_DB": target}, input=first)
    else:
        (tmp_path / "board.jsonl").write_text(first, encoding="utf-8")
        res = run("import", tmp_path / "board.jsonl", env={"KANBAN_DB": target})
    assert res.rc == 0, res
    assert export(target) == first
    assert run("show", "TASK-1", env={"KANBAN_DB": target}).json["title"] == "a\u2028b"


# every column of an export that holds a time (milliseconds since 1970), as kanban prints them
TIMES = {"tasks": {"lease_until", "not_before", "started_at", "finished_at", "created_at", "updated_at"},
         "events": {"at", "expires_at"}, "comments": {"at"}, "runs": {"started_at", "heartbeat_at", "ended_at"},
         "wip_limits": {"created_at", "updated_at"}, "access_tokens": {"created_at", "revoked_at"}}


def empty_board_on(backend, folder):
    """A new, empty board on `backend` (a SQLite file in `folder`, or a Postgres schema of
    its own, dropped afterwards): a fixture's body, to `yield from`."""
    if backend == "sqlite":
        yield new_board(str(folder / "target.db"))
        return
    schema, url = new_pg_schema()
    try:
        yield new_board(url)
    finally:
        drop_pg_schemas(schema)


@pytest.fixture(params=backends())
def empty_board(request, tmp_path):
    """A new, empty board on this test's backend (the import's target)."""
    yield from empty_board_on(request.param, tmp_path)


def test_import_refuses_a_time_outside_the_years_1_to_9999_and_places_nothing(tmp_path, empty_board):
    """A time column an export carries holds a time every answer can print (ISO-8601, years
    1 to 9999): a lease_until of 99999999999999999 ms imported, `list` printed year 3170843
    and `board` failed.  Each such value, in each time column, is refused as invalid,
    naming the line and the field, and the board stays empty."""
    from kanban import Board

    source = new_board(tmp_path / "a.db")
    with Board(str(source)) as board:
        board.limit_set("in_progress", 3, role="qa", actor="lead")
        board.token_revoke(board.token_add("w1", actor="lead")["id"], actor="lead")
    with Board(str(busy_board(source))) as board:
        assert board.claim_review("w1")["lease_until"]                   # a lease in the export
    text = export(str(source))
    lines = text.splitlines()
    records = [json.loads(line) for line in lines]
    for record in records:
        if record["type"] == "row":
            validate("kanban-export", record)
    empty = export(empty_board)
    seen = set()
    for number, record in enumerate(records, 1):
        if record["type"] != "row":
            continue
        table, row = record["table"], record["row"]
        for column in sorted(TIMES.get(table, set()) & set(row)):
            if (table, column) in seen or row[column] is None:
                continue
            seen.add((table, column))
            for value in (99999999999999999, -62135596800001, 253402300800000, "2030-01-01T00:00:00Z", 1.5):
                bad = dict(record, row=dict(row, **{column: value}))
                changed = "\n".join(lines[:number - 1] + [json.dumps(bad)] + lines[number:]) + "\n"
                res = run("import", "-", env={"KANBAN_DB": empty_board}, input=changed)
                assert_error(res, "invalid")
                message = res.error["error"]
                assert f"line {number} " in message and f"{table}.{column}" in message, message
                assert export(empty_board) == empty
    assert seen == {(table, column) for table, columns in TIMES.items() for column in columns}, seen
    # the edges themselves are times: the first and last millisecond of the years 1 to 9999
    first = next(n for n, r in enumerate(records, 1) if r["type"] == "row" and r["table"] == "tasks")
    row = records[first - 1]["row"]
    edged = dict(records[first - 1], row=dict(row, created_at=-62135596800000, not_before=253402300799999))
    res = run("import", "-", env={"KANBAN_DB": empty_board},
              input="\n".join(lines[:first - 1] + [json.dumps(edged)] + lines[first:]) + "\n")
    assert res.rc == 0, res
    listed = run("list", env={"KANBAN_DB": empty_board}).json["tasks"]
    assert {t["created_at"] for t in listed} >= {"0001-01-01T00:00:00Z"}, listed
