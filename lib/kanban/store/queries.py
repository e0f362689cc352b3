"""The board's statements whose SQL differs between the backends, each written out in
both dialects under one name, exactly as it runs: SQLite's with `?`/`:name`
placeholders, PostgreSQL's with psycopg's `%s`/`%(name)s`.  board.py asks for one by
name (`db.sql(name)`); the Postgres store runs these as they are, untranslated.

(Statements that read the same in both dialects are written once, in board.py; the
Postgres store still translates the rest of board.py's SQLite text at run time:
store/postgres.py `translate`.)
"""


class Native(str):
    """A statement in its backend's own dialect: run as written."""

    __slots__ = ()


QUERIES = {
    # the next fencing token: a counter row on SQLite (one writer at a time anyway); a
    # sequence on PostgreSQL, so concurrent claimers never queue on one row for it
    "next_token": {
        "sqlite": "UPDATE meta SET value = value + 1 WHERE key = 'lease_token' RETURNING value",
        "postgres": "SELECT nextval('lease_token_seq')",
    },
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
    # every agent that ever held a task (the review gate)
    "add_holder": {
        "sqlite": "INSERT OR IGNORE INTO holders(task_id, agent) VALUES (?, ?)",
        "postgres": "INSERT INTO holders(task_id, agent) VALUES (%s, %s) ON CONFLICT DO NOTHING",
    },
    "add_dep": {
        "sqlite": "INSERT OR IGNORE INTO deps(task_id, dep_id) VALUES (?, ?)",
        "postgres": "INSERT INTO deps(task_id, dep_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
    },
    "set_meta": {
        "sqlite": "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
        "postgres": "INSERT INTO meta(key, value) VALUES (%s, %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
    },
    # the deps of many tasks at once: the ids come as one JSON array
    "deps_of": {
        "sqlite": "SELECT task_id, dep_id FROM deps WHERE task_id IN (SELECT value FROM json_each(?))"
                  " ORDER BY task_id, dep_id",
        "postgres": "SELECT task_id, dep_id FROM deps"
                    " WHERE task_id IN (SELECT value::bigint FROM json_array_elements_text(%s::json))"
                    " ORDER BY task_id, dep_id",
    },
    "holders_of": {
        "sqlite": "SELECT task_id, agent FROM holders WHERE task_id IN (SELECT value FROM json_each(?))"
                  " ORDER BY task_id, agent",
        "postgres": "SELECT task_id, agent FROM holders"
                    " WHERE task_id IN (SELECT value::bigint FROM json_array_elements_text(%s::json))"
                    " ORDER BY task_id, agent COLLATE \"C\"",
    },
    "goal_progress": {
        "sqlite": "SELECT goal_id, status, count(*) FROM tasks WHERE goal_id IN (SELECT value FROM json_each(?))"
                  " GROUP BY goal_id, status",
        "postgres": "SELECT goal_id, status, count(*) FROM tasks"
                    " WHERE goal_id IN (SELECT value::bigint FROM json_array_elements_text(%s::json))"
                    " GROUP BY goal_id, status",
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
    # the events that change a task's state, for the flow charts
    "events_of_kinds": {
        "sqlite": "SELECT id, task_id, kind, actor, at, data FROM events"
                  " WHERE kind IN (SELECT value FROM json_each(?)) ORDER BY id",
        "postgres": "SELECT id, task_id, kind, actor, at, data FROM events"
                    " WHERE kind IN (SELECT value FROM json_array_elements_text(%s::json)) ORDER BY id",
    },
    # was `token` ever this task's? (a stale writer's lease_lost, rather than a conflict)
    "was_token": {
        "sqlite": "SELECT 1 FROM events WHERE task_id = ? AND kind = 'claimed'"
                  " AND json_extract(data, '$.token') = ? LIMIT 1",
        "postgres": "SELECT 1 FROM events WHERE task_id = %s AND kind = 'claimed'"
                    " AND (data::jsonb ->> 'token') = CAST(%s AS TEXT) LIMIT 1",
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
    "pick_review": {
        "sqlite": """SELECT id FROM tasks WHERE status = 'in_review' AND claimed_by IS NULL
                 AND NOT EXISTS (SELECT 1 FROM holders h WHERE h.task_id = tasks.id AND h.agent = ?)
               ORDER BY priority DESC, created_at, id LIMIT 1""",
        "postgres": """SELECT id FROM tasks WHERE status = 'in_review' AND claimed_by IS NULL
                 AND NOT EXISTS (SELECT 1 FROM holders h WHERE h.task_id = tasks.id AND h.agent = %s)
               ORDER BY priority DESC, created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED""",
    },
}


# Pieces of statements that differ, joined to the task query board.py builds (search,
# filters).  They are written with :name placeholders on both backends, as the statements
# they join are; the Postgres store turns those placeholders into psycopg's at run time.
FRAGMENTS = {
    # full-text search: SQLite's FTS5 table; on PostgreSQL the function that tokenises
    # and ranks as FTS5 does (bm25), so both answer with the same tasks in the same order
    "search_join": {
        "sqlite": " JOIN tasks_fts f ON f.rowid = t.id WHERE tasks_fts MATCH :match",
        "postgres": " JOIN kanban_search(:match) f ON f.id = t.id WHERE TRUE",
    },
    "status_in": {
        "sqlite": "t.status IN (SELECT value FROM json_each(:statuses))",
        "postgres": "t.status IN (SELECT value FROM json_array_elements_text(CAST(:statuses AS json)))",
    },
    # a write's look at the task it changes locks the row on PostgreSQL (the row only,
    # not what the subqueries beside it read)
    "lock_task": {
        "sqlite": "",
        "postgres": " FOR UPDATE OF t",
    },
    "id_in": {
        "sqlite": "t.id IN (SELECT value FROM json_each(:ids))",
        "postgres": "t.id IN (SELECT value::bigint FROM json_array_elements_text(CAST(:ids AS json)))",
    },
}
