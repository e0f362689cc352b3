"""The board's operations.  The CLI verbs and the Python API are thin layers over this.

Every write is one transaction (Store.write, lib/kanban/store/); everything it checks, it checks
inside that transaction, so a refused command changes nothing.  Hooks run after
the commit.  Answers are plain dicts, exactly what the CLI prints.
"""
import os
import sys
from operator import itemgetter

from . import __version__, clock, hooks
from .errors import KanbanError, conflict, invalid, not_found, usage
from .jsontext import dumps
from .store import open_store
from .store.queries import TASK_COLUMNS

STATUSES = ("todo", "in_progress", "in_review", "blocked", "done", "failed", "cancelled")
OPEN = ("todo", "in_progress", "in_review", "blocked")
CLOSED = ("done", "failed", "cancelled")
EVENT_KINDS = (
    "created", "updated", "claimed", "progress", "lease_renewed", "lease_expired",
    "released", "completed", "submitted_for_review", "approved", "rejected", "blocked",
    "unblocked", "cancelled", "reopened", "failed", "linked", "unlinked", "commented",
    "status_changed", "run_started", "run_completed", "heartbeat", "hook_failed",
)
PROGRESS_TTL_MS = 3 * 86400 * 1000
DEFAULT_LEASE = "15m"
SETTABLE = ("title", "body", "priority", "project", "assignee", "role", "goal",
            "not_before", "max_attempts", "review")
CLEARABLE = ("body", "project", "assignee", "role", "goal", "not_before", "max_attempts")

# `move`: the role-gate action and the event of each target column
MOVE_GATE = {"todo": "assign", "in_review": "complete", "blocked": "block", "done": "complete",
             "cancelled": "cancel"}
MOVE_EVENT = {"blocked": "blocked", "cancelled": "cancelled"}

# the SQLite pick's first statement by (project given, role given); the same names
# without a lock, for a read (has_work): store/queries.py
PICK = {(project, role): "pick" + ("_project" if project else "") + ("_role" if role else "")
        for project in (False, True) for role in (False, True)}
PEEK = {key: "peek" + name[len("pick"):] for key, name in PICK.items()}
# what a claim asks before its pick, in one statement (the same keys): claim_probe...
PROBE = {key: "claim_probe" + name[len("pick"):] for key, name in PICK.items()}
# a task row's values in TASK_COLUMNS order (a row read as a dict: task_select, the writes' rows)
_COLUMNS = itemgetter(*TASK_COLUMNS)
_NCOLUMNS = len(TASK_COLUMNS)
_GOAL_ID = TASK_COLUMNS.index("goal_id")
_STATUS, _REVIEW, _CLAIMED_BY, _LEASE_UNTIL, _LEASE_TOKEN = (
    TASK_COLUMNS.index(name) for name in ("status", "review", "claimed_by", "lease_until", "lease_token"))
_UNREAD = object()  # a task's deps that were not read along with its row: read them for its answer
# the values of the SQL literals _end_lease sets
_LITERALS = {"NULL": None, **{f"'{status}'": status for status in STATUSES}}
# what _end_lease sets, by status: the status and the cleared lease as literals, not bound
# values: SQLite plans a partial index's upkeep on them, and prepares a statement again
# whenever a value it planned on is bound anew
_END_LEASE = {status: (("status", f"'{status}'"), ("claimed_by", "NULL"), ("lease_until", "NULL"),
                       ("lease_token", "NULL"), ("lease_ms", "NULL")) for status in STATUSES}
# claim_many asks _claim_set for at most this many claims at a time (a count may be huge)
_SET_CHUNK = 256


def _claimed_values(values, agent, until, token, lease_ms, now):
    """A ready task's values (TASK_COLUMNS order) as a claim leaves them (what
    `claim_task` writes)."""
    (task_id, kind, title, body, _, priority, project, role_boundary, assignee, goal_id, review,
     _, _, _, _, attempts, max_attempts, not_before, idempotency_key, _, unmet_deps, created_at, _) = values
    return (task_id, kind, title, body, "in_progress", priority, project, role_boundary, assignee, goal_id,
            review, agent, until, token, lease_ms, attempts, max_attempts, not_before, idempotency_key, None,
            unmet_deps, created_at, now)


def _finished_values(values, now):
    """The values (TASK_COLUMNS order) of a task in progress as a completion leaves them
    (what `complete_tasks` writes, or `submit_tasks` for a review task): done or in
    review, the lease ended."""
    (task_id, kind, title, body, _, priority, project, role_boundary, assignee, goal_id, review,
     _, _, _, _, attempts, max_attempts, not_before, idempotency_key, reason, unmet_deps, created_at, _) = values
    return (task_id, kind, title, body, "in_review" if review else "done", priority, project, role_boundary,
            assignee, goal_id, review, None, None, None, None, attempts, max_attempts, not_before,
            idempotency_key, reason, unmet_deps, created_at, now)


class _Later:
    """A write's answer made once the write lock is let go and the commit is durable
    (Board._commit), not while the lock is held: for a claim or completion alone, so the
    next writer waits for the write only; for a set run, in each caller's own thread of
    group commit, not by the batch's leader: the leader writes for every caller while
    they wait, and what their threads can do themselves they do while the next one is
    being woken.  `values`: the task as the write left it
    (TASK_COLUMNS order), in progress, done or in review, so never ready; `deps` as read
    along with it ("3,7" or None); `token`: a claim's lease token, which its answer
    carries."""
    __slots__ = ("values", "deps", "token")

    def __init__(self, values, deps, token=None):
        self.values, self.deps, self.token = values, deps, token

    def make(self):
        answer = _task_dict(self.values, _dep_refs(self.deps) if self.deps else [], False)
        if self.token is not None:
            answer["lease_token"] = self.token
        return answer


class _SharedWrite(tuple):
    """The body Board._commit hands the store for a write that concurrent writes of the
    same kind can share (group commit, store/sqlite.py): the board, then the write's
    arguments.  Called, it makes its one write, as _write's closure would.  `batch`,
    (key, item, run), run(items) making the writes of every item at once and answering
    each as the call would have one by one (or leaving the answer to its caller's thread:
    _Later), is asked for by the store only when threads write, and so made only then:
    made on every call (two closures, a function attribute's dict) it cost ~0.4 us a
    claim or completion.  A tuple, so made without an __init__ call."""
    __slots__ = ()


class _ClaimWrite(_SharedWrite):
    """A claim of the best ready task: (board, agent, role, project, lease_ms)."""
    __slots__ = ()

    def __call__(self):
        board, agent, role, project, lease_ms = self
        board._begin_write()
        return board._claim(agent, None, role, project, lease_ms, later=True)

    @property
    def batch(self):
        board, agent, role, project, lease_ms = self

        def run(agents):
            board._begin_write()
            return board._claim_set(agents, role, project, lease_ms, later=True)
        return ("claim", role, project, lease_ms), agent, run


class _CompleteWrite(_SharedWrite):
    """A completion without summary or review: (board, task, token, agent)."""
    __slots__ = ()

    def __call__(self):
        board, task, token, agent = self
        board._begin_write()
        return board._complete(task, token, None, False, agent, later=True)

    @property
    def batch(self):
        board = self[0]

        def run(items):
            board._begin_write()
            return board._complete_set(items, later=True)
        return ("complete",), self[1:], run


def _task_dict(values, depends_on, ready=None, now=None):
    """A task's answer (what every verb prints of it) from its values in TASK_COLUMNS
    order.  `ready`: as task_select reads it; None: worked out here the same way, at
    `now` (a row a write left)."""
    (task_id, kind, title, body, status, priority, project, role_boundary, assignee, goal_id, review,
     claimed_by, lease_until, _, _, attempts, max_attempts, not_before, idempotency_key, _, unmet_deps,
     created_at, updated_at) = values
    if ready is None:
        ready = (status == "todo" and kind == "task" and unmet_deps == 0
                 and (not_before is None or not_before <= now))
    iso = clock.iso
    return {
        "id": f"TASK-{task_id}",  # task_ref written out, here and for goal: the calls cost ~0.6% of a cycle
        "kind": kind,
        "title": title,
        "body": body,
        "status": status,
        "priority": priority,
        "project": project,
        "role_boundary": role_boundary,
        "assignee": assignee,
        "goal": None if goal_id is None else f"TASK-{goal_id}",
        "depends_on": depends_on,
        "review": bool(review),
        "claimed_by": claimed_by,
        # iso(None) is None: not called for the times mostly unset (a claim's answer has no
        # not_before, a completion's no lease either)
        "lease_until": None if lease_until is None else iso(lease_until),
        "attempts": attempts,
        "max_attempts": max_attempts,
        "not_before": None if not_before is None else iso(not_before),
        "idempotency_key": idempotency_key,
        "created_at": iso(created_at),
        "updated_at": iso(updated_at),
        "ready": ready,
    }


def _dep_refs(deps):
    """A task's deps as SQLite reads them along with its row ("3,7") -> its answer's
    depends_on (["TASK-3", "TASK-7"], in id order).  Callers skip the call for a task
    without deps (None or ""), the common case."""
    return [task_ref(dep_id) for dep_id in sorted(int(dep_id) for dep_id in deps.split(","))]


def _returned(found):
    """A task's values (TASK_COLUMNS order) and its deps from the tuple a write's
    `task_returning` (or `complete_task`) gives: SQLite's brings the deps along, as one
    column after the task's ("3,7" or None); PostgreSQL's does not (_UNREAD)."""
    return found[:_NCOLUMNS], found[_NCOLUMNS] if len(found) > _NCOLUMNS else _UNREAD


def _loads(text):
    import json  # reading JSON is off the claim path: see jsontext

    return json.loads(text)


def task_ref(task_id):
    return None if task_id is None else f"TASK-{task_id}"


def parse_id(text, what="task id"):
    """'TASK-12', 'task-12' or '12' -> 12."""
    if isinstance(text, int) and not isinstance(text, bool):
        number = text
    else:
        raw = str(text).strip()
        if raw[:5].upper() == "TASK-":
            raw = raw[5:]
        if not raw.isascii() or not raw.isdigit():
            raise invalid(f"bad {what} {text!r}: expected TASK-<n>")
        number = int(raw)
    if number <= 0 or number > 2**62:
        raise invalid(f"bad {what} {text!r}")
    return number


def shown(value):
    """A bad value as an error quotes it: a string quoted, anything else (from a JSON line of
    create --stdin) as JSON, as its writer wrote it: true, null, 1.5, not Python's True, None."""
    if isinstance(value, str):
        return repr(value)
    try:
        return dumps(value)[:200]
    except (TypeError, ValueError):
        return repr(value)


def parse_int(text, what, minimum=None):
    if isinstance(text, bool):
        raise invalid(f"bad {what} {shown(text)}: expected an integer")
    if isinstance(text, int):
        value = text
    else:
        raw = str(text).strip()
        body = raw[1:] if raw[:1] in "+-" else raw
        if not body.isascii() or not body.isdigit():
            raise invalid(f"bad {what} {shown(text)}: expected an integer")
        value = int(raw)
    if abs(value) > 2**62:
        raise invalid(f"{what} {text!r} is out of range")
    if minimum is not None and value < minimum:
        raise invalid(f"{what} must be at least {minimum}, got {text!r}")
    return value


def parse_token(text):
    if text is None:
        return None
    if text.__class__ is int and 0 < text <= 2**62:
        return text  # what parse_int passes, without its call: a claim's own token comes back so
    return parse_int(text, "lease token", minimum=1)


def _text(value, what, required=False, limit=1_000_000):
    if value is None:
        if required:
            raise invalid(f"{what} is required")
        return None
    if not isinstance(value, str):
        raise invalid(f"{what} must be a string")
    if "\x00" in value:
        raise invalid(f"{what} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 arrive as lone surrogates
        raise invalid(f"{what} is not valid UTF-8") from None
    if required and not value.strip():
        raise invalid(f"{what} must not be empty")
    if len(value) > limit:
        raise invalid(f"{what} is too long ({len(value)} characters, at most {limit})")
    return value


_NAMES = set()  # names _name has passed: an agent's (and its role's) come back on every call


def _name(value, what):
    """An agent, role, project or key: non-empty text without control characters."""
    if value is None:
        return None
    if value.__class__ is str and value in _NAMES:
        return value
    value = _text(value, what, limit=200)
    if not value.strip() or (not value.isprintable() and any(ord(ch) < 32 for ch in value)):
        raise invalid(f"bad {what} {value!r}")
    if value.__class__ is str:
        if len(_NAMES) >= 1024:
            _NAMES.clear()
        _NAMES.add(value)
    return value


_LEASES = {}  # KANBAN_LEASE's text -> its milliseconds, parsed once per value


def _lease_ms(lease):
    if lease is None:
        text = clock.env("KANBAN_LEASE") or DEFAULT_LEASE
        found = _LEASES.get(text)
        if found is None:
            found = _LEASES[text] = clock.parse_duration(text, "lease")
        return found
    return clock.parse_duration(lease, "lease")


def _lease_end(until, lease=None):
    """`until`, a lease's end, when ISO-8601 can print it; else invalid: a lease ending
    after the year 9999 would be kept, and every view of the board that prints it fail."""
    if until > clock.MAX_MS:
        what = f"a lease of {lease!r}" if lease is not None else "the lease"
        raise invalid(f"{what} would end after the year 9999")
    return until


# the fields of a task that create (and create --stdin, beside title) take
CREATE_FIELDS = frozenset({"body", "priority", "project", "role", "assignee", "goal", "depends_on", "not_before",
                           "max_attempts", "review", "key", "kind"})


class Board:
    """A kanban board: `Board(path).claim(agent="w1")` returns what `kanban claim` prints."""

    def __init__(self, path=None, create=False):
        self.db = open_store(path, create=create)
        self.path = self.db.path
        self._fired = []
        self._now = None
        self._writing = False  # inside a write: the reads it acts on lock their rows (Postgres)
        self._updates = {}  # the UPDATE text of each set of fields, made once
        self._team_cache = False
        self._hooks = None  # the hooks folder ("" for none), found once: see _hooks_folder
        # the statements of every claim and completion, looked up once
        self._claim_task = self.db.sql("claim_task")
        self._claim_returning = self._claim_task + self.db.sql("task_returning")
        self._claim_probes = {key: self.db.sql(name) for key, name in PROBE.items()}
        self._complete_task = self.db.sql("complete_task")
        self._insert_event = self.db.sql("insert_event")

    # -- plumbing ---------------------------------------------------------------

    def close(self):
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _write(self, fn, hooks_folder=True):
        """One write transaction running fn(); after the commit, the hooks of what it
        did (_commit)."""
        def body():
            self._begin_write()
            return fn()
        return self._commit(body, hooks_folder)

    def _commit(self, body, hooks_folder=True):
        """body() inside one write transaction (Store.write), body starting with
        _begin_write; after the commit, the hooks of what it did.  A write that concurrent
        writes can share is a _SharedWrite (its answer may be made here, in the caller's
        thread: _Later); a process that writes alone just runs it.  hooks_folder=False:
        the command has just looked for the hooks folder and found none (complete's
        pre-complete look), and does not look again: one look per command."""
        writing, self._writing = self._writing, True
        try:
            result = self.db.write(body)
        finally:
            self._now = None
            self._writing = writing
        if type(result) is _Later:
            result = result.make()
        fired, self._fired = self._fired, []
        if fired and hooks_folder:
            self._run_hooks(fired)
        return result

    def _begin_write(self):
        """What a write transaction starts from (it may run again after a busy retry):
        no hooks fired yet, one `now`, the team read anew."""
        self._fired = []
        self._now = clock.now_ms()
        self._team_cache = False

    def _read(self, fn):
        def body():
            self._now = clock.now_ms()
            self._team_cache = False
            return fn()

        try:
            return self.db.read(body)
        finally:
            self._now = None

    def _hooks_folder(self):
        """The board's hooks folder (hooks.hooks_dir: KANBAN_HOOKS_DIR, or hooks.d beside
        the board), worked out once for this open board; whether it exists is asked
        anew each time."""
        if self._hooks is None:
            self._hooks = hooks.hooks_dir(self.path) or ""
        return self._hooks

    def _run_hooks(self, fired):
        directory = self._hooks_folder()
        if not directory or not os.access(directory, os.F_OK):
            return  # no hooks folder: one look for the whole transaction (os.access raises nothing)
        events = [self._fired_event(*event) for event in fired]
        failures = []
        for event in events:
            try:
                failures += [(event, failure) for failure in hooks.run_post(self.path, event)]
            except Exception as exc:  # noqa: BLE001 - the command has committed: never fail it now
                failures.append((event, {"hook": f"post-{hooks.hook_verb(event['kind'], event['data'])}",
                                         "event": event["id"], "reason": f"{type(exc).__name__}: {exc}"}))
        if failures:
            self._record_hook_failures(failures)

    def _record_hook_failures(self, failures):
        """The hook bookkeeping transaction.  The command has committed and its answer
        stands: when the failures cannot be recorded (a busy board, a full disk), they
        are said on stderr and the command still reports what it committed."""
        def record():
            for event, failure in failures:
                self._event(parse_id(event["task"]), "hook_failed", event["actor"], failure)

        try:
            self._write(record)
        except Exception as exc:  # noqa: BLE001 - after the commit nothing may fail the command
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            try:
                for event, failure in failures:
                    sys.stderr.write(f"kanban: warning: {failure['hook']} failed on event {event['id']}"
                                     f" ({failure['reason']}); not recorded: {message}\n")
            except Exception:  # noqa: BLE001 - stderr itself may be gone
                pass

    @property
    def now(self):
        """The transaction's time (the clock outside one).  The steps that only ever run
        inside a write (recording an event, a claim, a completion) read self._now itself."""
        return self._now if self._now is not None else clock.now_ms()

    def _event(self, task_id, kind, actor, data=None, ttl_ms=None, text=None):
        """Record an event; its id.  One that fires a hook is kept for after the commit,
        as a tuple: its dict (_fired_event) is made only when there is a hooks folder.
        text: `data` as compact JSON, when the caller has it already."""
        if self._team_cache is not None:  # None: the board has no team (the gate's cache)
            self._writes(actor)  # every write leaves an event: none by an outsider on a team board
        at = self._now
        event_id = self.db.insert(self._insert_event, (
            task_id, kind, actor, at, text or dumps(data or {}, compact=True), at + ttl_ms if ttl_ms else None))
        if kind in hooks.HOOK_FOR_EVENT or (kind == "status_changed" and hooks.hook_verb(kind, data)):
            self._fired.append((event_id, task_id, kind, actor, at, data))
        return event_id

    def _token_events(self, items, text, extra):
        """_event for each of many items (task_id, kind, actor, token; `text`: their JSON),
        with the data {"token": token} and then `extra` (the same for all), in one
        statement; their actors have passed the team gate already."""
        at = self.now
        tail = "," + dumps(extra, compact=True)[1:] if extra else "}"  # the data as _event writes it
        self.db.execute(self.db.sql("insert_token_events"), {"at": at, "tail": tail, "events": text})
        first = self.db.last_event_id() - len(items) + 1
        self._fired += [(event_id, task_id, kind, actor, at, {"token": token, **extra})
                        for event_id, (task_id, kind, actor, token) in enumerate(items, first)
                        if kind in hooks.HOOK_FOR_EVENT]

    @staticmethod
    def _fired_event(event_id, task_id, kind, actor, at, data):
        """An event as hooks get it (and `log` answers it)."""
        return {"id": event_id, "task": task_ref(task_id), "kind": kind, "actor": actor,
                "at": clock.iso(at), "data": data or {}}

    # -- loading tasks ----------------------------------------------------------

    def _rows(self, where="", params=None, order="", limit=None):
        params = dict(params or {})
        params["now"] = self.now
        sql = self.db.sql("task_select") + where + order
        if limit is not None:
            sql += self.db.sql("limit")
            params["limit"] = limit
        return self.db.rows(sql, params)

    def _row(self, task_id):
        """One task's row; inside a write, locked (on Postgres) until the commit."""
        found = self.db.rows(self.db.sql("task_for_update" if self._writing else "task"),
                             {"id": task_id, "now": self.now})
        if not found:
            raise not_found(f"no task {task_ref(task_id)}", task=task_ref(task_id))
        return found[0]

    def _row_for_write(self, task_id):
        """_row, inside a write that gates and checks the task (`task_for_write`: the
        row locked on a server board, with the board's team and whether the task has
        open runs).  The team it read goes to the gate's cache."""
        row = self.db.row(self.db.sql("task_for_write"), {"id": task_id, "now": self.now})
        if row is None:
            raise not_found(f"no task {task_ref(task_id)}", task=task_ref(task_id))
        team = row.pop("team")
        self._team_cache = _loads(team) if team else None
        return row

    def _dicts(self, rows):
        """Rows -> task dicts, with every task's depends_on in one query."""
        if not rows:
            return []
        deps = {}
        for task_id, dep_id in self.db.execute(self.db.sql("deps_of"), (dumps([r["id"] for r in rows]),)):
            deps.setdefault(task_id, []).append(task_ref(dep_id))
        return [self._dict(r, deps.get(r["id"], [])) for r in rows]

    @staticmethod
    def _dict(r, depends_on):
        """A task row as task_select reads it -> its answer."""
        return _task_dict(_COLUMNS(r), depends_on, bool(r["ready"]))

    def _task(self, task_id):
        return self._dicts([self._row(task_id)])[0]

    def _answer(self, row):
        """The task dict of a row a write left (a dict with TASK_COLUMNS; SQLite's rows
        bring the deps along, "deps"): what _task would read back, built from what the
        write already knows."""
        return self._answer_values(_COLUMNS(row), row["deps"] if "deps" in row else _UNREAD)

    def _answer_values(self, values, deps):
        """_answer for a task's values (TASK_COLUMNS order); `deps` as SQLite reads them
        along with the row ("3,7" or None), or _UNREAD."""
        if deps is _UNREAD:  # no ORDER BY: with one, SQLite prepares this statement again on every run
            ids = sorted(dep_id for (dep_id,) in self.db.execute(self.db.sql("task_deps"), (values[0],)))
            return _task_dict(values, [task_ref(dep_id) for dep_id in ids], now=self._now)
        return _task_dict(values, _dep_refs(deps) if deps else [], now=self._now)

    def _update_returning(self, task_id, literals=(), row=None, **fields):
        """_update, answering the task's row as the write left it.  `literals`: pairs of
        (column, SQL literal) set as written.  With `row`, the task's row as this
        transaction read it (`task_for_write`), the answer is that row with the changes:
        no RETURNING."""
        fields["updated_at"] = self.now
        key = (literals, tuple(fields), row is None)
        found = self._updates.get(key)
        if found is None:
            found = self._updates[key] = (
                self._update_sql(literals, fields) + (self.db.sql("task_returning") if row is None else ""),
                {name: _LITERALS[value] for name, value in literals})
        sql, set_literals = found
        fields["id"] = task_id  # the statement's parameters: the fields, and the row's own id
        if row is not None:
            self.db.execute(sql, fields)
            return dict(row, **set_literals, **fields)
        return self.db.row(sql, fields)

    def _update_sql(self, literals, fields):
        """UPDATE tasks SET ... WHERE id = :id, for these columns."""
        column = self.db.sql("set_column")
        sets = [f"{name} = {value}" for name, value in literals] + [column.format(name) for name in fields]
        return "UPDATE tasks SET " + ", ".join(sets) + self.db.sql("where_id")

    def _exists(self, task_id):
        if self.db.scalar(self.db.sql("task_exists"), (task_id,)) is None:
            raise not_found(f"no task {task_ref(task_id)}", task=task_ref(task_id))

    def _next_token(self):
        """The next fencing token, for a claim that draws it on its own (a review claim;
        every claim on PostgreSQL): store/queries.py `next_token`."""
        return self.db.scalar(self.db.sql("next_token"))

    def _update(self, task_id, **fields):
        fields["updated_at"] = self.now
        key = ((), tuple(fields))
        sql = self._updates.get(key)
        if sql is None:
            sql = self._updates[key] = self._update_sql((), fields)
        fields["id"] = task_id
        self.db.execute(sql, fields)

    def _end_lease(self, task_id, status, row=None, **fields):
        """Move a task out of in_progress/in_review: its lease ends with it.  Returns
        the task's row as the write left it (from `row`, when given: _update_returning)."""
        literals = _END_LEASE.get(status)
        if literals is None:
            raise ValueError(f"unknown status {status!r}")
        return self._update_returning(task_id, literals, row, **fields)

    # -- the team role gate (seed 004) -------------------------------------------

    def _team(self):
        if self._team_cache is False:
            raw = self.db.scalar("SELECT value FROM meta WHERE key = 'team'")
            self._team_cache = _loads(raw) if raw else None
        return self._team_cache

    def _gate(self, action, actor, row=None):
        """On a team board: only members and operators write (fail closed); only the
        coordinator creates, assigns, links and cancels; only the assignee completes,
        blocks, unblocks and heartbeats.  A board with no team is open."""
        team = self._team()
        if not team:
            return
        self._check_writer(team, actor)
        if actor not in team.get("members", {}):
            return  # an operator, or the team's own dispatcher: the people who run the team
        if action in ("create", "assign", "link", "cancel"):
            if team.get("dispatch_mode", "coordinator") == "coordinator" and actor != team.get("coordinator"):
                raise KanbanError("forbidden", f"only the coordinator may {action} (team {team.get('name')})",
                                  agent=actor)
        elif action == "unblock" and actor == team.get("coordinator"):
            return  # the coordinator (or the assignee) re-queues a blocked task
        elif row is not None and row["assignee"] and actor != row["assignee"]:
            raise KanbanError("forbidden", f"only the assignee {row['assignee']} may {action} "
                              f"{task_ref(row['id'])}", agent=actor, task=task_ref(row["id"]))

    def _check_writer(self, team, actor):
        """Fail closed: a write by anyone who is neither a member nor an operator (nor the
        team's dispatcher) is refused, and so is a caller who named no agent at all."""
        name = team.get("name")
        manifest = team.get("manifest") or "the team manifest"
        if isinstance(actor, _LoginName) or not actor:
            raise KanbanError(
                "forbidden", f"board of team {name}: name yourself with KANBAN_AGENT or --agent (a member, or "
                f"an operator listed under `operators:` in {manifest}); a caller with no agent may only read",
                agent=str(actor or ""), team=name, manifest=manifest, key="operators")
        if (actor in team.get("members", {}) or actor in team.get("operators", ())
                or actor == team.get("dispatcher", f"dispatcher@{name}")):
            return
        raise KanbanError(
            "forbidden", f"{actor} is not on team {name}: only its members and operators may write to its board "
            f"(add {actor} under `operators:` in {manifest})",
            agent=actor, team=name, manifest=manifest, key="operators")

    def _writes(self, actor):
        """The gate's first question, for a write that has no task to ask about."""
        team = self._team()
        if team:
            self._check_writer(team, actor)

    def set_team(self, team, actor=None):
        """Record (or with None, forget) the team manifest the role gate enforces."""
        def apply():
            current = self._team()
            if team is None and current:  # forgetting a team is a write on a team board: the gate's
                self._check_writer(current, self._actor(actor))
            if team is None:
                self.db.execute("DELETE FROM meta WHERE key = 'team'")
            else:
                self.db.execute(self.db.sql("set_meta"), ("team", dumps(team)))
            return team
        return self._write(apply)

    def team(self):
        return self._read(self._team)

    # -- goals --------------------------------------------------------------------

    def _sync_goal(self, goal_id, actor):
        """A goal is done when it has tasks and all are done or cancelled; a done goal
        whose tasks are no longer all closed reopens.  A goal inside a goal is one of
        its tasks: a change rolls up to the goal above it, and so on up."""
        while goal_id is not None:
            goal = self.db.row(self.db.sql("goal_for_update"), (goal_id,))
            if goal is None or goal["status"] not in ("todo", "done"):
                return
            total, closed = self.db.execute(self.db.sql("goal_closed_count"), (goal_id,)).fetchone()
            complete = total > 0 and total == closed
            if complete and goal["status"] == "todo":
                self._update(goal_id, status="done", finished_at=self.now)
                self._event(goal_id, "status_changed", actor, {"from": "todo", "to": "done", "goal": True})
                self._event(goal_id, "completed", actor, {"goal": True, "tasks": total})
            elif not complete and goal["status"] == "done":
                self._update(goal_id, status="todo", finished_at=None)
                self._event(goal_id, "status_changed", actor, {"from": "done", "to": "todo", "goal": True})
                self._event(goal_id, "reopened", actor, {"goal": True, "tasks": total})
            else:
                return
            goal_id = goal["goal_id"]

    def _sync_own_goal(self, row, actor):
        """A goal that becomes todo again (unblocked, reopened) whose tasks are all closed
        is done at once; then the goal it belongs to."""
        if row["kind"] == "goal":
            self._sync_goal(row["id"], actor)

    def _check_goal(self, goal_id, task_id=None):
        goal = self.db.row(self.db.sql("kind_of"), (goal_id,))
        if goal is None:
            raise not_found(f"no goal {task_ref(goal_id)}", task=task_ref(goal_id))
        if goal["kind"] != "goal":
            raise invalid(f"{task_ref(goal_id)} is not a goal (create it with --kind goal)")
        if task_id is not None and self._reaches(task_id, goal_id):
            raise KanbanError("cycle", f"{task_ref(task_id)} cannot belong to {task_ref(goal_id)}:"
                              " the goal would wait on itself", task=task_ref(task_id))

    @staticmethod
    def _dep_cycle(task_id, dep_id):
        """The `cycle` error for a dep of task_id on dep_id, which already waits on it."""
        why = "itself" if task_id == dep_id else \
            f"{task_ref(dep_id)}: {task_ref(dep_id)} already waits on {task_ref(task_id)}"
        return KanbanError("cycle", f"{task_ref(task_id)} cannot depend on {why}",
                           task=task_ref(task_id), dep=task_ref(dep_id))

    def _reaches(self, start, target):
        """Does `start` wait on `target`, through deps or (for goals) their tasks?"""
        if start == target:
            return True
        return self.db.scalar(self.db.sql("reaches"), {"start": start, "target": target}) is not None

    # -- create -------------------------------------------------------------------

    def _resolve(self, ref, keys):
        """A reference in create --stdin: an id, else an idempotency key."""
        if isinstance(ref, str) and ref in keys:
            return keys[ref]
        if isinstance(ref, bool) or not isinstance(ref, (str, int)):
            raise invalid(f"bad task reference {shown(ref)}: a task id (TASK-7 or 7) or a key")
        try:
            return parse_id(ref)
        except KanbanError:
            key = _text(str(ref), "task or key reference", limit=1000)  # e.g. bytes that are not UTF-8
            found = self.db.scalar(self.db.sql("task_by_key"), (key,))
            if found is None:
                raise not_found(f"no task or key {ref!r}") from None
            return found

    def _create(self, spec, actor, keys=None, later=(), deferred=None):
        """`later`: keys of this create --stdin batch; a reference to one not created yet
        goes on `deferred` as (task id, "goal" or "dep", key), resolved once all exist."""
        keys = {} if keys is None else keys
        title = _text(spec.get("title"), "title", required=True, limit=10_000)
        body = _text(spec.get("body"), "body")
        kind = spec.get("kind")
        kind = "task" if kind is None or kind == "" else kind
        if not isinstance(kind, str) or kind not in ("task", "goal"):
            raise invalid(f"bad kind {shown(kind)}: task or goal")
        priority = parse_int(spec.get("priority", 0) if spec.get("priority") is not None else 0, "priority")
        project = _name(spec.get("project"), "project")
        role = _name(spec.get("role"), "role")
        assignee = _name(spec.get("assignee"), "assignee")
        key = _name(spec.get("key"), "key")
        review = spec.get("review")
        review = False if review is None else review  # null is unset, as for every other field
        if not isinstance(review, bool):
            raise invalid(f"review must be true or false, not {shown(review)}")
        max_attempts = spec.get("max_attempts")
        if max_attempts is not None:
            max_attempts = parse_int(max_attempts, "max_attempts", minimum=1)
        not_before = spec.get("not_before")
        if isinstance(not_before, bool) or not isinstance(not_before, (str, int, float, type(None))):
            raise invalid(f"bad not_before {shown(not_before)}: use ISO-8601, epoch seconds or +10m")
        if not_before is not None:
            not_before = clock.parse_time(not_before, "not_before")
        deps = spec.get("depends_on") or []
        if isinstance(deps, str):
            deps = [d for d in deps.split(",") if d.strip()]
        if not isinstance(deps, list):
            raise invalid("depends_on must be a list")
        goal = spec.get("goal")

        if key is not None:
            existing = self.db.scalar(self.db.sql("task_by_key"), (key,))
            if existing is not None:
                keys[key] = existing
                return dict(self._task(existing), created=False)
        self._gate("create", actor)
        if assignee is not None:
            self._gate("assign", actor)
        pending = []

        def resolve(ref, what):
            if deferred is not None and isinstance(ref, str) and ref in later and ref not in keys:
                pending.append((what, ref))
                return None
            return self._resolve(ref, keys)
        goal_id = resolve(goal, "goal") if goal is not None else None
        dep_ids = [d for d in (resolve(ref, "dep") for ref in deps) if d is not None]
        if goal_id is not None:
            self._check_goal(goal_id)
        for dep in dep_ids:
            self._exists(dep)
        if goal_id is not None and any(self._reaches(dep, goal_id) for dep in dep_ids):
            raise KanbanError("cycle", f"a task of {task_ref(goal_id)} cannot wait on that goal")
        now = self.now
        task_id = self.db.scalar(
            self.db.sql("insert_task"),
            (kind, title, body, priority, project, role, assignee, goal_id, int(review),
             max_attempts, not_before, key, now, now),
        )
        for dep in dict.fromkeys(dep_ids):
            self.db.execute(self.db.sql("insert_dep"), (task_id, dep))
        if key is not None:
            keys[key] = task_id
        if pending:
            deferred += [(task_id, what, ref) for what, ref in pending]
        self._event(task_id, "created", actor, {"title": title, "kind": kind})
        self._linked(task_id, actor, goal_id, dict.fromkeys(dep_ids))
        self._sync_goal(goal_id, actor)
        return dict(self._task(task_id), created=True)

    def _linked(self, task_id, actor, goal_id=None, dep_ids=()):
        """The audit trail of links (seed 004): one `linked` event per goal or dep."""
        if goal_id is not None:
            self._event(task_id, "linked", actor, {"goal": task_ref(goal_id)})
        for dep in dep_ids:
            self._event(task_id, "linked", actor, {"depends_on": task_ref(dep)})

    def create(self, title, *, actor=None, **fields):
        """Create one task (fields as in `kanban create`); same --key returns the first."""
        unknown = set(fields) - CREATE_FIELDS
        if unknown:  # a misspelt field would otherwise be dropped and the task made without it
            raise invalid(f"unknown field(s) {', '.join(sorted(unknown))}: one of {', '.join(sorted(CREATE_FIELDS))}")
        spec = dict(fields, title=title)
        actor = self._actor(actor)
        return self._write(lambda: self._create(spec, actor))

    def create_many(self, specs, actor=None):
        """Create many tasks in one transaction; references resolve by id or key."""
        actor = self._actor(actor)
        for number, spec in enumerate(specs, 1):
            if not isinstance(spec, dict):
                raise invalid(f"line {number}: expected a JSON object")
            unknown = set(spec) - CREATE_FIELDS - {"title"}
            if unknown:
                raise invalid(f"line {number}: unknown field(s) {', '.join(sorted(unknown))}")

        later = {spec["key"] for spec in specs if isinstance(spec.get("key"), str)}

        def apply():
            keys = {}
            out = []
            deferred = []
            for number, spec in enumerate(specs, 1):
                start = len(deferred)
                try:
                    out.append(self._create(spec, actor, keys, later, deferred))
                except KanbanError as exc:
                    exc.extra.setdefault("line", number)
                    raise
                deferred[start:] = [(number,) + item for item in deferred[start:]]
            # references to keys further down the batch: goals first, then deps, each checked
            for number, task_id, what, ref in sorted(deferred, key=lambda item: item[2] != "goal"):
                try:
                    self._link_later(task_id, what, keys[ref], actor)
                except KanbanError as exc:
                    exc.extra.setdefault("line", number)
                    raise
            if deferred:
                out = [dict(self._task(parse_id(t["id"])), created=t["created"]) for t in out]
            return out
        return self._write(apply)

    def _link_later(self, task_id, what, target, actor):
        if what == "goal":
            self._check_goal(target, task_id)
            self._update(task_id, goal_id=target)
            self._linked(task_id, actor, goal_id=target)
            self._sync_goal(target, actor)
            return
        if self._reaches(target, task_id):
            raise self._dep_cycle(task_id, target)
        self.db.execute(self.db.sql("add_dep"), (task_id, target))
        if self.db.changes():
            self._linked(task_id, actor, dep_ids=[target])

    # -- claim and leases ---------------------------------------------------------

    def _reap(self, actor, wait=False):
        """Expire every overdue lease (inside the caller's transaction).  PostgreSQL passes
        over the leases another writer holds (a reap in flight) unless `wait`."""
        expired = []
        for r in self.db.rows(self.db.sql("expired_leases_wait" if wait else "expired_leases"), (self.now,)):
            task_id = r["id"]
            if r["status"] == "in_progress":
                attempts = r["attempts"] + 1
                failed = r["max_attempts"] is not None and attempts >= r["max_attempts"]
                reason = (f"lease expired {attempts} time(s), max_attempts {r['max_attempts']}"
                          if failed else None)
                self._end_lease(task_id, "failed" if failed else "todo", attempts=attempts,
                                reason=reason, finished_at=self.now if failed else None)
                self._close_runs(task_id, "expired", actor)
                self._event(task_id, "lease_expired", actor,
                            {"holder": r["claimed_by"], "token": r["lease_token"], "attempts": attempts})
                if failed:
                    self._event(task_id, "failed", actor, {"reason": reason})
                    self._sync_goal(r["goal_id"], actor)
            else:  # a review claim: the task stays in review, unclaimed
                self._update(task_id, claimed_by=None, lease_until=None, lease_token=None, lease_ms=None)
                self._event(task_id, "lease_expired", actor,
                            {"holder": r["claimed_by"], "token": r["lease_token"], "review": True})
            expired.append(task_id)
        return expired

    def _reap_held(self, actor):
        """A claim's pick found nothing after its reap: were leases still overdue, passed
        over because another writer holds them (PostgreSQL: a `lease reap`, or a claim
        reaping first, not yet committed)?  Then wait for that writer and reap what it
        left: the tasks it put back are ready once it commits, and {} would tell the
        claimer there is nothing to do (SPEC §3) while there is.  True when it waited:
        pick again.  On SQLite (one writer) the first reap left nothing overdue."""
        if not self.db.scalar(self.db.sql("any_expired"), (self.now,)):
            return False
        self._reap(actor, wait=True)
        return True

    def reap(self, actor=None):
        """Expire overdue leases now: {"expired": [tasks]}."""
        actor = self._actor(actor)  # events always name an actor: the login name when unset

        def apply():
            self._writes(actor)
            ids = self._reap(actor)
            return {"expired": self._dicts(self._rows(
                " WHERE " + self.db.sql("id_in"), {"ids": dumps(ids)},
                " ORDER BY t.id"))}
        return self._write(apply)

    def _pick(self, agent, role, project):
        """The best ready task this agent may take: on SQLite, the common case in one
        index seek, else one seek per eligibility class (store/queries.py `pick`)."""
        params = {"agent": agent, "role": role, "project": project, "now": self.now}
        names = PICK if self._writing else PEEK
        found = self.db.execute(self.db.sql(names[project is not None, role is not None]), params).fetchone()
        if found[1] == 0:
            return found[0]
        role_eq, assignee_eq = self.db.sql("role_eq"), self.db.sql("assignee_eq")
        classes = [("role_boundary IS NULL", "assignee IS NULL"), ("role_boundary IS NULL", assignee_eq)]
        if role is not None:
            classes += [(role_eq, "assignee IS NULL"), (role_eq, assignee_eq)]
        extra = self.db.sql("in_project") if project is not None else ""
        part = self.db.sql("pick_class")
        sql = (" UNION ALL ".join(part.format(f"{r} AND {a}", extra) for r, a in classes)
               + " ORDER BY priority DESC, created_at, id LIMIT 1")
        return self.db.scalar(sql, params)

    def _claim_row(self, task, agent, lease_ms, token, later=False):
        """Claim task `task`: its id, or its values and deps as the probe read them
        (TASK_COLUMNS, then "3,7" or None): then the answer is that row with what the
        claim changed, no RETURNING.  `token`: the one the probe read (SQLite), or None:
        drawn here.  `later`: the answer may be left to the caller, made once the write
        lock is let go (_Later): the lock is held for the write alone."""
        if token is None:
            token = self._next_token()
        now = self._now
        until = now + lease_ms
        params = {"agent": agent, "until": until, "token": token, "lease_ms": lease_ms, "now": now}
        if isinstance(task, tuple):
            task_id = params["id"] = task[0]
            self.db.execute(self._claim_task, params)
            values = _claimed_values(task[:_NCOLUMNS], agent, until, token, lease_ms, now)
            deps = task[_NCOLUMNS]
        else:
            task_id = params["id"] = task
            values, deps = _returned(self.db.execute(self._claim_returning, params).fetchone())
        lease_until = clock.iso(until)
        # the event's data, and as _event would write it (an ISO time needs no escapes)
        self._event(task_id, "claimed", agent, {"token": token, "lease_until": lease_until},
                    text=f'{{"token":{token},"lease_until":"{lease_until}"}}')
        if later and deps is not _UNREAD:
            return _Later(values, deps, token)
        answer = self._answer_values(values, deps)
        answer["lease_token"] = token
        return answer

    def _claim(self, agent, task, role, project, lease_ms, later=False):
        # what a claim asks before its pick, in one statement (`claim_probe`): the board's
        # team (to the gate's cache), whether a lease has run out, whether the board has WIP
        # limits, whether the probe left the pick unsettled, the claim's token (SQLite;
        # None: drawn when the claim is made), then the picked task's values and deps
        # (_claim_row; None: nothing ready)
        found = self.db.execute(self._claim_probes[project is not None, role is not None],
                                {"agent": agent, "role": role, "project": project, "now": self._now}).fetchone()
        team = self._team_cache = _loads(found[0]) if found[0] else None
        if team:
            self._check_writer(team, agent)  # _writes, with the team just read
        expired, limited, token = found[1], found[2], found[4]
        if expired:
            self._reap(agent)
        if task is None:
            if expired or limited or found[3]:
                picked = self._pick_within_limits(agent, role, project, None if limited else [])
                if picked is None and expired and self._reap_held(agent):
                    picked = self._pick_within_limits(agent, role, project, None if limited else [])
            else:
                picked = None if found[5] is None else found[5:]
            if picked is None:
                return {}
            return self._claim_row(picked, agent, lease_ms, token, later)
        row = self._row(task)
        ref = task_ref(task)
        if row["kind"] == "goal":
            raise conflict(f"{ref} is a goal: claim its tasks", task=ref)
        if row["status"] != "todo":
            raise conflict(f"{ref} is {row['status']}, not todo", task=ref, status=row["status"])
        if row["assignee"] is not None and row["assignee"] != agent:
            raise KanbanError("forbidden", f"{ref} is assigned to {row['assignee']}", task=ref)
        if row["role_boundary"] is not None and row["role_boundary"] != role:
            raise KanbanError("forbidden", f"{ref} needs role {row['role_boundary']}", task=ref)
        if project is not None and row["project"] != project:
            raise conflict(f"{ref} is not in project {project}", task=ref)
        if not row["ready"]:
            raise conflict(f"{ref} is not ready (see 'kanban show {ref}')", task=ref)
        if limited and self._full_limits_for(row, agent):
            return {}  # a full WIP limit: nothing to claim now, as when no task is ready
        return self._claim_row(task, agent, lease_ms, token)

    def claim(self, agent, task=None, *, role=None, project=None, lease=None):
        """Claim task `task`, or the best ready one; {} when there is nothing to do."""
        agent = self._agent(agent)
        task = parse_id(task) if task is not None else None
        lease_ms = _lease_ms(lease)
        _lease_end(clock.now_ms() + lease_ms, lease)
        if role is not None:  # _name(None) is None: not called for what a claim mostly leaves out
            role = _name(role, "role")
        if project is not None:
            project = _name(project, "project")
        if task is not None:
            return self._write(lambda: self._claim(agent, task, role, project, lease_ms))
        return self._commit(_ClaimWrite((self, agent, role, project, lease_ms)))

    def has_work(self, agent, role=None, project=None):
        """A cheap read: would a claim find something (or an expired lease to reap)?"""
        def peek():
            if self.db.scalar(self.db.sql("any_expired"), (self.now,)):
                return True
            return self._pick_within_limits(agent, role, project) is not None
        return self._read(peek)

    def wait_for_work(self, seconds):
        """Sleep up to `seconds` between has_work() polls; a Postgres board wakes early on
        LISTEN/NOTIFY when a task may have become claimable."""
        self.db.wait(seconds)

    def claim_many(self, agent, count, *, role=None, project=None, lease=None):
        """Claim up to `count` ready tasks in one transaction: a list of claims."""
        agent = self._agent(agent)
        count = parse_int(count, "count", minimum=1)
        lease_ms = _lease_ms(lease)
        _lease_end(clock.now_ms() + lease_ms, lease)
        role = _name(role, "role")
        project = _name(project, "project")

        def apply():
            out = []
            while len(out) < count:
                wanted = min(count - len(out), _SET_CHUNK)
                claimed = [claim for claim in self._claim_set([agent] * wanted, role, project, lease_ms) if claim]
                out += claimed
                if len(claimed) < wanted:
                    break
            return out
        return self._write(apply)

    def _claim_set(self, agents, role, project, lease_ms, later=False):
        """Claim the best ready task for each of `agents` in turn (a name may repeat),
        inside the caller's write: for each, what _claim(agent, None, ...) would answer
        ({} when nothing is left for it), with the same tasks, tokens and events; with
        `later`, a claim's answer may be left to its caller (_Later).
        The common case takes a handful of statements for them all: no lease to reap, no
        WIP limit, and no ready task assigned to one of these agents or bound to the role,
        so every agent picks from one class, in claim order.  Otherwise, and for a single
        claim (which _claim makes in fewer statements): one by one."""
        if len(agents) < 2:
            return self._claim_each(agents, role, project, lease_ms)
        distinct = list(dict.fromkeys(agents))
        team, expired, limited, others, first = self.db.execute(self.db.sql("claim_set_probe"), {
            "agents": dumps(distinct), "role": role, "now": self.now}).fetchone()
        self._team_cache = _loads(team) if team else None
        if expired or limited or others:
            return self._claim_each(agents, role, project, lease_ms)
        for agent in distinct:
            self._writes(agent)
        # each picked task's values (TASK_COLUMNS order), then its deps
        rows = list(self.db.execute(self.db.sql("claim_set_pick_project" if project is not None
                                                else "claim_set_pick"),
                                    {"project": project, "now": self.now, "n": len(agents)}))
        if not rows:
            return [{} for _ in agents]  # a dict of its own for each (a caller may change its answer)
        count = len(rows)
        if first is not None:  # SQLite: the probe read the first token; the claims' events follow
            tokens = range(first, first + count)
        else:
            tokens = [token for low, high in self.db.execute(self.db.sql("next_tokens"), {"n": count})
                      for token in range(low, high + 1)]
        now, until = self.now, self.now + lease_ms
        claims = [(row[0], "claimed", agent, token)
                  for row, agent, token in zip(rows, agents[:count], tokens, strict=True)]
        text = dumps(claims)
        self.db.execute(self.db.sql("claim_tasks"), {"claims": text, "until": until, "lease_ms": lease_ms, "now": now})
        self._token_events(claims, text, {"lease_until": clock.iso(until)})
        answers = [_Later(_claimed_values(row[:_NCOLUMNS], agent, until, token, lease_ms, now), row[_NCOLUMNS], token)
                   for row, (_, _, agent, token) in zip(rows, claims, strict=True)]
        if not later:
            answers = [answer.make() for answer in answers]
        return answers + [{} for _ in agents[count:]]

    def _claim_each(self, agents, role, project, lease_ms):
        """_claim_set one claim at a time.  An agent that got nothing gets nothing again in
        this transaction (the claims between only take tasks and fill limits): not asked."""
        answers, empty = [], set()
        for agent in agents:
            claimed = {} if agent in empty else self._claim(agent, None, role, project, lease_ms)
            if not claimed:
                empty.add(agent)
            answers.append(claimed)
        return answers

    def _pick_review(self, agent):
        return self.db.scalar(self.db.sql("pick_review"), {"agent": agent})

    def claim_review(self, agent, task=None, *, lease=None):
        """Claim an in_review task for reviewing, under a lease of its own."""
        agent = self._agent(agent)
        task = parse_id(task) if task is not None else None
        lease_ms = _lease_ms(lease)
        _lease_end(clock.now_ms() + lease_ms, lease)

        def apply():
            self._writes(agent)
            self._reap(agent)
            task_id = task
            if task_id is None:
                task_id = self._pick_review(agent)
                if task_id is None and self._reap_held(agent):
                    task_id = self._pick_review(agent)
                if task_id is None:
                    return {}
            row = self._row(task_id)
            ref = task_ref(task_id)
            if row["status"] != "in_review":
                raise conflict(f"{ref} is {row['status']}, not in_review", task=ref, status=row["status"])
            if row["claimed_by"] is not None:
                raise conflict(f"{ref} is already being reviewed by {row['claimed_by']}", task=ref)
            self._not_a_holder(task_id, agent)
            if self._full_review_limits(agent):
                return {}  # this reviewer holds as many reviews as its WIP limit allows
            token = self._next_token()
            self._update(task_id, claimed_by=agent, lease_until=self.now + lease_ms,
                         lease_token=token, lease_ms=lease_ms)
            self._event(task_id, "claimed", agent,
                        {"review": True, "token": token, "lease_until": clock.iso(self.now + lease_ms)})
            return dict(self._task(task_id), lease_token=token)
        return self._write(apply)

    def _not_a_holder(self, task_id, agent):
        if self.db.scalar(self.db.sql("is_holder"), {"task": task_id, "agent": agent}):
            raise KanbanError("forbidden", f"{agent} worked on {task_ref(task_id)} and may not review it",
                              task=task_ref(task_id), agent=agent)

    def _check_lease(self, row, token, need_status=("in_progress",), agent=None):
        """The fencing check every holder write makes.  An `agent` that passes it on a
        task in progress has acted as its holder: the review gate remembers it (in
        `holders`; the holder itself is known by its claim's event)."""
        if row["status"] not in need_status:
            ref = task_ref(row["id"])
            if token is not None and self._was_token(row["id"], token):
                raise KanbanError("lease_lost", f"the lease on {ref} is gone: the task is now "
                                  f"{row['status']}", task=ref, status=row["status"])
            raise conflict(f"{ref} is {row['status']}, not {' or '.join(need_status)}",
                           task=ref, status=row["status"])
        if token is None or row["lease_token"] != token or row["claimed_by"] is None:
            ref = task_ref(row["id"])
            if token is None:
                raise KanbanError("lease_lost", f"no lease token given for {ref}: pass the lease_token its "
                                  "claim returned", task=ref)
            raise KanbanError("lease_lost", f"token {token} is not the current lease on {ref}", task=ref)
        if row["lease_until"] is None or row["lease_until"] <= self.now:
            ref = task_ref(row["id"])
            raise KanbanError("lease_lost", f"the lease on {ref} expired at {clock.iso(row['lease_until'])}",
                              task=ref)
        if agent and row["status"] == "in_progress" and agent != row["claimed_by"]:
            self.db.execute(self.db.sql("add_holder"), (row["id"], agent))

    def _was_token(self, task_id, token):
        return self.db.scalar(self.db.sql("was_token"), (task_id, token)) is not None

    def renew(self, task, token, *, lease=None, agent=None):
        """Extend the lease to max(current, now + lease): never shorter."""
        agent = self._agent(agent)
        task = parse_id(task)
        token = parse_token(token)
        extra_ms = _lease_ms(lease) if lease is not None else None

        def apply():
            row = self._row(task)
            self._gate("heartbeat", agent, row)
            self._check_lease(row, token, ("in_progress", "in_review"), agent=agent)
            until = _lease_end(max(row["lease_until"], self.now + (extra_ms or row["lease_ms"])), lease)
            self._update(task, lease_until=until)
            self._beat_runs(task)
            self._event(task, "lease_renewed", agent, {"token": token, "lease_until": clock.iso(until)})
            return dict(self._task(task), lease_token=token)
        return self._write(apply)

    def release(self, task, token, *, agent=None, run_outcome="released"):
        """Give the task back: todo again, no attempt counted."""
        agent = self._agent(agent)
        task = parse_id(task)
        token = parse_token(token)

        def apply():
            row = self._row(task)
            self._gate("release", agent, row)
            self._check_lease(row, token, ("in_progress", "in_review"), agent=agent)
            if row["status"] == "in_review":
                self._update(task, claimed_by=None, lease_until=None, lease_token=None, lease_ms=None)
            else:
                self._end_lease(task, "todo")
                self._close_runs(task, run_outcome, agent)
            self._event(task, "released", agent, {"token": token, "review": row["status"] == "in_review"})
            return self._task(task)
        return self._write(apply)

    def give_back(self, task, token, reason, *, agent=None):
        """A holder that cannot finish its task gives it back counting an attempt:
        todo again, or failed at max_attempts, as when its lease expires.  What
        `kanban work` does when the board refuses what the task's command produced."""
        agent = self._agent(agent)
        task = parse_id(task)
        token = parse_token(token)
        reason = _text(reason, "reason", required=True, limit=100_000)

        def apply():
            row = self._row(task)
            self._gate("release", agent, row)
            self._check_lease(row, token, agent=agent)
            attempts = row["attempts"] + 1
            failed = row["max_attempts"] is not None and attempts >= row["max_attempts"]
            self._end_lease(task, "failed" if failed else "todo", attempts=attempts,
                            reason=reason if failed else None, finished_at=self.now if failed else None)
            self._close_runs(task, "released", agent)
            self._event(task, "released", agent, {"token": token, "review": False, "attempts": attempts,
                                                  "reason": reason})
            if failed:
                self._event(task, "failed", agent, {"reason": reason})
                self._sync_goal(row["goal_id"], agent)
            return self._task(task)
        return self._write(apply)

    # -- events -------------------------------------------------------------------

    def log(self, task, message, *, token=None, agent=None, ttl=None):
        """A progress note; with a token it also renews the lease."""
        agent = self._agent(agent)
        task = parse_id(task)
        message = _text(message, "message", required=True, limit=100_000)
        token = parse_token(token)
        if ttl is None:
            ttl_ms = PROGRESS_TTL_MS
        elif str(ttl).strip().lower() == "never":  # the seed's ttl_seconds = NULL: kept for good
            ttl_ms = None
        else:
            ttl_ms = clock.parse_duration(ttl, "ttl")

        def apply():
            row = self._row(task)
            data = {"message": message}
            if token is not None:
                self._check_lease(row, token, ("in_progress", "in_review"), agent=agent)
                until = _lease_end(max(row["lease_until"], self.now + row["lease_ms"]))
                self._update(task, lease_until=until)
                self._beat_runs(task)
                data.update(token=token, lease_until=clock.iso(until))
            event_id = self._event(task, "progress", agent, data, ttl_ms=ttl_ms)
            return self._fired_event(event_id, task, "progress", agent, self.now, data)
        return self._write(apply)

    def events(self, *, task=None, kind=None, since=None, limit=100, check_cursor=True):
        """Events in ascending order after cursor `since`: {"events", "cursor"}; a cursor
        past the newest event is `invalid` (check_cursor=False: the live board's own)."""
        task = parse_id(task) if task is not None else None
        after = self._cursor(since)
        limit = parse_int(limit, "limit", minimum=1)
        if kind is not None and kind not in EVENT_KINDS:
            raise invalid(f"unknown event kind {kind!r}")

        def fetch():
            if task is not None:
                self._exists(task)
            rows = self.db.rows(
                self.db.sql("events_after"),
                {"after": after, "task": task, "kind": kind, "now": self.now, "limit": limit})
            events = [self._event_dict(r) for r in rows]
            if not rows and after and check_cursor:
                # no answer gave a cursor past the newest event id given out: one from another
                # board, or a board restored from an older backup, would skip what comes next
                newest = self.db.scalar(self.db.sql("last_event_id")) or 0
                if after > newest:
                    raise invalid(f"cursor {since!r} is past the newest event ({newest}) of this board:"
                                  " pass the cursor a previous answer gave")
            cursor = str(rows[-1]["id"]) if rows else str(after)
            return {"events": events, "cursor": cursor}
        return self._read(fetch)

    @staticmethod
    def _cursor(since):
        if since is None or since == "":
            return 0
        text = str(since)
        if not text.isascii() or not text.isdigit() or len(text) > 18:
            raise invalid(f"bad cursor {since!r}: pass the cursor a previous answer gave")
        return int(text)

    @staticmethod
    def _event_dict(r):
        return {"id": r["id"], "task": task_ref(r["task_id"]), "kind": r["kind"], "actor": r["actor"],
                "at": clock.iso(r["at"]), "data": _loads(r["data"]) if r["data"] else {}}

    # -- finishing ----------------------------------------------------------------

    def complete(self, task, token, *, summary=None, review=False, verify=True, agent=None):
        """done, or in_review when the task or the call asks for review."""
        agent = self._agent(agent)
        task = parse_id(task)
        token = parse_token(token)
        if summary is not None:  # _text(None) is None
            summary = _text(summary, "summary", limit=100_000)
        folder = self._pre_complete([(task, token)], agent, summary) if verify else True
        if summary is not None or review:
            return self._write(lambda: self._complete(task, token, summary, review, agent), hooks_folder=folder)
        return self._commit(_CompleteWrite((self, task, token, agent)), folder)

    def _pre_complete(self, pairs, agent, summary):
        """Run pre-complete hooks: check the token, run the hook without holding the
        write lock, and let the write transaction check the token again.  False when
        there is no hooks folder."""
        folder = self._hooks_folder()
        if not folder or not os.access(folder, os.F_OK):
            return False
        if not hooks.find(folder, "pre-complete"):
            return True
        for task, token in pairs:
            def snapshot(task=task, token=token):
                self._check_lease(self._row(task), token)
                return self._task(task)
            hooks.run_pre_complete(self.path, self._read(snapshot), agent, summary)
        return True

    def _complete(self, task, token, summary, review, agent, later=False):
        """done, or in_review: the answer.  The common case first, in one statement
        (`complete_task`: the update, with every check of _complete_checked in its
        WHERE); when it changes nothing, _complete_checked reads the task, checks it
        (raising what it always has) and makes the other cases: review, an open run, a
        team board.  Nothing changes between the two: one write transaction (on Postgres
        the read locks the row, and the checks are all made again)."""
        if not review:
            found = self.db.execute(self._complete_task,
                                    {"id": task, "token": token, "agent": agent, "now": self._now}).fetchone()
            if found is not None:
                self._team_cache = None  # the statement found no team: nothing for the events' gate
                if summary is None:  # the data as _event would write it
                    self._event(task, "completed", agent, {"token": token}, text=f'{{"token":{token}}}')
                else:
                    self._event(task, "completed", agent, {"token": token, "summary": summary})
                if found[_GOAL_ID] is not None:  # _sync_goal(None) does nothing
                    self._sync_goal(found[_GOAL_ID], agent)
                values, deps = _returned(found)
                if later and deps is not _UNREAD:  # made once the lock is let go (_Later)
                    return _Later(values, deps)
                return self._answer_values(values, deps)
        return self._complete_checked(task, token, summary, review, agent)

    def _complete_checked(self, task, token, summary, review, agent):
        """_complete from the task's row, read and checked here."""
        row = self._row_for_write(task)
        self._gate("complete", agent, row)
        self._check_lease(row, token, agent=agent)
        data = {"token": token}
        text = f'{{"token":{token}}}'  # the data as _event would write it
        if summary is not None:
            data["summary"] = summary
            text = None
        if review or row["review"]:
            after = self._end_lease(task, "in_review", row, review=1)
            self._event(task, "submitted_for_review", agent, data, text=text)
        else:
            after = self._end_lease(task, "done", row, finished_at=self.now)
            self._event(task, "completed", agent, data, text=text)
            self._sync_goal(row["goal_id"], agent)
        if row["open_runs"]:
            self._close_runs(task, "completed", agent)
        return self._answer(after)

    def complete_many(self, pairs, *, agent=None, verify=True):
        """Complete many (task, token) pairs in one transaction: all or nothing."""
        agent = self._agent(agent)
        pairs = [(parse_id(t), parse_token(k)) for t, k in pairs]
        if verify:
            self._pre_complete(pairs, agent, None)
        return self._write(lambda: self._complete_set([(task, token, agent) for task, token in pairs]))

    def _complete_set(self, items, later=False):
        """Complete many (task, token, agent) inside the caller's write: what _complete
        would answer for each in turn, with the same changes and events, all or nothing
        (with `later`, an answer may be left to its caller: _Later).
        Every row is read and checked first, in one statement; the tasks are then finished
        a run at a time, one UPDATE for the done and one for those going to review, their
        events in one INSERT.  A run ends at a task whose goal rolls up or whose runs
        close: their events come next, as one by one.  A single item, a task named twice,
        or any item that fails its checks: one by one (which raises what _complete raises)."""
        ids = [task for task, _, _ in items]
        if len(items) < 2 or len(set(ids)) < len(ids):
            return self._complete_each(items)
        # each task's values (TASK_COLUMNS order), then ready, its deps, the board's team
        # and whether the task has open runs
        rows = {row[0]: row for row in self.db.execute(self.db.sql("tasks_for_write"),
                                                       {"ids": dumps(ids), "now": self.now})}
        if len(rows) < len(ids):
            return self._complete_each(items)  # a task that is not there: its not_found
        team = next(iter(rows.values()))[_NCOLUMNS + 2]
        self._team_cache = _loads(team) if team else None
        now, holders = self.now, []
        for task, token, agent in items:
            row = rows[task]
            # _check_lease's checks: any refusal is raised by the items made one by one
            if (row[_STATUS] != "in_progress" or token is None or row[_LEASE_TOKEN] != token
                    or row[_CLAIMED_BY] is None
                    or row[_LEASE_UNTIL] is None or row[_LEASE_UNTIL] <= now):
                return self._complete_each(items)
            if team:
                try:
                    self._gate("complete", agent, dict(zip(TASK_COLUMNS, row, strict=False)))
                except KanbanError:
                    return self._complete_each(items)
            if agent and agent != row[_CLAIMED_BY]:
                holders.append((task, None, agent))  # what _check_lease records for an agent
        if holders:
            self.db.execute(self.db.sql("add_holders"), (dumps(holders),))
        answers, run = [], []
        for task, token, agent in items:
            row = rows[task]
            run.append((task, token, agent))
            rolls_up = row[_GOAL_ID] is not None and not row[_REVIEW]
            open_runs = row[_NCOLUMNS + 3]
            if rolls_up or open_runs:
                answers += self._finish_run(run, rows)
                run = []
                if rolls_up:
                    self._sync_goal(row[_GOAL_ID], agent)
                if open_runs:
                    self._close_runs(task, "completed", agent)
        answers += self._finish_run(run, rows)
        return answers if later else [answer.make() for answer in answers]

    def _finish_run(self, run, rows):
        """_complete_set's changes and events for a run of its items; their answers, to make
        (_Later)."""
        if not run:
            return []
        now = self.now
        done = [task for task, _, _ in run if not rows[task][_REVIEW]]
        review = [task for task, _, _ in run if rows[task][_REVIEW]]
        if done:
            self.db.execute(self.db.sql("complete_tasks"), {"ids": dumps(done), "now": now})
        if review:
            self.db.execute(self.db.sql("submit_tasks"), {"ids": dumps(review), "now": now})
        events = [(task, "submitted_for_review" if rows[task][_REVIEW] else "completed", agent, token)
                  for task, token, agent in run]
        self._token_events(events, dumps(events), {})
        return [_Later(_finished_values(rows[task][:_NCOLUMNS], now), rows[task][_NCOLUMNS + 1])
                for task, _, _ in run]

    def _complete_each(self, items):
        return [self._complete(task, token, None, False, agent) for task, token, agent in items]

    def _judge(self, task, agent, token, verb):
        row = self._row(task)
        ref = task_ref(task)
        if row["status"] != "in_review":
            raise conflict(f"{ref} is {row['status']}, not in_review", task=ref, status=row["status"])
        self._not_a_holder(task, agent)
        live = row["claimed_by"] is not None and row["lease_until"] is not None and row["lease_until"] > self.now
        if live or token is not None:
            if token is None:  # someone holds a live review claim, and the call has no token
                raise KanbanError("lease_lost", f"{verb}: {ref} is held for review by {row['claimed_by']}: only "
                                  "that review claim's lease_token may judge it", task=ref)
            if token == row["lease_token"] and row["claimed_by"] is not None and not live:
                raise KanbanError("lease_lost", f"{verb}: the review lease on {ref} expired at "
                                  f"{clock.iso(row['lease_until'])}", task=ref)
            if not live or token != row["lease_token"]:
                raise KanbanError("lease_lost", f"{verb}: token {token} is not the current review lease on {ref}",
                                  task=ref)
        return row

    def approve(self, task, *, agent=None, token=None, comment=None):
        """in_review -> done, by a judge who never held the task."""
        agent = self._agent(agent)
        task = parse_id(task)
        token = parse_token(token)
        comment = _text(comment, "comment", limit=100_000)

        def apply():
            row = self._judge(task, agent, token, "approve")
            self._end_lease(task, "done", finished_at=self.now)
            if comment:
                self._add_comment(task, agent, comment)
            data = {"comment": comment} if comment else {}
            if token is not None:
                data["token"] = token  # the review lease it was judged under
            self._event(task, "approved", agent, data)
            self._sync_goal(row["goal_id"], agent)
            return self._task(task)
        return self._write(apply)

    def reject(self, task, reason, *, agent=None, token=None):
        """in_review -> todo with the reason, by a judge who never held the task."""
        agent = self._agent(agent)
        task = parse_id(task)
        token = parse_token(token)
        reason = _text(reason, "reason", required=True, limit=100_000)

        def apply():
            self._judge(task, agent, token, "reject")
            self._end_lease(task, "todo", reason=reason)
            self._event(task, "rejected", agent, {"reason": reason, **({"token": token} if token is not None else {})})
            return self._task(task)
        return self._write(apply)

    def block(self, task, reason, *, token=None, agent=None):
        """A task in progress needs its holder's token; a todo task may be blocked without."""
        task = parse_id(task)
        reason = _text(reason, "reason", required=True, limit=100_000)
        token = parse_token(token)

        def apply():
            row = self._row(task)
            ref = task_ref(task)
            actor = agent
            if row["status"] == "in_progress":
                if not agent:
                    raise usage("block of a claimed task needs an agent (--agent or KANBAN_AGENT)")
                self._gate("block", agent, row)
                self._check_lease(row, token, agent=agent)
                self._close_runs(task, "blocked", agent)
            elif row["status"] == "todo":
                if token is not None:
                    # a holder's write (SPEC §5): a todo task has no lease, so no token is its
                    # current one; a holder whose lease ran out and was reaped parks nothing
                    ref = task_ref(task)
                    if self._was_token(task, token):
                        raise KanbanError("lease_lost", f"the lease on {ref} is gone: the task is now todo",
                                          task=ref, status="todo")
                    raise KanbanError("lease_lost", f"token {token} is not the current lease on {ref}", task=ref)
                self._gate("block", self._actor(agent), row)
                actor = self._actor(agent)
            else:
                if token is not None and self._was_token(task, token):
                    # a holder's write after its task was cancelled, completed or moved on by
                    # someone else: lease_lost, as complete, renew and release say (SPEC §5)
                    raise KanbanError("lease_lost", f"the lease on {ref} is gone: the task is now "
                                      f"{row['status']}", task=ref, status=row["status"])
                raise conflict(f"{ref} is {row['status']}: only todo or in_progress tasks can be blocked",
                               task=ref, status=row["status"])
            self._end_lease(task, "blocked", reason=reason)
            data = {"reason": reason, "from": row["status"]}
            if row["status"] == "in_progress":
                data["token"] = token  # the fencing token that ended the lease, as complete records it
            self._event(task, "blocked", actor, data)
            return self._task(task)
        return self._write(apply)

    def unblock(self, task, *, reason=None, actor=None):
        task = parse_id(task)
        reason = _text(reason, "reason", limit=100_000)
        actor = self._actor(actor)

        def apply():
            row = self._row(task)
            if row["status"] != "blocked":
                raise conflict(f"{task_ref(task)} is {row['status']}, not blocked", task=task_ref(task),
                               status=row["status"])
            self._gate("unblock", actor, row)
            self._update(task, status="todo", reason=None)
            self._event(task, "unblocked", actor, {"reason": reason} if reason else {})
            self._sync_own_goal(row, actor)
            return self._task(task)
        return self._write(apply)

    def cancel(self, task, *, reason=None, actor=None):
        task = parse_id(task)
        reason = _text(reason, "reason", limit=100_000)
        actor = self._actor(actor)

        def apply():
            row = self._row(task)
            if row["status"] not in OPEN:
                raise conflict(f"{task_ref(task)} is {row['status']}: already closed", task=task_ref(task),
                               status=row["status"])
            self._gate("cancel", actor, row)
            self._end_lease(task, "cancelled", reason=reason, finished_at=self.now)
            self._close_runs(task, "cancelled", actor)
            self._event(task, "cancelled", actor, {"reason": reason, "from": row["status"]})
            self._sync_goal(row["goal_id"], actor)
            return self._task(task)
        return self._write(apply)

    def reopen(self, task, *, actor=None):
        task = parse_id(task)
        actor = self._actor(actor)

        def apply():
            row = self._row(task)
            if row["status"] not in CLOSED:
                raise conflict(f"{task_ref(task)} is {row['status']}: only done, failed or cancelled "
                               "tasks can be reopened", task=task_ref(task), status=row["status"])
            if row["kind"] == "goal":
                self._goal_stays_closed(row)
            self._update(task, status="todo", attempts=0, reason=None, finished_at=None)
            self._event(task, "reopened", actor, {"from": row["status"]})
            self._sync_goal(row["goal_id"], actor)
            self._sync_own_goal(row, actor)
            return self._task(task)
        return self._write(apply)

    def _goal_stays_closed(self, row):
        """A goal is done while it has tasks and all are done or cancelled: reopened, such
        a goal would be done again at once, so reopen refuses it (`conflict`) and says
        what reopens it: one of its tasks open again, or a new one."""
        total, closed = self.db.execute(self.db.sql("goal_closed_count"), (row["id"],)).fetchone()
        if total == 0 or total != closed:
            return
        ref = task_ref(row["id"])
        tasks = "its task is" if total == 1 else f"all {total} of its tasks are"
        if row["status"] == "done":
            why = "so it stays done: reopen one of its tasks, or add one, and the goal reopens with it"
        else:
            why = "so reopened it would be done at once: reopen one of its tasks first"
        raise conflict(f"{ref} is a goal and {tasks} done or cancelled, {why}", task=ref, status=row["status"],
                       tasks=total)

    # -- a person moves a card --------------------------------------------------------

    MOVE_COLUMNS = ("todo", "in_review", "blocked", "done", "cancelled")

    def move(self, task, column, *, reason=None, force=False, actor=None):
        """A person moves a card to `column`.  A held task needs force, which ends the
        lease; a review task moved to done is an approval (the mover never held it);
        a team board's role gate applies."""
        task = parse_id(task)
        if column == "in_progress":
            raise usage("a task reaches in_progress only by a claim: move it to todo, in_review, "
                        "blocked, done or cancelled")
        if column not in self.MOVE_COLUMNS:
            from .diagnose import nearest

            near = nearest(column, self.MOVE_COLUMNS)
            raise invalid(f"unknown column {column!r}: one of {', '.join(self.MOVE_COLUMNS)}",
                          hint=f"did you mean {near!r}?" if near else None)
        if column == "blocked" and reason is None:  # as block's 'missing --reason', in words
            raise invalid("a card moved to blocked needs a reason: pass --reason")
        reason = _text(reason, "reason", required=column == "blocked", limit=100_000)
        actor = self._actor(actor)

        def apply():
            row = self._row(task)
            ref = task_ref(task)
            source = row["status"]
            if row["kind"] == "goal":
                raise conflict(f"{ref} is a goal: it moves with its tasks", task=ref)
            if source == column:
                raise conflict(f"{ref} is already {column}", task=ref, status=source)
            if column == "in_review" and source not in ("todo", "in_progress", "blocked"):
                raise conflict(f"{ref} is {source}: only open work goes to review", task=ref, status=source)
            held = row["claimed_by"] is not None and row["lease_until"] is not None \
                and row["lease_until"] > self.now
            if held and not force:
                raise conflict(f"{ref} is held by {row['claimed_by']} until {clock.iso(row['lease_until'])}: "
                               "--force ends that lease", task=ref, status=source, holder=row["claimed_by"])
            self._gate(MOVE_GATE[column] if not (column == "todo" and source == "blocked") else "unblock",
                       actor, row)
            approval = column == "done" and (row["review"] or source == "in_review")
            if approval:
                self._not_a_holder(task, actor)  # the review gate: no one approves their own work
            if column == "in_review" and not force:
                for limit in self._wip_limits():
                    if (limit["status"] == "in_review" and limit["agent"] is None
                            and limit["role"] in (None, row["role_boundary"])
                            and limit["project"] in (None, row["project"])
                            and limit["count"] >= limit["max_count"]):
                        scope = _scope_text("in_review", limit["role"], limit["project"])
                        raise conflict(f"{scope} is full ({limit['count']}/{limit['max_count']}, its WIP limit): "
                                       "--force moves it anyway", task=ref,
                                       limit=_waiting_limit(self._limit_dict(limit)))
            fields = {"reason": reason}
            if column in CLOSED:
                fields["finished_at"] = self.now
            elif source in CLOSED:
                fields.update(finished_at=None, attempts=0)
            if column == "in_review":
                fields["review"] = 1
            self._end_lease(task, column, **fields)
            if source == "in_progress":
                self._close_runs(task, "moved", actor)
            data = {"from": source, "to": column, "moved": True}
            if reason:
                data["reason"] = reason
            if row["claimed_by"] is not None:
                data["lease_ended"] = {"holder": row["claimed_by"], "token": row["lease_token"]}
            self._event(task, "approved" if approval else MOVE_EVENT.get(column, "status_changed"), actor, data)
            self._sync_goal(row["goal_id"], actor)
            return dict(self._task(task), **{"from": source})
        return self._write(apply)

    def holders_of(self, task_ids):
        """{task id: [agents that ever held it]}: who did the work of a task in review."""
        ids = [parse_id(t) for t in task_ids]

        def fetch():
            found = {}
            if ids:
                for task_id, agent in self.db.execute(self.db.sql("holders_of"), {"ids": dumps(ids)}):
                    found.setdefault(task_ref(task_id), []).append(agent)
            return found
        return self._read(fetch)

    def projects(self):
        """The projects named on the board, sorted."""
        return self._read(lambda: [r[0] for r in self.db.execute(self.db.sql("projects"))])

    # -- deps -----------------------------------------------------------------------

    def _dep_answer(self, task):
        deps = [task_ref(r[0]) for r in self.db.execute(self.db.sql("deps_of_task"), (task,))]
        dependents = [task_ref(r[0]) for r in self.db.execute(self.db.sql("dependents_of_task"), (task,))]
        return {"task": task_ref(task), "depends_on": deps, "dependents": dependents}

    def dep_add(self, task, deps, *, actor=None):
        task = parse_id(task)
        deps = [parse_id(d, "dependency id") for d in deps]
        actor = self._actor(actor)

        def apply():
            self._exists(task)
            self._gate("link", actor)
            for dep in deps:
                self._exists(dep)
                if self._reaches(dep, task):
                    raise self._dep_cycle(task, dep)
                self.db.execute(self.db.sql("add_dep"), (task, dep))
                if self.db.changes():
                    self._update(task)
                    self._event(task, "linked", actor, {"depends_on": task_ref(dep)})
            return self._dep_answer(task)
        return self._write(apply)

    def dep_rm(self, task, deps, *, actor=None):
        task = parse_id(task)
        deps = [parse_id(d, "dependency id") for d in deps]
        actor = self._actor(actor)

        def apply():
            self._exists(task)
            self._gate("link", actor)
            for dep in deps:
                self.db.execute(self.db.sql("delete_dep"), (task, dep))
                if not self.db.changes():
                    raise not_found(f"{task_ref(task)} does not depend on {task_ref(dep)}",
                                    task=task_ref(task), dep=task_ref(dep))
                self._update(task)
                self._event(task, "unlinked", actor, {"depends_on": task_ref(dep)})
            return self._dep_answer(task)
        return self._write(apply)

    def dep_list(self, task):
        task = parse_id(task)

        def fetch():
            self._exists(task)
            return self._dep_answer(task)
        return self._read(fetch)

    # -- reading --------------------------------------------------------------------

    def show(self, task, *, events=20):
        """The task with comments, runs, its last events, waiting_on and claimable_by."""
        task = parse_id(task)
        events = parse_int(events, "--events", minimum=0)  # SQLite's LIMIT takes 64 bits, no more

        def fetch():
            row = self._row(task)
            answer = self._dicts([row])[0]
            answer["comments"] = [
                {"id": c["id"], "actor": c["actor"], "at": clock.iso(c["at"]), "body": c["body"]}
                for c in self.db.rows(self.db.sql("comments_of"), (task,))]
            answer["runs"] = [self._run_dict(r) for r in self.db.rows(self.db.sql("runs_of"), (task,))]
            recent = self.db.rows(self.db.sql("recent_events"), (task, self.now, events))
            answer["events"] = [self._event_dict(r) for r in recent]
            answer["waiting_on"] = self._waiting_on([row])[task]
            answer["claimable_by"] = {"role": row["role_boundary"], "assignee": row["assignee"]}
            answer["reason"] = row["reason"]
            if row["kind"] == "goal":
                answer["progress"] = self._goal_progress([task])[task]
            return answer
        return self._read(fetch)

    def _goal_progress(self, goal_ids):
        progress = {g: {"total": 0, "done": 0, "cancelled": 0} for g in goal_ids}
        for goal_id, status, count in self.db.execute(self.db.sql("goal_progress"), (dumps(goal_ids),)):
            entry = progress[goal_id]
            entry["total"] += count
            if status in ("done", "cancelled"):
                entry[status] += count
        return progress

    def _waiting_on(self, rows):
        """Why each task is not ready, for many tasks in two queries."""
        ids = [r["id"] for r in rows]
        unmet = {}
        for task_id, dep_id, status in self.db.execute(self.db.sql("unmet_deps_of"), (dumps(ids),)):
            entry = {"kind": "dep", "task": task_ref(dep_id), "status": status}
            if status in ("cancelled", "failed"):
                entry["note"] = f"{task_ref(dep_id)} is {status} and will not become done by itself"
            unmet.setdefault(task_id, []).append(entry)
        out, limits = {}, None
        for r in rows:
            reasons = []
            if r["kind"] == "goal":
                reasons.append({"kind": "goal", "note": "a goal is done when all its tasks are done"})
            elif r["status"] != "todo":
                entry = {"kind": "status", "status": r["status"]}
                if r["reason"]:
                    entry["reason"] = r["reason"]
                if r["claimed_by"]:
                    entry["claimed_by"] = r["claimed_by"]
                    entry["lease_until"] = clock.iso(r["lease_until"])
                    # a lease that ran out is still the task's until something reaps it
                    entry["lease_expired"] = r["lease_until"] is not None and r["lease_until"] <= self.now
                    if entry["lease_expired"]:
                        entry["note"] = _expired_note(r, entry["lease_until"])
                reasons.append(entry)
            reasons += unmet.get(r["id"], [])
            if r["not_before"] is not None and r["not_before"] > self.now:
                reasons.append({"kind": "schedule", "until": clock.iso(r["not_before"])})
            if r["kind"] == "task" and r["status"] == "todo":
                if limits is None:
                    limits = self._wip_limits()
                reasons += [_waiting_limit(limit) for limit in self._full_limits_for(r, r["assignee"], limits)]
            out[r["id"]] = reasons
        return out

    def _filters(self, status=None, project=None, assignee=None, goal=None, ready=False, claimed_by=None,
                 kind=None):
        """WHERE terms and parameters for list and search (validated before any read)."""
        where, params = [], {}
        if status is not None:
            raw = status.split(",") if isinstance(status, str) else status
            statuses = [s.strip().lower() for s in raw]  # the seed writes BLOCKED
            for s in statuses:
                if s not in STATUSES:
                    raise invalid(f"bad status {s!r}: one of {', '.join(STATUSES)}")
            where.append(self.db.sql("status_in"))
            params["statuses"] = dumps(statuses)
        if project is not None:
            where.append(self.db.sql("project_is"))
            params["project"] = _name(project, "project")
        if assignee is not None:
            where.append(self.db.sql("assignee_is"))
            params["assignee"] = _name(assignee, "assignee")
        if claimed_by is not None:
            where.append(self.db.sql("claimed_by_is"))
            params["claimed_by"] = claimed_by
        if kind is not None:
            if kind not in ("task", "goal"):
                raise invalid(f"bad kind {kind!r}")
            where.append(self.db.sql("kind_is"))
            params["kind"] = kind
        goal_id = parse_id(goal, "goal id") if goal is not None else None
        if goal_id is not None:
            where.append(self.db.sql("goal_is"))
            params["goal"] = goal_id
        if ready:
            where.append(self.db.sql("ready"))
        return where, params, goal_id

    def list(self, *, status=None, project=None, assignee=None, goal=None, ready=False, limit=None,
             claimed_by=None, kind=None, details=False):
        """Tasks by priority (desc), created_at, id: {"tasks": [...]}."""
        where, params, goal_id = self._filters(status, project, assignee, goal, ready, claimed_by, kind)
        if limit is not None:
            limit = parse_int(limit, "limit", minimum=1)

        def fetch():
            if goal_id is not None:
                self._exists(goal_id)
            rows = self._rows((" WHERE " + " AND ".join(where)) if where else "", params,
                              " ORDER BY t.priority DESC, t.created_at, t.id", limit)
            tasks = self._dicts(rows)
            if details:
                self._add_details(rows, tasks)
            return {"tasks": tasks}
        return self._read(fetch)

    def _add_details(self, rows, tasks):
        """For people (board): waiting_on, reason and goal progress, set-based."""
        waiting = self._waiting_on(rows)
        goals = [r["id"] for r in rows if r["kind"] == "goal"]
        progress = self._goal_progress(goals) if goals else {}
        for r, t in zip(rows, tasks, strict=True):
            t["waiting_on"] = waiting[r["id"]]
            t["reason"] = r["reason"]
            if r["id"] in progress:
                t["progress"] = progress[r["id"]]

    def search(self, query, *, limit=None, status=None, project=None):
        """Full-text search on title and body: {"tasks": [...]} best match first."""
        query = _text(query, "query", required=True, limit=1000)
        terms = query.split()
        match = " ".join('"' + term.replace('"', '""') + '"' for term in terms)
        limit = parse_int(limit, "limit", minimum=1) if limit is not None else None
        where, params, _ = self._filters(status=status, project=project)
        params["match"] = match

        def fetch():
            rows = self._rows(self.db.sql("search_join")
                              + "".join(" AND " + term for term in where),
                              params, " ORDER BY f.rank, t.id", limit)
            return {"tasks": self._dicts(rows)}
        return self._read(fetch)

    # -- editing --------------------------------------------------------------------

    def _add_comment(self, task, actor, message):
        comment_id = self.db.scalar(self.db.sql("insert_comment"), (task, actor, self.now, message))
        self._event(task, "commented", actor, {"comment": comment_id, "message": message})
        return {"id": comment_id, "task": task_ref(task), "actor": actor, "at": clock.iso(self.now),
                "body": message}

    def comment(self, task, message, *, actor=None):
        task = parse_id(task)
        message = _text(message, "message", required=True, limit=100_000)
        actor = self._actor(actor)

        def apply():
            self._exists(task)
            return self._add_comment(task, actor, message)
        return self._write(apply)

    def _set_values(self, fields, clear):
        """Validate `set` arguments into column values (before the transaction)."""
        values = {}
        for name in clear:
            if name not in CLEARABLE:
                raise invalid(f"cannot clear {name!r}: one of {', '.join(CLEARABLE)}")
            values[name] = None
        for name, value in fields.items():
            if value is None:
                continue
            if name not in SETTABLE:
                raise invalid(f"unknown field {name!r}")
            if name in values:
                raise usage(f"{name} is both set and cleared")
            if name == "title":
                value = _text(value, "title", required=True, limit=10_000)
            elif name == "body":
                value = _text(value, "body")
            elif name == "priority":
                value = parse_int(value, "priority")
            elif name in ("project", "assignee", "role"):
                value = _name(value, name)
            elif name == "goal":
                value = parse_id(value, "goal id")
            elif name == "not_before":
                value = clock.parse_time(value, "not_before")
            elif name == "max_attempts":
                value = parse_int(value, "max_attempts", minimum=1)
            elif name == "review":
                if not isinstance(value, bool):  # "false" would otherwise turn review on
                    raise invalid("review must be true or false")
                value = int(value)
            values[name] = value
        return values

    def _apply_set(self, task, values, actor):
        row = self._row(task)
        if "assignee" in values:
            self._gate("assign", actor)
        if "goal" in values:
            self._gate("link", actor)
        if values.get("goal") is not None:
            self._check_goal(values["goal"], task)
        column = {"role": "role_boundary", "goal": "goal_id"}
        changed = {k: v for k, v in values.items() if row[column.get(k, k)] != v}
        if changed:  # a no-op set touches nothing, updated_at included
            self._update(task, **{column.get(k, k): v for k, v in changed.items()})
        shown = {k: (task_ref(v) if k == "goal" else clock.iso(v) if k == "not_before" else
                     bool(v) if k == "review" else v) for k, v in changed.items()}
        if changed:
            self._event(task, "updated", actor, {"fields": shown})
        if "goal" in changed:
            self._sync_goal(row["goal_id"], actor)
            self._sync_goal(values["goal"], actor)
        return self._task(task)

    def set(self, task, *, clear=(), actor=None, **fields):
        """Change fields of a task (event `updated`)."""
        task = parse_id(task)
        actor = self._actor(actor)
        values = self._set_values(fields, clear)
        if not values:
            raise usage("nothing to set: name a field, or --clear FIELD")
        return self._write(lambda: self._apply_set(task, values, actor))

    def set_many(self, ids, *, actor=None, **fields):
        """The same change to many tasks in one transaction: all or nothing."""
        ids = [parse_id(i) for i in ids]
        actor = self._actor(actor)
        values = self._set_values(fields, ())
        return self._write(lambda: [self._apply_set(t, values, actor) for t in ids])

    # -- runs (the team board's unit of execution) -----------------------------------

    @staticmethod
    def _run_dict(r):
        return {"id": r["id"], "task": task_ref(r["task_id"]), "agent": r["agent"],
                "started_at": clock.iso(r["started_at"]), "heartbeat_at": clock.iso(r["heartbeat_at"]),
                "ended_at": clock.iso(r["ended_at"]), "outcome": r["outcome"]}

    def run_start(self, task, *, agent=None, token=None):
        agent = self._agent(agent)
        task = parse_id(task)
        token = parse_token(token)

        def apply():
            row = self._row(task)
            self._check_lease(row, token, agent=agent)
            run_id = self.db.scalar(self.db.sql("insert_run"), (task, agent, token, self.now, self.now))
            self._event(task, "run_started", agent, {"run": run_id})
            return self._run_dict(self.db.row(self.db.sql("run"), (run_id,)))
        return self._write(apply)

    def run_heartbeat(self, task, *, agent=None, token=None):
        """A heartbeat from the member working on `task`: its open run and lease go on."""
        agent = self._agent(agent)
        task = parse_id(task)
        token = parse_token(token)

        def apply():
            row = self._row(task)
            self._gate("heartbeat", agent, row)
            self._check_lease(row, token, agent=agent)
            until = _lease_end(max(row["lease_until"], self.now + row["lease_ms"]))
            self._update(task, lease_until=until)
            self._beat_runs(task)
            self._event(task, "heartbeat", agent, {"token": token, "lease_until": clock.iso(until)})
            return dict(self._task(task), lease_token=token)
        return self._write(apply)

    def _beat_runs(self, task):
        self.db.execute(self.db.sql("beat_runs"), (self.now, task))

    def _close_runs(self, task, outcome, actor):
        for (run_id,) in self.db.execute(self.db.sql("open_runs"), (task,)).fetchall():
            self.db.execute(self.db.sql("end_run"), (self.now, outcome, run_id))
            self._event(task, "run_completed", actor, {"run": run_id, "outcome": outcome})

    def stale_runs(self, stale_ms, *, actor=None):
        """Open runs without a heartbeat for stale_ms: their tasks become blocked."""
        stale_ms = clock.parse_duration(stale_ms, "stale") if not isinstance(stale_ms, int) else stale_ms
        actor = self._actor(actor)

        def apply():
            self._writes(actor)
            out = []
            for r in self.db.rows(self.db.sql("stale_runs"), (self.now - stale_ms,)):
                task = r["task_id"]
                row = self._row(task)
                reason = f"run went stale: no heartbeat for {stale_ms // 1000}s"
                self._close_runs(task, "stale", actor)
                if row["status"] == "in_progress":
                    self._end_lease(task, "blocked", reason=reason)
                    self._event(task, "blocked", actor, {"reason": reason, "from": "in_progress"})
                out.append(self._task(task))
            return {"blocked": out}
        return self._write(apply)

    # -- WIP limits -------------------------------------------------------------------
    #
    # A limit caps how many tasks of a scope (role, project, agent: any of them, or none
    # for the whole column) may be in_progress or in_review at once.  A claim in the
    # scope of a full in_progress limit claims nothing; so does a claim in the scope of
    # a full in_review limit (stop starting, start finishing: the reviews come first);
    # an in_review limit with --agent caps the reviews that agent holds.  Finishing work
    # is never refused: `complete --review` may fill a review column past its limit.

    def _wip_limits(self):
        """Every limit with its current count; [] (one cheap read) on a board without any.
        Inside a write the limit rows are locked (on Postgres): claims under a limit run
        one at a time."""
        if self._writing:
            limits = self.db.rows(self.db.sql("wip_limits_for_update"))
        else:
            limits = self.db.rows(self.db.sql("wip_limits"))
        if not limits:
            return limits
        for limit in limits:
            where, params = self._limit_scope(limit)
            limit["count"] = self.db.scalar(f"SELECT count(*) FROM tasks WHERE {where}", params)
        return limits

    def _limit_scope(self, limit):
        """The WHERE clause that counts the tasks a limit holds."""
        where = [self.db.sql("scope_status"), "kind = 'task'"]
        for key in ("role", "project", "agent"):
            if limit[key] is not None:
                where.append(self.db.sql("scope_" + key))
        return " AND ".join(where), {key: limit[key] for key in ("status", "role", "project", "agent")}

    @staticmethod
    def _limit_dict(limit):
        return {"status": limit["status"], "max": limit["max_count"], "count": limit["count"],
                "full": limit["count"] >= limit["max_count"], "role": limit["role"],
                "project": limit["project"], "agent": limit["agent"],
                "created_at": clock.iso(limit["created_at"]), "updated_at": clock.iso(limit["updated_at"])}

    def _claim_limits(self, agent, limits=None):
        """The full limits that stop claims of new work by `agent` (None: by anyone)."""
        limits = self._wip_limits() if limits is None else limits
        return [self._limit_dict(limit) for limit in limits
                if limit["count"] >= limit["max_count"]
                and (limit["status"] == "in_progress" or limit["agent"] is None)
                and (limit["agent"] is None or limit["agent"] == agent)]

    def _full_limits_for(self, row, agent, limits=None):
        """The full limits a claim of this task (a row) by `agent` would break."""
        return [limit for limit in self._claim_limits(agent, limits)
                if (limit["role"] is None or limit["role"] == row["role_boundary"])
                and (limit["project"] is None or limit["project"] == row["project"])]

    def _full_review_limits(self, agent):
        return [limit for limit in self._wip_limits() if limit["status"] == "in_review"
                and limit["agent"] == agent and limit["count"] >= limit["max_count"]]

    def _pick_within_limits(self, agent, role, project, limits=None):
        """_pick, passing over the scopes whose limit is full (of `limits`, read when None)."""
        full = self._claim_limits(agent, limits)
        if not full:
            return self._pick(agent, role, project)
        if any(limit["role"] is None and limit["project"] is None for limit in full):
            return None
        params = {"agent": agent, "role": role, "project": project, "now": self.now}
        where = []
        for number, limit in enumerate(full):
            terms = []
            for key in ("role", "project"):
                if limit[key] is not None:
                    terms.append(self.db.sql(f"not_{key}_n").format(number))
                    params[f"{key}{number}"] = limit[key]
            where.append(f" AND NOT ({' AND '.join(terms)})")
        sql = (self.db.sql("pick_limited") + (self.db.sql("in_project") if project is not None else "")
               + "".join(where) + self.db.sql("pick_order" if self._writing else "peek_order"))
        return self.db.scalar(sql, params)

    @staticmethod
    def _limit_key(status, role, project, agent):
        if status not in ("in_progress", "in_review"):
            raise invalid(f"bad status {status!r}: WIP limits are on in_progress or in_review")
        role, project, agent = _name(role, "role"), _name(project, "project"), _name(agent, "agent")
        return dumps([status, role, project, agent], compact=True), role, project, agent

    def limit_set(self, status, count, *, role=None, project=None, agent=None, actor=None):
        """Set the WIP limit of a scope: at most `count` of its tasks in `status`.  `agent` is
        the scope; `actor` who sets it (on a team board, a member or an operator)."""
        scope, role, project, agent = self._limit_key(status, role, project, agent)
        count = parse_int(count, "limit", minimum=0)
        actor = self._actor(actor)

        def apply():
            self._writes(actor)
            self.db.execute(
                self.db.sql("set_limit"),
                {"scope": scope, "status": status, "role": role, "project": project, "agent": agent,
                 "max": count, "now": self.now})
            return next(self._limit_dict(limit) for limit in self._wip_limits() if limit["scope"] == scope)
        return self._write(apply)

    def limit_rm(self, status, *, role=None, project=None, agent=None, actor=None):
        """Remove the WIP limit of a scope: the limit as it was."""
        scope, *_ = self._limit_key(status, role, project, agent)
        actor = self._actor(actor)

        def apply():
            self._writes(actor)
            found = [limit for limit in self._wip_limits() if limit["scope"] == scope]
            if not found:
                raise not_found(f"no WIP limit on {_scope_text(status, role, project, agent)}")
            self.db.execute(self.db.sql("delete_limit"), (scope,))
            return self._limit_dict(found[0])
        return self._write(apply)

    def limit_list(self):
        """{"limits": [...]}: every WIP limit with how many tasks it holds now."""
        return self._read(lambda: {"limits": [self._limit_dict(limit) for limit in self._wip_limits()]})

    def column_limits(self):
        """{status: {"max", "count", "full_s"}} for the limits on whole columns (`IN PROGRESS
        3/3`), with the seconds each has been full (a replay of the event log, made only
        when such a limit exists)."""
        def fetch():
            whole = [limit for limit in self._wip_limits()
                     if limit["role"] is None and limit["project"] is None and limit["agent"] is None]
            if not whole:
                return {}
            return {limit["status"]: {"max": limit["max"], "count": limit["count"], "full_s": limit["full_s"]}
                    for limit in self._limits_with_time_full()
                    if limit["role"] is None and limit["project"] is None and limit["agent"] is None}
        return self._read(fetch)

    def _column_where(self, project, goal, role, agent):
        """WHERE terms for a filtered board: project, goal, role boundary, and an agent who
        holds, is assigned or ever held the task."""
        where, params, goal_id = self._filters(project=project, goal=goal, kind="task")
        if role is not None:
            where.append(self.db.sql("role_is"))
            params["role"] = _name(role, "role")
        if agent is not None:
            where.append(self.db.sql("touched_by"))
            params["agent"] = _name(agent, "agent")
        return where, params

    def column_counts(self, *, project=None, goal=None, role=None, agent=None):
        """{status: how many tasks} on a filtered board, in one query."""
        where, params = self._column_where(project, goal, role, agent)
        counts = dict.fromkeys(STATUSES, 0)

        def fetch():
            for status, count in self.db.execute(
                    "SELECT t.status, count(*) FROM tasks t WHERE " + " AND ".join(where) + " GROUP BY t.status",
                    params):
                counts[status] = count
            return counts
        return self._read(fetch)

    def recent(self, status, *, project=None, goal=None, role=None, agent=None, limit=30):
        """The tasks of one status on a filtered board, the latest moved first, with details."""
        where, params = self._column_where(project, goal, role, agent)
        where.append(self.db.sql("status_is"))
        params["status"] = status

        def fetch():
            rows = self._rows(" WHERE " + " AND ".join(where), params, " ORDER BY t.updated_at DESC, t.id DESC",
                              parse_int(limit, "limit", minimum=1))
            tasks = self._dicts(rows)
            self._add_details(rows, tasks)
            return {"tasks": tasks}
        return self._read(fetch)

    def latest_cursor(self):
        """The cursor of the newest event: `event list --since` it answers only what comes next."""
        return self._read(lambda: str(self.db.scalar("SELECT coalesce(max(id), 0) FROM events")))

    def flow_history(self):
        """What the flow charts are drawn from, in one read: the tasks (their role, project,
        goal and times), every state-change event oldest first, and the WIP limits
        (lib/kanban/flow.py computes the series)."""
        return self._read(self._history)

    def _history(self):
        from .flow import STATE_EVENTS

        tasks = self.db.rows(
            "SELECT id, kind, title, status, role_boundary, project, goal_id, created_at, started_at,"
            " finished_at FROM tasks ORDER BY id")
        events = self.db.rows(self.db.sql("events_of_kinds"), (dumps(list(STATE_EVENTS)),))
        limits = [self._limit_dict(limit) | {"since": limit["created_at"]} for limit in self._wip_limits()]
        return {"now": self.now, "tasks": tasks, "events": events, "limits": limits}

    # -- housekeeping ------------------------------------------------------------------

    def stats(self):
        """Counts by status, throughput, and cycle-time percentiles (seconds)."""
        def fetch():
            counts = dict.fromkeys(STATUSES, 0)
            kinds = {"task": 0, "goal": 0}
            for status, kind, count in self.db.execute(
                    "SELECT status, kind, count(*) FROM tasks GROUP BY status, kind"):
                if kind == "task":
                    counts[status] += count
                kinds[kind] += count
            ready = self.db.scalar(self.db.sql("count_ready"), (self.now,))
            expired = self.db.scalar(self.db.sql("count_expired"), (self.now,))
            throughput = {}
            for label, span in (("1h", 3600), ("24h", 86400), ("7d", 7 * 86400)):
                throughput[label] = self.db.scalar(self.db.sql("count_done_since"), (self.now - span * 1000,))
            recent = self.db.rows(
                """SELECT finished_at - started_at AS cycle, finished_at - created_at AS lead FROM tasks
                    WHERE finished_at IS NOT NULL AND status = 'done' AND kind = 'task'
                      AND started_at IS NOT NULL ORDER BY finished_at DESC LIMIT 10000""")
            return {
                "tasks": kinds["task"], "goals": kinds["goal"], "counts": counts, "ready": ready,
                "expired_leases": expired, "done_in": throughput,
                # a clock behind the one that claimed or created (another machine's, KANBAN_NOW
                # moved back) finishes a task "before" it began: no time, not negative time
                "cycle_time_s": _percentiles([max(0, r["cycle"]) / 1000 for r in recent]),
                "lead_time_s": _percentiles([max(0, r["lead"]) / 1000 for r in recent]),
                "sample": len(recent),
                "limits": self._limits_with_time_full(),
            }
        return self._read(fetch)

    def _limits_with_time_full(self):
        """Every WIP limit with its count and the seconds it has been full (from the event log)."""
        if not self._wip_limits():
            return []
        from . import flow

        history = self._history()
        return [{key: value for key, value in limit.items() if key != "since"} | {"full_s": seconds}
                for limit, seconds in zip(history["limits"], flow.time_full(history), strict=True)]

    def prune(self, before="30d", *, vacuum=False, actor=None):
        """Drop expired progress notes and those older than `before`; never state changes."""
        cut_ms = clock.parse_duration(before, "--before")
        cut = [None]  # the cut the transaction made, as the answer says it (not the clock after it)
        actor = self._actor(actor)

        def apply():
            self._writes(actor)  # it deletes other agents' notes: on a team board, the team's to do
            # no note is older than the year 1: a cut before it is that (ISO-8601 prints no earlier year)
            cut[0] = max(self.now - cut_ms, clock.MIN_MS)
            self.db.execute(self.db.sql("prune_progress"), {"now": self.now, "cut": cut[0]})
            return self.db.changes()
        pruned = self._write(apply)
        freed = self.db.vacuum() if vacuum else 0
        return {"pruned": pruned, "before": clock.iso(cut[0]), "vacuumed": bool(vacuum),
                "pages_freed": freed}

    def doctor(self):
        """Integrity, versions, WAL state and findings."""
        def fetch():
            integrity = self.db.integrity()
            findings = []
            mismatched = self.db.scalar(
                """SELECT count(*) FROM tasks t WHERE unmet_deps <> (SELECT count(*) FROM deps d
                     JOIN tasks x ON x.id = d.dep_id WHERE d.task_id = t.id AND x.status <> 'done')""")
            if mismatched:
                findings.append({"level": "error", "message": f"{mismatched} task(s) with a wrong unmet_deps count"})
            orphans = self.db.scalar("SELECT count(*) FROM tasks WHERE status = 'in_progress'"
                                     " AND (claimed_by IS NULL OR lease_until IS NULL)")
            if orphans:
                findings.append({"level": "error", "message": f"{orphans} task(s) in progress without a lease"})
            expired = self.db.scalar(self.db.sql("count_expired"), (self.now,))
            if expired:
                findings.append({"level": "warning",
                                 "message": f"{expired} expired lease(s): the next claim or 'kanban lease reap' "
                                            "returns them to the pool"})
            return {"integrity": integrity, **self.db.describe(), "findings": findings}
        answer = self._read(fetch)
        answer["kanban_version"] = __version__
        answer["findings"] += [{"level": "warning", "message": message} for message in self.db.warnings()]
        folder = hooks.hooks_dir(self.path)
        if folder and os.path.isdir(folder):
            problem = hooks._unsafe(folder, os.stat(folder))
            if problem:
                answer["findings"].append({"level": "warning", "message": f"hooks refused: {problem}"})
        elif folder and os.environ.get("KANBAN_HOOKS_DIR"):  # named, and not there: nothing runs, pre-complete neither
            answer["findings"].append({"level": "warning", "message": (
                f"KANBAN_HOOKS_DIR names {folder}, which is not a folder: no hook runs, not even pre-complete")})
        answer["ok"] = answer["integrity"] == ["ok"] and not any(f["level"] == "error" for f in answer["findings"])
        return answer

    def display(self):
        """The board's location for people: its path, or its URL without the password."""
        return self.db.display()

    def backup(self, dest):
        """A consistent copy while agents run, as a SQLite board file (either backend)."""
        return self.db.backup(_text(dest, "backup file", required=True, limit=4096))

    def export_lines(self):
        """The whole board as JSON Lines (lib/kanban/transfer.py), from one snapshot."""
        from . import transfer

        return self._read(lambda: transfer.export_lines(self.db))

    def import_lines(self, lines):
        """Load an export into this empty board in one transaction: what was placed."""
        from . import transfer

        parsed = transfer.parse(lines)
        answer = self._write(lambda: transfer.load(self.db, *parsed))
        return {"db": self.db.display(), **answer}

    # -- access tokens (kanban mcp --http, the web board) ------------------------------------
    # A token is "kbt_<id>_<secret>": the id finds the row, the secret's SHA-256 is compared
    # in constant time with the stored hash.  The secret itself is shown once, by token_add,
    # and is never stored or logged.

    TOKEN_PREFIX = "kbt_"

    def _token_gate(self, actor):
        """On a team board only its operators manage tokens (a token acts as its agent)."""
        team = self._team()
        if not team:
            return
        self._check_writer(team, actor)
        if actor in team.get("members", {}):
            raise KanbanError("forbidden", f"only an operator of team {team.get('name')} manages access tokens "
                              f"(add {actor} under `operators:` in {team.get('manifest') or 'the team manifest'})",
                              agent=actor, key="operators")

    @staticmethod
    def _token_dict(r):
        return {"id": r["id"], "agent": r["agent"], "created_at": clock.iso(r["created_at"]),
                "created_by": r["created_by"], "revoked_at": clock.iso(r["revoked_at"]) if r["revoked_at"] else None,
                "active": r["revoked_at"] is None}

    def token_add(self, agent, *, actor=None):
        """A new bearer token for `agent`: {"id", "agent", "token", ...}; the token is shown only here."""
        import hashlib
        import secrets

        agent = self._agent(agent)
        actor = self._actor(actor)
        secret = secrets.token_urlsafe(32)

        def apply():
            self._token_gate(actor)
            # the next id from the table itself, so a board loaded by `kanban import` goes on from its rows
            token_id = self.db.scalar("SELECT coalesce(max(id), 0) + 1 FROM access_tokens")
            self.db.execute(
                self.db.sql("insert_access_token"),
                (token_id, agent, hashlib.sha256(secret.encode("ascii")).hexdigest(), self.now, str(actor)))
            row = self.db.rows(self.db.sql("access_token"), (token_id,))[0]
            return dict(self._token_dict(row), token=f"{self.TOKEN_PREFIX}{token_id}_{secret}")
        return self._write(apply)

    def token_list(self):
        """Every token (never a secret): {"tokens": [...]}."""
        def fetch():
            rows = self.db.rows("SELECT * FROM access_tokens ORDER BY id")
            return {"tokens": [self._token_dict(r) for r in rows]}
        return self._read(fetch)

    def token_revoke(self, token_id, *, actor=None):
        """Revoke a token by its id, or by the token itself (revoking twice is the same as
        once); given an agent's name, every active token of that agent: {"tokens": [...]}."""
        text = str(token_id if token_id is not None else "").strip()
        if text.startswith(self.TOKEN_PREFIX):  # the secret itself, as `token add` printed it
            number = text[len(self.TOKEN_PREFIX):].partition("_")[0]
            if self._token_row(text) is None:  # (a revoked one too: revoking twice is once)
                raise not_found("no such access token (see 'kanban mcp token list')")
            token_id = number
        elif text and not text.isdigit() and not text.lstrip("+-").isdigit():
            return self._token_revoke_agent(_name(text, "agent"), self._actor(actor))
        token_id = parse_int(token_id, "token id", minimum=1)
        actor = self._actor(actor)

        def apply():
            self._token_gate(actor)
            rows = self.db.rows(self.db.sql("access_token"), (token_id,))
            if not rows:
                raise not_found(f"no access token {token_id} (see 'kanban mcp token list')", token=token_id)
            if rows[0]["revoked_at"] is None:
                self.db.execute(self.db.sql("revoke_access_token"), (self.now, token_id))
            return self._token_dict(self.db.rows(self.db.sql("access_token"), (token_id,))[0])
        return self._write(apply)

    def _token_revoke_agent(self, agent, actor):
        def apply():
            self._token_gate(actor)
            mine = [r for r in self.db.rows("SELECT * FROM access_tokens ORDER BY id") if r["agent"] == agent]
            if not mine:
                raise not_found(f"no access token for agent {agent} (see 'kanban mcp token list')", agent=agent)
            for row in mine:
                if row["revoked_at"] is None:
                    self.db.execute(self.db.sql("revoke_access_token"), (self.now, row["id"]))
            return {"tokens": [self._token_dict(self.db.rows(self.db.sql("access_token"), (r["id"],))[0])
                               for r in mine]}
        return self._write(apply)

    def token_check(self, token):
        """The agent a bearer token acts as, or None (malformed, unknown, revoked)."""
        row = self._token_row(token)
        if row is None or row["revoked_at"] is not None:
            return None
        return row["agent"]

    def _token_row(self, token):
        """The access_tokens row whose secret `token` holds (revoked or not), or None
        (malformed, unknown, a wrong secret)."""
        import hashlib
        import hmac

        text = str(token or "")
        body = text[len(self.TOKEN_PREFIX):] if text.startswith(self.TOKEN_PREFIX) else ""
        number, _, secret = body.partition("_")
        given = hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()
        row = None
        if number.isascii() and number.isdigit() and len(number) < 19 and secret:
            found = self._read(lambda: self.db.rows(self.db.sql("access_token_hash"), (int(number),)))
            row = found[0] if found else None
        stored = row["hash"] if row is not None else "0" * 64
        matches = hmac.compare_digest(given, stored)  # constant time, whatever matched before
        return row if row is not None and matches else None

    # -- who is calling -------------------------------------------------------------------

    @staticmethod
    def _agent(agent):
        if not agent:
            raise usage("no agent: pass --agent or set KANBAN_AGENT")
        return _name(agent, "agent")

    @staticmethod
    def _actor(actor):
        if actor:
            return _name(actor, "agent")
        return _LoginName(login_name())


class _LoginName(str):
    """The login name standing in for an agent nobody named: recorded on events, but an
    outsider to a team board's gate, whatever the name is."""


def _expired_note(row, until):
    """What a lease that ran out at `until` (not yet reaped) comes to: what the next claim,
    or `kanban lease reap`, does with the task (Board._reap)."""
    head = f"the lease of {row['claimed_by']} ran out at {until}: the next claim or 'kanban lease reap' "
    if row["status"] != "in_progress":
        return head + "ends this review claim and leaves the task in review for another reviewer"
    attempts = row["attempts"] + 1
    if row["max_attempts"] is not None and attempts >= row["max_attempts"]:
        return head + f"fails the task (attempt {attempts} of max_attempts {row['max_attempts']})"
    return head + f"puts the task back to todo for another agent (attempts then {attempts})"


def _waiting_limit(limit):
    """A full limit as a waiting_on reason."""
    return {"kind": "wip_limit", "status": limit["status"], "max": limit["max"], "count": limit["count"],
            "role": limit["role"], "project": limit["project"], "agent": limit["agent"]}


def _scope_text(status, role=None, project=None, agent=None):
    """'in_progress', or 'in_progress (role r, project p, agent a)': a limit's scope for people."""
    parts = [f"{key} {value}" for key, value in (("role", role), ("project", project), ("agent", agent)) if value]
    return status + (f" ({', '.join(parts)})" if parts else "")


def login_name():
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database in some containers
        return f"uid-{os.getuid()}"


def _percentiles(values):
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)

    def pick(q):
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)
    return {"p50": pick(0.50), "p90": pick(0.90), "p99": pick(0.99), "max": round(ordered[-1], 3)}


def init(path=None, harness=()):
    """Create (or open) the board: {"db", "schema_version", "created"}."""
    with Board(path, create=True) as board:
        return {"db": board.db.display(), "schema_version": board.db.version, "created": board.db.created}
