"""kanban create: one task, idempotency keys, and create --stdin batches (SPEC §4, §5)."""
import json

from conftest import assert_error

TASK_KEYS = {
    "id", "kind", "title", "body", "status", "priority", "project", "role_boundary", "assignee",
    "goal", "depends_on", "review", "claimed_by", "lease_until", "attempts", "max_attempts",
    "not_before", "idempotency_key", "created_at", "updated_at", "ready",
}
def snapshot(kb):
    """Everything a failed command must leave alone: the tasks and the event log."""
    tasks = kb("list")
    events = kb("event", "list", "--limit", "100000")
    assert tasks.rc == 0 and events.rc == 0
    return tasks.out, events.out


def test_create_prints_the_full_task(kb):
    res = kb("create", "write the parser", agent="planner")
    assert res.rc == 0 and res.err == ""
    task = res.json
    assert set(task) == TASK_KEYS | {"created"}
    assert task["created"] is True
    assert task["id"] == "TASK-1" and task["kind"] == "task" and task["title"] == "write the parser"
    assert task["status"] == "todo" and task["ready"] is True and task["priority"] == 0
    for key in ("body", "project", "role_boundary", "assignee", "goal", "claimed_by", "lease_until",
                "max_attempts", "not_before", "idempotency_key"):
        assert task[key] is None, key
    assert task["depends_on"] == [] and task["review"] is False and task["attempts"] == 0
    assert task["created_at"].endswith("Z") and task["updated_at"].endswith("Z")
    events = kb("event", "list").json["events"]
    assert [(e["kind"], e["task"], e["actor"]) for e in events] == [("created", "TASK-1", "planner")]


def test_create_with_every_option(kb):
    goal = kb("create", "ship v1", "--kind", "goal").json
    dep = kb("create", "groundwork").json
    task = kb("create", "the work", "--body", "details here", "--priority", "7", "--project", "web",
              "--role", "backend", "--assignee", "w1", "--goal", goal["id"], "--depends-on", dep["id"],
              "--not-before", "2030-01-01T00:00:00Z", "--max-attempts", "3", "--review", "--key", "k-1").json
    assert goal["kind"] == "goal" and goal["ready"] is False
    assert task["body"] == "details here" and task["priority"] == 7 and task["project"] == "web"
    assert task["role_boundary"] == "backend" and task["assignee"] == "w1"
    assert task["goal"] == goal["id"] and task["depends_on"] == [dep["id"]]
    assert task["not_before"] == "2030-01-01T00:00:00Z" and task["max_attempts"] == 3
    assert task["review"] is True and task["idempotency_key"] == "k-1" and task["ready"] is False
    shown = kb("show", task["id"]).json
    assert {k: shown[k] for k in TASK_KEYS} == {k: task[k] for k in TASK_KEYS}


def test_ids_count_up(kb):
    ids = [kb("create", f"t{n}").json["id"] for n in range(3)]
    assert ids == ["TASK-1", "TASK-2", "TASK-3"]


def test_not_before_takes_epoch_and_relative_times(kb):
    now = 1_900_000_000
    env = {"KANBAN_NOW": now}
    epoch = kb("create", "a", "--not-before", str(now + 60), env=env).json
    assert epoch["not_before"] == "2030-03-17T17:47:40Z" and epoch["ready"] is False
    relative = kb("create", "b", "--not-before", "+10m", env=env).json
    assert relative["not_before"] == "2030-03-17T17:56:40Z"
    past = kb("create", "c", "--not-before", str(now - 1), env=env).json
    assert past["ready"] is True


def test_same_key_returns_the_first_task_unchanged(kb):
    first = kb("create", "original", "--key", "deploy-42", "--priority", "1").json
    before = snapshot(kb)
    again = kb("create", "a different title", "--key", "deploy-42", "--priority", "9", "--project", "x")
    assert again.rc == 0
    second = again.json
    assert second["created"] is False
    assert {k: second[k] for k in TASK_KEYS} == {k: first[k] for k in TASK_KEYS}
    assert second["title"] == "original" and second["priority"] == 1 and second["project"] is None
    assert snapshot(kb) == before  # no new task, no new event


def test_same_key_after_the_task_moved_on(kb):
    first = kb("create", "original", "--key", "k").json
    claimed = kb("claim", agent="w1").json
    again = kb("create", "original", "--key", "k").json
    assert again["created"] is False and again["id"] == first["id"]
    assert again["status"] == "in_progress" and again["claimed_by"] == "w1"
    assert claimed["id"] == first["id"]


def test_dispatch_alias_creates(kb):
    task = kb("dispatch", "via alias", "--priority", "2").json
    assert task["created"] is True and task["title"] == "via alias" and task["priority"] == 2


def test_create_errors_change_nothing(kb):
    kb("create", "existing", "--kind", "goal")
    kb("create", "plain task")
    before = snapshot(kb)
    cases = [
        (["create", ""], "invalid"),
        (["create", "   "], "invalid"),
        (["create", "t", "--priority", "high"], "invalid"),
        (["create", "t", "--priority", "1.5"], "invalid"),
        (["create", "t", "--max-attempts", "0"], "invalid"),
        (["create", "t", "--max-attempts", "many"], "invalid"),
        (["create", "t", "--not-before", "next tuesday"], "invalid"),
        (["create", "t", "--kind", "epic"], "invalid"),
        (["create", "t", "--depends-on", "TASK-404"], "not_found"),
        (["create", "t", "--depends-on", "TASK-1,TASK-404"], "not_found"),
        (["create", "t", "--goal", "TASK-404"], "not_found"),
        (["create", "t", "--goal", "TASK-2"], "invalid"),  # not a goal
        (["create", "t", "--goal", "TASK-1", "--depends-on", "TASK-1"], "cycle"),
        (["create"], "usage"),
        (["create", "t", "--colour", "red"], "usage"),
        (["create", "t", "--priority"], "usage"),
    ]
    for args, code in cases:
        assert_error(kb(*args), code)
    assert snapshot(kb) == before


# -- create --stdin ------------------------------------------------------------------


def lines(*docs):
    return "".join(json.dumps(d) + "\n" for d in docs)


def test_stdin_creates_a_batch_with_key_references(kb):
    batch = lines(
        {"title": "Launch", "kind": "goal", "key": "goal"},
        {"title": "design", "key": "design", "goal": "goal", "priority": 5, "role": "arch"},
        {"title": "build", "key": "build", "goal": "goal", "depends_on": ["design"], "assignee": "w2"},
        {"title": "test", "goal": "goal", "depends_on": ["design", "build"], "review": True,
         "max_attempts": 2, "body": "all of it", "project": "p"},
    )
    res = kb("create", "--stdin", input=batch, agent="planner")
    assert res.rc == 0, res
    tasks = res.json
    assert isinstance(tasks, list) and len(tasks) == 4
    goal, design, build, test = tasks
    assert all(t["created"] is True for t in tasks)
    assert goal["kind"] == "goal" and goal["idempotency_key"] == "goal"
    assert design["goal"] == goal["id"] and design["priority"] == 5 and design["role_boundary"] == "arch"
    assert build["depends_on"] == [design["id"]] and build["assignee"] == "w2" and build["ready"] is False
    assert sorted(test["depends_on"]) == sorted([design["id"], build["id"]])
    assert test["review"] is True and test["max_attempts"] == 2 and test["body"] == "all of it"
    assert test["project"] == "p"
    assert set(tasks[0]) == TASK_KEYS | {"created"}
    listed = {t["id"]: t for t in kb("list").json["tasks"]}
    assert set(listed) == {t["id"] for t in tasks}


def test_stdin_resolves_ids_and_keys_of_earlier_batches(kb):
    old = kb("create", "old task", "--key", "old").json
    plain = kb("create", "plain").json
    res = kb("create", "--stdin", input=lines(
        {"title": "a", "depends_on": ["old"]},
        {"title": "b", "depends_on": [plain["id"]]},
        {"title": "c", "depends_on": [old["id"], "old"]},
    ))
    a, b, c = res.json
    assert a["depends_on"] == [old["id"]] and b["depends_on"] == [plain["id"]]
    assert c["depends_on"] == [old["id"]]


def test_stdin_known_key_is_not_created_again(kb):
    first = kb("create", "first", "--key", "k1").json
    res = kb("create", "--stdin", input=lines({"title": "other", "key": "k1"}, {"title": "new", "key": "k2"}))
    again, new = res.json
    assert again["created"] is False and again["id"] == first["id"] and again["title"] == "first"
    assert new["created"] is True
    assert len(kb("list").json["tasks"]) == 2


def test_stdin_skips_blank_lines(kb):
    res = kb("create", "--stdin", input='\n{"title": "a"}\n\n{"title": "b"}\n\n')
    assert [t["title"] for t in res.json] == ["a", "b"]


def test_stdin_cycle_fails_the_whole_batch(kb):
    kb("create", "before")
    before = snapshot(kb)
    # a task cannot wait on its own goal
    res = kb("create", "--stdin", input=lines(
        {"title": "fine", "key": "fine"},
        {"title": "G", "kind": "goal", "key": "g"},
        {"title": "bad", "goal": "g", "depends_on": ["g"]},
    ))
    assert_error(res, "cycle")
    assert snapshot(kb) == before


def test_stdin_bad_line_fails_the_whole_batch(kb):
    before = snapshot(kb)
    cases = [
        (lines({"title": "ok"}, {"title": ""}), "invalid"),
        (lines({"title": "ok"}, {"title": "x", "priority": "high"}), "invalid"),
        (lines({"title": "ok"}, {"title": "x", "depends_on": ["nope"]}), "not_found"),
        (lines({"title": "ok"}, {"title": "x", "colour": "red"}), "invalid"),
        (lines({"title": "ok"}) + "this is not json\n", "invalid"),
        (lines({"title": "ok"}, ["a", "list"]), "invalid"),
        (lines({"title": "ok"}, {"title": "x", "review": "yes"}), "invalid"),
    ]
    for text, code in cases:
        assert_error(kb("create", "--stdin", input=text), code)
    assert snapshot(kb) == before


def test_stdin_references_keys_further_down_the_batch(kb):
    res = kb("create", "--stdin", input=lines(
        {"title": "deploy", "key": "deploy", "depends_on": ["build"], "goal": "release"},
        {"title": "build", "key": "build", "goal": "release"},
        {"title": "Release", "kind": "goal", "key": "release"},
    ))
    assert res.rc == 0, res
    deploy, build, release = res.json
    assert deploy["depends_on"] == [build["id"]] and deploy["ready"] is False
    assert deploy["goal"] == release["id"] and build["goal"] == release["id"]
    assert kb("show", deploy["id"]).json["depends_on"] == [build["id"]]
    assert [t["id"] for t in kb("list", "--goal", release["id"]).json["tasks"]] == [deploy["id"], build["id"]]
    assert kb("claim", agent="w").json["id"] == build["id"]


def test_stdin_mutual_dependency_is_a_cycle(kb):
    kb("create", "before")
    before = snapshot(kb)
    for batch in (
        lines({"title": "a", "key": "a", "depends_on": ["b"]}, {"title": "b", "key": "b", "depends_on": ["a"]}),
        lines({"title": "a", "key": "a", "depends_on": ["a"]}),
        lines({"title": "a", "key": "a", "depends_on": ["c"]}, {"title": "b", "key": "b", "depends_on": ["a"]},
              {"title": "c", "key": "c", "depends_on": ["b"]}),
        lines({"title": "t", "goal": "g", "depends_on": ["g"]}, {"title": "G", "kind": "goal", "key": "g"}),
        lines({"title": "t", "goal": "g", "depends_on": ["u"]}, {"title": "u", "key": "u", "depends_on": ["g"]},
              {"title": "G", "kind": "goal", "key": "g"}),
    ):
        assert_error(kb("create", "--stdin", input=batch), "cycle")
    assert snapshot(kb) == before


def test_stdin_null_review_is_unset_and_bad_values_are_quoted_as_json(kb):
    """A JSON line's null is unset for every field, review too (it was refused: 'review must be
    true or false'); a bad value is quoted as its writer wrote it, in JSON (true, null, {"a": 1}),
    never as Python's True, None, {'a': 1}."""
    made = kb("create", "--stdin", input='{"title": "n", "review": null}\n').json
    assert made[0]["review"] is False
    before = kb("list").out
    for line, shown in (('{"title": "x", "priority": true}', "bad priority true: "),
                        ('{"title": "x", "max_attempts": false}', "bad max_attempts false: "),
                        ('{"title": "x", "depends_on": [null]}', "bad task reference null: "),
                        ('{"title": "x", "goal": {"a": 1}}', 'bad task reference {"a": 1}: '),
                        ('{"title": "x", "not_before": true}', "bad not_before true: "),
                        ('{"title": "x", "review": "yes"}', "review must be true or false, not 'yes'")):
        doc = assert_error(kb("create", "--stdin", input=line + "\n"), "invalid")
        assert doc["error"].startswith(shown), (line, doc)
    assert kb("list").out == before


def test_stdin_line_that_is_not_json_is_named_by_its_line_and_column(kb):
    """The decoder's own words counted lines within the one line ('line 2 is not JSON:
    Expecting value: line 1 column 1 (char 0)'): now the input's line, and a column in it."""
    doc = assert_error(kb("create", "--stdin", input='{"title": "ok"}\nnot json\n'), "invalid")
    assert doc["error"] == "line 2 is not JSON (expecting value at column 1)" and doc["line"] == 2, doc
    doc = assert_error(kb("create", "--stdin", input='{"title": "x"\n'), "invalid")
    assert doc["error"] == "line 1 is not JSON (expecting ',' delimiter at column 15)", doc
    doc = assert_error(kb("create", "--stdin", input='{"title": "x\n'), "invalid")
    assert doc["error"] == "line 1 is not JSON (invalid control character at column 13)", doc
    assert kb("list").json["tasks"] == []
