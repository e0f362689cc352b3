"""kanban mcp --http: MCP's Streamable HTTP transport, one board, many agents, each by
its own bearer token (SPEC §6, §8).  A real server process, driven by the mcp
package's own HTTP client."""
import json
import os
import socket
import subprocess
import time

import pytest
from conftest import KANBAN

pytest.importorskip("mcp", reason="the mcp package (kanban's `mcp` extra) is not installed")
import anyio  # noqa: E402
import httpx  # noqa: E402
from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(kb, **extra_env):
    """(process, port) of a `kanban mcp --http` on this test's board, once it is listening."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env["KANBAN_DB"] = str(kb.path)
    env.update(extra_env)
    proc = subprocess.Popen([str(KANBAN), "mcp", "--http", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "kanban mcp --http did not start"
            time.sleep(0.1)
    return proc, port


@pytest.fixture
def server(kb):
    """(url, token_of(agent)): a running `kanban mcp --http` on this test's board."""
    proc, port = start(kb)
    tokens = {}

    def token_of(agent):
        if agent not in tokens:
            tokens[agent] = kb("mcp", "token", "add", agent).json["token"]
        return tokens[agent]
    yield f"http://127.0.0.1:{port}/mcp", token_of
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    for secret in tokens.values():  # tokens are secrets: never logged
        assert secret.encode() not in err
    # an agent closing its session is no error: no traceback on the server's terminal (the SDK
    # logged one for each session's stream as its client went away)
    assert b"Traceback" not in err and b"Error in" not in err, err.decode(errors="replace")[-2000:]
    assert b"Error handling" not in err and b"Failed to validate" not in err, err.decode(errors="replace")[-2000:]


class connect:
    """An initialized MCP client session over HTTP with this bearer token."""

    def __init__(self, url, bearer):
        self.url, self.bearer = url, bearer

    async def __aenter__(self):
        from contextlib import AsyncExitStack

        self.stack = AsyncExitStack()
        http = await self.stack.enter_async_context(
            httpx.AsyncClient(headers={"Authorization": f"Bearer {self.bearer}"}, timeout=60))
        read, write, _ = await self.stack.enter_async_context(streamable_http_client(self.url, http_client=http))
        session = await self.stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        return session

    async def __aexit__(self, *exc):
        return await self.stack.__aexit__(*exc)


async def call(url, bearer, tool, **arguments):
    async with connect(url, bearer) as session:
        result = await session.call_tool(tool, arguments)
        return result.isError, json.loads(result.content[0].text)


def run(coroutine_fn, *args, **kwargs):
    return anyio.run(lambda: coroutine_fn(*args, **kwargs))


def test_two_agents_with_their_own_tokens(kb, server):
    url, token_of = server
    task = kb("create", "shared work").json["id"]
    is_error, claimed = run(call, url, token_of("dev"), "kanban_claim", task_id=task)
    assert not is_error and claimed["claimed_by"] == "dev"  # the session acts as the token's agent
    lease = claimed["lease_token"]
    # qa, with dev's lease token: never a success
    for tool, extra in (("kanban_complete", {"summary": "mine"}), ("kanban_heartbeat", {}),
                        ("kanban_block", {"reason": "no"})):
        is_error, doc = run(call, url, token_of("qa"), tool, task_id=task, token=lease, **extra)
        assert is_error and doc["code"] in ("forbidden", "lease_lost"), (tool, doc)
    assert kb("show", task).json["claimed_by"] == "dev"
    is_error, done = run(call, url, token_of("dev"), "kanban_complete", task_id=task, token=lease, summary="ok")
    assert not is_error and done["status"] == "done"
    assert kb("show", task).json["events"][-1]["actor"] == "dev"


def test_no_token_no_access(kb, server):
    url, token_of = server
    token_of("dev")
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                        "clientInfo": {"name": "t", "version": "1"}}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    for extra in ({}, {"Authorization": "Bearer kbt_1_wrong"}, {"Authorization": "Bearer"},
                  {"Authorization": "Basic ZGV2OmRldg=="}, {"Authorization": "Bearer kbt_999_x"}):
        answer = httpx.post(url, json=hello, headers=dict(headers, **extra), timeout=30)
        assert answer.status_code == 401, (extra, answer.text)
        assert answer.headers["www-authenticate"].startswith("Bearer")
    good = httpx.post(url, json=hello, headers=dict(headers, Authorization=f"Bearer {token_of('dev')}"), timeout=30)
    assert good.status_code == 200
    # a revoked token stops working at once
    revoked = kb("mcp", "token", "add", "gone").json
    kb("mcp", "token", "revoke", str(revoked["id"]))
    assert httpx.post(url, json=hello, headers=dict(headers, Authorization=f"Bearer {revoked['token']}"),
                      timeout=30).status_code == 401
    listed = kb("mcp", "token", "list").json["tokens"]
    assert all("token" not in t and "hash" not in t for t in listed)
    assert [t["active"] for t in listed if t["agent"] == "gone"] == [False]


def test_twenty_concurrent_claimers_never_share_a_task(kb, server):
    url, token_of = server
    from kanban import Board

    with Board(str(kb.path)) as board:
        ids = {t["id"] for t in board.create_many([{"title": f"t{i}"} for i in range(40)])}
    tokens = {f"w{i}": token_of(f"w{i}") for i in range(20)}
    claims = {}

    async def worker(agent, token):
        async with connect(url, token) as session:
            while True:
                result = await session.call_tool("kanban_claim", {})
                document = json.loads(result.content[0].text)
                if result.isError:
                    assert document["code"] == "busy", document
                    continue
                if not document:
                    return
                assert document["claimed_by"] == agent
                claims.setdefault(document["id"], []).append(agent)

    async def main():
        async with anyio.create_task_group() as group:
            for agent, token in tokens.items():
                group.start_soon(worker, agent, token)
    anyio.run(main)
    assert set(claims) == ids
    assert all(len(holders) == 1 for holders in claims.values()), claims
    assert len({a for holders in claims.values() for a in holders}) > 1  # the work was shared


def test_a_port_taken_or_a_bad_lease_is_a_json_error_before_serving(kb):
    """`kanban mcp --http` on a port another program listens on, or with a lease that is no
    duration: exit 2 with one JSON line, and no 'serving' line first (kanban-mcp(1))."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env["KANBAN_DB"] = str(kb.path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([str(KANBAN), "mcp", "--http", f"127.0.0.1:{port}"], env=env, capture_output=True,
                              text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == "", proc
    [line] = proc.stderr.splitlines()
    assert json.loads(line)["code"] == "usage" and f"cannot listen on 127.0.0.1:{port}" in line
    for lease in ("-5m", "soon"):
        proc = subprocess.run([str(KANBAN), "mcp", "--http", f"127.0.0.1:{free_port()}", "--lease", lease],
                              env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and proc.stdout == "", proc
        [line] = proc.stderr.splitlines()
        assert json.loads(line)["code"] == "invalid" and "--lease" in line, line
    # on stdio too, not at the first claim
    proc = subprocess.run([str(KANBAN), "mcp", "--lease", "soon"], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 2 and proc.stdout == "" and json.loads(proc.stderr)["code"] == "invalid", proc


def test_garbage_and_hang_ups_leave_the_server_serving_and_the_board_as_it_was(kb, server):
    """JSON nested deeper than the SDK's parser goes was a 500 with a traceback on the
    server's terminal; a client hanging up before its POST body was all sent left a
    ClientDisconnect traceback; params the SDK refuses logged its whole pydantic report.
    Now: a 400 parse error, nothing, and the SDK's answer, with a quiet terminal (the
    fixture checks it) and no change to the board."""
    url, token_of = server
    task = kb("create", "untouched").json["id"]
    bearer = token_of("dev")
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
               "Authorization": f"Bearer {bearer}"}
    deep = httpx.post(url, content=b"[" * 100000, headers=headers, timeout=30)
    assert deep.status_code == 400 and deep.json()["error"]["code"] == -32700, deep.text
    assert "deep" in deep.json()["error"]["message"]
    huge = httpx.post(url, content=b" " * (8 * 1024 * 1024 + 1), headers=headers, timeout=30)
    assert huge.status_code == 413 and huge.json()["error"]["code"] == -32600, huge.text
    bad = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": None}}
    assert httpx.post(url, json=bad, headers=headers, timeout=30).status_code in (200, 400)
    host, port = url.split("/")[2].split(":")
    message = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "kanban_claim", "arguments": {"task_id": task}}}).encode()
    for _ in range(3):  # a POST whose body stops half-way, then the client is gone
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Accept: application/json, text/event-stream\r\n"
                         + f"Authorization: Bearer {bearer}\r\nContent-Length: {len(message)}\r\n\r\n".encode()
                         + message[:20])
        time.sleep(0.2)
    is_error, shown = run(call, url, bearer, "kanban_show", task_id=task)
    assert not is_error and shown["status"] == "todo" and shown["claimed_by"] is None
    assert [e["kind"] for e in shown["events"]] == ["created"]


def test_an_ended_session_is_not_kept(kb):
    """The server kept each MCP session's kanban Session in a dict never emptied: a server
    whose agents reconnect for every call grew without bound.  Now a session that ends
    (here the client's DELETE as it closes) drops its entry: with KANBAN_DEBUG set, the
    server says how many it keeps as each one ends, read here while it still runs."""
    import threading

    proc, port = start(kb, KANBAN_DEBUG="1")
    url = f"http://127.0.0.1:{port}/mcp"
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        task = kb("create", "looked at").json["id"]
        bearer = kb("mcp", "token", "add", "dev").json["token"]
        sessions = 12

        async def main():
            async def one():
                async with connect(url, bearer) as session:
                    result = await session.call_tool("kanban_show", {"task_id": task})
                    assert not result.isError
            async with anyio.create_task_group() as group:  # all open at once, then all closed
                for _ in range(sessions):
                    group.start_soon(one)
            for _ in range(sessions):  # one after another, as agents that reconnect for each call
                await one()
        anyio.run(main)
        deadline = time.monotonic() + 30
        while sum(b"MCP session ended" in line for line in lines) < 2 * sessions and time.monotonic() < deadline:
            time.sleep(0.1)
        ended = [line.decode().strip() for line in lines if b"MCP session ended" in line]  # before the server stops
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        reader.join(timeout=10)
    assert len(ended) == 2 * sessions, ended
    assert ended[-1].endswith("; 0 kept"), ended
    assert max(int(line.split("; ")[1].split()[0]) for line in ended) < sessions  # counted, and dropped
    assert not any(b"Traceback" in line for line in lines)
