"""The lock file's words (the queue's counter, the commit marks) as memory.

A handle that writes (or reads) more than once maps the lock file's first page and
reads and writes its words there, with no system call; older kanban processes pread
and pwrite the same bytes.  These tests run real processes on real lock files: what
one writes through its map, a process reading with pread sees, and the other way
round; tickets taken both ways under the guard lock are never lost; a queue whose
tickets are all served is known to be empty from memory; a lock file too
short for the words is lengthened by a writer (never shortened), and read with pread
by a reader that cannot lengthen it.
"""
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from conftest import ROOT

from kanban import Board
from kanban.store.sqlite import _SERVED, WriterLock

# what an older kanban does with the lock file's bytes: pread and pwrite, little-endian
OLDER = """
import fcntl, os, struct, sys
path, what = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
word = lambda at: int.from_bytes(os.pread(fd, 8, at) or b"\\0", "little")
if what == "marks":                     # a reader's look: committed, synced
    print(word(8), word(16))
elif what == "count":                   # a writer counting a commit, holding the lock
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.pwrite(fd, (word(8) + 1).to_bytes(8, "little"), 8)
    print(word(8))
elif what == "sync":                    # ... and saying it is on disk
    os.pwrite(fd, word(8).to_bytes(8, "little"), 16)
elif what == "tickets":                 # take tickets under the guard lock (byte 0)
    guard = lambda kind: fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, struct.pack("hhqqi4x", kind, 0, 0, 1, 0))
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(int(sys.argv[3])):
        guard(fcntl.F_WRLCK)
        os.pwrite(fd, (word(0) + 1).to_bytes(8, "little"), 0)
        guard(fcntl.F_UNLCK)
"""


def older(lock_path, *args):
    """Run OLDER in a process of its own; its output's words."""
    out = subprocess.run([sys.executable, "-c", OLDER, str(lock_path), *map(str, args)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return [int(word) for word in out.split()]


def write_twice(lock):
    """Two writes' worth of the lock (the second maps the words); their numbers."""
    numbers = []
    for _ in range(2):
        assert lock.acquire(time.monotonic() + 10)
        numbers.append(lock.committing())
        lock.release()
        lock.synced(numbers[-1])
    return numbers


def queue_behind(holder, lock):
    """A thread that takes `lock` (then lets go) while `holder` holds it: returned once it
    is in the queue (holds the first ticket, as seen through the holder's map)."""
    import threading

    waiter = threading.Thread(target=lambda: (lock.acquire(time.monotonic() + 30), lock.release()))
    waiter.start()
    deadline = time.monotonic() + 10
    while holder.words[0] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    return waiter


def mapped(path):
    """The lines of this process's memory map that map `path`."""
    with open("/proc/self/maps") as maps:
        return [line for line in maps if line.rstrip().endswith(str(path))]


needs_maps = pytest.mark.skipif(sys.byteorder != "little" or not os.path.exists("/proc/self/maps"),
                                reason="the words are mapped on little-endian machines (seen in /proc)")


@needs_maps
def test_marks_written_through_the_map_are_read_by_an_older_kanban(kb):
    assert kb("create", "one").rc == 0
    lock_path = str(kb.path) + ".lock"
    with Board(str(kb.path)) as board:
        board.create("two")
        board.create("three")
        assert board.db.lock.words is not None  # mapped at its second write
        assert [line.split()[1] for line in mapped(lock_path)] == ["rw-s"]  # shared, writable
        task = board.claim("w1")
        words = board.db.lock.words
        assert older(lock_path, "marks") == [words[1], words[2]]
        assert words[1] == words[2] >= 4  # init, create, and our three writes: all synced
        # counted, not yet synced (a writer stopped there): an older reader sees it and syncs
        lock = board.db.lock
        assert lock.acquire(time.monotonic() + 10)
        pending = lock.committing()
        lock.release()
        assert older(lock_path, "marks") == [pending, pending - 1]
        lock.synced(pending)
        assert older(lock_path, "marks") == [pending, pending]
        board.complete(task["id"], task["lease_token"], agent="w1")
    assert mapped(lock_path) == []  # closing the board unmaps the file
    assert os.path.getsize(lock_path) == 32  # the marks, the queue's counter, the tickets served


@needs_maps
def test_marks_an_older_kanban_writes_are_read_through_the_map(kb):
    lock_path = str(kb.path) + ".lock"
    with Board(str(kb.path)) as board:
        for _ in range(2):  # reads: the second maps the marks, read-only
            board.events()
        lock = board.db.lock
        assert lock.fd is None and lock.marks is not None
        assert [line.split()[1] for line in mapped(lock_path)] == ["r--s"]  # shared, read-only
        assert lock.unsynced() is None
        committed = older(lock_path, "count")[0]  # an older writer counts a commit ...
        assert lock.unsynced() == committed  # ... seen at once: a read now syncs first
        older(lock_path, "sync")
        assert lock.unsynced() is None


@needs_maps
def test_tickets_taken_through_the_map_and_by_an_older_kanban_are_never_lost(tmp_path):
    path = str(tmp_path / "board.db")
    lock = WriterLock(path)
    write_twice(lock)
    assert lock.words is not None
    rounds = 400
    other = subprocess.Popen([sys.executable, "-c", OLDER, path + ".lock", "tickets", str(rounds)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "ready"
        other.stdin.write("go\n")
        other.stdin.flush()
        for _ in range(rounds):  # the real way in: guard lock, ticket, ticket's byte
            assert lock._enqueue(time.monotonic() + 10)
            lock._leave()
        assert other.wait(60) == 0
    finally:
        other.kill()
        other.wait()
    assert lock.words[0] == 2 * rounds == int.from_bytes(open(path + ".lock", "rb").read(8), "little")
    lock.close()


@needs_maps
def test_a_queue_whose_tickets_are_all_served_is_seen_empty_in_memory(tmp_path):
    """A writer from the queue says, as it lets go, that every ticket up to its own is
    served: while that is the last ticket issued, nobody is queued, known without asking
    the kernel who holds the last ticket's byte."""

    path = str(tmp_path / "board.db")
    first, second = WriterLock(path), WriterLock(path)  # two open files: they queue apart
    write_twice(first)
    write_twice(second)
    words = first.words
    assert words[0] == 0 and not first._queued()  # no ticket ever issued
    assert first.acquire(time.monotonic() + 10)
    waiter = queue_behind(first, second)  # the second writer took ticket 0 and waits
    assert first._queued() and words[_SERVED] == 0  # ticket 0 not served: its byte is held
    first.release()
    waiter.join(30)
    assert words[0] == words[_SERVED] == 1  # ticket 0 served, and said so ...
    assert not first._queued() and first.acquire(time.monotonic() + 1)  # ... so the way in is free
    first.release()
    first.close()
    second.close()


@needs_maps
def test_a_writer_from_the_queue_that_never_mapped_says_its_ticket_is_served(tmp_path):
    """A CLI call writes once and never maps the words; when it waited in the queue, it
    still says as it lets go that its ticket is served (a pwrite), so the writers after
    it see an empty queue in memory and take the lock's quick way (no look at the
    kernel's locks, no yield on release)."""

    path = str(tmp_path / "board.db")
    first, once = WriterLock(path), WriterLock(path)  # `once`: a fresh handle, like a CLI call's
    write_twice(first)
    words = first.words
    assert first.acquire(time.monotonic() + 10)
    waiter = queue_behind(first, once)  # the fresh handle took ticket 0 and waits
    first.release()
    waiter.join(30)
    assert once.words is None  # it wrote once: no map
    assert words[0] == words[_SERVED] == 1  # ticket 0 served, said with a pwrite
    assert not first._queued()
    first.close()
    once.close()


@needs_maps
@pytest.mark.parametrize("before", [b"", (5).to_bytes(8, "little"), bytes(8) + (7).to_bytes(8, "little")],
                         ids=["empty", "counter only", "a commit counted, none synced"])
def test_a_writer_lengthens_a_short_lock_file_and_counts_on(tmp_path, before):
    """An empty lock file, or one an older kanban left short (a queue counter only; a
    commit counted by a writer that died before saying it was synced)."""
    path = str(tmp_path / "board.db")
    with open(path + ".lock", "wb") as made:
        made.write(before)
    counted = int.from_bytes(before[8:16] or b"\0", "little")
    reader = WriterLock(path)
    assert reader.unsynced() == (counted or None)
    assert reader.unsynced() == (counted or None)  # too short to map read-only: read with pread
    assert reader.marks is None
    lock = WriterLock(path)
    assert write_twice(lock) == [counted + 1, counted + 2]
    assert lock.words is not None and os.path.getsize(path + ".lock") == 32
    data = open(path + ".lock", "rb").read()
    assert data[:8] == (before[:8] or bytes(8)) and data[24:] == bytes(8)  # the queue's counter kept
    assert [int.from_bytes(data[n:n + 8], "little") for n in (8, 16)] == [counted + 2] * 2
    assert reader.unsynced() is None  # the reader that could not map still reads the marks
    lock.close()
    reader.close()


@needs_maps
def test_a_longer_lock_file_is_never_shortened(tmp_path):
    path = str(tmp_path / "board.db")
    tail = bytes(range(256)) * 4
    with open(path + ".lock", "wb") as made:
        made.write(bytes(32) + tail)
    lock = WriterLock(path)
    write_twice(lock)
    reader = WriterLock(path)
    assert reader.unsynced() is None and reader.unsynced() is None
    assert reader.marks is not None  # long enough: mapped read-only
    data = open(path + ".lock", "rb").read()
    assert data[32:] == tail and int.from_bytes(data[8:16], "little") == 2
    lock.close()
    reader.close()


TRACED = """
import sys
sys.path.insert(0, sys.argv[1])
from kanban import Board
with Board(sys.argv[2]) as board:
    for n in range(6):
        board.create(f"task {n}")
    print("done", flush=True)
"""


@needs_maps
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (Debian package strace)")
def test_a_handle_that_writes_again_makes_no_system_call_for_the_words(kb, tmp_path):
    """The first write reads and writes the words with pread and pwrite; the second
    maps them; from then on the lock file sees only flock (taken, let go)."""
    log = tmp_path / "strace.txt"
    subprocess.run(["strace", "-f", "-qq", "-o", str(log), "-e", "trace=openat,pread64,pwrite64,mmap,flock",
                    sys.executable, "-c", TRACED, str(ROOT / "lib"), str(kb.path)], check=True, timeout=60)
    calls = log.read_text().splitlines()
    opened = [n for n, c in enumerate(calls) if '.lock", O_RDWR' in c]
    assert len(opened) == 1, calls
    fd = re.search(r"= (\d+)$", calls[opened[0]]).group(1)  # open until the board is closed
    on_lock = [c.split(None, 1)[1] for c in calls[opened[0]:]
               if re.search(rf"\b(pread64|pwrite64|mmap|flock)\((NULL, \d+, [^)]*, {fd},|{fd},)", c)]
    kinds = [re.match(r"(\w+)\(", c).group(1) for c in on_lock]
    # the first write: pread the queue's counter, flock, pread and pwrite the count,
    # unlock, pwrite the synced mark; the second: pread the counter, flock, then it
    # lengthens the file for its last word and maps the words ...
    first = kinds.index("mmap")
    assert kinds[:first] == ["pread64", "flock", "pread64", "pwrite64", "flock", "pwrite64",
                             "pread64", "flock", "pwrite64"], on_lock
    # ... and unlocks; from then on, flock and unlock only
    assert kinds[first + 1:] == ["flock"] * (1 + 2 * 4), on_lock


def damage(lock_path, *words):
    """Write `words` (the counter, the two marks, the tickets served) over the lock
    file's first words, as a damaged file might hold them."""
    fd = os.open(lock_path, os.O_RDWR)
    try:
        for number, value in enumerate(words):
            os.pwrite(fd, value.to_bytes(8, "little"), 8 * number)
    finally:
        os.close(fd)


@pytest.mark.parametrize("words", [
    (2**63 + 5, 0, 0, 0),                      # a counter past any lockable offset
    (2**64 - 1, 2**64 - 1, 2**64 - 1, 2**64 - 1),  # every word at its largest
    (5, 2**64 - 1, 3, 2**62),                  # a commit mark that cannot count on
], ids=["counter", "all", "committed"])
def test_a_damaged_lock_file_slows_writes_down_but_never_stops_them(kb, words):
    """The lock file is bookkeeping: with impossible words, CLI writes (pread and
    pwrite) and a long-lived Board's (through its map) still commit, one at a time, and
    readers sync for themselves; before, every write failed as `internal`."""
    assert kb("create", "first").rc == 0
    lock_path = str(kb.path) + ".lock"
    damage(lock_path, *words)
    for title in ("second", "third"):
        result = kb("create", title)
        assert result.rc == 0, result.err
    with Board(str(kb.path)) as board:
        for _ in range(3):  # the second write on maps the words
            board.create("mapped")
            task = board.claim("w1")
            board.complete(task["id"], task["lease_token"], agent="w1")
        assert board.db.lock.words is not None
    if max(words[1:3]) >= 2**62:  # damaged marks prove nothing: a reader syncs
        with Board(str(kb.path)) as reader:
            assert reader.db.lock.unsynced() is not None
    listed = kb("list", "--status", "done")
    assert listed.rc == 0 and len(listed.json["tasks"]) == 3


def test_a_damaged_queue_counter_leaves_writers_to_the_flock(tmp_path):
    """Two writers, the counter damaged: the second waits for the flock (no ticket,
    no queue) and gets the lock when the first lets go."""
    import threading

    path = str(tmp_path / "board.db")
    holder, waiter = WriterLock(path), WriterLock(path)
    assert holder.acquire(time.monotonic() + 10)
    damage(path + ".lock", 2**63 + 5)
    got = []
    thread = threading.Thread(target=lambda: got.append(waiter.acquire(time.monotonic() + 10)))
    thread.start()
    time.sleep(0.2)
    assert got == [] and waiter.ticket is None  # waiting, outside the queue
    holder.release()
    thread.join(10)
    assert got == [True]
    waiter.release()
    holder.close()
    waiter.close()
