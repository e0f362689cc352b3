"""`kanban board`: the board for people.

One read (Board.list with details, which adds waiting_on, reason and goal progress
in set-based queries, and who did the work of each task in review) becomes the
board document — what `--format json` prints, described by
schemas/kanban-board.schema.json, times in UTC.  render.py turns that document into
text for a terminal (colour, width, local times) or Markdown; `--watch` redraws it
in place, and a board taller than the terminal goes through the pager, as git's
output does.
"""
import os
import shutil
import sys
import time

from . import clock, render
from .board import STATUSES, Board
from .errors import KanbanError, invalid

FORMATS = ("table", "markdown", "json")
COLORS = ("auto", "always", "never")
DEFAULT_WATCH = "2s"
PIPE_COLUMNS = 120  # piped text is cut to this width unless COLUMNS says otherwise


def prepare(argv):
    """`--watch` alone means every 2s and `--color` alone means always, as in git; the board
    takes no operands, so a word after either (`--watch 5s`, `--color never`) is its value."""
    out, rest = [], list(argv)
    while rest:
        word = rest.pop(0)
        if word in ("--watch", "--color"):
            value = rest.pop(0) if rest and not rest[0].startswith("-") else \
                DEFAULT_WATCH if word == "--watch" else "always"
            word = f"{word}={value}"
        out.append(word)
    return out


def _entry(task, now, worked_by):
    lease = task["lease_until"]
    return {
        "id": task["id"], "title": task["title"], "priority": task["priority"], "project": task["project"],
        "goal": task["goal"], "assignee": task["assignee"], "role": task["role_boundary"],
        "holder": task["claimed_by"], "lease_until": lease,
        "lease_expired": bool(lease) and clock.parse_time(lease) <= now,
        "reason": task.get("reason"), "waits_on": task.get("waiting_on") or [], "ready": task["ready"],
        "attempts": task["attempts"], "review": task["review"], "worked_by": worked_by.get(task["id"], []),
        "updated_at": task["updated_at"],
    }


def document(b, *, project=None, goal=None):
    """The board document: goals with progress, and a column per status."""
    now = clock.now_ms()
    if goal is not None:
        head = b.show(goal, events=0)
        if head["kind"] != "goal":
            raise invalid(f"{head['id']} is not a goal", task=head["id"])
        tasks = [head] + b.list(goal=goal, project=project, details=True)["tasks"]
    else:
        tasks = b.list(project=project, details=True)["tasks"]
    if project is not None and not tasks:
        known = b.projects()
        if project not in known:
            from .diagnose import nearest

            near = nearest(project, known)
            raise KanbanError("not_found", f"no project {project!r} on this board"
                              + (f" (did you mean {near!r}?)" if near else ""), project=project,
                              hint=f"did you mean {near!r}?" if near else None)
    goals = [t for t in tasks if t["kind"] == "goal"]
    work = [t for t in tasks if t["kind"] == "task"]
    worked_by = b.holders_of([t["id"] for t in work if t["status"] == "in_review"])
    limits = b.column_limits()  # WIP limits on whole columns: IN PROGRESS 3/3
    columns = []
    for status in STATUSES:
        section = [t for t in work if t["status"] == status]
        if status in ("done", "failed", "cancelled"):  # the latest first
            section.sort(key=lambda t: t["updated_at"], reverse=True)
        columns.append({"status": status, "count": len(section), "limit": limits.get(status),
                        "tasks": [_entry(t, now, worked_by) for t in section]})
    return {
        "board": b.display(),  # never a server URL's password: the header is pasted into issues
        "at": clock.iso(now),
        "filter": {"project": project, "goal": goal},
        "counts": {c["status"]: c["count"] for c in columns},
        "ready": sum(1 for t in work if t["ready"]),
        "expired_leases": sum(1 for c in columns for t in c["tasks"] if t["lease_expired"]),
        "goals": [{"id": g["id"], "title": g["title"], "status": g["status"], "project": g["project"],
                   "progress": g.get("progress") or {"total": 0, "done": 0, "cancelled": 0}} for g in goals],
        "columns": columns,
    }


def terminal_columns(stream):
    """The terminal's width; piped, COLUMNS when set, else PIPE_COLUMNS."""
    if stream.isatty() or os.environ.get("COLUMNS"):
        return shutil.get_terminal_size((80, 24)).columns
    return PIPE_COLUMNS


def _text(doc, fmt, *, columns, color, show_all):
    if fmt == "markdown":
        return render.board_markdown(doc, show_all=show_all)
    return "\n".join(render.board_lines(doc, columns=columns, color=color, show_all=show_all)) + "\n"


def _runnable(command):
    """Whether the pager command's program is there: the shell runs it, and a missing
    one only says 'not found' on stderr, the board lost."""
    import shlex

    try:
        words = shlex.split(command)
    except ValueError:
        return True  # shell syntax of its own: the shell's business
    program = next((w for w in words if "=" not in w), None)  # past VAR=value
    return program is None or shutil.which(program) is not None


def _page(text, stream):
    """Through the pager when the text is taller than the terminal (KANBAN_PAGER, PAGER,
    else `less` with LESS=FRX, as git does); straight out otherwise."""
    rows = shutil.get_terminal_size((80, 24)).lines
    command = os.environ.get("KANBAN_PAGER", os.environ.get("PAGER", "less"))
    if text.count("\n") < rows or not command.strip() or command.strip() == "cat" or not _runnable(command):
        stream.write(text)  # no pager (less is not installed, or PAGER names nothing): straight out
        return
    import subprocess

    env = dict(os.environ)
    env.setdefault("LESS", "FRX")
    env.setdefault("LV", "-c")
    stream.flush()
    try:
        pager = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, env=env)
    except OSError:
        stream.write(text)
        return
    try:
        pager.stdin.write(text.encode("utf-8", "replace"))
        pager.stdin.close()
    except BrokenPipeError:
        pass  # the reader quit early (q in less)
    while True:
        try:
            pager.wait()
            break
        except KeyboardInterrupt:
            continue  # Ctrl-C belongs to the pager


def _watch(read, fmt, interval, *, color, show_all, stream):
    """Redraw the board in place every `interval` seconds until Ctrl-C; where the terminal
    cannot move its cursor (TERM=dumb: an Emacs shell buffer), or piped, one board after
    another instead."""
    tty = stream.isatty() and os.environ.get("TERM") != "dumb"
    if tty:
        stream.write("\x1b[?25l\x1b[2J")  # hide the cursor, clear once
    try:
        while True:
            size = shutil.get_terminal_size((80, 24))
            text = _text(read(), fmt, columns=terminal_columns(stream), color=color, show_all=show_all)
            if tty:
                lines = text.rstrip("\n").split("\n")[: max(size.lines - 1, 1)]
                stream.write("\x1b[H" + "".join(line + "\x1b[K\n" for line in lines) + "\x1b[J")
            else:
                stream.write(text + "\n")
            stream.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        if tty:
            stream.write("\x1b[?25h")
            stream.flush()
    return 0


def board(args):
    """porcelain/kanban-board"""
    fmt = args.get("--format") or "table"
    if fmt not in FORMATS:
        raise invalid(f"bad --format {fmt!r}: one of {', '.join(FORMATS)}")
    when = args.get("--color") or "auto"
    if when not in COLORS:
        raise invalid(f"bad --color {when!r}: one of {', '.join(COLORS)}")
    interval = None
    if args.get("--watch"):
        interval = clock.parse_duration(args["--watch"], "--watch") / 1000
        if interval <= 0:
            raise invalid("--watch needs a positive interval, e.g. --watch=2s")
    stream = sys.stdout
    color = fmt == "table" and render.use_color(when, stream)
    show_all = bool(args["--all"])
    with Board() as b:
        def read():
            return document(b, project=args["--project"], goal=args["--goal"])

        doc = read()
        if fmt == "json":
            from .cli import emit

            if interval is None:
                emit(doc)
                return 0
        if interval is not None:
            if fmt == "json":
                return _watch_json(read, interval, stream)
            return _watch(read, fmt, interval, color=color, show_all=show_all, stream=stream)
    columns = terminal_columns(stream)
    text = _text(doc, fmt, columns=columns, color=color, show_all=show_all)
    if stream.isatty() and not args.get("--no-pager"):
        _page(text, stream)
    else:
        stream.write(text)
    return 0


def _watch_json(read, interval, stream):
    """--format json --watch: one document a line (JSON Lines) until Ctrl-C."""
    from .jsontext import dumps

    try:
        while True:
            stream.write(dumps(read(), compact=True) + "\n")
            stream.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0
