"""A team's lifecycle (kanban-team(1), Lifecycle): a manifest found by name, start
--detach, status, a member killed, stop, destroy --yes.  Real processes throughout."""
import json
import os
import signal
import time

from test_team import alive, wait_for


def script(folder, name, body):
    path = folder / name
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(0o755)
    return str(path)


def test_start_detach_status_kill_stop_destroy(kb, tmp_path):
    home = tmp_path  # the board is tmp_path/.kanban/board.db; commands run here
    teams = home / ".kanban" / "teams"
    teams.mkdir(parents=True)
    worker = script(tmp_path, "worker.sh", 'kanban comment "$KANBAN_TASK_ID" --message started >/dev/null\n'
                                           "exec sleep 300\n")
    broken = script(tmp_path, "broken.sh", "echo cannot work >&2\nexit 1\n")
    (teams / "crew.yaml").write_text(json.dumps({
        "name": "crew", "coordinator": "lead", "operators": ["ops"], "kanban": {"poll_ms": 100},
        "members": [{"personality": "lead", "role": "coordinator"},
                    {"personality": "dev", "command": [worker]},
                    {"personality": "qa", "command": [broken]}]}), encoding="utf-8")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "KANBAN_AGENT": "ops"}

    def team(*args, **kw):
        return kb("team", *args, cwd=home, env=env, **kw)

    found = team("validate", "crew").json
    assert found["manifest"] == str(teams / "crew.yaml")
    assert found["searched"] == [str(home / "team.yaml"), str(teams / "crew.yaml"),
                                 str(tmp_path / "xdg" / "kanban" / "teams" / "crew.yaml")]
    assert team("validate", "nobody").error["code"] == "not_found"

    dev_tasks = [kb("create", f"dev work {i}", "--assignee", "dev", agent="ops").json["id"] for i in range(2)]
    qa_tasks = [kb("create", f"qa work {i}", "--assignee", "qa", agent="ops").json["id"] for i in range(4)]

    started = team("start", "crew", "--detach", "--format", "json").json
    assert started["detached"] is True and alive(started["pid"])
    assert os.path.exists(started["log"]) and os.path.exists(started["pid_file"])
    assert team("start", "crew", "--detach").error["code"] == "conflict"  # one dispatcher per team and board

    def members():
        return {m["personality"]: m for m in team("status", "crew").json["members"]}
    wait_for(lambda: members()["dev"]["state"] == "running" and len(members()["dev"]["runs"]) == 2,
             what="dev to run both tasks")
    wait_for(lambda: members()["qa"]["state"] == "failed", what="qa to fail three times")
    status = team("status", "crew").json
    assert status["dispatcher"]["running"] and status["dispatcher"]["pid"] == started["pid"]
    assert status["dispatcher"]["last_probe"] and status["dispatcher"]["log"] == started["log"]
    by_name = {m["personality"]: m for m in status["members"]}
    assert by_name["lead"]["state"] == "manual" and by_name["dev"]["last_heartbeat"]
    assert by_name["qa"]["failures"] >= 3 and by_name["dev"]["log"].endswith("dev.log")
    # qa is not started again and again: a new task of its stays todo, and the log says why
    later = kb("create", "qa work later", "--assignee", "qa", agent="ops").json["id"]
    time.sleep(1)
    assert kb("show", later).json["status"] == "todo" and kb("show", later).json["runs"] == []
    assert all(kb("show", t).json["status"] == "blocked" for t in qa_tasks)
    table = team("status", "crew", "--format", "table").out
    assert "failed" in table and "running" in table

    # a member killed mid-flight: the dispatcher notices and blocks its task
    children = json.loads((home / ".kanban" / "team" / "crew" / "children.json").read_text())
    victim = next(c for c in children if c["agent"] == "dev")
    os.kill(victim["pid"], signal.SIGKILL)
    wait_for(lambda: kb("show", victim["task"]).json["status"] == "blocked", what="the killed member's task")
    survivor = next(t for t in dev_tasks if t != victim["task"])
    survivor_pid = next(c["pid"] for c in children if c["task"] == survivor)

    # destroy refuses while the team runs, with the seed's advice
    refused = team("destroy", "crew", "--yes")
    assert refused.error["code"] == "conflict"
    assert "kanban team stop crew" in refused.error["error"] and "--yes" in refused.error["error"]

    stopped = team("stop", "crew", "--grace", "2s").json
    assert stopped["stopped"] is True and stopped["dispatcher"] == started["pid"]
    assert stopped["released"] == [survivor]
    wait_for(lambda: not alive(started["pid"]) and not alive(survivor_pid), what="the team to stop")
    shown = kb("show", survivor).json
    assert shown["status"] == "todo" and shown["claimed_by"] is None
    assert [r["outcome"] for r in shown["runs"]] == ["cancelled"]
    assert team("status", "crew").json["dispatcher"]["running"] is False
    assert team("stop", "crew").json["stopped"] is False  # stopping twice is harmless

    assert team("destroy", "crew").error["code"] == "usage"  # --yes, please
    assert kb("team", "destroy", "crew", "--yes", cwd=home, env=dict(env, KANBAN_AGENT="mallory")) \
        .error["code"] == "forbidden"  # the gate still holds until the team is forgotten
    gone = team("destroy", "crew", "--yes").json
    assert gone["destroyed"] is True and gone["tasks_kept"] == 7
    from kanban import Board

    with Board(str(kb.path)) as board:
        assert board.team() is None
    assert len(kb("list").json["tasks"]) == 7  # every task stays
    assert kb("create", "anyone may write again", agent="mallory").rc == 0


def test_a_team_name_is_found_in_the_boards_kanban_folder_from_a_subfolder(kb, tmp_path):
    """.kanban/teams/NAME.yaml is the board's, found from below as the board is (git's
    .git): from a subfolder, by the search and through KANBAN_DB alike."""
    home = tmp_path / "project"
    sub = home / "src" / "deep"
    sub.mkdir(parents=True)
    teams = home / ".kanban" / "teams"
    teams.mkdir(parents=True)
    (teams / "crew.yaml").write_text(json.dumps({
        "name": "crew", "coordinator": "lead", "members": [{"personality": "lead", "role": "coordinator"}]}))
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "KANBAN_CEILING_DIRECTORIES": str(tmp_path)}
    assert kb("init", cwd=home, env=dict(env, KANBAN_DB=None)).rc == 0
    found = kb("team", "validate", "crew", cwd=sub, env=dict(env, KANBAN_DB=None)).json
    assert found["manifest"] == str(teams / "crew.yaml")
    assert found["searched"] == [str(sub / "team.yaml"), str(sub / ".kanban" / "teams" / "crew.yaml"),
                                 str(teams / "crew.yaml"), str(tmp_path / "xdg" / "kanban" / "teams" / "crew.yaml")]
    named = kb("team", "validate", "crew", cwd=sub, env=dict(env, KANBAN_DB=str(home / ".kanban" / "board.db")))
    assert named.json["manifest"] == str(teams / "crew.yaml")
    # another board (the fixture's, with no teams folder): not this project's team
    assert kb("team", "validate", "crew", cwd=sub).error["code"] == "not_found"
