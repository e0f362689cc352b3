"""Every statement the board runs with parameters, written out in both dialects under
one name, exactly as each backend runs it: SQLite's with `?`/`:name` placeholders,
PostgreSQL's with psycopg's `%s`/`%(name)s` (a literal % is written %% there).
board.py asks for one by name, `db.sql(name)`, and runs it; no backend rewrites SQL.

What else board.py sends is a statement without parameters whose text reads the same
in both dialects (`SELECT DISTINCT project FROM tasks ...`).  Statements composed at
run time (list and search filters, the SET list of an update, a WIP limit's scope)
are joined from FRAGMENTS, each written in both dialects, and from such text.

Locking.  SQLite runs one writer at a time; PostgreSQL's writers run concurrently at
READ COMMITTED, so a read inside a write that the write acts on takes the row's lock,
written into the PostgreSQL text (FOR UPDATE; SKIP LOCKED where claimers pass over
each other's rows).  A read-only transaction cannot lock: where one read serves both,
the locking form has its own name (`task_for_update` beside `task`).
"""

# The task_events view's query (migration 4, made again by later migrations): every
# event, and each task status change as a status_changed event {from, to, event}.  The
# dialects differ in three expressions only: `to` (an event's data.to), `review` (is it
# a claim for review) and `data` (the status change's data, with its trailing
# expires_at).  task_events() fills them in; each migration's SQL is the text it shipped
_TASK_EVENTS = """    WITH steps AS (
        SELECT id, task_id, kind, actor, at, expires_at,
               CASE
                 WHEN {to} IS NOT NULL THEN {to}
                 WHEN kind = 'created' THEN 'todo'
                 WHEN kind IN ('claimed', 'released', 'lease_expired')
                      AND {review} THEN NULL
                 WHEN kind = 'claimed' THEN 'in_progress'
                 WHEN kind = 'lease_expired' AND lead(kind) OVER w = 'failed' THEN NULL
                 WHEN kind IN ('released', 'lease_expired', 'rejected', 'unblocked', 'reopened') THEN 'todo'
                 WHEN kind IN ('completed', 'approved') THEN 'done'
                 WHEN kind = 'submitted_for_review' THEN 'in_review'
                 WHEN kind IN ('blocked', 'cancelled', 'failed') THEN kind
               END AS status
          FROM events
        WINDOW w AS (PARTITION BY task_id ORDER BY id)
    ),
    changes AS (
        SELECT id, task_id, kind, actor, at, expires_at, status,
               lag(status) OVER (PARTITION BY task_id ORDER BY id) AS previous
          FROM steps WHERE status IS NOT NULL
    )
    SELECT id, task_id, kind, actor, at, data, expires_at FROM events
    UNION ALL
    SELECT id, task_id, 'status_changed', actor, at,
{data}      FROM changes
     WHERE kind NOT IN ('created', 'status_changed') AND previous IS NOT NULL AND previous <> status;
"""


def task_events(to, review, data):
    """The task_events view's query in one dialect (see _TASK_EVENTS)."""
    return _TASK_EVENTS.format(to=to, review=review, data=data)


# the columns a task answer is made from, in the order board.py's _task_dict unpacks them;
# `ready` is computed by the database itself
TASK_COLUMNS = ("id", "kind", "title", "body", "status", "priority", "project", "role_boundary",
                "assignee", "goal_id", "review", "claimed_by", "lease_until", "lease_token",
                "lease_ms", "attempts", "max_attempts", "not_before", "idempotency_key", "reason",
                "unmet_deps", "created_at", "updated_at")
_TASK_FIELDS = (", ".join("t." + name for name in TASK_COLUMNS) + ","
                " (t.status = 'todo' AND t.kind = 'task' AND t.unmet_deps = 0"
                " AND (t.not_before IS NULL OR t.not_before <= {now})) AS ready")
TASK_SELECT = {"sqlite": "SELECT " + _TASK_FIELDS.format(now=":now") + " FROM tasks t",
               "postgres": "SELECT " + _TASK_FIELDS.format(now="%(now)s") + " FROM tasks t"}
# a write's look at the task it changes, with what the write asks next in the same
# statement: the board's team (the role gate) and whether the task has open runs
_FOR_WRITE = (", (SELECT value FROM meta WHERE key = 'team') AS team,"
              " EXISTS (SELECT 1 FROM runs r WHERE r.task_id = t.id AND r.ended_at IS NULL) AS open_runs"
              " FROM tasks t WHERE t.id = ")
# SQLite brings a task's deps along in the row that reads it, as one column ("3,7" or
# NULL): no second statement
_SQLITE_DEPS = ", (SELECT group_concat(dep_id) FROM deps WHERE deps.task_id = {table}.id) AS deps"
# a write that answers with the task as it left it (UPDATE ... RETURNING): no re-read
_TASK_RETURNING = " RETURNING " + ", ".join(TASK_COLUMNS)

# The claim's pick.  SQLite, for the common case: the best task open to every agent (no
# role, no assignee: one seek on tasks_claim, as cheap as a bare claim script's), and
# whether any task is assigned to the agent or bound to a role at all; only when there
# is (the second column is not 0) does board.py look at those classes too
# (`pick_classes`).  PostgreSQL: the best task this agent may take in one statement,
# passing over the rows other claimers hold, and 0: nothing more to look at.
_SQLITE_READY = ("status = 'todo' AND kind = 'task' AND unmet_deps = 0"
                 " AND (not_before IS NULL OR not_before <= :now)")


def _sqlite_pick(project, role):
    """(the best task open to every agent, whether the other classes hold tasks)."""
    return (f"(SELECT id FROM tasks INDEXED BY tasks_claim WHERE {_SQLITE_READY}"
            " AND role_boundary IS NULL AND assignee IS NULL" + (" AND project = +:project" if project else "")
            + " ORDER BY priority DESC, created_at, id LIMIT 1)",
            "EXISTS (SELECT 1 FROM tasks INDEXED BY tasks_claim WHERE status = 'todo' AND kind = 'task'"
            " AND unmet_deps = 0 AND role_boundary IS NULL AND assignee = :agent)"
            + (" + EXISTS (SELECT 1 FROM tasks INDEXED BY tasks_claim WHERE status = 'todo'"
               " AND kind = 'task' AND unmet_deps = 0 AND role_boundary = :role)" if role else ""))


def _postgres_pick(project, lock):
    return f"""SELECT (SELECT id FROM tasks
                WHERE status = 'todo' AND kind = 'task' AND unmet_deps = 0
                  AND (role_boundary IS NULL OR role_boundary = %(role)s)
                  AND (assignee IS NULL OR assignee = %(agent)s)
                  AND (not_before IS NULL OR not_before <= %(now)s)
                  {"AND project = %(project)s" if project else ""}
                ORDER BY priority DESC, created_at, id LIMIT 1{" FOR UPDATE SKIP LOCKED" if lock else ""}), 0"""


# What a claim asks before its pick, in one statement: the board's team (the role gate),
# whether a lease has run out (reaped first) and whether any WIP limit exists.  On SQLite
# the same statement makes the common pick as well: whether the other classes hold tasks
# (the fourth column), the claim's fencing token (_SQLITE_TOKEN), then the picked task's
# row (TASK_COLUMNS and its deps; NULLs when nothing is ready), which the claim's answer is
# made from.  PostgreSQL's fourth column is 1: the pick is still to make (its own
# statement, which locks the row it picks); its fifth is NULL: the token is drawn from the
# sequence (`next_token`) when the claim is made.
_CLAIM_PROBE = ("SELECT (SELECT value FROM meta WHERE key = 'team'),"
                " EXISTS (SELECT 1 FROM tasks WHERE lease_until IS NOT NULL AND lease_until <= {now}),"
                " EXISTS (SELECT 1 FROM wip_limits)")

# SQLite's next fencing token, read inside the write (one writer at a time): the last event
# id, plus one, plus the board's offset (meta's 'lease_token', set by the schema 9 migration
# and by an import so that tokens go on past every one given out before).  Every claim writes
# its `claimed` event after it draws its token, the event with the highest id is never
# deleted (`prune_progress`), and so the next draw is always larger: a board-wide increasing
# counter that costs no write of its own.  PostgreSQL draws from a sequence (`next_token`).
_SQLITE_TOKEN = ("(SELECT coalesce(max(id), 0) FROM events)"
                 " + (SELECT value FROM meta WHERE key = 'lease_token') + 1")


def _sqlite_probe(project, role):
    pick, others = _sqlite_pick(project, role)
    return (_CLAIM_PROBE.format(now=":now") + f", {others}, {_SQLITE_TOKEN}, "
            + ", ".join("t." + name for name in TASK_COLUMNS)
            + _SQLITE_DEPS.format(table="t") + f" FROM (SELECT {pick} AS picked) AS p LEFT JOIN tasks t"
            " ON t.id = p.picked")


def _picks():
    """pick[_project][_role] (inside a claim's write), peek... (the same, read-only) and
    claim_probe... (the probe, with SQLite's common pick)."""
    found = {}
    for project in (False, True):
        for role in (False, True):
            suffix = ("_project" if project else "") + ("_role" if role else "")
            found["pick" + suffix] = {"sqlite": "SELECT " + ", ".join(_sqlite_pick(project, role)),
                                      "postgres": _postgres_pick(project, lock=True)}
            found["peek" + suffix] = {"sqlite": "SELECT " + ", ".join(_sqlite_pick(project, role)),
                                      "postgres": _postgres_pick(project, lock=False)}
            found["claim_probe" + suffix] = {"sqlite": _sqlite_probe(project, role),
                                             "postgres": _CLAIM_PROBE.format(now="%(now)s") + ", 1, NULL"}
    return found


# The set claim (Board._claim_set: many claims in one pass).  Its probe: the board's team,
# whether a lease has run out, whether any WIP limit exists, and whether a ready task is
# assigned to one of the claiming agents (:agents, a JSON array) or bound to the claim's
# role; any of these sends the claims one by one through the full pick; and on SQLite the
# first of the set's fencing tokens (_SQLITE_TOKEN: the set's n claims take it and the n-1
# after it, and write their n `claimed` events; NULL on PostgreSQL, which draws them with
# `next_tokens`).  Its pick: the
# best :n ready tasks open to every agent, in claim order, each row with its deps ("3,7"
# or NULL) for the answer; PostgreSQL's locks them, passing over other claimers' rows.
_READY_CLASS = ("status = 'todo' AND kind = 'task' AND unmet_deps = 0 AND {}")
_SET_PROBE = ("SELECT (SELECT value FROM meta WHERE key = 'team'),"
              " EXISTS (SELECT 1 FROM tasks WHERE lease_until IS NOT NULL AND lease_until <= {now}),"
              " EXISTS (SELECT 1 FROM wip_limits),"
              " EXISTS (SELECT 1 FROM tasks{indexed} WHERE " + _READY_CLASS.format("role_boundary IS NULL")
              + " AND assignee IN ({agents}))"
              " OR EXISTS (SELECT 1 FROM tasks{indexed} WHERE " + _READY_CLASS.format("role_boundary = {role})")
              + ", {token}")
_PG_DEPS = ", (SELECT string_agg(dep_id::text, ',') FROM deps WHERE deps.task_id = t.id) AS deps"


def _set_pick(dialect, project):
    now, n, project_is = {"sqlite": (":now", ":n", " AND project = +:project"),
                          "postgres": ("%(now)s", "%(n)s", " AND project = %(project)s")}[dialect]
    fields = ", ".join("t." + name for name in TASK_COLUMNS)
    if dialect == "sqlite":
        head = f"SELECT {fields}{_SQLITE_DEPS.format(table='t')} FROM tasks t INDEXED BY tasks_claim"
        lock = ""
    else:
        head = f"SELECT {fields}{_PG_DEPS} FROM tasks t"
        lock = " FOR UPDATE OF t SKIP LOCKED"
    return (head + " WHERE " + _READY_CLASS.format("role_boundary IS NULL AND assignee IS NULL")
            + f" AND (not_before IS NULL OR not_before <= {now})" + (project_is if project else "")
            + f" ORDER BY priority DESC, created_at, id LIMIT {n}{lock}")


# complete_task's text, in either dialect's placeholders
_COMPLETE_TASK = ("UPDATE tasks SET status = 'done', claimed_by = NULL, lease_until = NULL, lease_token = NULL,"
                  " lease_ms = NULL, finished_at = {now}, updated_at = {now}"
                  " WHERE id = {id} AND status = 'in_progress' AND lease_token = {token} AND claimed_by = {agent}"
                  " AND lease_until > {now} AND review = 0"
                  " AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.task_id = tasks.id AND r.ended_at IS NULL)"
                  " AND NOT EXISTS (SELECT 1 FROM meta WHERE key = 'team')")
# a claim for work, not for review: the `claimed` event `e` (the review gate, below)
_WORK_CLAIM = {
    "sqlite": "e.kind = 'claimed' AND NOT coalesce(json_extract(e.data, '$.review'), 0)",
    "postgres": "e.kind = 'claimed' AND (CAST(e.data AS json) ->> 'review') IS DISTINCT FROM 'true'",
}


def _held_by(dialect, task, agent):
    """Did `agent` ever hold task `task` (the review gate)?  A row of `holders`, or a claim
    for work in the event log: one seek on each table's index by task (holders' key,
    events_task), the task's claimed events read from there."""
    return (f"(EXISTS (SELECT 1 FROM holders h WHERE h.task_id = {task} AND h.agent = {agent})"
            f" OR EXISTS (SELECT 1 FROM events e WHERE e.task_id = {task} AND e.actor = {agent}"
            f" AND {_WORK_CLAIM[dialect]}))")


QUERIES = {
    # -- tasks ----------------------------------------------------------------------
    # one task by id; inside a write the row is locked: every check-then-write of a verb
    # is serialised per task on PostgreSQL, as SQLite serialises them all
    "task": {
        "sqlite": TASK_SELECT["sqlite"] + " WHERE t.id = :id",
        "postgres": TASK_SELECT["postgres"] + " WHERE t.id = %(id)s",
    },
    "task_for_update": {
        "sqlite": TASK_SELECT["sqlite"] + " WHERE t.id = :id",
        "postgres": TASK_SELECT["postgres"] + " WHERE t.id = %(id)s FOR UPDATE",
    },
    # one task inside a write that gates and checks it (complete), with its deps on
    # SQLite: locked on PostgreSQL (the row only, not what the subqueries beside it read)
    "task_for_write": {
        "sqlite": "SELECT " + _TASK_FIELDS.format(now=":now") + _SQLITE_DEPS.format(table="t") + _FOR_WRITE + ":id",
        "postgres": "SELECT " + _TASK_FIELDS.format(now="%(now)s") + _FOR_WRITE + "%(id)s FOR UPDATE OF t",
    },
    "task_exists": {
        "sqlite": "SELECT 1 FROM tasks WHERE id = ?",
        "postgres": "SELECT 1 FROM tasks WHERE id = %s",
    },
    "task_deps": {
        "sqlite": "SELECT dep_id FROM deps WHERE task_id = ?",
        "postgres": "SELECT dep_id FROM deps WHERE task_id = %s",
    },
    "task_by_key": {
        "sqlite": "SELECT id FROM tasks WHERE idempotency_key = ?",
        "postgres": "SELECT id FROM tasks WHERE idempotency_key = %s",
    },
    "insert_task": {
        "sqlite": """INSERT INTO tasks(kind, title, body, priority, project, role_boundary, assignee,
                                 goal_id, review, max_attempts, not_before, idempotency_key,
                                 created_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
        "postgres": """INSERT INTO tasks(kind, title, body, priority, project, role_boundary, assignee,
                                 goal_id, review, max_attempts, not_before, idempotency_key,
                                 created_at, updated_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
    },
    # Store.insert: the new event's id.  SQLite: a plain INSERT, the id from the connection
    # (last_insert_rowid): a RETURNING clause materialises its rows in a temporary b-tree
    # opened and closed on every run, ~31k instructions per claim+complete cycle (callgrind,
    # 400 cycles).  An earlier try saw glibc trim and regrow the heap about once a cycle
    # with the plain INSERT; measured again (1100 cycles): 0.003 page faults a cycle, as
    # with RETURNING
    "insert_event": {
        "sqlite": "INSERT INTO events(task_id, kind, actor, at, data, expires_at)"
                  " VALUES (?, ?, ?, ?, ?, ?)",
        "postgres": "INSERT INTO events(task_id, kind, actor, at, data, expires_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
    },
    # -- goals ----------------------------------------------------------------------
    # a goal's roll-up locks the goal's row: two tasks of one goal finishing at once roll
    # it up one after the other
    "goal_for_update": {
        "sqlite": "SELECT status, goal_id FROM tasks WHERE id = ?",
        "postgres": "SELECT status, goal_id FROM tasks WHERE id = %s FOR UPDATE",
    },
    "goal_closed_count": {
        "sqlite": "SELECT count(*), coalesce(sum(CASE WHEN status IN ('done','cancelled') THEN 1 ELSE 0 END), 0)"
                  " FROM tasks WHERE goal_id = ?",
        "postgres": "SELECT count(*), coalesce(sum(CASE WHEN status IN ('done','cancelled') THEN 1 ELSE 0 END), 0)"
                    " FROM tasks WHERE goal_id = %s",
    },
    "kind_of": {
        "sqlite": "SELECT kind FROM tasks WHERE id = ?",
        "postgres": "SELECT kind FROM tasks WHERE id = %s",
    },
    "goal_progress": {
        "sqlite": "SELECT goal_id, status, count(*) FROM tasks WHERE goal_id IN (SELECT value FROM json_each(?))"
                  " GROUP BY goal_id, status",
        "postgres": "SELECT goal_id, status, count(*) FROM tasks"
                    " WHERE goal_id IN (SELECT value::bigint FROM json_array_elements_text(%s::json))"
                    " GROUP BY goal_id, status",
    },
    # -- deps -------------------------------------------------------------------------
    # does :start wait on :target, through deps or (for a goal) its tasks?  PostgreSQL's
    # function takes the board's graph lock first: a cycle check and the edge it allows
    # commit together
    "reaches": {
        "sqlite": """WITH RECURSIVE reach(id) AS (
                   SELECT :start
                   UNION SELECT d.dep_id FROM deps d JOIN reach r ON d.task_id = r.id
                   UNION SELECT t.id FROM tasks t JOIN reach r ON t.goal_id = r.id)
               SELECT 1 FROM reach WHERE id = :target LIMIT 1""",
        "postgres": "SELECT 1 WHERE kanban_reaches(%(start)s, %(target)s)",
    },
    "insert_dep": {
        "sqlite": "INSERT INTO deps(task_id, dep_id) VALUES (?, ?)",
        "postgres": "INSERT INTO deps(task_id, dep_id) VALUES (%s, %s)",
    },
    "add_dep": {
        "sqlite": "INSERT OR IGNORE INTO deps(task_id, dep_id) VALUES (?, ?)",
        "postgres": "INSERT INTO deps(task_id, dep_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
    },
    "delete_dep": {
        "sqlite": "DELETE FROM deps WHERE task_id = ? AND dep_id = ?",
        "postgres": "DELETE FROM deps WHERE task_id = %s AND dep_id = %s",
    },
    "deps_of_task": {
        "sqlite": "SELECT dep_id FROM deps WHERE task_id = ? ORDER BY dep_id",
        "postgres": "SELECT dep_id FROM deps WHERE task_id = %s ORDER BY dep_id",
    },
    "dependents_of_task": {
        "sqlite": "SELECT task_id FROM deps WHERE dep_id = ? ORDER BY task_id",
        "postgres": "SELECT task_id FROM deps WHERE dep_id = %s ORDER BY task_id",
    },
    # the deps of many tasks at once: the ids come as one JSON array
    "deps_of": {
        "sqlite": "SELECT task_id, dep_id FROM deps WHERE task_id IN (SELECT value FROM json_each(?))"
                  " ORDER BY task_id, dep_id",
        "postgres": "SELECT task_id, dep_id FROM deps"
                    " WHERE task_id IN (SELECT value::bigint FROM json_array_elements_text(%s::json))"
                    " ORDER BY task_id, dep_id",
    },
    "unmet_deps_of": {
        "sqlite": """SELECT d.task_id, d.dep_id, t.status FROM deps d JOIN tasks t ON t.id = d.dep_id
                WHERE d.task_id IN (SELECT value FROM json_each(?)) AND t.status <> 'done'
                ORDER BY d.task_id, d.dep_id""",
        "postgres": """SELECT d.task_id, d.dep_id, t.status FROM deps d JOIN tasks t ON t.id = d.dep_id
                WHERE d.task_id IN (SELECT value::bigint FROM json_array_elements_text(%s::json))
                  AND t.status <> 'done'
                ORDER BY d.task_id, d.dep_id""",
    },
    # -- claims and leases ----------------------------------------------------------------
    # the next fencing token: on SQLite read from the event ids (_SQLITE_TOKEN; a claim
    # reads it in its probe, a review claim here); a sequence on PostgreSQL, so concurrent
    # claimers never queue on one row for it
    "next_token": {
        "sqlite": "SELECT " + _SQLITE_TOKEN,
        "postgres": "SELECT nextval('lease_token_seq')",
    },
    # inside a claim's write: the overdue leases, and the next task to review.  SQLite has
    # one writer at a time; PostgreSQL's writers pass over the rows other writers hold
    "expired_leases": {
        "sqlite": "SELECT id, status, claimed_by, attempts, max_attempts, lease_token, goal_id FROM tasks"
                  " WHERE lease_until IS NOT NULL AND lease_until <= ? ORDER BY lease_until, id",
        "postgres": "SELECT id, status, claimed_by, attempts, max_attempts, lease_token, goal_id FROM tasks"
                    " WHERE lease_until IS NOT NULL AND lease_until <= %s ORDER BY lease_until, id"
                    " FOR UPDATE SKIP LOCKED",
    },
    # the same, waiting for the rows another writer holds (a reap in flight) instead of
    # passing over them: once it commits, the rows it reaped are no longer overdue and are
    # left out; the rest are reaped here.  A claim asks this only when its pick found
    # nothing while leases it passed over were still overdue (Board._reap_held)
    "expired_leases_wait": {
        "sqlite": "SELECT id, status, claimed_by, attempts, max_attempts, lease_token, goal_id FROM tasks"
                  " WHERE lease_until IS NOT NULL AND lease_until <= ? ORDER BY lease_until, id",
        "postgres": "SELECT id, status, claimed_by, attempts, max_attempts, lease_token, goal_id FROM tasks"
                    " WHERE lease_until IS NOT NULL AND lease_until <= %s ORDER BY lease_until, id"
                    " FOR UPDATE",
    },
    "any_expired": {
        "sqlite": "SELECT 1 FROM tasks WHERE lease_until <= ? LIMIT 1",
        "postgres": "SELECT 1 FROM tasks WHERE lease_until <= %s LIMIT 1",
    },
    **_picks(),
    # the pick when a WIP limit is full: this base, the limit's scopes passed over
    # (FRAGMENTS not_role_n, not_project_n), then pick_order (the lock: PostgreSQL's)
    "pick_limited": {
        "sqlite": "SELECT id FROM tasks WHERE status = 'todo' AND kind = 'task' AND unmet_deps = 0"
                  " AND (role_boundary IS NULL OR role_boundary = :role) AND (assignee IS NULL OR assignee = :agent)"
                  " AND (not_before IS NULL OR not_before <= :now)",
        "postgres": "SELECT id FROM tasks WHERE status = 'todo' AND kind = 'task' AND unmet_deps = 0"
                    " AND (role_boundary IS NULL OR role_boundary = %(role)s)"
                    " AND (assignee IS NULL OR assignee = %(agent)s)"
                    " AND (not_before IS NULL OR not_before <= %(now)s)",
    },
    "claim_task": {
        "sqlite": """UPDATE tasks SET status = 'in_progress', claimed_by = :agent, lease_until = :until,
                      lease_token = :token, lease_ms = :lease_ms, reason = NULL,
                      started_at = coalesce(started_at, :now), updated_at = :now
                WHERE id = :id""",
        "postgres": """UPDATE tasks SET status = 'in_progress', claimed_by = %(agent)s, lease_until = %(until)s,
                      lease_token = %(token)s, lease_ms = %(lease_ms)s, reason = NULL,
                      started_at = coalesce(started_at, %(now)s), updated_at = %(now)s
                WHERE id = %(id)s""",
    },
    # -- the set claim and completion (Board._claim_set, _complete_set) -----------------
    "claim_set_probe": {
        "sqlite": _SET_PROBE.format(now=":now", indexed=" INDEXED BY tasks_claim",
                                    agents="SELECT value FROM json_each(:agents)", role=":role",
                                    token=_SQLITE_TOKEN),
        "postgres": _SET_PROBE.format(now="%(now)s", indexed="",
                                      agents="SELECT value FROM json_array_elements_text(CAST(%(agents)s AS json))",
                                      role="%(role)s", token="NULL"),
    },
    "claim_set_pick": {"sqlite": _set_pick("sqlite", False), "postgres": _set_pick("postgres", False)},
    "claim_set_pick_project": {"sqlite": _set_pick("sqlite", True), "postgres": _set_pick("postgres", True)},
    # :n fencing tokens, as rows of (first, last): on SQLite one block of n from the event
    # ids (the set claim reads its first in `claim_set_probe` instead); PostgreSQL's
    # sequence gives n values, one a row (other sessions draw from it meanwhile, so they
    # need not be consecutive), in increasing order
    "next_tokens": {
        "sqlite": "SELECT first, first + :n - 1 FROM (SELECT " + _SQLITE_TOKEN + " AS first) AS drawn",
        "postgres": "SELECT token, token FROM (SELECT nextval('lease_token_seq') AS token"
                    " FROM generate_series(1, CAST(%(n)s AS integer))) AS drawn ORDER BY token",
    },
    # The set statements read their items from one JSON array of [task id, event kind,
    # agent, token]: the same text serves the claim's UPDATE and its events.
    # claim_task for many tasks
    "claim_tasks": {
        "sqlite": """UPDATE tasks SET status = 'in_progress', claimed_by = c.value ->> 2, lease_until = :until,
                      lease_token = c.value ->> 3, lease_ms = :lease_ms, reason = NULL,
                      started_at = coalesce(started_at, :now), updated_at = :now
                FROM json_each(:claims) AS c WHERE tasks.id = c.value ->> 0""",
        "postgres": """UPDATE tasks SET status = 'in_progress', claimed_by = c.value ->> 2,
                      lease_until = %(until)s, lease_token = CAST(c.value ->> 3 AS bigint),
                      lease_ms = %(lease_ms)s, reason = NULL,
                      started_at = coalesce(started_at, %(now)s), updated_at = %(now)s
                FROM json_array_elements(CAST(%(claims)s AS json)) AS c
                WHERE tasks.id = CAST(c.value ->> 0 AS bigint)""",
    },
    # add_holder for many: the items' tasks and agents (the agents that acted with a
    # holder's token, in _complete_set)
    "add_holders": {
        "sqlite": "INSERT OR IGNORE INTO holders(task_id, agent) SELECT value ->> 0, value ->> 2 FROM json_each(?)",
        "postgres": "INSERT INTO holders(task_id, agent)"
                    " SELECT CAST(value ->> 0 AS bigint), value ->> 2 FROM json_array_elements(CAST(%s AS json))"
                    " ON CONFLICT DO NOTHING",
    },
    # insert_event for many events whose data is {"token": N, ...} (claimed, completed,
    # submitted_for_review), all at one time and with no expiry: one for each item, in
    # their order (the ids rise with it), each one's data '{"token":' N :tail, the
    # compact JSON _event writes
    "insert_token_events": {
        "sqlite": "INSERT INTO events(task_id, kind, actor, at, data, expires_at)"
                  " SELECT value ->> 0, value ->> 1, value ->> 2, :at, '{\"token\":' || (value ->> 3) || :tail, NULL"
                  " FROM json_each(:events) ORDER BY key",
        "postgres": "INSERT INTO events(task_id, kind, actor, at, data, expires_at)"
                    " SELECT CAST(e.value ->> 0 AS bigint), e.value ->> 1, e.value ->> 2, %(at)s,"
                    " '{\"token\":' || (e.value ->> 3) || %(tail)s, NULL"
                    " FROM json_array_elements(CAST(%(events)s AS json)) WITH ORDINALITY AS e(value, n) ORDER BY e.n",
    },
    # the last event id given out: after insert_token_events, its ids are the n before it
    # and it (one writer at a time on SQLite, where the newest event is never deleted, so
    # the highest id is the last one given out; PostgreSQL's counter row stays locked by
    # this transaction until it commits)
    "last_event_id": {
        "sqlite": "SELECT max(id) FROM events",
        "postgres": "SELECT value FROM counters WHERE name = 'events'",
    },
    # task_for_write for many tasks (:ids, a JSON array), each row with its deps; locked on
    # PostgreSQL in id order
    "tasks_for_write": {
        "sqlite": "SELECT " + _TASK_FIELDS.format(now=":now") + _SQLITE_DEPS.format(table="t")
                  + _FOR_WRITE.replace(" WHERE t.id = ", " WHERE t.id IN (SELECT value FROM json_each(:ids))"),
        "postgres": "SELECT " + _TASK_FIELDS.format(now="%(now)s") + _PG_DEPS
                    + _FOR_WRITE.replace(" WHERE t.id = ", " WHERE t.id IN"
                                         " (SELECT value::bigint FROM json_array_elements_text(CAST(%(ids)s AS json)))")
                    + " ORDER BY t.id FOR UPDATE OF t",
    },
    # Board._complete's common case in one statement: the task done, when it passes every
    # check the full path makes (in progress, this token's live lease, held by this agent)
    # and needs nothing more (not a review task, no open run, no team board to gate it);
    # the task as it left it.  No row: board.py reads the task and checks it, as before
    "complete_task": {
        "sqlite": _COMPLETE_TASK.format(now=":now", id=":id", token=":token", agent=":agent")
                  + _TASK_RETURNING + _SQLITE_DEPS.format(table="tasks"),
        "postgres": _COMPLETE_TASK.format(now="%(now)s", id="%(id)s", token="%(token)s", agent="%(agent)s")
                    + _TASK_RETURNING,
    },
    # what Board._complete changes (_end_lease), for many tasks: done, or in review
    "complete_tasks": {
        "sqlite": "UPDATE tasks SET status = 'done', claimed_by = NULL, lease_until = NULL, lease_token = NULL,"
                  " lease_ms = NULL, finished_at = :now, updated_at = :now"
                  " WHERE id IN (SELECT value FROM json_each(:ids))",
        "postgres": "UPDATE tasks SET status = 'done', claimed_by = NULL, lease_until = NULL, lease_token = NULL,"
                    " lease_ms = NULL, finished_at = %(now)s, updated_at = %(now)s"
                    " WHERE id IN (SELECT value::bigint FROM json_array_elements_text(CAST(%(ids)s AS json)))",
    },
    "submit_tasks": {
        "sqlite": "UPDATE tasks SET status = 'in_review', claimed_by = NULL, lease_until = NULL, lease_token = NULL,"
                  " lease_ms = NULL, review = 1, updated_at = :now"
                  " WHERE id IN (SELECT value FROM json_each(:ids))",
        "postgres": "UPDATE tasks SET status = 'in_review', claimed_by = NULL, lease_until = NULL,"
                    " lease_token = NULL, lease_ms = NULL, review = 1, updated_at = %(now)s"
                    " WHERE id IN (SELECT value::bigint FROM json_array_elements_text(CAST(%(ids)s AS json)))",
    },
    # The review gate: the agents that ever held a task.  A claim leaves a `claimed` event
    # whose actor is the holder (a review claim's has "review": true in its data and makes
    # no holder), and claimed events are never deleted (the prune drops progress notes
    # only), so a claim writes nothing else for the gate; the `holders` table keeps the
    # agents that acted with a holder's token (_check_lease), and every holder of a board
    # from before (a claim wrote a row there).  An agent is a holder when it is in either.
    "add_holder": {
        "sqlite": "INSERT OR IGNORE INTO holders(task_id, agent) VALUES (?, ?)",
        "postgres": "INSERT INTO holders(task_id, agent) VALUES (%s, %s) ON CONFLICT DO NOTHING",
    },
    "is_holder": {
        "sqlite": "SELECT " + _held_by("sqlite", ":task", ":agent"),
        "postgres": "SELECT " + _held_by("postgres", "%(task)s", "%(agent)s"),
    },
    "holders_of": {
        "sqlite": "SELECT task_id, agent FROM holders WHERE task_id IN (SELECT value FROM json_each(:ids))"
                  " UNION SELECT task_id, actor FROM events e WHERE task_id IN (SELECT value FROM json_each(:ids))"
                  " AND " + _WORK_CLAIM["sqlite"] + " ORDER BY task_id, agent",
        "postgres": "SELECT task_id, agent FROM (SELECT task_id, agent FROM holders"
                    " WHERE task_id IN (SELECT value::bigint FROM json_array_elements_text(%(ids)s::json))"
                    " UNION SELECT task_id, actor FROM events e"
                    " WHERE task_id IN (SELECT value::bigint FROM json_array_elements_text(%(ids)s::json))"
                    " AND " + _WORK_CLAIM["postgres"] + ") AS held ORDER BY task_id, agent COLLATE \"C\"",
    },
    "pick_review": {
        "sqlite": """SELECT id FROM tasks WHERE status = 'in_review' AND claimed_by IS NULL
                 AND NOT """ + _held_by("sqlite", "tasks.id", ":agent") + """
               ORDER BY priority DESC, created_at, id LIMIT 1""",
        "postgres": """SELECT id FROM tasks WHERE status = 'in_review' AND claimed_by IS NULL
                 AND NOT """ + _held_by("postgres", "tasks.id", "%(agent)s") + """
               ORDER BY priority DESC, created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED""",
    },
    # was `token` ever this task's? (a stale writer's lease_lost, rather than a conflict)
    "was_token": {
        "sqlite": "SELECT 1 FROM events WHERE task_id = ? AND kind = 'claimed'"
                  " AND json_extract(data, '$.token') = ? LIMIT 1",
        "postgres": "SELECT 1 FROM events WHERE task_id = %s AND kind = 'claimed'"
                    " AND (data::jsonb ->> 'token') = CAST(%s AS TEXT) LIMIT 1",
    },
    # -- events and comments ------------------------------------------------------------
    "events_after": {
        "sqlite": """SELECT id, task_id, kind, actor, at, data FROM events
                    WHERE id > :after AND (:task IS NULL OR task_id = :task)
                      AND (:kind IS NULL OR kind = :kind)
                      AND (expires_at IS NULL OR expires_at > :now)
                    ORDER BY id LIMIT :limit""",
        "postgres": """SELECT id, task_id, kind, actor, at, data FROM events
                    WHERE id > %(after)s AND (%(task)s IS NULL OR task_id = %(task)s)
                      AND (%(kind)s IS NULL OR kind = %(kind)s)
                      AND (expires_at IS NULL OR expires_at > %(now)s)
                    ORDER BY id LIMIT %(limit)s""",
    },
    "recent_events": {
        "sqlite": """SELECT * FROM (SELECT id, task_id, kind, actor, at, data FROM events
                    WHERE task_id = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY id DESC LIMIT ?) AS recent
                   ORDER BY id""",
        "postgres": """SELECT * FROM (SELECT id, task_id, kind, actor, at, data FROM events
                    WHERE task_id = %s AND (expires_at IS NULL OR expires_at > %s) ORDER BY id DESC LIMIT %s) AS recent
                   ORDER BY id""",
    },
    # the events that change a task's state, for the flow charts
    "events_of_kinds": {
        "sqlite": "SELECT id, task_id, kind, actor, at, data FROM events"
                  " WHERE kind IN (SELECT value FROM json_each(?)) ORDER BY id",
        "postgres": "SELECT id, task_id, kind, actor, at, data FROM events"
                    " WHERE kind IN (SELECT value FROM json_array_elements_text(%s::json)) ORDER BY id",
    },
    # a note logged with --ttl never has no expiry, and no cut drops it.  The newest event
    # stays, whatever it is: SQLite gives a new event the highest id plus one (no
    # AUTOINCREMENT), and it must never be an id given out before (an `event list --since`
    # cursor, an SSE Last-Event-ID, the fencing token all count on it); PostgreSQL keeps
    # the same rule, so both boards keep the same events
    "prune_progress": {
        "sqlite": "DELETE FROM events WHERE kind = 'progress' AND expires_at IS NOT NULL"
                  " AND (expires_at <= :now OR at < :cut) AND id < (SELECT max(id) FROM events)",
        "postgres": "DELETE FROM events WHERE kind = 'progress' AND expires_at IS NOT NULL"
                    " AND (expires_at <= %(now)s OR at < %(cut)s) AND id < (SELECT max(id) FROM events)",
    },
    "comments_of": {
        "sqlite": "SELECT id, actor, at, body FROM comments WHERE task_id = ? ORDER BY id",
        "postgres": "SELECT id, actor, at, body FROM comments WHERE task_id = %s ORDER BY id",
    },
    "insert_comment": {
        "sqlite": "INSERT INTO comments(task_id, actor, at, body) VALUES (?, ?, ?, ?) RETURNING id",
        "postgres": "INSERT INTO comments(task_id, actor, at, body) VALUES (%s, %s, %s, %s) RETURNING id",
    },
    # -- runs -------------------------------------------------------------------------
    "runs_of": {
        "sqlite": "SELECT * FROM runs WHERE task_id = ? ORDER BY id",
        "postgres": "SELECT * FROM runs WHERE task_id = %s ORDER BY id",
    },
    "run": {
        "sqlite": "SELECT * FROM runs WHERE id = ?",
        "postgres": "SELECT * FROM runs WHERE id = %s",
    },
    "insert_run": {
        "sqlite": "INSERT INTO runs(task_id, agent, lease_token, started_at, heartbeat_at)"
                  " VALUES (?, ?, ?, ?, ?) RETURNING id",
        "postgres": "INSERT INTO runs(task_id, agent, lease_token, started_at, heartbeat_at)"
                    " VALUES (%s, %s, %s, %s, %s) RETURNING id",
    },
    "beat_runs": {
        "sqlite": "UPDATE runs SET heartbeat_at = ? WHERE task_id = ? AND ended_at IS NULL",
        "postgres": "UPDATE runs SET heartbeat_at = %s WHERE task_id = %s AND ended_at IS NULL",
    },
    "open_runs": {
        "sqlite": "SELECT id FROM runs WHERE task_id = ? AND ended_at IS NULL",
        "postgres": "SELECT id FROM runs WHERE task_id = %s AND ended_at IS NULL",
    },
    "end_run": {
        "sqlite": "UPDATE runs SET ended_at = ?, outcome = ? WHERE id = ?",
        "postgres": "UPDATE runs SET ended_at = %s, outcome = %s WHERE id = %s",
    },
    "stale_runs": {
        "sqlite": "SELECT DISTINCT task_id FROM runs WHERE ended_at IS NULL AND heartbeat_at <= ?",
        "postgres": "SELECT DISTINCT task_id FROM runs WHERE ended_at IS NULL AND heartbeat_at <= %s",
    },
    # -- WIP limits -----------------------------------------------------------------------
    # a claim under WIP limits locks the limit rows first: claims under a limit go one at
    # a time, so the count each one reads already holds the claim committed before it
    # (by scope as SQLite orders text, byte by byte, whatever the server's collation)
    "wip_limits_for_update": {
        "sqlite": "SELECT scope, status, role, project, agent, max_count, created_at, updated_at"
                  " FROM wip_limits ORDER BY scope",
        "postgres": "SELECT scope, status, role, project, agent, max_count, created_at, updated_at"
                    " FROM wip_limits ORDER BY scope COLLATE \"C\" FOR UPDATE",
    },
    "wip_limits": {
        "sqlite": "SELECT scope, status, role, project, agent, max_count, created_at, updated_at"
                  " FROM wip_limits ORDER BY scope",
        "postgres": "SELECT scope, status, role, project, agent, max_count, created_at, updated_at"
                    " FROM wip_limits ORDER BY scope COLLATE \"C\"",
    },
    "projects": {
        "sqlite": "SELECT DISTINCT project FROM tasks WHERE project IS NOT NULL ORDER BY project",
        "postgres": "SELECT DISTINCT project COLLATE \"C\" FROM tasks WHERE project IS NOT NULL"
                    " ORDER BY 1",
    },
    "set_limit": {
        "sqlite": "INSERT INTO wip_limits(scope, status, role, project, agent, max_count, created_at, updated_at)"
                  " VALUES (:scope, :status, :role, :project, :agent, :max, :now, :now)"
                  " ON CONFLICT(scope) DO UPDATE SET max_count = excluded.max_count, updated_at = excluded.updated_at",
        "postgres": "INSERT INTO wip_limits(scope, status, role, project, agent, max_count, created_at, updated_at)"
                    " VALUES (%(scope)s, %(status)s, %(role)s, %(project)s, %(agent)s, %(max)s, %(now)s, %(now)s)"
                    " ON CONFLICT(scope) DO UPDATE SET max_count = excluded.max_count,"
                    " updated_at = excluded.updated_at",
    },
    "delete_limit": {
        "sqlite": "DELETE FROM wip_limits WHERE scope = ?",
        "postgres": "DELETE FROM wip_limits WHERE scope = %s",
    },
    # -- the board as a whole -------------------------------------------------------------
    "set_meta": {
        "sqlite": "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
        "postgres": "INSERT INTO meta(key, value) VALUES (%s, %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
    },
    "count_ready": {
        "sqlite": "SELECT count(*) FROM tasks WHERE status = 'todo' AND kind = 'task' AND unmet_deps = 0"
                  " AND (not_before IS NULL OR not_before <= ?)",
        "postgres": "SELECT count(*) FROM tasks WHERE status = 'todo' AND kind = 'task' AND unmet_deps = 0"
                    " AND (not_before IS NULL OR not_before <= %s)",
    },
    "count_expired": {
        "sqlite": "SELECT count(*) FROM tasks WHERE lease_until IS NOT NULL AND lease_until <= ?",
        "postgres": "SELECT count(*) FROM tasks WHERE lease_until IS NOT NULL AND lease_until <= %s",
    },
    "count_done_since": {
        "sqlite": "SELECT count(*) FROM tasks WHERE finished_at > ? AND status = 'done' AND kind = 'task'",
        "postgres": "SELECT count(*) FROM tasks WHERE finished_at > %s AND status = 'done' AND kind = 'task'",
    },
    # -- access tokens ----------------------------------------------------------------
    "insert_access_token": {
        "sqlite": "INSERT INTO access_tokens(id, agent, hash, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
        "postgres": "INSERT INTO access_tokens(id, agent, hash, created_at, created_by) VALUES (%s, %s, %s, %s, %s)",
    },
    "access_token": {
        "sqlite": "SELECT * FROM access_tokens WHERE id = ?",
        "postgres": "SELECT * FROM access_tokens WHERE id = %s",
    },
    "revoke_access_token": {
        "sqlite": "UPDATE access_tokens SET revoked_at = ? WHERE id = ?",
        "postgres": "UPDATE access_tokens SET revoked_at = %s WHERE id = %s",
    },
    "access_token_hash": {
        "sqlite": "SELECT agent, hash, revoked_at FROM access_tokens WHERE id = ?",
        "postgres": "SELECT agent, hash, revoked_at FROM access_tokens WHERE id = %s",
    },
    # -- the bench's audit of a run: the events and the undone tasks of its project -----------
    "project_events": {
        "sqlite": "SELECT e.task_id, e.kind FROM events e JOIN tasks t ON t.id = e.task_id"
                  " WHERE t.project IS ? ORDER BY e.id",
        "postgres": "SELECT e.task_id, e.kind FROM events e JOIN tasks t ON t.id = e.task_id"
                    " WHERE t.project IS NOT DISTINCT FROM %s ORDER BY e.id",
    },
    "project_undone": {
        "sqlite": "SELECT count(*) FROM tasks WHERE project IS ? AND status <> 'done'",
        "postgres": "SELECT count(*) FROM tasks WHERE project IS NOT DISTINCT FROM %s AND status <> 'done'",
    },
}


# Pieces of the statements board.py composes (the task query with its filters, an
# update's SET list, a WIP limit's scope, an import's INSERT), joined with text that
# reads the same in both dialects.  A piece with {0} is a template: board.py fills in a
# column name from its own closed lists (never from input).
FRAGMENTS = {
    # the task query: `task_select` [WHERE ...] [ORDER BY ...] [`limit`]
    "task_select": TASK_SELECT,
    "limit": {"sqlite": " LIMIT :limit", "postgres": " LIMIT %(limit)s"},
    # full-text search: SQLite's FTS5 table; on PostgreSQL the function that tokenises
    # and ranks as FTS5 does (bm25), so both answer with the same tasks in the same order
    "search_join": {
        "sqlite": " JOIN tasks_fts f ON f.rowid = t.id WHERE tasks_fts MATCH :match",
        "postgres": " JOIN kanban_search(%(match)s) f ON f.id = t.id WHERE TRUE",
    },
    "status_in": {
        "sqlite": "t.status IN (SELECT value FROM json_each(:statuses))",
        "postgres": "t.status IN (SELECT value FROM json_array_elements_text(CAST(%(statuses)s AS json)))",
    },
    "id_in": {
        "sqlite": "t.id IN (SELECT value FROM json_each(:ids))",
        "postgres": "t.id IN (SELECT value::bigint FROM json_array_elements_text(CAST(%(ids)s AS json)))",
    },
    "status_is": {"sqlite": "t.status = :status", "postgres": "t.status = %(status)s"},
    "project_is": {"sqlite": "t.project = +:project", "postgres": "t.project = %(project)s"},
    "assignee_is": {"sqlite": "t.assignee = :assignee", "postgres": "t.assignee = %(assignee)s"},
    "claimed_by_is": {"sqlite": "t.claimed_by = :claimed_by", "postgres": "t.claimed_by = %(claimed_by)s"},
    "kind_is": {"sqlite": "t.kind = :kind", "postgres": "t.kind = %(kind)s"},
    "goal_is": {"sqlite": "t.goal_id = :goal", "postgres": "t.goal_id = %(goal)s"},
    "role_is": {"sqlite": "t.role_boundary = :role", "postgres": "t.role_boundary = %(role)s"},
    "ready": {
        "sqlite": "t.status = 'todo' AND t.kind = 'task' AND t.unmet_deps = 0"
                  " AND (t.not_before IS NULL OR t.not_before <= :now)",
        "postgres": "t.status = 'todo' AND t.kind = 'task' AND t.unmet_deps = 0"
                    " AND (t.not_before IS NULL OR t.not_before <= %(now)s)",
    },
    # an agent who holds, is assigned or ever held the task
    "touched_by": {
        "sqlite": "(t.claimed_by = :agent OR t.assignee = :agent OR " + _held_by("sqlite", "t.id", ":agent") + ")",
        "postgres": "(t.claimed_by = %(agent)s OR t.assignee = %(agent)s OR "
                    + _held_by("postgres", "t.id", "%(agent)s") + ")",
    },
    # UPDATE tasks SET `set_column`, ... `where_id` [`task_returning`]
    "set_column": {"sqlite": "{0} = :{0}", "postgres": "{0} = %({0})s"},
    "where_id": {"sqlite": " WHERE id = :id", "postgres": " WHERE id = %(id)s"},
    # SQLite's row also brings the task's dependencies along: no second statement
    "task_returning": {
        "sqlite": _TASK_RETURNING + _SQLITE_DEPS.format(table="tasks"),
        "postgres": _TASK_RETURNING,
    },
    # a WIP limit's scope: the tasks it counts (SELECT count(*) FROM tasks WHERE ...)
    "scope_status": {"sqlite": "status = :status", "postgres": "status = %(status)s"},
    "scope_role": {"sqlite": "role_boundary = :role", "postgres": "role_boundary = %(role)s"},
    "scope_project": {"sqlite": "project = +:project", "postgres": "project = %(project)s"},
    "scope_agent": {"sqlite": "claimed_by = :agent", "postgres": "claimed_by = %(agent)s"},
    # pick_limited's terms: in `project`; not in the scope of full limit {0}; in claim
    # order, the row locked inside a claim's write (passing over other claimers' rows)
    "in_project": {"sqlite": " AND project = +:project", "postgres": " AND project = %(project)s"},
    "not_role_n": {"sqlite": "coalesce(role_boundary, '') = :role{0}",
                   "postgres": "coalesce(role_boundary, '') = %(role{0})s"},
    "not_project_n": {"sqlite": "coalesce(project, '') = :project{0}",
                      "postgres": "coalesce(project, '') = %(project{0})s"},
    "pick_order": {"sqlite": " ORDER BY priority DESC, created_at, id LIMIT 1",
                   "postgres": " ORDER BY priority DESC, created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"},
    "peek_order": {"sqlite": " ORDER BY priority DESC, created_at, id LIMIT 1",
                   "postgres": " ORDER BY priority DESC, created_at, id LIMIT 1"},
    # the SQLite pick's other classes, when its first statement says they hold tasks: the
    # best of each class (one seek each), then the best of those ({0}: the class's role
    # and assignee terms; {1}: `in_project` or nothing).  PostgreSQL's pick answers in
    # one statement and never asks for these.
    "pick_class": {
        "sqlite": """SELECT * FROM (SELECT id, priority, created_at FROM tasks INDEXED BY tasks_claim
                 WHERE status = 'todo' AND kind = 'task' AND unmet_deps = 0 AND {0}
                   AND (not_before IS NULL OR not_before <= :now){1}
                 ORDER BY priority DESC, created_at, id LIMIT 1)""",
        "postgres": """SELECT * FROM (SELECT id, priority, created_at FROM tasks
                 WHERE status = 'todo' AND kind = 'task' AND unmet_deps = 0 AND {0}
                   AND (not_before IS NULL OR not_before <= %(now)s){1}
                 ORDER BY priority DESC, created_at, id LIMIT 1) AS pick_class""",
    },
    "role_eq": {"sqlite": "role_boundary = :role", "postgres": "role_boundary = %(role)s"},
    "assignee_eq": {"sqlite": "assignee = :agent", "postgres": "assignee = %(agent)s"},
    # a positional parameter (an import's INSERT names its columns from the export)
    "param": {"sqlite": "?", "postgres": "%s"},
}

# each backend's statements and pieces by name (store.Store.sql)
SQLITE = {name: texts["sqlite"] for name, texts in (QUERIES | FRAGMENTS).items()}
POSTGRES = {name: texts["postgres"] for name, texts in (QUERIES | FRAGMENTS).items()}
