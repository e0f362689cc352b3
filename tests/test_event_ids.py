"""Event ids and fencing tokens on a SQLite board (schema 9): events have no AUTOINCREMENT
counter, so a new event's id is the highest plus one, and a claim's token is drawn from
the event ids.  The newest event is never pruned, so no id is ever given out twice (an
`event list --since` cursor and an SSE Last-Event-ID count on it), and every claim's
token is larger than every token before it: across prunes, set claims, review claims,
reaped leases, the migration from schema 8 and an export/import."""
import json

import apsw
import pytest
from conftest import T0, run

from kanban import Board
from kanban.store import SCHEMA_VERSION
from kanban.store.sqlite import APPLICATION_ID, MIGRATIONS

HOUR_MS = 3_600_000


@pytest.fixture
def clock(monkeypatch):
    """clock(seconds): the board clock at T0 + seconds."""
    def move(seconds):
        monkeypatch.setenv("KANBAN_NOW", str(T0 + seconds))
    move(0)
    return move


def tokens_of_claims(board):
    """Every `claimed` event's token, in event order."""
    events = board.db.read(lambda: board.db.rows("SELECT data FROM events WHERE kind = 'claimed' ORDER BY id"))
    return [json.loads(e["data"])["token"] for e in events]


def strictly_increasing(values):
    return all(a < b for a, b in zip(values, values[1:], strict=False))


def schema_8_board(path):
    """A board as schema 8 left it, written row by row as that release wrote them: three
    tasks, TASK-1 held under token 6 (the counter at 7: token 7 went to a claim of TASK-3
    that was then released), and the newest event, a progress note (id 9), pruned, so
    sqlite_sequence is ahead of the highest id."""
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL")
    with conn:
        for step in MIGRATIONS[:8]:
            conn.execute(step)
        conn.execute("PRAGMA user_version=8")
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        ms = T0 * 1000
        for n in (1, 2, 3):
            conn.execute("INSERT INTO tasks(title, created_at, updated_at) VALUES (?, ?, ?)", (f"t{n}", ms, ms))
            conn.execute("INSERT INTO events(task_id, kind, actor, at, data) VALUES (?, 'created', 'x', ?, '{}')",
                         (n, ms))
        conn.execute("UPDATE tasks SET status = 'in_progress', claimed_by = 'w1', lease_until = ?,"
                     " lease_token = 6, lease_ms = ?, started_at = ? WHERE id = 1", (ms + HOUR_MS, HOUR_MS, ms))
        conn.execute("INSERT INTO holders(task_id, agent) VALUES (1, 'w1'), (3, 'w2')")
        for task, kind, actor, data in ((1, "claimed", "w1", '{"token":6}'), (3, "claimed", "w2", '{"token":7}'),
                                        (3, "released", "w2", '{"token":7}'),
                                        (1, "progress", "w1", '{"message":"half way"}')):
            conn.execute("INSERT INTO events(task_id, kind, actor, at, data, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                         (task, kind, actor, ms, data, ms + 1 if kind == "progress" else None))
        conn.execute("UPDATE meta SET value = 7 WHERE key = 'lease_token'")
        conn.execute("DELETE FROM events WHERE kind = 'progress'")  # schema 8's prune took the newest event
        assert conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone() == (7,)
        assert conn.execute("SELECT max(id) FROM events").fetchone() == (6,)
    conn.close()


def test_a_schema_8_board_migrates_and_gives_out_no_id_or_token_twice(tmp_path, clock):
    path = tmp_path / "board.db"
    schema_8_board(path)
    with Board(str(path)) as board:
        assert board.db.version == SCHEMA_VERSION >= 9
        schema = dict(board.db.read(lambda: board.db.conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE tbl_name IN ('events', 'task_events')").fetchall()))
        assert set(schema) == {"events", "events_task", "events_expiry", "task_events"}
        assert "AUTOINCREMENT" not in schema["events"].upper()
        assert board.db.read(lambda: board.db.rows("SELECT name FROM sqlite_sequence")) == [{"name": "tasks"}]
        assert board.db.integrity() == ["ok"]
        # what was there is there, the view reads it, and the counters are what schema 8 had
        assert [e["kind"] for e in board.events()["events"]] == ["created"] * 3 + ["claimed", "claimed", "released"]
        assert board.db.read(lambda: board.db.scalar(
            "SELECT count(*) FROM task_events WHERE kind = 'status_changed'")) == 3
        assert board.db.read(board.db.counters) == {"tasks": 3, "events": 7, "lease_token": 7}
        # id 7 was given out (the pruned note): it stays taken, by an expired note no reader sees
        assert board.events(since="6") == {"events": [], "cursor": "6"}
        # the next claim gets the counter's next token, and the next id; the holder works on
        claim = board.claim("w3")
        assert claim["id"] == "TASK-2" and claim["lease_token"] == 8
        assert [(e["id"], e["data"]["token"]) for e in board.events(since="6")["events"]] == [(8, 8)]
        assert board.log("TASK-1", "still here", token=6, agent="w1", ttl="never")["id"] == 9
        board.complete("TASK-1", 6, agent="w1")
        review = board.claim("w4", "TASK-3")
        assert review["lease_token"] > 8
        # the placeholder goes with the next prune, now that newer events exist
        assert board.prune("30d")["pruned"] == 1
        assert board.db.read(lambda: board.db.scalar("SELECT count(*) FROM events WHERE id = 7")) == 0
    assert run("doctor", env={"KANBAN_DB": str(path)}).json["ok"] is True


def test_the_newest_event_is_never_pruned_so_its_id_is_never_given_out_again(tmp_path, clock):
    with Board(str(tmp_path / "board.db"), create=True) as board:
        task = board.create("t", actor="x")["id"]
        claim = board.claim("w1")
        note = board.log(task, "one", agent="w1", token=claim["lease_token"], ttl="1m")["id"]
        clock(3600)  # the note has expired: still the newest event, so it stays
        assert board.prune("30d")["pruned"] == 0
        assert board.events(since=str(note - 1))["events"] == []  # expired: no reader sees it
        later = board.log(task, "two", agent="w1")["id"]
        assert later == note + 1
        assert board.prune("30d")["pruned"] == 1  # no longer the newest
        assert board.db.read(board.db.counters)["events"] == later
        follow = board.events(since=str(note))
        assert [e["id"] for e in follow["events"]] == [later]
        clock(30 * 86400)
        assert board.prune("1d")["pruned"] == 0  # the note "two" is past the cut, but the newest
        again = board.create("u", actor="x")
        assert board.events(since=str(later))["events"][0]["id"] == later + 1
        assert again["id"] == "TASK-2"


def test_tokens_strictly_increase_over_every_kind_of_claim(tmp_path, clock):
    given = []
    with Board(str(tmp_path / "board.db"), create=True) as board:
        for n in range(12):
            board.create(f"t{n}", actor="x", review=n < 2)
        first = board.claim("w1", lease="1m")
        given.append(first["lease_token"])
        given += [c["lease_token"] for c in board.claim_many("w2", 3)]          # one set claim
        board.complete(first["id"], first["lease_token"], agent="w1", review=True)
        second = board.claim("w1")
        given.append(second["lease_token"])
        board.complete(second["id"], second["lease_token"], agent="w1", review=True)
        given.append(board.claim_review("r1")["lease_token"])                 # a review claim
        board.log(second["id"], "note", agent="w1", ttl="1s")
        clock(120)  # the note has expired; the leases have not
        assert board.prune("30d")["pruned"] == 0                              # the note is the newest
        given.append(board.claim("w3", lease="1s")["lease_token"])
        clock(3600)  # every lease has run out: the next claim reaps them first
        given.append(board.claim("w4")["lease_token"])
        assert board.prune("30d")["pruned"] == 1                              # now it goes
        given += [c["lease_token"] for c in board.claim_many("w5", 4)]
        given.append(board.claim_review("r2")["lease_token"])
        assert len(given) == 13 and strictly_increasing(given), given
        assert tokens_of_claims(board) == given
        counters = board.db.read(board.db.counters)
        assert counters["lease_token"] >= given[-1]
        exported = board.export_lines()
    # an export carries the token counter: the imported board goes on past every token
    with Board(str(tmp_path / "copy.db"), create=True) as copy:
        copy.import_lines(exported)
        assert copy.db.read(copy.db.counters) == counters
        assert copy.export_lines() == exported
        assert copy.claim("w6")["lease_token"] == counters["lease_token"] + 1
        assert tokens_of_claims(copy)[:-1] == given


def test_an_import_with_an_events_counter_ahead_of_its_events_keeps_those_ids_taken(tmp_path, clock):
    """An export whose events counter is ahead of its highest event id: a server board
    whose newest events were pruned before schema 9.  The import places an expired note at
    the counter's id, so the ids before it are not given out again."""
    with Board(str(tmp_path / "a.db"), create=True) as board:
        board.create("t", actor="x")
        board.claim("w1")
        lines = board.export_lines()
    records = [json.loads(line) for line in lines]
    counters = {r["name"]: r["value"] for r in records if r["type"] == "counter"}
    assert counters == {"tasks": 1, "events": 2, "lease_token": 2}
    ahead = [line.replace('"name":"events","type":"counter","value":2', '"name":"events","type":"counter","value":9')
             for line in lines]
    assert ahead != lines
    with Board(str(tmp_path / "b.db"), create=True) as copy:
        assert copy.import_lines(ahead)["counters"] == {"events": 9, "lease_token": 2, "tasks": 1}
        assert copy.events(since="2") == {"events": [], "cursor": "2"}
        copy.create("u", actor="x")
        assert copy.events(since="2")["events"][0]["id"] == 10
        claim = copy.claim("w2")
        assert claim["id"] == "TASK-2" and claim["lease_token"] > 2  # past the exported token counter
