"""kanban move: a person moves a card by hand (SPEC §5 `move`)."""
import json
from pathlib import Path

import pytest
from conftest import assert_error, at
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in (ROOT / "schemas").glob("*.json")}
REGISTRY = Registry().with_resources((d["$id"], Resource.from_contents(d, default_specification=DRAFT202012))
                                     for d in SCHEMAS.values() if "$id" in d)


def moved(res, column, source):
    assert res.rc == 0, res
    doc = res.json
    Draft202012Validator(SCHEMAS["kanban-move.schema.json"], registry=REGISTRY).validate(doc)
    assert doc["status"] == column and doc["from"] == source
    return doc


def snapshot(kb, seconds=0):
    return kb("list", env=at(seconds)).out, kb("event", "list", "--limit", "100000", env=at(seconds)).out


def test_each_column(kb):
    task = kb("create", "a card", env=at(0)).json["id"]
    # without a reason: invalid, saying what is missing (it said only 'reason is required')
    doc = assert_error(kb("move", task, "blocked", agent="alice", env=at(1)), "invalid")
    assert doc["error"] == "a card moved to blocked needs a reason: pass --reason", doc
    moved(kb("move", task, "blocked", "--reason", "waiting on legal", agent="alice", env=at(1)), "blocked", "todo")
    assert kb("show", task, env=at(1)).json["reason"] == "waiting on legal"
    moved(kb("move", task, "todo", agent="alice", env=at(2)), "todo", "blocked")
    moved(kb("move", task, "in_review", agent="alice", env=at(3)), "in_review", "todo")
    doc = moved(kb("move", task, "done", agent="alice", env=at(4)), "done", "in_review")
    assert doc["review"] is True
    doc = moved(kb("move", task, "todo", agent="alice", env=at(5)), "todo", "done")
    assert doc["ready"] is True
    moved(kb("move", task, "cancelled", agent="alice", env=at(6)), "cancelled", "todo")
    events = kb("event", "list", "--task", task, env=at(6)).json["events"]
    kinds = [(e["kind"], e["data"].get("from"), e["data"].get("to"), e["actor"]) for e in events[1:]]
    assert kinds == [("blocked", "todo", "blocked", "alice"), ("status_changed", "blocked", "todo", "alice"),
                     ("status_changed", "todo", "in_review", "alice"), ("approved", "in_review", "done", "alice"),
                     ("status_changed", "done", "todo", "alice"), ("cancelled", "todo", "cancelled", "alice")]


def test_refusals_change_nothing(kb):
    task = kb("create", "a card", env=at(0)).json["id"]
    goal = kb("create", "a goal", "--kind", "goal", env=at(0)).json["id"]
    before = snapshot(kb)
    assert_error(kb("move", task, "in_progress", env=at(1)), "usage")
    assert_error(kb("move", task, "doing", env=at(1)), "invalid")
    assert_error(kb("move", task, "blocked", env=at(1)), "invalid")
    assert_error(kb("move", task, "todo", env=at(1)), "conflict")
    assert_error(kb("move", goal, "done", env=at(1)), "conflict")
    assert_error(kb("move", "TASK-999", "done", env=at(1)), "not_found")
    assert snapshot(kb) == before


def test_a_held_task_needs_force_and_its_holder_loses_the_lease(kb):
    task = kb("create", "held", env=at(0)).json["id"]
    token = kb("claim", task, agent="w1", env=at(0)).json["lease_token"]
    before = snapshot(kb, 1)
    err = assert_error(kb("move", task, "done", agent="alice", env=at(1)), "conflict")
    assert "--force" in err["error"] and err["holder"] == "w1"
    assert snapshot(kb, 1) == before
    doc = moved(kb("move", task, "todo", "--force", "--reason", "w1 is stuck", agent="alice", env=at(2)),
                "todo", "in_progress")
    assert doc["claimed_by"] is None and doc["lease_until"] is None
    last = kb("event", "list", "--task", task, env=at(2)).json["events"][-1]
    assert last["actor"] == "alice" and last["data"]["lease_ended"] == {"holder": "w1", "token": token}
    assert_error(kb("complete", task, "--token", str(token), agent="w1", env=at(3)), "lease_lost")
    assert_error(kb("heartbeat", task, "--token", str(token), agent="w1", env=at(3)), "lease_lost")


def test_an_expired_lease_needs_no_force(kb):
    task = kb("create", "held", env=at(0)).json["id"]
    kb("claim", task, "--lease", "1m", agent="w1", env=at(0))
    moved(kb("move", task, "cancelled", agent="alice", env=at(120)), "cancelled", "in_progress")


@pytest.mark.parametrize("create_args", [["--review"], []])
def test_moving_review_work_to_done_is_an_approval(kb, create_args):
    task = kb("create", "reviewed", *create_args, env=at(0)).json["id"]
    token = kb("claim", task, agent="w1", env=at(0)).json["lease_token"]
    kb("complete", task, "--token", str(token), "--review", agent="w1", env=at(1))
    before = snapshot(kb, 2)
    assert_error(kb("move", task, "done", agent="w1", env=at(2)), "forbidden")
    assert snapshot(kb, 2) == before
    moved(kb("move", task, "done", agent="alice", env=at(3)), "done", "in_review")
    approved = kb("event", "list", "--kind", "approved", env=at(3)).json["events"]
    assert [(e["actor"], e["data"]["from"]) for e in approved] == [("alice", "in_review")]


def test_the_holder_may_not_force_its_own_review_task_to_done(kb):
    task = kb("create", "reviewed", "--review", env=at(0)).json["id"]
    kb("claim", task, agent="w1", env=at(0))
    assert_error(kb("move", task, "done", "--force", agent="w1", env=at(1)), "forbidden")


def test_the_team_role_gate(kb, board):
    board.set_team({"name": "gate", "dispatch_mode": "coordinator", "coordinator": "lead",
                    "members": {"lead": {"role": "coordinator"}, "dev": {}, "qa": {}}})
    task = kb("create", "A", "--assignee", "dev", agent="lead", env=at(0)).json["id"]
    assert_error(kb("move", task, "cancelled", agent="dev", env=at(1)), "forbidden")
    assert_error(kb("move", task, "done", agent="qa", env=at(1)), "forbidden")
    moved(kb("move", task, "blocked", "--reason", "stuck", agent="dev", env=at(1)), "blocked", "todo")
    moved(kb("move", task, "todo", agent="lead", env=at(2)), "todo", "blocked")
    moved(kb("move", task, "cancelled", agent="lead", env=at(3)), "cancelled", "todo")
