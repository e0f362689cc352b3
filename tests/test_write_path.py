"""A write alone: the lock's common case written out in SqliteStore._write_alone.

From a handle's third write on (its second maps the lock file's words), a write that
finds nobody queued, no trace asked for and the flock free takes, counts, lets go,
syncs and marks its commit without calling WriterLock.acquire, committing, release,
synced or SqliteStore._durable.  Anything else goes through those methods.  These
tests run real writes on real board files and check both ways give the same board,
the same lock file words and the same errors.
"""
import fcntl
import os
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT

from kanban import Board, KanbanError
from kanban.store.sqlite import _SERVED, SqliteStore, WriterLock, synced_total

METHODS = [(WriterLock, "acquire"), (WriterLock, "_acquire"), (WriterLock, "committing"),
           (WriterLock, "release"), (WriterLock, "synced"), (SqliteStore, "_durable")]


@pytest.fixture
def calls(monkeypatch):
    """The names of the lock methods the writes call, in order."""
    seen = []

    def counted(name, method):
        def call(*args, **kwargs):
            seen.append(name)
            return method(*args, **kwargs)
        return call
    for owner, name in METHODS:
        monkeypatch.setattr(owner, name, counted(name, getattr(owner, name)))
    return seen


@pytest.fixture(autouse=True)
def alone():
    """Every write here is a write alone: the process has no other thread (with threads,
    writes share commits)."""
    assert threading.active_count() == 1


def marks(board):
    """The lock file's words as another process reads them: counter, committed, synced, served."""
    data = open(board.db.lock.path, "rb").read(32)
    return [int.from_bytes(data[n:n + 8], "little") for n in range(0, 32, 8)]


def test_the_first_two_writes_call_the_lock_the_next_ones_do_not(board, calls):
    syncs = synced_total()
    board.create("one")
    assert calls == ["acquire", "_acquire", "committing", "release", "_durable", "synced"]
    calls.clear()
    board.create("two")  # maps the words (in committing)
    assert calls == ["acquire", "committing", "release", "_durable", "synced"]
    assert board.db.lock.words is not None
    calls.clear()
    before = marks(board)
    for n in range(3):
        board.create(f"more {n}")
    assert calls == []
    after = marks(board)
    assert after[1] == after[2] == before[1] + 3  # each commit counted, then said synced
    assert after[0] == before[0] and after[3] == before[3]  # no ticket taken
    assert synced_total() == syncs + 5  # every write synced the WAL itself
    assert [t["title"] for t in board.list()["tasks"]][-3:] == ["more 0", "more 1", "more 2"]


def test_a_trace_takes_the_lock_methods_and_notes_every_hold(board, calls):
    for n in range(2):
        board.create(f"warm {n}")
    calls.clear()
    holds = board.db.lock.trace = []
    board.create("traced")
    assert calls == ["acquire", "_acquire", "committing", "release", "_durable", "synced"]
    assert len(holds) == 1
    asked, got, released = holds[0]
    assert asked <= got <= released
    board.db.lock.trace = None
    calls.clear()
    board.create("untraced")
    assert calls == [] and len(holds) == 1


HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
fcntl.flock(fd, fcntl.LOCK_UN)
"""


def test_a_lock_held_elsewhere_sends_the_write_to_the_queue(board, calls):
    """The flock taken: the write queues (a ticket) as acquire() would, and lets go
    through release(), which says its ticket is served."""
    for n in range(2):
        board.create(f"warm {n}")
    calls.clear()
    words = board.db.lock.words
    issued = words[0]
    holder = subprocess.Popen([sys.executable, "-c", HOLD, board.db.lock.path, "0.3"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        board.create("after the holder")
        assert time.monotonic() - started >= 0.1  # it waited for the holder
    finally:
        holder.wait(30)
    assert calls == ["_acquire", "committing", "release", "_durable", "synced"]
    assert words[0] == issued + 1 and words[_SERVED] == issued + 1  # its ticket, served
    assert board.db.lock.ticket is None
    calls.clear()
    board.create("nobody queued again")
    assert calls == []


def test_a_ticket_not_served_sends_the_write_to_acquire(board, calls):
    """A ticket issued and not said served (its holder died, or is an older kanban): the
    write asks the kernel through acquire() whether anyone holds it."""
    for n in range(2):
        board.create(f"warm {n}")
    words = board.db.lock.words
    words[0] += 1  # a ticket whose holder is gone: its byte is held by nobody
    calls.clear()
    board.create("past a dead ticket")
    assert calls == ["acquire", "committing", "release", "_durable", "synced"]
    assert board.show("TASK-3")["title"] == "past a dead ticket"


def flock_free(path):
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize("writes_before", [0, 2], ids=["through the methods", "inline"])
def test_a_failed_write_rolls_back_and_lets_go(board, writes_before):
    for n in range(writes_before):
        board.create(f"warm {n}")
    before = marks(board)
    count = len(board.list()["tasks"])

    def fails():
        board.db.insert("INSERT INTO comments(task_id, actor, at, body) VALUES (1, 'x', 1, 'y')")
        raise ValueError("no")

    with pytest.raises(ValueError):
        board.db.write(fails)
    assert board.db.conn.get_autocommit()
    assert board.db.scalar("SELECT count(*) FROM comments") == 0
    assert flock_free(board.db.lock.path)
    assert marks(board)[1:3] == before[1:3]  # nothing counted, nothing synced
    assert len(board.list()["tasks"]) == count


@pytest.mark.parametrize("writes_before", [0, 2], ids=["through the methods", "inline"])
def test_a_wal_that_cannot_be_synced_is_a_db_error(board, monkeypatch, writes_before):
    for n in range(writes_before):
        board.create(f"warm {n}")
    before = marks(board)

    def broken(fd):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(os, "fdatasync", broken)
    with pytest.raises(KanbanError) as failed:
        board.create("not synced")
    assert failed.value.code == "db_error"
    assert failed.value.message == "the board's write-ahead log could not be flushed to disk: Input/output error"
    assert flock_free(board.db.lock.path)  # let go before the sync
    after = marks(board)
    assert after[1] == before[1] + 1 and after[2] == before[2]  # counted, not said synced: readers sync
    monkeypatch.undo()
    assert board.db.lock.unsynced() == after[1]


@pytest.mark.parametrize("writes_before", [0, 2], ids=["through the methods", "inline"])
def test_a_board_held_by_sqlite_alone_is_busy_at_the_timeout(kb, monkeypatch, writes_before):
    """Another connection holds SQLite's write lock without kanban's lock file: the write
    retries (with jitter) until KANBAN_BUSY_TIMEOUT, then says busy and lets go."""
    import apsw

    assert kb("create", "first").rc == 0
    monkeypatch.setenv("KANBAN_BUSY_TIMEOUT", "300ms")
    with Board(str(kb.path)) as board:
        for n in range(writes_before):
            board.create(f"warm {n}")
        other = apsw.Connection(str(kb.path))
        other.execute("BEGIN IMMEDIATE")
        try:
            started = time.monotonic()
            with pytest.raises(KanbanError) as failed:
                board.create("blocked")
            assert failed.value.code == "busy"
            assert 0.3 <= time.monotonic() - started < 5
            assert flock_free(board.db.lock.path)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert board.create("free again")["title"] == "free again"


def test_a_board_not_in_wal_mode_counts_no_commit(kb, tmp_path, calls):
    """A rollback-journal board: SQLite syncs inside COMMIT; the write neither counts nor
    syncs, inline or not."""
    other = tmp_path / "rollback.db"
    assert kb("backup", str(other)).rc == 0
    with Board(str(other)) as board:
        syncs = synced_total()
        for n in range(4):
            board.create(f"task {n}")
        assert board.db.own_sync is False
        assert synced_total() == syncs
        assert calls.count("acquire") == 4 and "committing" not in calls


WAIT_FOR_LOCK = """
import sys, time
sys.path.insert(0, sys.argv[1])
from kanban.store.sqlite import WriterLock
lock = WriterLock(sys.argv[2])
for _ in range(2):  # a writer that writes again: its words mapped, it says which tickets are served
    lock.acquire(time.monotonic() + 30)
    lock.committing()
    lock.release()
print("mapped", flush=True)
sys.stdin.readline()
lock.acquire(time.monotonic() + 30)
print("got", flush=True)
lock.release()
"""


@pytest.fixture
def ways_made(monkeypatch):
    """How many times a release made way for a waiting writer (_make_way)."""
    from kanban.store import sqlite

    made = []
    monkeypatch.setattr(sqlite, "_make_way", lambda: made.append(1))
    return made


def _start_waiter(lock_path):
    """A writer process with its words mapped (as a process that writes again has), told
    to ask for the lock by _queue."""
    board_path = lock_path[:-len(".lock")]  # WriterLock takes the board's path
    waiter = subprocess.Popen([sys.executable, "-c", WAIT_FOR_LOCK, str(ROOT / "lib"), board_path],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert waiter.stdout.readline().strip() == "mapped"
    return waiter


def _queue(waiter, words):
    """Tell the waiter to ask for the lock, which we hold: back once its ticket is
    issued (it waits in the queue)."""
    issued = words[0]
    waiter.stdin.write("go\n")
    waiter.stdin.flush()
    deadline = time.monotonic() + 30
    while words[0] == issued:
        assert waiter.poll() is None and time.monotonic() < deadline, "the waiter never queued"
        time.sleep(0.005)


def test_a_write_alone_makes_way_for_a_writer_that_queued_meanwhile(board, calls, ways_made):
    """The inline case (nobody queued when the write began): a writer that queues while
    it holds the lock is let run first as it lets go; with nobody waiting, no yield."""
    for n in range(2):
        board.create(f"warm {n}")
    board.create("nobody waits")
    assert ways_made == []
    words = board.db.lock.words
    waiter = _start_waiter(board.db.lock.path)

    def write():
        board.db.execute("INSERT INTO meta(key, value) VALUES ('test.waited', '1')")
        _queue(waiter, words)
    calls.clear()
    board.db.write(write)
    assert calls == [] and ways_made == [1]  # the inline way, and it made way once
    assert waiter.stdout.readline().strip() == "got"
    assert waiter.wait(30) == 0
    assert words[_SERVED] == words[0]  # the waiter said its ticket is served
    board.create("nobody waits again")
    assert calls == [] and ways_made == [1]


def test_release_makes_way_only_for_a_waiting_writer(tmp_path, ways_made):
    """WriterLock.release (the queue's way, a trace's): one yield when a ticket is
    issued and not served, none otherwise."""
    lock = WriterLock(str(tmp_path / "board.db"))
    for _ in range(2):  # the second write maps the words
        lock.acquire(time.monotonic() + 5)
        lock.committing()
        lock.release()
    assert lock.words is not None and ways_made == []
    waiter = _start_waiter(lock.path)
    lock.acquire(time.monotonic() + 5)
    _queue(waiter, lock.words)
    lock.release()
    assert ways_made == [1]
    assert waiter.stdout.readline().strip() == "got" and waiter.wait(30) == 0
    lock.acquire(time.monotonic() + 5)
    lock.release()
    lock.close()
    assert ways_made == [1]
