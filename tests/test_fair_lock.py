"""The writer lock serves waiting processes first come, first served.

Real processes take the real lock on a real file: one holds it while others arrive
one after another; each writes its name when it gets the lock.
"""
import subprocess
import sys
import time

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
import sys, time
sys.path.insert(0, sys.argv[1])
from kanban.errors import KanbanError
from kanban.store.sqlite import WriterLock
lock = WriterLock(sys.argv[2])
try:
    lock.acquire(time.monotonic() + float(sys.argv[4]))
except KanbanError as exc:
    print(exc.code, flush=True)
    sys.exit(0)
with open(sys.argv[3], "a") as out:
    out.write(sys.argv[5] + "\\n")
time.sleep(0.05)               # hold a little, so the next in line really waits
lock.release()
print("done", flush=True)
"""


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


def test_waiters_get_the_lock_in_the_order_they_came(tmp_path):
    board = tmp_path / "board.db"
    order = tmp_path / "order"
    holder = _start(HOLDER, board)
    assert holder.stdout.readline().strip() == "held"
    waiters = []
    for n in range(6):
        waiters.append(_start(WAITER, board, order, 30, f"w{n}"))
        _wait_for_tickets(board, n + 1)  # w<n> is in the queue before the next one comes
    holder.communicate("go\n", timeout=30)
    for waiter in waiters:
        assert waiter.communicate(timeout=60)[0].strip() == "done"
    assert order.read_text().split() == [f"w{n}" for n in range(6)]


def test_a_waiter_that_gives_up_leaves_the_queue(tmp_path):
    board = tmp_path / "board.db"
    order = tmp_path / "order"
    holder = _start(HOLDER, board)
    assert holder.stdout.readline().strip() == "held"
    impatient = _start(WAITER, board, order, 0.5, "impatient")
    _wait_for_tickets(board, 1)
    patient = _start(WAITER, board, order, 30, "patient")
    _wait_for_tickets(board, 2)
    assert impatient.communicate(timeout=30)[0].strip() == "busy"
    holder.communicate("go\n", timeout=30)
    assert patient.communicate(timeout=30)[0].strip() == "done"
    assert order.read_text().split() == ["patient"]


def test_a_free_lock_is_taken_without_a_ticket(tmp_path):
    board = tmp_path / "board.db"
    order = tmp_path / "order"
    for n in range(3):
        waiter = _start(WAITER, board, order, 5, f"w{n}")
        assert waiter.communicate(timeout=30)[0].strip() == "done"
    assert order.read_text().split() == ["w0", "w1", "w2"]
    assert _queue_length(board) == 0  # nobody ever had to queue
