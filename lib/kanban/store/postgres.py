"""The PostgreSQL backend: KANBAN_DB=postgresql://... runs every verb on a server.

PgStore implements the storage interface (store.Store) on a server.  It runs every
statement as it is given: board.py's statements with parameters, and those whose text
differs from SQLite's, are written out in PostgreSQL's dialect in store/queries.py
(psycopg's %s/%(name)s placeholders, FOR UPDATE where a write locks what it reads),
side by side with SQLite's, and asked for by name (PgStore.sql).

Concurrency.  SQLite runs one writer at a time; here writes run concurrently at READ
COMMITTED, so the order of things is kept by locks instead:
- a write that reads a task's status takes the row's lock (FOR UPDATE): every
  check-then-write of a verb is serialised per task, as SQLite serialises them all;
- claims pick with FOR UPDATE SKIP LOCKED: claimers pass over each other's rows;
- a dependency or goal change takes the board's graph lock before its cycle check;
- ids come from counter rows that a rollback restores (SQLite's AUTOINCREMENT), so
  they have no gaps, and the events counter is held to the commit, so event ids
  commit in order and an `event list --since` cursor never skips a late commit;
- lease tokens come from a sequence: claimers do not queue on a counter for them.
Serialisation failures and deadlocks are retried with jittered backoff up to
KANBAN_BUSY_TIMEOUT, then `busy`.  The driver is psycopg 3, imported for a URL only.
"""
import os
import random
import re
import time
from urllib.parse import urlsplit, urlunsplit

from ..errors import KanbanError
from ..extras import require
from . import SCHEMA_VERSION, Store, busy_timeout_ms, helper
from .queries import POSTGRES, task_events

psycopg = None  # the driver, imported when a call connects directly (see "the wire" below)

# task_events (queries.task_events): migration 4 writes a status change's data with
# jsonb_build_object, migration 12 as SQLite's json_object does
_STATUS_CHANGE_JSONB = ("           jsonb_build_object('from', previous, 'to', status, 'event', kind)::text,"
                        " expires_at\n")
_STATUS_CHANGE_JSON = ("           '{\"from\":' || to_json(previous)::text || ',\"to\":' || to_json(status)::text\n"
                       "           || ',\"event\":' || to_json(kind)::text || '}', expires_at\n")


def _task_events(data):
    return task_events("(data::jsonb ->> 'to')", "coalesce((data::jsonb ->> 'review') = 'true', false)", data)


# Each entry takes a Postgres board from version i to i+1, as sqlite.MIGRATIONS does for
# SQLite; the versions mean the same schema on both.
PG_MIGRATIONS = [
    # 1: the core board
    r"""
    CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
    -- SQLite's AUTOINCREMENT: a counter row per table, restored by a rollback
    CREATE TABLE counters(name TEXT PRIMARY KEY, value BIGINT NOT NULL);
    INSERT INTO counters(name, value) VALUES ('tasks', 0), ('events', 0), ('comments', 0);
    CREATE FUNCTION kanban_next_id(counter TEXT) RETURNS BIGINT LANGUAGE sql VOLATILE AS
        $$ UPDATE counters SET value = value + 1 WHERE name = counter RETURNING value $$;
    CREATE SEQUENCE lease_token_seq;
    CREATE TABLE tasks(
        id              BIGINT PRIMARY KEY DEFAULT kanban_next_id('tasks'),
        kind            TEXT NOT NULL DEFAULT 'task' CHECK (kind IN ('task', 'goal')),
        title           TEXT NOT NULL,
        body            TEXT,
        status          TEXT NOT NULL DEFAULT 'todo' CHECK (status IN
                          ('todo','in_progress','in_review','blocked','done','failed','cancelled')),
        priority        BIGINT NOT NULL DEFAULT 0,
        project         TEXT,
        role_boundary   TEXT,
        assignee        TEXT,
        goal_id         BIGINT,
        review          INTEGER NOT NULL DEFAULT 0,
        claimed_by      TEXT,
        lease_until     BIGINT,
        lease_token     BIGINT,
        lease_ms        BIGINT,
        attempts        BIGINT NOT NULL DEFAULT 0,
        max_attempts    BIGINT,
        not_before      BIGINT,
        idempotency_key TEXT UNIQUE,
        reason          TEXT,
        unmet_deps      BIGINT NOT NULL DEFAULT 0,
        started_at      BIGINT,
        finished_at     BIGINT,
        created_at      BIGINT NOT NULL,
        updated_at      BIGINT NOT NULL
    );
    -- claim: walk the ready tasks in claim order; SKIP LOCKED passes over other claimers
    CREATE INDEX tasks_claim ON tasks(priority DESC, created_at, id)
        WHERE status = 'todo' AND kind = 'task' AND unmet_deps = 0;
    CREATE INDEX tasks_lease ON tasks(lease_until) WHERE lease_until IS NOT NULL;
    CREATE INDEX tasks_status ON tasks(status, priority DESC, created_at, id);
    CREATE INDEX tasks_goal ON tasks(goal_id) WHERE goal_id IS NOT NULL;
    CREATE INDEX tasks_finished ON tasks(finished_at) WHERE finished_at IS NOT NULL;
    CREATE TABLE deps(
        task_id BIGINT NOT NULL,
        dep_id  BIGINT NOT NULL,
        PRIMARY KEY (task_id, dep_id)
    );
    CREATE INDEX deps_dependents ON deps(dep_id, task_id);
    CREATE TABLE holders(
        task_id BIGINT NOT NULL,
        agent   TEXT NOT NULL,
        PRIMARY KEY (task_id, agent)
    );
    CREATE TABLE events(
        id         BIGINT PRIMARY KEY DEFAULT kanban_next_id('events'),
        task_id    BIGINT,
        kind       TEXT NOT NULL,
        actor      TEXT,
        at         BIGINT NOT NULL,
        data       TEXT,
        expires_at BIGINT
    );
    CREATE INDEX events_task ON events(task_id, id);
    CREATE INDEX events_kind ON events(kind, id);
    CREATE INDEX events_expiry ON events(expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE comments(
        id      BIGINT PRIMARY KEY DEFAULT kanban_next_id('comments'),
        task_id BIGINT NOT NULL,
        actor   TEXT,
        at      BIGINT NOT NULL,
        body    TEXT NOT NULL
    );
    CREATE INDEX comments_task ON comments(task_id, id);
    -- unmet_deps counts the deps that are not done.  The dep's status is read FOR SHARE:
    -- a completion of that dep in flight is waited for, then seen.
    CREATE FUNCTION kanban_deps_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF (SELECT status FROM tasks WHERE id = NEW.dep_id FOR SHARE) IS DISTINCT FROM 'done' THEN
            UPDATE tasks SET unmet_deps = unmet_deps + 1 WHERE id = NEW.task_id;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER deps_added AFTER INSERT ON deps FOR EACH ROW EXECUTE FUNCTION kanban_deps_added();
    CREATE FUNCTION kanban_deps_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF (SELECT status FROM tasks WHERE id = OLD.dep_id FOR SHARE) IS DISTINCT FROM 'done' THEN
            UPDATE tasks SET unmet_deps = unmet_deps - 1 WHERE id = OLD.task_id;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER deps_removed AFTER DELETE ON deps FOR EACH ROW EXECUTE FUNCTION kanban_deps_removed();
    CREATE FUNCTION kanban_deps_done() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE tasks SET unmet_deps = unmet_deps + (CASE WHEN NEW.status = 'done' THEN -1 ELSE 1 END)
         WHERE id IN (SELECT task_id FROM deps WHERE dep_id = NEW.id);
        RETURN NULL;
    END $$;
    CREATE TRIGGER deps_done AFTER UPDATE OF status ON tasks FOR EACH ROW
        WHEN ((OLD.status = 'done') <> (NEW.status = 'done')) EXECUTE FUNCTION kanban_deps_done();
    -- claim --wait listens on channel 'kanban' for work that may have become claimable
    CREATE FUNCTION kanban_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('kanban', current_schema());
        RETURN NULL;
    END $$;
    CREATE TRIGGER tasks_notify AFTER INSERT OR UPDATE OF status, claimed_by, unmet_deps, not_before ON tasks
        FOR EACH ROW WHEN (NEW.status = 'todo' OR (NEW.status = 'in_review' AND NEW.claimed_by IS NULL))
        EXECUTE FUNCTION kanban_notify();
    -- a cycle check and the edge it allows commit together: one graph change at a time
    CREATE FUNCTION kanban_reaches(start BIGINT, target BIGINT) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock(1801545326, 'deps'::regclass::oid::integer);
        RETURN EXISTS (
            WITH RECURSIVE reach(id) AS (
                SELECT start
                UNION
                SELECT n.id FROM reach r CROSS JOIN LATERAL (
                    SELECT d.dep_id AS id FROM deps d WHERE d.task_id = r.id
                    UNION ALL SELECT t.id FROM tasks t WHERE t.goal_id = r.id) n)
            SELECT 1 FROM reach WHERE id = target);
    END $$;
    """,
    # 2: full-text search and runs.  Search tokenises as SQLite's FTS5 unicode61 does
    # (letters and digits, case-folded, diacritics removed) and ranks with FTS5's bm25,
    # so both backends answer a search with the same tasks in the same order.
    r"""
    CREATE FUNCTION kanban_tokens(doc TEXT) RETURNS TEXT[] LANGUAGE sql IMMUTABLE AS $$
        SELECT coalesce(array_agg(m[1] ORDER BY n), '{}')
          FROM regexp_matches(regexp_replace(normalize(lower(coalesce(doc, '')), NFD),
                                             '[\u0300-\u036f]', '', 'g'),
                              '([[:alnum:]]+)', 'g') WITH ORDINALITY AS r(m, n) $$;
    -- occurrences of a phrase (a token list) in a document (a token list), overlapping
    CREATE FUNCTION kanban_count(doc TEXT[], phrase TEXT[]) RETURNS INTEGER LANGUAGE sql IMMUTABLE AS $$
        SELECT CASE
            WHEN cardinality(phrase) = 0 THEN 0
            WHEN cardinality(phrase) = 1 THEN (SELECT count(*)::integer FROM unnest(doc) u(tok)
                                                WHERE tok = phrase[1])
            ELSE (SELECT count(*)::integer FROM generate_subscripts(doc, 1) i
                   WHERE doc[i:i + cardinality(phrase) - 1] = phrase) END $$;
    ALTER TABLE tasks ADD COLUMN fts_title TEXT[] NOT NULL DEFAULT '{}',
                      ADD COLUMN fts_body TEXT[] NOT NULL DEFAULT '{}';
    CREATE FUNCTION kanban_fts() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.fts_title := kanban_tokens(NEW.title);
        NEW.fts_body := kanban_tokens(NEW.body);
        RETURN NEW;
    END $$;
    CREATE TRIGGER tasks_fts BEFORE INSERT OR UPDATE OF title, body ON tasks
        FOR EACH ROW EXECUTE FUNCTION kanban_fts();
    UPDATE tasks SET title = title;
    CREATE INDEX tasks_fts ON tasks USING gin ((fts_title || fts_body));
    -- the FTS5 query kanban writes ("term" "term" ...: every phrase, in any column),
    -- answered with FTS5's bm25 (k1 = 1.2, b = 0.75); lower rank is better
    CREATE FUNCTION kanban_search(query TEXT) RETURNS TABLE(id BIGINT, rank DOUBLE PRECISION)
    LANGUAGE sql STABLE AS $$
        WITH phrases AS (
            SELECT n, kanban_tokens(replace(m[1], '""', '"')) AS toks
              FROM regexp_matches(query, '"((?:[^"]|"")*)"', 'g') WITH ORDINALITY AS r(m, n)),
        used AS (SELECT * FROM phrases WHERE cardinality(toks) > 0),
        corpus AS (
            SELECT count(*)::double precision AS n_rows,
                   coalesce(sum(cardinality(fts_title) + cardinality(fts_body)), 0)::double precision AS n_tokens
              FROM tasks),
        freq AS (
            SELECT t.id, p.n,
                   (kanban_count(t.fts_title, p.toks) + kanban_count(t.fts_body, p.toks))::double precision AS tf,
                   (cardinality(t.fts_title) + cardinality(t.fts_body))::double precision AS dl
              FROM used p JOIN tasks t ON (t.fts_title || t.fts_body) @> p.toks),
        hits AS (SELECT n, count(*) FILTER (WHERE tf > 0)::double precision AS n_hit FROM freq GROUP BY n),
        idf AS (
            SELECT h.n, CASE WHEN ln((c.n_rows - h.n_hit + 0.5::float8) / (h.n_hit + 0.5::float8)) > 0
                             THEN ln((c.n_rows - h.n_hit + 0.5::float8) / (h.n_hit + 0.5::float8))
                             ELSE 1e-6::float8 END AS idf
              FROM hits h, corpus c),
        matched AS (
            SELECT f.id FROM freq f WHERE f.tf > 0 GROUP BY f.id
            HAVING count(*) = (SELECT count(*) FROM used) AND count(*) > 0)
        SELECT f.id,
               -1.0::float8 * sum(i.idf * ((f.tf * (1.2::float8 + 1.0::float8))
                    / (f.tf + 1.2::float8 * (1::float8 - 0.75::float8 + 0.75::float8 * f.dl
                                              / (c.n_tokens / c.n_rows)))) ORDER BY f.n)
          FROM freq f JOIN matched USING (id) JOIN idf i USING (n) CROSS JOIN corpus c
         GROUP BY f.id $$;
    INSERT INTO counters(name, value) VALUES ('runs', 0);
    CREATE TABLE runs(
        id           BIGINT PRIMARY KEY DEFAULT kanban_next_id('runs'),
        task_id      BIGINT NOT NULL,
        agent        TEXT,
        lease_token  BIGINT,
        started_at   BIGINT NOT NULL,
        heartbeat_at BIGINT NOT NULL,
        ended_at     BIGINT,
        outcome      TEXT
    );
    CREATE INDEX runs_task ON runs(task_id, id);
    CREATE INDEX runs_open ON runs(heartbeat_at) WHERE ended_at IS NULL;
    """,
    # 3: the event log under the name seed 004's Verify step queries
    """
    CREATE VIEW task_events AS SELECT id, task_id, kind, actor, at, data, expires_at FROM events;
    """,
    # 4: task_events also answers every task status change as status_changed {from, to, event},
    # whatever event made it (claimed, completed, blocked, ...), so the audit trail reads alike
    # for goals and tasks
    """
    DROP VIEW task_events;
    CREATE VIEW task_events AS
""" + _task_events(_STATUS_CHANGE_JSONB) + "    ",
    # 5: WIP limits (see store/sqlite.py MIGRATIONS)
    """
    CREATE TABLE wip_limits(
        scope      TEXT PRIMARY KEY,
        status     TEXT NOT NULL CHECK (status IN ('in_progress', 'in_review')),
        role       TEXT,
        project    TEXT,
        agent      TEXT,
        max_count  BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    """,
    # 6: bearer tokens for `kanban mcp --http` (and the web board): only a hash of each secret is kept
    """
    CREATE TABLE access_tokens(
        id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        agent      TEXT NOT NULL,
        hash       TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        created_by TEXT,
        revoked_at BIGINT
    );
    CREATE INDEX access_tokens_agent ON access_tokens(agent);
    """,
    # 7: no index on the events' kind (see store/sqlite.py MIGRATIONS)
    """
    DROP INDEX events_kind;
    """,
    # 8: dependents' unmet_deps are updated only when the task has dependents (see
    # store/sqlite.py MIGRATIONS; a trigger's WHEN cannot ask this here)
    r"""
    CREATE OR REPLACE FUNCTION kanban_deps_done() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM deps WHERE dep_id = NEW.id) THEN
            UPDATE tasks SET unmet_deps = unmet_deps + (CASE WHEN NEW.status = 'done' THEN -1 ELSE 1 END)
             WHERE id IN (SELECT task_id FROM deps WHERE dep_id = NEW.id);
        END IF;
        RETURN NULL;
    END $$;
    """,
    # 9: no table changes here: SQLite's events lose AUTOINCREMENT and its fencing token is
    # drawn from the event ids (see store/sqlite.py MIGRATIONS); this board keeps its
    # counters table and its lease_token_seq, and, like SQLite's, never prunes its newest
    # event (`prune_progress`), so its events counter stays the highest event id
    """
    SELECT 1;
    """,
    # 10: SQLite's status CHECK as comparisons (store/sqlite.py); PostgreSQL evaluates its
    # IN list without building anything: nothing to change
    "SELECT 1",
    # 11: SQLite's deps_done trigger moved its body behind a view (store/sqlite.py), as its
    # WHEN is evaluated in a frame sized for the body; PostgreSQL evaluates a trigger's WHEN
    # before it calls the function: nothing to change
    "SELECT 1",
    # 12: search splits and folds text as unicode61 does in every script, not only Latin
    # (migration 2 used the server's lower(), [[:alnum:]] and NFD: Greek lost its accents,
    # µ was not mu, ² and ① were separators, Devanagari vowel signs were letters): each
    # code point unicode61 changes is a row of kanban_fold, from SQLite's own tables
    # (store/unicode61.py); text that is all ASCII takes the short way
    lambda: _fold_table_sql() + r"""
    CREATE OR REPLACE FUNCTION kanban_tokens(doc TEXT) RETURNS TEXT[] LANGUAGE sql STABLE AS $$
        SELECT CASE WHEN octet_length(coalesce(doc, '')) = char_length(coalesce(doc, '')) THEN
            (SELECT coalesce(array_agg(m[1] ORDER BY n), '{}')
               FROM regexp_matches(lower(coalesce(doc, '') COLLATE "C"), '([0-9a-z]+)', 'g')
                    WITH ORDINALITY AS r(m, n))
        ELSE
            (SELECT coalesce(array_agg(tok ORDER BY n), '{}')
               FROM regexp_split_to_table(
                      (SELECT string_agg(coalesce(f.folded, s.c), '' ORDER BY s.i)
                         FROM regexp_split_to_table(doc, '') WITH ORDINALITY AS s(c, i)
                         LEFT JOIN kanban_fold f ON f.ch = s.c),
                      ' +') WITH ORDINALITY AS r(tok, n)
              WHERE tok <> '')
        END $$;
    UPDATE tasks SET fts_title = kanban_tokens(title), fts_body = kanban_tokens(body);
    -- and task_events writes a status change's data as SQLite's json_object does, as
    -- kanban writes every event's ({"from":"todo","to":"done","event":"completed"}),
    -- where jsonb gave {"to": "done", "from": "todo", "event": "completed"}
    CREATE OR REPLACE VIEW task_events AS
""" + _task_events(_STATUS_CHANGE_JSON) + "    ",
]
# this backend's own tables, and columns derived from others (the search's tokens)
OWN_TABLES = ("counters", "kanban_fold")


def _fold_table_sql():
    """kanban_fold: each character unicode61 does not keep as it is, and what it becomes
    (a space: it separates tokens; '': it is dropped).  A database whose encoding is not
    UTF8 holds only its ASCII rows (chr() of anything past ASCII may not exist there)."""
    from .unicode61 import mapping

    def code(text):
        return -1 if text == " " else ord(text) if text else 0
    rows = ",".join(f"({ord(char)},{code(replacement)})" for char, replacement in mapping())
    return ('CREATE TABLE kanban_fold(ch TEXT COLLATE "C" PRIMARY KEY, folded TEXT NOT NULL);\n'
            "INSERT INTO kanban_fold(ch, folded)"
            " SELECT chr(c), CASE WHEN f < 0 THEN ' ' WHEN f = 0 THEN '' ELSE chr(f) END"
            f" FROM (VALUES {rows}) AS v(c, f)"
            " WHERE getdatabaseencoding() = 'UTF8' OR (c < 128 AND f < 128);\n")


DERIVED = {"tasks": ("fts_title", "fts_body")}

# kanban never waits inside a transaction: a session idle in one this long is stuck
IDLE_IN_TRANSACTION_MS = 60_000

# -- the wire: psycopg -----------------------------------------------------------------
#
# psycopg 3 speaks to the server.  It is not light: `import psycopg` costs ~100 ms, so a
# `kanban claim` on a Postgres board takes ~140 ms of CPU (~35 ms when this module drove
# libpq through ctypes; ~20 ms on SQLite).  Only server boards pay it: this module, and
# psycopg with it, is imported for a postgresql:// URL only (store.open_store).  Parameters
# are bound on the client (ClientCursor), which also gives them SQLite's loose typing:
# `%(task)s IS NULL OR task_id = %(task)s` works whatever task holds.  The connection stays in
# autocommit mode; PgStore says BEGIN/COMMIT/ROLLBACK itself.

# A failure reported by the server or the connection (directly, or through the helper);
# its sqlstate is None for the latter.  psycopg.Error joins when the driver is imported.
PgError = (helper.RemoteError,)


def driver():
    """psycopg, imported on first need (the `postgres` extra: require() says so when absent)."""
    global psycopg, PgError
    if psycopg is None:
        psycopg = require("psycopg", "postgres", "a Postgres board")
        PgError = (psycopg.Error, helper.RemoteError)
    return psycopg


def driver_name():
    client = driver().pq.version()
    return f"psycopg {psycopg.__version__} (libpq {client // 10000}.{client % 10000})"
_ADAPTERS = None
# result columns psycopg reads as SQLite does (bool, integers, floats); numeric and the rest: below
_NATIVE = {"bool", "int2", "int4", "int8", "oid", "float4", "float8"}


def _as_number(text):
    try:
        return int(text)
    except ValueError:
        return float(text)


def _adapters():
    """psycopg's adapters, reading results as SQLite answers them: bools, ints and floats;
    a numeric (sum of a bigint) as an int when whole, else a float (never a Decimal);
    every other type as its text (a timestamp, json or an array too): JSON as SQLite's."""
    global _ADAPTERS
    if _ADAPTERS is None:
        from psycopg.adapt import AdaptersMap, Loader
        from psycopg.types.string import TextLoader

        class NumberLoader(Loader):
            def load(self, data):
                return _as_number(bytes(data).decode())

        adapters = AdaptersMap(psycopg.adapters)
        for info in psycopg.adapters.types:
            if info.name not in _NATIVE:
                adapters.register_loader(info.oid, NumberLoader if info.name == "numeric" else TextLoader)
            if info.array_oid:
                adapters.register_loader(info.array_oid, TextLoader)
        _ADAPTERS = adapters
    return _ADAPTERS


def _application():
    """The sessions' application_name: PGAPPNAME when set (to tell a fleet's apart), else kanban."""
    return os.environ.get("PGAPPNAME") or "kanban"


def connect(url):
    """A psycopg connection to `url` in autocommit mode (kanban says BEGIN itself).

    kanban sends no startup options of its own (a connection pooler such as PgBouncer
    refuses them, and a pooled server session is not the client's between
    transactions): its settings are made with SET LOCAL in each transaction
    (PgStore._begin), and nothing is prepared, so no statement depends on meeting the
    same server session twice.  The URL's own options (or PGOPTIONS) are libpq's."""
    driver()
    return psycopg.connect(url, autocommit=True, cursor_factory=psycopg.ClientCursor, context=_adapters(),
                           client_encoding="UTF8", application_name=_application(), connect_timeout=10,
                           prepare_threshold=None)


# -- the connection ----------------------------------------------------------------

def display_url(url):
    """The URL without its password, for answers and messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        user = parts.username or ""
        return urlunsplit((parts.scheme, f"{user}@{host}" if user else host, parts.path, parts.query,
                           parts.fragment))
    except ValueError:
        return "postgresql://..."


def _secrets(url):
    """Every spelling of the password a URL holds, however malformed the URL is: the
    text between the user's colon and the last @ of the authority, raw and decoded,
    and any password=... of its query."""
    from urllib.parse import unquote

    found = set()
    rest = url.split("://", 1)[-1]
    authority = rest.split("/", 1)[0]
    if "@" in authority:
        userinfo = authority.rsplit("@", 1)[0]
        if ":" in userinfo:
            found.add(userinfo.split(":", 1)[1])
    elif "@" in rest:  # a password holding '/' pushes the @ past the first slash
        userinfo = rest.rsplit("@", 1)[0]
        if ":" in userinfo:
            found.add(userinfo.split(":", 1)[1])
    for match in re.finditer(r"password=([^&\s]*)", url):
        found.add(match.group(1))
    found |= {unquote(secret) for secret in found}
    return sorted((secret for secret in found if secret), key=len, reverse=True)


def scrub(text, url):
    """`text` with the URL shown without its password, and no trace of the password."""
    text = text.replace(url, display_url(url)) if url else text
    for secret in _secrets(url or ""):
        text = text.replace(secret, "***")
    return text


RETRY = ("40001", "40P01")  # serialization_failure, deadlock_detected: run the transaction again
LOCK_TIMEOUT = "55P03"      # lock_not_available: a row lock waited out KANBAN_BUSY_TIMEOUT
UNIQUE = "23505"            # unique_violation: two writers made the same idempotency key at once


def _missing_database(text):
    """The name in the server's 'database "NAME" does not exist' (3D000, in its English), or
    None: libpq reports a failed connection without its SQLSTATE."""
    _, found, rest = text.partition('database "')
    name, quote, after = rest.partition('"')
    return name if found and quote and name and after.startswith(" does not exist") else None


def _pg_error(exc, url):
    """A PgError -> a KanbanError from the closed list."""
    if isinstance(exc, KanbanError):
        return exc
    shown = display_url(url)
    state = exc.sqlstate or ""
    name = _missing_database(str(exc)) if state in ("", "3D000") else None
    if name:  # the server answered: the board named is not there, as a missing board file
        return KanbanError("not_found", f"the PostgreSQL server has no database {name}: create it "
                           f"(createdb {name}), then run 'kanban init'", db=shown,
                           detail=scrub(str(exc).strip(), url))
    if state in RETRY or state == LOCK_TIMEOUT:
        return KanbanError("busy", "the board stayed locked past KANBAN_BUSY_TIMEOUT", db=shown)
    if state == "25006":
        message = "the board is read-only (a standby server, or a read-only transaction)"
    elif state.startswith("53"):
        message = "the server is out of resources (disk full, out of memory or connections)"
    elif state == "42501" or state.startswith("28"):
        message = "no permission to use the board"
    elif not state or state.startswith(("08", "57")):
        message = "cannot reach the PostgreSQL server"
    else:
        message = "the board cannot be used"
    detail = scrub(str(exc).strip(), url)
    return KanbanError("db_error", message, detail=f"{state or 'connection'}: {detail}", db=shown)


def _lost(exc, conn):
    """Is this the session gone (ended by the server, the network, an administrator)?"""
    state = getattr(exc, "sqlstate", None) or ""
    return state.startswith(("08", "57P")) or (not state and conn.closed)


def _search_path_entries(path):
    """search_path's entries, unquoted, in order."""
    entries, current, quoted, index = [], "", False, 0
    while index < len(path):
        ch = path[index]
        if quoted:
            if ch == '"' and path[index + 1:index + 2] == '"':
                current += '"'
                index += 1
            elif ch == '"':
                quoted = False
            else:
                current += ch
        elif ch == '"':
            quoted = True
        elif ch == ",":
            entries.append(current.strip())
            current = ""
        else:
            current += ch
        index += 1
    entries.append(current.strip())
    return [entry for entry in entries if entry]


def _quote(name):
    return '"' + name.replace('"', '""') + '"'


class PgStore(Store):
    """One connection to a board on a PostgreSQL server."""

    backend = "postgres"
    is_server = True

    def __init__(self, url, create=False):
        self.path = url
        self.busy_ms = busy_timeout_ms()
        self.created = False
        self._writing = False
        self._rowcount = -1
        self._listening = False
        self.pooled = False  # through a transaction pooler (see _note_pooler)
        self.conn = self._connect()
        deadline = time.monotonic() + self.busy_ms / 1000
        while True:
            try:
                self.schema = self._board_schema(create)
                has_meta = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                             (_quote(self.schema) + ".meta",)).fetchone()[0]
                self.version = self._stored_version() if has_meta else 0
                break
            except PgError as exc:
                if _lost(exc, self.conn) and time.monotonic() < deadline:
                    self._reconnect(deadline)  # the new session was ended at once: another
                    continue
                self.conn.close()
                raise _pg_error(exc, url) from None
            except KanbanError:
                self.conn.close()
                raise
        if self.version > SCHEMA_VERSION:
            self.conn.close()
            raise KanbanError(
                "db_error",
                f"the board has schema version {self.version}, newer than this kanban "
                f"understands ({SCHEMA_VERSION}): upgrade kanban",
                db=display_url(url),
            )

    def _connect(self):
        """A session through this user's helper (lib/kanban/store/helper.py), else a
        direct one: one connection either way, with no startup options of kanban's."""
        try:
            return helper.connect(self.path) or connect(self.path)
        except PgError as exc:
            if "unsupported startup parameter" in str(exc):  # PgBouncer's words
                raise KanbanError(
                    "db_error", "the server (a connection pooler?) refuses a startup parameter of the URL or "
                    "PGOPTIONS: set the board's schema in the pooler's database entry (connect_query) instead",
                    detail=scrub(str(exc).strip(), self.path), db=display_url(self.path)) from None
            raise _pg_error(exc, self.path) from None

    def _note_pooler(self, backend_pid):
        """Is this session lent by a connection pooler?  A server tells its client the
        process serving it (BackendKeyData, the key to cancel with); a pooler hands out
        a key of its own, so the two differ.  Through a pooler the settings are still
        made per transaction, and claim --wait polls: LISTEN needs a session of its own."""
        self.pooled = self.conn.info.backend_pid != backend_pid

    # a lock wait ends as `busy` at KANBAN_BUSY_TIMEOUT, as a locked SQLite file does; a
    # client stuck inside a transaction (stopped, cut off) is ended by the server.  Made
    # with SET LOCAL in each transaction: they end with it, whoever gets the session next.
    def _begin_write(self):
        self.conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED"
                          f"; SET LOCAL lock_timeout = {int(self.busy_ms)}"
                          f"; SET LOCAL idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")

    def _begin_read(self):
        self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
                          f"; SET LOCAL idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")

    def _board_schema(self, create):
        """The schema that holds the board: the first one search_path names (\"$user\" when
        that schema exists).  When it does not exist, `init` creates it, and everything
        else is `not_found`: a later schema of the path (public) is never used instead,
        so two teams never share a board by accident."""
        path, user, backend_pid = self.conn.execute(
            "SELECT current_setting('search_path'), current_user, pg_backend_pid()").fetchone()
        self._note_pooler(backend_pid)
        wanted = None
        for entry in _search_path_entries(path):
            if entry == "$user":
                exists = self.conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (user,)).fetchone()
                if exists:
                    wanted = user
                    break
                continue
            if entry.startswith("pg_"):
                continue  # pg_catalog, pg_temp: the server's own
            wanted = entry
            break
        if wanted is None:
            raise KanbanError("not_found", f"no schema to hold a board at {display_url(self.path)}"
                              " (its search_path names none)", db=display_url(self.path))
        exists = self.conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (wanted,)).fetchone()
        if not exists:
            if not create:
                raise KanbanError("not_found", f"no schema {wanted} (the first in search_path) at "
                                  f"{display_url(self.path)}: run 'kanban init'", db=display_url(self.path))
            self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(wanted)}")
        current = self.conn.execute("SELECT current_schema()").fetchone()[0]
        if current != wanted:
            raise KanbanError("db_error", f"the schema {wanted} cannot be used (no USAGE or CREATE privilege?)",
                              db=display_url(self.path))
        return wanted

    def _stored_version(self):
        value = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(value[0]) if value else 0

    # -- statements ------------------------------------------------------------------

    def sql(self, name):
        return POSTGRES[name]

    def tables(self):
        found = {}
        for table, column in self.conn.execute(
                """SELECT c.table_name, c.column_name FROM information_schema.columns c
                     JOIN information_schema.tables t USING (table_schema, table_name)
                    WHERE c.table_schema = %s AND t.table_type = 'BASE TABLE'
                    ORDER BY c.table_name, c.ordinal_position""", (self.schema,)):
            if table not in OWN_TABLES and column not in DERIVED.get(table, ()):
                found.setdefault(table, []).append(column)
        return found

    def counters(self):
        values = dict(self.conn.execute("SELECT name, value FROM counters").fetchall())
        last, called = self.conn.execute("SELECT last_value, is_called FROM lease_token_seq").fetchone()
        values["lease_token"] = last if called else 0
        return {name: int(value) for name, value in values.items() if value}

    def set_counters(self, values):
        for name, value in values.items():
            if name == "lease_token":
                self.conn.execute("SELECT setval('lease_token_seq', greatest(%s, 1), %s > 0)", (value, value))
            elif not self.conn.execute("UPDATE counters SET value = %s WHERE name = %s", (value, name)).rowcount:
                raise KanbanError("invalid", f"this board has no counter {name!r}")

    def _run(self, sql, params=()):
        """Run `sql` as written.  Parameters are bound on the client (see "the wire"): a
        statement given none is sent as it is, its % signs included."""
        result = self.conn.execute(sql, params or None)
        if sql.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            self._rowcount = result.rowcount  # changes(): as SQLite counts, these statements only
        return result

    def rows(self, sql, params=()):
        result = self._run(sql, params)
        if result.description is None:
            return []
        names = [column.name for column in result.description]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]

    def row(self, sql, params=()):
        found = self.rows(sql, params)
        return found[0] if found else None

    def scalar(self, sql, params=()):
        result = self._run(sql, params)
        found = result.fetchone() if result.description is not None else None
        return found[0] if found else None

    def execute(self, sql, params=()):
        return self._run(sql, params)

    def insert(self, sql, params=()):
        return self.scalar(sql, params)

    def changes(self):
        return max(self._rowcount, 0)

    # -- transactions ------------------------------------------------------------------

    def _in_transaction(self):
        # libpq's PGTransactionStatusType: ACTIVE 1, INTRANS 2, INERROR 3
        return self.conn.info.transaction_status in (1, 2, 3)

    def _rollback(self):
        if not self.conn.closed and self._in_transaction():
            try:
                self.conn.execute("ROLLBACK")
            except PgError:
                pass

    def read(self, fn):
        """Run fn() inside one read-only transaction: a consistent snapshot."""
        if self._in_transaction():
            return fn()
        deadline = time.monotonic() + self.busy_ms / 1000
        while True:
            try:
                self._begin_read()
                try:
                    return fn()
                finally:
                    self._rollback()
            except PgError as exc:
                if not (_lost(exc, self.conn) and time.monotonic() < deadline):
                    raise _pg_error(exc, self.path) from None
                # the session ended (the server or the helper went away): read again
                self._listening = False
                self._reconnect(deadline)

    def write(self, fn):
        """Run fn() inside one transaction; retry serialisation failures and deadlocks.

        fn must only touch the database (it may run again after a rollback).
        Anything it raises rolls the whole transaction back.
        """
        deadline = time.monotonic() + self.busy_ms / 1000
        delay = 0.002
        duplicates = 0
        while True:
            committing, xid = False, None
            try:
                self._begin_write()
                self._writing = True
                try:
                    result = fn()
                    # the transaction's id, so that a session lost during COMMIT can be asked
                    # about afterwards (None: nothing was written, nothing to lose)
                    xid = self.conn.execute("SELECT txid_current_if_assigned()").fetchone()[0]
                    committing = True
                    self.conn.execute("COMMIT")
                    return result
                except BaseException:
                    self._writing = False
                    self._rollback()
                    raise
                finally:
                    self._writing = False
            except PgError as exc:
                retry = exc.sqlstate in RETRY and time.monotonic() < deadline
                if _lost(exc, self.conn) and time.monotonic() < deadline:
                    # the session ended (the server or the helper went away): before COMMIT,
                    # nothing of this transaction stands; during it, the server says what became of it
                    self._listening = False
                    self._reconnect(deadline)
                    if committing and self._committed(xid, deadline):
                        return result
                    continue
                if exc.sqlstate == UNIQUE:
                    duplicates += 1
                    retry = duplicates <= 3 and time.monotonic() < deadline
                if not retry:
                    raise _pg_error(exc, self.path) from None
            time.sleep(random.uniform(delay / 2, delay))  # jitter: no lockstep retries
            delay = min(delay * 2, 0.1)

    def _committed(self, xid, deadline):
        """Did transaction `xid` commit?  Asked on a new session after the old one was lost
        during its COMMIT; False when it was rolled back (or wrote nothing)."""
        if xid is None:
            return True  # it wrote nothing: its answer stands either way
        while True:
            try:
                status = self.conn.execute("SELECT txid_status(%s)", (int(xid),)).fetchone()[0]
            except PgError as exc:
                # through a pooler the new session is the pooler's: it may be made while the
                # server is still on its way back, and the question fail ('server login has
                # been failing'); ask again on another, as a write does, until the deadline
                if _lost(exc, self.conn) and time.monotonic() < deadline:
                    self._reconnect(deadline)
                    continue
                raise _pg_error(exc, self.path) from None
            if status in ("committed", "aborted"):
                return status == "committed"
            if status != "in progress" or time.monotonic() >= deadline:
                raise KanbanError("db_error", "the server ended the session during COMMIT, and cannot say whether"
                                  " the command committed", db=display_url(self.path))
            time.sleep(0.02)  # the ended session is still winding down

    def wait(self, seconds):
        """Sleep up to `seconds`, waking early when work may have become claimable.

        A listening session that the server ends (pg_terminate_backend, a restart) is
        replaced by a new one, and the wait goes on: a waiter never fails for it.  A
        server on its way back up is waited for up to KANBAN_BUSY_TIMEOUT, as a write
        waits for it, however short the wait asked for (`claim --wait` waits in slices)."""
        if self.pooled:  # LISTEN needs a session of its own, which a pooler does not give
            time.sleep(seconds)
            return False
        deadline = time.monotonic() + seconds
        while True:
            try:
                if not self._listening:
                    self.conn.execute("LISTEN kanban")
                    self._listening = True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # the channel is the server's: other boards use it too
                if self.schema in self._notifications(remaining):
                    return True
            except PgError as exc:
                if not _lost(exc, self.conn):
                    raise _pg_error(exc, self.path) from None
                self._listening = False
                self._reconnect(max(deadline, time.monotonic() + self.busy_ms / 1000))
                return True  # look again: work may have come while nobody listened

    def _notifications(self, timeout):
        """The payloads of the first notifications to come within `timeout` seconds."""
        if isinstance(self.conn, helper.Remote):
            return self.conn.notifications(timeout)
        notes = self.conn.notifies(timeout=timeout)
        try:
            for note in notes:
                return [note.payload]
        finally:
            notes.close()
        return []

    def _reconnect(self, deadline):
        """A new session for a lost one, tried until `deadline` (at least once)."""
        try:
            self.conn.close()
        except PgError:
            pass
        delay = 0.05
        while True:
            try:
                self.conn = self._connect()
                return
            except KanbanError:
                if time.monotonic() + delay >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    # -- the board as a whole ------------------------------------------------------------

    def describe(self):
        """doctor's facts, as a server answers them (a backup is a SQLite file: its version)."""
        import apsw

        server = self.conn.info.server_version
        if isinstance(self.conn, helper.Remote):
            name = f"{self.conn.driver}, through the kanban helper"
        else:
            name = driver_name()
        try:
            pages = self.conn.execute(
                """SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
                          / current_setting('block_size')::bigint
                     FROM pg_class c WHERE c.relnamespace = %s::regnamespace AND c.relkind = 'r'""",
                (_quote(self.schema),)).fetchone()[0]
        except PgError as exc:
            raise _pg_error(exc, self.path) from None
        return {
            "db": display_url(self.path),
            "sqlite_version": apsw.sqlite_lib_version(),
            "driver": name,
            "schema_version": self.version,
            "schema_expected": SCHEMA_VERSION,
            "journal_mode": "postgresql",
            "page_count": int(pages),
            "freelist_count": 0,
            "server_version": f"{server // 10000}.{server % 10000}",
            "schema": self.schema,
            "wal": {"path": "", "bytes": 0},
            "filesystem": None,
        }

    def warnings(self):
        return []

    def integrity(self):
        """The board's own consistency, as the server can check it:
        - every id counter ahead of its table's ids (a counter behind would hand out an id
          twice), and the lease-token sequence ahead of every token issued;
        - with the amcheck extension installed in the database (CREATE EXTENSION amcheck),
          every B-tree index of the board's schema against its table: bt_index_check with
          heapallindexed, so an index that misses a row or holds a broken page is named.
        Without amcheck the server still checks each page it reads (and its checksum, on a
        cluster made with data checksums)."""
        problems = []
        try:
            for table in ("tasks", "events", "comments", "runs"):
                behind = self.conn.execute(
                    f"SELECT (SELECT value FROM counters WHERE name = %s) < (SELECT coalesce(max(id), 0) FROM {table})",
                    (table,)).fetchone()[0]
                if behind:
                    problems.append(f"the id counter of {table} is behind its ids")
            behind = self.conn.execute(
                """SELECT (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM lease_token_seq)
                          < (SELECT coalesce(max(lease_token), 0) FROM tasks)""").fetchone()[0]
            if behind:
                problems.append("the lease token sequence is behind the tokens issued")
            problems += self._check_indexes()
        except PgError as exc:
            raise _pg_error(exc, self.path) from None
        return problems or ["ok"]

    def _check_indexes(self):
        """amcheck's bt_index_check of each B-tree index of the board, when the database
        has the extension: a problem line per index it finds broken."""
        found = self.conn.execute(
            """SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                WHERE e.extname = 'amcheck'""").fetchone()
        if found is None:
            return []
        indexes = self.conn.execute(
            """SELECT c.oid, c.relname FROM pg_class c JOIN pg_am a ON a.oid = c.relam
                WHERE c.relnamespace = %s::regnamespace AND c.relkind = 'i' AND a.amname = 'btree'
                ORDER BY c.relname""", (_quote(self.schema),)).fetchall()
        problems = []
        for oid, name in indexes:
            # a savepoint each: a broken index fails its statement, not the whole check
            self.conn.execute("SAVEPOINT kanban_amcheck")
            try:
                self.conn.execute(f"SELECT {_quote(found[0])}.bt_index_check(%s::oid::regclass, true)", (oid,))
                self.conn.execute("RELEASE SAVEPOINT kanban_amcheck")
            except PgError as exc:
                if _lost(exc, self.conn):
                    raise
                self.conn.execute("ROLLBACK TO SAVEPOINT kanban_amcheck")
                problems.append(f"index {name}: {scrub(str(exc).strip(), self.path)}")
        return problems

    def vacuum(self):
        """VACUUM the event log (outside any transaction); the server reuses what it
        frees in place and counts no pages given back."""
        try:
            self.conn.execute("VACUUM events")
        except PgError as exc:
            raise _pg_error(exc, self.path) from None
        return 0

    def backup(self, dest):
        """A consistent copy of the board as a SQLite board file (one snapshot)."""
        from .sqlite import check_backup_target

        check_backup_target(dest)
        return backup_to_sqlite(self, dest)

    def folder(self):
        return None

    def location(self):
        return self.path

    def display(self):
        return display_url(self.path)

    # -- schema ------------------------------------------------------------------------

    def migrate(self, target=SCHEMA_VERSION):
        """Bring the schema up to `target` in one transaction; no-op when current."""
        if self.version >= target:
            return False

        def step():
            # one migrator at a time per schema; a second one finds the work done
            self.conn.execute("SELECT pg_advisory_xact_lock(1801545326, hashtext(current_schema()))")
            exists = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                       (_quote(self.schema) + ".meta",)).fetchone()[0]
            current = self._stored_version() if exists else 0
            for index in range(current, target):
                self.conn.execute(migration(index))
            self.conn.execute("INSERT INTO meta(key, value) VALUES ('schema_version', %s)"
                              " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (str(target),))
            return current

        before = self.write(step)
        self.created = before == 0
        self.version = target
        return True

    def close(self):
        self.conn.close()


def migration(index):
    """The PostgreSQL text of migration `index` (0-based)."""
    if index >= len(PG_MIGRATIONS):
        raise KanbanError("internal", f"schema version {index + 1} has no PostgreSQL migration yet "
                          f"(lib/kanban/store/postgres.py PG_MIGRATIONS has {len(PG_MIGRATIONS)} "
                          f"of {SCHEMA_VERSION})")
    step = PG_MIGRATIONS[index]
    return step() if callable(step) else step


TABLES = ("tasks", "deps", "holders", "events", "comments", "runs", "wip_limits")


def backup_to_sqlite(database, dest):
    """Copy every row of a Postgres board into a new SQLite board file at `dest`."""
    from .sqlite import MIGRATIONS, place_counters, run_migration, write_board_file

    def snapshot():
        counters = dict(database.conn.execute("SELECT name, value FROM counters").fetchall())
        seq = database.conn.execute("SELECT last_value, is_called FROM lease_token_seq").fetchone()
        meta = database.conn.execute("SELECT key, value FROM meta WHERE key <> 'schema_version'").fetchall()
        return counters, (seq[0] if seq[1] else 0), meta

    def fill(target):
        target.execute("PRAGMA auto_vacuum=INCREMENTAL")
        with target:
            for step in MIGRATIONS:
                run_migration(target, step)
            target.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        columns = {t: [r[1] for r in target.execute(f"PRAGMA table_info({t})")] for t in TABLES}
        rows = {}

        def read_all():
            for table in TABLES:
                names = ", ".join(columns[table])
                rows[table] = database.conn.execute(f"SELECT {names} FROM {table} ORDER BY 1").fetchall()
            return snapshot()
        counters, token, meta = database.read(read_all)
        with target:
            # deps before tasks: the deps trigger finds no task to count, and each task
            # arrives with its own unmet_deps; the FTS trigger indexes each task
            for table in ("deps",) + tuple(t for t in TABLES if t != "deps"):
                names = columns[table]
                target.executemany(
                    f"INSERT INTO {table}({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                    rows[table])
            for key, value in meta:
                target.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
            ids = {table: counters.get(table, 0) for table in ("tasks", "events", "comments", "runs")}
            place_counters(target, {**ids, "lease_token": token})
    return write_board_file(dest, fill)


def open_board(url, create=False):
    """Open (and, with create, initialise) a board on a server; migrate when behind."""
    database = PgStore(url, create=create)
    if not database.version and not create:
        database.close()
        raise KanbanError("not_found", f"{display_url(url)} holds no kanban board (run 'kanban init')",
                          db=display_url(url))
    try:
        database.migrate()
    except BaseException:
        database.close()
        raise
    return database
