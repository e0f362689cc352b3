"""`kanban board`: the board for people.

One read (Board.list with details, which adds waiting_on, reason and goal progress
in set-based queries), then text: the goals with their progress, and a section per
status saying who holds what until when, what each todo task waits on, why blocked
tasks are blocked, and which leases have run out (the next claim or `kanban lease
reap` hands those tasks back).
"""
import sys

from . import clock
from .board import STATUSES, Board
from .errors import invalid

TITLE_WIDTH = 44
NOTE_WIDTH = 72
CLOSED_SHOWN = 10  # done, failed and cancelled tasks shown per section without --all
BAR_WIDTH = 10


def _short(text, width):
    text = " ".join(("" if text is None else str(text)).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _ms(stamp):
    return None if stamp is None else clock.parse_time(stamp)


def _span(ms):
    """A rough length of time for people: 45s, 12m, 3h, 2d."""
    seconds = abs(ms) // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _clock(stamp, now):
    """'2026-01-02T03:04:05.678Z' -> '03:04:05Z', with the date when it is not today's."""
    day = "" if stamp[:10] == clock.iso(now)[:10] else stamp[:10] + " "
    return day + stamp[11:19] + "Z"


def _until(stamp, now):
    """When a lease ends, relative to now; expired leases are flagged."""
    left = _ms(stamp) - now
    if left <= 0:
        return f"LEASE EXPIRED at {_clock(stamp, now)} ({_span(left)} ago)"
    return f"until {_clock(stamp, now)} ({_span(left)} left)"


def _waiting(task):
    parts = []
    for why in task.get("waiting_on") or []:
        if why["kind"] == "dep":
            flag = "!" if why["status"] in ("failed", "cancelled") else ""
            parts.append(f"{why['task']} ({why['status']}{flag})")
        elif why["kind"] == "schedule":
            parts.append(f"not before {why['until']}")
    return parts


def _row(task, now):
    """(who, note) for a task, by its status."""
    status = task["status"]
    who, notes = "", []
    if status == "todo":
        who = task["assignee"] or (f"role:{task['role_boundary']}" if task["role_boundary"] else "")
        waits = _waiting(task)
        deps = [w for w in waits if not w.startswith("not before")]
        if deps:
            notes.append("waits on " + ", ".join(deps))
        notes += [w for w in waits if w.startswith("not before")]
        if task["ready"]:
            notes.append("ready")
        if task.get("reason"):
            notes.append(f"last: {task['reason']}")
        if task["attempts"]:
            notes.append(f"{task['attempts']} attempt(s)")
    elif status in ("in_progress", "in_review"):
        who = task["claimed_by"] or ""
        if task["lease_until"]:
            notes.append(("reviewing " if status == "in_review" else "") + _until(task["lease_until"], now))
        elif status == "in_review":
            notes.append("waiting for a reviewer")
        if status == "in_progress" and task["attempts"]:
            notes.append(f"attempt {task['attempts'] + 1}")
    elif status == "blocked":
        notes.append(f"reason: {task.get('reason') or '(none given)'}")
    else:
        notes.append(f"{status} {_span(now - _ms(task['updated_at']))} ago")
        if status != "done" and task.get("reason"):
            notes.append(task["reason"])
    return who, "; ".join(notes)


def _goal_lines(goals):
    lines = []
    for goal in goals:
        p = goal.get("progress") or {"total": 0, "done": 0, "cancelled": 0}
        total, done, cancelled = p["total"], p["done"], p["cancelled"]
        filled = round(BAR_WIDTH * (done + cancelled) / total) if total else 0
        bar = "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]"
        text = f"{done}/{total} done" + (f", {cancelled} cancelled" if cancelled else "")
        lines.append([goal["id"], _short(goal["title"], TITLE_WIDTH), bar, text, goal["status"]])
    return lines


def _table(rows, headers=None):
    from tabulate import tabulate

    text = tabulate(rows, headers=headers or (), tablefmt="plain", disable_numparse=True)
    return "\n".join("  " + line.rstrip() for line in text.splitlines())


def render(tasks, *, now, db=None, show_all=False, title=None):
    """The board as text, from Board.list(details=True)['tasks']."""
    goals = [t for t in tasks if t["kind"] == "goal"]
    work = [t for t in tasks if t["kind"] == "task"]
    by_status = {status: [t for t in work if t["status"] == status] for status in STATUSES}
    ready = sum(1 for t in work if t["ready"])
    expired = sum(1 for t in work if t["lease_until"] and _ms(t["lease_until"]) <= now)

    out = [f"{title or 'kanban board'}" + (f"  {db}" if db else "") + f"  at {clock.iso(now)}"]
    counts = ", ".join(f"{len(by_status[s])} {s.replace('_', ' ')}" for s in STATUSES if by_status[s])
    summary = f"{len(work)} task(s), {len(goals)} goal(s)" + (f": {counts}" if counts else "")
    summary += f"; {ready} ready"
    if expired:
        summary += f"; {expired} LEASE(S) EXPIRED"
    out.append(summary)

    if goals:
        out += ["", f"GOALS ({len(goals)})", _table(_goal_lines(goals))]
    for status in STATUSES:
        section = by_status[status]
        out += ["", f"{status.upper().replace('_', ' ')} ({len(section)})"]
        if not section:
            out.append("  (none)")
            continue
        hidden = 0
        if status in ("done", "failed", "cancelled"):
            section = sorted(section, key=lambda t: t["updated_at"], reverse=True)
            if not show_all and len(section) > CLOSED_SHOWN:
                hidden = len(section) - CLOSED_SHOWN
                section = section[:CLOSED_SHOWN]
        rows = []
        for task in section:
            who, note = _row(task, now)
            rows.append([task["id"], f"p{task['priority']}", _short(task["title"], TITLE_WIDTH),
                         f"goal {task['goal']}" if task["goal"] else "", who, _short(note, NOTE_WIDTH)])
        out.append(_table(rows))
        if hidden:
            out.append(f"  … and {hidden} more (kanban board --all)")
    return "\n".join(out) + "\n"


def board(args):
    """porcelain/kanban-board"""
    with Board() as b:
        goal = args["--goal"]
        title = None
        if goal is not None:
            head = b.show(goal, events=0)
            if head["kind"] != "goal":
                raise invalid(f"{head['id']} is not a goal", task=head["id"])
            tasks = [head] + b.list(goal=goal, project=args["--project"], details=True)["tasks"]
            title = f"goal {head['id']}: {_short(head['title'], TITLE_WIDTH)}"
        else:
            tasks = b.list(project=args["--project"], details=True)["tasks"]
            if args["--project"]:
                title = f"project {args['--project']}"
        db = b.path
    sys.stdout.write(render(tasks, now=clock.now_ms(), db=db, show_all=bool(args["--all"]), title=title))
    return 0
