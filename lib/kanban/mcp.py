"""`kanban mcp`: the seed's kanban_* tools over the Model Context Protocol (stdio).

JSON-RPC 2.0, one message a line on stdin and stdout (MCP's stdio transport),
written by hand: initialize, ping, tools/list, tools/call and the notifications a
client sends.  Every tool calls the same Board operation as its CLI verb and
answers with the same JSON, as text content (and as structuredContent when it is
an object); a refused call is a tool result with isError and the JSON error the
CLI would print on stderr.  Nothing but JSON-RPC is ever written to stdout.

The caller is one agent: --agent or KANBAN_AGENT.  Lease tokens come from the
call's `token`, else from this session's own kanban_claim, else from
KANBAN_LEASE_TOKEN when the task is KANBAN_TASK_ID (what `kanban team` sets for
the member it starts), so an agent rarely has to carry one.
"""
import json
import os
import sys

from .errors import KanbanError, invalid

PROTOCOL_VERSIONS = ("2025-06-18", "2025-03-26", "2024-11-05")
STATUSES = ("todo", "in_progress", "in_review", "blocked", "done", "cancelled")

# JSON-RPC error codes
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = (
    -32700, -32600, -32601, -32602, -32603)

_ID = {"type": "string", "description": "A task id, e.g. TASK-12."}
_TOKEN = {"type": "integer", "minimum": 1,
          "description": "The lease token of your claim. Optional: defaults to the token of this session's "
                         "kanban_claim, or KANBAN_LEASE_TOKEN for the task the dispatcher gave you."}


def _tool(name, description, properties, required=()):
    return {"name": name, "description": description,
            "inputSchema": {"type": "object", "properties": properties, "required": list(required),
                            "additionalProperties": False}}


TOOLS = [
    _tool("kanban_create_goal",
          "Create a goal: the top-level intent of a multi-part request. Sub-tasks name it in `parents`. "
          "A goal is done when all its tasks are done. Same JSON as `kanban create --kind goal`.",
          {"title": {"type": "string", "minLength": 1}, "body": {"type": "string"},
           "priority": {"type": "integer"}, "project": {"type": "string"},
           "key": {"type": "string", "description": "Idempotency key: the same key again returns the first goal."}},
          ["title"]),
    _tool("kanban_create",
          "Create a task, usually with an assignee and parents. A parent that is a goal becomes the task's "
          "goal; other parents become dependencies (the task waits until they are done). "
          "Same JSON as `kanban create`.",
          {"title": {"type": "string", "minLength": 1}, "body": {"type": "string"},
           "assignee": {"type": "string", "description": "The only agent who may claim it."},
           "parents": {"type": "array", "items": {"type": "string"},
                       "description": "Ids of the goal and the tasks this task waits on."},
           "priority": {"type": "integer", "description": "Higher first."},
           "project": {"type": "string"}, "role": {"type": "string", "description": "Role a claimer needs."},
           "review": {"type": "boolean", "description": "Completion goes through review."},
           "not_before": {"type": "string", "description": "ISO-8601, epoch seconds or +10m."},
           "max_attempts": {"type": "integer", "minimum": 1},
           "key": {"type": "string", "description": "Idempotency key: the same key again returns the first task."}},
          ["title"]),
    _tool("kanban_show",
          "One task with its comments, runs, recent events and why it is not ready. Same JSON as `kanban show`.",
          {"task_id": _ID}, ["task_id"]),
    _tool("kanban_list",
          "List tasks, best first. parent_id: the tasks of that goal (or the tasks waiting on that task). "
          "Same JSON as `kanban list`.",
          {"parent_id": _ID, "status": {"type": "string", "description": "A status, or several with commas."},
           "assignee": {"type": "string"}, "project": {"type": "string"},
           "ready": {"type": "boolean", "description": "Only tasks that can be claimed now."},
           "limit": {"type": "integer", "minimum": 1}}),
    _tool("kanban_comment", "Add a comment to a task (any team member may). Same JSON as `kanban comment`.",
          {"task_id": _ID, "body": {"type": "string", "minLength": 1}}, ["task_id", "body"]),
    _tool("kanban_update_status",
          "Move a task to a status: in_progress (claim it), done or in_review (complete it), blocked "
          "(needs reason), todo (unblock, release your claim, or reopen), cancelled. "
          "Answers with the JSON of the verb it ran.",
          {"task_id": _ID, "status": {"enum": list(STATUSES)}, "reason": {"type": "string"},
           "summary": {"type": "string"}, "token": _TOKEN}, ["task_id", "status"]),
    _tool("kanban_complete",
          "Finish your task with a one-line summary: done, or in_review when it asks for review. "
          "Same JSON as `kanban complete`.",
          {"task_id": _ID, "summary": {"type": "string"}, "review": {"type": "boolean"}, "token": _TOKEN},
          ["task_id"]),
    _tool("kanban_block", "Stop work on a task and say why; it shows as blocked on the board. "
          "Same JSON as `kanban block`.",
          {"task_id": _ID, "reason": {"type": "string", "minLength": 1}, "token": _TOKEN}, ["task_id", "reason"]),
    _tool("kanban_unblock", "Put a blocked task back to todo. Same JSON as `kanban unblock`.",
          {"task_id": _ID, "reason": {"type": "string"}}, ["task_id"]),
    _tool("kanban_heartbeat",
          "Say you are still working on a task: renews its lease and its run's heartbeat. Call it at least "
          "every minute on long work. Same JSON as `kanban heartbeat`.",
          {"task_id": _ID, "token": _TOKEN}, ["task_id"]),
    _tool("kanban_claim",
          "Claim a task to work on it: the named one, or the best ready task you may take. Answers {} when "
          "there is nothing to do. Same JSON as `kanban claim` (with lease_token).",
          {"task_id": _ID, "role": {"type": "string"}, "project": {"type": "string"},
           "lease": {"type": "string", "description": "Lease length, e.g. 15m."},
           "for_review": {"type": "boolean", "description": "Claim a task in review to judge it "
                                                            "(as `kanban claim --for-review`)."}}),
]


class Server:
    """One MCP session for one agent."""

    def __init__(self, agent=None, role=None, lease=None):
        self.agent = agent
        self.role = role
        self.lease = lease
        self.tokens = {}  # task id -> token of a claim made in this session
        self._board = None
        self.protocol = PROTOCOL_VERSIONS[0]
        self.handlers = {tool["name"]: getattr(self, tool["name"]) for tool in TOOLS}

    # -- the board and the caller -------------------------------------------------------

    @property
    def board(self):
        if self._board is None:
            from .board import Board

            self._board = Board()
        return self._board

    def close(self):
        if self._board is not None:
            self._board.close()

    def token(self, args, task_id):
        from .board import parse_id, task_ref

        if args.get("token") is not None:
            return args["token"]
        ref = task_ref(parse_id(task_id))
        if ref in self.tokens:
            return self.tokens[ref]
        env_task, env_token = os.environ.get("KANBAN_TASK_ID"), os.environ.get("KANBAN_LEASE_TOKEN")
        if env_task and env_token:
            try:
                if task_ref(parse_id(env_task)) == ref:
                    return env_token
            except KanbanError:
                pass
        return None

    # -- the tools ------------------------------------------------------------------------

    def kanban_create_goal(self, args):
        return self.board.create(args["title"], actor=self.agent, kind="goal", body=args.get("body"),
                                 priority=args.get("priority"), project=args.get("project"), key=args.get("key"))

    def kanban_create(self, args):
        goal, deps = None, []
        for parent in args.get("parents") or []:
            kind = self.board.show(parent, events=0)["kind"]
            if kind == "goal" and goal is None:
                goal = parent
            else:
                deps.append(parent)
        return self.board.create(
            args["title"], actor=self.agent, body=args.get("body"), assignee=args.get("assignee"), goal=goal,
            depends_on=deps, priority=args.get("priority"), project=args.get("project"), role=args.get("role"),
            review=bool(args.get("review", False)), not_before=args.get("not_before"),
            max_attempts=args.get("max_attempts"), key=args.get("key"))

    def kanban_show(self, args):
        return self.board.show(args["task_id"])

    def kanban_list(self, args):
        answer_filters = dict(status=args.get("status"), assignee=args.get("assignee"),
                              project=args.get("project"), ready=bool(args.get("ready")))
        parent = args.get("parent_id")
        if parent is None:
            return self.board.list(limit=args.get("limit"), **answer_filters)
        if self.board.show(parent, events=0)["kind"] == "goal":
            return self.board.list(goal=parent, limit=args.get("limit"), **answer_filters)
        waiting = set(self.board.dep_list(parent)["dependents"])
        tasks = [t for t in self.board.list(**answer_filters)["tasks"] if t["id"] in waiting]
        return {"tasks": tasks[:args["limit"]] if args.get("limit") else tasks}

    def kanban_comment(self, args):
        return self.board.comment(args["task_id"], args["body"], actor=self.agent)

    def kanban_complete(self, args):
        task = args["task_id"]
        return self.board.complete(task, self.token(args, task), summary=args.get("summary"),
                                   review=bool(args.get("review", False)), agent=self.agent)

    def kanban_block(self, args):
        task = args["task_id"]
        return self.board.block(task, args["reason"], token=self.token(args, task), agent=self.agent)

    def kanban_unblock(self, args):
        return self.board.unblock(args["task_id"], reason=args.get("reason"), actor=self.agent)

    def kanban_heartbeat(self, args):
        task = args["task_id"]
        token = self.token(args, task)
        try:
            return self.board.run_heartbeat(task, agent=self.agent, token=token)
        except KanbanError as exc:
            if exc.extra.get("status") != "in_review":
                raise
            return self.board.renew(task, token, agent=self.agent)  # a reviewer's lease: no run

    def kanban_claim(self, args):
        if args.get("for_review"):
            answer = self.board.claim_review(self.agent, args.get("task_id"), lease=args.get("lease") or self.lease)
        else:
            answer = self.board.claim(self.agent, args.get("task_id"), role=args.get("role") or self.role,
                                      project=args.get("project"), lease=args.get("lease") or self.lease)
        if answer:
            self.tokens[answer["id"]] = answer["lease_token"]
        return answer

    def kanban_update_status(self, args):
        task, status = args["task_id"], args["status"]
        if status == "in_progress":
            return self.kanban_claim({"task_id": task})
        if status in ("done", "in_review"):
            return self.kanban_complete(dict(args, review=status == "in_review"))
        if status == "blocked":
            if not args.get("reason"):
                raise invalid("a reason is required to block a task")
            return self.kanban_block(args)
        if status == "cancelled":
            return self.board.cancel(task, reason=args.get("reason"), actor=self.agent)
        current = self.board.show(task, events=0)["status"]  # status == "todo"
        if current == "blocked":
            return self.kanban_unblock(args)
        if current in ("in_progress", "in_review"):
            return self.board.release(task, self.token(args, task), agent=self.agent)
        if current in ("done", "failed", "cancelled"):
            return self.board.reopen(task, actor=self.agent)
        return self.board.show(task, events=0)

    # -- JSON-RPC -----------------------------------------------------------------------------

    def call_tool(self, params):
        name = params.get("name")
        if name not in self.handlers:
            raise RpcError(INVALID_PARAMS, f"Unknown tool: {name}")
        args = params.get("arguments")
        args = {} if args is None else args
        try:
            if not isinstance(args, dict):
                raise invalid("arguments must be an object")
            _check_arguments(name, args)
            answer = self.handlers[name](args)
        except KanbanError as exc:
            return _content(exc.to_dict(), True)
        except Exception as exc:  # noqa: BLE001 - a bug: a tool error in JSON, never a dead server
            error = KanbanError("internal", f"internal error: {type(exc).__name__}: {exc}")
            return _content(error.to_dict(), True)
        return _content(answer, False)

    def handle(self, message):
        """One JSON-RPC message -> the response, or None for a notification."""
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0" or not isinstance(
                message.get("method"), str):
            return _error(message.get("id") if isinstance(message, dict) else None, INVALID_REQUEST,
                          "Invalid Request: expected a JSON-RPC 2.0 request")
        is_request = "id" in message
        method, params = message["method"], message.get("params") or {}
        try:
            if not isinstance(params, dict):
                raise RpcError(INVALID_PARAMS, "params must be an object")
            if method == "initialize":
                result = self.initialize(params)
            elif method == "ping":
                result = {}
            elif method == "tools/list":
                result = {"tools": TOOLS}
            elif method == "tools/call":
                result = self.call_tool(params)
            elif method.startswith("notifications/"):
                return None
            else:
                raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")
        except RpcError as exc:
            return _error(message.get("id"), exc.code, exc.message) if is_request else None
        if not is_request:
            return None
        return {"jsonrpc": "2.0", "id": message["id"], "result": result}

    def initialize(self, params):
        asked = params.get("protocolVersion")
        self.protocol = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]
        from . import __version__

        who = self.agent or "(no agent: set KANBAN_AGENT or --agent to claim and complete)"
        return {
            "protocolVersion": self.protocol,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "kanban", "title": "kanban board", "version": __version__},
            "instructions": (
                f"A shared kanban board. You are {who}. Work on the tasks assigned to you: finish with "
                "kanban_complete and a one-line summary, call kanban_block with the reason when stuck, and "
                "kanban_heartbeat at least every minute on long work. Every tool answers with the board's JSON."),
        }

    def serve(self, stdin, stdout):
        """Read messages until end of input; answer each on one line."""
        while True:
            line = stdin.readline()
            if not line:
                return
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError as exc:
                _write(stdout, _error(None, PARSE_ERROR, f"Parse error: {exc}"))
                continue
            if isinstance(message, list):  # a batch (protocol 2025-03-26)
                answers = [a for a in (self.handle(m) for m in message) if a is not None]
                if not message:
                    answers = _error(None, INVALID_REQUEST, "Invalid Request: empty batch")
                if answers:
                    _write(stdout, answers)
                continue
            answer = self.handle(message)
            if answer is not None:
                _write(stdout, answer)


class RpcError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def _error(request_id, code, message):
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _content(document, is_error):
    result = {"content": [{"type": "text", "text": json.dumps(document, ensure_ascii=False)}], "isError": is_error}
    if isinstance(document, dict):
        result["structuredContent"] = document
    return result


def _write(stdout, document):
    stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
    stdout.flush()


_VALIDATORS = {}


def _check_arguments(name, args):
    """The tool's inputSchema, enforced: `invalid` naming the argument."""
    from jsonschema import Draft202012Validator

    if name not in _VALIDATORS:
        schema = next(t["inputSchema"] for t in TOOLS if t["name"] == name)
        _VALIDATORS[name] = Draft202012Validator(schema)
    errors = sorted(_VALIDATORS[name].iter_errors(args), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        error = errors[0]
        where = ".".join(map(str, error.absolute_path)) or "arguments"
        raise invalid(f"{name}: {where}: {error.message}", tool=name)


# -- the porcelain ----------------------------------------------------------------------------

def mcp(args):
    """porcelain/kanban-mcp: serve MCP on stdin/stdout until end of input."""
    from .cli import emit, env_or

    if args["--list-tools"]:
        emit({"tools": TOOLS})
        return 0
    for stream in (sys.stdin, sys.stdout):
        stream.reconfigure(encoding="utf-8", errors="replace", newline="\n" if stream is sys.stdout else None)
    server = Server(agent=env_or(args, "--agent", "KANBAN_AGENT"), role=env_or(args, "--role", "KANBAN_ROLE"),
                    lease=env_or(args, "--lease", "KANBAN_LEASE"))
    try:
        server.serve(sys.stdin, sys.stdout)
    finally:
        server.close()
    return 0
