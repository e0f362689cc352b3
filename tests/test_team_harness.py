"""Team members that are real agent CLIs (`harness: claude | codex | gemini | pi`).

Stand-in executables named like the agents are put first on PATH.  Each checks the
argument shape the dispatcher gave it (the agent's documented non-interactive mode
and MCP configuration), then drives kanban through the MCP configuration it
received, with the mcp package's own stdio client: the whole path from a dispatcher
tick to kanban_complete is real except the model.
"""
import json
import os
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="the mcp package (kanban's `mcp` extra) is not installed")

STAND_IN = r'''#!{python}
"""A stand-in for the {name} agent CLI: checks its arguments, then works its task over MCP."""
import json, os, re, subprocess, sys, tomllib

name = os.path.basename(sys.argv[0])
args = sys.argv[1:]


def fail(why):
    sys.stderr.write(f"{{name}} stand-in: {{why}}: {{args!r}}\n")
    sys.exit(3)


if name == "claude":
    if args[:2] != ["-p", "--mcp-config"] or args[3:] != ["--strict-mcp-config", "--allowedTools", "mcp__kanban"]:
        fail("not claude -p --mcp-config FILE --strict-mcp-config --allowedTools mcp__kanban")
    server = json.load(open(args[2]))["mcpServers"]["kanban"]
    prompt = sys.stdin.read()
elif name == "codex":
    if args[0] != "exec" or len(args) != 8 or args[1:7:2] != ["-c"] * 3:
        fail("not codex exec -c K=V -c K=V -c K=V PROMPT")
    server = {{}}
    for override in args[2:7:2]:
        key, _, value = override.partition("=")
        if not key.startswith("mcp_servers.kanban."):
            fail("an override outside mcp_servers.kanban")
        server[key.rsplit(".", 1)[1]] = tomllib.loads("v = " + value)["v"]
    prompt = args[7]
elif name == "gemini":
    if args[:3] != ["--allowed-mcp-server-names", "kanban", "-p"] or len(args) != 4:
        fail("not gemini --allowed-mcp-server-names kanban -p PROMPT")
    server = json.load(open(os.environ["GEMINI_CLI_SYSTEM_SETTINGS_PATH"]))["mcpServers"]["kanban"]
    prompt = args[3]
elif name == "pi":
    if args[:1] != ["-p"] or len(args) != 2:
        fail("not pi -p PROMPT")
    prompt = args[1]
    task = re.search(r"Task id: `(TASK-[0-9]+)`", prompt).group(1)
    subprocess.run(["kanban", "complete", task, "--token", os.environ["KANBAN_LEASE_TOKEN"],
                    "--summary", "done by the pi stand-in"], check=True, stdout=subprocess.DEVNULL)
    sys.exit(0)
else:
    fail("unknown agent")

task = re.search(r"Task id: `(TASK-[0-9]+)`", prompt).group(1)
if server["args"][:3] != ["mcp", "--agent", os.environ["KANBAN_AGENT"]]:
    fail("the MCP server is not kanban mcp for this member")

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def work():
    params = StdioServerParameters(command=server["command"], args=server["args"], env=server["env"])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        names = {{t.name for t in (await session.list_tools()).tools}}
        assert "kanban_complete" in names and "kanban_create_goal" not in names, names
        beat = await session.call_tool("kanban_heartbeat", {{"task_id": task}})
        assert not beat.isError, beat.content[0].text
        summary = f"done by the {{name}} stand-in"
        done = await session.call_tool("kanban_complete", {{"task_id": task, "summary": summary}})
        assert not done.isError, done.content[0].text

anyio.run(work)
'''


def stand_ins(folder):
    folder.mkdir()
    for name in ("claude", "codex", "gemini", "pi"):
        path = folder / name
        path.write_text(STAND_IN.format(python=sys.executable, name=name), encoding="utf-8")
        path.chmod(0o755)
    return folder


def test_members_that_are_agent_clis_work_their_tasks_over_mcp(kb, tmp_path):
    agents = stand_ins(tmp_path / "agents")
    manifest = tmp_path / "team.yaml"
    manifest.write_text(json.dumps({
        "name": "analytics", "coordinator": "coordinator", "operators": ["ops"],
        "members": [{"personality": "coordinator", "role": "coordinator"},
                    {"personality": "data-engineer", "harness": "claude"},
                    {"personality": "researcher", "harness": "codex"},
                    {"personality": "reviewer", "harness": "gemini"},
                    {"personality": "scribe", "harness": "pi"}]}), encoding="utf-8")
    env = {"PATH": f"{agents}{os.pathsep}{os.environ['PATH']}"}
    described = kb("team", "validate", manifest).json
    assert [m["harness"] for m in described["members"]] == [None, "claude", "codex", "gemini", "pi"]
    assert described["warnings"] == [
        "coordinator has no command or harness: nothing will run its tasks (it works them by hand)"]
    assert kb("team", "tick", manifest, env=env).rc == 0
    tasks = {member: kb("create", f"work of {member}", "--assignee", member, agent="ops").json["id"]
             for member in ("data-engineer", "researcher", "reviewer", "scribe", "coordinator")}
    follow_up = kb("create", "after the scan", "--assignee", "coordinator", "--depends-on", tasks["researcher"],
                   agent="ops").json["id"]
    report = kb("team", "tick", manifest, env=env).json
    assert {d["agent"] for d in report["dispatched"]} == {"data-engineer", "researcher", "reviewer", "scribe"}
    assert report["manual"] == [{"task": tasks["coordinator"], "agent": "coordinator", "message":
                                 f"{tasks['coordinator']} is ready for coordinator, who has no command or harness: "
                                 "nothing will run it"}]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        statuses = {m: kb("show", t).json["status"] for m, t in tasks.items()}
        if all(statuses[m] == "done" for m in tasks if m != "coordinator"):
            break
        time.sleep(0.5)
    logs = {p.name: p.read_text() for p in (kb.path.parent / "team" / "analytics").glob("*.log")}
    assert all(statuses[m] == "done" for m in tasks if m != "coordinator"), (statuses, logs)
    for member, harness in (("data-engineer", "claude"), ("researcher", "codex"), ("reviewer", "gemini"),
                            ("scribe", "pi")):
        shown = kb("show", tasks[member], "--events", "50").json
        completed = [e for e in shown["events"] if e["kind"] == "completed"]
        assert completed[0]["actor"] == member and completed[0]["data"]["summary"] == f"done by the {harness} stand-in"
        assert [r["outcome"] for r in shown["runs"]] == ["completed"]
    # each member's MCP configuration was written by kanban, for that member only
    config = json.loads((kb.path.parent / "team" / "analytics" / "data-engineer.mcp.json").read_text())
    server = config["mcpServers"]["kanban"]
    assert server["args"] == ["mcp", "--agent", "data-engineer"] and Path(server["command"]).name == "kanban"
    assert oct((kb.path.parent / "team" / "analytics" / "data-engineer.mcp.json").stat().st_mode)[-3:] == "600"
    # the seed's Verify list, as SQL on the board file (in another process: one SQLite library a process)
    import subprocess

    query = ("import sqlite3, sys, json; c = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True); "
             "print(json.dumps(dict(c.execute('SELECT kind, count(*) FROM task_events GROUP BY kind').fetchall())))")
    kinds = json.loads(subprocess.run([sys.executable, "-c", query, str(kb.path)], capture_output=True, text=True,
                                      check=True, timeout=60).stdout)
    assert {"created", "linked", "status_changed", "run_started", "run_completed", "completed"} <= set(kinds)
    assert kb("show", follow_up).json["ready"] is True  # its dependency was done by an agent


def test_codex_overrides_are_toml_for_any_board_path(tmp_path):
    """Codex takes the member's server as `-c key=value` overrides whose values are TOML,
    and a value that does not parse is taken as a plain string.  They were written as
    JSON strings, which TOML reads alike except past U+FFFF: a board in a folder named
    with an emoji became a surrogate pair, which TOML refuses, so Codex got the whole
    quoted text as the command's environment (or no table at all).  Each value, and the
    member's codex.toml, now reads back as what was meant."""
    import tomllib

    from kanban import harness

    env = {"KANBAN_DB": str(tmp_path / "\U0001f680 sprint \u00e9t\u00e9" / "board.db"), "KANBAN_AGENT": "r",
           "KANBAN_TASK_ID": "TASK-1", "KANBAN_LEASE_TOKEN": "7", "KANBAN_TEAM": 'a "quoted"\\team\t\x7f'}
    argv, _extra = harness.launch("codex", "r\U0001f680", "the prompt", str(tmp_path), env)
    server = {}
    assert argv[:2] == ["codex", "exec"] and argv[2:-1:2] == ["-c"] * 3 and argv[-1] == "the prompt"
    for override in argv[3:-1:2]:
        key, _, value = override.partition("=")
        server[key.rsplit(".", 1)[1]] = tomllib.loads("v = " + value)["v"]
    expected = harness.server_entry("r\U0001f680", env)
    assert server == expected and server["env"]["KANBAN_DB"] == env["KANBAN_DB"]
    written = tomllib.loads(Path(harness.config_file("codex", "r\U0001f680", str(tmp_path))).read_text())
    assert written == {"mcp_servers": {"kanban": expected}}
