"""The writer lock serves waiting processes first come, first served.

Real processes take the real lock on a real file: one holds it while others arrive
one after another; each writes its name when it gets the lock.  A waiter asks for the
lock from its main thread (as a CLI call does) or from a thread of its own (as the
Python API in a server or a team does), which takes another path to sleep in the kernel.
"""
import os
import subprocess
import sys
import time

import pytest
from conftest import ROOT

HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from kanban.store.sqlite import WriterLock
lock = WriterLock(sys.argv[2])
lock.acquire(time.monotonic() + 30)
print("held", flush=True)
sys.stdin.readline()           # hold until told
lock.release()
"""

WAITER = """
import sys, threading, time
sys.path.insert(0, sys.argv[1])
from kanban.errors import KanbanError
from kanban.store.sqlite import WriterLock


def wait_hold_release():
    lock = WriterLock(sys.argv[2])
    try:
        lock.acquire(time.monotonic() + float(sys.argv[4]))
    except KanbanError as exc:
        print(exc.code, flush=True)
        return
    with open(sys.argv[3], "a") as out:
        out.write(sys.argv[5] + "\\n")
    time.sleep(float(sys.argv[7]) if len(sys.argv) > 7 else 0.05)  # hold, so the next in line really waits
    lock.release()
    print("done", flush=True)


if sys.argv[6] == "thread":
    worker = threading.Thread(target=wait_hold_release)
    worker.start()
    worker.join()
else:
    wait_hold_release()
"""


WAYS = ["main", "thread"]


def _start(code, *args):
    return subprocess.Popen([sys.executable, "-c", code, str(ROOT / "lib"), *map(str, args)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _queue_length(path):
    data = (path.parent / (path.name + ".lock")).read_bytes()[:8]
    return int.from_bytes(data or b"\0", "little")


def _wait_for_tickets(path, count):
    deadline = time.monotonic() + 10
    while _queue_length(path) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _queue_length(path) >= count


def _queue_behind_a_holder(tmp_path, count, way):
    """A holder of the lock and `count` waiters w0, w1, ... queued behind it in that
    order (each in the queue before the next one comes); (holder, waiters, order file)."""
    board = tmp_path / "board.db"
    order = tmp_path / "order"
    holder = _start(HOLDER, board)
    assert holder.stdout.readline().strip() == "held"
    waiters = []
    for n in range(count):
        waiters.append(_start(WAITER, board, order, 30, f"w{n}", way))
        _wait_for_tickets(board, n + 1)
    return holder, waiters, order


@pytest.mark.parametrize("way", WAYS)
def test_waiters_get_the_lock_in_the_order_they_came(tmp_path, way):
    holder, waiters, order = _queue_behind_a_holder(tmp_path, 6, way)
    holder.communicate("go\n", timeout=30)
    for waiter in waiters:
        assert waiter.communicate(timeout=60)[0].strip() == "done"
    assert order.read_text().split() == [f"w{n}" for n in range(6)]


@pytest.mark.parametrize("way", WAYS)
def test_a_waiter_that_gives_up_leaves_the_queue(tmp_path, way):
    board = tmp_path / "board.db"
    order = tmp_path / "order"
    holder = _start(HOLDER, board)
    assert holder.stdout.readline().strip() == "held"
    impatient = _start(WAITER, board, order, 0.5, "impatient", way)
    _wait_for_tickets(board, 1)
    patient = _start(WAITER, board, order, 30, "patient", way)
    _wait_for_tickets(board, 2)
    assert impatient.communicate(timeout=30)[0].strip() == "busy"
    holder.communicate("go\n", timeout=30)
    assert patient.communicate(timeout=30)[0].strip() == "done"
    assert order.read_text().split() == ["patient"]


@pytest.mark.parametrize("way", WAYS)
def test_a_waiter_killed_in_the_queue_lets_nobody_pass_an_earlier_one(tmp_path, way):
    """SIGKILL a waiter in the middle of the queue: the kernel frees its ticket's byte,
    and the waiter behind it wakes.  That waiter still waits for the ones before the dead
    one (they hold their bytes): the queue stays first come, first served."""
    import signal

    holder, waiters, order = _queue_behind_a_holder(tmp_path, 4, way)
    waiters[2].send_signal(signal.SIGKILL)
    waiters[2].wait(timeout=30)
    time.sleep(0.2)  # w3 has woken and looked behind the dead one's ticket
    holder.communicate("go\n", timeout=30)
    for n in (0, 1, 3):
        assert waiters[n].communicate(timeout=60)[0].strip() == "done"
    assert order.read_text().split() == ["w0", "w1", "w3"]


@pytest.mark.parametrize("way", WAYS)
def test_the_next_in_line_waits_ready_while_the_one_before_holds(tmp_path, way):
    """A writer from the queue frees its ticket's byte as it takes the lock, not when it
    lets go: the one after it wakes during its hold and tries the lock, ready, instead
    of being woken (and scheduled) only once the lock is free.  The order stays."""
    from kanban.store.sqlite import _QUEUE_AT, _held

    board = tmp_path / "board.db"
    order = tmp_path / "order"
    holder = _start(HOLDER, board)
    assert holder.stdout.readline().strip() == "held"
    first = _start(WAITER, board, order, 30, "first", way, 1.5)  # ticket 0: holds 1.5 s
    _wait_for_tickets(board, 1)
    second = _start(WAITER, board, order, 30, "second", way)  # ticket 1: waits on ticket 0's byte
    _wait_for_tickets(board, 2)
    fd = os.open(str(board) + ".lock", os.O_RDWR)
    try:
        assert _held(fd, _QUEUE_AT)  # ticket 0 waits: its byte is held
        holder.communicate("go\n", timeout=30)
        deadline = time.monotonic() + 10
        while not (order.exists() and order.read_text().split() == ["first"]):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not _held(fd, _QUEUE_AT)  # first holds the lock, and its byte is free already
    finally:
        os.close(fd)
    assert first.communicate(timeout=30)[0].strip() == "done"
    assert second.communicate(timeout=30)[0].strip() == "done"
    assert order.read_text().split() == ["first", "second"]


def test_a_free_lock_is_taken_without_a_ticket(tmp_path):
    board = tmp_path / "board.db"
    order = tmp_path / "order"
    for n in range(3):
        waiter = _start(WAITER, board, order, 5, f"w{n}", "main")
        assert waiter.communicate(timeout=30)[0].strip() == "done"
    assert order.read_text().split() == ["w0", "w1", "w2"]
    assert _queue_length(board) == 0  # nobody ever had to queue


def _lock_waits(pid):
    """The threads of process `pid` asleep in the kernel on a file lock (by wchan)."""
    found = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/wchan", encoding="ascii") as wchan:
                where = wchan.read()
        except OSError:
            continue
        # flock waits in locks_lock_inode_wait, a record lock in fcntl_setlk (or
        # do_lock_file_wait): never a timer's sleep or a futex
        if ("lock" in where or "setlk" in where) and "futex" not in where:
            found.append(where)
    return found


@pytest.mark.skipif(not os.path.exists(f"/proc/{os.getpid()}/task"), reason="needs /proc (Linux)")
def test_a_waiting_thread_sleeps_on_the_lock_itself(tmp_path):
    """A thread waiting for the lock is woken by its release, not by a timer: it (or
    its helper) sleeps in the kernel's file-lock wait, so the lock is never left idle
    while it waits, and it still gives up at the deadline."""
    board = tmp_path / "board.db"
    order = tmp_path / "order"
    holder = _start(HOLDER, board)
    assert holder.stdout.readline().strip() == "held"
    waiter = _start(WAITER, board, order, 30, "first", "thread")
    impatient = _start(WAITER, board, order, 1.5, "impatient", "thread")
    _wait_for_tickets(board, 2)
    for pid in (waiter.pid, impatient.pid):
        sleeping = []
        deadline = time.monotonic() + 5
        while not sleeping and time.monotonic() < deadline:
            sleeping = _lock_waits(pid)
            time.sleep(0.02)
        assert sleeping, f"no thread of {pid} waits on the lock in the kernel"
    assert impatient.communicate(timeout=30)[0].strip() == "busy"
    started = time.monotonic()
    holder.communicate("go\n", timeout=30)
    assert waiter.communicate(timeout=30)[0].strip() == "done"
    assert time.monotonic() - started < 5
    assert order.read_text().split() == ["first"]
    # the impatient waiter's helper, still blocked when it gave up, left nothing held
    late = _start(WAITER, board, order, 5, "late", "thread")
    assert late.communicate(timeout=30)[0].strip() == "done"


def test_a_board_named_through_a_symlink_queues_on_the_lock_next_to_the_real_file(tmp_path):
    # SQLite follows the link (its -wal and -shm sit next to the real file); the writers'
    # lock must too, or writers by either name would not queue behind one another
    from conftest import assert_error, run

    (tmp_path / "real").mkdir()
    (tmp_path / "elsewhere").mkdir()
    board = tmp_path / "real" / "board.db"
    link = tmp_path / "elsewhere" / "board.db"
    assert run("init", env={"KANBAN_DB": board}).rc == 0
    link.symlink_to(board)
    holder = _start(HOLDER, board)  # a writer by the real name, in its transaction
    try:
        assert holder.stdout.readline().strip() == "held"
        res = run("create", "by the link", env={"KANBAN_DB": link, "KANBAN_BUSY_TIMEOUT": "1s"})
        assert_error(res, "busy")
    finally:
        holder.communicate("go\n", timeout=30)
    assert run("list", env={"KANBAN_DB": board}).json["tasks"] == []
    assert run("create", "by the link", env={"KANBAN_DB": link}).rc == 0
    assert not os.path.lexists(str(link) + ".lock")
