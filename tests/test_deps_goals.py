"""Dependencies, cycles, goals and why a task waits (SPEC §4, §5: dep, show waiting_on)."""
import json

import pytest
from conftest import assert_error, at, backends, drop_pg_schemas, new_pg_schema, run


def snapshot(kb):
    return kb("list").out, kb("event", "list", "--limit", "100000").out


def finish(kb, task_id, agent="w"):
    tok = kb("claim", task_id, agent=agent).json["lease_token"]
    res = kb("complete", task_id, "--token", tok, agent=agent)
    assert res.rc == 0, res
    return res.json


def new(kb, title, *args):
    res = kb("create", title, *args)
    assert res.rc == 0, res
    return res.json["id"]


# -- deps ------------------------------------------------------------------------------


def test_a_task_waits_for_its_deps(kb):
    a = new(kb, "a")
    b = new(kb, "b", "--depends-on", a, "--priority", "9")
    assert kb("show", b).json["ready"] is False
    assert kb("list", "--ready").json["tasks"][0]["id"] == a
    assert kb("claim", agent="w").json["id"] == a
    assert kb("claim", agent="w").json == {}
    finish_tok = kb("show", a).json  # still in progress
    assert finish_tok["status"] == "in_progress"


def test_done_dep_makes_it_ready(kb):
    a = new(kb, "a")
    c = new(kb, "c")
    b = new(kb, "b", "--depends-on", f"{a},{c}")
    finish(kb, a)
    assert kb("show", b).json["ready"] is False
    finish(kb, c)
    assert kb("show", b).json["ready"] is True
    # reopening a dep makes it wait again
    kb("reopen", a)
    assert kb("show", b).json["ready"] is False


def test_dep_add_rm_list(kb):
    a, b, c = new(kb, "a"), new(kb, "b"), new(kb, "c")
    res = kb("dep", "add", c, a, b, agent="planner")
    assert res.rc == 0
    assert res.json == {"task": c, "depends_on": [a, b], "dependents": []}
    assert kb("dep", "list", a).json == {"task": a, "depends_on": [], "dependents": [c]}
    assert kb("show", c).json["depends_on"] == [a, b] and kb("show", c).json["ready"] is False
    linked = kb("event", "list", "--kind", "linked").json["events"]
    assert [(e["task"], e["data"]["depends_on"], e["actor"]) for e in linked] == [
        (c, a, "planner"), (c, b, "planner")]
    res = kb("dep", "rm", c, a, b)
    assert res.json == {"task": c, "depends_on": [], "dependents": []}
    assert kb("show", c).json["ready"] is True
    assert len(kb("event", "list", "--kind", "unlinked").json["events"]) == 2


def test_dep_add_twice_is_harmless(kb):
    a, b = new(kb, "a"), new(kb, "b")
    kb("dep", "add", b, a)
    before = kb("event", "list").json["events"]
    res = kb("dep", "add", b, a)
    assert res.rc == 0 and res.json["depends_on"] == [a]
    assert kb("event", "list").json["events"] == before
    finish(kb, a)
    assert kb("show", b).json["ready"] is True  # the dep was counted once


def test_deps_can_change_at_any_time(kb):
    a, b = new(kb, "a"), new(kb, "b")
    got = kb("claim", b, agent="w").json
    res = kb("dep", "add", b, a)
    assert res.rc == 0 and kb("show", b).json["status"] == "in_progress"
    kb("complete", b, "--token", got["lease_token"], agent="w")
    assert kb("dep", "rm", b, a).rc == 0
    assert kb("dep", "add", b, a).rc == 0  # on a done task too


def test_dep_on_a_done_task_is_met(kb):
    a = new(kb, "a")
    finish(kb, a)
    b = new(kb, "b", "--depends-on", a)
    assert kb("show", b).json["ready"] is True
    c = new(kb, "c")
    kb("dep", "add", c, a)
    assert kb("show", c).json["ready"] is True


def test_cycles_are_refused(kb):
    a = new(kb, "a")
    b = new(kb, "b", "--depends-on", a)
    c = new(kb, "c", "--depends-on", b)
    before = snapshot(kb)
    assert_error(kb("dep", "add", a, b), "cycle")
    assert_error(kb("dep", "add", a, c), "cycle")  # through b
    assert_error(kb("dep", "add", a, a), "cycle")
    assert_error(kb("dep", "add", a, "TASK-404"), "not_found")
    assert_error(kb("dep", "add", "TASK-404", a), "not_found")
    assert_error(kb("dep", "rm", c, a), "not_found")  # not a direct dep
    assert_error(kb("dep", "list", "TASK-404"), "not_found")
    assert_error(kb("dep", "add", a, "xyz"), "invalid")
    assert_error(kb("dep", "add", a), "usage")
    assert_error(kb("dep", "frob", a, b), "usage")
    # a batch with one bad dep adds none of them
    d = new(kb, "d")
    before = snapshot(kb)
    assert_error(kb("dep", "add", a, d, c), "cycle")
    assert snapshot(kb) == before
    assert kb("dep", "list", a).json["depends_on"] == []


def test_a_task_cannot_depend_on_its_own_goal(kb):
    goal = new(kb, "G", "--kind", "goal")
    t = new(kb, "t", "--goal", goal)
    other = new(kb, "other")
    before = snapshot(kb)
    assert_error(kb("dep", "add", t, goal), "cycle")
    assert_error(kb("create", "u", "--goal", goal, "--depends-on", goal), "cycle")
    # nor on its goal through another task
    kb_dep = kb("dep", "add", other, goal)
    assert kb_dep.rc == 0  # other is not in the goal: it may wait on it
    before = snapshot(kb)
    assert_error(kb("dep", "add", t, other), "cycle")
    assert_error(kb("set", other, "--goal", goal), "cycle")
    assert snapshot(kb) == before


def test_show_waiting_on(kb):
    env = at(0)
    dep_todo = kb("create", "pending dep", env=env).json["id"]
    dep_cancel = kb("create", "dropped dep", env=env).json["id"]
    dep_fail = kb("create", "failing dep", "--max-attempts", "1", env=env).json["id"]
    dep_done = kb("create", "done dep", env=env).json["id"]
    tok = kb("claim", dep_done, agent="w", env=env).json["lease_token"]
    kb("complete", dep_done, "--token", tok, agent="w", env=env)
    kb("cancel", dep_cancel, "--reason", "not needed", env=env)
    kb("claim", dep_fail, "--lease", "1m", agent="w", env=env)
    kb("lease", "reap", env=at(120))
    assert kb("show", dep_fail, env=at(120)).json["status"] == "failed"
    task = kb("create", "waits", "--depends-on", f"{dep_todo},{dep_cancel},{dep_fail},{dep_done}",
              "--not-before", "2030-03-18T00:00:00Z", "--role", "qa", "--assignee", "w7",
              env=at(120)).json["id"]
    shown = kb("show", task, env=at(120)).json
    assert shown["ready"] is False
    waiting = shown["waiting_on"]
    deps = {w["task"]: w for w in waiting if w["kind"] == "dep"}
    assert set(deps) == {dep_todo, dep_cancel, dep_fail}  # the done dep is met
    assert deps[dep_todo]["status"] == "todo"
    assert deps[dep_cancel]["status"] == "cancelled" and "cancelled" in deps[dep_cancel]["note"]
    assert deps[dep_fail]["status"] == "failed" and "failed" in deps[dep_fail]["note"]
    schedule = [w for w in waiting if w["kind"] == "schedule"]
    assert schedule == [{"kind": "schedule", "until": "2030-03-18T00:00:00Z"}]
    assert shown["claimable_by"] == {"role": "qa", "assignee": "w7"}
    for key in ("comments", "runs", "events"):
        assert isinstance(shown[key], list)
    # created, then one `linked` per dep (the seed's audit trail)
    assert [e["kind"] for e in shown["events"]] == ["created"] + ["linked"] * 4
    assert [e["data"]["depends_on"] for e in shown["events"][1:]] == [dep_todo, dep_cancel, dep_fail, dep_done]


def test_show_of_a_ready_task_waits_on_nothing(kb):
    t = new(kb, "free")
    shown = kb("show", t).json
    assert shown["ready"] is True and shown["waiting_on"] == []
    assert shown["claimable_by"] == {"role": None, "assignee": None}


def test_show_of_a_claimed_task_names_its_status(kb):
    t = new(kb, "t")
    kb("claim", t, agent="w1")
    waiting = kb("show", t).json["waiting_on"]
    assert waiting and waiting[0]["status"] == "in_progress"


# -- goals -----------------------------------------------------------------------------


def test_goal_is_done_when_all_its_tasks_are_done_or_cancelled(kb):
    goal = new(kb, "Launch", "--kind", "goal")
    assert kb("show", goal).json["status"] == "todo"
    t1 = new(kb, "t1", "--goal", goal)
    t2 = new(kb, "t2", "--goal", goal)
    t3 = new(kb, "t3", "--goal", goal)
    finish(kb, t1)
    assert kb("show", goal).json["status"] == "todo"
    kb("cancel", t2)
    assert kb("show", goal).json["status"] == "todo"
    finish(kb, t3)
    shown = kb("show", goal).json
    assert shown["status"] == "done"
    assert shown["progress"] == {"total": 3, "done": 2, "cancelled": 1}
    completed = kb("event", "list", "--task", goal, "--kind", "completed").json["events"]
    assert len(completed) == 1
    assert [t["id"] for t in kb("list", "--goal", goal).json["tasks"]] == [t1, t2, t3]


def test_an_empty_goal_is_not_done(kb):
    goal = new(kb, "empty", "--kind", "goal")
    assert kb("show", goal).json["status"] == "todo"
    assert kb("claim", agent="w").json == {}
    assert_error(kb("claim", goal, agent="w"), "conflict")


def test_adding_a_task_reopens_a_done_goal(kb):
    goal = new(kb, "G", "--kind", "goal")
    t1 = new(kb, "t1", "--goal", goal)
    finish(kb, t1)
    assert kb("show", goal).json["status"] == "done"
    t2 = new(kb, "t2", "--goal", goal)
    assert kb("show", goal).json["status"] == "todo"
    assert len(kb("event", "list", "--task", goal, "--kind", "reopened").json["events"]) == 1
    finish(kb, t2)
    assert kb("show", goal).json["status"] == "done"
    # moving a task in with set --goal reopens it too
    t3 = new(kb, "t3")
    kb("set", t3, "--goal", goal)
    assert kb("show", goal).json["status"] == "todo"
    kb("set", t3, "--clear", "goal")
    assert kb("show", goal).json["status"] == "done"
    # and so does reopening one of its tasks
    kb("reopen", t1)
    assert kb("show", goal).json["status"] == "todo"


def test_goal_deps_wait_for_the_goal(kb):
    goal = new(kb, "G", "--kind", "goal")
    t1 = new(kb, "t1", "--goal", goal)
    after = new(kb, "after the goal", "--depends-on", goal)
    assert kb("show", after).json["ready"] is False
    finish(kb, t1)
    assert kb("show", goal).json["status"] == "done"
    assert kb("show", after).json["ready"] is True


def test_goal_created_in_a_batch(kb):
    batch = "".join(json.dumps(d) + "\n" for d in (
        {"title": "G", "kind": "goal", "key": "g"},
        {"title": "a", "goal": "g", "key": "a"},
    ))
    goal, a = kb("create", "--stdin", input=batch).json
    assert a["goal"] == goal["id"]
    finish(kb, a["id"])
    assert kb("show", goal["id"]).json["status"] == "done"


# -- goals rolled up: nested, blocked and unblocked, reopened ---------------------------------------


def status(kb, task_id):
    return kb("show", task_id).json["status"]


def test_a_goal_inside_a_goal_finishes_the_outer_one(kb):
    outer = new(kb, "outer", "--kind", "goal")
    inner = new(kb, "inner", "--kind", "goal", "--goal", outer)
    deeper = new(kb, "deeper", "--kind", "goal", "--goal", inner)
    task = new(kb, "the work", "--goal", deeper)
    after = new(kb, "after the outer goal", "--depends-on", outer)
    assert kb("show", after).json["ready"] is False
    finish(kb, task)
    assert [status(kb, g) for g in (deeper, inner, outer)] == ["done", "done", "done"]
    assert kb("show", after).json["ready"] is True
    assert kb("claim", agent="w").json["id"] == after
    # a task added deep inside reopens every goal above it
    late = new(kb, "late", "--goal", deeper)
    assert [status(kb, g) for g in (deeper, inner, outer)] == ["todo", "todo", "todo"]
    finish(kb, late)
    assert [status(kb, g) for g in (deeper, inner, outer)] == ["done", "done", "done"]
    # reopening a task inside reopens them all
    assert kb("reopen", task).rc == 0
    assert [status(kb, g) for g in (deeper, inner, outer)] == ["todo", "todo", "todo"]


def test_a_goal_blocked_while_its_tasks_finish_is_done_when_unblocked(kb):
    goal = new(kb, "goal", "--kind", "goal")
    task = new(kb, "work", "--goal", goal)
    waiting = new(kb, "waits on the goal", "--depends-on", goal)
    assert kb("block", goal, "--reason", "on hold").rc == 0
    finish(kb, task)
    assert status(kb, goal) == "blocked"
    assert kb("unblock", goal).json["status"] == "done"
    assert kb("show", waiting).json["ready"] is True


@pytest.fixture(params=backends())
def any_kb(request, tmp_path):
    """kb's runner on this test's backend: a SQLite file, or a schema of its own on KANBAN_TEST_PG."""
    if request.param == "sqlite":
        where = str(tmp_path / "board.db")
    else:
        schema, where = new_pg_schema()
    assert run("init", env={"KANBAN_DB": where}).rc == 0

    def runner(*args, agent=None):
        return run(*args, env={"KANBAN_DB": where, **({"KANBAN_AGENT": agent} if agent else {})})
    yield runner
    if request.param == "postgres":
        drop_pg_schemas(schema)


def test_reopen_refuses_a_goal_whose_tasks_are_all_closed(any_kb):
    """A goal is done while it has tasks and all are done or cancelled (SPEC §4): reopened it
    would be done again at once, so reopen refuses it, says why, and changes nothing."""
    kb = any_kb
    outer = new(kb, "outer", "--kind", "goal")
    goal = new(kb, "goal", "--kind", "goal", "--goal", outer)
    task = new(kb, "work", "--goal", goal)
    waiting = new(kb, "waits on the goal", "--depends-on", goal)
    finish(kb, task)
    assert status(kb, goal) == "done" and status(kb, outer) == "done"
    before = snapshot(kb)
    doc = assert_error(kb("reopen", goal), "conflict")
    assert doc["task"] == goal and doc["status"] == "done"
    assert doc["error"] == (f"{goal} is a goal and its task is done or cancelled, so it stays done: reopen one of "
                            "its tasks, or add one, and the goal reopens with it")
    assert snapshot(kb) == before  # no reopened/completed pair, nothing else either
    assert kb("show", waiting).json["ready"] is True
    # what the error says reopens it does
    assert kb("reopen", task).rc == 0
    assert status(kb, goal) == "todo" and status(kb, outer) == "todo"
    finish(kb, task)
    assert status(kb, goal) == "done" and status(kb, outer) == "done"
    # a cancelled goal whose tasks are all closed: the same, until one of them is open again
    second = new(kb, "second", "--goal", goal)
    assert kb("cancel", goal).rc == 0
    finish(kb, second)
    doc = assert_error(kb("reopen", goal), "conflict")
    assert doc["status"] == "cancelled" and "all 2 of its tasks are done or cancelled" in doc["error"]
    assert doc["error"].endswith("so reopened it would be done at once: reopen one of its tasks first")
    assert kb("reopen", second).rc == 0 and status(kb, goal) == "cancelled"
    assert kb("reopen", goal).json["status"] == "todo"
    # a goal with no tasks reopens as any task does
    empty = new(kb, "empty", "--kind", "goal")
    assert kb("cancel", empty).rc == 0
    assert kb("reopen", empty).json["status"] == "todo"


def test_a_task_depending_on_itself_is_told_so(kb):
    # the cycle's message must be true: a task is not said to 'already wait on' itself
    a = kb("create", "a").json["id"]
    doc = assert_error(kb("dep", "add", a, a), "cycle")
    assert doc["error"] == f"{a} cannot depend on itself", doc
    assert doc["task"] == doc["dep"] == a
    doc = assert_error(kb("create", "--stdin", input='{"title": "b", "key": "b", "depends_on": ["b"]}\n'), "cycle")
    assert doc["error"].endswith("cannot depend on itself"), doc
    b = kb("create", "b").json["id"]
    kb("dep", "add", b, a)
    doc = assert_error(kb("dep", "add", a, b), "cycle")  # a real cycle keeps its message
    assert doc["error"] == f"{a} cannot depend on {b}: {b} already waits on {a}"
