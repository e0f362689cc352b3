"""A commit is on disk before anyone hears of it, and the write lock is not held for
the disk's flush.

In WAL mode kanban commits at synchronous=NORMAL (SQLite writes the frames, no fsync)
and makes the commit durable itself: it releases the write lock, fdatasyncs the WAL,
then answers.  A reader that may have seen a commit nobody has synced yet syncs it
before answering.  These tests watch the real system calls of real kanban processes
with strace(1), on real board files.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import KANBAN, ROOT

STRACE = shutil.which("strace")
needs_strace = pytest.mark.skipif(STRACE is None, reason="strace is not installed (Debian package strace)")


def traced(tmp_path, board, *args, agent="w1"):
    """Run `kanban ARGS` under strace; (its answer, the traced calls in order)."""
    log = tmp_path / f"strace-{len(list(tmp_path.glob('strace-*')))}.txt"
    env = dict(os.environ, KANBAN_DB=str(board), KANBAN_AGENT=agent)
    proc = subprocess.run([STRACE, "-f", "-qq", "-o", str(log), "-e", "trace=openat,flock,fdatasync,fsync,write",
                           str(KANBAN), *args], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, log.read_text().splitlines()


def own_wal_fd(calls, board):
    """The descriptor kanban opened on the WAL for its own syncs (read-only)."""
    for line in calls:
        found = re.search(r'openat\(AT_FDCWD, "([^"]+)", O_RDONLY\|O_CLOEXEC\) = (\d+)', line)
        if found and found.group(1).endswith(os.path.basename(str(board)) + "-wal"):
            return int(found.group(2))
    return None


def index_of(calls, pattern, start=0):
    for number, line in enumerate(calls[start:], start):
        if re.search(pattern, line):
            return number
    return None


@pytest.fixture
def ready(kb):
    for n in range(3):
        assert kb("create", f"task {n}").rc == 0
    return kb


def test_board_commits_at_normal_in_wal_and_at_full_otherwise(ready, tmp_path):
    from kanban import Board

    with Board(str(ready.path)) as board:
        assert board.db.own_sync is True
        assert board.db.scalar("PRAGMA journal_mode") == "wal"
        assert board.db.scalar("PRAGMA synchronous") == 1  # NORMAL: kanban syncs itself
    # a backup is a rollback-journal file: opened as a board, SQLite syncs inside COMMIT
    other = tmp_path / "rollback.db"
    assert ready("backup", str(other)).rc == 0
    from kanban.store.sqlite import synced_total

    with Board(str(other)) as board:
        syncs = synced_total()
        assert board.db.scalar("PRAGMA journal_mode") == "delete"
        assert board.db.own_sync is False
        assert board.db.scalar("PRAGMA synchronous") == 2  # FULL
        task = board.claim("w1")
        assert task["lease_token"]
        assert synced_total() == syncs  # SQLite synced inside COMMIT; kanban adds none


@needs_strace
@pytest.mark.parametrize("verb", [("claim",), ("create", "one more")])
def test_a_write_syncs_the_wal_after_releasing_the_lock_and_before_answering(ready, tmp_path, verb):
    answer, calls = traced(tmp_path, ready.path, *verb)
    assert answer.startswith("{")
    wal = own_wal_fd(calls, ready.path)
    assert wal is not None, "kanban opened no descriptor of its own on the WAL"
    unlock = index_of(calls, r"flock\(\d+, LOCK_UN\)")
    sync = index_of(calls, rf"fdatasync\({wal}\)")
    said = index_of(calls, r'write\(1, "\{')
    assert None not in (unlock, sync, said), calls
    assert unlock < sync < said, "the lock is released, then the WAL is synced, then the answer is written"
    # the lock file now says every commit counted is on disk
    marks = open(str(ready.path) + ".lock", "rb").read()[8:24]
    committed, synced = int.from_bytes(marks[:8], "little"), int.from_bytes(marks[8:], "little")
    assert committed >= 1 and synced == committed


@needs_strace
def test_a_read_with_nothing_pending_syncs_nothing(ready, tmp_path):
    answer, calls = traced(tmp_path, ready.path, "list")
    assert "task 0" in answer
    assert index_of(calls, r"fdatasync\(|fsync\(") is None, [c for c in calls if "sync" in c]


STALLED = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from kanban import Board
real = os.fdatasync

def stall(fd):                       # the commit is made; stop before it is synced
    print("committed", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)
    real(fd)

os.fdatasync = stall
board = Board(sys.argv[2])
board.claim("stalled")
"""


@needs_strace
def test_a_read_syncs_a_commit_its_writer_has_not_synced_yet(ready, tmp_path):
    """A writer stopped between its COMMIT and its sync (as one killed there would be):
    a reader that sees its claim makes it durable before answering, and says so in the
    lock file."""
    writer = subprocess.Popen([sys.executable, "-c", STALLED, str(ROOT / "lib"), str(ready.path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "committed"
        deadline = time.monotonic() + 10
        while open(f"/proc/{writer.pid}/stat").read().split()[2] != "T":
            assert time.monotonic() < deadline, "the writer never stopped"
            time.sleep(0.01)
        marks = open(str(ready.path) + ".lock", "rb").read()[8:24]
        committed, synced = int.from_bytes(marks[:8], "little"), int.from_bytes(marks[8:], "little")
        assert committed > synced  # counted, not yet on disk
        answer, calls = traced(tmp_path, ready.path, "list", "--status", "in_progress")
        assert "stalled" in answer  # the reader saw the unsynced claim ...
        sync = index_of(calls, r"fdatasync\(\d+\)")
        said = index_of(calls, r'write\(1, "')
        assert sync is not None and sync < said  # ... and synced it before answering
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    # the writer died unsynced: every read syncs, until a write syncs and says so
    _, calls = traced(tmp_path, ready.path, "list")
    assert index_of(calls, r"fdatasync\(\d+\)") is not None
    assert ready("create", "a write").rc == 0
    marks = open(str(ready.path) + ".lock", "rb").read()[8:24]
    assert int.from_bytes(marks[8:], "little") == int.from_bytes(marks[:8], "little") > committed
    _, calls = traced(tmp_path, ready.path, "list")
    assert index_of(calls, r"fdatasync\(|fsync\(") is None


@needs_strace
def test_a_write_through_a_symlinked_board_syncs_the_real_wal(ready, tmp_path):
    # SQLite follows the link: the WAL is next to the real file, and so must kanban's sync be
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = elsewhere / "board.db"
    link.symlink_to(ready.path)
    answer, calls = traced(tmp_path, link, "create", "through the link")
    assert answer.startswith("{")
    wal = own_wal_fd(calls, ready.path)
    assert wal is not None, "kanban opened no descriptor of its own on the WAL"
    unlock = index_of(calls, r"flock\(\d+, LOCK_UN\)")
    sync = index_of(calls, rf"fdatasync\({wal}\)", unlock or 0)
    said = index_of(calls, r'write\(1, "\{')
    assert None not in (unlock, sync, said), calls
    assert unlock < sync < said
    assert not os.path.lexists(str(link) + ".lock")
