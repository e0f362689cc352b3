"""`kanban mcp` on the official MCP SDK (the `mcp` package): its low-level Server
answers initialize, ping, tools/list and tools/call, negotiates the protocol version
and runs the Streamable HTTP transport; the tools are mcp.py's Session, on the Board.

Imported only by `kanban mcp` (porcelain/kanban-mcp), never on the plumbing path.

stdio: one message a line.  The lines are read here, not by the SDK's stdio reader,
so that every line gets an answer and none can end the session: a line that is not
JSON (or holds NaN, Infinity, a number too large for a float, or nesting deeper than
MAX_DEPTH) is a -32700 error; a message that is not a JSON-RPC 2.0 request,
notification or response is -32600; an unknown method is -32601; a line longer than
MAX_LINE is -32600 and skipped.  What passes goes to the SDK, which answers the
rest (a tool name that is not a string, params of the wrong shape: -32602).  Only
JSON-RPC is written to stdout.

HTTP: `kanban mcp --http HOST:PORT` serves MCP's Streamable HTTP transport at /mcp
for many agents at once, each identified by its bearer token (Board.token_check):
no token or a wrong one is 401, on loopback too; the session acts as the token's
agent and no other.  A POST's body is read here first: a client that hangs up
before sending all of it gets nothing (the SDK logged a traceback for each), JSON
nested deeper than MAX_DEPTH is a 400 -32700 (the SDK's parser died: a 500 and a
traceback), and a body longer than MAX_LINE is a 413.
"""
import contextlib
import json
import math
import os
import sys
import threading

import anyio
import mcp.types as types
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.shared.exceptions import McpError
from mcp.shared.message import SessionMessage

from . import __version__
from .mcp import Session, UnknownTool

MAX_LINE = 8 * 1024 * 1024
MAX_DEPTH = 64
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602


def _methods(union):
    """method name -> the SDK's model of that request or notification."""
    import typing

    out = {}
    for model in typing.get_args(union.model_fields["root"].annotation):
        for method in typing.get_args(model.model_fields["method"].annotation):
            out[method] = model
    return out


REQUESTS = _methods(types.ClientRequest)
NOTIFICATIONS = _methods(types.ClientNotification)


def instructions(agent):
    who = agent or "(no agent: set KANBAN_AGENT or --agent to claim and complete)"
    return (f"A shared kanban board. You are {who}. Work on the tasks assigned to you: finish with "
            "kanban_complete and a one-line summary, call kanban_block with the reason when stuck, and "
            "kanban_heartbeat at least every minute on long work. Judge reviews with kanban_approve or "
            "kanban_reject. Every tool answers with the board's JSON (the same as the kanban command's).")


def build_server(session_for, run, agent=None, lifespan=None):
    """The SDK's low-level server with kanban's tools: session_for() is the caller's
    Session; run(fn, *args) runs a blocking board call (inline, or in a thread);
    lifespan, if given, is the SDK's per-session context (entered as each MCP session
    starts, left as it ends)."""
    extra = {"lifespan": lifespan} if lifespan is not None else {}
    server = Server("kanban", version=__version__, instructions=instructions(agent), **extra)

    async def list_tools(_request):
        session = session_for()
        entries = await run(session.tools)
        return types.ServerResult(types.ListToolsResult(tools=[types.Tool(**entry) for entry in entries]))

    async def call_tool(request):
        session = session_for()
        try:
            document, is_error = await run(session.call, request.params.name, request.params.arguments)
        except UnknownTool as exc:
            raise McpError(types.ErrorData(code=INVALID_PARAMS, message=str(exc))) from None
        text = json.dumps(document, ensure_ascii=False)
        return types.ServerResult(types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], isError=is_error,
            structuredContent=document if isinstance(document, dict) else None))

    server.request_handlers[types.ListToolsRequest] = list_tools
    server.request_handlers[types.CallToolRequest] = call_tool
    return server


def options(server):
    return server.create_initialization_options(NotificationOptions(tools_changed=False))


# -- stdio -----------------------------------------------------------------------------------

def _finite(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _constant(name):
    raise ValueError(f"{name} is not JSON")


def _too_deep(document):
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return False


def _error(request_id, code, message):
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _dumps(document):
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def _valid_id(value):
    return isinstance(value, str) or isinstance(value, int) and not isinstance(value, bool)


def screen(line):
    """One line from the client -> (a JSONRPCMessage for the SDK, None) or (None, the
    error answer, or None when nothing is to be answered)."""
    try:
        document = json.loads(line, parse_constant=_constant, parse_float=_finite)
    except RecursionError:
        return None, _error(None, PARSE_ERROR, f"Parse error: nested more than {MAX_DEPTH} deep")
    except ValueError as exc:
        return None, _error(None, PARSE_ERROR, f"Parse error: {exc}"[:300])
    if _too_deep(document):
        return None, _error(None, PARSE_ERROR, f"Parse error: nested more than {MAX_DEPTH} deep")
    if isinstance(document, list):
        return None, _error(None, INVALID_REQUEST, "Invalid Request: batches are not supported (send one message "
                                                   "a line)")
    if not isinstance(document, dict):
        return None, _error(None, INVALID_REQUEST, "Invalid Request: expected a JSON-RPC 2.0 object")
    request_id = document.get("id")
    answer_id = request_id if _valid_id(request_id) else None
    if document.get("jsonrpc") != "2.0":
        return None, _error(answer_id, INVALID_REQUEST, "Invalid Request: expected a JSON-RPC 2.0 message")
    if "id" in document and not _valid_id(request_id):
        return None, _error(None, INVALID_REQUEST, "Invalid Request: id must be a string or an integer")
    method = document.get("method")
    if "method" in document:
        if not isinstance(method, str):
            return None, _error(answer_id, INVALID_REQUEST, "Invalid Request: method must be a string")
        if "id" not in document:  # a notification: never answered
            if method not in NOTIFICATIONS:
                return None, None
        elif method not in REQUESTS:
            return None, _error(answer_id, METHOD_NOT_FOUND, f"Method not found: {method}"[:300])
        params = document.get("params")
        if params is not None and not isinstance(params, dict):
            if "id" not in document:
                return None, None
            return None, _error(answer_id, INVALID_PARAMS, "Invalid params: params must be an object")
        if "id" in document:
            problem = _params_problem(REQUESTS[method], document)
            if problem:
                return None, _error(answer_id, INVALID_PARAMS, f"Invalid params for {method}: {problem}"[:500])
    try:
        return types.JSONRPCMessage.model_validate(document), None
    except Exception as exc:  # noqa: BLE001 - any shape pydantic refuses
        if "method" in document and "id" not in document:
            return None, None
        return None, _error(answer_id, INVALID_REQUEST, f"Invalid Request: {type(exc).__name__}")


def _params_problem(model, document):
    """What is wrong with a request's params, in words (None: nothing)."""
    from pydantic import ValidationError

    try:
        model.model_validate({"method": document["method"], "params": document.get("params")})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "params"
        return f"{where}: {first['msg']}"
    return None


def _read_line(stream):
    """The next line (bytes, without its newline), b"" at end of input, or None for a
    line longer than MAX_LINE (read to its end and dropped)."""
    line = stream.readline(MAX_LINE + 1)
    if not line:
        return b""
    if len(line) > MAX_LINE and not line.endswith(b"\n"):
        while True:
            rest = stream.readline(MAX_LINE)
            if not rest or rest.endswith(b"\n"):
                return None
    return line.rstrip(b"\r\n") or b" "


def serve_stdio(session):
    """Serve one session on stdin/stdout until end of input."""
    import logging

    logging.getLogger().setLevel(logging.ERROR)  # what the SDK refuses is answered, not logged
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer

    async def inline(fn, *args):
        return fn(*args)

    server = build_server(lambda: session, inline, agent=session.agent)

    async def main():
        to_sdk, from_client = anyio.create_memory_object_stream(0)
        to_client, from_sdk = anyio.create_memory_object_stream(0)
        lines_out, lines_in = anyio.create_memory_object_stream(16)

        async def write_lines():
            async with lines_in:
                async for text in lines_in:
                    await anyio.to_thread.run_sync(_write, stdout, text)

        async def forward_answers():
            async with from_sdk, lines_out.clone() as out:
                async for message in from_sdk:
                    await out.send(message.message.model_dump_json(by_alias=True, exclude_none=True))

        async def read_client():
            async with to_sdk, lines_out.clone() as out:
                while True:
                    line = await anyio.to_thread.run_sync(_read_line, stdin)
                    if line == b"":
                        return
                    if line is None:
                        await out.send(_dumps(_error(None, INVALID_REQUEST,
                                                     f"Invalid Request: a message longer than {MAX_LINE} bytes")))
                        continue
                    if not line.strip():
                        continue
                    message, answer = screen(line.decode("utf-8", errors="replace"))
                    if answer is not None:
                        await out.send(_dumps(answer))
                    elif message is not None:
                        await to_sdk.send(SessionMessage(message))

        async with anyio.create_task_group() as group:
            group.start_soon(write_lines)
            group.start_soon(forward_answers)
            async with lines_out:
                group.start_soon(read_client)
                await server.run(from_client, to_client, options(server))

    try:
        anyio.run(main)
    except BaseException as exc:
        if not _reader_left(exc):
            raise
        session.close()
        from .cli import reader_gone

        reader_gone()  # the client stopped reading our stdout: as any command whose reader left
    finally:
        session.close()
    return 0


def _reader_left(exc):
    """Is this (or an exception group holding it) stdout's reader gone?"""
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(BrokenPipeError) is not None
    return isinstance(exc, BrokenPipeError)


def _write(stream, text):
    stream.write(text.encode("utf-8") + b"\n")
    stream.flush()


# -- Streamable HTTP -------------------------------------------------------------------------------

def _client_gone(record):
    """False for the SDK's report of a stream whose client went away (it logs one, with a
    traceback, each time a client closes its session): an agent hanging up is no error."""
    exc = record.exc_info[1] if record.exc_info else None
    return not isinstance(exc, (anyio.ClosedResourceError, anyio.BrokenResourceError))


def serve_http(address, lease=None):
    """`kanban mcp --http HOST:PORT`: many agents, each by its own bearer token."""
    import logging

    import uvicorn
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    from .board import Board
    from .errors import invalid

    host, _, port = str(address).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise invalid(f"bad --http {address!r}: HOST:PORT, e.g. 127.0.0.1:8765")
    host = host.strip("[]")
    with Board() as board:  # the board this server serves, found once; each thread opens its own
        location, shown = board.path, board.display()
    local = threading.local()

    def thread_board():
        if getattr(local, "board", None) is None:
            local.board = Board(location)
        return local.board

    # each open MCP session's {agent: Session}, by id: an entry is made as the SDK starts the
    # session and dropped as it ends (the client's DELETE, its transport closing, a crash), so
    # a server whose agents reconnect for every call does not grow
    kept = {}
    lock = threading.Lock()
    debug = bool(os.environ.get("KANBAN_DEBUG"))

    @contextlib.asynccontextmanager
    async def per_session(_server):
        mine = {}
        with lock:
            kept[id(mine)] = mine
        try:
            yield mine
        finally:
            with lock:
                kept.pop(id(mine), None)
                left = len(kept)
            if debug:
                sys.stderr.write(f"kanban mcp: an MCP session ended; {left} kept\n")
                sys.stderr.flush()

    def session_for():
        context = server.request_context
        agent = context.request.scope["kanban.agent"]
        mine = context.lifespan_context
        with lock:
            if agent not in mine:
                mine[agent] = Session(agent=agent, lease=lease, boards=thread_board, env_tokens=False)
            return mine[agent]

    async def threaded(fn, *args):
        return await anyio.to_thread.run_sync(fn, *args)

    server = build_server(session_for, threaded, lifespan=per_session)
    logging.getLogger().setLevel(logging.ERROR)  # what the SDK refuses is answered, not logged (as on stdio)
    logging.getLogger("mcp.server.streamable_http").addFilter(_client_gone)
    manager = StreamableHTTPSessionManager(app=server, json_response=False, stateless=False)

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            async with manager.run():
                await send({"type": "lifespan.startup.complete"})
                await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        if scope["path"].rstrip("/") != "/mcp":
            await _plain(send, 404, {"error": "not found: MCP is served at /mcp", "code": "not_found"})
            return
        agent = await anyio.to_thread.run_sync(_bearer_agent, thread_board, scope)
        if agent is None:
            await _plain(send, 401, {"error": "a bearer token is required: Authorization: Bearer <token> "
                                              "(kanban mcp token add AGENT)", "code": "forbidden"},
                         [(b"www-authenticate", b'Bearer realm="kanban"')])
            return
        scope = dict(scope, **{"kanban.agent": agent})
        if scope.get("method") == "POST":
            body = await _whole_body(receive)
            if body is None:
                return  # the client hung up before its message was all there: nothing to answer
            problem = _body_problem(body)
            if problem:
                await _plain(send, problem[0], _error(None, problem[1], problem[2]))
                return
            receive = _replaying(body, receive)
        await manager.handle_request(scope, receive, send)

    from .serve import listen

    socks = listen(host, int(port))
    sys.stderr.write(f"kanban mcp: serving MCP (Streamable HTTP) at http://{address}/mcp for "
                     f"{shown}; each agent needs its bearer token\n")
    sys.stderr.flush()
    config = uvicorn.Config(app, host=host, port=int(port), log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=socks)
    return 0


async def _whole_body(receive):
    """A POST's body, read here before the SDK sees it: None when the client went away
    before sending all of it, _TOO_LONG past MAX_LINE bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_LINE:
            return _TOO_LONG
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


_TOO_LONG = object()


def _body_problem(body):
    """(HTTP status, JSON-RPC code, message) for a body the SDK would answer with a 500 and
    a traceback on the server's terminal (JSON nested too deep for its parser), or that is
    too long; None for the rest, which the SDK answers itself."""
    if body is _TOO_LONG:
        return 413, INVALID_REQUEST, f"Invalid Request: a message longer than {MAX_LINE} bytes"
    try:
        document = json.loads(body)
    except RecursionError:
        return 400, PARSE_ERROR, f"Parse error: nested more than {MAX_DEPTH} deep"
    except ValueError:
        return None  # the SDK's own -32700
    if _too_deep(document):
        return 400, PARSE_ERROR, f"Parse error: nested more than {MAX_DEPTH} deep"
    return None


def _replaying(body, receive):
    """An ASGI receive that gives the SDK the body read already, then the client's events."""
    given = False

    async def replay():
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replay


def _bearer_agent(thread_board, scope):
    """The agent whose token the request carries, or None (no token, a wrong or revoked one)."""
    from .errors import KanbanError

    for name, value in scope.get("headers") or ():
        if name.lower() == b"authorization":
            scheme, _, secret = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                return None
            try:
                return thread_board().token_check(secret.strip())
            except KanbanError:
                return None
    return None


async def _plain(send, status, document, headers=()):
    body = json.dumps(document).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


