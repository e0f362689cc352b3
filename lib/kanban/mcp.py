"""`kanban mcp`: the team board's kanban_* tools over the Model Context Protocol.

This module is the tools themselves, with no protocol in it: their definitions
(input schemas, annotations, and output schemas taken from schemas/), the toolset
each caller sees, and a Session that runs a call on the Board API and answers with
the same JSON as the tool's CLI verb.  The protocol (JSON-RPC, initialize, protocol
versions, the stdio and Streamable HTTP transports) is the official `mcp` package's,
driven from mcp_server.py, which only `kanban mcp` imports: nothing of the SDK is
loaded on the plumbing path.

The caller is one agent: --agent or KANBAN_AGENT on stdio, the owner of the bearer
token over HTTP.  Lease tokens come from the call's `token`, else from this
session's own kanban_claim, else from KANBAN_LEASE_TOKEN when the task is
KANBAN_TASK_ID (what `kanban team` sets for the member it starts), so an agent
rarely has to carry one.

Toolsets follow the caller's role on a team board: the coordinator's planning tools
(kanban_create_goal, kanban_create, kanban_assign, kanban_cancel), every member's
participation tools (the seed's eight, plus kanban_claim), and the review tools
(kanban_approve, kanban_reject) for members, who review each other's work; a
member's `tools:` in the manifest narrows its list.  Off a team board, and for its
operators, every tool is listed; an outsider sees only the reading tools.
"""
import os

from .errors import KanbanError, invalid

STATUSES = ("todo", "in_progress", "in_review", "blocked", "done", "cancelled")

_ID = {"type": "string", "description": "A task id, e.g. TASK-12."}
_TOKEN = {"type": "integer", "minimum": 1,
          "description": "The lease token of your claim. Optional: defaults to the token of this session's "
                         "kanban_claim, or KANBAN_LEASE_TOKEN for the task the dispatcher gave you."}

# what a tool does to the board, for clients that ask before calling (MCP tool annotations)
READS = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False}
ADDS = {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False, "openWorldHint": False}
SETS = {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False}
ENDS = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": False}


def _tool(name, description, properties, required=(), *, annotations=ADDS, output=None):
    return {"name": name, "description": description,
            "inputSchema": {"type": "object", "properties": properties, "required": list(required),
                            "additionalProperties": False},
            "annotations": dict(annotations, title=name.replace("kanban_", "").replace("_", " ")),
            "output": output}


TOOLS = [
    _tool("kanban_create_goal",
          "Create a goal: the top-level intent of a multi-part request. Sub-tasks name it in `parents`. "
          "A goal is done when all its tasks are done. Same JSON as `kanban create --kind goal`.",
          {"title": {"type": "string", "minLength": 1, "description": "The goal in a few words."},
           "body": {"type": "string", "description": "What the goal is for, in full (Markdown)."},
           "priority": {"type": "integer", "description": "Higher first."},
           "project": {"type": "string", "description": "The project it belongs to."},
           "key": {"type": "string", "description": "Idempotency key: the same key again returns the first goal."}},
          ["title"], output="kanban-create.schema.json"),
    _tool("kanban_create",
          "Create a task, usually with an assignee and parents. A parent that is a goal becomes the task's "
          "goal; other parents become dependencies (the task waits until they are done). "
          "Same JSON as `kanban create`.",
          {"title": {"type": "string", "minLength": 1, "description": "The task in a few words."},
           "body": {"type": "string", "description": "What to do, in full (Markdown)."},
           "assignee": {"type": "string", "description": "The only agent who may claim it."},
           "parents": {"type": "array", "items": {"type": "string"},
                       "description": "Ids of the goal and the tasks this task waits on."},
           "priority": {"type": "integer", "description": "Higher first."},
           "project": {"type": "string", "description": "The project it belongs to."},
           "role": {"type": "string", "description": "Role a claimer needs."},
           "review": {"type": "boolean", "description": "Completion goes through review."},
           "not_before": {"type": "string", "description": "ISO-8601, epoch seconds or +10m."},
           "max_attempts": {"type": "integer", "minimum": 1,
                            "description": "After this many expired leases the task becomes failed."},
           "key": {"type": "string", "description": "Idempotency key: the same key again returns the first task."}},
          ["title"], output="kanban-create.schema.json"),
    _tool("kanban_show",
          "One task with its comments, runs, recent events and why it is not ready. Same JSON as `kanban show`.",
          {"task_id": _ID}, ["task_id"], annotations=READS, output="kanban-show.schema.json"),
    _tool("kanban_list",
          "List tasks, best first. parent_id: the tasks of that goal (or the tasks waiting on that task). "
          "Same JSON as `kanban list`.",
          {"parent_id": _ID, "status": {"type": "string", "description": "A status, or several with commas."},
           "assignee": {"type": "string", "description": "Only the tasks given to this agent."},
           "project": {"type": "string", "description": "Only the tasks of this project."},
           "ready": {"type": "boolean", "description": "Only tasks that can be claimed now."},
           "limit": {"type": "integer", "minimum": 1, "description": "At most this many tasks."}},
          annotations=READS, output="kanban-list.schema.json"),
    _tool("kanban_comment", "Add a comment to a task (any team member may). Same JSON as `kanban comment`.",
          {"task_id": _ID, "body": {"type": "string", "minLength": 1, "description": "The comment (Markdown)."}},
          ["task_id", "body"],
          output="kanban-comment.schema.json"),
    _tool("kanban_update_status",
          "Move a task to a status: in_progress (claim it), done or in_review (complete it; done on a task "
          "you claimed for review approves it), blocked (needs reason), todo (unblock, release your claim, "
          "reject a review you hold, or reopen), cancelled. Answers with the JSON of the verb it ran.",
          {"task_id": _ID,
           "status": {"type": "string", "enum": list(STATUSES), "description": "The status to move it to."},
           "reason": {"type": "string", "description": "Why: required for blocked, and to reject a review (todo)."},
           "summary": {"type": "string", "description": "One line on what was done (done, in_review)."},
           "token": _TOKEN}, ["task_id", "status"], annotations=ENDS,
          output="task.schema.json"),
    _tool("kanban_complete",
          "Finish your task with a one-line summary: done, or in_review when it asks for review. "
          "Same JSON as `kanban complete`.",
          {"task_id": _ID, "summary": {"type": "string", "description": "One line on what you did."},
           "review": {"type": "boolean", "description": "Send it to review (in_review) instead of done."},
           "token": _TOKEN},
          ["task_id"], output="kanban-complete.schema.json"),
    _tool("kanban_block", "Stop work on a task and say why; it shows as blocked on the board. "
          "Same JSON as `kanban block`.",
          {"task_id": _ID, "reason": {"type": "string", "minLength": 1, "description": "What you need to go on."},
           "token": _TOKEN}, ["task_id", "reason"], output="kanban-block.schema.json"),
    _tool("kanban_unblock", "Put a blocked task back to todo. Same JSON as `kanban unblock`.",
          {"task_id": _ID, "reason": {"type": "string", "description": "Why it can go on now."}}, ["task_id"],
          annotations=SETS, output="kanban-unblock.schema.json"),
    _tool("kanban_heartbeat",
          "Say you are still working on a task (or still judging a review you claimed): renews its lease and "
          "its run's heartbeat. Call it at least every minute on long work. With a message it also logs your "
          "progress on the task (as `kanban log-progress`). Same JSON as `kanban heartbeat`.",
          {"task_id": _ID, "token": _TOKEN,
           "message": {"type": "string", "minLength": 1, "maxLength": 100000,
                       "description": "A progress note kept in the task's events, e.g. 'tests pass, writing docs'."}},
          ["task_id"], annotations=ADDS, output="kanban-lease.schema.json"),
    _tool("kanban_claim",
          "Claim a task to work on it: the named one, or the best ready task you may take. Answers {} when "
          "there is nothing to do. Same JSON as `kanban claim` (with lease_token).",
          {"task_id": _ID,
           "role": {"type": "string", "description": "Your role: you may then also take tasks needing it."},
           "project": {"type": "string", "description": "Only a task of this project."},
           "lease": {"type": "string", "description": "Lease length, e.g. 15m."},
           "for_review": {"type": "boolean", "description": "Claim a task in review to judge it "
                                                            "(as `kanban claim --for-review`)."}},
          output="kanban-claim.schema.json"),
    _tool("kanban_approve",
          "Approve a task in review: it is done. You must not have worked on it. Claiming it first with "
          "kanban_claim {for_review: true} holds it while you judge (optional). Same JSON as `kanban approve`.",
          {"task_id": _ID, "comment": {"type": "string", "description": "A note kept as a comment."},
           "token": _TOKEN}, ["task_id"], output="kanban-approve.schema.json"),
    _tool("kanban_reject",
          "Reject a task in review with the reason: it goes back to todo for its worker. "
          "Same JSON as `kanban reject`.",
          {"task_id": _ID, "reason": {"type": "string", "minLength": 1, "description": "What must change."},
           "token": _TOKEN}, ["task_id", "reason"], annotations=ENDS, output="kanban-reject.schema.json"),
    _tool("kanban_assign",
          "Give a task to a member (the only agent who may claim it). Same JSON as `kanban set --assignee`.",
          {"task_id": _ID, "assignee": {"type": "string", "minLength": 1, "description": "The member to give it to."}},
          ["task_id", "assignee"],
          annotations=SETS, output="kanban-set.schema.json"),
    _tool("kanban_cancel",
          "Cancel a task that will not be done, with the reason. Same JSON as `kanban cancel`.",
          {"task_id": _ID, "reason": {"type": "string", "description": "Why it will not be done."}}, ["task_id"],
          annotations=ENDS, output="kanban-cancel.schema.json"),
]
TOOL_NAMES = [t["name"] for t in TOOLS]
PLANNING = ("kanban_create_goal", "kanban_create", "kanban_assign", "kanban_cancel")
PARTICIPATION = ("kanban_show", "kanban_list", "kanban_comment", "kanban_update_status", "kanban_complete",
                 "kanban_block", "kanban_unblock", "kanban_heartbeat", "kanban_claim")
REVIEW = ("kanban_approve", "kanban_reject")
READING = ("kanban_show", "kanban_list")


def toolset(team, agent):
    """The names of the tools `agent` is offered on a board whose team is `team` (None: no team)."""
    if not team:
        return list(TOOL_NAMES)
    members = team.get("members", {})
    if agent not in members:
        runs_it = agent in team.get("operators", ()) or agent == team.get("dispatcher")
        return list(TOOL_NAMES) if runs_it else [n for n in TOOL_NAMES if n in READING]
    wanted = set(PARTICIPATION) | set(REVIEW)
    if members[agent] == "coordinator" or team.get("dispatch_mode") == "direct":
        wanted |= set(PLANNING)
    narrowed = (team.get("tools") or {}).get(agent)
    if narrowed is not None:
        wanted &= set(narrowed)
    return [n for n in TOOL_NAMES if n in wanted]


_OUTPUT_SCHEMAS = {}


def output_schema(name):
    """The published schema `name`, self-contained (the schema files it refers to copied
    under its $defs) and an object at the top, as MCP's outputSchema must be."""
    if name not in _OUTPUT_SCHEMAS:
        defs = {}
        root = _bundle(name, defs, None)
        root.pop("$id", None)
        if defs:
            root.setdefault("$defs", {}).update(defs)
        root["type"] = "object"
        _OUTPUT_SCHEMAS[name] = root
    return _OUTPUT_SCHEMAS[name]


def _bundle(name, defs, key):
    """Schema file `name` with its $refs rewritten for the bundle; `key` is where it
    sits under the top's $defs (None for the top itself)."""
    import json

    from .paths import schema as schema_file

    with open(schema_file(name), encoding="utf-8") as handle:
        schema = json.load(handle)
    here = "#" if key is None else f"#/$defs/{key}"

    def walk(node):
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for field, value in node.items():
            if field == "$ref" and isinstance(value, str):
                out[field] = _rewrite(value, here, defs)
            elif field in ("$id", "$schema") and key is not None:
                continue
            else:
                out[field] = walk(value)
        return out

    return walk(schema)


def _rewrite(ref, here, defs):
    target, _, fragment = ref.partition("#")
    if not target:  # within the same file
        return here + fragment if here != "#" else ref
    key = target.replace(".schema.json", "").replace(".", "_")
    if key not in defs:
        defs[key] = {}  # reserved: a file referring back is not copied twice
        defs[key] = _bundle(target, defs, key)
    return f"#/$defs/{key}{fragment}"


def listed(names):
    """The tools/list entries for these names, as MCP spells them."""
    out = []
    for tool in TOOLS:
        if tool["name"] in names:
            entry = {k: v for k, v in tool.items() if k != "output"}
            if tool["output"]:
                entry["outputSchema"] = output_schema(tool["output"])
            out.append(entry)
    return out


class UnknownTool(Exception):
    """A tools/call for a tool this server does not have (a protocol error, not a tool error)."""


class Session:
    """One agent's MCP session: its tool calls on the board, and the lease tokens of its claims."""

    def __init__(self, agent=None, role=None, lease=None, boards=None, env_tokens=True):
        self.agent = agent
        self.env_tokens = env_tokens  # a remote agent over HTTP never gets this process's environment
        self.role = role
        self.lease = lease
        self.tokens = {}  # task id -> token of a claim made in this session
        self._boards = boards  # where a board comes from (one per thread over HTTP); else one of its own
        self._board = None
        self.handlers = {name: getattr(self, name) for name in TOOL_NAMES}

    # -- the board and the caller -------------------------------------------------------

    @property
    def board(self):
        if self._boards is not None:
            return self._boards()
        if self._board is None:
            from .board import Board

            self._board = Board()
        return self._board

    def close(self):
        if self._board is not None:
            self._board.close()
            self._board = None

    def team(self):
        try:
            return self.board.team()
        except KanbanError:
            return None  # no board yet: every tool is listed, and each call says why it fails

    def tool_names(self):
        return toolset(self.team(), self.agent)

    def tools(self):
        return listed(self.tool_names())

    def call(self, name, args):
        """(the JSON document, is it an error?); UnknownTool for a name no tool has."""
        if not isinstance(name, str) or name not in self.handlers:
            raise UnknownTool(f"Unknown tool: {name!r}" if not isinstance(name, str) else f"Unknown tool: {name}")
        args = {} if args is None else args
        try:
            if not isinstance(args, dict):
                raise invalid("arguments must be an object")
            offered = self.tool_names()
            if name not in offered:
                who = self.agent or "a caller with no agent"
                raise KanbanError("forbidden", f"{name} is not in {who}'s toolset on this team board "
                                  f"(it has: {', '.join(offered)})", tool=name, agent=self.agent)
            return self.handlers[name](check_arguments(name, args)), False
        except KanbanError as exc:
            return exc.to_dict(), True
        except RecursionError:
            return KanbanError("invalid", f"{name}: arguments nested too deeply").to_dict(), True
        except Exception as exc:  # noqa: BLE001 - a bug: a tool error in JSON, never a dead server
            return KanbanError("internal", f"internal error: {type(exc).__name__}: {exc}").to_dict(), True

    def token(self, args, task_id):
        from .board import parse_id, task_ref

        if args.get("token") is not None:
            return args["token"]
        ref = task_ref(parse_id(task_id))
        if ref in self.tokens:
            return self.tokens[ref]
        env_task, env_token = os.environ.get("KANBAN_TASK_ID"), os.environ.get("KANBAN_LEASE_TOKEN")
        if self.env_tokens and env_task and env_token:
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

    def _my_review(self, task):
        """The task's row when this agent holds it for review (a review lease, not a work lease)."""
        shown = self.board.show(task, events=0)
        if shown["status"] == "in_review" and shown["claimed_by"] == self.agent and self.agent:
            return shown
        return None

    def _holder_only(self, task):
        """Over MCP an agent writes only under its own claims: a lease token is not a
        key to act as whoever holds it (its claimer is checked too)."""
        shown = self.board.show(task, events=0)
        holder = shown["claimed_by"]
        if shown["status"] in ("in_progress", "in_review") and holder is not None and holder != self.agent:
            raise KanbanError("forbidden", f"{shown['id']} is held by {holder}, not {self.agent}: an agent acts only "
                              "on its own claims", task=shown["id"], holder=holder, agent=self.agent)
        return shown

    def kanban_complete(self, args):
        task = args["task_id"]
        self._holder_only(task)
        if self._my_review(task):
            raise KanbanError("conflict", f"{task} is in review and you hold it as its reviewer: finish the review "
                              "with kanban_approve or kanban_reject (kanban_complete is for the worker)",
                              task=task, status="in_review")
        return self.board.complete(task, self.token(args, task), summary=args.get("summary"),
                                   review=bool(args.get("review", False)), agent=self.agent)

    def kanban_block(self, args):
        task = args["task_id"]
        shown = self._holder_only(task)
        # the token this session remembers goes with a task in progress only: a todo task is
        # parked without one (the board refuses a token there, as a stale holder's write)
        token = args.get("token") if shown["status"] == "todo" else self.token(args, task)
        return self.board.block(task, args["reason"], token=token, agent=self.agent)

    def kanban_unblock(self, args):
        return self.board.unblock(args["task_id"], reason=args.get("reason"), actor=self.agent)

    def kanban_heartbeat(self, args):
        task = args["task_id"]
        token = self.token(args, task)
        self._holder_only(task)
        if self._my_review(task):
            answer = self.board.renew(task, token, agent=self.agent)  # a reviewer's lease: no run
        else:
            answer = self.board.run_heartbeat(task, agent=self.agent, token=token)
        if args.get("message") is not None:  # the note, once the lease is known to be this agent's
            self.board.log(task, args["message"], agent=self.agent)
        return answer

    def kanban_claim(self, args):
        if args.get("for_review"):
            answer = self.board.claim_review(self.agent, args.get("task_id"), lease=args.get("lease") or self.lease)
        else:
            answer = self.board.claim(self.agent, args.get("task_id"), role=args.get("role") or self.role,
                                      project=args.get("project"), lease=args.get("lease") or self.lease)
        if answer:
            self.tokens[answer["id"]] = answer["lease_token"]
        return answer

    def _review_token(self, args, task):
        """The review lease to judge under: the call's, else this session's claim (None: no claim)."""
        if args.get("token") is not None:
            return args["token"]
        return self.tokens.get(task) if self._my_review(task) else None

    def kanban_approve(self, args):
        task = args["task_id"]
        return self.board.approve(task, agent=self.agent, token=self._review_token(args, task),
                                  comment=args.get("comment"))

    def kanban_reject(self, args):
        task = args["task_id"]
        return self.board.reject(task, args["reason"], agent=self.agent, token=self._review_token(args, task))

    def kanban_assign(self, args):
        return self.board.set(args["task_id"], assignee=args["assignee"], actor=self.agent)

    def kanban_cancel(self, args):
        return self.board.cancel(args["task_id"], reason=args.get("reason"), actor=self.agent)

    def kanban_update_status(self, args):
        task, status = args["task_id"], args["status"]
        review = self._my_review(task)
        if review and status == "done":
            return self.kanban_approve({"task_id": task, "token": args.get("token"), "comment": args.get("summary")})
        if review and status == "todo":
            if not args.get("reason"):
                raise invalid("a reason is required to send a review back (status todo rejects it)")
            return self.kanban_reject(args)
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
            self._holder_only(task)
            return self.board.release(task, self.token(args, task), agent=self.agent)
        if current in ("done", "failed", "cancelled"):
            return self.board.reopen(task, actor=self.agent)
        return self.board.show(task, events=0)


_VALIDATORS = {}


def check_arguments(name, args):
    """The tool's inputSchema, enforced: `invalid` naming the argument.  The arguments
    as the tool takes them: JSON Schema's integers include 2.0, which a client may send
    for 2, so an integer argument written with a fraction of zero is that integer."""
    from jsonschema import Draft202012Validator

    if name not in _VALIDATORS:
        schema = next(t["inputSchema"] for t in TOOLS if t["name"] == name)
        _VALIDATORS[name] = Draft202012Validator(schema)
    errors = sorted(_VALIDATORS[name].iter_errors(args), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        error = errors[0]
        where = ".".join(map(str, error.absolute_path)) or "arguments"
        raise invalid(f"{name}: {where}: {error.message}", tool=name)
    properties = next(t["inputSchema"] for t in TOOLS if t["name"] == name)["properties"]
    return {key: int(value) if isinstance(value, float) and properties[key].get("type") == "integer" else value
            for key, value in args.items()}


# -- the porcelain ----------------------------------------------------------------------------

def mcp(args):
    """porcelain/kanban-mcp: serve MCP on stdio or Streamable HTTP; manage HTTP tokens."""
    from .cli import emit, env_or

    if args["--list-tools"]:
        emit({"tools": listed(TOOL_NAMES)})
        return 0
    if args["token"]:
        return token_command(args)
    from .extras import require

    require("mcp", "mcp", "kanban mcp")
    from . import mcp_server

    lease = env_or(args, "--lease", "KANBAN_LEASE")
    if lease is not None:  # a bad lease is refused now, not at the first claim of a server left running
        from . import clock

        clock.parse_duration(lease, "--lease" if args["--lease"] else "KANBAN_LEASE")
    if args["--http"]:
        return mcp_server.serve_http(args["--http"], lease=lease)
    return mcp_server.serve_stdio(Session(agent=env_or(args, "--agent", "KANBAN_AGENT"),
                                          role=env_or(args, "--role", "KANBAN_ROLE"), lease=lease))


def token_command(args):
    """kanban mcp token add AGENT | list | revoke ID."""
    from .board import Board
    from .cli import emit, env_or

    actor = env_or(args, "--agent", "KANBAN_AGENT")
    with Board() as board:
        if args["add"]:
            emit(board.token_add(args["AGENT"], actor=actor))
        elif args["list"]:
            emit(board.token_list())
        else:
            emit(board.token_revoke(args["ID"], actor=actor))
    return 0
