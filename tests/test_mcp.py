"""kanban mcp: the seed's kanban_* tools over MCP's stdio transport (SPEC §6).

Every test drives a real `kanban mcp` process over pipes, one JSON-RPC message a
line, and checks its answers against the CLI's own JSON.  The server runs on the
official `mcp` package (the `mcp` extra); without it these tests skip.
"""
import json
import os
import select
import subprocess
import time

import pytest
from conftest import KANBAN

mcp_types = pytest.importorskip("mcp.types", reason="the mcp package (kanban's `mcp` extra) is not installed")

TOOLS = {"kanban_create_goal", "kanban_create", "kanban_show", "kanban_list", "kanban_comment",
         "kanban_update_status", "kanban_complete", "kanban_block", "kanban_unblock", "kanban_heartbeat",
         "kanban_claim", "kanban_approve", "kanban_reject", "kanban_assign", "kanban_cancel"}


class Client:
    """A `kanban mcp` subprocess, spoken to over its stdin and stdout."""

    def __init__(self, db, agent=None, args=(), env=None):
        full = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
        full["KANBAN_DB"] = str(db)
        if agent:
            full["KANBAN_AGENT"] = agent
        full.update(env or {})
        self.proc = subprocess.Popen([str(KANBAN), "mcp", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=full)
        self.next_id = 0
        self.buffer = b""

    def send(self, message):
        data = message if isinstance(message, bytes) else json.dumps(message).encode("utf-8")
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def receive(self, timeout=30):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            assert left > 0, "no answer from kanban mcp"
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                assert chunk, f"kanban mcp closed stdout: {self.proc.stderr.read().decode()}"
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def request(self, method, params=None):
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        answer = self.receive()
        assert answer["jsonrpc"] == "2.0" and answer["id"] == self.next_id, answer
        return answer

    def initialize(self, version="2025-06-18"):
        answer = self.request("initialize", {"protocolVersion": version, "capabilities": {},
                                             "clientInfo": {"name": "pytest", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return answer["result"]

    def call(self, tool, **arguments):
        """(is_error, the JSON document in the text content)."""
        result = self.request("tools/call", {"name": tool, "arguments": arguments})["result"]
        assert [c["type"] for c in result["content"]] == ["text"]
        document = json.loads(result["content"][0]["text"])
        if isinstance(document, dict):
            assert result["structuredContent"] == document
        return result["isError"], document

    def ok(self, tool, **arguments):
        is_error, document = self.call(tool, **arguments)
        assert not is_error, document
        return document

    def refused(self, tool, code, **arguments):
        is_error, document = self.call(tool, **arguments)
        assert is_error, document
        assert document["code"] == code and document["error"] and document["retryable"] is (code == "busy")
        return document

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode


@pytest.fixture
def mcp(board_path):
    """mcp(agent, env=...) -> an initialized Client on this test's board."""
    clients = []

    def start(agent=None, args=(), env=None, initialize=True):
        client = Client(board_path, agent, args, env)
        clients.append(client)
        if initialize:
            client.initialize()
        return client
    yield start
    for client in clients:
        client.close()


def team(kb, tmp_path):
    manifest = tmp_path / "team.yaml"
    manifest.write_text(json.dumps({"name": "analytics", "coordinator": "coordinator", "members": [
        {"personality": "coordinator", "role": "coordinator"}, {"personality": "data-engineer"},
        {"personality": "researcher"}, {"personality": "reviewer"}]}), encoding="utf-8")
    assert kb("team", "tick", manifest).rc == 0  # records the team: its role gate applies


# -- the protocol ---------------------------------------------------------------------------------

def test_initialize_ping_and_tools_list(mcp):
    client = mcp(initialize=False)
    result = client.initialize("2025-06-18")
    assert result["protocolVersion"] == "2025-06-18"
    assert result["capabilities"]["tools"] == {"listChanged": False}
    assert result["serverInfo"]["name"] == "kanban" and result["serverInfo"]["version"]
    assert client.request("ping")["result"] == {}
    tools = client.request("tools/list")["result"]["tools"]
    assert {t["name"] for t in tools} == TOOLS
    for tool in tools:
        assert tool["description"] and tool["inputSchema"]["type"] == "object"
        assert set(tool["annotations"]) >= {"readOnlyHint", "destructiveHint", "idempotentHint"}
        assert tool["outputSchema"]["type"] == "object"
    by_name = {t["name"]: t for t in tools}
    assert by_name["kanban_create"]["inputSchema"]["properties"]["parents"]["type"] == "array"
    assert set(by_name["kanban_list"]["inputSchema"]["properties"]) >= {"parent_id", "status", "assignee"}


def test_older_and_unknown_protocol_versions(mcp):
    assert mcp(initialize=False).initialize("2024-11-05")["protocolVersion"] == "2024-11-05"
    assert mcp(initialize=False).initialize("1999-01-01")["protocolVersion"] == mcp_types.LATEST_PROTOCOL_VERSION


def test_protocol_errors_do_not_stop_the_server(mcp):
    client = mcp()
    client.send(b"this is not json")
    answer = client.receive()
    assert answer["id"] is None and answer["error"]["code"] == -32700
    assert client.request("no/such/method")["error"]["code"] == -32601
    answer = client.request("tools/call", {"name": "kanban_teleport", "arguments": {}})
    assert answer["error"]["code"] == -32602 and "kanban_teleport" in answer["error"]["message"]
    client.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}})
    client.send({"id": 99, "method": "ping"})  # not JSON-RPC 2.0
    assert client.receive()["error"]["code"] == -32600
    client.send([{"jsonrpc": "2.0", "id": "a", "method": "ping"}])  # no batches since protocol 2025-06-18
    assert client.receive()["error"]["code"] == -32600
    assert client.request("ping")["result"] == {}


def test_end_of_input_ends_the_server(mcp):
    client = mcp()
    assert client.close() == 0


def test_a_client_that_stops_reading_ends_the_server_by_sigpipe_quietly(board_path):
    """As any kanban command whose reader left (kanban(1)): SIGPIPE, nothing on stderr; not an
    'internal' error with the interpreter's 'Exception ignored' after it."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update(KANBAN_DB=str(board_path), KANBAN_AGENT="a1")
    proc = subprocess.Popen([str(KANBAN), "mcp"], stdin=subprocess.PIPE, stdout=write_end, stderr=subprocess.PIPE,
                            env=env)
    os.close(write_end)
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": "2025-03-26", "capabilities": {},
                        "clientInfo": {"name": "t", "version": "1"}}}
    try:
        _out, err = proc.communicate(json.dumps(hello).encode() + b"\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -13 and err == b"", (proc.returncode, err)


def test_list_tools_without_a_session(kb):
    res = kb("mcp", "--list-tools")
    assert res.rc == 0 and {t["name"] for t in res.json["tools"]} == TOOLS


# -- the seed's trace --------------------------------------------------------------------------------

def test_the_coordinator_decomposes_a_request(kb, mcp, tmp_path):
    team(kb, tmp_path)
    coordinator = mcp("coordinator")
    goal = coordinator.ok("kanban_create_goal", title="Q3 Analytics Roadmap")
    assert goal["kind"] == "goal" and goal["created"] is True
    g = goal["id"]
    a1 = coordinator.ok("kanban_create", title="Scope pipeline work", assignee="data-engineer", parents=[g])
    b1 = coordinator.ok("kanban_create", title="Market scan: AI agent space", assignee="researcher", parents=[g])
    c1 = coordinator.ok("kanban_create", title="Pressure-test plan", assignee="reviewer",
                        parents=[g, a1["id"], b1["id"]])
    assert (a1["goal"], a1["depends_on"], a1["ready"]) == (g, [], True)
    assert (c1["goal"], c1["depends_on"], c1["ready"]) == (g, [a1["id"], b1["id"]], False)

    # status?  kanban_list(parent_id=goal) + kanban_show(goal): the same JSON as the CLI
    listed = coordinator.ok("kanban_list", parent_id=g)
    assert listed == kb("list", "--goal", g).json
    assert [t["id"] for t in listed["tasks"]] == [a1["id"], b1["id"], c1["id"]]
    assert coordinator.ok("kanban_show", task_id=g) == kb("show", g).json
    # parent_id of a task: the tasks waiting on it
    assert [t["id"] for t in coordinator.ok("kanban_list", parent_id=a1["id"])["tasks"]] == [c1["id"]]
    assert coordinator.ok("kanban_list", assignee="researcher", status="todo") == \
        kb("list", "--assignee", "researcher", "--status", "todo").json

    # the members: the role gate holds (only the coordinator creates)
    researcher = mcp("researcher")
    researcher.refused("kanban_create", "forbidden", title="freelancing")
    assert researcher.ok("kanban_comment", task_id=a1["id"], body="happy to help")["actor"] == "researcher"
    claim = researcher.ok("kanban_claim")
    assert claim["id"] == b1["id"] and isinstance(claim["lease_token"], int)
    beat = researcher.ok("kanban_heartbeat", task_id=b1["id"])  # the session's own token
    assert beat["lease_token"] == claim["lease_token"]
    done = researcher.ok("kanban_complete", task_id=b1["id"], summary="scanned")
    assert done["status"] == "done" and "comments" not in done  # complete's JSON, not show's
    assert done == {k: v for k, v in kb("show", b1["id"]).json.items() if k in done}
    # the closer tools belong to the assignee
    engineer = mcp("data-engineer")
    token = engineer.ok("kanban_claim", task_id=a1["id"])["lease_token"]
    researcher.refused("kanban_complete", "forbidden", task_id=a1["id"], token=token)
    researcher.refused("kanban_block", "forbidden", task_id=a1["id"], reason="mine now", token=token)
    assert engineer.ok("kanban_complete", task_id=a1["id"], summary="scoped")["status"] == "done"
    assert kb("show", c1["id"]).json["ready"] is True

    events = {e["kind"] for e in kb("event", "list", "--limit", "1000").json["events"]}
    assert {"created", "claimed", "heartbeat", "completed", "commented"} <= events


def test_the_dispatchers_token_comes_from_the_environment(kb, mcp):
    task = kb("create", "dispatched", "--assignee", "dev").json["id"]
    claim = kb("claim", task, agent="dev").json
    env = {"KANBAN_TASK_ID": task, "KANBAN_LEASE_TOKEN": str(claim["lease_token"])}
    member = mcp("dev", env=env)
    assert member.ok("kanban_heartbeat", task_id=task)["lease_token"] == claim["lease_token"]
    assert member.ok("kanban_complete", task_id=task, summary="ok")["status"] == "done"
    assert kb("show", task).json["events"][-1]["data"]["summary"] == "ok"


def test_a_session_without_the_token_is_told_it_is_missing(kb, mcp):
    """A claim made outside this session (another session, the CLI): a closer call with no
    token says that the token is missing, and names no Python None."""
    task = kb("create", "claimed elsewhere").json["id"]
    kb("claim", task, agent="dev")
    member = mcp("dev")
    for tool, extra in (("kanban_heartbeat", {}), ("kanban_complete", {}), ("kanban_block", {"reason": "r"})):
        doc = member.refused(tool, "lease_lost", task_id=task, **extra)
        assert doc["error"] == f"no lease token given for {task}: pass the lease_token its claim returned"
    assert kb("show", task).json["status"] == "in_progress"


def test_update_status_moves_a_task_along(kb, mcp):
    task = kb("create", "move me").json["id"]
    worker = mcp("w1")
    assert worker.ok("kanban_update_status", task_id=task, status="in_progress")["status"] == "in_progress"
    worker.refused("kanban_update_status", "invalid", task_id=task, status="blocked")  # needs a reason
    blocked = worker.ok("kanban_update_status", task_id=task, status="blocked", reason="waiting on data")
    assert blocked["status"] == "blocked" and kb("show", task).json["reason"] == "waiting on data"
    assert worker.ok("kanban_update_status", task_id=task, status="todo")["status"] == "todo"
    worker.ok("kanban_update_status", task_id=task, status="in_progress")
    assert worker.ok("kanban_update_status", task_id=task, status="todo")["status"] == "todo"  # a release
    worker.ok("kanban_update_status", task_id=task, status="in_progress")
    assert worker.ok("kanban_update_status", task_id=task, status="in_review", summary="look")["status"] == \
        "in_review"
    other = kb("create", "drop me").json["id"]
    assert worker.ok("kanban_update_status", task_id=other, status="cancelled", reason="no")["status"] == \
        "cancelled"
    assert worker.ok("kanban_update_status", task_id=other, status="todo")["status"] == "todo"  # a reopen
    worker.refused("kanban_update_status", "invalid", task_id=other, status="sideways")


def test_unblock_and_block_without_a_claim(kb, mcp):
    task = kb("create", "todo task").json["id"]
    client = mcp("someone")
    assert client.ok("kanban_block", task_id=task, reason="not yet")["status"] == "blocked"
    assert client.ok("kanban_unblock", task_id=task)["status"] == "todo"


def test_a_task_blocked_unblocked_and_blocked_again_by_its_claimer(kb, mcp):
    """The session remembers its claim's token; a todo task is parked without it (the board
    refuses a token on a todo task: a stale holder's write)."""
    task = kb("create", "claimed then parked").json["id"]
    client = mcp("w1")
    assert client.ok("kanban_claim", task_id=task)["id"] == task
    assert client.ok("kanban_block", task_id=task, reason="waits on creds")["status"] == "blocked"
    assert client.ok("kanban_unblock", task_id=task)["status"] == "todo"
    assert client.ok("kanban_block", task_id=task, reason="still waits")["status"] == "blocked"


def test_a_bad_lease_is_refused_when_the_server_starts(kb):
    """`kanban mcp --lease 1_0m` (or a bad KANBAN_LEASE) served, and then every kanban_claim
    failed; it is refused at the start, as `kanban work` refuses it."""
    from conftest import assert_error

    for args, env in ((["--lease", "1_0m"], {}), (["--lease", "0"], {}), ([], {"KANBAN_LEASE": "soon"})):
        assert_error(kb("mcp", "--agent", "w1", *args, env=env, input=""), "invalid")
    assert kb("mcp", "--agent", "w1", "--lease", "90s", input="").rc == 0


# -- errors are tool results -------------------------------------------------------------------------

def test_board_errors_are_tool_errors_with_the_cli_json(kb, mcp):
    client = mcp("w1")
    doc = client.refused("kanban_show", "not_found", task_id="TASK-999")
    assert doc == kb("show", "TASK-999").error
    task = kb("create", "not claimed").json["id"]
    client.refused("kanban_complete", "conflict", task_id=task, token=1)
    client.refused("kanban_heartbeat", "conflict", task_id=task)
    client.refused("kanban_show", "invalid", task_id="banana")
    client.refused("kanban_create", "not_found", title="orphan", parents=["TASK-404"])


def test_arguments_are_checked_against_the_input_schema(mcp):
    client = mcp("w1")
    doc = client.refused("kanban_create", "invalid")
    assert "title" in doc["error"]
    client.refused("kanban_create", "invalid", title="x", priority="high")
    client.refused("kanban_show", "invalid", task_id="TASK-1", colour="red")
    answer = client.request("tools/call", {"name": "kanban_show", "arguments": ["TASK-1"]})
    assert answer["error"]["code"] == -32602 and "arguments" in answer["error"]["message"]


def test_no_agent_means_no_claims(mcp):
    client = mcp()
    client.refused("kanban_claim", "usage")


def test_no_board_is_a_tool_error_not_a_dead_server(tmp_path):
    client = Client(tmp_path / "missing" / "board.db", "w1")
    try:
        client.initialize()
        is_error, doc = client.call("kanban_list")
        assert is_error and doc["code"] in ("not_found", "db_error")
        assert client.request("ping")["result"] == {}
    finally:
        client.close()


def test_stdout_carries_only_json_rpc_even_with_hooks(kb, mcp):
    hooks = kb.path.parent / "hooks.d"
    hooks.mkdir(exist_ok=True)
    hook = hooks / "post-create"
    hook.write_text("#!/bin/sh\necho 'hook output that must not reach stdout'\n", encoding="utf-8")
    hook.chmod(0o755)
    client = mcp("w1")
    created = client.ok("kanban_create", title="with a hook")
    assert created["created"] is True
    assert client.request("ping")["result"] == {}  # the next line is still the next answer
    client.proc.stdin.close()
    rest = client.proc.stdout.read().decode()
    assert rest == "" and client.buffer == b""
    assert "hook output that must not reach stdout" in client.proc.stderr.read().decode()  # it went here


def test_the_man_page_examples_run(kb):
    """kanban-mcp(1)'s runnable EXAMPLES, on this test's board."""
    from test_team import page_examples

    blocks = page_examples("kanban-mcp.1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update(PATH=f"{KANBAN.parent}{os.pathsep}{env['PATH']}", KANBAN_DB=str(kb.path))
    proc = subprocess.run(["bash", "-c", "set -e\n" + "\n".join(blocks)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc
    answers = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [a["id"] for a in answers] == [1, 2] and answers[1]["result"]["isError"] is False
    assert set(proc.stdout.split()) >= TOOLS
    assert kb("list").json["tasks"][0]["title"] == "Q3 roadmap"


def test_a_reviewer_claims_and_heartbeats_a_review(kb, mcp):
    task = kb("create", "review me", "--review").json["id"]
    token = kb("claim", task, agent="w1").json["lease_token"]
    kb("complete", task, "--token", token, agent="w1")
    mcp("w1").refused("kanban_claim", "forbidden", task_id=task, for_review=True)  # no self-review
    reviewer = mcp("r1")
    claim = reviewer.ok("kanban_claim", for_review=True)
    assert claim["id"] == task and claim["status"] == "in_review" and claim["claimed_by"] == "r1"
    beat = reviewer.ok("kanban_heartbeat", task_id=task)
    assert beat["lease_token"] == claim["lease_token"] and beat["status"] == "in_review"
    # the review ends over MCP: approve under the session's own review lease
    approved = reviewer.ok("kanban_approve", task_id=task, comment="fine")
    assert approved["status"] == "done" and approved == {k: v for k, v in kb("show", task).json.items()
                                                         if k in approved}


def test_a_review_claimed_over_mcp_finishes_over_mcp(kb, mcp):
    first = kb("create", "review me", "--review").json["id"]
    second = kb("create", "and me", "--review").json["id"]
    for task in (first, second):
        token = kb("claim", task, agent="w1").json["lease_token"]
        kb("complete", task, "--token", token, agent="w1")
    reviewer = mcp("r1")
    assert reviewer.ok("kanban_claim", task_id=first, for_review=True)["claimed_by"] == "r1"
    # the seed's generic tool finishes it: done approves a review the caller holds
    done = reviewer.ok("kanban_update_status", task_id=first, status="done", summary="good")
    assert done["status"] == "done" and kb("show", first).json["claimed_by"] is None
    assert reviewer.ok("kanban_claim", task_id=second, for_review=True)["id"] == second
    # completing a review is named for what it is, not a lost lease
    doc = reviewer.refused("kanban_complete", "conflict", task_id=second)
    assert "kanban_approve" in doc["error"] and "lease" not in doc["error"].split(":")[0]
    rejected = reviewer.ok("kanban_reject", task_id=second, reason="needs tests")
    assert rejected["status"] == "todo" and kb("show", second).json["reason"] == "needs tests"
    mcp("w1").refused("kanban_approve", "conflict", task_id=second)  # not in review any more


def test_toolsets_follow_the_role(kb, mcp, tmp_path):
    manifest = tmp_path / "team.yaml"
    manifest.write_text(json.dumps({"name": "analytics", "coordinator": "coordinator", "operators": ["ops"],
                                    "members": [{"personality": "coordinator", "role": "coordinator"},
                                                {"personality": "data-engineer"},
                                                {"personality": "researcher",
                                                 "tools": ["kanban_show", "kanban_list", "kanban_comment"]}]}),
                        encoding="utf-8")
    assert kb("team", "tick", manifest).rc == 0

    def names(agent):
        return {t["name"] for t in mcp(agent).request("tools/list")["result"]["tools"]}
    seed_eight = {"kanban_show", "kanban_list", "kanban_comment", "kanban_update_status", "kanban_complete",
                  "kanban_block", "kanban_unblock", "kanban_heartbeat"}
    planning = {"kanban_create_goal", "kanban_create", "kanban_assign", "kanban_cancel"}
    member = names("data-engineer")
    assert seed_eight <= member and not planning & member and {"kanban_approve", "kanban_reject"} <= member
    assert planning | seed_eight <= names("coordinator")
    assert names("researcher") == {"kanban_show", "kanban_list", "kanban_comment"}  # narrowed by tools:
    assert names("ops") == TOOLS
    assert names("mallory") == {"kanban_show", "kanban_list"}
    doc = mcp("data-engineer").refused("kanban_create_goal", "forbidden", title="mine")
    assert "toolset" in doc["error"]


def test_tools_carry_annotations_and_output_schemas(kb, mcp):
    from jsonschema import Draft202012Validator

    client = mcp("w1")
    tools = {t["name"]: t for t in client.request("tools/list")["result"]["tools"]}
    assert tools["kanban_show"]["annotations"]["readOnlyHint"] is True
    assert tools["kanban_cancel"]["annotations"]["destructiveHint"] is True
    assert tools["kanban_assign"]["annotations"]["idempotentHint"] is True
    for tool in tools.values():
        Draft202012Validator.check_schema(tool["outputSchema"])
        assert "https://" not in json.dumps(tool["outputSchema"]).replace("https://json-schema.org", "")
    created = client.ok("kanban_create", title="schema me")
    Draft202012Validator(tools["kanban_create"]["outputSchema"]).validate(created)
    Draft202012Validator(tools["kanban_show"]["outputSchema"]).validate(client.ok("kanban_show",
                                                                                  task_id=created["id"]))
    Draft202012Validator(tools["kanban_claim"]["outputSchema"]).validate(client.ok("kanban_claim"))


def test_the_sdk_stdio_client_drives_it(kb):
    """The mcp package's own stdio client: initialize, list, call, with output validation on."""
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    task = kb("create", "for the sdk client").json["id"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update(KANBAN_DB=str(kb.path), KANBAN_AGENT="w1")

    async def main():
        params = StdioServerParameters(command=str(KANBAN), args=["mcp"], env=env)
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            listed = await session.list_tools()
            assert {t.name for t in listed.tools} == TOOLS
            claimed = await session.call_tool("kanban_claim", {"task_id": task})
            assert not claimed.isError and claimed.structuredContent["claimed_by"] == "w1"
            done = await session.call_tool("kanban_complete", {"task_id": task, "summary": "sdk"})
            assert not done.isError and done.structuredContent["status"] == "done"
    anyio.run(main)


def _sdk_session(kb, agent, body):
    """Run body(session) on an initialized session of the mcp package's own stdio client."""
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update(KANBAN_DB=str(kb.path), KANBAN_AGENT=agent)

    async def main():
        params = StdioServerParameters(command=str(KANBAN), args=["mcp"], env=env)
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            await body(session)
    anyio.run(main)


def test_every_argument_of_every_tool_is_described(kb):
    """An agent picks its arguments from the inputSchema alone: each one has a type and
    a description (title, body, status, reason, summary... had none)."""
    async def body(session):
        for tool in (await session.list_tools()).tools:
            assert tool.description and tool.inputSchema["additionalProperties"] is False
            for name, spec in tool.inputSchema["properties"].items():
                assert spec.get("type") and spec.get("description", "").strip(), (tool.name, name)
            assert set(tool.inputSchema["required"]) <= set(tool.inputSchema["properties"]), tool.name
    _sdk_session(kb, "w1", body)


def test_an_integer_argument_sent_as_2_0_is_the_integer(kb):
    """JSON Schema's integer takes 2.0 (the schema let it through): the tool took it as no
    integer, and kanban_list {parent_id, limit: 1.0} died inside with 'internal'."""
    goal = kb("create", "goal", "--kind", "goal").json["id"]
    first = kb("create", "first").json["id"]
    for n in range(3):
        kb("create", f"waits {n}", "--depends-on", first, "--goal", goal)

    async def body(session):
        async def ok(tool, arguments):
            result = await session.call_tool(tool, arguments)
            assert not result.isError, result.content[0].text
            return result.structuredContent
        assert len((await ok("kanban_list", {"parent_id": first, "limit": 1.0}))["tasks"]) == 1
        assert len((await ok("kanban_list", {"parent_id": goal, "limit": 2.0}))["tasks"]) == 2
        created = await ok("kanban_create", {"title": "floats", "priority": 3.0, "max_attempts": 2.0})
        assert created["priority"] == 3 and created["max_attempts"] == 2
        claimed = await ok("kanban_claim", {"task_id": created["id"]})
        beat = await ok("kanban_heartbeat", {"task_id": created["id"], "token": float(claimed["lease_token"])})
        assert beat["id"] == created["id"]
        refused = await session.call_tool("kanban_list", {"limit": 1.5})
        assert refused.isError and "limit" in refused.content[0].text
    _sdk_session(kb, "w1", body)


def test_heartbeat_with_a_message_is_the_seeds_log_progress(kb):
    """The seed's log-progress (a note that renews the lease) had no tool: an agent on MCP
    could renew (kanban_heartbeat) or comment, never log its progress on the task."""
    task = kb("create", "long work").json["id"]

    async def body(session):
        claimed = await session.call_tool("kanban_claim", {"task_id": task})
        assert not claimed.isError
        before = claimed.structuredContent["lease_until"]
        time.sleep(0.05)
        beat = await session.call_tool("kanban_heartbeat", {"task_id": task, "message": "tests pass, writing docs"})
        assert not beat.isError, beat.content[0].text
        assert beat.structuredContent["lease_until"] >= before and beat.structuredContent["claimed_by"] == "w1"
        empty = await session.call_tool("kanban_heartbeat", {"task_id": task, "message": ""})
        assert empty.isError and "message" in empty.content[0].text
        stale = await session.call_tool("kanban_heartbeat", {"task_id": task, "token": 999999, "message": "lost"})
        assert stale.isError and json.loads(stale.content[0].text)["code"] == "lease_lost"
    _sdk_session(kb, "w1", body)
    progress = kb("event", "list", "--task", task, "--kind", "progress").json["events"]
    assert [(e["actor"], e["data"]["message"]) for e in progress] == [("w1", "tests pass, writing docs")]
    assert [e["kind"] for e in kb("event", "list", "--task", task).json["events"]].count("heartbeat") == 1


# -- one message never kills the session --------------------------------------------------------------

def _nasty_messages():
    """JSON-RPC shapes, types, sizes and nesting a client might send, on purpose or not."""
    import random

    rng = random.Random(20261201)
    values = [None, True, False, 0, -1, 2**63, 10**40, 1.5, "", "x" * 70_000, "\u0000\u202e\ud7ff", [], {},
              [1, [2, [3]]], {"a": {"b": {}}}, "kanban_show", "TASK-1", ["kanban_show"], {"name": "kanban_show"}]
    raw = [b"", b"{", b"}", b"[", b"null", b"42", b'"str"', b"[]", b"{}", b"\xff\xfe\x00", b"[" * 200_000,
           b"{\"a\":" * 100_000, b'{"jsonrpc":"2.0","id":NaN,"method":"ping"}',
           b'{"jsonrpc":"2.0","id":Infinity,"method":"ping"}', b'{"jsonrpc":"2.0","id":-Infinity,"method":"ping"}',
           b'{"jsonrpc":"2.0","id":1e999,"method":"ping"}', b'{"jsonrpc":"2.0","id":1,"method":"ping"' + b" " * 10,
           b'{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"kanban_show","arguments":'
           + b"[" * 5000 + b"]" * 5000 + b"}}",
           b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"kanban_create","arguments":{"title":'
           + b'"' + b"t" * 2_000_000 + b'"}}}']
    messages = list(raw)
    for _ in range(300):
        message = {}
        for key in ("jsonrpc", "id", "method", "params"):
            if rng.random() < 0.8:
                message[key] = rng.choice(values + {"jsonrpc": ["2.0", "1.0"], "method": [
                    "tools/call", "tools/list", "initialize", "ping", "notifications/initialized", "resources/list",
                    "no/such"]}.get(key, []) * 3)
        if message.get("method") == "tools/call" and rng.random() < 0.7:
            message["params"] = {"name": rng.choice(values + ["kanban_show", "kanban_create", "kanban_claim",
                                                              "kanban_update_status"] * 3),
                                 "arguments": rng.choice(values + [
                                     {"task_id": rng.choice(values)}, {"title": rng.choice(values)},
                                     {"task_id": "TASK-1", "status": rng.choice(values)}])}
        messages.append(json.dumps(message).encode("utf-8"))
    return messages


def test_no_message_kills_the_session_and_stdout_is_only_json_rpc(kb, mcp):
    kb("create", "a task to show")
    client = mcp("w1")
    expected, answered = set(), set()
    for number, message in enumerate(_nasty_messages()):
        client.send(message)
        try:  # the same message as a request with an id of ours: it must be answered, whatever it holds
            document = json.loads(message)
        except (ValueError, RecursionError):
            document = None
        if isinstance(document, dict) and document.get("jsonrpc") == "2.0" and isinstance(document.get("method"),
                                                                                              str):
            expected.add(f"check-{number}")
            client.send(dict(document, id=f"check-{number}"))
        probe = f"probe-{number}"
        client.send({"jsonrpc": "2.0", "id": probe, "method": "ping"})
        while True:  # the session lives on: its answers, then the probe's; each line one JSON-RPC message
            answer = client.receive()
            assert answer.get("jsonrpc") == "2.0" and ("result" in answer or "error" in answer), (number, answer)
            answered.add(answer.get("id"))
            if answer.get("id") == probe:
                assert answer["result"] == {}
                break
    client.proc.stdin.close()
    rest = client.proc.stdout.read()
    for line in (client.buffer + rest).splitlines():
        answer = json.loads(line)
        assert answer["jsonrpc"] == "2.0" and ("result" in answer or "error" in answer)
        answered.add(answer.get("id"))
    assert client.proc.wait(timeout=60) == 0
    assert len(expected) > 10 and expected <= answered, sorted(expected - answered)[:10]


def test_nothing_of_the_sdk_outside_kanban_mcp():
    """The plumbing, the board and even the tool definitions load without the MCP SDK."""
    import sys

    code = ("import sys; import kanban.board, kanban.verbs, kanban.team, kanban.mcp\n"
            "sdk = {'mcp', 'pydantic', 'anyio', 'starlette', 'uvicorn', 'httpx'}\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in sdk)\n"
            "assert not loaded, loaded")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
