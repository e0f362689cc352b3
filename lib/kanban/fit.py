"""What must fit together in an export before `kanban import` places it (transfer.load).

transfer.parse checks each record on its own (a JSON object, a time that can be printed);
here the rows are checked against each other and against what board.py ever writes, so
that an import never leaves a board in a state no sequence of kanban commands could have
produced.  The first row that does not fit is refused, `invalid` (`cycle` for a cycle), in one sentence that
names its line, its task and the fields (the error's `task` and `fields` keys too); the
board is not touched.  The rules (man/man1/kanban-import.1 lists them for people):

- a task's id is a whole number from 1, once; kind is task or goal; status one of the
  seven; the whole-number columns hold whole numbers (attempts, unmet_deps from 0;
  lease_token, lease_ms, max_attempts from 1; review 0 or 1), the text columns text;
  title, kind, status, created_at, updated_at are set; an idempotency_key is one task's;
- a lease is claimed_by, lease_until, lease_token and lease_ms together (a claim sets the
  four, and whatever ends the lease clears the four: Board._end_lease, _reap, release);
- only a task in_progress or in_review holds one; in_progress always does, and has a
  started_at (the claim's `started_at = coalesce(started_at, now)`);
- no lease_token is past the export's lease_token counter (the next claim's token is
  the counter's next value: it would be one already given out); nor the token of a
  `claimed` event or a run;
- a goal is never claimed: it is todo, blocked, done or cancelled;
- finished_at is set exactly when the task is done, failed or cancelled (every way
  there sets it; every way out - reopen, move, a goal's roll-up, a lease expiry back
  to todo - clears it);
- a blocked task has a reason (block and move need one; unblock clears it);
- goal_id names a goal of the export, not the task itself;
- deps name two tasks of the export, not the same one, once; unmet_deps is the number of
  a task's deps that are not done (what the board's triggers keep, and doctor checks);
  deps and goals form no cycle (a task waits on its deps, a goal on its tasks: what
  `dep add`, `create` and `set --goal` refuse as `cycle`);
- comments, runs, holders and events name a task of the export (an event may name
  none); an event's data is a JSON object;
- each id counter (tasks, events, comments, runs) is at least its table's highest id.

Left out on purpose: a goal's status against its tasks (done only while all of them are
done or cancelled).  Releases before goals rolled up through goals inside goals
(b9dd044) left a goal todo with all its tasks closed, or done above a goal reopened; such
a board, migrated, exports that state, and it breaks nothing: the next change to one of
its tasks settles the goal.
"""
import json

from .board import CLOSED, STATUSES
from .board import task_ref as ref
from .errors import KanbanError

HOLDS = ("in_progress", "in_review")
LEASE = ("claimed_by", "lease_until", "lease_token", "lease_ms")
INTEGERS = ("id", "priority", "review", "goal_id", "lease_until", "lease_token", "lease_ms", "attempts",
            "max_attempts", "not_before", "unmet_deps", "started_at", "finished_at", "created_at", "updated_at")
TEXTS = ("kind", "title", "body", "status", "project", "role_boundary", "assignee", "claimed_by",
         "idempotency_key", "reason")
# NOT NULL without a default: the row must carry them; with a default: not as null
REQUIRED = ("id", "kind", "title", "status", "created_at", "updated_at")
NOT_NULL = REQUIRED + ("priority", "review", "attempts", "unmet_deps")
LEAST = {"id": 1, "goal_id": 1, "lease_token": 1, "lease_ms": 1, "max_attempts": 1, "attempts": 0,
         "unmet_deps": 0, "review": 0}
ID_COUNTERS = ("tasks", "events", "comments", "runs")
# the other tables whose rows belong to a task: (table, column)
TASK_OF = (("comments", "task_id"), ("runs", "task_id"), ("holders", "task_id"), ("events", "task_id"))


def _words(names, last="and"):
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" {last} " + names[-1]


def _shown(value):
    return json.dumps(value, ensure_ascii=False)[:40]


class Misfit:
    """Makes the error for a row: its line (from transfer.parse's `where`, keyed by the
    row object's id) and the task."""

    def __init__(self, where):
        self.where = where

    def __call__(self, row, message, task=None, fields=(), code="invalid"):
        number = self.where.get(id(row)) if row is not None else None
        head = f"line {number} of the export: " if number else "the export: "
        return KanbanError(code, head + message, task=None if task is None else ref(task),
                           fields=list(fields) or None)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _columns(row, bad):
    """A task row's own values: types, ranges, the set columns, kind and status."""
    task_id = row.get("id")
    if not _is_int(task_id) or task_id < 1:
        raise bad(row, f"a tasks row has id {_shown(task_id)}: a task's id is a whole number from 1", fields=["id"])
    name = ref(task_id)
    for column in NOT_NULL:
        if (column in REQUIRED or column in row) and row.get(column) is None:
            raise bad(row, f"{name} has no {column}", task_id, [column])
    for column in INTEGERS:
        value = row.get(column)
        if value is None:
            continue
        if not _is_int(value):
            raise bad(row, f"{name} has {column} {_shown(value)}, not a whole number", task_id, [column])
        if value < LEAST.get(column, value) or (column == "review" and value > 1):
            least = "0 or 1" if column == "review" else f"a whole number from {LEAST[column]}"
            raise bad(row, f"{name} has {column} {value}: it must be {least}", task_id, [column])
    for column in TEXTS:
        value = row.get(column)
        if value is not None and not isinstance(value, str):
            raise bad(row, f"{name} has {column} {_shown(value)}, not text", task_id, [column])
    if not row["title"].strip():
        raise bad(row, f"{name} has an empty title", task_id, ["title"])
    if row["kind"] not in ("task", "goal"):
        raise bad(row, f"{name} has kind {_shown(row['kind'])}: a task's kind is task or goal", task_id, ["kind"])
    if row["status"] not in STATUSES:
        raise bad(row, f"{name} has status {_shown(row['status'])}, not one of {_words(STATUSES, 'or')}",
                  task_id, ["status"])


def _lease(row, bad, token_counter):
    """The lease fields, against each other, the status and the token counter."""
    task_id, status = row["id"], row["status"]
    name = ref(task_id)
    held = [column for column in LEASE if row.get(column) is not None]
    if row["kind"] == "goal" and status not in ("todo", "blocked", "done", "cancelled"):
        raise bad(row, f"{name} is a goal but its status is {status}: a goal is never claimed, so it is todo,"
                       " blocked, done or cancelled", task_id, ["kind", "status"])
    if held and len(held) < len(LEASE):
        missing = [column for column in LEASE if column not in held]
        raise bad(row, f"{name} has {_words(held)} but no {_words(missing, 'or')}: a claim sets all four of"
                       " claimed_by, lease_until, lease_token and lease_ms, and whatever ends the lease clears"
                       " all four", task_id, LEASE)
    if held and status not in HOLDS:
        raise bad(row, f"{name} is {status} but held by {row['claimed_by']} (claimed_by, lease_until, lease_token,"
                       " lease_ms): only a task in_progress or in_review holds a lease", task_id,
                  ("status",) + LEASE)
    if status == "in_progress" and not held:
        raise bad(row, f"{name} is in_progress with no holder (claimed_by, lease_until, lease_token and lease_ms"
                       " are unset): a task is in progress only under a claim's lease", task_id,
                  ("status",) + LEASE)
    if status == "in_progress" and row.get("started_at") is None:
        raise bad(row, f"{name} is in_progress but has no started_at, which its claim sets", task_id,
                  ["status", "started_at"])
    if held and row["lease_token"] > token_counter:
        raise bad(row, f"{name} holds lease_token {row['lease_token']}, past the export's lease_token counter"
                       f" ({token_counter}): the next claim would be given a token already given out", task_id,
                  ["lease_token"])


def _state(row, bad, tasks):
    """finished_at and reason against the status; the goal the task belongs to."""
    task_id, status = row["id"], row["status"]
    name = ref(task_id)
    if status in CLOSED and row.get("finished_at") is None:
        raise bad(row, f"{name} is {status} but has no finished_at, which the board sets whenever a task becomes"
                       " done, failed or cancelled", task_id, ["status", "finished_at"])
    if status not in CLOSED and row.get("finished_at") is not None:
        raise bad(row, f"{name} is {status} but has a finished_at: only a done, failed or cancelled task has one,"
                       " and reopening a task clears it", task_id, ["status", "finished_at"])
    if status == "blocked" and not row.get("reason"):
        raise bad(row, f"{name} is blocked but has no reason, which blocking a task records", task_id,
                  ["status", "reason"])
    goal_id = row.get("goal_id")
    if goal_id is None:
        return
    if goal_id == task_id:
        raise bad(row, f"{name} is its own goal (goal_id)", task_id, ["goal_id"])
    goal = tasks.get(goal_id)
    if goal is None:
        raise bad(row, f"{name} belongs to goal {ref(goal_id)} (goal_id), which is not in the export", task_id,
                  ["goal_id"])
    if goal["kind"] != "goal":
        raise bad(row, f"{name} belongs to {ref(goal_id)} (goal_id), which is a task, not a goal", task_id,
                  ["goal_id"])


def _deps(rows, bad, tasks):
    """{task id: [dep ids]} from the deps rows, each naming two tasks of the export."""
    found = {}
    for row in rows:
        task_id, dep_id = row.get("task_id"), row.get("dep_id")
        for column, value in (("task_id", task_id), ("dep_id", dep_id)):
            if not _is_int(value) or value < 1:
                raise bad(row, f"a deps row has {column} {_shown(value)}: a task's id is a whole number from 1",
                          fields=[column])
        if task_id not in tasks:
            raise bad(row, f"{ref(task_id)} depends on {ref(dep_id)}, but {ref(task_id)} is not in the export",
                      task_id, ["task_id"])
        if dep_id not in tasks:
            raise bad(row, f"{ref(task_id)} depends on {ref(dep_id)}, which is not in the export", task_id,
                      ["dep_id"])
        if dep_id == task_id:
            raise bad(row, f"{ref(task_id)} depends on itself", task_id, ["task_id", "dep_id"])
        deps = found.setdefault(task_id, [])
        if dep_id in deps:
            raise bad(row, f"{ref(task_id)} depends on {ref(dep_id)} twice", task_id, ["task_id", "dep_id"])
        deps.append(dep_id)
    return found


def _unmet(row, bad, tasks, deps):
    task_id = row["id"]
    waiting = [dep for dep in sorted(deps.get(task_id, ())) if tasks[dep]["status"] != "done"]
    count = row.get("unmet_deps", 0)
    if count == len(waiting):
        return
    if waiting:
        why = (f"{len(waiting)} of its dependencies ({_words(ref(dep) for dep in waiting)})"
               f" {'is' if len(waiting) == 1 else 'are'} not done")
    elif deps.get(task_id):
        why = "every one of its dependencies is done"
    else:
        why = "it has no dependencies"
    raise bad(row, f"{ref(task_id)} has unmet_deps {count}, but {why}: unmet_deps counts the dependencies that"
                   " are not done", task_id, ["unmet_deps"])


def _cycle(tasks, deps, bad):
    """A task waits on its deps, a goal on its tasks: no task may wait on itself."""
    edges = {task_id: [(dep, "depends on") for dep in sorted(deps.get(task_id, ()))] for task_id in tasks}
    for task_id in sorted(tasks):
        goal_id = tasks[task_id].get("goal_id")
        if goal_id is not None:
            edges[goal_id].append((task_id, "is the goal of"))
    state = {}  # task id -> 1 on the path, 2 done
    for start in sorted(tasks):
        if state.get(start):
            continue
        stack = [(start, None, iter(edges[start]))]
        state[start] = 1
        while stack:
            node, how, children = stack[-1]
            step = next(children, None)
            if step is None:
                state[node] = 2
                stack.pop()
                continue
            child, label = step
            if state.get(child) == 1:  # back on the path: a cycle from child to node, then to child
                on = [item[0] for item in stack]
                ring = stack[on.index(child):]
                links = [(a[0], b[1], b[0]) for a, b in zip(ring, ring[1:], strict=False)] + [(node, label, child)]
                text = ", ".join(f"{ref(a)} {word} {ref(b)}" for a, word, b in links)
                row = tasks[child]
                raise bad(row, f"{ref(child)} waits on itself ({text}): dependencies and goals may not form a cycle",
                          child, ["depends_on" if label == "depends on" else "goal_id"], code="cycle")
            if not state.get(child):
                state[child] = 1
                stack.append((child, label, iter(edges[child])))


def _belongs(tables, bad, tasks):
    """Rows of other tables name a task of the export (an event may name none)."""
    for table, column in TASK_OF:
        for row in tables.get(table, ()):
            task_id = row.get(column)
            if task_id is None and table == "events":
                continue
            if task_id not in tasks:
                what = {"comments": "a comment", "runs": f"run {row.get('id')}",
                        "holders": f"a holder ({_shown(row.get('agent'))})"}.get(table, f"event {row.get('id')}")
                named = ref(task_id) if _is_int(task_id) else _shown(task_id)
                raise bad(row, f"{what} belongs to {named} ({table}.{column}), which is not in the export",
                          task_id if _is_int(task_id) else None, [column])


def _of(row):
    """' of TASK-n' for a row of another table that names its task, else ''."""
    return f" of {ref(row['task_id'])}" if _is_int(row.get("task_id")) else ""


def _events(rows, bad, token_counter):
    for row in rows:
        data = row.get("data")
        if data is None:
            continue
        try:
            value = json.loads(data) if isinstance(data, str) else None
        except (ValueError, RecursionError):
            value = None
        if not isinstance(value, dict):
            raise bad(row, f"event {row.get('id')}{_of(row)} has data {_shown(data)}, not a JSON object",
                      row.get("task_id"), ["data"])
        token = value.get("token")
        if row.get("kind") == "claimed" and _is_int(token) and token > token_counter:
            raise bad(row, f"event {row.get('id')}{_of(row)} gave out lease token {token}, past the export's"
                           f" lease_token counter ({token_counter}): the next claim would be given a token already"
                           " given out",
                      row.get("task_id"), ["data"])


def _counters(tables, counters, bad, token_counter):
    for row in tables.get("runs", ()):
        token = row.get("lease_token")
        if _is_int(token) and token > token_counter:
            raise bad(row, f"run {row.get('id')}{_of(row)} ran under lease token {token}, past the export's"
                           f" lease_token counter ({token_counter})", row.get("task_id"), ["lease_token"])
    for table in ID_COUNTERS:
        ids = [row.get("id") for row in tables.get(table, ()) if _is_int(row.get("id"))]
        if ids and max(ids) > counters.get(table, 0):
            raise bad(None, f"the {table} counter ({counters.get(table, 0)}) is behind the highest {table} id"
                            f" ({max(ids)}): the next new row would be given an id already taken", fields=[table])


def check(tables, counters, where):
    """Refuse (`invalid`, or `cycle`) an export whose rows do not fit together: the rules above.
    `tables`, `counters` as transfer.parse reads them; `where`: id(row) -> its line."""
    bad = Misfit(where)
    tasks, keys = {}, {}
    for row in tables.get("tasks", ()):
        _columns(row, bad)
        task_id = row["id"]
        if task_id in tasks:
            raise bad(row, f"{ref(task_id)} is in the export twice (line {where.get(id(tasks[task_id]))} too)",
                      task_id, ["id"])
        tasks[task_id] = row
        key = row.get("idempotency_key")
        if key is not None:
            if key in keys:
                raise bad(row, f"{ref(task_id)} has the idempotency_key of {ref(keys[key])}, {_shown(key)}: a key"
                               " is one task's", task_id, ["idempotency_key"])
            keys[key] = task_id
    token_counter = counters.get("lease_token", 0)
    deps = _deps(tables.get("deps", ()), bad, tasks)
    for task_id in sorted(tasks):
        _lease(tasks[task_id], bad, token_counter)
        _state(tasks[task_id], bad, tasks)
    _cycle(tasks, deps, bad)
    for task_id in sorted(tasks):
        _unmet(tasks[task_id], bad, tasks, deps)
    _belongs(tables, bad, tasks)
    _events(tables.get("events", ()), bad, token_counter)
    _counters(tables, counters, bad, token_counter)
