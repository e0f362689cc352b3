"""kanban team validate|start|tick|status: the team board of seed 004 (SPEC §6).

Members are real shell scripts started by the real dispatcher; the clock is moved
with KANBAN_NOW where a test needs time to pass (stale runs, expired leases).
"""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import KANBAN
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "team" / "analytics.yaml"
SCHEMAS = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in (ROOT / "schemas").glob("*.json")}
REGISTRY = Registry().with_resources((d["$id"], Resource.from_contents(d, default_specification=DRAFT202012))
                                     for d in SCHEMAS.values() if "$id" in d)
MANY = ("team.yaml is invalid — dispatch_mode=coordinator requires exactly one member with role=coordinator")
T0 = 1_900_000_000  # epoch seconds: the board clock where a test moves time


def valid(document, schema="kanban-team.schema.json"):
    Draft202012Validator(SCHEMAS[schema], registry=REGISTRY).validate(document)
    return document


def at(seconds):
    return {"KANBAN_NOW": str(T0 + seconds)}


def error(res, code):
    assert res.rc == 2 and res.out == "", res
    assert res.error["code"] == code, res
    return res.error


def wait_for(predicate, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def started():
    """Pids of member processes a test's dispatcher started: stopped at the end."""
    pids = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def member_script(folder, name, body):
    path = Path(folder) / name
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(0o755)
    return path


@pytest.fixture
def crew(tmp_path):
    """A team: coordinator `lead` (no command), members `dev` and `qa` that record their prompt
    and environment, print a line, and complete their task; `ops` has no command."""
    out = tmp_path / "out"
    out.mkdir()
    member_script(tmp_path, "finisher.sh", """set -eu
cat > "$OUT/$KANBAN_TASK_ID.prompt"
env | grep '^KANBAN_' | sort > "$OUT/$KANBAN_TASK_ID.env"
echo "hello from $KANBAN_AGENT"
kanban comment "$KANBAN_TASK_ID" --message "working on it" >/dev/null
kanban complete "$KANBAN_TASK_ID" --token "$KANBAN_LEASE_TOKEN" --summary "done by $KANBAN_AGENT" >/dev/null
touch "$OUT/$KANBAN_TASK_ID.done"
""")
    return write_manifest(tmp_path, "crew.yaml", {
        "name": "crew", "description": "test crew", "dispatch_mode": "coordinator", "coordinator": "lead",
        "members": [
            {"personality": "lead", "role": "coordinator"},
            {"personality": "dev", "command": ["./finisher.sh"], "env": {"OUT": str(out)}},
            {"personality": "qa", "role": "member", "command": ["./finisher.sh"], "env": {"OUT": str(out)}},
            {"personality": "ops"},
        ],
        "kanban": {"stale_ms": 90000, "poll_ms": 100},
    })


def write_manifest(folder, name, document):
    path = Path(folder) / name
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")  # JSON is YAML
    return path


def sleeper_team(tmp_path, name="nap", **kanban):
    member_script(tmp_path, "sleeper.sh", "exec sleep 60\n")
    return write_manifest(tmp_path, f"{name}.yaml", {
        "name": name, "coordinator": "lead",
        "members": [{"personality": "lead", "role": "coordinator"},
                    {"personality": "dev", "command": ["./sleeper.sh"]}],
        "kanban": dict({"stale_ms": 90000, "poll_ms": 100}, **kanban)})


# -- validate ---------------------------------------------------------------------------------

def test_validate_the_example(kb):
    res = kb("team", "validate", EXAMPLE)
    assert res.rc == 0, res
    doc = valid(res.json)
    assert doc["ok"] is True and doc["team"] == "analytics" and doc["dispatch_mode"] == "coordinator"
    assert doc["coordinator"] == "coordinator" and doc["domain_capabilities"] == ["analytics", "planning"]
    assert [(m["personality"], m["role"]) for m in doc["members"]] == [
        ("coordinator", "coordinator"), ("data-engineer", "member"), ("researcher", "member"),
        ("reviewer", "member")]
    assert doc["kanban"] == {"stale_ms": 90000, "poll_ms": 1000, "lease": None}


def seed_manifest(members, coordinator="coordinator", mode="coordinator"):
    doc = {"name": "analytics", "dispatch_mode": mode, "members": members}
    if coordinator is not None:
        doc["coordinator"] = coordinator
    return doc


@pytest.mark.parametrize("verb", ["validate", "start", "tick"])
def test_coordinator_mode_needs_exactly_one_coordinator(kb, tmp_path, verb):
    # the seed's troubleshooting case: the coordinator member omits its role
    path = write_manifest(tmp_path, "team.yaml", seed_manifest(
        [{"personality": "coordinator"}, {"personality": "researcher", "role": "member"}]))
    doc = error(kb("team", verb, path), "invalid")
    assert doc["error"] == MANY
    two = write_manifest(tmp_path, "two.yaml", seed_manifest(
        [{"personality": "coordinator", "role": "coordinator"}, {"personality": "x", "role": "coordinator"}]))
    assert error(kb("team", verb, two), "invalid")["error"] == MANY.replace("team.yaml", "two.yaml")  # the real file
    assert kb("list").json == {"tasks": []}
    from kanban import Board

    with Board(str(kb.path)) as board:
        assert board.team() is None  # refused before anything was recorded


@pytest.mark.parametrize("verb", ["validate", "start", "tick"])
def test_coordinator_must_match_the_top_level_coordinator(kb, tmp_path, verb):
    path = write_manifest(tmp_path, "team.yaml", seed_manifest(
        [{"personality": "lead", "role": "coordinator"}, {"personality": "researcher"}], coordinator="boss"))
    doc = error(kb("team", verb, path), "invalid")
    assert doc["error"] == "member with role=coordinator (lead) does not match top-level coordinator (boss)"


def test_coordinator_mode_needs_a_top_level_coordinator(kb, tmp_path):
    path = write_manifest(tmp_path, "team.yaml", seed_manifest(
        [{"personality": "lead", "role": "coordinator"}], coordinator=None))
    doc = error(kb("team", "validate", path), "invalid")
    assert doc["path"] == "coordinator" and "lead" in doc["error"]


def test_dispatch_mode_defaults_to_coordinator(kb, tmp_path):
    path = write_manifest(tmp_path, "team.yaml", {"name": "t", "members": [{"personality": "a"}]})
    assert error(kb("team", "validate", path), "invalid")["error"] == MANY


@pytest.mark.parametrize("change, path, words", [
    ({"colour": "red"}, "(top level)", "unknown field(s) colour"),
    ({"dispatch_mode": "anarchy"}, "dispatch_mode", "is not one of"),
    ({"members": [{"personality": "lead", "role": "boss"}]}, "members[0].role", "is not one of"),
    ({"members": [{"personality": "lead", "role": "coordinator", "command": "run me"}]}, "members[0].command",
     "is not of type 'array'"),
    ({"members": [{"role": "coordinator"}]}, "members[0]", "'personality' is required"),
    ({"members": []}, "members", "should be non-empty"),
    ({"kanban": {"stale_ms": 0}}, "kanban.stale_ms", "less than the minimum"),
    # past 2**63 ms 'team tick' was an internal error (OverflowError); 100 years, as any duration
    ({"kanban": {"stale_ms": 10**20}}, "kanban.stale_ms", "greater than the maximum"),
    ({"kanban": {"poll_ms": 3153600000001}}, "kanban.poll_ms", "greater than the maximum"),
    ({"kanban": {"poll": 5}}, "kanban", "unknown field(s) poll"),
    ({"name": "has space"}, "name", "is not allowed"),
])
def test_schema_errors_name_the_path(kb, tmp_path, change, path, words):
    doc = dict({"name": "t", "coordinator": "lead", "members": [{"personality": "lead", "role": "coordinator"}]},
               **change)
    res = kb("team", "validate", write_manifest(tmp_path, "team.yaml", doc))
    err = error(res, "invalid")
    assert err["path"] == path and words in err["error"], err


def test_other_manifest_errors(kb, tmp_path):
    dup = write_manifest(tmp_path, "dup.yaml", {"name": "t", "coordinator": "a", "members": [
        {"personality": "a", "role": "coordinator"}, {"personality": "b"}, {"personality": "b"}]})
    assert "already members[1]" in error(kb("team", "validate", dup), "invalid")["error"]
    error(kb("team", "validate", tmp_path / "missing.yaml"), "not_found")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [\n", encoding="utf-8")
    assert "not valid YAML" in error(kb("team", "validate", bad), "invalid")["error"]
    missing = error(kb("team", "validate", cwd=tmp_path), "not_found")  # no ./team.yaml here
    assert missing["searched"] == [str(tmp_path / "team.yaml")]
    error(kb("team", "status", EXAMPLE, "--format", "html"), "invalid")


# -- tick: claim, run, deliver ----------------------------------------------------------------

def test_tick_dispatches_ready_tasks_to_running_members(kb, crew, tmp_path, started):
    first = kb("team", "tick", crew)
    assert first.rc == 0, first
    assert valid(first.json)["recorded"] is True and first.json["dispatched"] == []
    lead = {"KANBAN_AGENT": "lead"}
    goal = kb("create", "Q3 roadmap", "--kind", "goal", env=lead).json["id"]
    scope = kb("create", "Scope pipelines", "--body", "List them.\nWith sizes.", "--assignee", "dev",
               "--goal", goal, env=lead).json["id"]
    scan = kb("create", "Market scan", "--assignee", "qa", "--goal", goal, env=lead).json["id"]
    final = kb("create", "Pressure-test", "--assignee", "qa", "--goal", goal, "--depends-on",
               f"{scope},{scan}", env=lead).json["id"]
    manual = kb("create", "Deploy", "--assignee", "ops", env=lead).json["id"]
    stranger = kb("create", "Someone else's", "--assignee", "outsider", env=lead).json["id"]

    started_at = time.monotonic()
    res = kb("team", "tick", crew)
    assert res.rc == 0, res
    report = valid(res.json)
    assert report["recorded"] is False
    started.extend(d["pid"] for d in report["dispatched"])
    assert {(d["task"], d["agent"]) for d in report["dispatched"]} == {(scope, "dev"), (scan, "qa")}
    assert set(report["ready"]) == {scope, scan, manual, stranger}
    # nothing will run either: a member with no command, and an assignee who is not a member
    # (a typo in a name would otherwise leave the task ready forever without a word)
    assert sorted((m["task"], m["agent"], m["message"]) for m in report["manual"]) == [
        (manual, "ops", f"{manual} is ready for ops, who has no command or harness: nothing will run it"),
        (stranger, "outsider", f"{stranger} is ready for outsider, who is not a member of team crew: "
                               "nothing will run it")]
    out = tmp_path / "out"
    wait_for(lambda: (out / f"{scope}.done").exists() and (out / f"{scan}.done").exists(), what="members")
    assert time.monotonic() - started_at < 60

    # the seed's prompt, with the CLI equivalents
    prompt = (out / f"{scope}.prompt").read_text(encoding="utf-8")
    assert prompt.startswith(
        f"## Task {scope}: Scope pipelines\nList them.\nWith sizes.\n\n"
        "When you finish, call `kanban_complete` with a one-line summary.\n"
        "If you get stuck, call `kanban_block` with the reason.\n"
        "Heartbeat with `kanban_heartbeat` if the work takes longer than a minute.\n"
        f"Task id: `{scope}` — pass this exact id to the kanban tools.\n")
    assert f'kanban complete {scope} --token "$KANBAN_LEASE_TOKEN"' in prompt
    assert f'kanban heartbeat {scope} --token "$KANBAN_LEASE_TOKEN"' in prompt
    env = dict(line.split("=", 1) for line in (out / f"{scope}.env").read_text().splitlines())
    sent = next(d for d in report["dispatched"] if d["task"] == scope)
    assert env["KANBAN_TASK_ID"] == scope and env["KANBAN_AGENT"] == "dev"
    assert env["KANBAN_LEASE_TOKEN"] == str(sent["lease_token"])
    assert Path(env["KANBAN_DB"]) == Path(kb.path).resolve() and env["KANBAN_TEAM"] == "crew"
    assert env["KANBAN_RUN_ID"] == str(sent["run"])

    # its output is in the member's log
    log = Path(kb.path).parent / "team" / "crew" / "dev.log"
    assert sent["log"] == str(log)
    assert "hello from dev" in wait_for(lambda: "hello from dev" in log.read_text() and log.read_text(), what="log")

    # the board: done, with a closed run and the audit trail
    shown = kb("show", scope).json
    assert shown["status"] == "done" and [c["body"] for c in shown["comments"]] == ["working on it"]
    assert [(r["agent"], r["outcome"]) for r in shown["runs"]] == [("dev", "completed")]
    kinds = [e["kind"] for e in shown["events"]]
    assert kinds.index("claimed") < kinds.index("run_started") < kinds.index("completed")
    assert "run_completed" in kinds
    # a member without a command, and a stranger, are not dispatched to
    assert kb("show", manual).json["status"] == "todo" and kb("show", stranger).json["status"] == "todo"

    # next tick: the pressure-test is ready now, and goes to qa
    report = valid(kb("team", "tick", crew).json)
    started.extend(d["pid"] for d in report["dispatched"])
    assert [(d["task"], d["agent"]) for d in report["dispatched"]] == [(final, "qa")]
    wait_for(lambda: (out / f"{final}.done").exists(), what="the last task")
    assert kb("show", goal).json["status"] == "done"


def test_tick_does_not_wait_for_the_member(kb, tmp_path, started):
    path = sleeper_team(tmp_path)
    kb("team", "tick", path)
    task = kb("create", "Long job", "--assignee", "dev", env={"KANBAN_AGENT": "lead"}).json["id"]
    begin = time.monotonic()
    report = kb("team", "tick", path).json
    started.extend(d["pid"] for d in report["dispatched"])
    assert time.monotonic() - begin < 20  # the member sleeps 60 s
    [sent] = report["dispatched"]
    assert alive(sent["pid"])
    shown = kb("show", task).json
    assert shown["status"] == "in_progress" and shown["claimed_by"] == "dev"
    assert shown["runs"][0]["ended_at"] is None
    status = valid(kb("team", "status", path).json)
    dev = next(m for m in status["members"] if m["personality"] == "dev")
    assert dev["state"] == "running" and [t["id"] for t in dev["tasks"]] == [task]
    assert [r["task"] for r in dev["runs"]] == [task]
    # a second tick does not dispatch it again
    assert kb("team", "tick", path).json["dispatched"] == []


def test_the_status_tables_heartbeat_says_it_is_utc(kb, tmp_path, started):
    """`team status --format table` showed a member's last heartbeat as '2030-03-17
    17:46:41', UTC unmarked, where the other tables mark UTC with a Z: it read as local time."""
    path = sleeper_team(tmp_path)
    kb("team", "tick", path, env=at(0))
    kb("create", "Quiet job", "--assignee", "dev", env=dict(at(0), KANBAN_AGENT="lead"))
    [sent] = kb("team", "tick", path, env=at(1)).json["dispatched"]
    started.append(sent["pid"])
    beat = valid(kb("team", "status", path, env=at(2)).json)
    [dev] = [m for m in beat["members"] if m["personality"] == "dev"]
    stamp = dev["last_heartbeat"]
    assert stamp and stamp.endswith("Z")
    table = kb("team", "status", path, "--format", "table", env=at(2)).out
    [row] = [line for line in table.splitlines() if line.startswith("dev ")]
    assert row.endswith(stamp.replace("T", " ")), table


def test_a_stale_run_becomes_blocked_and_heartbeats_keep_it_alive(kb, tmp_path, started):
    path = sleeper_team(tmp_path)
    kb("team", "tick", path, env=at(0))
    task = kb("create", "Quiet job", "--assignee", "dev", env=dict(at(0), KANBAN_AGENT="lead")).json["id"]
    [sent] = kb("team", "tick", path, env=at(1)).json["dispatched"]
    started.append(sent["pid"])
    # the member heartbeats (kanban heartbeat is a lease renewal, and beats the run)
    beat = kb("heartbeat", task, "--token", sent["lease_token"], env=dict(at(60), KANBAN_AGENT="dev"))
    assert beat.rc == 0, beat
    report = kb("team", "tick", path, env=at(120)).json
    assert report["stale"] == [] and kb("show", task).json["status"] == "in_progress"
    # then it goes quiet for longer than stale_ms (90 s)
    report = valid(kb("team", "tick", path, env=at(200)).json)
    assert report["stale"] == [task]
    shown = kb("show", task, env=at(200)).json
    assert shown["status"] == "blocked" and "stale" in shown["reason"] and shown["claimed_by"] is None
    assert [r["outcome"] for r in shown["runs"]] == ["stale"]
    # the member's late writes are fenced off
    late = kb("complete", task, "--token", sent["lease_token"], env=dict(at(201), KANBAN_AGENT="dev"))
    assert error(late, "lease_lost")["status"] == "blocked"
    # and its command, still running, was stopped: an unblock starts no second one beside it
    deadline = time.monotonic() + 10
    while alive(sent["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(sent["pid"])


def test_an_expired_lease_goes_back_to_the_member(kb, tmp_path, started):
    path = sleeper_team(tmp_path, lease="60s")
    kb("team", "tick", path, env=at(0))
    task = kb("create", "Job", "--assignee", "dev", env=dict(at(0), KANBAN_AGENT="lead")).json["id"]
    [first] = kb("team", "tick", path, env=at(1)).json["dispatched"]
    started.append(first["pid"])
    assert first["lease_until"] == "2030-03-17T17:47:41Z"
    report = kb("team", "tick", path, env=at(70)).json  # lease gone, run not stale yet
    started.extend(d["pid"] for d in report["dispatched"])
    assert report["expired"] == [task] and [d["task"] for d in report["dispatched"]] == [task]
    shown = kb("show", task, env=at(70)).json
    assert shown["attempts"] == 1 and [r["outcome"] for r in shown["runs"]] == ["expired", None]


def test_a_restart_loses_nothing(kb, tmp_path, started):
    path = sleeper_team(tmp_path)
    kb("team", "tick", path, env=at(0))
    lead = dict(at(0), KANBAN_AGENT="lead")
    task = kb("create", "Survive me", "--assignee", "dev", env=lead).json["id"]
    [sent] = kb("team", "tick", path, env=at(1)).json["dispatched"]
    kb("comment", task, "--message", "noted", env=dict(at(2), KANBAN_AGENT="dev"))
    # the member is killed mid-flight, the dispatcher is gone; a new one starts later
    os.kill(sent["pid"], signal.SIGKILL)
    wait_for(lambda: not alive(sent["pid"]), what="the member to die")
    report = kb("team", "tick", path, env=at(300)).json
    assert report["stale"] == [task]
    shown = kb("show", task, env=at(300)).json
    assert shown["status"] == "blocked" and [c["body"] for c in shown["comments"]] == ["noted"]
    # the assignee re-queues it; the next tick dispatches it again, in a new run
    assert kb("unblock", task, env=dict(at(301), KANBAN_AGENT="dev")).json["status"] == "todo"
    [again] = kb("team", "tick", path, env=at(302)).json["dispatched"]
    started.append(again["pid"])
    shown = kb("show", task, "--events", "100", env=at(302)).json
    assert [r["outcome"] for r in shown["runs"]] == ["stale", None] and again["run"] == shown["runs"][1]["id"]
    kinds = {e["kind"] for e in shown["events"]}
    assert {"created", "claimed", "run_started", "run_completed", "commented", "blocked", "unblocked"} <= kinds


# -- the role gate, through the CLI ------------------------------------------------------------

def test_the_role_gate(kb, tmp_path):
    path = write_manifest(tmp_path, "gate.yaml", {"name": "gate", "coordinator": "lead", "members": [
        {"personality": "lead", "role": "coordinator"}, {"personality": "dev"}, {"personality": "qa"}]})
    assert kb("team", "tick", path).rc == 0
    lead, dev, qa = ({"KANBAN_AGENT": n} for n in ("lead", "dev", "qa"))

    # only the coordinator creates, assigns, links and cancels
    assert error(kb("create", "by dev", env=dev), "forbidden")["agent"] == "dev"
    a = kb("create", "A", "--assignee", "dev", env=lead).json["id"]
    b = kb("create", "B", "--assignee", "qa", env=lead).json["id"]
    goal = kb("create", "G", "--kind", "goal", env=lead).json["id"]
    error(kb("set", a, "--assignee", "qa", env=dev), "forbidden")
    error(kb("set", a, "--goal", goal, env=dev), "forbidden")
    error(kb("dep", "add", b, a, env=dev), "forbidden")
    error(kb("cancel", b, env=qa), "forbidden")
    assert kb("dep", "add", b, a, env=lead).json["depends_on"] == [a]
    assert kb("set", a, "--goal", goal, env=lead).json["goal"] == goal

    # any member comments, shows and lists
    assert kb("comment", a, "--message", "qa was here", env=qa).json["actor"] == "qa"
    assert kb("show", a, env=qa).json["id"] == a
    assert len(kb("list", env=qa).json["tasks"]) == 3

    # only the assignee completes, blocks, unblocks and heartbeats
    token = kb("claim", a, env=dev).json["lease_token"]
    error(kb("heartbeat", a, "--token", token, env=qa), "forbidden")
    error(kb("complete", a, "--token", token, env=qa), "forbidden")
    error(kb("block", a, "--reason", "no", "--token", token, env=qa), "forbidden")
    error(kb("complete", a, "--token", token, env=lead), "forbidden")
    assert kb("heartbeat", a, "--token", token, env=dev).rc == 0
    assert kb("block", a, "--reason", "stuck", "--token", token, env=dev).json["status"] == "blocked"
    error(kb("unblock", a, env=qa), "forbidden")
    assert kb("unblock", a, env=dev).json["status"] == "todo"
    token = kb("claim", a, env=dev).json["lease_token"]
    assert kb("complete", a, "--token", token, env=dev).json["status"] == "done"

    # the gate fails closed: an outsider, or a caller who names no agent, changes nothing
    refused = error(kb("create", "by a person", env={"KANBAN_AGENT": "alice"}), "forbidden")
    assert refused["manifest"] == str(path) and refused["key"] == "operators"
    assert "operators:" in refused["error"] and str(path) in refused["error"]
    error(kb("cancel", b), "forbidden")
    assert kb("show", b, env={"KANBAN_AGENT": "alice"}).json["status"] == "todo"  # reads stay open


def test_direct_mode_lets_members_create(kb, tmp_path):
    path = write_manifest(tmp_path, "direct.yaml", {"name": "flat", "dispatch_mode": "direct",
                                                    "members": [{"personality": "dev"}, {"personality": "qa"}]})
    assert valid(kb("team", "validate", path).json)["coordinator"] is None
    assert kb("team", "tick", path).rc == 0
    task = kb("create", "mine", "--assignee", "dev", env={"KANBAN_AGENT": "qa"}).json["id"]
    token = kb("claim", task, env={"KANBAN_AGENT": "dev"}).json["lease_token"]
    error(kb("complete", task, "--token", token, env={"KANBAN_AGENT": "qa"}), "forbidden")


def test_one_team_per_board(kb, crew, tmp_path):
    assert kb("team", "tick", crew).rc == 0
    other = sleeper_team(tmp_path, name="other")
    doc = error(kb("team", "tick", other), "conflict")
    assert doc["team"] == "crew"
    # the same team with a changed manifest is recorded again
    changed = json.loads(crew.read_text())
    changed["members"].append({"personality": "newcomer"})
    crew.write_text(json.dumps(changed))
    assert kb("team", "tick", crew).json["recorded"] is True


# -- start: the loop ----------------------------------------------------------------------------

def test_start_until_idle_runs_the_seed_trace(kb, crew, tmp_path):
    kb("team", "tick", crew)
    lead = {"KANBAN_AGENT": "lead"}
    goal = kb("create", "Q3 Analytics Roadmap", "--kind", "goal", env=lead).json["id"]
    a1 = kb("create", "Scope pipeline work", "--assignee", "dev", "--goal", goal, env=lead).json["id"]
    b1 = kb("create", "Market scan", "--assignee", "qa", "--goal", goal, env=lead).json["id"]
    c1 = kb("create", "Pressure-test plan", "--assignee", "qa", "--goal", goal, "--depends-on", f"{a1},{b1}",
            env=lead).json["id"]
    res = kb("team", "start", crew, "--until-idle", "--format", "json", timeout=120)
    assert res.rc == 0, res
    lines = [valid(json.loads(line)) for line in res.out.splitlines()]
    assert lines[0]["started"] is True and lines[-1]["stopped"] == "idle"
    order = [d["task"] for line in lines if "dispatched" in line for d in line["dispatched"]]
    assert sorted(order[:2]) == sorted([a1, b1]) and order[2:] == [c1]
    assert kb("show", goal).json["status"] == "done"
    assert not (Path(kb.path).parent / "team" / "crew" / "dispatcher.pid").exists()


def test_a_stop_with_work_left_says_what_is_left(kb, crew):
    """--until-idle stops when the dispatcher can do no more: what it leaves (a ready task
    with no assignee, a review waiting for a person) is named, never a silent exit 0."""
    kb("team", "tick", crew)
    lead = {"KANBAN_AGENT": "lead"}
    loose = kb("create", "Nobody's", env=lead).json["id"]
    kb("create", "Later", "--assignee", "dev", "--depends-on", loose, env=lead)
    report = valid(kb("team", "tick", crew).json)
    assert report["manual"] == [{"task": loose, "agent": None, "message":
                                 f"{loose} is ready and has no assignee: nothing will run it until it is "
                                 f"assigned to a member (kanban set {loose} --assignee MEMBER)"}]
    res = kb("team", "start", crew, "--until-idle", "--format", "json", timeout=120)
    assert res.rc == 0, res
    last = valid(json.loads(res.out.splitlines()[-1]))
    assert last["stopped"] == "idle"
    assert last["left"] == {"todo": 2, "in_progress": 0, "in_review": 0, "blocked": 0}
    assert "left on the board: 2 todo" in last["message"]
    text = kb("team", "start", crew, "--until-idle", timeout=120)
    assert "has no assignee" in text.out and "left on the board: 2 todo" in text.out.splitlines()[-1]


def test_start_prints_text_for_people_and_stops_after_n_ticks(kb, crew):
    res = kb("team", "start", crew, "--ticks", "2")
    assert res.rc == 0, res
    lines = res.out.splitlines()
    assert lines[0].startswith("crew: dispatching on ") and "stopped (ticks) after 2 tick(s)" in lines[-1]
    error(kb("team", "start", crew, "--ticks", "0"), "invalid")
    error(kb("team", "start", crew, "--format", "table"), "invalid")


def test_start_stops_on_sigterm_and_status_sees_it(kb, crew, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env["KANBAN_DB"] = str(kb.path)
    proc = subprocess.Popen([str(KANBAN), "team", "start", str(crew), "--format", "json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(proc.stdout.readline())
        assert first["started"] is True and first["pid"] == proc.pid
        status = wait_for(lambda: (s := kb("team", "status", crew).json)["dispatcher"]["running"] and s,
                          what="the pid file")
        assert status["dispatcher"]["pid"] == proc.pid and status["recorded"] is True
        second = error(kb("team", "start", crew, "--ticks", "1"), "conflict")  # one dispatcher per team
        assert second["pid"] == proc.pid
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    last = json.loads(out.splitlines()[-1])
    assert last["stopped"] == "SIGTERM"
    dispatcher = kb("team", "status", crew).json["dispatcher"]
    assert (dispatcher["running"], dispatcher["pid"]) == (False, None) and dispatcher["last_probe"]
    # a pid file left by a dispatcher that died does not stop the next one
    pid_file = Path(kb.path).parent / "team" / "crew" / "dispatcher.pid"
    pid_file.write_text("999999999\n")
    assert kb("team", "start", crew, "--ticks", "1").rc == 0 and not pid_file.exists()


def test_a_member_that_exits_without_closing_its_task_is_blocked(kb, tmp_path):
    member_script(tmp_path, "quitter.sh", "echo 'giving up' >&2\nexit 3\n")
    path = write_manifest(tmp_path, "q.yaml", {"name": "q", "coordinator": "lead", "members": [
        {"personality": "lead", "role": "coordinator"}, {"personality": "dev", "command": ["./quitter.sh"]}],
        "kanban": {"poll_ms": 50}})
    kb("team", "tick", path)
    task = kb("create", "Doomed", "--assignee", "dev", env={"KANBAN_AGENT": "lead"}).json["id"]
    res = kb("team", "start", path, "--until-idle", "--format", "json", timeout=120)
    assert res.rc == 0, res
    exited = [e for line in res.out.splitlines() for e in json.loads(line).get("exited", [])]
    assert exited and exited[0]["task"] == task and exited[0]["status"] == 3 and exited[0]["blocked"] is True
    shown = kb("show", task).json
    assert shown["status"] == "blocked" and "exited with status 3" in shown["reason"]
    assert "giving up" in (Path(kb.path).parent / "team" / "q" / "dev.log").read_text()


def test_a_member_command_that_cannot_start_blocks_its_task(kb, tmp_path):
    path = write_manifest(tmp_path, "m.yaml", {"name": "m", "coordinator": "lead", "members": [
        {"personality": "lead", "role": "coordinator"},
        {"personality": "dev", "command": [str(tmp_path / "no-such-member")]}]})
    kb("team", "tick", path)
    task = kb("create", "Nobody home", "--assignee", "dev", env={"KANBAN_AGENT": "lead"}).json["id"]
    report = valid(kb("team", "tick", path).json)
    assert report["dispatched"] == [] and [f["task"] for f in report["failed"]] == [task]
    shown = kb("show", task).json
    assert shown["status"] == "blocked" and "could not start" in shown["reason"]
    assert [r["outcome"] for r in shown["runs"]] == ["blocked"]


# -- status ---------------------------------------------------------------------------------------

def test_status_json_and_table(kb, crew):
    fresh = valid(kb("team", "status", crew).json)
    assert fresh["recorded"] is False and fresh["dispatcher"]["running"] is False
    kb("team", "tick", crew)
    kb("create", "For ops", "--assignee", "ops", env={"KANBAN_AGENT": "lead"})
    doc = valid(kb("team", "status", crew).json)
    assert doc["team"] == "crew" and doc["recorded"] is True and doc["coordinator"] == "lead"
    states = {m["personality"]: m["state"] for m in doc["members"]}
    assert states == {"lead": "manual", "dev": "idle", "qa": "idle", "ops": "manual"}
    ops = next(m for m in doc["members"] if m["personality"] == "ops")
    assert [t["title"] for t in ops["tasks"]] == ["For ops"] and ops["closed"]["done"] == 0
    table = kb("team", "status", crew, "--format", "table")
    assert table.rc == 0 and table.out.startswith("team crew (dispatch_mode coordinator, coordinator: lead)")
    assert "member" in table.out and "ops" in table.out and "manual" in table.out


def test_status_needs_a_board(tmp_path, crew):
    from conftest import run

    res = run("team", "status", crew, cwd=tmp_path, env={"KANBAN_CEILING_DIRECTORIES": tmp_path})
    assert res.rc == 2 and res.error["code"] == "not_found"


def test_start_and_tick_create_the_board(tmp_path):
    from conftest import run

    folder, other = tmp_path / "fresh", tmp_path / "other"
    folder.mkdir()
    other.mkdir()
    assert run("init", cwd=other, env={"KANBAN_CEILING_DIRECTORIES": tmp_path}).rc == 0
    (tmp_path / "init.gitignore").write_text((other / ".kanban" / ".gitignore").read_text())
    manifest = write_manifest(folder, "t.yaml", {"name": "t", "coordinator": "a",
                                                 "members": [{"personality": "a", "role": "coordinator"}]})
    res = run("team", "tick", manifest, cwd=folder, env={"KANBAN_CEILING_DIRECTORIES": tmp_path})
    assert res.rc == 0, res
    assert (folder / ".kanban" / "board.db").exists()
    # as `kanban init` makes it: the board's runtime files kept out of git
    assert (folder / ".kanban" / ".gitignore").read_text() == (tmp_path / "init.gitignore").read_text()


def page_examples(page):
    """The runnable EXAMPLES of a page (blocks not marked norun), as shell text."""
    from check_tree import read_page, roff_text

    blocks, current, previous = [], None, ""
    for line in read_page(ROOT / "man" / "man1" / page):
        if line.startswith(".EX"):
            current = None if previous == '.\\" norun' else []
        elif line.startswith(".EE"):
            blocks += [] if current is None else ["\n".join(current)]
            current = None
        elif current is not None:
            current.append(roff_text(line))
        previous = line
    return blocks


def test_the_man_page_example_runs_the_seed_team(tmp_path):
    """kanban-team(1)'s examples, from the checkout, against a scratch board: the members do
    their tasks, the dispatcher stops idle with the review and an unassigned task left, and
    the coordinator's approval and assignment let the team finish the goal."""
    first, then = page_examples("kanban-team.1")
    script = first + "\necho '-- then'\n" + then
    board = tmp_path / ".kanban" / "board.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update(PATH=f"{ROOT / 'bin'}{os.pathsep}{env['PATH']}", KANBAN_DB=str(board), MEMBER_DELAY="0")
    proc = subprocess.run(["bash", "-c", "set -e\nkanban init >/dev/null\n" + script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc
    assert "analytics: stopped (idle)" in proc.stdout
    table = proc.stdout[proc.stdout.index("team analytics (dispatch_mode coordinator"):]
    assert "data-engineer" in table and "researcher" in table
    # after the first run: two done, the pressure test in review (it asks for review)
    assert "TASK-4: reviewer exited with status 0" in proc.stdout
    after = proc.stdout[proc.stdout.index("-- then"):]
    assert after.splitlines()[1] == "done"  # the coordinator's approval of the pressure test
    assert "TASK-5 -> researcher" in after  # the kickoff notes, once assigned
    assert after.splitlines()[-1] == '{"status":"done","progress":{"total":4,"done":4,"cancelled":0}}'
    from kanban import Board

    with Board(str(board)) as b:
        tasks = {t["idempotency_key"]: t for t in b.list()["tasks"]}
    assert {key: task["status"] for key, task in tasks.items()} == {
        "plan:q3-roadmap:roadmap": "done", "plan:q3-roadmap:pipelines": "done",
        "plan:q3-roadmap:market-scan": "done", "plan:q3-roadmap:pressure-test": "done",
        "plan:q3-roadmap:kickoff-notes": "done"}
    assert (tmp_path / ".kanban" / "team" / "analytics" / "researcher.log").exists()
