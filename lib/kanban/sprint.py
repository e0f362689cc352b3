"""`kanban sprint` and `kanban standup`: a sprint that tells the truth, and what changed.

`kanban sprint` runs N worker loops and a reviewer loop (`kanban work`, `kanban
review`) and keeps them serving for as long as there is work any of them can do:
a worker that stopped for lack of work is started again while tasks are in progress
or in review (a rejection brings one back), so the board drains.  A task no worker
can ever take (assigned to an agent that is not one of the workers, or needing a
role they do not have) does not keep the sprint waiting: it is reported.  At the
end a summary goes to stderr and the exit status says whether every task is done.
"""
import os
import signal
import subprocess
import sys
import time

from . import clock, paths
from .board import Board, parse_int
from .cli import env_or
from .errors import KanbanError, invalid, usage
from .work import die_with_parent

TICK_S = 0.5
HOW_TO_SET = ("set the command that does a task: make sprint KANBAN_WORK_CMD=./do-task (or CMD=./do-task), "
              "or kanban sprint --work-cmd=./do-task; it gets the task JSON on stdin, exit 0 completes it")


def _kanban():
    """The kanban command of this installation (the loops run as their own processes):
    bin/kanban of a checkout or `make install`, the console script of a wheel."""
    return paths.command()


class Crew:
    """The workers and the reviewer, each a slot that holds at most one loop process."""

    def __init__(self, names, role, reviewer, work_cmd, review_cmd, wait, lease):
        self.names, self.role, self.reviewer = names, role, reviewer
        self.work_cmd, self.review_cmd = work_cmd, review_cmd
        self.wait, self.lease = wait, lease
        self.running = {}

    def start(self, name):
        kanban = _kanban()
        if name == self.reviewer:
            argv = [kanban, "review", "--agent", name, "--wait", self.wait, "--lease", self.lease,
                    "--", "sh", "-c", self.review_cmd]
        else:
            argv = [kanban, "work", "--agent", name, "--wait", self.wait, "--lease", self.lease]
            argv += ["--role", self.role] if self.role else []
            argv += ["--", "sh", "-c", self.work_cmd]
        # the loops' output is progress for people: stderr; stdout stays for the board.
        # A sprint killed outright (SIGKILL) leaves no loop working on without it: on
        # Linux each loop gets SIGTERM then, so it stops its command and gives its task back
        self.running[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(),
                                              preexec_fn=die_with_parent(signal.SIGTERM))

    def idle(self, name):
        proc = self.running.get(name)
        return proc is None or proc.poll() is not None

    def busy(self):
        return [name for name in self.running if not self.idle(name)]

    def stop(self):
        for proc in self.running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # the loop releases its lease
        for proc in self.running.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


class Rejections:
    """A task rejected again and again would keep the sprint going forever: after
    `limit` rejections in this sprint it is blocked, for a person to look at."""

    def __init__(self, board, limit):
        self.board, self.limit, self.counts = board, limit, {}
        self.cursor = self._drain(count=False)  # rejections from before the sprint do not count

    def _drain(self, count=True, cursor=None):
        cursor = self.cursor if cursor is None and hasattr(self, "cursor") else cursor
        while True:
            page = self.board.events(kind="rejected", since=cursor, limit=1000)
            for event in page["events"] if count else ():
                self.counts[event["task"]] = self.counts.get(event["task"], 0) + 1
            if not page["events"]:
                return page["cursor"]
            cursor = page["cursor"]

    def check(self):
        self.cursor = self._drain()
        for task, count in self.counts.items():
            if count >= self.limit and self.board.show(task, events=0)["status"] == "todo":
                try:
                    self.board.block(task, f"rejected {count} times in this sprint: a person should look at it",
                                     agent="kanban-sprint")
                except KanbanError:
                    continue  # a worker claimed it in between: block it when it comes back
                self.counts[task] = -1  # said once


def takeable(task, worker, role):
    """Could `worker` (with `role`) ever claim this todo task?"""
    if task["assignee"] and task["assignee"] != worker:
        return False
    return not task["role_boundary"] or task["role_boundary"] == role


def coming(tasks, crew):
    """The ids of the todo tasks that will be ready by themselves: waiting only on time, or
    on deps that are moving: in progress, in review while a reviewer runs, or todo tasks
    a worker can take that are coming themselves.  A dep in review with no reviewer, or
    behind a blocked task or one nobody can take, never moves: waiting on it would keep
    the sprint going for ever."""
    by_id = {t["id"]: t for t in tasks}
    moving = {"in_progress", "in_review"} if crew.review_cmd else {"in_progress"}
    known = {}

    def is_coming(task):
        if task["id"] not in known:
            known[task["id"]] = False  # deps form no cycle; this only guards the walk
            known[task["id"]] = task["ready"] or all(dep_moves(w) for w in task.get("waiting_on") or [])
        return known[task["id"]]

    def dep_moves(reason):
        if reason["kind"] == "schedule":
            return True
        if reason["kind"] != "dep":
            return False
        dep = by_id.get(reason["task"])
        if dep is None:  # a goal: it moves with its own tasks
            return reason["status"] in ("todo", "in_progress", "in_review")
        if dep["status"] == "todo":
            return any(takeable(dep, n, crew.role) for n in crew.names) and is_coming(dep)
        return dep["status"] in moving

    return {t["id"] for t in tasks if t["status"] == "todo" and is_coming(t)}


def wanted(tasks, crew, name):
    """Is there work the loop `name` may get, now or once running work comes back?"""
    status = {s: [t for t in tasks if t["status"] == s] for s in ("todo", "in_progress", "in_review")}
    if name == crew.reviewer:
        return bool(status["in_review"] or status["in_progress"])
    if status["in_progress"] or (status["in_review"] and crew.review_cmd):
        return True
    ready_soon = coming(tasks, crew)
    return any(takeable(t, name, crew.role) and t["id"] in ready_soon for t in status["todo"])


def why_left(task, crew):
    """Why a task is still open at the end, in a few words."""
    status = task["status"]
    if status == "todo":
        if not any(takeable(task, n, crew.role) for n in crew.names):
            if task["assignee"] and task["assignee"] not in crew.names:
                return f"nobody can take it: assigned to {task['assignee']}, who is not one of the workers"
            return f"nobody can take it: it needs role {task['role_boundary']}, which no worker has"
        deps = [f"{w['task']} ({w['status']})" for w in task.get("waiting_on") or [] if w["kind"] == "dep"]
        return "waits on " + ", ".join(deps) if deps else "never claimed"
    if status == "blocked":
        return f"blocked: {task.get('reason') or 'no reason given'}"
    if status == "in_review":
        return "waiting for a reviewer" + ("" if crew.review_cmd else " (no KANBAN_REVIEW_CMD set)")
    if status == "in_progress":
        return f"still held by {task['claimed_by']}"
    return status


def summary(tasks, crew):
    """(exit status, text for stderr) of the board at the end of the sprint."""
    from .render import one_line

    work = [t for t in tasks if t["kind"] == "task"]
    done = sum(1 for t in work if t["status"] in ("done", "cancelled"))
    left = [t for t in work if t["status"] not in ("done", "cancelled")]
    if not left:
        return 0, f"kanban sprint: done: all {len(work)} task(s) done\n"
    counts = {}
    for t in left:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    lines = [f"kanban sprint: NOT DONE: {done} of {len(work)} task(s) done; left: "
             + ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items())]
    for t in left:
        lines.append(f"  {t['id']:<9} {t['status']:<11} {one_line(t['title'])[:50]}: {one_line(why_left(t, crew))}")
    return 1, "\n".join(lines) + "\n"


def sprint(args):
    """porcelain/kanban-sprint"""
    work_cmd = env_or(args, "--work-cmd", "KANBAN_WORK_CMD")
    if not work_cmd or not work_cmd.strip():
        raise usage(f"no work command: {HOW_TO_SET}")
    review_cmd = env_or(args, "--review-cmd", "KANBAN_REVIEW_CMD")
    count = parse_int(args["--workers"] or os.environ.get("KANBAN_WORKERS") or 3, "--workers", minimum=1)
    prefix = args["--prefix"] or os.environ.get("KANBAN_WORKER_PREFIX") or "worker"
    role = env_or(args, "--role", "KANBAN_WORKER_ROLE")
    reviewer = args["--reviewer"] or os.environ.get("KANBAN_REVIEWER") or "reviewer"
    wait = args["--wait"] or "5s"
    lease = args["--lease"] or os.environ.get("KANBAN_LEASE") or "15m"
    for value, what in ((wait, "wait"), (lease, "lease")):
        clock.parse_duration(value, what)
    max_rejections = parse_int(args["--max-rejections"] or 3, "--max-rejections", minimum=1)
    names = [f"{prefix}-{n}" for n in range(1, count + 1)]
    if reviewer in names:
        raise invalid(f"the reviewer {reviewer!r} is also a worker: a worker may not review its own work")
    crew = Crew(names, role, reviewer if review_cmd else None, work_cmd, review_cmd, wait, lease)
    slots = names + ([reviewer] if review_cmd else [])

    def on_term(signum, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        with Board() as board:
            rejections = Rejections(board, max_rejections)
            while True:
                rejections.check()
                tasks = [t for t in board.list(details=True)["tasks"] if t["kind"] == "task"]
                starting = [n for n in slots if crew.idle(n) and wanted(tasks, crew, n)]
                for name in starting:
                    crew.start(name)
                if not starting and not crew.busy():
                    break
                time.sleep(TICK_S)
            tasks = board.list(details=True)["tasks"]
    except KeyboardInterrupt:
        crew.stop()
        sys.stderr.write("kanban sprint: stopped; the loops gave their tasks back\n")
        return 130
    except BaseException:
        crew.stop()  # never leave loops running without the sprint that watches them
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    status, text = summary(tasks, crew)
    sys.stderr.write(text)
    return status


# -- kanban standup ----------------------------------------------------------------------------

SHOWN = ("created", "claimed", "completed", "submitted_for_review", "approved", "rejected", "blocked",
         "unblocked", "cancelled", "reopened", "failed", "lease_expired", "released", "status_changed",
         "commented", "progress")


def standup_document(board, since_ms):
    """{"since", "until", "agents": {agent: [events]}}: what each agent did since a moment."""
    now = clock.now_ms()
    agents, cursor = {}, None
    while True:
        page = board.events(since=cursor, limit=1000)
        for event in page["events"]:
            if event["kind"] in SHOWN and clock.parse_time(event["at"]) >= since_ms:
                agents.setdefault(event["actor"] or "(nobody)", []).append(event)
        if not page["events"] or page["cursor"] == cursor:
            break
        cursor = page["cursor"]
    titles = {}
    wanted_ids = {e["task"] for events in agents.values() for e in events if e["task"]}
    if wanted_ids:
        titles = {t["id"]: t["title"] for t in board.list()["tasks"] if t["id"] in wanted_ids}
    for events in agents.values():
        for event in events:
            event["title"] = titles.get(event["task"])
    return {"since": clock.iso(since_ms), "until": clock.iso(now),
            "agents": dict(sorted(agents.items()))}


def standup(args):
    """porcelain/kanban-standup"""
    since = args["--since"] or "24h"
    raw = since.strip()
    if raw.startswith("+"):  # '+1h' is an hour from now everywhere else (SPEC §2), never an hour ago
        clock.parse_duration(raw[1:], "--since")
        raise invalid(f"--since {clock._shown(raw)} is a time from now: standup looks back, so for"
                      f" {raw[1:]} ago say {raw[1:]}")
    now = clock.now_ms()
    try:
        since_ms = now - clock.parse_duration(since, "--since")
    except KanbanError:
        if not any(ch in raw for ch in "-:T"):  # not a time either: the duration's own error
            raise
        # a time, as git log --since takes one: 2026-12-01, 2026-12-01T09:00Z (UTC unless it says)
        since_ms = clock._parse_absolute(raw, "--since", "a duration back (24h, 7d) or an ISO-8601 time")
        if since_ms > now:
            raise invalid(f"--since {clock._shown(raw)} is after now ({clock.iso(now)}): standup looks back") from None
    fmt = args["--format"] or "table"
    if fmt not in ("table", "json"):
        raise invalid(f"bad --format {fmt!r}: table or json")
    with Board() as board:
        doc = standup_document(board, since_ms)
    if fmt == "json":
        from .cli import emit

        emit(doc)
    else:
        from .render import standup_text, tty_columns

        sys.stdout.write(standup_text(doc, tty_columns()))
    return 0
