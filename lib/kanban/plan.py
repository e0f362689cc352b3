"""`kanban plan`: a manager's plan (YAML) becomes goals and tasks with deps.

A plan names its goals and tasks by local keys; each becomes a task whose
idempotency key is `plan:<plan name>:<key>`, so applying the plan again finds
them instead of making new ones.  The whole plan goes in one transaction
(Board.create_many), in an order where every goal and dependency comes before
the tasks that refer to it.

The YAML/JSON-Schema helpers here (load_yaml, check_schema) are shared with the
team manifest (kanban.team).  PyYAML and jsonschema are imported only when a
document is read.
"""
import datetime
import json
import re
import sys

from . import paths
from .cli import standard_input
from .errors import KanbanError, invalid, not_found

KEY_PREFIX = "plan"
TASK_ID = re.compile(r"^(?:TASK-)?[0-9]+$", re.IGNORECASE)
FIELDS = ("body", "priority", "project", "role", "assignee", "review", "max_attempts", "not_before")


# -- documents: YAML in, validated against a published schema ----------------------

def load_yaml(path, what="file"):
    """The document in `path` (`-` is stdin) as plain JSON-like data."""
    import yaml

    try:
        if path == "-":
            text = standard_input().read()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
    except FileNotFoundError:
        raise not_found(f"no {what} {path}", file=path) from None
    except IsADirectoryError:
        raise invalid(f"{path} is a folder, not a {what}", file=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise invalid(f"cannot read {what} {path}: {exc}", file=path) from None
    if len(text) > MAX_YAML_CHARS:
        raise invalid(f"{path}: a {what} is at most {MAX_YAML_CHARS // 1024 // 1024} MB", file=path)
    try:
        doc = yaml.load(text, Loader=_bounded_loader(yaml))  # noqa: S506 - a SafeLoader, bounded
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise invalid(f"{path}: not valid YAML{where}: {problem}", file=path) from None
    return _plain(doc)


# bounds on a YAML document, checked while it is read: a document that is small on disk
# may name the same node many times over (aliases), and a "billion laughs" of nested
# aliases would take minutes and all the memory to expand
MAX_YAML_CHARS = 4 * 1024 * 1024
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 100_000  # nodes once every alias is expanded


def _bounded_loader(yaml):
    """yaml.SafeLoader refusing, as it composes, aliases to themselves (`a: &a [*a]`),
    nesting deeper than MAX_YAML_DEPTH and more than MAX_YAML_NODES nodes once aliases
    are expanded: a YAMLError, before anything is built."""
    from yaml.composer import ComposerError
    from yaml.events import AliasEvent
    from yaml.nodes import MappingNode, SequenceNode

    class BoundedLoader(yaml.SafeLoader):
        def __init__(self, stream):
            super().__init__(stream)
            self.open_anchors = set()
            self.depth = 0
            self.measured = {}  # id(node) -> (nodes, depth) once aliases are expanded

        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, AliasEvent):
                if event.anchor in self.open_anchors:
                    raise ComposerError(None, None, f"alias *{event.anchor} is inside its own anchor",
                                        event.start_mark)
                return super().compose_node(parent, index)
            self.depth += 1
            if self.depth > MAX_YAML_DEPTH:
                raise ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", event.start_mark)
            anchor = getattr(event, "anchor", None)
            if anchor is not None:
                self.open_anchors.add(anchor)
            try:
                node = super().compose_node(parent, index)
            finally:
                self.depth -= 1
                self.open_anchors.discard(anchor)
            if isinstance(node, SequenceNode):
                children = node.value
            elif isinstance(node, MappingNode):
                children = [part for pair in node.value for part in pair]
            else:
                children = []
            sizes = [self.measured.get(id(child), (1, 1)) for child in children]
            nodes = 1 + sum(n for n, _ in sizes)
            depth = 1 + max((d for _, d in sizes), default=0)
            if nodes > MAX_YAML_NODES:
                raise ComposerError(None, None, f"more than {MAX_YAML_NODES} values once its aliases"
                                    " are expanded", event.start_mark)
            if depth > MAX_YAML_DEPTH:
                raise ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels once its"
                                    " aliases are expanded", event.start_mark)
            self.measured[id(node)] = (nodes, depth)
            return node

    return BoundedLoader


def _plain(value):
    """YAML's dates become the ISO text a person wrote; everything else is JSON already."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def schema(name):
    with open(paths.schema(name), encoding="utf-8") as handle:
        return json.load(handle)


def json_path(parts):
    """['tasks', 2, 'depends_on', 0] -> 'tasks[2].depends_on[0]'."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def check_schema(doc, schema_name, source, what="document"):
    """Raise `invalid` naming the path of the first problem (all of them in `errors`)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import relevance

    validator = Draft202012Validator(schema(schema_name))
    errors = sorted(validator.iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), relevance(e)))
    if not errors:
        return
    listed = [{"path": json_path(e.absolute_path), "message": _message(e)} for e in errors]
    first = listed[0]
    raise invalid(f"{source}: {what} is invalid at {first['path']}: {first['message']}",
                  path=first["path"], errors=listed, file=source)


def _message(error):
    """jsonschema's messages, made to read well for the common cases."""
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown field(s) {', '.join(extra)}"
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    if error.validator == "pattern" and error.schema.get("pattern") == "\\S":
        return "must not be empty"
    if error.validator == "pattern" and error.schema.get("description"):
        return f"{json.dumps(error.instance)} is not allowed: {error.schema['description']}"
    if error.validator == "const":
        return f"must be {json.dumps(error.validator_value)}"
    return error.message


# -- the plan -------------------------------------------------------------------------

class Plan:
    """A checked plan: `entries` in creation order, each ready for Board.create_many."""

    def __init__(self, name, entries, external):
        self.name = name
        self.entries = entries
        self.external = external

    def full_key(self, key):
        return f"{KEY_PREFIX}:{self.name}:{key}"

    def specs(self):
        out = []
        for entry in self.entries:
            spec = {"title": entry["title"], "kind": entry["kind"], "key": self.full_key(entry["key"])}
            for field in FIELDS:
                if entry.get(field) is not None:
                    spec[field] = str(entry[field]) if field == "not_before" else entry[field]
            if entry.get("goal") is not None:
                spec["goal"] = self._ref(entry["goal"])
            if entry.get("depends_on"):
                spec["depends_on"] = [self._ref(ref) for ref in entry["depends_on"]]
            out.append(spec)
        return out

    def _ref(self, ref):
        kind, value = ref
        return self.full_key(value) if kind == "local" else value

    def summary(self):
        goals = sum(1 for e in self.entries if e["kind"] == "goal")
        return {"ok": True, "plan": self.name, "goals": goals, "tasks": len(self.entries) - goals,
                "order": [e["key"] for e in self.entries], "external": sorted(self.external)}


def read(path):
    """Load, validate and check a plan file: a Plan, or `invalid` / `cycle`."""
    source = "stdin" if path == "-" else path
    doc = load_yaml(path, "plan")
    if not isinstance(doc, dict):
        raise invalid(f"{source}: a plan is a mapping with name, goals and tasks", file=source)
    check_schema(doc, "plan.schema.json", source, "the plan")
    return check(doc, source)


def check(doc, source="plan"):
    """A schema-valid plan document -> Plan (keys unique, references known, no cycle)."""
    defaults = doc.get("defaults") or {}
    entries, by_key = [], {}

    def add(item, kind, path, goal=None, inherited=None):
        key = item["key"]
        if key in by_key:
            raise invalid(f"{source}: key {key!r} at {path} is already used at {by_key[key]['path']}",
                          path=path, file=source)
        entry = {"key": key, "kind": kind, "path": path, "title": item["title"]}
        for field in FIELDS:
            value = item.get(field)
            if value is None and inherited:
                value = inherited.get(field)
            if value is None and field in defaults and (kind == "task" or field in ("project", "priority")):
                value = defaults[field]
            entry[field] = value
        if kind == "task":
            if goal is not None and item.get("goal") is not None:
                raise invalid(f"{source}: {path}.goal: a task nested under a goal belongs to it already",
                              path=f"{path}.goal", file=source)
            entry["goal_ref"] = goal if goal is not None else item.get("goal")
            entry["goal_path"] = path if goal is not None else f"{path}.goal"
            entry["deps_ref"] = list(item.get("depends_on") or [])
        by_key[key] = entry
        entries.append(entry)
        return entry

    for number, goal in enumerate(doc.get("goals") or []):
        path = f"goals[{number}]"
        add(goal, "goal", path)
        for sub, task in enumerate(goal.get("tasks") or []):
            add(task, "task", f"{path}.tasks[{sub}]", goal=goal["key"],
                inherited={"project": goal.get("project")})
    for number, task in enumerate(doc.get("tasks") or []):
        add(task, "task", f"tasks[{number}]")

    external = set()

    def resolve(ref, path, want_goal=False):
        if ref in by_key:
            target = by_key[ref]
            if want_goal and target["kind"] != "goal":
                raise invalid(f"{source}: {path}: {ref!r} is a task, not a goal", path=path, file=source)
            return ("local", ref)
        if TASK_ID.match(ref):
            ident = ref.upper() if ref.upper().startswith("TASK-") else f"TASK-{ref}"
            external.add(ident)
            return ("id", ident)
        raise invalid(f"{source}: {path}: no {'goal' if want_goal else 'goal or task'} with key {ref!r} "
                      "in this plan (nor a TASK-<n> id)", path=path, file=source)

    for entry in entries:
        if entry["kind"] != "task":
            continue
        goal = entry["goal_ref"]
        entry["goal"] = resolve(goal, entry["goal_path"], True) if goal is not None else None
        entry["depends_on"] = [resolve(ref, f"{entry['path']}.depends_on[{i}]")
                               for i, ref in enumerate(entry["deps_ref"])]

    _check_cycles(entries, by_key, source)
    return Plan(doc["name"], _creation_order(entries, by_key), external)


def _waits_on(entry, children):
    """What an entry waits on: a task its deps, a goal its tasks (as on the board)."""
    if entry["kind"] == "goal":
        return children.get(entry["key"], [])
    return [value for kind, value in entry["depends_on"] if kind == "local"]


def _check_cycles(entries, by_key, source):
    children = {}
    for entry in entries:
        if entry["kind"] == "task" and entry["goal"] and entry["goal"][0] == "local":
            children.setdefault(entry["goal"][1], []).append(entry["key"])
    state = {}  # key -> 1 visiting, 2 done

    def visit(key, trail):
        state[key] = 1
        for nxt in _waits_on(by_key[key], children):
            if state.get(nxt) == 1:
                loop = trail[trail.index(nxt):] + [nxt]
                raise KanbanError("cycle", f"{source}: the plan has a cycle: {' -> '.join(loop)}",
                                  keys=loop, path=by_key[key]["path"], file=source)
            if state.get(nxt) is None:
                visit(nxt, trail + [nxt])
        state[key] = 2

    for entry in entries:
        if state.get(entry["key"]) is None:
            visit(entry["key"], [entry["key"]])


def _creation_order(entries, by_key):
    """File order, except that a goal or dependency comes before what refers to it."""
    placed, order = set(), []

    def place(entry):
        if entry["key"] in placed:
            return
        placed.add(entry["key"])  # no cycle is left, so marking early is safe
        if entry["kind"] == "task":
            for kind, value in ([entry["goal"]] if entry["goal"] else []) + entry["depends_on"]:
                if kind == "local":
                    place(by_key[value])
        order.append(entry)

    for entry in entries:
        place(entry)
    return order


def apply(plan, agent=None, board=None):
    """Create the plan's goals and tasks in one transaction: {"plan", "created", "existing", "tasks"}."""
    from .board import Board

    specs = plan.specs()
    own = board is None
    board = Board() if own else board
    try:
        try:
            tasks = board.create_many(specs, actor=agent)
        except KanbanError as exc:
            line = exc.extra.pop("line", None)
            if line is not None and 0 < line <= len(plan.entries):
                entry = plan.entries[line - 1]
                exc.extra.update(key=entry["key"], path=entry["path"])
                exc.message = f"{entry['path']} ({entry['key']}): {exc.message}"
                exc.args = (exc.message,)
            raise
    finally:
        if own:
            board.close()
    created = sum(1 for t in tasks if t.get("created"))
    return {"plan": plan.name, "created": created, "existing": len(tasks) - created, "tasks": tasks}


# -- where in the file: FILE:LINE:COL, as a compiler says it -----------------------------

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def locate(text, path=None):
    """(line, column), 1-based, of a problem in a YAML text: the syntax error's own mark
    (for a quote never closed, where it opened), else the node at `path`, a JSON path such
    as goals[0].tasks[1].depends_on[0] (the deepest node the file has on that path)."""
    import yaml

    try:
        node = yaml.compose(text, Loader=_bounded_loader(yaml))  # noqa: S506 - a SafeLoader, bounded
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        context = getattr(exc, "context_mark", None)
        opened = (getattr(exc, "context", None) or "").startswith(("while scanning a quoted",
                                                                    "while parsing a flow"))
        if context is not None and (mark is None or opened):
            mark = context  # a quote or bracket never closed: where it was opened
        return (mark.line + 1, mark.column + 1) if mark else None
    if node is None or path is None:
        return None
    for name, index in _PATH_PART.findall(path if path != "(top level)" else ""):
        if index:
            if not isinstance(node, yaml.SequenceNode) or int(index) >= len(node.value):
                break
            node = node.value[int(index)]
        else:
            if not isinstance(node, yaml.MappingNode):
                break
            found = [value for key, value in node.value if getattr(key, "value", None) == name]
            if not found:
                break
            node = found[0]
    return node.start_mark.line + 1, node.start_mark.column + 1


def _read_located(path):
    """read(path), its errors saying FILE:LINE:COL: first (and each listed error its line)."""
    try:
        return read(path)
    except KanbanError as exc:
        if path == "-" or exc.code not in ("invalid", "cycle") or exc.extra.get("file") != path:
            raise
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError):
            raise exc from None
        where = locate(text, exc.extra.get("path"))
        if where is None:
            raise
        line, column = where
        message = exc.message
        if message.startswith(f"{path}: "):
            message = message[len(path) + 2:]
        message = re.sub(r"^not valid YAML \(line \d+, column \d+\): ", "not valid YAML: ", message)
        exc.message = f"{path}:{line}:{column}: {message}"
        exc.args = (exc.message,)
        exc.extra.update(line=line, column=column)
        for listed in exc.extra.get("errors") or []:
            spot = locate(text, listed.get("path"))
            if spot:
                listed.update(line=spot[0], column=spot[1])
        raise exc from None


# -- the porcelain ----------------------------------------------------------------------

def plan(args):
    """porcelain/kanban-plan: `plan lint FILE`, `plan apply FILE [--agent A]`; JSON, or on a
    terminal a summary (--format json keeps the document there too)."""
    from .cli import emit, env_or

    fmt = args.get("--format") or ("table" if sys.stdout.isatty() else "json")
    if fmt not in ("json", "table"):
        raise invalid(f"bad --format {fmt!r}: json or table")
    checked = _read_located(args["FILE"])
    if args["lint"]:
        doc = checked.summary()
        if fmt == "json":
            emit(doc)
        else:
            sys.stdout.write(f"{args['FILE']}: ok: plan {doc['plan']}, {doc['goals']} goal(s), {doc['tasks']} task(s)"
                             + (f", refers to {', '.join(doc['external'])}" if doc["external"] else "") + "\n")
        return 0
    doc = apply(checked, agent=env_or(args, "--agent", "KANBAN_AGENT"))
    if fmt == "json":
        emit(doc)
    else:
        from .render import plan_summary

        sys.stdout.write(plan_summary(doc))
    return 0
