"""The published JSON schemas (schemas/*.schema.json) against real output (SPEC §1, §3-§5, §10).

Every plumbing verb prints one JSON document that validates against
schemas/kanban-VERB.schema.json; every failure's stderr line validates against
error.schema.json.  Each test runs the real command, validates what it printed,
and checks the value that shows the shape was the one meant (so a schema that
accepts anything would still be caught by the negative tests at the end).
"""
import json
import os
import stat
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from conftest import KANBAN, run
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
LIBEXEC = ROOT / "libexec"
BASE = "https://kanban.dev/schemas/"

# SPEC §4: every key of a task, always present
TASK_KEYS = {
    "id", "kind", "title", "body", "status", "priority", "project", "role_boundary", "assignee",
    "goal", "depends_on", "review", "claimed_by", "lease_until", "attempts", "max_attempts",
    "not_before", "idempotency_key", "created_at", "updated_at", "ready",
}
T0 = "2030-01-01T00:00:00Z"


def _load():
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(SCHEMAS.glob("*.json"))}


DOCS = _load()
REGISTRY = Registry().with_resources(
    (doc["$id"], Resource.from_contents(doc, default_specification=DRAFT202012))
    for doc in DOCS.values() if isinstance(doc, dict) and "$id" in doc
)

# jsonschema checks "date-time" only with an optional package: check it here, strictly
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value):
    if isinstance(value, str):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.utcoffset() is None:
            raise ValueError(f"{value!r} has no time zone")
    return True


def validator(name):
    return Draft202012Validator(DOCS[f"{name}.schema.json"], registry=REGISTRY, format_checker=FORMATS)


def validate(name, instance):
    """Assert `instance` validates against schemas/<name>.schema.json; return it."""
    error = best_match(validator(name).iter_errors(instance))
    assert error is None, f"{name}: {error.message} at {list(error.absolute_path)}\n{json.dumps(instance)[:2000]}"
    return instance


def valid(name, instance):
    return validator(name).is_valid(instance)


def out(kb, *args, schema=None, **kw):
    """Run a plumbing verb; it must succeed with one JSON document that fits its schema."""
    res = kb(*args, **kw)
    assert res.rc == 0, res
    assert res.out.endswith("\n") and res.out.count("\n") == 1, f"not one JSON line: {res.out!r}"
    return validate(schema or f"kanban-{args[0]}", res.json)


def fails(res, code):
    """Exit 2, nothing on stdout, one JSON line on stderr that fits error.schema.json.

    Hooks may write to stderr too (SPEC §7): the error is the one JSON line, and the last."""
    assert res.rc == 2, res
    assert res.out == "", res
    lines = [line for line in res.err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("{")]
    assert len(errors) == 1 and lines[-1] == errors[0], res
    doc = validate("error", json.loads(errors[0]))
    assert doc["code"] == code, res
    return doc


def claimed(kb, agent="w1", *args, **kw):
    return out(kb, "claim", *args, agent=agent, **kw)


# -- the schemas themselves ---------------------------------------------------------------


def test_every_plumbing_verb_has_a_schema():
    verbs = sorted(p.name[len("kanban-"):] for p in LIBEXEC.glob("kanban-*"))
    assert len(verbs) >= 23
    missing = [v for v in verbs if f"kanban-{v}.schema.json" not in DOCS]
    assert not missing, f"verbs without a schema: {missing}"
    for name in ("task", "event", "error", "kanban-commands"):
        assert f"{name}.schema.json" in DOCS


@pytest.mark.parametrize("filename", sorted(DOCS))
def test_every_schema_is_a_valid_schema(filename):
    doc = DOCS[filename]
    validator_for(doc).check_schema(doc)


OURS = sorted(f for f in DOCS if f.startswith("kanban-") or f in ("task.schema.json", "event.schema.json",
                                                                    "error.schema.json"))


@pytest.mark.parametrize("filename", OURS)
def test_schema_headers(filename):
    doc = DOCS[filename]
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == BASE + filename
    assert doc["title"] and doc["description"]
    assert doc["x-kanban-schema-version"] == 1


def _refs(node):
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


@pytest.mark.parametrize("filename", OURS)
def test_every_ref_resolves(filename):
    resolver = REGISTRY.resolver(base_uri=DOCS[filename]["$id"])
    refs = list(_refs(DOCS[filename]))
    for ref in refs:
        assert not ref.startswith("http"), f"{filename}: use relative refs, not {ref}"
        resolved = resolver.lookup(ref).contents
        assert isinstance(resolved, (dict, bool)), ref


def test_schemas_match_the_closed_lists():
    from kanban import board, errors

    task = DOCS["task.schema.json"]
    assert set(task["required"]) == TASK_KEYS
    assert task["$defs"]["status"]["enum"] == list(board.STATUSES)
    assert DOCS["event.schema.json"]["properties"]["kind"]["enum"] == list(board.EVENT_KINDS)
    assert set(DOCS["error.schema.json"]["properties"]["code"]["enum"]) == set(errors.CODES)
    assert task["properties"]["id"] == {"$ref": "#/$defs/id"}
    assert task["$defs"]["id"]["pattern"] == "^TASK-[0-9]+$"


# -- one test per verb and output shape ---------------------------------------------------------


def test_init(kb, tmp_path):
    again = out(kb, "init")
    assert again["created"] is False and again["db"] == str(kb.path)
    fresh = tmp_path / "other" / "board.db"
    res = run("init", env={"KANBAN_DB": fresh})
    assert res.rc == 0, res
    doc = validate("kanban-init", res.json)
    assert doc["created"] is True and doc["schema_version"] >= 1 and "skills" not in doc
    res = run("init", "--harness", "generic", env={"KANBAN_DB": fresh}, cwd=tmp_path)  # AGENTS.md goes here
    assert res.rc == 0, res
    skills = validate("kanban-init", res.json)["skills"]
    assert len(skills) == 1 and os.path.isfile(skills[0])


def test_create_one_and_the_key_again(kb):
    first = out(kb, "create", "Write the parser", "--body", "b", "--priority", "3", "--project", "p",
                "--role", "dev", "--assignee", "w1", "--max-attempts", "2", "--review", "--key", "k1",
                "--not-before", "+1h")
    assert first["created"] is True and first["id"] == "TASK-1"
    assert first["not_before"].endswith("Z") and first["max_attempts"] == 2
    second = out(kb, "create", "other title", "--key", "k1")
    assert second["created"] is False and second["id"] == "TASK-1"


def test_create_goal_with_deps(kb):
    goal = out(kb, "create", "Ship it", "--kind", "goal")
    assert goal["kind"] == "goal" and goal["ready"] is False
    dep = out(kb, "create", "first")
    task = out(kb, "create", "second", "--goal", goal["id"], "--depends-on", dep["id"])
    assert task["goal"] == goal["id"] and task["depends_on"] == [dep["id"]] and task["ready"] is False


def test_create_stdin_prints_an_array(kb):
    lines = "\n".join(json.dumps(spec) for spec in [
        {"title": "g", "kind": "goal", "key": "g"},
        {"title": "a", "key": "a", "goal": "g", "priority": 2},
        {"title": "b", "depends_on": ["a"], "goal": "g", "review": True},
    ]) + "\n"
    doc = out(kb, "create", "--stdin", input=lines)
    assert isinstance(doc, list) and [t["title"] for t in doc] == ["g", "a", "b"]
    assert doc[2]["depends_on"] == [doc[1]["id"]]
    again = out(kb, "create", "--stdin", input=lines.splitlines()[0] + "\n")
    assert again[0]["created"] is False


def test_claim_a_task(kb):
    kb("create", "t", "--priority", "1")
    doc = claimed(kb, "w1", "--lease", "5m")
    assert doc["status"] == "in_progress" and doc["claimed_by"] == "w1"
    assert isinstance(doc["lease_token"], int) and not isinstance(doc["lease_token"], bool)


def test_claim_nothing_is_an_empty_object(kb):
    assert out(kb, "claim", agent="w1") == {}
    res = kb("claim", "--exit-code", agent="w1")
    assert res.rc == 1 and validate("kanban-claim", res.json) == {}


def test_claim_by_id_and_for_review(kb):
    task = out(kb, "create", "t", "--review")
    mine = claimed(kb, "w1", task["id"])
    kb("complete", task["id"], "--token", mine["lease_token"], agent="w1")
    review = claimed(kb, "r1", "--for-review")
    assert review["id"] == task["id"] and review["status"] == "in_review" and review["claimed_by"] == "r1"
    assert review["lease_token"] > mine["lease_token"]
    assert out(kb, "claim", "--for-review", agent="r2") == {}


def test_lease_renew_and_release(kb):
    task = out(kb, "create", "t")
    mine = claimed(kb, "w1", "--lease", "1m")
    renewed = out(kb, "lease", "renew", task["id"], "--token", mine["lease_token"], "--lease", "1h", agent="w1")
    assert renewed["lease_token"] == mine["lease_token"] and renewed["lease_until"] > mine["lease_until"]
    released = out(kb, "lease", "release", task["id"], "--token", mine["lease_token"], agent="w1")
    assert released["status"] == "todo" and "lease_token" not in released
    assert not valid("kanban-lease", dict(released, status="in_progress"))


def test_lease_release_of_a_review_claim(kb):
    task = out(kb, "create", "t", "--review")
    mine = claimed(kb, "w1")
    kb("complete", task["id"], "--token", mine["lease_token"], agent="w1")
    review = claimed(kb, "r1", "--for-review")
    doc = out(kb, "lease", "release", task["id"], "--token", review["lease_token"], agent="r1")
    assert doc["status"] == "in_review" and doc["claimed_by"] is None


def test_lease_reap(kb):
    assert out(kb, "lease", "reap") == {"expired": []}
    kb("create", "t", "--max-attempts", "1")
    kb("create", "u")
    claimed(kb, "w1", "--lease", "1m", env={"KANBAN_NOW": T0})
    claimed(kb, "w1", "--lease", "1m", env={"KANBAN_NOW": T0})
    doc = out(kb, "lease", "reap", env={"KANBAN_NOW": "2030-01-01T01:00:00Z"})
    assert sorted(t["status"] for t in doc["expired"]) == ["failed", "todo"]
    # the lease_expired events name an actor even though reap was given none
    events = out(kb, "event", "list", "--kind", "lease_expired")
    assert len(events["events"]) == 2 and all(e["actor"] for e in events["events"])


def test_event_log(kb):
    task = out(kb, "create", "t")
    plain = out(kb, "event", "log", task["id"], "--message", "half way", agent="w1")
    assert plain["kind"] == "progress" and plain["data"] == {"message": "half way"}
    mine = claimed(kb, "w1")
    fenced = out(kb, "log-progress", task["id"], "with token", "--token", mine["lease_token"], agent="w1",
                 schema="kanban-event")
    assert fenced["data"]["token"] == mine["lease_token"] and fenced["data"]["lease_until"].endswith("Z")


def test_event_list_and_cursor(kb):
    empty = out(kb, "event", "list")
    assert empty["events"] == [] and isinstance(empty["cursor"], str)
    task = out(kb, "create", "t")
    kb("comment", task["id"], "--message", "note")
    kb("set", task["id"], "--priority", "4")
    page = out(kb, "event", "list", "--limit", "2")
    assert [e["kind"] for e in page["events"]] == ["created", "commented"]
    rest = out(kb, "event", "list", "--since", page["cursor"], "--task", task["id"])
    assert [e["kind"] for e in rest["events"]] == ["updated"]
    assert rest["events"][0]["data"]["fields"] == {"priority": 4}
    same = out(kb, "event", "list", "--since", rest["cursor"])
    assert same == {"events": [], "cursor": rest["cursor"]}


def test_event_list_follow_prints_events_as_json_lines(kb):
    task = out(kb, "create", "t")
    kb("event", "log", task["id"], "m", agent="w1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env["KANBAN_DB"] = str(kb.path)
    proc = subprocess.Popen([str(KANBAN), "event", "list", "--follow"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    kinds = [validate("event", json.loads(line))["kind"] for line in lines]
    assert kinds == ["created", "progress"]


def test_hook_failed_event(kb, tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    hook = hooks / "post-create"
    hook.write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    hook.chmod(stat.S_IRWXU)
    out(kb, "create", "t", env={"KANBAN_HOOKS_DIR": hooks})
    doc = out(kb, "event", "list", "--kind", "hook_failed")
    assert len(doc["events"]) == 1 and doc["events"][0]["task"] == "TASK-1"


def test_dep_add_rm_list(kb):
    a, b, c = (out(kb, "create", name)["id"] for name in "abc")
    added = out(kb, "dep", "add", c, a, b)
    assert added == {"task": c, "depends_on": [a, b], "dependents": []}
    listed = out(kb, "dep", "list", a)
    assert listed["dependents"] == [c]
    removed = out(kb, "dep", "rm", c, a)
    assert removed["depends_on"] == [b]


def test_complete_done_and_to_review(kb):
    t1 = out(kb, "create", "t1", "--priority", "2")
    t2 = out(kb, "create", "t2")
    first = claimed(kb, "w1")
    done = out(kb, "complete", t1["id"], "--token", first["lease_token"], "--summary", "ok", agent="w1")
    assert done["status"] == "done" and done["claimed_by"] is None
    second = claimed(kb, "w1")
    review = out(kb, "complete", t2["id"], "--token", second["lease_token"], "--review", agent="w1")
    assert review["status"] == "in_review" and review["review"] is True
    assert not valid("kanban-complete", dict(review, status="todo"))


def _in_review(kb):
    task = out(kb, "create", "t", "--review")
    mine = claimed(kb, "w1")
    kb("complete", task["id"], "--token", mine["lease_token"], agent="w1")
    return task["id"]


def test_approve(kb):
    task = _in_review(kb)
    review = claimed(kb, "r1", "--for-review")
    doc = out(kb, "approve", task, "--token", review["lease_token"], "--comment", "lgtm", agent="r1")
    assert doc["status"] == "done"
    shown = out(kb, "show", task)
    assert [c["body"] for c in shown["comments"]] == ["lgtm"]


def test_reject(kb):
    task = _in_review(kb)
    doc = out(kb, "reject", task, "--reason", "tests fail", agent="r1")
    assert doc["status"] == "todo" and doc["claimed_by"] is None


def test_block_unblock_cancel_reopen(kb):
    todo = out(kb, "create", "todo one")["id"]
    held = out(kb, "create", "held one")["id"]
    assert out(kb, "block", todo, "--reason", "waiting on infra")["status"] == "blocked"
    mine = claimed(kb, "w1", held)
    stuck = out(kb, "block", held, "--reason", "stuck", "--token", mine["lease_token"], agent="w1")
    assert stuck["status"] == "blocked" and stuck["claimed_by"] is None
    assert out(kb, "unblock", todo, "--reason", "infra is up")["status"] == "todo"
    assert out(kb, "cancel", todo, "--reason", "not needed")["status"] == "cancelled"
    assert out(kb, "reopen", todo)["status"] == "todo"
    assert not valid("kanban-cancel", out(kb, "show", todo, schema="kanban-show"))


def test_show_a_ready_task(kb):
    task = out(kb, "create", "t", "--role", "dev", "--assignee", "w1")
    kb("comment", task["id"], "--message", "first")
    doc = out(kb, "show", task["id"])
    assert doc["ready"] is True and doc["waiting_on"] == []
    assert doc["claimable_by"] == {"role": "dev", "assignee": "w1"}
    assert [c["body"] for c in doc["comments"]] == ["first"] and doc["runs"] == []
    assert [e["kind"] for e in doc["events"]] == ["created", "commented"]


def test_show_a_goal_has_progress(kb):
    goal = out(kb, "create", "g", "--kind", "goal")["id"]
    kb("create", "a", "--goal", goal)
    b = out(kb, "create", "b", "--goal", goal)["id"]
    kb("cancel", b)
    doc = out(kb, "show", goal)
    assert doc["progress"] == {"total": 2, "done": 0, "cancelled": 1}
    assert doc["waiting_on"][0]["kind"] == "goal"
    del doc["progress"]
    assert not valid("kanban-show", doc)


def test_show_every_reason_to_wait(kb):
    dep = out(kb, "create", "dep")["id"]
    kb("cancel", dep, "--reason", "dropped")
    waiting = out(kb, "create", "waits", "--depends-on", dep, "--not-before", "+2h")["id"]
    doc = out(kb, "show", waiting)
    kinds = {w["kind"]: w for w in doc["waiting_on"]}
    assert kinds["dep"]["status"] == "cancelled" and "cancelled" in kinds["dep"]["note"]
    assert kinds["schedule"]["until"] == doc["not_before"]
    blocked = out(kb, "show", dep)
    assert blocked["waiting_on"] == [{"kind": "status", "status": "cancelled", "reason": "dropped"}]
    assert blocked["reason"] == "dropped"


def test_show_a_task_in_progress_with_a_run(kb, board):
    task = out(kb, "create", "t")["id"]
    mine = claimed(kb, "w1")
    run_doc = board.run_start(task, agent="w1", token=mine["lease_token"])
    doc = out(kb, "show", task)
    assert doc["waiting_on"][0] == {"kind": "status", "status": "in_progress", "claimed_by": "w1",
                                    "lease_until": mine["lease_until"], "lease_expired": False}
    assert [r["id"] for r in doc["runs"]] == [run_doc["id"]] and doc["runs"][0]["ended_at"] is None
    kb("complete", task, "--token", mine["lease_token"], agent="w1")
    ended = out(kb, "show", task)
    assert ended["runs"][0]["outcome"] == "completed" and ended["runs"][0]["ended_at"].endswith("Z")
    assert "run_completed" in [e["kind"] for e in ended["events"]]


def test_list_and_search(kb):
    assert out(kb, "list") == {"tasks": []}
    kb("create", "Parse the config file", "--body", "YAML please", "--priority", "2")
    kb("create", "Write docs", "--project", "web")
    kb("create", "Plan", "--kind", "goal")
    doc = out(kb, "list")
    assert [t["title"] for t in doc["tasks"]] == ["Parse the config file", "Write docs", "Plan"]
    assert len(out(kb, "list", "--ready", "--project", "web")["tasks"]) == 1
    found = out(kb, "search", "yaml")
    assert [t["title"] for t in found["tasks"]] == ["Parse the config file"]
    assert out(kb, "search", "nothing-matches-this") == {"tasks": []}


def test_comment(kb):
    task = out(kb, "create", "t")["id"]
    doc = out(kb, "comment", task, "--message", "looks good", agent="w2")
    assert doc["task"] == task and doc["actor"] == "w2" and doc["body"] == "looks good"
    positional = out(kb, "comment", task, "second")
    assert positional["id"] > doc["id"]


def test_set(kb):
    task = out(kb, "create", "t", "--body", "b", "--project", "p")["id"]
    doc = out(kb, "set", task, "--title", "T", "--priority", "7", "--review", "--clear", "body,project")
    assert (doc["title"], doc["priority"], doc["review"], doc["body"], doc["project"]) == ("T", 7, True, None, None)


def test_batch_claim_and_complete(kb):
    assert out(kb, "batch", "claim", "3", agent="w1") == []
    for title in "abc":
        kb("create", title)
    claims = out(kb, "batch", "claim", "2", agent="w1")
    assert len(claims) == 2 and all(c["status"] == "in_progress" for c in claims)
    pairs = [f"{c['id']}:{c['lease_token']}" for c in claims]
    done = out(kb, "batch", "complete", *pairs, agent="w1")
    assert [t["status"] for t in done] == ["done", "done"]


def test_batch_set_priority_and_project(kb):
    ids = [out(kb, "create", title)["id"] for title in "ab"]
    prioritised = out(kb, "batch", "set-priority", "5", *ids)
    assert [t["priority"] for t in prioritised] == [5, 5]
    moved = out(kb, "batch", "set-project", "web", *ids)
    assert [t["project"] for t in moved] == ["web", "web"]


def test_stats(kb):
    empty = out(kb, "stats")
    assert empty["tasks"] == 0 and empty["cycle_time_s"]["p50"] is None
    task = out(kb, "create", "t")["id"]
    kb("create", "g", "--kind", "goal")
    mine = claimed(kb, "w1", env={"KANBAN_NOW": T0})
    kb("complete", task, "--token", mine["lease_token"], agent="w1", env={"KANBAN_NOW": "2030-01-01T00:01:00Z"})
    doc = out(kb, "stats", env={"KANBAN_NOW": "2030-01-01T00:02:00Z"})
    assert doc["counts"]["done"] == 1 and doc["goals"] == 1 and doc["done_in"]["1h"] == 1
    assert doc["cycle_time_s"]["p50"] == 60


def test_prune(kb):
    task = out(kb, "create", "t")["id"]
    kb("event", "log", task, "old note", agent="w1", env={"KANBAN_NOW": "2020-01-01T00:00:00Z"})
    out(kb, "create", "later")  # the newest event is never pruned: the note is not the newest
    doc = out(kb, "prune", "--before", "1d", "--vacuum")
    assert doc["pruned"] == 1 and doc["vacuumed"] is True
    assert out(kb, "prune")["pruned"] == 0


def test_doctor(kb):
    doc = out(kb, "doctor")
    assert doc["ok"] is True and doc["integrity"] == ["ok"] and doc["findings"] == []
    assert doc["db"] == str(kb.path)


def test_backup(kb, tmp_path):
    kb("create", "t")
    target = tmp_path / "copy.db"
    doc = out(kb, "backup", target)
    assert doc["backup"] == str(target) and doc["integrity"] == "ok" and doc["bytes"] == target.stat().st_size
    copied = run("list", env={"KANBAN_DB": target})
    assert [t["title"] for t in validate("kanban-list", copied.json)["tasks"]] == ["t"]


def test_commands(kb):
    doc = out(kb, "commands")
    names = {c["name"]: c for c in doc["commands"]}
    assert {p.name[len("kanban-"):] for p in LIBEXEC.glob("kanban-*")} <= set(names)
    assert "claim-next" in names["claim"]["aliases"] and names["claim"]["kind"] == "plumbing"


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args, agent, code", [
    (("show", "TASK-999"), None, "not_found"),
    (("create", "x", "--priority", "high"), None, "invalid"),
    (("create", "   "), None, "invalid"),
    (("claim", "--lease", "-5m"), "w1", "invalid"),
    (("event", "list", "--since", "not-a-cursor"), None, "invalid"),
    (("no-such-verb",), None, "usage"),
    (("claim", "--no-such-option"), "w1", "usage"),
    (("claim",), None, "usage"),
    (("create",), None, "usage"),
])
def test_errors_on_an_empty_board(kb, args, agent, code):
    doc = fails(kb(*args, agent=agent), code)
    assert doc["retryable"] is False


def test_errors_of_state_and_gates(kb):
    a = out(kb, "create", "a", "--review")["id"]
    b = out(kb, "create", "b", "--depends-on", a)["id"]
    assert fails(kb("complete", a, "--token", "1", agent="w1"), "conflict")["task"] == a
    fails(kb("dep", "add", a, b), "cycle")
    mine = claimed(kb, "w1", a)
    fails(kb("lease", "renew", a, "--token", str(mine["lease_token"] + 100), agent="w1"), "lease_lost")
    fails(kb("complete", a, "--token", "abc", agent="w1"), "invalid")
    kb("complete", a, "--token", mine["lease_token"], agent="w1")
    fails(kb("approve", a, agent="w1"), "forbidden")
    fails(kb("list", env={"KANBAN_DB": kb.path.parent / "missing" / "board.db"}), "not_found")


def test_error_hook_rejected_carries_detail(kb, tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    hook = hooks / "pre-complete"
    hook.write_text("#!/bin/sh\necho 'lint failed' >&2\nexit 1\n")
    hook.chmod(stat.S_IRWXU)
    kb("create", "t")
    mine = claimed(kb, "w1")
    doc = fails(kb("complete", mine["id"], "--token", mine["lease_token"], agent="w1",
                   env={"KANBAN_HOOKS_DIR": hooks}), "hook_rejected")
    assert "lint failed" in doc["detail"]


def test_error_db_error(kb, tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    fails(kb("list", env={"KANBAN_DB": junk}), "db_error")


# -- the Python API answers the same documents -----------------------------------------------


def test_python_api_answers_fit_the_schemas(board):
    from kanban import KanbanError

    goal = validate("kanban-create", board.create("goal", kind="goal", actor="me"))
    task = validate("kanban-create", board.create("t", goal=goal["id"], review=True, actor="me"))
    validate("kanban-create", board.create_many([{"title": "a", "key": "a"}, {"title": "b", "depends_on": ["a"]}]))
    mine = validate("kanban-claim", board.claim("w1", task["id"]))
    assert mine["lease_token"] >= 1
    validate("kanban-claim", board.claim("w1", role="nobody-has-this-role", project="none"))
    validate("kanban-lease", board.renew(task["id"], mine["lease_token"], agent="w1"))
    validate("kanban-event", board.log(task["id"], "note", agent="w1"))
    validate("kanban-complete", board.complete(task["id"], mine["lease_token"], agent="w1"))
    validate("kanban-show", board.show(task["id"]))
    validate("kanban-show", board.show(goal["id"]))
    validate("kanban-event", board.events(limit=5))
    validate("kanban-list", board.list())
    validate("kanban-search", board.search("t"))
    validate("kanban-dep", board.dep_list(task["id"]))
    validate("kanban-lease", board.reap())
    validate("kanban-stats", board.stats())
    validate("kanban-doctor", board.doctor())
    validate("kanban-batch", board.claim_many("w2", 5))
    with pytest.raises(KanbanError) as caught:
        board.approve(task["id"], agent="w1")
    assert validate("error", caught.value.to_dict())["code"] == "forbidden"


# -- the schemas refuse what the SPEC forbids ----------------------------------------------------


@pytest.fixture
def sample(kb):
    """Real documents to break."""
    task = out(kb, "create", "t", "--key", "k")
    mine = claimed(kb, "w1")
    event = out(kb, "event", "log", task["id"], "m", agent="w1")
    return {"task": {k: v for k, v in task.items() if k != "created"}, "claim": mine, "event": event}


def _without(doc, key):
    return {k: v for k, v in doc.items() if k != key}


@pytest.mark.parametrize("name, which, change", [
    ("task", "task", lambda t: _without(t, "ready")),
    ("task", "task", lambda t: _without(t, "not_before")),
    ("task", "task", lambda t: dict(t, status="doing")),
    ("task", "task", lambda t: dict(t, id="T-1")),
    ("task", "task", lambda t: dict(t, id=1)),
    ("task", "task", lambda t: dict(t, priority="high")),
    ("task", "task", lambda t: dict(t, priority=1.5)),
    ("task", "task", lambda t: dict(t, review=1)),
    ("task", "task", lambda t: dict(t, depends_on=None)),
    ("task", "task", lambda t: dict(t, depends_on=["TASK-1", "TASK-1"])),
    ("task", "task", lambda t: dict(t, created_at="2030-01-01 00:00:00")),
    ("task", "task", lambda t: dict(t, created_at="2030-01-01T00:00:00+01:00")),
    ("task", "task", lambda t: dict(t, created_at="2030-13-45T00:00:00Z")),
    ("task", "task", lambda t: dict(t, status="done", claimed_by="w1")),
    ("task", "task", lambda t: dict(t, ready=True, kind="goal")),
    ("task", "task", lambda t: dict(t, max_attempts=0)),
    ("task", "task", lambda t: dict(t, lease_token="5")),
    ("kanban-create", "task", lambda t: t),
    ("kanban-claim", "claim", lambda c: _without(c, "lease_token")),
    ("kanban-claim", "claim", lambda c: dict(c, lease_token=True)),
    ("kanban-claim", "claim", lambda c: {"nothing": True}),
    ("kanban-lease", "claim", lambda c: dict(c, lease_token=None)),
    ("event", "event", lambda e: _without(e, "data")),
    ("event", "event", lambda e: dict(e, kind="exploded")),
    ("event", "event", lambda e: dict(e, actor=None)),
    ("event", "event", lambda e: dict(e, data={})),
    ("kanban-event", "event", lambda e: {"events": [e]}),
])
def test_schemas_refuse_broken_documents(sample, name, which, change):
    original = sample[which]
    validate(name if name != "kanban-create" else "task", original)
    assert not valid(name, change(dict(original)))


@pytest.mark.parametrize("doc", [
    {"error": "x", "code": "oops", "retryable": False},
    {"error": "", "code": "invalid", "retryable": False},
    {"error": "x", "code": "invalid"},
    {"error": "x", "code": "busy", "retryable": False},
    {"error": "x", "code": "invalid", "retryable": "no"},
])
def test_error_schema_refuses_broken_errors(doc):
    assert not valid("error", doc)
    assert valid("error", {"error": "x", "code": "busy", "retryable": True, "task": "TASK-1", "detail": "d"})
