"""`kanban team`: the team board of seed 004 — a coordinator, members, a dispatcher.

The manifest (YAML, schemas/team-manifest.schema.json) names the members; each
member with a `command` is a *running assignee*: the dispatcher delivers its
tasks' prompts to that command.  One dispatcher tick:

  1. expires overdue leases (Board.reap);
  2. blocks the tasks of open runs with no heartbeat for `kanban.stale_ms`
     (Board.stale_runs), so a dead member's work surfaces instead of vanishing;
  3. for every ready task whose assignee is a running member: claims it as that
     member, opens a run (Board.run_start), and starts the member's command
     (never through a shell, detached, in its own session) with the prompt on
     stdin, KANBAN_TASK_ID, KANBAN_LEASE_TOKEN, KANBAN_DB, KANBAN_AGENT in its
     environment, and its output appended to .kanban/team/<team>/<member>.log.

"Ready" is computed by the board itself (deps done, not_before passed), so the
seed's promotion of todo and scheduled tasks is every query's, not a step here.
All state is in the board: a dispatcher can stop and start again at any time.
The role gate lives in Board._gate; `start` and `tick` record the team on the
board (Board.set_team) so that every command, not only this one, enforces it.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

from . import clock, paths
from .errors import KanbanError, conflict, invalid
from .plan import check_schema, load_yaml

DEFAULT_STALE_MS = 90_000
MAX_FAILURES = 3  # a member that fails to start this many times in a row is `failed`, not retried
DEFAULT_GRACE = "10s"
DEFAULT_POLL_MS = 1_000
MANY_COORDINATORS = ("{file} is invalid — dispatch_mode=coordinator requires exactly one member "
                     "with role=coordinator")
MANUAL_MEMBER = "{member} has no command or harness: nothing will run its tasks (it works them by hand)"
MANUAL_TASK = "{task} is ready for {member}, who has no command or harness: nothing will run it"
NOT_A_MEMBER_TASK = "{task} is ready for {member}, who is not a member of team {team}: nothing will run it"
UNASSIGNED_TASK = ("{task} is ready and has no assignee: nothing will run it until it is assigned to a member "
                   "(kanban set {task} --assignee MEMBER)")
MISMATCH = "member with role=coordinator ({member}) does not match top-level coordinator ({top})"

PROMPT = """## Task {id}: {title}
{body}

When you finish, call `kanban_complete` with a one-line summary.
If you get stuck, call `kanban_block` with the reason.
Heartbeat with `kanban_heartbeat` if the work takes longer than a minute.
Task id: `{id}` — pass this exact id to the kanban tools.

Without the kanban_* tools, the kanban command does the same (KANBAN_TASK_ID,
KANBAN_LEASE_TOKEN, KANBAN_AGENT and KANBAN_DB are set for you):
  kanban complete {id} --token "$KANBAN_LEASE_TOKEN" --summary "<one line>"
  kanban block {id} --token "$KANBAN_LEASE_TOKEN" --reason "<why>"
  kanban heartbeat {id} --token "$KANBAN_LEASE_TOKEN"
  kanban comment {id} --message "<a note for the team>"
  kanban show {id}
"""


def prompt(task):
    """The text a member's command reads on stdin for one task."""
    return PROMPT.format(id=task["id"], title=task["title"], body=task["body"] or "")


# -- the manifest ----------------------------------------------------------------------

class Team:
    """A checked manifest."""

    def __init__(self, doc, source):
        self.source = source
        self.folder = os.path.dirname(os.path.abspath(source))
        self.name = doc["name"]
        self.description = doc.get("description")
        self.capabilities = doc.get("domain_capabilities") or []
        self.dispatch_mode = doc.get("dispatch_mode") or "coordinator"
        self.coordinator = doc.get("coordinator")
        self.members = [dict(m, role=m.get("role") or "member") for m in doc["members"]]
        self.operators = list(doc.get("operators") or [])
        settings = doc.get("kanban") or {}
        self.stale_ms = settings.get("stale_ms", DEFAULT_STALE_MS)
        self.poll_ms = settings.get("poll_ms", DEFAULT_POLL_MS)
        self.lease = settings.get("lease")
        if self.lease is not None:
            clock.parse_duration(self.lease, "kanban.lease")

    def member(self, personality):
        return next((m for m in self.members if m["personality"] == personality), None)

    def running(self):
        """The members the dispatcher delivers to: those with a command or a harness."""
        return {m["personality"]: m for m in self.members if m.get("command") or m.get("harness")}

    def manual(self):
        """Members with neither a command nor a harness: nothing runs their tasks."""
        return {m["personality"]: m for m in self.members if not (m.get("command") or m.get("harness"))}

    def record(self):
        """What the board keeps for the role gate (Board.set_team)."""
        return {"name": self.name, "dispatch_mode": self.dispatch_mode, "coordinator": self.coordinator,
                "members": {m["personality"]: m["role"] for m in self.members},
                "operators": self.operators, "dispatcher": f"dispatcher@{self.name}",
                "tools": {m["personality"]: m["tools"] for m in self.members if "tools" in m},
                "manifest": os.path.abspath(self.source)}

    def describe(self):
        return {
            "ok": True, "team": self.name, "manifest": os.path.abspath(self.source),
            "description": self.description, "domain_capabilities": self.capabilities,
            "dispatch_mode": self.dispatch_mode, "coordinator": self.coordinator, "operators": self.operators,
            "members": [{"personality": m["personality"], "role": m["role"], "command": m.get("command"),
                         "harness": m.get("harness"), "dispatched": bool(m.get("command") or m.get("harness"))}
                        for m in self.members],
            "kanban": {"stale_ms": self.stale_ms, "poll_ms": self.poll_ms, "lease": self.lease},
            "warnings": [MANUAL_MEMBER.format(member=name) for name in self.manual()],
        }

    def argv(self, member):
        """The member's command; a first word starting ./ or ../ is relative to the manifest.
        For a harness member, the agent CLI's name (harness.py builds the whole line)."""
        if not member.get("command"):
            return [member["harness"]]
        argv = list(member["command"])
        if argv[0].startswith(("./", "../")):
            argv[0] = os.path.normpath(os.path.join(self.folder, argv[0]))
        return argv


def read(path):
    """Load and check a manifest: a Team, or `invalid` naming what is wrong."""
    doc = load_yaml(path, "team manifest")
    if not isinstance(doc, dict):
        raise invalid(f"{path}: a team manifest is a mapping with name and members", file=path)
    check_schema(doc, "team-manifest.schema.json", path, "the team manifest")
    _check_members(doc, path)
    return Team(doc, path)


def _check_members(doc, source):
    seen = {}
    for number, member in enumerate(doc["members"]):
        name = member["personality"]
        if name in seen:
            raise invalid(f"{source}: members[{number}]: personality {name!r} is already members[{seen[name]}]",
                          path=f"members[{number}].personality", file=source)
        seen[name] = number
    top = doc.get("coordinator")
    if (doc.get("dispatch_mode") or "coordinator") == "coordinator":
        # fail closed: without exactly one coordinator the role gate would silently disappear
        leads = [m["personality"] for m in doc["members"] if m.get("role") == "coordinator"]
        if len(leads) != 1:
            raise invalid(MANY_COORDINATORS.format(file=os.path.basename(source)), path="members", file=source,
                          coordinators=leads)
        if top is None:
            raise invalid(f"{os.path.basename(source)} is invalid — dispatch_mode=coordinator requires a "
                          f"top-level coordinator (the member with role=coordinator is {leads[0]})",
                          path="coordinator", file=source)
        if leads[0] != top:
            raise invalid(MISMATCH.format(member=leads[0], top=top), path="coordinator", file=source)
    elif top is not None and top not in seen:
        raise invalid(f"{source}: coordinator {top!r} is not a member", path="coordinator", file=source)


# -- the board ---------------------------------------------------------------------------

def open_board(create=False):
    """The board (KANBAN_DB or found as git finds .git); `start`/`tick` create one here."""
    from .board import Board, init

    try:
        return Board()
    except KanbanError as exc:
        if not create or exc.code != "not_found":
            raise
    from .skill import ignore_runtime_files

    made = init()["db"]
    ignore_runtime_files(made)  # as `kanban init` does: the runtime files stay out of git
    return Board(made)


def record(team, board):
    """Record the team on the board (its role gate) unless it is recorded already."""
    current = board.team()
    wanted = team.record()
    if current == wanted:
        return False
    if current and current.get("name") != team.name:
        raise conflict(f"the board is team {current.get('name')}'s: one team per board "
                       "(use another board with KANBAN_DB)", team=current.get("name"))
    board.set_team(wanted)
    return True


def team_folder(team, board):
    """.kanban/team/<name>/ next to the board file (for a server board, under ./.kanban)."""
    folder = board.db.folder() or os.path.abspath(".kanban")
    return os.path.join(folder, "team", team.name)


def board_location(board):
    """What KANBAN_DB should say to reach this board from another process."""
    return board.db.location()


# -- the dispatcher ------------------------------------------------------------------------

class Dispatcher:
    """Ticks for one team on one board.  Keeps only the child processes it started
    (to notice a member that exits without closing its task); the rest is the board."""

    def __init__(self, team, board):
        self.team = team
        self.board = board
        self.actor = f"dispatcher@{team.name}"
        self.children = {}  # pid -> (Popen, task id, token, member)
        self.failures = {}  # member -> consecutive failures to start (or to run at all)
        self.said_failed = set()

    def tick(self):
        board, team = self.board, self.team
        report = {"team": team.name, "at": clock.iso(clock.now_ms()), "expired": [], "stale": [],
                  "ready": [], "dispatched": [], "skipped": [], "failed": [], "exited": [], "manual": []}
        report["exited"] = self._reap_children()
        self._save_state()
        report["expired"] = [t["id"] for t in board.reap(actor=self.actor)["expired"]]
        report["stale"] = [t["id"] for t in board.stale_runs(team.stale_ms, actor=self.actor)["blocked"]]
        if report["stale"]:
            self._stop_stale(set(report["stale"]))
        running, manual = team.running(), team.manual()
        for task in board.list(ready=True)["tasks"]:
            report["ready"].append(task["id"])
            if task["assignee"] in running and self.failures.get(task["assignee"], 0) >= MAX_FAILURES:
                if task["id"] in self.said_failed:
                    continue
                self.said_failed.add(task["id"])  # said once, not every tick
                report["skipped"].append({"task": task["id"], "agent": task["assignee"], "code": "failed",
                                          "reason": f"{task['assignee']} failed to start {MAX_FAILURES} times in a "
                                                    "row: not started again until the team restarts"})
            elif task["assignee"] in running:
                self._dispatch(task, running[task["assignee"]], report)
            elif task["assignee"] in manual:
                report["manual"].append({"task": task["id"], "agent": task["assignee"],
                                         "message": MANUAL_TASK.format(task=task["id"], member=task["assignee"])})
            elif task["assignee"] is not None and team.member(task["assignee"]) is None:
                report["manual"].append({"task": task["id"], "agent": task["assignee"],
                                         "message": NOT_A_MEMBER_TASK.format(task=task["id"], member=task["assignee"],
                                                                             team=team.name)})
            elif task["assignee"] is None:  # the dispatcher routes by assignee: this one waits for a person
                report["manual"].append({"task": task["id"], "agent": None,
                                         "message": UNASSIGNED_TASK.format(task=task["id"])})
        return report

    def _dispatch(self, task, member, report):
        agent = member["personality"]
        try:
            claim = self.board.claim(agent, task["id"], role=task["role_boundary"],
                                     lease=self.team.lease or os.environ.get("KANBAN_LEASE"))
        except KanbanError as exc:  # someone else took it first, or it changed under us
            report["skipped"].append({"task": task["id"], "agent": agent, "code": exc.code, "reason": exc.message})
            return
        token = claim["lease_token"]
        run = self.board.run_start(task["id"], agent=agent, token=token)
        try:
            proc, log = self._deliver(member, claim, run)
        except OSError as exc:
            reason = f"could not start {agent}'s command {self.team.argv(member)[0]}: {exc.strerror or exc}"
            self.board.block(task["id"], reason, token=token, agent=self.actor)
            report["failed"].append({"task": task["id"], "agent": agent, "run": run["id"], "reason": reason})
            self._failed(agent, reason)
            return
        self.children[proc.pid] = (proc, task["id"], token, agent)
        self._save_children()
        report["dispatched"].append({"task": task["id"], "title": task["title"], "agent": agent, "run": run["id"],
                                     "lease_token": token, "lease_until": claim["lease_until"],
                                     "pid": proc.pid, "log": log})

    def _deliver(self, member, claim, run):
        """Start the member's command on the prompt; do not wait for it."""
        folder = team_folder(self.team, self.board)
        os.makedirs(folder, exist_ok=True)
        log = os.path.join(folder, f"{_file_name(member['personality'])}.log")
        env = dict(os.environ)
        env.update(member.get("env") or {})
        env.update({
            "KANBAN_TASK_ID": claim["id"], "KANBAN_LEASE_TOKEN": str(claim["lease_token"]),
            "KANBAN_DB": board_location(self.board), "KANBAN_AGENT": member["personality"],
            "KANBAN_RUN_ID": str(run["id"]), "KANBAN_TEAM": self.team.name,
            "PATH": os.path.dirname(paths.command()) + os.pathsep + env.get("PATH", os.defpath),
        })
        text = prompt(claim)
        argv = self.team.argv(member)
        if member.get("harness") and not member.get("command"):
            from . import harness

            argv, extra = harness.launch(member["harness"], member["personality"], text, folder, env)
            env.update(extra)
        with tempfile.TemporaryFile() as stdin, open(log, "ab") as out:
            stdin.write(text.encode("utf-8"))
            stdin.seek(0)
            out.write(f"--- {clock.iso(clock.now_ms())} {claim['id']} run {run['id']}: "
                      f"{' '.join(argv)[:500]}\n".encode("utf-8"))
            out.flush()
            proc = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=out, env=env,
                                    start_new_session=True, close_fds=True)
        return proc, log

    def _stop_stale(self, tasks):
        """The commands still running on runs that just went stale get SIGTERM (their
        session): their task is blocked and their token fenced off, so whatever they do
        next is wasted at best, and an unblock would otherwise start a second one beside
        them.  The members this dispatcher started, and those an earlier `team tick`
        recorded; a pid is signalled only while it is still that member on that claim."""
        recorded = _read_json(os.path.join(team_folder(self.team, self.board), "children.json"), [])
        known = {pid: (task, token) for pid, (_proc, task, token, _agent) in self.children.items()}
        known.update({c["pid"]: (c["task"], c["token"]) for c in recorded
                      if isinstance(c, dict) and c.get("pid") not in known})
        for pid, (task, token) in known.items():
            if task in tasks and _member_alive(pid, task, token):
                _signal_group(pid, signal.SIGTERM)

    def _reap_children(self):
        """Members that exited: a task still in progress under their token is blocked now
        (rather than after stale_ms), with the exit status and the log's tail."""
        out = []
        for pid, (proc, task, token, agent) in list(self.children.items()):
            status = proc.poll()
            if status is None:
                continue
            del self.children[pid]
            self._save_children()
            if status == 0:
                self.failures.pop(agent, None)
            else:
                self._failed(agent, f"exited with status {status}")
            entry = {"task": task, "agent": agent, "pid": pid, "status": status}
            try:
                self.board.block(task, f"{agent}'s command exited with status {status} without completing "
                                 "or blocking the task (see its log)", token=token, agent=self.actor)
                entry["blocked"] = True
            except KanbanError:  # completed, blocked or released by the member: all is well
                entry["blocked"] = False
            out.append(entry)
        return out

    def _failed(self, agent, reason):
        self.failures[agent] = self.failures.get(agent, 0) + 1
        self.reasons = getattr(self, "reasons", {})
        self.reasons[agent] = reason

    def _state_path(self):
        return os.path.join(team_folder(self.team, self.board), "members.json")

    def _save_state(self):
        """What `team status` reads of this dispatcher: when it last probed, who failed."""
        folder = team_folder(self.team, self.board)
        os.makedirs(folder, exist_ok=True)
        reasons = getattr(self, "reasons", {})
        state = {"probed_at": clock.iso(clock.now_ms()), "pid": os.getpid(),
                 "failures": {a: {"count": n, "reason": reasons.get(a), "failed": n >= MAX_FAILURES}
                              for a, n in self.failures.items()}}
        _write_json(self._state_path(), state)

    def _save_children(self):
        """The members running now (pid, task, token): what `team stop` stops."""
        _write_json(os.path.join(team_folder(self.team, self.board), "children.json"),
                    [{"pid": pid, "task": task, "token": token, "agent": agent}
                     for pid, (_proc, task, token, agent) in self.children.items()])

    def busy(self):
        """Is any running member still holding a task?"""
        running = self.team.running()
        if self.children:
            return True
        tasks = self.board.list(status="in_progress")["tasks"]
        return any(t["claimed_by"] in running for t in tasks)


def _write_json(path, document):
    import json

    os.makedirs(os.path.dirname(path), exist_ok=True)
    paths.replace_file(path, json.dumps(document))


def _read_json(path, default):
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default


def _file_name(name):
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "_"


def did_something(report):
    return any(report.get(k) for k in ("expired", "stale", "dispatched", "skipped", "failed", "exited"))


# -- status --------------------------------------------------------------------------------

def status(team, board):
    """Members, their open tasks and runs, and the dispatcher's pid when it runs."""
    recorded = board.team()
    now = clock.now_ms()
    state_file = _read_json(os.path.join(team_folder(team, board), "members.json"), {})
    failures = state_file.get("failures", {}) if _dispatcher_pid(team, board) else {}
    members = []
    for member in team.members:
        name = member["personality"]
        tasks = board.list(assignee=name)["tasks"]
        open_tasks, closed = [], {"done": 0, "cancelled": 0, "failed": 0}
        runs = []
        for task in tasks:
            if task["status"] in closed:
                closed[task["status"]] += 1
                continue
            open_tasks.append({"id": task["id"], "title": task["title"], "status": task["status"],
                               "ready": task["ready"], "lease_until": task["lease_until"]})
            if task["status"] == "in_progress":
                runs += [r for r in board.show(task["id"], events=0)["runs"] if r["ended_at"] is None]
        beats = [clock.parse_time(r["heartbeat_at"]) for r in runs]
        failure = failures.get(name) or {}
        if not (member.get("command") or member.get("harness")):
            state = "manual"
        elif failure.get("failed"):
            state = "failed"
        elif runs and min(beats) <= now - team.stale_ms:
            state = "degraded"  # a run with no heartbeat for stale_ms: the next tick blocks it
        elif runs:
            state = "running"
        else:
            state = "idle"
        members.append({
            "personality": name, "role": member["role"], "command": member.get("command"),
            "harness": member.get("harness"), "state": state, "tasks": open_tasks, "closed": closed, "runs": runs,
            "last_heartbeat": clock.iso(max(beats)) if beats else None,
            "failures": failure.get("count", 0), "failure": failure.get("reason"),
            "log": os.path.join(team_folder(team, board), f"{_file_name(name)}.log"),
        })
    pid = _dispatcher_pid(team, board)
    folder = team_folder(team, board)
    return {"team": team.name, "manifest": os.path.abspath(team.source), "board": board_location(board),
            "dispatch_mode": team.dispatch_mode, "coordinator": team.coordinator,
            "recorded": recorded == team.record(),
            "dispatcher": {"running": pid is not None, "pid": pid, "last_probe": state_file.get("probed_at"),
                           "log": os.path.join(folder, "dispatcher.log")},
            "stale_ms": team.stale_ms, "members": members}


def _pid_file(team, board):
    return os.path.join(team_folder(team, board), "dispatcher.pid")


def _hold_pid_file(team, board):
    """Write this dispatcher's pid, refusing while another live one holds the file."""
    path = _pid_file(team, board)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            other = _dispatcher_pid(team, board)
            if other is not None:
                raise conflict(f"team {team.name} already has a dispatcher on this board (pid {other})",
                               pid=other) from None
            try:  # left behind by a dispatcher that died
                os.remove(path)
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")
        return path
    raise conflict(f"team {team.name}: another dispatcher is starting on this board")


def _dispatcher_pid(team, board):
    try:
        with open(_pid_file(team, board), encoding="utf-8") as handle:
            pid = int(handle.read().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    try:  # a recycled pid is not our dispatcher
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            if b"team" not in handle.read():
                return None
    except OSError:
        pass
    return pid


def _utc(stamp):
    """A heartbeat's time in the status table: UTC to the second, marked Z ('2030-01-01
    10:00:05Z'); unmarked it read as local time where TZ is not UTC."""
    return (stamp.replace("T", " ").rstrip("Z")[:19] + "Z") if stamp else ""


def status_table(document):
    from tabulate import tabulate

    rows = []
    for m in document["members"]:
        working = ",".join(t["id"] for t in m["tasks"] if t["status"] == "in_progress")
        todo = sum(1 for t in m["tasks"] if t["status"] == "todo")
        blocked = ",".join(t["id"] for t in m["tasks"] if t["status"] == "blocked")
        rows.append([m["personality"], m["role"], m["state"], working or "-", todo, blocked or "-",
                     m["closed"]["done"], _utc(m["last_heartbeat"])])
    head = (f"team {document['team']} (dispatch_mode {document['dispatch_mode']}, coordinator: "
            f"{document['coordinator'] or '-'}), dispatcher "
            + (f"running (pid {document['dispatcher']['pid']})" if document["dispatcher"]["running"] else "stopped")
            + ("" if document["recorded"] else "; not recorded on this board yet (run 'kanban team start')"))
    return head + "\n\n" + tabulate(rows, headers=["member", "role", "state", "working on", "todo", "blocked",
                                                   "done", "last heartbeat"],
                                    tablefmt="simple", disable_numparse=True)


# -- start: the dispatcher loop ----------------------------------------------------------------

def describe_report(report):
    """A tick's report as lines for people."""
    lines = []
    name = report["team"]
    for task in report["expired"]:
        lines.append(f"{name}: lease expired on {task}")
    for task in report["stale"]:
        lines.append(f"{name}: {task} blocked: its run went stale")
    for item in report["exited"]:
        if item["blocked"]:
            lines.append(f"{name}: {item['task']} blocked: {item['agent']} exited with status {item['status']}")
        else:
            lines.append(f"{name}: {item['task']}: {item['agent']} exited with status {item['status']}")
    for item in report["dispatched"]:
        lines.append(f"{name}: {item['task']} -> {item['agent']} (run {item['run']}, pid {item['pid']}): "
                     f"{item['title']}")
    for item in report["failed"]:
        lines.append(f"{name}: {item['task']} blocked: {item['reason']}")
    for item in report.get("manual", ()):
        lines.append(f"{name}: {item['message']}")
    for item in report["skipped"]:
        lines.append(f"{name}: {item['task']} skipped: {item['reason']}")
    return lines


def start(team, board, *, ticks=None, until_idle=False, fmt="text", out=None):
    """Tick every poll_ms until SIGINT/SIGTERM (or N ticks, or idle): the stop summary."""
    import json

    out = out or sys.stdout
    record(team, board)
    pid_file = _hold_pid_file(team, board)
    dispatcher = Dispatcher(team, board)
    stopping = []

    def stop(signum, _frame):
        stopping.append(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def say(report=None, line=None):
        if fmt == "json":
            out.write(json.dumps(report if report is not None else line, ensure_ascii=False) + "\n")
        elif report is not None:
            for text in describe_report(report):
                out.write(text + "\n")
        else:
            out.write(line["message"] + "\n")
        out.flush()

    count, reason, told = 0, None, set()  # a manual member's ready task is said once per start
    try:
        hint = operator_hint(team)
        say(line={"team": team.name, "started": True, "board": board_location(board), "pid": os.getpid(),
                  "hint": hint,
                  "message": f"{team.name}: dispatching on {board_location(board)} every {team.poll_ms} ms "
                             f"(pid {os.getpid()}); Ctrl-C stops" + (f"\n{team.name}: {hint}" if hint else "")})
        while True:
            report = dispatcher.tick()
            count += 1
            news = [m for m in report["manual"] if (m["task"], m["agent"]) not in told]
            told.update((m["task"], m["agent"]) for m in report["manual"])
            if did_something(report) or news:
                say(dict(report, manual=news))
            if stopping:
                reason = stopping[0]
            elif ticks is not None and count >= ticks:
                reason = "ticks"
            elif until_idle and not report["dispatched"] and not dispatcher.busy():
                reason = "idle"
            if reason:
                break
            deadline = time.monotonic() + team.poll_ms / 1000
            while not stopping and time.monotonic() < deadline:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        try:
            os.remove(pid_file)
        except OSError:
            pass
    try:
        left = open_tasks(board)
    except KanbanError:  # the board failing now (a server going away) takes nothing from the stop
        left = None
    words = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in (left or {}).items() if n)
    summary = {"team": team.name, "stopped": reason, "ticks": count,
               "running_members": sorted(str(c[3]) for c in dispatcher.children.values()),
               "left": left,
               "message": f"{team.name}: stopped ({reason}) after {count} tick(s); "
                          + (f"left on the board: {words} (kanban board shows them); " if words else
                             "nothing left on the board; " if left is not None else "")
                          + "members keep running, the board keeps their runs"}
    say(line=summary)
    return summary


def open_tasks(board):
    """{status: how many tasks (not goals)} still open on the board, for the stop summary:
    a dispatcher that stops idle says what it left, rather than stopping without a word."""
    from .board import OPEN

    left = dict.fromkeys(OPEN, 0)
    for task in board.list()["tasks"]:
        if task["kind"] == "task" and task["status"] in left:
            left[task["status"]] += 1
    return left


def operator_hint(team):
    """How the person starting the team gets write access to its board, if they lack it."""
    me = os.environ.get("KANBAN_AGENT")
    if me and (me in team.operators or team.member(me)):
        return None
    if me:
        return (f"{me} is neither a member nor an operator: the board refuses your writes; add {me} under "
                f"`operators:` in {os.path.abspath(team.source)}")
    return ("the board refuses writes from anyone who is neither a member nor an operator: add yourself under "
            f"`operators:` in {os.path.abspath(team.source)} and set KANBAN_AGENT to that name")


# -- the porcelain --------------------------------------------------------------------------------

# -- manifests by name -----------------------------------------------------------------------------

def candidates(name):
    """Where a team NAME's manifest may be, in the order they are tried."""
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    out = [os.path.abspath("team.yaml")]
    if name:
        out.append(os.path.abspath(os.path.join(".kanban", "teams", f"{name}.yaml")))
        board = _board_folder()
        if board is not None:  # from a subfolder: the .kanban folder of the board found above, as git's
            theirs = os.path.join(board, "teams", f"{name}.yaml")
            if theirs not in out:
                out.append(theirs)
        out.append(os.path.join(config, "kanban", "teams", f"{name}.yaml"))
    return out


def _board_folder():
    """The .kanban folder of the board: the one found here or above, or the one KANBAN_DB
    names a file in; None for a board anywhere else (a server, a file of another folder)."""
    from .store import find_board, locate

    try:
        where = locate(find_board())
    except KanbanError:
        return None
    if where.is_server:
        return None
    folder = os.path.dirname(os.path.abspath(where.target))
    return folder if os.path.basename(folder) == ".kanban" else None


def find(spec):
    """(the manifest's path, the places searched): spec is a path, a team NAME, or None
    (./team.yaml).  ./team.yaml answers for NAME only when it names that team."""
    if spec and (os.sep in spec or spec.endswith((".yaml", ".yml", ".json")) or os.path.isfile(spec)):
        if not os.path.isfile(spec):
            raise KanbanError("not_found", f"no team manifest {spec}", file=spec)
        return spec, [os.path.abspath(spec)]
    searched = candidates(spec)
    for number, path in enumerate(searched):
        if not os.path.isfile(path):
            continue
        if number == 0 and spec:
            doc = load_yaml(path, "team manifest")
            if not isinstance(doc, dict) or doc.get("name") != spec:
                continue  # ./team.yaml is another team's
        return path, searched
    what = f"team {spec}" if spec else "a team"
    raise KanbanError("not_found", f"no manifest for {what}: looked in {', '.join(searched)}",
                      searched=searched, team=spec)


# -- start --detach, stop, destroy -------------------------------------------------------------------

def detach(team, board, fmt):
    """Run `team start` in the background (its own session); answer once it holds the pid file."""
    record(team, board)
    other = _dispatcher_pid(team, board)
    if other is not None:
        raise conflict(f"team {team.name} already has a dispatcher on this board (pid {other})", pid=other)
    folder = team_folder(team, board)
    os.makedirs(folder, exist_ok=True)
    log = os.path.join(folder, "dispatcher.log")
    env = dict(os.environ, KANBAN_DB=board_location(board))
    with open(log, "ab") as out, open(os.devnull, "rb") as nothing:
        proc = subprocess.Popen([paths.command(), "team", "start", os.path.abspath(team.source),
                                 f"--format={fmt}"], stdin=nothing, stdout=out, stderr=out, env=env,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + 30
    while _dispatcher_pid(team, board) != proc.pid:
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = _tail(log)
            raise KanbanError("internal", f"team {team.name}: the background dispatcher did not start "
                              f"(see {log}): {tail}", log=log)
        time.sleep(0.05)
    return {"team": team.name, "detached": True, "pid": proc.pid, "pid_file": _pid_file(team, board), "log": log,
            "manifest": os.path.abspath(team.source),
            "message": f"{team.name}: dispatching in the background (pid {proc.pid}, log {log}); "
                       f"'kanban team stop {team.name}' stops it"}


def _tail(path, size=600):
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - size))
            return handle.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _member_alive(pid, task, token=None):
    """Is `pid` still the member we started on `task` (not a recycled pid), and with
    `token`, on that claim?"""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read().split(b"\0")
    except OSError:
        return False
    return f"KANBAN_TASK_ID={task}".encode() in environ and (
        token is None or f"KANBAN_LEASE_TOKEN={token}".encode() in environ)


def _signal_group(pid, sig):
    try:
        os.killpg(pid, sig)  # each member runs in its own session: its group is its pid
    except OSError:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def _wait_gone(check, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not check():
            return True
        time.sleep(0.05)
    return not check()


def stop(team, board, grace="10s"):
    """Stop the team's dispatcher and its members: SIGTERM, the grace period, SIGKILL;
    then their leases are released and their open runs closed `cancelled`."""
    grace_s = clock.parse_duration(grace, "--grace") / 1000
    folder = team_folder(team, board)
    pid = _dispatcher_pid(team, board)
    stopped = {"dispatcher": None, "members": [], "released": [], "killed": []}
    if pid is not None:  # first the dispatcher, so that it does not block the tasks of members we stop
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(lambda: _dispatcher_pid(team, board) == pid, grace_s):
            os.kill(pid, signal.SIGKILL)
            stopped["killed"].append(pid)
            _wait_gone(lambda: _alive(pid), 5)
        stopped["dispatcher"] = pid
    children = [c for c in _read_json(os.path.join(folder, "children.json"), []) if isinstance(c, dict)]
    live = [c for c in children if _member_alive(c["pid"], c["task"])]
    for child in live:
        _signal_group(child["pid"], signal.SIGTERM)
    for child in live:
        if not _wait_gone(lambda c=child: _member_alive(c["pid"], c["task"]), grace_s):
            _signal_group(child["pid"], signal.SIGKILL)
            stopped["killed"].append(child["pid"])
        stopped["members"].append({"agent": child["agent"], "pid": child["pid"], "task": child["task"]})
    for child in children:
        try:
            board.release(child["task"], child["token"], agent=child["agent"], run_outcome="cancelled")
            stopped["released"].append(child["task"])
        except KanbanError:
            pass  # finished, blocked or released already: nothing is held
    _write_json(os.path.join(folder, "children.json"), [])
    running = pid is not None or bool(live)
    message = (f"{team.name}: stopped (dispatcher {pid or '-'}, {len(live)} member(s); "
               f"released {', '.join(stopped['released']) or 'nothing'})" if running
               else f"{team.name}: not running on this board")
    return {"team": team.name, "stopped": running, **stopped, "message": message}


def _alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def destroy(team, board, actor=None):
    """Forget the team on this board (its role gate goes); every task and event stays."""
    pid = _dispatcher_pid(team, board)
    if pid is not None:
        raise conflict(f"team {team.name} is still running (dispatcher pid {pid}): stop it first with "
                       f"'kanban team stop {team.name}', then re-run destroy with --yes", pid=pid, team=team.name)
    current = board.team()
    if not current or current.get("name") != team.name:
        raise KanbanError("not_found", f"team {team.name} is not recorded on this board", team=team.name)
    board.set_team(None, actor=actor)
    stats = board.stats()
    return {"team": team.name, "destroyed": True, "tasks_kept": stats["tasks"] + stats["goals"],
            "message": f"{team.name}: forgotten on this board (its tasks, runs and events stay; "
                       "the board is no longer gated)"}


def team(args):
    """porcelain/kanban-team: validate, start, tick, status, stop, destroy."""
    from .board import parse_int
    from .cli import emit, env_or

    path, searched = find(args["MANIFEST"])
    manifest = read(path)
    if args["validate"]:
        emit(dict(manifest.describe(), searched=searched))
        return 0
    fmt = args.get("--format") or ("text" if args["start"] else "json")
    if args["status"]:
        if fmt not in ("json", "table"):
            raise invalid(f"bad --format {fmt!r}: json or table")
        with open_board() as board:
            document = status(manifest, board)
        if fmt == "table":
            from .render import terminal_text

            sys.stdout.write(terminal_text(status_table(document)) + "\n")
        else:
            emit(document)
        return 0
    if args["stop"]:
        with open_board() as board:
            emit(stop(manifest, board, grace=args["--grace"] or DEFAULT_GRACE))
        return 0
    if args["destroy"]:
        if not args["--yes"]:
            raise KanbanError("usage", f"destroy forgets team {manifest.name} on this board (tasks and events "
                              "stay): confirm with --yes")
        with open_board() as board:
            emit(destroy(manifest, board, actor=env_or(args, "--agent", "KANBAN_AGENT")))
        return 0
    with open_board(create=True) as board:
        if args["tick"]:
            recorded = record(manifest, board)
            report = Dispatcher(manifest, board).tick()
            report["recorded"] = recorded
            emit(report)
            return 0
        if fmt not in ("text", "json"):
            raise invalid(f"bad --format {fmt!r}: text or json")
        if args["--detach"]:
            answer = detach(manifest, board, fmt)
            if fmt == "json":
                emit(answer)
            else:
                sys.stdout.write(answer["message"] + "\n")
            return 0
        ticks = parse_int(args["--ticks"], "--ticks", minimum=1) if args["--ticks"] is not None else None
        start(manifest, board, ticks=ticks, until_idle=args["--until-idle"], fmt=fmt)
    return 0


__all__ = ["Team", "Dispatcher", "read", "prompt", "status", "start", "team"]
