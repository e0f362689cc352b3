"""kanban plan lint|apply: a manager's plan (YAML) becomes goals and tasks (SPEC §6)."""
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "plan.yaml"
SCHEMAS = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in (ROOT / "schemas").glob("*.json")}
REGISTRY = Registry().with_resources((d["$id"], Resource.from_contents(d, default_specification=DRAFT202012))
                                     for d in SCHEMAS.values() if "$id" in d)


def valid(document, schema="kanban-plan.schema.json"):
    Draft202012Validator(SCHEMAS[schema], registry=REGISTRY).validate(document)
    return document


def error(res, code):
    """Exit 2, nothing on stdout, one JSON error line with `code`."""
    assert res.rc == 2 and res.out == "", res
    doc = res.error
    assert doc["code"] == code, res
    return doc


def write(tmp_path, text, name="plan.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def by_key(answer):
    return {t["idempotency_key"].split(":", 2)[2]: t for t in answer["tasks"]}


def state(kb):
    """The tasks and the events: what a refused apply must leave alone."""
    return kb("list").out, kb("event", "list", "--limit", "100000").out


# -- lint -----------------------------------------------------------------------------------

def test_lint_the_example(kb):
    res = kb("plan", "lint", EXAMPLE)
    assert res.rc == 0, res
    doc = valid(res.json)
    assert doc == {"ok": True, "plan": "q3-roadmap", "goals": 1, "tasks": 4,
                   "order": ["roadmap", "pipelines", "market-scan", "pressure-test", "kickoff-notes"],
                   "external": []}


def test_lint_needs_no_board(tmp_path):
    from conftest import run

    res = run("plan", "lint", EXAMPLE, cwd=tmp_path, env={"KANBAN_CEILING_DIRECTORIES": tmp_path})
    assert res.rc == 0 and res.json["ok"] is True


def test_lint_orders_dependencies_first(kb, tmp_path):
    path = write(tmp_path, """
name: order
tasks:
  - {key: ship, title: Ship, depends_on: [test]}
  - {key: test, title: Test, depends_on: [build]}
  - {key: build, title: Build}
""")
    assert kb("plan", "lint", path).json["order"] == ["build", "test", "ship"]


def test_lint_reads_stdin(kb):
    res = kb("plan", "lint", "-", input="name: piped\ntasks:\n  - {key: a, title: A}\n")
    assert res.rc == 0 and res.json["plan"] == "piped" and res.json["tasks"] == 1


# -- apply ----------------------------------------------------------------------------------

def test_apply_creates_goals_tasks_and_deps(kb):
    res = kb("plan", "apply", EXAMPLE, agent="manager")
    assert res.rc == 0, res
    doc = valid(res.json)
    assert doc["plan"] == "q3-roadmap" and doc["created"] == 5 and doc["existing"] == 0
    tasks = by_key(doc)
    goal = tasks["roadmap"]
    assert goal["kind"] == "goal" and goal["project"] == "analytics"
    assert goal["idempotency_key"] == "plan:q3-roadmap:roadmap"
    scope, scan, test = tasks["pipelines"], tasks["market-scan"], tasks["pressure-test"]
    assert scope["goal"] == goal["id"] and scope["assignee"] == "data-engineer" and scope["priority"] == 5
    assert scope["ready"] is True and scan["ready"] is True
    assert test["depends_on"] == sorted([scope["id"], scan["id"]], key=lambda i: int(i[5:]))
    assert test["review"] is True and test["ready"] is False and test["priority"] == 1  # the default
    notes = tasks["kickoff-notes"]
    assert notes["goal"] == goal["id"] and notes["depends_on"] == [test["id"]] and notes["priority"] == 0
    # the board agrees
    listed = kb("list", "--goal", goal["id"]).json["tasks"]
    assert {t["id"] for t in listed} == {scope["id"], scan["id"], test["id"], notes["id"]}
    shown = kb("show", test["id"]).json
    assert [w["task"] for w in shown["waiting_on"] if w["kind"] == "dep"] == test["depends_on"]


def test_apply_twice_creates_nothing_new(kb):
    first = kb("plan", "apply", EXAMPLE).json
    before = state(kb)
    second = kb("plan", "apply", EXAMPLE)
    assert second.rc == 0, second
    doc = valid(second.json)
    assert doc["created"] == 0 and doc["existing"] == 5
    assert [t["id"] for t in doc["tasks"]] == [t["id"] for t in first["tasks"]]
    assert all(t["created"] is False for t in doc["tasks"])
    assert state(kb) == before


def test_apply_a_grown_plan_adds_only_the_new_task(kb, tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    kb("plan", "apply", EXAMPLE)
    grown = write(tmp_path, text + "  - key: retro\n    title: Retrospective\n    goal: roadmap\n"
                                   "    depends_on: [kickoff-notes]\n")
    doc = kb("plan", "apply", grown).json
    assert doc["created"] == 1 and doc["existing"] == 5
    retro = by_key(doc)["retro"]
    assert retro["created"] is True and retro["depends_on"] == [by_key(doc)["kickoff-notes"]["id"]]
    assert len(kb("list").json["tasks"]) == 6


def test_defaults_and_inheritance(kb, tmp_path):
    path = write(tmp_path, """
name: inherit
defaults: {project: base, priority: 2, role: dev, review: true, max_attempts: 3}
goals:
  - key: g
    title: Goal
    project: goal-project
    tasks:
      - {key: a, title: A}
      - {key: b, title: B, project: own, priority: 9, review: false, role: ops}
tasks:
  - {key: c, title: C, assignee: w1, not_before: 2030-01-01}
""")
    tasks = by_key(kb("plan", "apply", path, env={"KANBAN_NOW": "2029-01-01T00:00:00Z"}).json)
    assert tasks["g"]["project"] == "goal-project" and tasks["g"]["priority"] == 2
    a, b, c = tasks["a"], tasks["b"], tasks["c"]
    assert (a["project"], a["priority"], a["role_boundary"], a["review"], a["max_attempts"]) == \
        ("goal-project", 2, "dev", True, 3)
    assert (b["project"], b["priority"], b["role_boundary"], b["review"]) == ("own", 9, "ops", False)
    assert c["project"] == "base" and c["assignee"] == "w1" and c["goal"] is None
    assert c["not_before"] == "2030-01-01T00:00:00Z" and c["ready"] is False


def test_a_plan_may_refer_to_tasks_on_the_board(kb, tmp_path):
    existing = kb("create", "already there").json["id"]
    path = write(tmp_path, f"name: ext\ntasks:\n  - {{key: a, title: A, depends_on: [{existing}]}}\n")
    assert kb("plan", "lint", path).json["external"] == [existing]
    doc = kb("plan", "apply", path).json
    assert by_key(doc)["a"]["depends_on"] == [existing]


def test_apply_is_all_or_nothing(kb, tmp_path):
    path = write(tmp_path, """
name: atomic
tasks:
  - {key: a, title: A}
  - {key: b, title: B, depends_on: [a]}
  - {key: c, title: C, depends_on: [TASK-404]}
""")
    before = state(kb)
    doc = error(kb("plan", "apply", path), "not_found")
    assert doc["key"] == "c" and doc["path"] == "tasks[2]" and "TASK-404" in doc["error"]
    assert state(kb) == before


def test_only_the_coordinator_applies_a_plan_to_a_team_board(kb, tmp_path):
    team = write(tmp_path, """
name: crew
coordinator: lead
members:
  - {personality: lead, role: coordinator}
  - {personality: dev}
""", "team.yaml")
    assert kb("team", "tick", team).rc == 0  # records the team (its role gate) on the board
    before = state(kb)
    doc = error(kb("plan", "apply", EXAMPLE, agent="dev"), "forbidden")
    assert "coordinator" in doc["error"]
    assert state(kb) == before
    assert kb("plan", "apply", EXAMPLE, agent="lead").json["created"] == 5
    # applying again creates nothing, so nothing is refused, even for a member
    assert kb("plan", "apply", EXAMPLE, "--agent", "dev").json["created"] == 0


# -- refusals -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, path, words", [
    ("tasks: []\n", "(top level)", "'name' is required"),
    ("name: x\ntasks:\n  - {key: a, title: A, colour: red}\n", "tasks[0]", "unknown field(s) colour"),
    ("name: x\ntasks:\n  - {key: a, title: A, priority: high}\n", "tasks[0].priority", "'high' is not of type"),
    ("name: x\ntasks:\n  - {title: A}\n", "tasks[0]", "'key' is required"),
    ("name: x\ntasks:\n  - {key: a, title: '  '}\n", "tasks[0].title", "must not be empty"),
    ("name: x\ngoals:\n  - {key: g, title: G, assignee: w}\n", "goals[0]", "unknown field(s) assignee"),
    ("name: 'has space'\n", "name", "is not allowed"),
    ("name: x\ntasks:\n  - {key: a, title: A, depends_on: [b, b]}\n", "tasks[0].depends_on", "non-unique"),
])
def test_schema_errors_name_the_path(kb, tmp_path, text, path, words):
    doc = error(kb("plan", "lint", write(tmp_path, text)), "invalid")
    assert doc["path"] == path and words in doc["error"], doc
    assert doc["errors"][0]["path"] == path


def test_every_schema_error_is_listed(kb, tmp_path):
    path = write(tmp_path, "name: x\ntasks:\n  - {key: a, title: A, colour: red, priority: high}\n  - {title: B}\n")
    doc = error(kb("plan", "lint", path), "invalid")
    assert {e["path"] for e in doc["errors"]} == {"tasks[0]", "tasks[0].priority", "tasks[1]"}


@pytest.mark.parametrize("text, path, words", [
    ("name: x\ntasks:\n  - {key: a, title: A, depends_on: [zz]}\n", "tasks[0].depends_on[0]", "'zz'"),
    ("name: x\ntasks:\n  - {key: a, title: A}\n  - {key: a, title: B}\n", "tasks[1]", "already used at tasks[0]"),
    ("name: x\ntasks:\n  - {key: a, title: A}\n  - {key: b, title: B, goal: a}\n", "tasks[1].goal",
     "is a task, not a goal"),
    ("name: x\ngoals:\n  - key: g\n    title: G\n    tasks:\n      - {key: a, title: A, goal: g}\n",
     "goals[0].tasks[0].goal", "belongs to it already"),
])
def test_bad_references_are_invalid(kb, tmp_path, text, path, words):
    doc = error(kb("plan", "lint", write(tmp_path, text)), "invalid")
    assert doc["path"] == path and words in doc["error"], doc


@pytest.mark.parametrize("text, loop", [
    ("name: x\ntasks:\n  - {key: a, title: A, depends_on: [b]}\n  - {key: b, title: B, depends_on: [a]}\n",
     ["a", "b", "a"]),
    ("name: x\ntasks:\n  - {key: a, title: A, depends_on: [a]}\n", ["a", "a"]),
    ("name: x\ngoals:\n  - key: g\n    title: G\n    tasks:\n      - {key: a, title: A, depends_on: [g]}\n",
     ["g", "a", "g"]),
])
def test_cycles_are_refused(kb, tmp_path, text, loop):
    path = write(tmp_path, text)
    doc = error(kb("plan", "lint", path), "cycle")
    assert doc["keys"] == loop and " -> ".join(loop) in doc["error"]
    before = state(kb)
    error(kb("plan", "apply", path), "cycle")
    assert state(kb) == before


def test_yaml_and_file_errors(kb, tmp_path):
    doc = error(kb("plan", "lint", write(tmp_path, "name: x\ntasks: [\n")), "invalid")
    # FILE:LINE:COL: where the parser stopped
    assert "not valid YAML" in doc["error"] and ".yaml:3:1: " in doc["error"] and doc["line"] == 3
    doc = error(kb("plan", "lint", write(tmp_path, "- just\n- a list\n")), "invalid")
    assert "mapping" in doc["error"]
    error(kb("plan", "lint", tmp_path / "missing.yaml"), "not_found")
    error(kb("plan", "lint", tmp_path), "invalid")
    error(kb("plan", "apply"), "usage")
    error(kb("plan", "frobnicate", EXAMPLE), "usage")


def test_the_python_api(board):
    from kanban import plan

    checked = plan.read(str(EXAMPLE))
    answer = plan.apply(checked, agent="manager", board=board)
    assert answer["created"] == 5
    assert plan.apply(checked, board=board)["existing"] == 5


def test_the_man_page_examples_run(tmp_path):
    """The runnable EXAMPLES of kanban-plan(1), as one bash script on a fresh board."""
    import os
    import subprocess

    from conftest import run
    from test_team import page_examples

    blocks = page_examples("kanban-plan.1")
    assert blocks
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update(PATH=f"{ROOT / 'bin'}{os.pathsep}{env['PATH']}", KANBAN_CEILING_DIRECTORIES=str(tmp_path))
    work = tmp_path / "work"
    work.mkdir()
    assert run("init", cwd=work, env={"KANBAN_CEILING_DIRECTORIES": tmp_path}).rc == 0
    proc = subprocess.run(["bash", "-c", "set -e\n" + "\n".join(blocks)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc
    assert proc.stdout.splitlines()[-1] == '{"created":0,"existing":4}'
