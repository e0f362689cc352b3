"""The SQLite backend: a board in one file, opened one way, written one way.

SQLite through apsw, which bundles a current SQLite (the stdlib module here links
3.40.1, which has the WAL-reset corruption bug fixed in 3.44.6/3.50.7/3.51.3).
Every write runs as BEGIN IMMEDIATE inside a blocking OS lock on `<board>.lock`:
waiting writers sleep in the kernel and are woken when the lock is free, instead of
polling the way SQLite's busy handler does, so a crowd of writers is served in turn
and nobody sees "database is locked" before KANBAN_BUSY_TIMEOUT.
"""
import errno
import fcntl
import os
import sys
import time

import apsw

from .. import clock
from ..errors import KanbanError, invalid
from . import SCHEMA_VERSION, Store, busy_timeout_ms
from .queries import SQLITE, task_events

# The board's own mark in the file header (PRAGMA application_id): "Kanb".  A file
# without it is a board only if it is an older board, known by its tables.
APPLICATION_ID = 0x4B616E62
BOARD_TABLES = {"meta", "tasks", "deps", "events"}

# the task_events view as migration 4 made it; migration 9 makes it again (it rebuilds
# the events table the view reads)
_TASK_EVENTS_VIEW = "\n    CREATE VIEW task_events AS\n" + task_events(
    "json_extract(data, '$.to')", "coalesce(json_extract(data, '$.review'), 0)",
    "           json_object('from', previous, 'to', status, 'event', kind), expires_at\n")

# Each entry takes the schema from version i to i+1.  Never edit a shipped entry:
# add a new one, so boards made by older releases migrate forward.
MIGRATIONS = [
    # 1: the core board
    """
    CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
    INSERT INTO meta(key, value) VALUES ('lease_token', 0);
    CREATE TABLE tasks(
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        kind            TEXT NOT NULL DEFAULT 'task' CHECK (kind IN ('task', 'goal')),
        title           TEXT NOT NULL,
        body            TEXT,
        status          TEXT NOT NULL DEFAULT 'todo' CHECK (status IN
                          ('todo','in_progress','in_review','blocked','done','failed','cancelled')),
        priority        INTEGER NOT NULL DEFAULT 0,
        project         TEXT,
        role_boundary   TEXT,
        assignee        TEXT,
        goal_id         INTEGER REFERENCES tasks(id),
        review          INTEGER NOT NULL DEFAULT 0,
        claimed_by      TEXT,
        lease_until     INTEGER,
        lease_token     INTEGER,
        lease_ms        INTEGER,
        attempts        INTEGER NOT NULL DEFAULT 0,
        max_attempts    INTEGER,
        not_before      INTEGER,
        idempotency_key TEXT UNIQUE,
        reason          TEXT,
        unmet_deps      INTEGER NOT NULL DEFAULT 0,
        started_at      INTEGER,
        finished_at     INTEGER,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL
    );
    -- claim: one seek per eligibility class (role, assignee), whatever lies ahead
    CREATE INDEX tasks_claim ON tasks(role_boundary, assignee, priority DESC, created_at, id)
        WHERE status = 'todo' AND kind = 'task' AND unmet_deps = 0;
    CREATE INDEX tasks_lease ON tasks(lease_until) WHERE lease_until IS NOT NULL;
    CREATE INDEX tasks_status ON tasks(status, priority DESC, created_at, id);
    CREATE INDEX tasks_goal ON tasks(goal_id) WHERE goal_id IS NOT NULL;
    CREATE INDEX tasks_finished ON tasks(finished_at) WHERE finished_at IS NOT NULL;
    CREATE TABLE deps(
        task_id INTEGER NOT NULL REFERENCES tasks(id),
        dep_id  INTEGER NOT NULL REFERENCES tasks(id),
        PRIMARY KEY (task_id, dep_id)
    ) WITHOUT ROWID;
    CREATE INDEX deps_dependents ON deps(dep_id, task_id);
    -- every agent that ever held a task: the review gate, kept when events are pruned
    CREATE TABLE holders(
        task_id INTEGER NOT NULL,
        agent   TEXT NOT NULL,
        PRIMARY KEY (task_id, agent)
    ) WITHOUT ROWID;
    CREATE TABLE events(
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id    INTEGER,
        kind       TEXT NOT NULL,
        actor      TEXT,
        at         INTEGER NOT NULL,
        data       TEXT,
        expires_at INTEGER
    );
    CREATE INDEX events_task ON events(task_id, id);
    CREATE INDEX events_kind ON events(kind, id);
    CREATE INDEX events_expiry ON events(expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE comments(
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id INTEGER NOT NULL REFERENCES tasks(id),
        actor   TEXT,
        at      INTEGER NOT NULL,
        body    TEXT NOT NULL
    );
    CREATE INDEX comments_task ON comments(task_id, id);
    -- unmet_deps counts the deps that are not done, kept by the database itself
    CREATE TRIGGER deps_added AFTER INSERT ON deps BEGIN
        UPDATE tasks SET unmet_deps = unmet_deps + 1
         WHERE id = NEW.task_id
           AND (SELECT status FROM tasks WHERE id = NEW.dep_id) IS NOT 'done';
    END;
    CREATE TRIGGER deps_removed AFTER DELETE ON deps BEGIN
        UPDATE tasks SET unmet_deps = unmet_deps - 1
         WHERE id = OLD.task_id
           AND (SELECT status FROM tasks WHERE id = OLD.dep_id) IS NOT 'done';
    END;
    CREATE TRIGGER deps_done AFTER UPDATE OF status ON tasks
      WHEN (OLD.status = 'done') <> (NEW.status = 'done') BEGIN
        UPDATE tasks SET unmet_deps = unmet_deps + (CASE WHEN NEW.status = 'done' THEN -1 ELSE 1 END)
         WHERE id IN (SELECT task_id FROM deps WHERE dep_id = NEW.id);
    END;
    """,
    # 2: full-text search and runs (the team board's unit of execution)
    """
    CREATE VIRTUAL TABLE tasks_fts USING fts5(title, body, content='tasks', content_rowid='id');
    INSERT INTO tasks_fts(rowid, title, body) SELECT id, title, coalesce(body, '') FROM tasks;
    CREATE TRIGGER tasks_fts_insert AFTER INSERT ON tasks BEGIN
        INSERT INTO tasks_fts(rowid, title, body) VALUES (NEW.id, NEW.title, coalesce(NEW.body, ''));
    END;
    CREATE TRIGGER tasks_fts_update AFTER UPDATE OF title, body ON tasks BEGIN
        INSERT INTO tasks_fts(tasks_fts, rowid, title, body)
            VALUES ('delete', OLD.id, OLD.title, coalesce(OLD.body, ''));
        INSERT INTO tasks_fts(rowid, title, body) VALUES (NEW.id, NEW.title, coalesce(NEW.body, ''));
    END;
    CREATE TABLE runs(
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id      INTEGER NOT NULL REFERENCES tasks(id),
        agent        TEXT,
        lease_token  INTEGER,
        started_at   INTEGER NOT NULL,
        heartbeat_at INTEGER NOT NULL,
        ended_at     INTEGER,
        outcome      TEXT
    );
    CREATE INDEX runs_task ON runs(task_id, id);
    CREATE INDEX runs_open ON runs(heartbeat_at) WHERE ended_at IS NULL;
    """,
    # 3: the event log under the name seed 004's Verify step queries (task_events)
    """
    CREATE VIEW task_events AS SELECT id, task_id, kind, actor, at, data, expires_at FROM events;
    """,
    # 4: task_events also answers every task status change as status_changed {from, to, event},
    # whatever event made it (claimed, completed, blocked, ...), so the audit trail reads alike
    # for goals and tasks
    """
    DROP VIEW task_events;
    """ + _TASK_EVENTS_VIEW + """
    """,
    # 5: WIP limits on in_progress and in_review, each on a scope (role, project, agent);
    # scope is the JSON array [status, role, project, agent]: one limit per scope
    """
    CREATE TABLE wip_limits(
        scope      TEXT PRIMARY KEY,
        status     TEXT NOT NULL CHECK (status IN ('in_progress', 'in_review')),
        role       TEXT,
        project    TEXT,
        agent      TEXT,
        max_count  INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # 6: bearer tokens for `kanban mcp --http` (and the web board): only a hash of each secret is kept
    """
    CREATE TABLE access_tokens(
        id         INTEGER PRIMARY KEY,
        agent      TEXT NOT NULL,
        hash       TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT,
        revoked_at INTEGER
    );
    CREATE INDEX access_tokens_agent ON access_tokens(agent);
    """,
    # 7: no index on the events' kind: every event wrote a page of it (a claim+complete cycle two
    # of its ~19 WAL pages), and nothing needs it: the flow charts read the state events in id
    # order (most events are state events), the prune finds progress notes by events_expiry
    """
    DROP INDEX events_kind;
    """,
    # 8: a task that becomes done (or stops being done) updates its dependents' unmet_deps
    # only when it has dependents: the update's IN list is a temporary table SQLite builds
    # on every run, ~9% of the instructions of a claim_many + complete_many task
    """
    DROP TRIGGER deps_done;
    CREATE TRIGGER deps_done AFTER UPDATE OF status ON tasks
      WHEN (OLD.status = 'done') <> (NEW.status = 'done') AND EXISTS (SELECT 1 FROM deps WHERE dep_id = NEW.id)
    BEGIN
        UPDATE tasks SET unmet_deps = unmet_deps + (CASE WHEN NEW.status = 'done' THEN -1 ELSE 1 END)
         WHERE id IN (SELECT task_id FROM deps WHERE dep_id = NEW.id);
    END;
    """,
    # 9: events without AUTOINCREMENT, and the fencing token drawn from the event ids.  Every
    # event wrote the events row of sqlite_sequence (a statement SQLite runs inside the insert;
    # two WAL pages of a claim+complete cycle's ~15), and every claim the lease_token row of
    # meta (a statement and a page): now a new event's id is the highest plus one, which
    # stays new because the newest event is never pruned (`prune_progress`), and a claim's
    # token is the highest event id plus one plus meta's 'lease_token', now that offset
    # (store/queries.py _SQLITE_TOKEN).  The table is rebuilt as SQLite's documentation
    # says (lang_altertable.html, "Making Other Kinds Of Table Schema Changes"): the view
    # that reads it is dropped, a new table filled, the old one dropped, the new one renamed,
    # then its indexes and the view (migration 4's) made again.  What was given out before
    # is kept: when the newest events were pruned progress notes (the counter ahead of the
    # highest id), an expired note with no task is left at the counter's id, so those ids
    # are not given out again (the next prune drops it once a newer event exists); and the
    # offset makes the next token the old counter's next value.
    """
    DROP VIEW task_events;
    CREATE TABLE events_new(
        id         INTEGER PRIMARY KEY,
        task_id    INTEGER,
        kind       TEXT NOT NULL,
        actor      TEXT,
        at         INTEGER NOT NULL,
        data       TEXT,
        expires_at INTEGER
    );
    INSERT INTO events_new(id, task_id, kind, actor, at, data, expires_at)
        SELECT id, task_id, kind, actor, at, data, expires_at FROM events ORDER BY id;
    INSERT INTO events_new(id, task_id, kind, actor, at, data, expires_at)
        SELECT seq, NULL, 'progress', NULL, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
               '{"message":"the event ids up to this one were given out before"}', 0
          FROM sqlite_sequence WHERE name = 'events' AND seq > (SELECT coalesce(max(id), 0) FROM events);
    UPDATE meta SET value = value - (SELECT coalesce(max(id), 0) FROM events_new) WHERE key = 'lease_token';
    DROP TABLE events;
    DELETE FROM sqlite_sequence WHERE name = 'events';
    ALTER TABLE events_new RENAME TO events;
    CREATE INDEX events_task ON events(task_id, id);
    CREATE INDEX events_expiry ON events(expires_at) WHERE expires_at IS NOT NULL;
    """ + _TASK_EVENTS_VIEW + """
    """,
]


# The status CHECK as migration 1 wrote it, and the same rule as comparisons.  SQLite
# evaluates `status IN (seven strings)` by building a temporary b-tree of the seven on
# every row an UPDATE of status writes (two a claim+complete cycle, one a row for the set
# statements); seven comparisons build nothing.
_STATUS_IN = ("status IN\n                          ('todo','in_progress','in_review','blocked','done',"
              "'failed','cancelled')")
_STATUS_OR = ("status = 'todo' OR status = 'in_progress' OR status = 'in_review' OR status = 'blocked'"
              " OR status = 'done' OR status = 'failed' OR status = 'cancelled'")


def _status_check_by_comparisons(conn):
    """Migration step: the tasks table's status CHECK as comparisons, the same rule.

    A constraint that accepts exactly the rows the old one did needs no table rebuild:
    SQLite's documented procedure for changing a table's constraints in place
    (https://www.sqlite.org/lang_altertable.html#otheralter: edit the table's text in
    sqlite_schema under writable_schema, bump schema_version, check integrity), inside
    the migration's transaction.  A board whose text differs (never made by kanban's
    migration 1) keeps its CHECK: the rule is the same, only slower."""
    found = [row[0] for row in conn.execute("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'tasks'")]
    if not found or found[0].count(_STATUS_IN) != 1:
        return
    version = [row[0] for row in conn.execute("PRAGMA schema_version")][0]
    conn.execute("PRAGMA writable_schema=ON")
    if [row[0] for row in conn.execute("PRAGMA writable_schema")] != [1]:
        return  # a SQLite built defensive (SQLITE_DBCONFIG_DEFENSIVE) keeps the schema read-only
    try:
        conn.execute("UPDATE sqlite_schema SET sql = ? WHERE type = 'table' AND name = 'tasks'",
                     (found[0].replace(_STATUS_IN, _STATUS_OR),))
        conn.execute(f"PRAGMA schema_version={int(version) + 1}")
    finally:
        conn.execute("PRAGMA writable_schema=OFF")
    problems = [row[0] for row in conn.execute("PRAGMA quick_check(tasks)")]
    if problems != ["ok"]:
        raise KanbanError("db_error", f"the status check could not be rewritten: {problems[0]}")


MIGRATIONS.append(_status_check_by_comparisons)  # 10: the status CHECK as comparisons
MIGRATIONS.append(
    # 11: migration 8's trigger, its body behind a view.  SQLite evaluates a trigger's WHEN
    # inside the trigger's own program, and makes and zeroes that program's frame first,
    # sized for its body: the UPDATE of tasks (~5 KB of registers, every index kept), on
    # every statement that writes a status, though the WHEN is almost always false (~6% of
    # the instructions of a claim+complete cycle).  Now the trigger's body is one small
    # INSERT into a view, and the view's INSTEAD OF trigger runs the UPDATE: its frame is
    # made only when a task with dependents becomes done or stops being done.  The same
    # rule, at the same moment; the inner UPDATE writes no status, so no trigger fires again.
    """
    DROP TRIGGER deps_done;
    -- never read, only written by tasks_done_changed: each row inserted is a task (dep_id)
    -- that became done (done = 1) or stopped being done (done = 0) and has dependents
    CREATE VIEW deps_done_changes(dep_id, done) AS SELECT NULL, NULL WHERE 0;
    CREATE TRIGGER deps_done_count INSTEAD OF INSERT ON deps_done_changes BEGIN
        UPDATE tasks SET unmet_deps = unmet_deps + (CASE WHEN NEW.done THEN -1 ELSE 1 END)
         WHERE id IN (SELECT task_id FROM deps WHERE dep_id = NEW.dep_id);
    END;
    CREATE TRIGGER tasks_done_changed AFTER UPDATE OF status ON tasks
      WHEN (OLD.status = 'done') <> (NEW.status = 'done') AND EXISTS (SELECT 1 FROM deps WHERE dep_id = NEW.id)
    BEGIN
        INSERT INTO deps_done_changes(dep_id, done) VALUES (NEW.id, NEW.status = 'done');
    END;
    """)
# 12: a Postgres board searches with unicode61's own table (store/unicode61.py); this
# board has unicode61 itself: nothing to change
MIGRATIONS.append("SELECT 1")
assert len(MIGRATIONS) == SCHEMA_VERSION

# What SqliteStore.set_counters places, as place_counters does it (an import, the copy of a
# server board): an events counter ahead of the highest event id (the newest events were
# pruned before the board had schema 9) leaves an expired note with no task at the
# counter's id, as migration 9 does, so the ids before it are not given out again
_EVENTS_FLOOR = ("INSERT INTO events(id, task_id, kind, actor, at, data, expires_at)"
                 " SELECT :floor, NULL, 'progress', NULL, :now,"
                 " '{\"message\":\"the event ids up to this one were given out before\"}', 0"
                 " WHERE :floor > (SELECT coalesce(max(id), 0) FROM events)")
# the counters of a schema 9 board: the highest event id, and the last token that may have
# been given out (the next one, less one)
_COUNTERS = ("SELECT (SELECT coalesce(max(id), 0) FROM events),"
             " (SELECT coalesce(max(id), 0) FROM events) + (SELECT value FROM meta WHERE key = 'lease_token')")


def counters(conn):
    """Store.counters of the board on apsw connection `conn`: "tasks", "comments", "runs"
    from sqlite_sequence (AUTOINCREMENT); "events", the highest event id (the last one
    given out: the newest event is never deleted); "lease_token", the next token less one."""
    values = {name: seq for name, seq in conn.execute("SELECT name, seq FROM sqlite_sequence")}
    values["events"], values["lease_token"] = conn.execute(_COUNTERS).fetchone()
    return {name: int(value) for name, value in values.items() if value}


def place_counters(conn, values):
    """Store.set_counters on apsw connection `conn`, after the rows are placed: the events
    counter first (see _EVENTS_FLOOR), then the token's offset, so that counters() answers
    `values` again.  The token counter is always set, to 0 when `values` has none (an
    export leaves out a counter at zero): the next claim's token is the counter's next
    value, whatever ids the rows placed."""
    autoincrement = {r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%AUTOINCREMENT%'")}
    unknown = sorted(set(values) - autoincrement - {"events", "lease_token"})
    if unknown:
        raise invalid(f"this board has no counter {unknown[0]!r}")
    if values.get("events"):
        conn.execute(_EVENTS_FLOOR, {"floor": values["events"], "now": clock.now_ms()})
    for name, value in values.items():
        if name in autoincrement:
            conn.execute("DELETE FROM sqlite_sequence WHERE name = ?", (name,))
            conn.execute("INSERT INTO sqlite_sequence(name, seq) VALUES (?, ?)", (name, value))
    conn.execute("UPDATE meta SET value = ? - (SELECT coalesce(max(id), 0) FROM events) WHERE key = 'lease_token'",
                 (values.get("lease_token", 0),))

def run_migration(conn, step):
    """One entry of MIGRATIONS on an apsw connection: its SQL text, or a function of
    the connection (a step that needs to read before it writes)."""
    if callable(step):
        step(conn)
    else:
        for _ in conn.execute(step):
            pass


def db_error(exc, path=None):
    """Translate a driver exception into the closed list of codes."""
    if isinstance(exc, KanbanError):
        return exc
    if isinstance(exc, (apsw.BusyError, apsw.LockedError)):
        return KanbanError("busy", "the board stayed locked past KANBAN_BUSY_TIMEOUT")
    name = type(exc).__name__
    reasons = {
        "CorruptError": "the board is corrupt",
        "NotADBError": "the file is not a kanban board (not a SQLite database)",
        "ReadOnlyError": "the board is read-only",
        "FullError": "the disk is full",
        "CantOpenError": "the board cannot be opened",
        "IOError": "the board could not be read or written (I/O error)",
        "PermissionsError": "no permission to use the board",
    }
    message = reasons.get(name, "the board cannot be used")
    if name == "CantOpenError" and path and os.path.isdir(path):
        message = (f"the board cannot be opened: {path} is a folder (name the board's file, "
                   f"e.g. {os.path.join(path, 'board.db')})")
    if isinstance(exc, OSError):
        message = reasons["FullError"] if exc.errno == errno.ENOSPC else f"{message}: {exc.strerror}"
    return KanbanError("db_error", message, detail=f"{name}: {exc}", db=path)


class _Timeout(Exception):
    pass


def _raise_timeout(signum, frame):
    raise _Timeout()


class WriterLock:
    """A blocking, kernel-queued exclusive lock taken around every write transaction,
    served first come, first served.

    The lock itself is a flock on `<board>.lock`.  A writer that finds it taken joins
    a queue kept in the same file with open-file-description record locks (Linux):
    under a short guard lock it takes the next ticket from a counter in the file's
    first 8 bytes and locks the byte of its ticket; then it waits for the byte of the
    ticket before it, which its predecessor holds until it takes the lock; then it
    tries the lock, ready, while its predecessor holds it (_spin).  So waiters are
    woken one at a time, in the order they came, and a waiter that dies (or gives up
    at KANBAN_BUSY_TIMEOUT) drops out of the queue by the kernel releasing its locks;
    the waiter behind it then waits for the one before the dead one (_still_waiting).
    A newcomer goes straight for the flock only when nobody is queued.  Where the
    record locks are missing, waiters simply contend for the flock.

    A newcomer also knows nobody is queued, with no system call, when the last ticket
    issued has been served: a writer from the queue says so as it lets go.

    The file's first words (the queue's counter, the commit marks, the tickets served)
    are read and written as memory through a shared map of its first page from a
    handle's second write (or read) on, with no system call: a CLI call, which writes
    once, does not pay for the map.  Until then, and where there is no map (see
    _map_words), they are read and written with pread and pwrite, as older kanban
    processes do: both go through the same page cache, so each sees what the other
    wrote.  (A writer that has not mapped says which tickets are served with a
    pwrite; an older kanban does not say it: then a newcomer asks the kernel, as
    before.)
    """

    def __init__(self, path):
        self.path = path + ".lock"
        self.fd = None
        self.marks_fd = None  # a reader's look at the commit marks, when it holds no fd of the lock
        # the words through the writer's fd (read-write) and the reader's (read-only), as
        # memoryviews of 8-byte ints over the maps (`_map_words`), once mapped; and how
        # many times each was looked at through system calls, to map at the second
        self.words = self.marks = None
        self.maps = []
        self.writes = self.reads = 0
        self.ticket = None  # our place in the queue, while we wait or hold the lock
        # a list to note [asked, got, released] (time.monotonic) of every hold in, or None:
        # how `kanban bench` tells the lock's idle time from its held time
        self.trace = None

    def acquire(self, deadline):
        """Take the lock (True), waiting in the queue until `deadline`; False when there
        is no lock file to take.  Nobody queued and the lock free (the common case): a
        look at the queue's counter and one flock, here."""
        if self.trace is None:
            if self.fd is not None and not (_QUEUE and self._queued()):
                try:
                    fcntl.flock(self.fd, _LOCK_NOW)
                    return True
                except BlockingIOError:
                    pass
            return self._acquire(deadline)
        asked = time.monotonic()
        locked = self._acquire(deadline)
        if locked:
            self.trace.append([asked, time.monotonic(), None])
        return locked

    def _acquire(self, deadline):
        if self.fd is None:
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            except OSError:
                return False  # read-only folder: SQLite will say what is wrong
        queued = _QUEUE and self._queued()
        if not queued:
            try:
                fcntl.flock(self.fd, _LOCK_NOW)
                return True
            except BlockingIOError:
                pass
        if time.monotonic() >= deadline:
            raise KanbanError("busy", "the board stayed locked past KANBAN_BUSY_TIMEOUT")
        try:
            if _QUEUE and self._enqueue(deadline):
                before = self.ticket - 1
                while before >= 0:  # wait for the writer before us to take the lock
                    self._wait(lambda fd, block, at=_QUEUE_AT + before: _range(fd, at, block), deadline)
                    _range(self.fd, _QUEUE_AT + before, None)
                    before = self._still_waiting(before)
                if self.ticket > 0 and self._spin(deadline):
                    self._next_may_come()
                    return True
            self._wait(lambda fd, block: fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB)),
                       deadline)
            self._next_may_come()
            return True
        except BaseException:
            self._leave()
            raise

    def _queued(self):
        """Is anyone waiting in the queue (or holding the lock from it)?  Nobody, when no
        ticket was ever issued or the last one issued has been served (its holder said so
        in memory); else whoever holds the last ticket's byte."""
        words = self.words
        if words is not None:
            issued = words[0]
            if words[_SERVED] >= issued:
                return False
        else:
            issued = int.from_bytes(os.pread(self.fd, 8, 0) or b"\0", "little")
        return 0 < issued < _TICKETS_MAX and _held(self.fd, _QUEUE_AT + issued - 1)

    def _spin(self, deadline):
        """Next in line, the writer before us holding the lock: try the lock until it is
        let go (True), for at most SPIN_S, letting whatever else is runnable on this core
        go first between tries (sched_yield); False past that: then we sleep in the kernel.

        A waiter asleep in the kernel is woken when the lock is let go and must then be
        scheduled, on a core that may have halted: with 50 writing processes on 2 cores
        the lock sat free for that hand-off half of the run.  A waiter that is already
        runnable takes it at once.  Only the next in line spins (_next_may_come), and it
        never holds a core another process wants: with 50 API agents on 2 cores, 7
        alternating pairs of runs gave ~10% more claims/s (hand-off p50 0.19 -> 0.13 ms)
        and the same CPU per call; a spin that kept its core (no sched_yield) gave fewer."""
        until = min(deadline, time.monotonic() + SPIN_S)
        fd = self.fd
        while True:
            try:
                fcntl.flock(fd, _LOCK_NOW)
                return True
            except BlockingIOError:
                pass
            if time.monotonic() >= until:
                return False
            os.sched_yield()

    def _next_may_come(self):
        """Holding the lock from the queue: free our ticket's byte now, not at release, so
        the writer after us wakes during our hold and waits ready (_spin).  The ticket is
        kept: release() still says it is served."""
        if self.ticket is not None:
            try:
                _range(self.fd, _QUEUE_AT + self.ticket, None)
            except OSError:
                pass

    def _still_waiting(self, gone):
        """Ticket `gone`'s byte is free: its writer is done, or it died (or gave up)
        while it waited.  The nearest ticket before it whose writer still waits or holds
        the lock (and so its byte), or -1 when every one before us is done: we are next.

        A writer done says so (the tickets served, before it frees its byte), so the
        usual answer takes no system call.  Otherwise the bytes just before are looked at
        (the kernel's F_OFD_GETLK), nearest first, at most _LOOK_BACK of them: a waiter
        killed in the middle of the queue must not let the one behind it pass those
        before it."""
        words = self.words
        if words is not None:
            served = words[_SERVED]
        else:
            served = int.from_bytes(os.pread(self.fd, 8, 8 * _SERVED) or b"\0", "little")
        for ticket in range(gone - 1, max(served, gone - 1 - _LOOK_BACK) - 1, -1):
            if _held(self.fd, _QUEUE_AT + ticket):
                return ticket
        return -1

    def _enqueue(self, deadline):
        """Take a ticket and lock its byte; False when the queue cannot be used."""
        try:
            self._wait(lambda fd, block: _range(fd, 0, block), deadline)
        except OSError:
            return False
        try:
            # the guard lock makes this read and write one step, for an older kanban's
            # pread and pwrite of the counter as well (the same page cache as the map)
            words = self.words
            if words is not None:
                ticket = words[0]
                if ticket >= _TICKETS_MAX:
                    return False  # a damaged counter: contend for the flock
                words[0] = ticket + 1
            else:
                ticket = int.from_bytes(os.pread(self.fd, 8, 0) or b"\0", "little")
                if ticket >= _TICKETS_MAX:
                    return False
                os.pwrite(self.fd, (ticket + 1).to_bytes(8, "little"), 0)
            _range(self.fd, _QUEUE_AT + ticket, False)
            self.ticket = ticket
            return True
        except OSError:
            return False
        finally:
            _range(self.fd, 0, None)

    def _leave(self):
        if self.ticket is not None:
            ticket, self.ticket = self.ticket, None
            try:
                _range(self.fd, _QUEUE_AT + ticket, None)
            except OSError:
                pass

    def _wait(self, take, deadline):
        """take(fd, block) on the lock file until it succeeds, or `busy` at the deadline.

        The waiter sleeps in the kernel and is runnable the moment the lock is free.  The
        main thread blocks in take() itself, cut short at the deadline by SIGALRM.  Other
        threads cannot use SIGALRM (and a blocked fcntl cannot be interrupted there): a
        helper thread blocks in take() on an open file of its own and lets go at once,
        which tells the waiter the lock is free; the waiter then takes it for itself, and
        gives up at the deadline while the helper is still blocked (the helper lets go
        whenever it is served, or when the process ends)."""
        try:
            take(self.fd, False)
            return
        except (BlockingIOError, PermissionError):
            pass
        import threading

        if threading.current_thread() is threading.main_thread():
            import signal

            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KanbanError("busy", "the board stayed locked past KANBAN_BUSY_TIMEOUT")
            previous = signal.signal(signal.SIGALRM, _raise_timeout)
            signal.setitimer(signal.ITIMER_REAL, remaining)
            try:
                take(self.fd, True)
                return
            except _Timeout:
                raise KanbanError("busy", "the board stayed locked past KANBAN_BUSY_TIMEOUT") from None
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                free = _free_event(self.path, take, threading)
            except OSError:  # no file for the helper (out of descriptors): look again shortly
                free = threading.Event()
                remaining = min(remaining, 0.001)
            if not free.wait(remaining) and time.monotonic() >= deadline:
                raise KanbanError("busy", "the board stayed locked past KANBAN_BUSY_TIMEOUT")
            try:
                take(self.fd, False)
                return
            except (BlockingIOError, PermissionError):
                pass  # someone else was quicker: wait for the next release

    # -- durability: which commits are on disk (see SqliteStore._durable) --------

    def committing(self):
        """Count a commit about to be made, while this lock is held: its number, or
        None when there is no lock file (then every reader and writer syncs itself)."""
        if self.fd is None:
            return None
        words = self.words
        if words is None:
            self.writes += 1
            if self.writes == 2:  # a handle that writes again: map the words from now on
                self.words = words = self._map(self.fd, True)
            if words is None:
                seq = int.from_bytes(os.pread(self.fd, 8, _COMMITTED), "little") + 1
                if seq > _MARKS_MAX:
                    return None  # a damaged mark: this writer syncs, every reader too
                os.pwrite(self.fd, seq.to_bytes(8, "little"), _COMMITTED)
                return seq
        seq = words[1] + 1
        if seq > _MARKS_MAX:
            return None
        words[1] = seq
        return seq

    def synced(self, seq):
        """Commits up to `seq` are on disk: said by the writer of commit `seq` after its
        own sync, which covers every commit before it (they wrote their frames before it
        took the lock).  Only writers say it: a reader's sync covers what it saw, but a
        commit counted meanwhile may not have written its frames yet.  Two writers may
        note theirs out of order, leaving the mark lower than it could be: a reader then
        syncs once more."""
        if self.fd is not None and seq is not None:
            if self.words is not None:
                self.words[2] = seq
                return
            try:
                os.pwrite(self.fd, seq.to_bytes(8, "little"), _SYNCED)
            except OSError:
                pass  # the mark only spares readers a sync: never fail a command for it

    def unsynced(self):
        """The number of the last commit counted, when it may not be on disk yet (its
        writer has not synced it, or died first); None when every counted one is."""
        fd = self.fd
        words = self.words
        if fd is None:
            if self.marks_fd is None:
                try:
                    self.marks_fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    return None  # no lock file: no writer has ever committed through one
            fd = self.marks_fd
            words = self.marks
            if words is None:
                self.reads += 1
                if self.reads == 2:  # a handle that reads again: map the marks from now on
                    self.marks = words = self._map(fd, False)
        if words is not None:
            committed, synced = words[1], words[2]
        else:
            marks = os.pread(fd, 16, _COMMITTED)
            committed = int.from_bytes(marks[:8] or b"\0", "little")
            synced = int.from_bytes(marks[8:16] or b"\0", "little")
        if synced >= _MARKS_MAX:  # a damaged mark proves nothing: sync
            return committed or 1
        return committed if committed > synced else None

    def _map(self, fd, writable):
        mapped = _map_words(fd, writable)
        if mapped is None:
            return None
        self.maps.append(mapped)
        return mapped[1]

    def release(self):
        if self.fd is not None:
            if self.trace:
                self.trace[-1][2] = time.monotonic()
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            if self.ticket is not None:  # every ticket up to ours is served (_queued)
                if self.words is not None:
                    self.words[_SERVED] = self.ticket + 1
                else:  # a handle that has not mapped (a CLI call's one write) says it too
                    try:
                        os.pwrite(self.fd, (self.ticket + 1).to_bytes(8, "little"), 8 * _SERVED)
                    except OSError:
                        pass  # the mark only spares newcomers a look at the kernel's locks
                self.ticket = None  # its byte was freed as the lock was taken (_next_may_come)
            words = self.words
            if words is not None and words[0] > words[_SERVED]:
                _make_way()

    def close(self):
        self.words = self.marks = None
        for region, words in self.maps:
            words.release()  # a map cannot be closed while a view of it is alive
            region.close()
        self.maps = []
        if self.marks_fd is not None:
            os.close(self.marks_fd)
            self.marks_fd = None
        if self.fd is not None:
            self._leave()
            os.close(self.fd)
            self.fd = None


# The queue's record locks: open-file-description locks (Linux), which belong to one
# open file, not to the process, so two boards open in one process queue apart too.
try:
    _QUEUE = (fcntl.F_OFD_SETLK, fcntl.F_OFD_SETLKW, fcntl.F_OFD_GETLK)
except AttributeError:
    _QUEUE = None
_LOCK_NOW = fcntl.LOCK_EX | fcntl.LOCK_NB
_QUEUE_AT = 1 << 32  # ticket n's byte is at _QUEUE_AT + n; the counter is bytes 0..7
# the number of the last commit counted (bytes 8..15) and of the last one known to be
# on disk (bytes 16..23): SqliteStore._durable
_COMMITTED, _SYNCED = 8, 16
# the number of tickets served (bytes 24..31): the last holder from the queue, when it
# let go, says every ticket up to its own is served (through its map, or with a pwrite)
_SERVED = 3
# how many tickets before a free one a waiter looks at for a writer still waiting (a
# waiter killed in the queue: WriterLock._still_waiting); a live waiter's ticket is
# usually the very one before the dead one's
_LOOK_BACK = 64
# how long the next writer in line tries the lock, giving its core away between tries,
# before it sleeps in the kernel (WriterLock._spin)
SPIN_S = 0.0005
# the lock file is kanban's bookkeeping, not data, and a damaged one must not stop a
# write: a queue counter at or past _TICKETS_MAX (whose ticket bytes would lie past the
# largest file offset a lock can name) leaves the queue unused (writers contend for the
# flock, as where the record locks are missing), and a commit mark at or past
# _MARKS_MAX counts no more commits (every reader then syncs for itself).  Neither
# can be reached by counting: 2**62 writes is ~146,000 years at a million a second
_TICKETS_MAX = 1 << 62
_MARKS_MAX = 1 << 62
_WORDS = 4  # the counter, the two marks, the tickets served: the words a writer maps (_map_words)
_SYNCS = [0]  # the WAL syncs kanban made in this process (its own, after the lock): synced_total()


def _map_words(fd, writable):
    """The lock file's first _WORDS words as memory: (the map, a memoryview of it as
    8-byte ints), from a shared map of the file's first page; None where they are to be
    read and written with pread and pwrite instead: no mmap here, a big-endian machine
    (the words are little-endian in the file, the view's native), a file too short
    that a read-only descriptor cannot lengthen (then pread sees what there is), or a
    map refused.

    A word is read and written by the view as one aligned 8-byte load or store (one
    fixed-size memcpy), so a process reading it through a map never sees half of a
    value another wrote through one.  (Byte by byte, as struct's little-endian packer
    writes, it could.)  mmap and pread/pwrite see the same page cache, so an older
    kanban, which preads and pwrites the same bytes, sees every word written here and
    the other way round.  The file is never shortened: a page of a map wholly past the
    end of the file would fault (SIGBUS) when touched."""
    if sys.byteorder != "little":
        return None
    size = 8 * (_WORDS if writable else 3)  # a reader looks at the marks only
    try:
        import mmap  # a shared library of its own (~0.2 ms): only a handle that maps pays

        if os.fstat(fd).st_size < size:
            if not writable:
                return None
            # lengthen the file to hold every word before mapping it: one zero byte at the
            # last word's last byte, which only ever lengthens it (an ftruncate to this
            # length could shorten a file another process lengthened meanwhile), over a
            # byte that is zero anyway (the top byte of a count)
            os.pwrite(fd, b"\0", size - 1)
        prot = mmap.PROT_READ | mmap.PROT_WRITE if writable else mmap.PROT_READ
        region = mmap.mmap(fd, size, mmap.MAP_SHARED, prot)
    except (ImportError, OSError, ValueError):
        return None
    return region, memoryview(region).cast("Q")


def _make_way():
    """Let the writer woken by our release run first, when one is waiting (a ticket
    issued and not yet served: WriterLock.release).

    The kernel wakes the next writer as we let go, most often onto this core's run
    queue, where it would wait for us to block: in the WAL's fdatasync, whose first
    part (handing the pages to the disk) is our CPU time.  Meanwhile the lock sits free
    with a writer waiting, and with 50 writing processes on 2 cores that idle hand-off
    was half of the run (`kanban bench claim --mode api`: "free while a writer
    waited").  One sched_yield puts the waiter first; our sync follows (and covers
    whatever was committed before it).  Without a waiter nothing is given up: the
    check is two words of the mapped lock file."""
    os.sched_yield()


def synced_total():
    """How many times this process synced a board's WAL itself (the bench prints it per
    cycle, next to SQLite's synchronous setting, to show every commit was made durable)."""
    return _SYNCS[0]


def _free_event(path, take, threading):
    """An event set as soon as take(fd, block=True), on an open file of `path` of its
    own, is served: the moment the lock it asks for is free.  The helper thread lets go
    at once (by closing its file)."""
    free = threading.Event()
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)

    def block():
        try:
            take(fd, True)
        except OSError:
            pass
        finally:
            os.close(fd)
            free.set()
    threading.Thread(target=block, name="kanban-lock-wait", daemon=True).start()
    return free


def _flock_struct(kind, start):
    import struct

    return struct.pack("hhqqi4x", kind, os.SEEK_SET, start, 1, 0)


def _range(fd, start, block):
    """Lock one byte (block: wait for it, False: BlockingIOError if taken), or with
    block=None unlock it."""
    if block is None:
        fcntl.fcntl(fd, _QUEUE[0], _flock_struct(fcntl.F_UNLCK, start))
    else:
        try:
            fcntl.fcntl(fd, _QUEUE[1] if block else _QUEUE[0], _flock_struct(fcntl.F_WRLCK, start))
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise BlockingIOError(exc.errno, exc.strerror) from None
            raise


def _held(fd, start):
    import struct

    answer = fcntl.fcntl(fd, _QUEUE[2], _flock_struct(fcntl.F_WRLCK, start))
    return struct.unpack("hhqqi4x", answer)[0] != fcntl.F_UNLCK


class SqliteStore(Store):
    """One connection to a board file, with the pragmas every connection needs."""

    backend = "sqlite"
    is_server = False

    def __init__(self, path, create=False):
        self.path = path
        self.created = False
        self.busy_ms = busy_timeout_ms()
        self._names = {}  # each statement's column names, asked of SQLite once (not cheap)
        if not create and not os.path.exists(path):
            raise KanbanError("not_found", f"no kanban board at {path} (run 'kanban init')", db=path)
        flags = apsw.SQLITE_OPEN_READWRITE
        if create:
            flags |= apsw.SQLITE_OPEN_CREATE
        try:
            # a statement cache that holds every statement a long-lived process (a server,
            # a team) runs: apsw's default of 100 evicts the claim's own statements (a round
            # of tests/test_prepared_once.py's mixed workload runs ~150 statements, 41 of
            # them different, before it runs one again).  No bigger than that needs: apsw
            # looks a statement up by scanning the cache's slots from the first, and a
            # statement found waits about half the slots in (it goes back to the slot after
            # the last one used), ~8 instructions a slot on every statement run; at 512
            # slots that was ~9k instructions of a claim+complete's ~390k
            self.conn = apsw.Connection(path, flags=flags, statementcachesize=256)
            self.conn.set_busy_timeout(self.busy_ms)
            # a cursor kept for the statements that run to their end inside execute() (an
            # INSERT, BEGIN, COMMIT): apsw's Connection.execute makes (and frees) a cursor
            # for every statement.  Always a cursor of self.conn: a group commit that runs
            # this store's writes on its own connection lends its cursor with it (_lend)
            self._cursor = self.conn.cursor()
            # no checkpoint when this process closes the board: a CLI call would pay for
            # a WAL checkpoint (two fsyncs) every time; SQLite checkpoints every 1000 pages
            self.conn.config(apsw.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1)
            # plans that never depend on a bound value (the query planner stability
            # guarantee): a statement whose plan did is prepared again on every run
            self.conn.config(apsw.SQLITE_DBCONFIG_ENABLE_QPSG, 1)
            # the WAL keeps its size between checkpoints (no journal_size_limit): a WAL that is
            # truncated and regrown costs a metadata fsync per commit; a new process reads
            # only the frames since the last checkpoint (at most wal_autocheckpoint pages)
            self.script("PRAGMA recursive_triggers=OFF; PRAGMA foreign_keys=OFF;")
            self.version = self.scalar("PRAGMA user_version")
            self._wal_fd = None
            self.durability()
        except apsw.Error as exc:
            raise db_error(exc, path) from None
        # SQLite follows a symlink to the board: its -wal and -shm sit next to the real
        # file, and so must the writers' lock (one queue and one set of commit marks by
        # whatever name the board is opened) and the WAL kanban syncs
        self.real_path = os.path.realpath(path)
        self.lock = WriterLock(self.real_path)
        self.group_key = self.real_path
        self.joined = False  # has written through this process's group commit for the board

    def durability(self):
        """Commits are durable before anyone is answered, and the lock is not held
        for the disk's flush.

        In WAL mode the connection commits at synchronous=NORMAL: SQLite writes the
        commit's frames to the WAL without an fsync, and syncs at checkpoints (the
        WAL before it is copied, the database after, the WAL header when the WAL is
        reused), so the board stays consistent whatever happens.  Durability is
        kanban's: a writer releases the write lock, then fdatasyncs the WAL and only
        then answers; the next writer meanwhile does its work, and writers that flush
        together share the disk's flush (the kernel merges their journal commits).  A
        sync covers every frame written before it, whoever wrote it.  Readers must
        never answer from a commit that is not yet on disk: the lock file counts
        commits (bumped before each COMMIT) and syncs, and a read that may have seen
        an unsynced commit syncs it before answering (_durable).  A board not in WAL
        mode commits at synchronous=FULL, where SQLite syncs inside COMMIT."""
        try:
            wal = str(self.scalar("PRAGMA journal_mode")).lower() == "wal"
            self.script("PRAGMA synchronous=NORMAL" if wal else "PRAGMA synchronous=FULL")
        except apsw.Error as exc:
            raise db_error(exc, self.path) from None
        self.own_sync = wal

    def _durable(self, seq=None, pending=False):
        """After a commit (its number `seq`, or None) or, with pending, a read: make
        what the caller saw durable before it answers.  A writer syncs the WAL; a
        reader syncs it only when a commit counted in the lock file is not yet known
        to be on disk (and leaves the mark to writers: WriterLock.synced)."""
        if not self.own_sync:
            return
        if pending and self.lock.unsynced() is None:
            return
        try:
            if self._wal_fd is None:
                self._wal_fd = os.open(self.real_path + "-wal", os.O_RDONLY | os.O_CLOEXEC)
            os.fdatasync(self._wal_fd)
            _SYNCS[0] += 1
            if not pending:
                self.lock.synced(seq)
        except FileNotFoundError:
            return  # no WAL (nothing written since it was checkpointed away): nothing to sync
        except OSError as exc:
            raise self._unflushed(exc) from None

    def _unflushed(self, exc):
        return KanbanError("db_error", f"the board's write-ahead log could not be flushed to disk:"
                           f" {exc.strerror}", detail=str(exc), db=self.path)

    def kind(self):
        """"board" (ours, by its mark or, for an older board, its tables), "empty" (a new
        file), or "foreign" (someone else's database: never to be touched)."""
        try:
            mark = self.scalar("PRAGMA application_id")
            if mark == APPLICATION_ID:
                return "board"
            tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master")}
        except apsw.Error as exc:
            raise db_error(exc, self.path) from None
        if mark == 0 and not tables and self.version == 0:
            return "empty"
        if mark == 0 and BOARD_TABLES <= tables and 0 < self.version <= SCHEMA_VERSION:
            lease = self.scalar("SELECT count(*) FROM meta WHERE key = 'lease_token'")
            if lease:
                return "board"
        return "foreign"

    # -- statements ------------------------------------------------------------

    def rows(self, sql, params=()):
        cursor = self.conn.execute(sql, params)
        names = self._names.get(sql)
        if names is None:
            try:
                names = [d[0] for d in cursor.get_description()]
            except apsw.ExecutionCompleteError:
                return []
            if len(self._names) >= 1024:  # statements are made from a bounded set of shapes
                self._names.clear()
            self._names[sql] = names
        return [dict(zip(names, row, strict=False)) for row in cursor]

    def row(self, sql, params=()):
        names = self._names.get(sql)
        if names is None:  # the statement's first run: rows() asks SQLite for its columns
            found = self.rows(sql, params)
            return found[0] if found else None
        for values in self.conn.execute(sql, params):
            return dict(zip(names, values, strict=False))
        return None

    def scalar(self, sql, params=()):
        for row in self.conn.execute(sql, params):
            return row[0]
        return None

    def execute(self, sql, params=()):
        return self.conn.execute(sql, params)

    def insert(self, sql, params=()):
        """A plain INSERT (no RETURNING: see `insert_event`); the new row's id."""
        self._cursor.execute(sql, params)
        return self.conn.last_insert_rowid()

    def last_event_id(self):
        """The connection's last inserted rowid, with no statement: the events' inserts
        are the last this transaction made when it asks (Board._token_events)."""
        return self.conn.last_insert_rowid()

    def script(self, sql):
        """Run every statement of `sql` (apsw stops at a statement that returns rows)."""
        for _ in self.conn.execute(sql):
            pass

    def changes(self):
        return self.conn.changes()

    def sql(self, name):
        return SQLITE[name]

    def tables(self):
        found = self.rows("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        virtual = [r["name"] for r in found if r["sql"].upper().startswith("CREATE VIRTUAL TABLE")]
        return {r["name"]: [c[1] for c in self.conn.execute(f"PRAGMA table_info({r['name']})")]
                for r in found
                if not any(r["name"] == v or r["name"].startswith(v + "_") for v in virtual)}

    def counters(self):
        return counters(self.conn)

    def set_counters(self, values):
        place_counters(self.conn, values)

    # -- transactions ----------------------------------------------------------

    def read(self, fn):
        """Run fn() inside one read transaction: a consistent snapshot."""
        try:
            self.conn.execute("BEGIN")
            try:
                result = fn()
            finally:
                self.conn.execute("COMMIT")
        except apsw.Error as exc:
            raise db_error(exc, self.path) from None
        self._durable(pending=True)  # never answer from a commit that is not on disk yet
        return result

    def write(self, fn):
        """Run fn() inside one BEGIN IMMEDIATE transaction; retry while busy.

        fn must only touch the database (it may run again after a busy rollback).
        Anything it raises rolls the whole transaction back: a failed command
        changes nothing.  In a process with threads, writes to the same board share
        commits (group commit, below); a process without threads writes alone.
        """
        threading = sys.modules.get("threading")
        if threading is not None and threading.active_count() > 1:
            return _group_write(self, fn, threading)
        return self._write_alone(fn)

    def _write_alone(self, fn):
        """The write loop.  The lock's common case is written out here, not called: the
        words mapped (a handle's second write on), no trace, nobody queued, the flock
        free.  Then taking the lock (WriterLock.acquire), counting the commit
        (committing), letting go (release), syncing the WAL and marking it synced
        (_durable, synced) are a look at two words, a flock, a word written, a flock, an
        fdatasync and a word written, and the seven method calls cost more than that work.
        Anything else (the first write, a trace, a queue, a busy lock, no WAL descriptor
        yet) goes through those methods, as before."""
        deadline = time.monotonic() + self.busy_ms / 1000
        delay = 0.002
        cursor = self._cursor
        lock = self.lock
        while True:
            words = lock.words
            fast = (words is not None and lock.trace is None and words[_SERVED] >= words[0]
                    and words[1] < _MARKS_MAX)
            if fast:  # acquire(), when nobody is queued
                try:
                    fcntl.flock(lock.fd, _LOCK_NOW)
                    locked = True
                except BlockingIOError:
                    fast = False
                    locked = lock._acquire(deadline)
            else:
                locked = lock.acquire(deadline)
            committed = False
            try:
                cursor.execute("BEGIN IMMEDIATE")
                try:
                    result = fn()
                    if not (self.own_sync and locked):
                        seq = None
                    elif fast:  # committing()
                        seq = words[1] + 1
                        words[1] = seq
                    else:
                        seq = lock.committing()
                    cursor.execute("COMMIT")
                    committed = True
                except BaseException:
                    if not self.conn.get_autocommit():
                        self.conn.execute("ROLLBACK")
                    raise
            except (apsw.BusyError, apsw.LockedError):
                if time.monotonic() >= deadline:
                    raise KanbanError(
                        "busy", "the board stayed locked past KANBAN_BUSY_TIMEOUT"
                    ) from None
            except apsw.Error as exc:
                raise db_error(exc, self.path) from None
            finally:
                if fast:  # release(): no trace to note, no ticket to give back
                    fcntl.flock(lock.fd, fcntl.LOCK_UN)
                    if words[0] > words[_SERVED]:  # a writer queued meanwhile
                        _make_way()
                elif locked:
                    lock.release()
            if committed:  # durable before the caller hears of it; the lock is free meanwhile
                wal_fd = self._wal_fd
                if fast and seq is not None and wal_fd is not None:  # _durable(seq)
                    try:
                        os.fdatasync(wal_fd)
                    except OSError as exc:
                        raise self._unflushed(exc) from None
                    _SYNCS[0] += 1
                    words[2] = seq  # synced(seq)
                else:
                    self._durable(seq)
                return result
            import random

            time.sleep(random.uniform(delay / 2, delay))  # jitter: no lockstep retries
            delay = min(delay * 2, 0.1)

    def _commit_batch(self, batch):
        """One transaction on this connection holding every request of `batch`, each in
        a savepoint of its own: a request that fails is rolled back alone and answered
        with its error; the others commit together.  Busy: the whole batch again, through
        the same retry loop as a write alone."""
        def every_request():
            for entry in _together(batch):
                if isinstance(entry, list):
                    self._run_together(entry)
                else:
                    self._run_request(entry)

        try:
            self._write_alone(every_request)
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of the batch
            _fail(batch, exc)

    def _lend(self, owner):
        """Run `owner`'s statements on this connection (and its kept cursor, which a
        statement that runs to its end inside execute() leaves free); what to give back."""
        own = owner.conn, owner._cursor
        owner.conn, owner._cursor = self.conn, self._cursor
        return own

    def _run_request(self, request):
        """One caller's fn inside the batch's transaction, on this connection."""
        owner = request.store
        own = self._lend(owner)  # the caller waits meanwhile
        request.result = request.error = None
        self.conn.execute("SAVEPOINT kanban_request")
        try:
            request.result = request.fn()
        except (apsw.BusyError, apsw.LockedError):
            raise
        except BaseException as exc:  # noqa: BLE001 - this caller's failure, not the batch's
            self.conn.execute("ROLLBACK TO kanban_request")
            request.error = db_error(exc, owner.path) if isinstance(exc, apsw.Error) else exc
        finally:
            owner.conn, owner._cursor = own
            self.conn.execute("RELEASE kanban_request")

    def _run_together(self, group):
        """Requests that asked for the same kind of write (fn.batch: key, item, run) in
        one go: the first one's run(items) makes all their changes with a few set
        statements and answers each.  When it fails, its savepoint is rolled back and the
        requests run one by one, so each caller gets its own answer or its own error."""
        first = group[0]
        owner = first.store
        own = self._lend(owner)
        self.conn.execute("SAVEPOINT kanban_together")
        try:
            results = first.batch[2]([request.batch[1] for request in group])
        except (apsw.BusyError, apsw.LockedError):
            raise
        except BaseException:  # noqa: BLE001 - each request again, alone, for its own answer
            results = None
            self.conn.execute("ROLLBACK TO kanban_together")
        finally:
            owner.conn, owner._cursor = own
            self.conn.execute("RELEASE kanban_together")
        if results is None:
            for request in group:
                self._run_request(request)
            return
        for request, result in zip(group, results, strict=True):
            request.result, request.error = result, None
        _GROUPS[self.group_key].together += len(group)

    def wait(self, seconds):
        """A file tells nobody of changes: sleep."""
        time.sleep(seconds)
        return False

    # -- the board as a whole ----------------------------------------------------

    def describe(self):
        wal = (self.real_path if os.path.islink(self.path) else self.path) + "-wal"
        try:
            return {
                "db": os.path.abspath(self.path),
                "sqlite_version": apsw.sqlite_lib_version(),
                "driver": f"apsw {apsw.apsw_version()}",
                "schema_version": self.scalar("PRAGMA user_version"),
                "schema_expected": SCHEMA_VERSION,
                "journal_mode": self.scalar("PRAGMA journal_mode"),
                "page_count": self.scalar("PRAGMA page_count"),
                "freelist_count": self.scalar("PRAGMA freelist_count"),
                "wal": {"path": wal, "bytes": os.path.getsize(wal) if os.path.exists(wal) else 0},
                "filesystem": filesystem(self.path),
            }
        except apsw.Error as exc:
            raise db_error(exc, self.path) from None

    def warnings(self):
        found = []
        fs = filesystem(self.path)
        if fs in NETWORK_FILESYSTEMS:
            found.append(f"the board is on a network filesystem ({fs}): SQLite locking is not reliable"
                         " there; use one machine or Postgres")
        found += wal_warnings(self.real_path)
        return found

    def integrity(self):
        try:
            return [r[0] for r in self.conn.execute("PRAGMA integrity_check")]
        except apsw.Error as exc:
            raise db_error(exc, self.path) from None

    def vacuum(self):
        """incremental_vacuum frees a page per row it returns: read it to the end."""
        try:
            before = self.scalar("PRAGMA freelist_count")
            self.script("PRAGMA incremental_vacuum")
            return before - self.scalar("PRAGMA freelist_count")
        except apsw.Error as exc:
            raise db_error(exc, self.path) from None

    def backup(self, dest):
        """A consistent copy while agents run (SQLite's online backup)."""
        check_backup_target(dest, self.path)

        def copy(target):
            with target.backup("main", self.conn, "main") as job:
                while not job.done:
                    job.step(1024)
            target.execute("PRAGMA journal_mode=DELETE")
        answer = write_board_file(dest, copy)
        self._durable(pending=True)  # the copy holds no commit the board could still lose
        return answer

    def folder(self):
        return os.path.dirname(os.path.abspath(self.path))

    def location(self):
        return os.path.abspath(self.path)

    def display(self):
        return os.path.abspath(self.path)

    # -- schema ------------------------------------------------------------------

    def migrate(self, target=SCHEMA_VERSION):
        """Bring the schema up to `target` in one write transaction; no-op when current."""
        if self.version >= target:
            return False

        def step():
            current = self.scalar("PRAGMA user_version")
            for index in range(current, target):
                run_migration(self.conn, MIGRATIONS[index])
            self.conn.execute(f"PRAGMA user_version={int(target)}")
            self.conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            return current

        before = self.write(step)
        self._names.clear()  # a statement's columns may differ under the new schema
        self.created = before == 0
        self.version = target
        return True

    def close(self):
        _leave_group(self)
        self.lock.close()
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None
        self.conn.close()


def open_board(path, create=False):
    """Open (and, with create, initialise) the board file; migrate when it is behind.

    Only a kanban board is ever changed: someone else's database is `db_error`, and is
    left as it was, byte for byte."""
    if create:
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, mode=0o777, exist_ok=True)  # the umask narrows it
        except (FileExistsError, NotADirectoryError) as exc:  # a file where a folder must be
            raise KanbanError("db_error", f"cannot make the board's folder {folder}: a file of that name, "
                              "or of a folder above it, is in the way", detail=f"{type(exc).__name__}: {exc}",
                              db=path) from None
        except OSError as exc:
            raise db_error(exc, path) from None
    database = SqliteStore(path, create=create)
    try:
        kind = database.kind()
        if kind == "foreign":
            raise KanbanError("db_error", f"{path} is a SQLite database but not a kanban board", db=path)
        if kind == "empty" and not create:
            raise KanbanError("not_found", f"{path} is not a kanban board (run 'kanban init')", db=path)
        if database.version > SCHEMA_VERSION:
            raise KanbanError(
                "db_error",
                f"the board has schema version {database.version}, newer than this kanban "
                f"understands ({SCHEMA_VERSION}): upgrade kanban",
                db=path,
            )
        if kind == "empty":
            try:
                database.conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
                mode = database.scalar("PRAGMA journal_mode=WAL")
            except apsw.Error as exc:
                raise db_error(exc, path) from None
            if str(mode).lower() != "wal":
                raise KanbanError("db_error", f"cannot put the board in WAL mode (got {mode})", db=path)
            database.durability()
        database.migrate()
    except BaseException:
        database.close()
        raise
    return database


# -- files -----------------------------------------------------------------------------

# where SQLite's locks (and so the board's guarantees) cannot be trusted
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph", "glusterfs",
                       "lustre", "gpfs", "beegfs", "davfs", "fuse.sshfs", "fuse.glusterfs", "fuse.s3fs",
                       "fuse.rclone", "fuse.gcsfuse", "fuse.cephfs")


def filesystem(path, mounts="/proc/mounts"):
    """The filesystem type holding `path`, from /proc/mounts (Linux), or None."""
    import re

    try:
        target = os.path.realpath(path)
        best, kind = "", None
        with open(mounts, encoding="utf-8", errors="surrogateescape") as table:
            for line in table:
                parts = line.split()
                if len(parts) < 3:
                    continue
                # the kernel writes a space in a mount point as \040 (tab \011, newline \012, \ \134)
                point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[1])
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, parts[2]
        return kind
    except OSError:
        return None


def _is_board_file(path, board):
    """Is `path` the board file or one of its companions, by any name (symlinks, hard links)?"""
    real = os.path.realpath(board)
    for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
        companion = real + suffix
        if os.path.realpath(path) == companion:
            return True
        try:
            if os.path.samefile(path, companion):
                return True
        except OSError:
            pass  # one of them does not exist: not the same file
    return False


def check_backup_target(dest, board=None):
    """Refuse a backup target that is a folder, or (for a file board) the board itself."""
    if board is not None and _is_board_file(dest, board):
        # the copy replaces its target: over the board, its WAL or its lock, the board is lost
        raise invalid("the backup cannot be the board itself or one of its files (-wal, -shm, .lock)")
    if os.path.isdir(dest):
        raise invalid(f"{dest} is a folder: name a file")


# -- group commit -----------------------------------------------------------------
#
# Threads of one process writing to the same board (the Python API from threads, a
# server with a board per worker) share commits.  The first writer to arrive leads:
# it takes every request queued so far and runs them in one transaction, then commits
# once (one fsync).  Requests that arrive while that commit is in flight queue up and
# go together in the next one, led by the first of them.  Every batch runs on one
# connection that the group keeps for itself, whoever leads: a connection whose last
# transaction was not the board's latest drops its whole page cache and reads back
# every page it touches (SQLite's WAL mode cannot tell which pages changed), and with
# each thread's own connection in turn that was every batch.
# Each caller is answered only after the commit that holds its change has returned,
# so an answer is as durable as a write alone.  Within a batch, requests of the same
# kind (claims with the same role, project and lease; plain completions) are made
# together by set statements (_run_together): what costs a full pass through the
# engine per request costs a few statements per batch.


class _Group:
    def __init__(self, threading):
        self.mutex = threading.Lock()
        self.queue = []        # requests waiting for the next commit
        self.leading = False   # a batch is being run
        self.commits = 0       # transactions committed (or failed) for batches
        self.writes = 0        # requests they carried
        self.together = 0      # requests answered by a set run shared with others
        self.writer = None     # the group's own SqliteStore, every batch's connection
        self.members = 0       # open stores that have written through the group

    def writer_for(self, store):
        """The store batches run on, opened for the first batch (by its leader)."""
        if self.writer is None:
            # the leader's own spelling of the path while it still names the board (the
            # lock file beside it is the one its stores use), else the file itself
            path = store.path if os.path.realpath(store.path) == store.group_key else store.group_key
            self.writer = SqliteStore(path)
        return self.writer


class _Request:
    __slots__ = ("store", "fn", "batch", "event", "lead", "finished", "result", "error", "next")

    def __init__(self, store, fn, event):
        # event: a lock taken at birth; the caller waits by taking it again and is
        # woken by its release (a threading.Event costs a Condition and a lock per wait)
        self.store, self.fn, self.event = store, fn, event
        # (key, item, run): requests of one key can be made together, run(items) answering
        # each item (Board.claim and Board.complete mark theirs); None: on its own
        self.batch = getattr(fn, "batch", None)
        self.lead = self.finished = False
        self.result = self.error = None
        self.next = None  # the request this one wakes once woken (_wake_in_turn)


class _Handoff:
    """The end of a batch's wake-up chain, woken like a request (`event.release()`): the
    next batch is started only now, led by the first request queued, or, with none
    queued, by the next to arrive.  Started as soon as the batch committed, the next
    batch would be led by the first thread to ask again, most often the leader itself,
    before the answered threads had asked: a batch of one, then one of all the others,
    two commits (and two WAL syncs) where one would do."""
    __slots__ = ("group", "event")

    def __init__(self, group):
        self.group = group
        self.event = self

    def release(self):
        group, leader, writer = self.group, None, None
        with group.mutex:
            if group.queue:
                leader = group.queue[0]
                leader.lead = True
            else:
                group.leading = False
                if group.members <= 0:  # every store closed meanwhile: see _leave_group
                    writer, group.writer = group.writer, None
        if leader is not None:
            leader.event.release()
        if writer is not None:
            writer.close()


def _together(batch):
    """The batch's requests in the order they came, those of one batch key gathered in a
    list at the place of the first of them: concurrent requests, so any order is one
    they could have been served in."""
    entries, groups = [], {}
    for request in batch:
        if request.batch is None:
            entries.append(request)
            continue
        key = request.batch[0]
        group = groups.get(key)
        if group is None:
            group = groups[key] = []
            entries.append(group)
        group.append(request)
    return [entry[0] if isinstance(entry, list) and len(entry) == 1 else entry for entry in entries]


_GROUPS = {}
_FORKED = []  # a forked child's inherited groups: never used again, never closed there


def _forget_groups():
    """In a child made by fork: the parent's groups (their connections, a mutex a
    parent's thread may have held, a batch being led) are not the child's."""
    _FORKED.append(dict(_GROUPS))
    _GROUPS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_groups)


def _leave_group(store):
    """`store` is being closed: when it was the group's last open store, the group's
    own connection is closed too (and opened again by a later batch)."""
    group = _GROUPS.get(store.group_key)
    if group is None or not store.joined:
        return
    store.joined = False
    with group.mutex:
        group.members -= 1
        writer = None
        if group.members <= 0 and not group.leading:
            writer, group.writer = group.writer, None
    if writer is not None:
        writer.close()


def group_of(path):
    """The write group of board file `path` in this process, or None (never written
    from a thread): its `commits`, `writes` and `together` counters."""
    return _GROUPS.get(os.path.realpath(path))


def _fail(batch, error):
    for request in batch:
        request.result, request.error = None, error


def _group_write(store, fn, threading):
    group = _GROUPS.get(store.group_key)
    if group is None:
        group = _GROUPS.setdefault(store.group_key, _Group(threading))
    event = threading.Lock()
    event.acquire()
    request = _Request(store, fn, event)
    with group.mutex:
        if not store.joined:
            store.joined = True
            group.members += 1
        group.queue.append(request)
        if not group.leading:
            group.leading = request.lead = True
    interrupted = None
    if not request.lead:
        interrupted = _wait(event)  # answered, or made the leader of the next batch
        if request.next is not None:
            request.next.event.release()  # the wake-up goes on down the batch
    if not request.finished:
        with group.mutex:
            batch, group.queue = group.queue, []
        try:
            group.writer_for(store)._commit_batch(batch)
        except BaseException as exc:  # noqa: BLE001 - the group's connection would not open
            _fail(batch, exc)
        finally:
            with group.mutex:
                group.commits += 1
                group.writes += len(batch)
                for done in batch:
                    done.finished = True
            _wake_in_turn([done for done in batch if done is not request] + [_Handoff(group)])
    if interrupted is not None:
        raise interrupted
    if request.error is not None:
        raise request.error
    return request.result


def _wait(event):
    """Wait for `event`; an exception raised meanwhile (a signal in the main thread)
    is returned once the wait is over, not raised: the request is answered or led all
    the same, and the wake-ups that pass through this thread go on."""
    interrupted = None
    while True:
        try:
            event.acquire()
            return interrupted
        except BaseException as exc:  # noqa: BLE001 - raised by the caller after the wait
            interrupted = exc


def _wake_in_turn(requests):
    """Wake the answered requests of a batch, then the next batch's leader (_Handoff):
    each one woken wakes the next.  Woken all at once, the threads pile up on the interpreter's
    lock (the GIL): every time its holder lets it go (each SQLite step of the next
    batch's leader, each thread that blocks) one of them is woken, most often to find it
    taken again and sleep once more.  Woken in turn, about one at a time wants it, and
    the next batch's leader comes after the answered threads have had it once, most of
    them with their next request queued for its batch."""
    for one, after in zip(requests, requests[1:], strict=False):
        one.next = after
    if requests:
        requests[0].event.release()


def write_board_file(dest, fill):
    """Write a SQLite board file at `dest` through fill(connection), by way of a
    temporary file of its own that is checked and then renamed into place, so `dest`
    is never half written, and two backups to one file never share a temporary file:
    {"backup", "bytes", "pages", "integrity", "at"}."""
    import tempfile

    from .. import clock

    tmp = None
    try:
        handle, tmp = tempfile.mkstemp(prefix=os.path.basename(dest) + ".", suffix=".tmp-backup",
                                       dir=os.path.dirname(os.path.abspath(dest)))
        os.close(handle)
        target = apsw.Connection(tmp)
        try:
            fill(target)
            target.execute(f"PRAGMA application_id={APPLICATION_ID}")
            check = target.execute("PRAGMA integrity_check").fetchall()[0][0]
            pages = target.execute("PRAGMA page_count").fetchall()[0][0]
        finally:
            target.close()
        os.chmod(tmp, 0o666 & ~_umask())
        size = os.path.getsize(tmp)
        os.replace(tmp, dest)
    except apsw.Error as exc:
        _remove(tmp)
        error = db_error(exc, dest)
        # the copy failed, not the board: say which file
        raise KanbanError("db_error", f"cannot write the backup {dest}: "
                          + error.message.replace("the board ", "it ", 1),
                          detail=error.extra.get("detail"), db=dest) from None
    except OSError as exc:
        _remove(tmp)
        raise KanbanError("db_error", f"cannot write the backup {dest}: {exc.strerror}", detail=str(exc)) from None
    finally:
        if tmp:
            _remove(tmp + "-journal")
    return {"backup": os.path.abspath(dest), "bytes": size, "pages": pages,
            "integrity": check, "at": clock.iso(clock.now_ms())}


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove(path):
    if path:
        try:
            os.remove(path)
        except OSError:
            pass


# SQLite checkpoints the WAL back into the database every 1000 pages (4 MiB); a WAL many
# times the database and past that size means checkpoints are being starved, most often
# by a reader that never ends its transaction: every read then walks a longer WAL
WAL_WARN_RATIO = 20
WAL_WARN_MIN_BYTES = 4 * 1024 * 1024


def wal_warnings(path):
    """doctor's warning when the WAL has grown out of proportion to the database."""
    try:
        wal = os.path.getsize(path + "-wal")
        db = os.path.getsize(path)
    except OSError:
        return []
    if wal < WAL_WARN_MIN_BYTES or wal < WAL_WARN_RATIO * max(db, 1):
        return []
    return [f"the WAL is {wal // max(db, 1)} times the size of the database ({wal / 2**20:.1f} MiB against "
            f"{db / 2**20:.1f} MiB): checkpoints are not keeping up, most often because a process keeps a read "
            "transaction open; end it (or restart long-running readers), then 'kanban prune --vacuum'"]
