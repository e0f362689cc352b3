"""How work flows, computed from the event log: the series behind the flow charts.

`stats --chart` and the web board (`serve`) draw from the same functions here.  The
input is Board.flow_history(): the tasks and every state-change event in commit
order.  Replaying the events gives each task's status over time; the series are that
replay sampled at even steps (cumulative flow, burndown), counted per day
(throughput), or the finished tasks' times (cycle and lead time).  Goals are left
out: they are containers, not work.
"""
import json

from . import clock

# the events that move a task between statuses
STATE_EVENTS = ("created", "claimed", "lease_expired", "released", "submitted_for_review", "completed",
                "approved", "rejected", "blocked", "unblocked", "cancelled", "reopened", "failed",
                "status_changed")
# the statuses in the order a cumulative flow diagram stacks them (done at the bottom)
CFD_ORDER = ("done", "in_review", "in_progress", "blocked", "todo")
CLOSED = ("done", "cancelled", "failed")
DAY_MS = 86_400_000
# sampling steps, smallest first: the first that fits the span in MAX_POINTS is used
STEPS_MS = (60_000, 300_000, 900_000, 3_600_000, 3 * 3_600_000, 6 * 3_600_000, 12 * 3_600_000, DAY_MS,
            7 * DAY_MS, 30 * DAY_MS)
MAX_POINTS = 60


def _data(event):
    raw = event.get("data")
    if isinstance(raw, dict):
        return raw
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}


def transition(event):
    """The status an event moves its task to, or None when it moves nothing."""
    kind = event["kind"]
    if kind == "created":
        return "todo"
    if kind in ("claimed", "lease_expired", "released"):
        if _data(event).get("review"):  # a review claim comes and goes; the task stays in review
            return None
        return "in_progress" if kind == "claimed" else "todo"
    if kind == "status_changed":
        return _data(event).get("to")
    return {"submitted_for_review": "in_review", "completed": "done", "approved": "done", "rejected": "todo",
            "blocked": "blocked", "unblocked": "todo", "cancelled": "cancelled", "reopened": "todo",
            "failed": "failed"}.get(kind)


def moves(history):
    """[(at, task_id, status)] for every status change of a task (not a goal), oldest first."""
    tasks = {t["id"] for t in history["tasks"] if t["kind"] == "task"}
    out, last = [], {}
    for event in history["events"]:
        task_id = event["task_id"]
        if task_id not in tasks:
            continue
        status = transition(event)
        if status is None or last.get(task_id) == status:
            continue
        last[task_id] = status
        out.append((event["at"], task_id, status))
    out.sort(key=lambda move: move[0])  # event ids are in commit order; times may tie or step back
    return out


def since_ms(text, now, what="--since"):
    """--since: a duration back from now ('7d') or a time (ISO-8601, epoch seconds, or
    '+10m': from now, as every time kanban reads, SPEC §2); `what` names it in an error
    (the web page's field is `since`).  A chart covers what already happened: a start
    after `now` is invalid, saying how to ask for a span back."""
    if text is None:
        return None
    from .errors import KanbanError, invalid

    raw = str(text).strip()
    # what a bad value is told to use: what --since takes (a '+10m' is after now: refused below)
    forms = "a duration back (7d, 2h, 15m), ISO-8601 or epoch seconds"
    if raw.startswith("+"):  # '+1h' is an hour from now, never an hour ago
        start = now + clock.parse_duration(raw[1:], what)
    else:
        try:
            float(raw)
        except ValueError:
            try:
                start = now - clock.parse_duration(raw, what)
            except KanbanError:
                start = clock._parse_absolute(raw, what, forms)
        else:  # a bare number is the time in epoch seconds (a duration back says its unit: 7d)
            start = clock._parse_absolute(raw, what, forms)
    if start > now:
        if raw.startswith("+"):
            raise invalid(f"{what} {clock._shown(raw)} is {clock.iso(start)}, {raw[1:]} from now: a chart starts"
                          f" in the past, so for {raw[1:]} ago say {raw[1:]}")
        raise invalid(f"{what} {clock._shown(raw)} is after now ({clock.iso(now)}): a chart starts in the past")
    return start


def _step(span):
    for step in STEPS_MS:
        if span / step <= MAX_POINTS - 2:  # the steps, and the start and the end
            return step
    return STEPS_MS[-1]


def _grid(start, end):
    """Sample times from start to end: `start` itself, even steps aligned to the step,
    then `end` itself.  The start is a sample too: without it a board whose events all
    fell in the last step had one sample, a chart with the same time at both ends."""
    step = _step(max(end - start, 1))
    first = (start // step + 1) * step
    points = list(range(first, end, step)) if first < end else []
    return ([start] if start < end else []) + points + [end], step


def _start(history, since):
    if since is not None:
        return since
    times = [t["created_at"] for t in history["tasks"] if t["kind"] == "task"]
    return min(times) if times else history["now"]


def _sample(history, since, statuses_of):
    """Replay the moves; at each sample time call statuses_of(status of every task)."""
    now = history["now"]
    start = _start(history, since)
    grid, step = _grid(start, now)
    all_moves = moves(history)
    status, index, rows = {}, 0, []
    for at in grid:
        while index < len(all_moves) and all_moves[index][0] <= at:
            _, task_id, to = all_moves[index]
            status[task_id] = to
            index += 1
        rows.append(statuses_of(status))
    return [clock.iso(at) for at in grid], rows, step


def cfd(history, since=None):
    """Cumulative flow: at each sample time, how many tasks are in each status."""
    def count(status):
        tally = dict.fromkeys(("todo", "in_progress", "in_review", "blocked", "done", "failed", "cancelled"), 0)
        for value in status.values():
            tally[value] = tally.get(value, 0) + 1
        return tally
    times, rows, step = _sample(history, since, count)
    series = {name: [row[name] for row in rows] for name in CFD_ORDER + ("failed", "cancelled")}
    return {"chart": "cfd", "t": times, "step_s": step // 1000, "series": series}


def burndown(history, goal=None, since=None):
    """Per goal: at each sample time, its tasks not yet done or cancelled (and the total)."""
    goal_of = {t["id"]: t["goal_id"] for t in history["tasks"] if t["kind"] == "task"}
    goals = {t["id"]: t["title"] for t in history["tasks"] if t["kind"] == "goal"}
    wanted = sorted({g for g in goal_of.values() if g is not None} if goal is None else {goal})

    def remaining(status):
        row = {}
        for goal_id in wanted:
            mine = [s for task_id, s in status.items() if goal_of.get(task_id) == goal_id]
            row[goal_id] = (sum(s not in ("done", "cancelled") for s in mine), len(mine))
        return row
    times, rows, step = _sample(history, since, remaining)
    out = []
    for goal_id in wanted:
        out.append({"goal": f"TASK-{goal_id}", "title": goals.get(goal_id),
                    "remaining": [row[goal_id][0] for row in rows], "total": [row[goal_id][1] for row in rows]})
    return {"chart": "burndown", "t": times, "step_s": step // 1000, "goals": out}


def throughput(history, since=None):
    """Tasks done per UTC day, every day from the first to today (zero days included)."""
    now = history["now"]
    done_days = {}
    for at, _task, status in moves(history):
        if status == "done":
            done_days[at // DAY_MS] = done_days.get(at // DAY_MS, 0) + 1
    first = (since if since is not None else _start(history, None)) // DAY_MS
    days = list(range(min(first, now // DAY_MS), now // DAY_MS + 1))[-366:]
    return {"chart": "throughput", "days": [clock.iso(d * DAY_MS)[:10] for d in days],
            "done": [done_days.get(d, 0) for d in days]}


# edges of the time-distribution bins, in seconds: a 1-2-5 ladder from a minute to a month
BIN_EDGES = (0, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 18000, 36000, 86400, 172800, 432000, 864000,
             2592000)


def _label(seconds):
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def times(history, since=None):
    """Cycle (first claim to done) and lead (creation to done) times: a histogram each."""
    cycle, lead = [], []
    for task in history["tasks"]:
        if task["kind"] != "task" or task["status"] != "done" or task["finished_at"] is None:
            continue
        if since is not None and task["finished_at"] < since:
            continue
        # a task finished by a clock behind the one that created or claimed it took no time
        lead.append(max(0, task["finished_at"] - task["created_at"]) / 1000)
        if task["started_at"] is not None:
            cycle.append(max(0, task["finished_at"] - task["started_at"]) / 1000)

    def histogram(values):
        counts = [0] * len(BIN_EDGES)
        for value in values:
            index = max(i for i, edge in enumerate(BIN_EDGES) if value >= edge)
            counts[index] += 1
        return counts
    labels = [f"<{_label(BIN_EDGES[i + 1])}" for i in range(len(BIN_EDGES) - 1)] + [f">={_label(BIN_EDGES[-1])}"]
    return {"chart": "times", "bins": labels, "bin_edges_s": list(BIN_EDGES), "cycle": histogram(cycle),
            "lead": histogram(lead), "sample": len(lead)}


def _in_scope(limit, task, status, holder, reviewer):
    """Does a limit hold this task now (in its status, of its role and project, held by its agent)?"""
    if status != limit["status"]:
        return False
    if limit["role"] is not None and task["role_boundary"] != limit["role"]:
        return False
    if limit["project"] is not None and task["project"] != limit["project"]:
        return False
    if limit["agent"] is not None:
        who = holder if status == "in_progress" else reviewer
        return who.get(task["id"]) == limit["agent"]
    return True


def time_full(history):
    """Per WIP limit: seconds it has been full (count >= max) since it was set, at its current max."""
    info = {t["id"]: t for t in history["tasks"] if t["kind"] == "task"}
    now = history["now"]
    out = []
    for limit in history["limits"]:
        held, holder, reviewer = set(), {}, {}
        full_ms, full_since = 0, None

        status = {}
        for event in history["events"]:
            task_id = event["task_id"]
            if task_id not in info:
                continue
            if event["kind"] == "claimed":
                (reviewer if _data(event).get("review") else holder)[task_id] = event["actor"]
            elif event["kind"] in ("approved", "rejected") or (
                    event["kind"] in ("released", "lease_expired") and _data(event).get("review")):
                reviewer.pop(task_id, None)
            moved = transition(event)
            if moved is not None:
                status[task_id] = moved
            if _in_scope(limit, info[task_id], status.get(task_id), holder, reviewer):
                held.add(task_id)
            else:
                held.discard(task_id)
            at = max(event["at"], limit["since"])
            full = len(held) >= limit["max"]
            if full and full_since is None:
                full_since = at
            elif not full and full_since is not None:
                full_ms += max(0, at - full_since)
                full_since = None
        if full_since is not None:
            full_ms += max(0, now - max(full_since, limit["since"]))
        out.append(round(full_ms / 1000, 3))
    return out


def chart(history, name, goal=None, since=None):
    """One chart's series by name: cfd, burndown, throughput or times."""
    if name == "cfd":
        return cfd(history, since)
    if name == "burndown":
        return burndown(history, goal, since)
    if name == "throughput":
        return throughput(history, since)
    if name == "times":
        return times(history, since)
    from .errors import invalid

    raise invalid(f"bad chart {name!r}: cfd, burndown, throughput or times")
