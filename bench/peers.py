"""One engine loop, in a process of its own: claim + complete cycles per second.

    python peers.py ENGINE DIR CYCLES [K]

ENGINE is one of kanban, kanban-batch, kanban-threads, kanban-sql, floor, litequeue, persist-queue,
huey, flush.  DIR is a
fresh folder on the disk under test; for kanban, kanban-batch and floor it already
holds board.db with CYCLES ready tasks (bench/run.py makes it with kanban, so this
process never opens that file with a second SQLite library).  Prints one JSON object:
cycles (tasks for kanban-batch), seconds, per_s, and the journal mode and
synchronous level the engine's own connection really runs with.

Every engine runs in WAL mode at synchronous=FULL (2) and pays one commit per claim
and one per completion, as kanban does:
- kanban         Board.claim + Board.complete (lease, fencing token, events).
- kanban-batch   Board.claim_many(K) + Board.complete_many: two commits per K tasks.
- kanban-threads K threads of one process, each with a Board of its own, claiming and
                 completing until the board is empty: writes that meet share commits
                 (group commit).  Also prints claim latency percentiles, commits and
                 writes, and double claims counted from the event log.
- kanban-sql     not an engine: kanban's own cycle with none of its Python.  The very
                 statements Board.claim + Board.complete run (taken from kanban's query
                 table, on a connection kanban opened, so the same pragmas and
                 statement cache), the same flock of the lock file around each write
                 and the same fdatasync of the WAL after it, from a bare loop.  What
                 kanban costs above this is its Python; what this costs above the
                 floor is its SQL (the events, the probe).
- floor          bench/floor_claim.py's claim + complete: stdlib sqlite3, one indexed
                 pick + UPDATE, nothing else (no events, no lease reaping).
- litequeue      LiteQueue.pop (UPDATE ... RETURNING, the message locked) + done.
- persist-queue  SQLiteAckQueue.get (marked unack) + ack.
- huey           SqliteStorage(fsync=True).dequeue (the row is deleted: no lease) +
                 put_data of the result, what a huey worker does per task.
- flush          not an engine: the disk's part of any cycle.  Two commits' worth of WAL
                 writes a cycle (6 frames each, what kanban's claim and its complete each
                 write) to a WAL-sized file written once before the clock starts, each
                 followed by an fdatasync, with nothing else.  No engine that makes two
                 commits durable a cycle can beat it on this disk; an engine's time a
                 cycle above it is its own work (bench/run.py prints it per engine).
                 With K, K frames a commit: `flush 1` against `flush` is what a
                 commit's pages cost the disk (an engine that writes one page a commit,
                 like persist-queue, pays the first).
Every engine's answer also says how many WAL pages (frames) a commit wrote, and of
which b-trees, read from its WAL at the end (wal_pages): each is written and flushed.
The peers' queues are filled before the clock starts.
"""
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def kanban_engine(folder, cycles, _k):
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
    from kanban import Board

    board = Board(os.path.join(folder, "board.db"))

    def loop():
        for _ in range(cycles):
            task = board.claim("bench-engine")
            board.complete(task["id"], task["lease_token"], agent="bench-engine")
    return loop, board.db.conn, cycles


def kanban_batch_engine(folder, cycles, k):
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
    k = k or 1
    from kanban import Board

    board = Board(os.path.join(folder, "board.db"))

    def loop():
        done = 0
        while done < cycles:
            claims = board.claim_many("bench-engine", min(k, cycles - done))
            board.complete_many([(t["id"], t["lease_token"]) for t in claims], agent="bench-engine")
            done += len(claims)
    return loop, board.db.conn, cycles


def kanban_threads_engine(folder, cycles, k):
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
    import threading

    from kanban import Board
    from kanban.bench import check_event_log, percentiles
    from kanban.store.sqlite import group_of

    path = os.path.join(folder, "board.db")
    k = k or 1
    boards = [Board(path) for _ in range(k)]
    latencies, errors = [], []
    start = threading.Barrier(k + 1)

    def agent(board, name):
        start.wait()
        try:
            while True:
                began = time.perf_counter()
                task = board.claim(name)
                latencies.append((time.perf_counter() - began) * 1000)
                if not task:
                    return
                board.complete(task["id"], task["lease_token"], agent=name)
        except Exception as exc:  # noqa: BLE001 - reported in the answer
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=agent, args=(b, f"bench-thread-{n}")) for n, b in enumerate(boards)]
    for thread in threads:
        thread.start()

    def loop():
        start.wait()
        for thread in threads:
            thread.join()
        for board in boards:
            board.close()
        group = group_of(path)
        log = check_event_log(path, None)
        return {"threads": k, "claim_latency_ms": percentiles(latencies), "errors": errors[:5],
                "commits": group.commits if group else None, "writes": group.writes if group else None,
                "double_claims": log["double_claims"], "tasks_left": log["tasks_left"]}
    return loop, boards[0].db.conn, cycles


def kanban_sql_engine(folder, cycles, _k):
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
    import fcntl

    from kanban import Board

    path = os.path.join(folder, "board.db")
    board = Board(path)
    db = board.db
    conn, cursor = db.conn, db.conn.cursor()
    probe, take, event, finish = (db.sql(name) for name in ("claim_probe", "claim_task", "insert_event",
                                                             "complete_task"))
    lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    locked, unlock = fcntl.LOCK_EX | fcntl.LOCK_NB, fcntl.LOCK_UN
    lease_ms = 15 * 60 * 1000
    wal, syncs = [], [0]

    def sync():
        if not wal:
            wal.append(os.open(path + "-wal", os.O_RDONLY | os.O_CLOEXEC))
        os.fdatasync(wal[0])
        syncs[0] += 1

    def loop():
        agent = "bench-engine"
        for _ in range(cycles):
            now = int(time.time() * 1000)
            fcntl.flock(lock, locked)
            cursor.execute("BEGIN IMMEDIATE")
            found = conn.execute(probe, {"agent": agent, "role": None, "project": None, "now": now}).fetchone()
            # the probe's columns: team, a lease ran out, WIP limits, a task assigned to
            # the agent, the next lease token, then the picked task's row
            if found[0] or found[1] or found[2] or found[3] or found[5] is None:
                raise RuntimeError(f"kanban-sql: the probe did not settle the pick: {found[:6]}")
            task, token = found[5], found[4]
            cursor.execute(take, {"agent": agent, "until": now + lease_ms, "token": token,
                                  "lease_ms": lease_ms, "now": now, "id": task})
            cursor.execute(event, (task, "claimed", agent, now,
                                   '{"token":%d,"lease_until":"%s"}' % (token, "2026-01-01T00:00:00Z"), None))
            cursor.execute("COMMIT")
            fcntl.flock(lock, unlock)
            sync()
            now = int(time.time() * 1000)
            fcntl.flock(lock, locked)
            cursor.execute("BEGIN IMMEDIATE")
            if conn.execute(finish, {"id": task, "token": token, "agent": agent, "now": now}).fetchone() is None:
                raise RuntimeError(f"kanban-sql: task {task} was not completed")
            cursor.execute(event, (task, "completed", agent, now, '{"token":%d}' % token, None))
            cursor.execute("COMMIT")
            fcntl.flock(lock, unlock)
            sync()
        # as main() reports kanban's: SQLite's level, then the syncs made here
        return {"synchronous": f"{pragma(conn, 'synchronous')} + {syncs[0] / cycles:.2f} fdatasync/cycle"}
    return loop, conn, cycles


def floor_engine(folder, cycles, _k):
    sys.path.insert(0, HERE)
    import floor_claim

    conn = floor_claim.connect(os.path.join(folder, "board.db"))

    def loop():
        for _ in range(cycles):
            task_id, token = floor_claim.claim(conn, "bench-engine")
            floor_claim.complete(conn, task_id, token)
    return loop, conn, cycles


def litequeue_engine(folder, cycles, _k):
    from litequeue import LiteQueue

    queue = LiteQueue(os.path.join(folder, "litequeue.db"))
    queue.conn.execute("PRAGMA synchronous=FULL")  # it sets NORMAL itself
    with queue.transaction():
        for n in range(cycles):
            queue.put(json.dumps({"n": n}))

    def loop():
        for _ in range(cycles):
            message = queue.pop()
            queue.done(message.message_id)
    return loop, queue.conn, cycles


def persist_queue_engine(folder, cycles, _k):
    from persistqueue import SQLiteAckQueue

    queue = SQLiteAckQueue(os.path.join(folder, "persist-queue"), multithreading=False)
    queue._conn.execute("PRAGMA synchronous=FULL")
    for n in range(cycles):
        queue.put({"n": n})

    def loop():
        for _ in range(cycles):
            item = queue.get(block=False, raw=True)
            queue.ack(item)
    return loop, queue._conn, cycles


def huey_engine(folder, cycles, _k):
    from huey.storage import SqliteStorage

    storage = SqliteStorage(name="bench", filename=os.path.join(folder, "huey.db"), fsync=True)
    for n in range(cycles):
        storage.enqueue(json.dumps({"n": n}).encode())

    def loop():
        for n in range(cycles):
            data = storage.dequeue()
            assert data is not None
            storage.put_data(f"result-{n}", b"done")
    return loop, storage.conn, cycles


FLUSH_FRAMES = 6  # WAL frames a commit: kanban's claim and its complete each write 6
WAL_FRAME = 24 + 4096  # a frame's header and its 4 KiB page
WAL_SIZE = 1000 * WAL_FRAME  # SQLite checkpoints (and starts the WAL over) at 1000 pages


def flush_engine(folder, cycles, frames):
    """The flushes of a cycle and nothing else (see the module's doc): `frames` frames a
    commit (FLUSH_FRAMES unless given)."""
    frames = frames or FLUSH_FRAMES
    path = os.path.join(folder, "flush-wal")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    frame = os.urandom(WAL_FRAME)
    os.pwrite(fd, bytes(WAL_SIZE), 0)  # written once, as a WAL is before SQLite reuses it
    os.fsync(fd)

    def loop():
        offset = 0
        for _ in range(2 * cycles):
            for _ in range(frames):
                if offset + WAL_FRAME > WAL_SIZE:
                    offset = 0
                os.pwrite(fd, frame, offset)
                offset += WAL_FRAME
            os.fdatasync(fd)
        return {"synchronous": f"2.00 fdatasync/cycle of {frames} frame{'s' if frames > 1 else ''} each",
                "frames": frames}
    return loop, None, cycles


ENGINES = {
    "kanban": kanban_engine,
    "kanban-batch": kanban_batch_engine,
    "kanban-threads": kanban_threads_engine,
    "kanban-sql": kanban_sql_engine,
    "floor": floor_engine,
    "litequeue": litequeue_engine,
    "persist-queue": persist_queue_engine,
    "huey": huey_engine,
    "flush": flush_engine,
}


def pragma(conn, name):
    if conn is None:  # the flush loop: no database
        return None
    for row in conn.execute(f"PRAGMA {name}"):
        return row[0]
    return None


def _wal(folder):
    """The engine's WAL file (the flush loop's flush-wal too), or None."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            if name.endswith("-wal"):
                return os.path.join(root, name)
    return None


def _size(folder):
    """The engine's WAL file size at the end (how far it grew), in bytes."""
    path = _wal(folder)
    return os.path.getsize(path) if path else None


WAL_MAGIC = (0x377F0682, 0x377F0683)  # a SQLite WAL's first word (big-endian), by its checksum order


def wal_pages(path):
    """What the commits in a SQLite WAL file wrote: (commits, frames, pages by b-tree
    name) over the frames of the WAL's current generation (those whose salts match the
    header's, up to the last commit among them), or None for a file that is no WAL.

    A frame is one page; a commit frame is one whose header gives the database's size
    after the commit.  The WAL at the end of a run holds the commits since the last
    checkpoint started it over: a few hundred of the run's last ones.  The names come
    from SQLite's dbstat table of the database beside it (the page number otherwise)."""
    import sqlite3
    import struct

    try:
        with open(path, "rb") as handle:
            wal = handle.read()
    except OSError:
        return None
    if len(wal) < 32 or struct.unpack(">I", wal[:4])[0] not in WAL_MAGIC:
        return None
    size = struct.unpack(">I", wal[8:12])[0]
    salts = wal[16:24]
    names = {}
    try:
        conn = sqlite3.connect(f"file:{path[:-4]}?mode=ro", uri=True)
        try:
            names = dict(conn.execute("SELECT pageno, name FROM dbstat"))
        finally:
            conn.close()
    except sqlite3.Error:
        pass  # no dbstat in this SQLite: pages are counted by number
    commits = frames = 0
    pages, pending = {}, []
    offset = 32
    while offset + 24 + size <= len(wal):
        page, after = struct.unpack(">II", wal[offset:offset + 8])
        if wal[offset + 8:offset + 16] != salts:
            break  # a frame of an earlier generation: the current one ends here
        pending.append(names.get(page, page))
        if after:  # a commit frame: the frames since the last one are its pages
            commits += 1
            frames += len(pending)
            for name in pending:
                pages[name] = pages.get(name, 0) + 1
            pending = []
        offset += 24 + size
    return commits, frames, pages


def _wal_frames(folder):
    """The WAL's frames per commit at the end of the run, and which b-trees they were
    pages of (each name's share of a commit), or None without a WAL of SQLite's."""
    path = _wal(folder)
    found = wal_pages(path) if path else None
    if not found or not found[0]:
        return None
    commits, frames, pages = found
    return {"wal_frames_per_commit": round(frames / commits, 2),
            "wal_pages_per_commit": {str(k): round(v / commits, 2) for k, v in
                                     sorted(pages.items(), key=lambda kv: -kv[1])}}


def main(argv):
    engine, folder, cycles = argv[1], argv[2], int(argv[3])
    k = int(argv[4]) if len(argv) > 4 else None
    loop, conn, count = ENGINES[engine](folder, cycles, k)
    settings = {"journal_mode": str(pragma(conn, "journal_mode")).lower() if conn is not None else "-",
                "synchronous": pragma(conn, "synchronous")}
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    extra = loop() or {}
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    store = sys.modules.get("kanban.store.sqlite")
    if store is not None and engine.startswith("kanban") and engine != "kanban-sql":
        # kanban commits at synchronous=NORMAL and fdatasyncs the WAL itself, after the
        # write lock and before the caller's answer: what it did, per cycle
        settings["synchronous"] = f"{settings['synchronous']} + {store.synced_total() / count:.2f} fdatasync/cycle"
    json.dump({"engine": engine, "k": k if engine in ("kanban-batch", "kanban-threads", "flush") else None,
               "cycles": count,
               "seconds": round(seconds, 4), "per_s": round(count / seconds, 1),
               "cpu_per_cycle_us": round((user + system) * 1e6 / count, 1),
               "user_per_cycle_us": round(user * 1e6 / count, 1), "sys_per_cycle_us": round(system * 1e6 / count, 1),
               "wal_bytes": _size(folder), **(_wal_frames(folder) or {}), **settings, **extra}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
