"""An option given an empty value is refused, never silently read as 'not given'."""
import pytest

CASES = [
    (["claim", "--lease", ""], "invalid"),
    (["claim", "--wait", ""], "invalid"),
    (["claim", "--role", ""], "invalid"),
    (["claim", "--agent", ""], "invalid"),
    (["prune", "--before", ""], "invalid"),
    (["list", "--status", ""], "invalid"),
    (["show", "TASK-1", "--events", ""], "invalid"),
    (["show", "TASK-1", "--events", "١٢"], "invalid"),
    (["create", "x", "--agent", ""], "invalid"),
]


@pytest.mark.parametrize("args,code", CASES, ids=[" ".join(a) or "empty" for a, _ in CASES])
def test_empty_value_is_refused(kb, args, code):
    kb("create", "a task")
    before = kb("list").out, kb("event", "list").out
    res = kb(*args, agent="w1")
    assert res.rc == 2 and res.out == "", res
    assert res.error["code"] == code
    assert (kb("list").out, kb("event", "list").out) == before


def test_empty_environment_means_unset(kb):
    kb("create", "a task")
    res = kb("claim", agent="w1", env={"KANBAN_LEASE": "", "KANBAN_ROLE": ""})
    assert res.rc == 0 and res.json["status"] == "in_progress"


def test_set_clear_takes_several_fields(kb):
    task = kb("create", "x", "--body", "b", "--project", "p", "--assignee", "a").json["id"]
    out = kb("set", task, "--clear", "body", "project").json
    assert (out["body"], out["project"], out["assignee"]) == (None, None, "a")
    assert kb("set", task, "--clear", "assignee", "--title", "y").json["assignee"] is None
    res = kb("set", task, "project")
    assert res.rc == 2 and res.error["code"] == "usage"


def test_init_takes_several_harnesses(tmp_path):
    from conftest import run

    db = tmp_path / ".kanban" / "board.db"
    out = run("init", "--harness", "claude", "codex", env={"KANBAN_DB": db}).json
    assert out["skills"] == [str(tmp_path / ".claude" / "skills" / "kanban" / "SKILL.md"), str(tmp_path / "AGENTS.md")]
    res = run("init", "claude", env={"KANBAN_DB": tmp_path / "other.db"})
    assert res.rc == 2 and res.error["code"] == "usage" and not (tmp_path / "other.db").exists()


def test_search_by_status_alone_as_the_seed_does(kb):
    blocked = kb("create", "stuck task").json["id"]
    kb("create", "free task")
    kb("block", blocked, "--reason", "waiting on creds", agent="w1")
    found = kb("search", "--status", "BLOCKED").json["tasks"]
    assert [t["id"] for t in found] == [blocked]
    assert [t["id"] for t in kb("search", "task", "--status", "todo").json["tasks"]] != [blocked]
    assert kb("search", "stuck", "--status", "blocked").json["tasks"][0]["id"] == blocked
    res = kb("search")
    assert res.rc == 2 and res.error["code"] == "usage"


def test_progress_note_with_ttl_never_is_kept(kb):
    from conftest import at

    task = kb("create", "long job", env=at(0)).json["id"]
    kb("event", "log", task, "--message", "gone", agent="w1", env=at(0))
    kb("event", "log", task, "--message", "kept", "--ttl", "never", agent="w1", env=at(0))
    later = at(40 * 86400)
    assert kb("prune", "--before", "30d", env=later).json["pruned"] == 1
    notes = kb("event", "list", "--task", task, "--kind", "progress", env=later).json["events"]
    assert [e["data"]["message"] for e in notes] == ["kept"]
