"""The floor: the least a process can do to claim one task from a kanban board.

    python floor_claim.py BOARD AGENT             claim: {"id": ..., "lease_token": ...} or {}
    python floor_claim.py BOARD AGENT ID TOKEN    complete a claim made by this script

Standard library only (sqlite3, no json, no argument parser): open the board, WAL,
synchronous=FULL, BEGIN IMMEDIATE, one indexed pick (the board's own claim index) +
one UPDATE, commit, print.  No lease reaping, no events, no checks beyond the token:
anything kanban does on top of this is what the benchmark's ratio prices.  The busy
timeout is kanban's default (10 s), so both wait the same before giving up.

bench/run.py times this script as a process against `kanban claim`, runs it with 50
concurrent agents the way `kanban bench claim` runs kanban, and imports it for the
in-process engine loop (connect, claim, complete).
"""
import sqlite3
import sys
import time

BUSY_TIMEOUT_S = 10.0
LEASE_MS = 15 * 60 * 1000

PICK = (
    "SELECT id FROM tasks WHERE status = 'todo' AND kind = 'task' AND unmet_deps = 0"
    " AND role_boundary IS NULL AND assignee IS NULL"
    " ORDER BY priority DESC, created_at, id LIMIT 1"
)
TAKE = (
    "UPDATE tasks SET status = 'in_progress', claimed_by = ?, lease_until = ?, lease_token = ?,"
    " updated_at = ? WHERE id = ?"
)
FINISH = (
    "UPDATE tasks SET status = 'done', claimed_by = NULL, lease_until = NULL, lease_token = NULL,"
    " finished_at = ?, updated_at = ? WHERE id = ? AND lease_token = ? AND status = 'in_progress'"
)


def connect(path):
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def claim(conn, agent):
    """(task id, token), or None when nothing is ready."""
    now = int(time.time() * 1000)
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(PICK).fetchone()
        if row is None:
            conn.execute("COMMIT")
            return None
        token = time.time_ns()
        conn.execute(TAKE, (agent, now + LEASE_MS, token, now, row[0]))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return row[0], token


def complete(conn, task_id, token):
    """True when the token still held the task."""
    now = int(time.time() * 1000)
    conn.execute("BEGIN IMMEDIATE")
    try:
        changed = conn.execute(FINISH, (now, now, task_id, token)).rowcount
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return changed == 1


def main(argv):
    if len(argv) not in (3, 5):
        sys.stderr.write('{"error": "usage: floor_claim.py BOARD AGENT [ID TOKEN]", "code": "usage"}\n')
        return 2
    try:
        conn = connect(argv[1])
        if len(argv) == 3:
            got = claim(conn, argv[2])
            sys.stdout.write("{}\n" if got is None else '{"id": "TASK-%d", "lease_token": %d}\n' % got)
            return 0
        task_id = int(argv[3].rpartition("-")[2])
        if complete(conn, task_id, int(argv[4])):
            sys.stdout.write('{"id": "TASK-%d", "status": "done"}\n' % task_id)
            return 0
        sys.stderr.write('{"error": "token lost", "code": "lease_lost"}\n')
        return 2
    except sqlite3.OperationalError as exc:
        code = "busy" if "locked" in str(exc) or "busy" in str(exc) else "db_error"
        sys.stderr.write('{"error": "%s", "code": "%s"}\n' % (str(exc).replace('"', "'"), code))
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
