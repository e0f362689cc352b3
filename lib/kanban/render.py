"""Tables and text for people (--format table, and the board).  tabulate is
imported here only, so machine paths never pay for it."""
import json


def _tabulate(rows, headers):
    from tabulate import tabulate

    # every cell as a terminal may show it: control characters escaped (see visible)
    rows = [[visible(c) if isinstance(c, str) else c for c in row] for row in rows]
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def _short(text, columns=48):
    return fit(one_line(text), columns)


def _when(stamp):
    """A table's time: UTC to the minute, marked Z ('2026-01-01 00:15Z'); without the Z it
    read as local time where TZ is not UTC (the board for people shows local time)."""
    return "" if not stamp else stamp.replace("T", " ").rstrip("Z")[:16] + "Z"


def _scope(limit):
    """A WIP limit's scope for people: 'project web, agent w1', or 'whole column'."""
    parts = [f"{key} {limit[key]}" for key in ("role", "project", "agent") if limit[key]]
    return ", ".join(parts) or "whole column"


def _sections(doc, show_all):
    """(column, status, tasks shown) for every column with tasks: closed columns capped at
    CLOSED_CAP, open ones at SECTION_CAP, unless show_all (the text and markdown boards alike)."""
    for column in doc["columns"]:
        if column["count"]:
            status = column["status"]
            cap = CLOSED_CAP if status in ("done", "failed", "cancelled") else SECTION_CAP
            yield column, status, column["tasks"] if show_all else column["tasks"][:cap]


def seconds_text(value):
    """A count of seconds for people: 45s, 12m, 3h05m (the terminal and the web board alike)."""
    value = int(value)
    if value < 120:
        return f"{value}s"
    if value < 7200:
        return f"{value // 60}m"
    return f"{value // 3600}h{(value % 3600) // 60:02d}m"


def _widest(text):
    return max(width(line) for line in text.split("\n"))


def _fitted(make, cap, columns, floor=8):
    """make(cap): a table whose one free-text column is cut to cap display columns.  On a
    terminal `columns` wide, that column is narrowed (not below floor) where that makes the
    table's lines fit, as the board's do; else (the other columns are too wide for it
    anyway), and piped (columns None), as made."""
    text = make(cap)
    over = _widest(text) - columns if columns is not None else 0
    if over > 0 and cap - over >= floor:
        narrow = make(cap - over)
        if _widest(narrow) <= columns:
            return narrow
    return text


def tasks(tasks_, empty="no tasks", columns=None):
    if not tasks_:  # a sentence, not a table of headers alone
        return empty

    def make(cap):
        rows = [[t["id"], t["status"], t["priority"], _short(t["title"], cap), t["project"] or "",
                 t["claimed_by"] or t["assignee"] or "", _when(t["lease_until"]),
                 ",".join(t["depends_on"]), "yes" if t["ready"] else ""] for t in tasks_]
        return _tabulate(rows, ["id", "status", "pri", "title", "project", "who", "lease until", "deps", "ready"])
    return _fitted(make, min(48, max(width(_short(t["title"])) for t in tasks_)), columns)


def table(kind, document, empty=None, columns=None):
    """The document as a table for people; empty, if given, is what an empty list says;
    columns, the terminal's width where the free text (a title, a value) is cut to fit."""
    if kind == "tasks":
        return tasks(document["tasks"], empty or "no tasks", columns)
    if kind == "events":
        if not document["events"]:
            return f"{empty or 'no events'}\ncursor: {document['cursor']}"
        data = [_short(json.dumps(e["data"], ensure_ascii=False), 60) for e in document["events"]]
        return _fitted(lambda cap: _tabulate(
            [[e["id"], _when(e["at"]), e["task"] or "", e["kind"], e["actor"] or "", fit(d, cap)]
             for e, d in zip(document["events"], data, strict=True)], ["id", "at", "task", "kind", "actor", "data"]),
            max(width(d) for d in data), columns) + f"\ncursor: {document['cursor']}"
    if kind == "deps":
        return _tabulate([[document["task"], ",".join(document["depends_on"]) or "-",
                           ",".join(document["dependents"]) or "-"]], ["task", "depends on", "dependents"])
    if kind == "show":
        fields = [(k, v) for k, v in document.items()
                  if k not in ("comments", "runs", "events", "waiting_on", "claimable_by")]
        values = [_short(json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v, 90)
                  for _, v in fields]
        text = _fitted(lambda cap: _tabulate([[k, fit(v, cap)] for (k, _), v in zip(fields, values, strict=True)],
                                             ["field", "value"]), max(map(width, values)), columns, floor=20)
        more = []
        waiting = document["waiting_on"]
        if waiting:
            more += ["", "waiting on:"] + ["  " + ", ".join(f"{k}={one_line(v)}" for k, v in w.items())
                                           for w in waiting]
        if document["comments"]:
            more += ["", "comments:"] + [f"  {_when(c['at'])} {one_line(c['actor'])}: {one_line(c['body'])}"
                                         for c in document["comments"]]
        if document["events"]:
            more += ["", "events:"] + [f"  {_when(e['at'])} {e['kind']:<22} {one_line(e['actor'])}"
                                       for e in document["events"]]
        return "\n".join([text] + [line if columns is None else fit(line, columns) for line in more])
    if kind == "stats":
        rows = [[status, count] for status, count in document["counts"].items()]
        text = _tabulate(rows, ["status", "tasks"])
        text += f"\n\nready: {document['ready']}   expired leases: {document['expired_leases']}"
        text += "\ndone in the last " + ", ".join(f"{k}: {v}" for k, v in document["done_in"].items())
        ct = document["cycle_time_s"]
        text += "\ncycle time (s): " + "  ".join(f"{p} {'-' if ct[p] is None else ct[p]}"
                                                 for p in ("p50", "p90", "p99"))
        if document.get("limits"):
            rows = [[limit["status"], _scope(limit), f"{limit['count']}/{limit['max']}",
                     "yes" if limit["full"] else "", seconds_text(limit["full_s"])] for limit in document["limits"]]
            text += "\n\n" + _tabulate(rows, ["WIP limit", "scope", "wip", "full now", "time full"])
        return text
    if kind == "limits":
        if not document["limits"]:
            return empty or "no WIP limits"
        rows = [[limit["status"], limit["role"] or "", limit["project"] or "", limit["agent"] or "",
                 f"{limit['count']}/{limit['max']}", "yes" if limit["full"] else ""] for limit in document["limits"]]
        return _tabulate(rows, ["status", "role", "project", "agent", "wip", "full now"])
    if kind == "doctor":
        lines = [f"ok: {document['ok']}", f"integrity: {', '.join(document['integrity'])}",
                 f"sqlite: {document['sqlite_version']} ({document['driver']})",
                 f"schema: {document['schema_version']}", f"journal: {document['journal_mode']}",
                 f"wal: {document['wal']['bytes']} bytes"]
        lines += [f"{f['level']}: {one_line(f['message'])}" for f in document["findings"]]
        return "\n".join(lines)
    return json.dumps(document, indent=2, ensure_ascii=False)


# -- the verbs, for `kanban --help` and `kanban commands --format table` -------------------

COMMAND_GROUPS = (("plumbing", "Plumbing: one JSON document on stdout, one transaction"),
                  ("porcelain", "Porcelain: for people and loops"))


def command_overview(usage_line, commands, aliases, columns=None):
    """git's `git help`: the verbs grouped, each with its summary; on a terminal `columns`
    wide, a summary too long for it goes on under itself, as git's option help does."""
    import textwrap

    name_w = max([len(c["name"]) for c in commands] + [len(a) for a in aliases] + [8]) + 3
    room = max(20, (columns or 0) - 3 - name_w)

    def entry(name, summary):
        wrap = columns is not None and len(summary) > room
        lines = textwrap.wrap(summary, room, break_on_hyphens=False) if wrap else [summary]
        return [f"   {name:<{name_w}}{lines[0]}"] + [" " * (3 + name_w) + line for line in lines[1:]]
    usage = usage_line.rstrip()
    out = (textwrap.wrap(usage, columns, subsequent_indent=" " * 14, break_on_hyphens=False)
           if columns is not None and len(usage) > columns else [usage]) + [""]
    for kind, heading in COMMAND_GROUPS:
        out.append(heading)
        out += [line for c in commands if c["kind"] == kind for line in entry(c["name"], c["summary"])]
        out.append("")
    out.append("Aliases")
    out += [f"   {name:<{name_w}}{target}" for name, target in sorted(aliases.items())]
    footer = ["'kanban help VERB' opens a verb's manual, 'kanban help workflow' the guide to",
              "a sprint, 'kanban commands' lists the verbs as JSON."]
    if columns is not None and columns < 80:
        footer = textwrap.wrap(" ".join(footer), columns, break_on_hyphens=False)
    out += ["", *footer, ""]
    return "\n".join(out)


def command_table(commands, columns=None):
    return _fitted(lambda cap: _tabulate([[c["name"], c["kind"], fit(c["summary"], cap), ", ".join(c["aliases"])]
                                          for c in commands], ["verb", "kind", "summary", "aliases"]),
                   max(width(c["summary"]) for c in commands), columns)


def tty_columns(stream=None):
    """The width of the terminal `stream` (standard output) is, or None when it is not
    one (piped): what the people's tables, help and charts are fitted to."""
    import shutil
    import sys

    try:
        tty = (stream or sys.stdout).isatty()
    except (AttributeError, ValueError):
        tty = False
    return shutil.get_terminal_size((80, 24)).columns if tty else None


def help_for(text):
    """help_text() for standard output: wrapped to the terminal's width when it is one."""
    return help_text(text, tty_columns())


def help_text(text, columns=None):
    """A verb's usage text and options for a terminal `columns` wide: a line too long for
    it goes on under itself, an option's description under the description, a usage
    line's words under its first argument; columns None (piped): as written."""
    import re
    import textwrap

    if columns is None:
        return text
    out = []
    for line in text.split("\n"):
        if len(line) <= columns:
            out.append(line)
            continue
        # an option's description column, a usage line's first argument, else the line's indent
        head = re.match(r"\s*-\S+(?: \S+)?\s{2,}|\s*kanban \S+ |\s*", line).group(0)
        indent = " " * (len(head) if len(head) < columns // 2 else len(line) - len(line.lstrip()))
        out += textwrap.wrap(line, columns, subsequent_indent=indent, break_on_hyphens=False,
                             break_long_words=False) or [line]
    return "\n".join(out)


# -- text on a terminal: escaping, display width, colour ---------------------------------

# bidirectional overrides and isolates reorder what follows them on screen
_BIDI = frozenset([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def visible(text):
    """Text safe to show on a terminal: control characters (ESC, the BEL ending an OSC 52
    clipboard write, C1 controls, DEL) and bidi overrides are shown escaped (`\\x1b`,
    `\\u202e`) instead of acting on the terminal.  JSON output keeps the exact text."""
    text = "" if text is None else str(text)
    if text.isascii() and text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if code < 0x20 or 0x7F <= code < 0xA0:
            out.append(_NAMED.get(ch) or f"\\x{code:02x}")
        elif code in _BIDI:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def terminal_text(text):
    """Several lines for a terminal: each one as visible() shows it, the line breaks kept."""
    return "\n".join(visible(line) for line in str(text).split("\n"))


def one_line(text):
    """A table cell: runs of whitespace (newlines too) become one space, then visible()."""
    return visible(" ".join(("" if text is None else str(text)).split()))


def width(text):
    """Columns `text` takes on a terminal (wide characters and emoji count two)."""
    if text.isascii():
        return len(text)
    try:
        from wcwidth import wcswidth, wcwidth
    except ImportError:  # without wcwidth: East Asian wide and fullwidth characters count two
        import unicodedata

        return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
                   for c in text)
    found = wcswidth(text)
    return found if found >= 0 else sum(max(wcwidth(c), 0) for c in text)


def fit(text, columns):
    """`text` cut to `columns` display columns, ending in … when cut."""
    if columns <= 0:
        return ""
    if width(text) <= columns:
        return text
    out, used = [], 0
    for ch in text:
        w = width(ch)
        if used + w > columns - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def pad(text, columns):
    """`text` cut or padded with spaces to exactly `columns` display columns."""
    text = fit(text, columns)
    return text + " " * (columns - width(text))


def use_color(when, stream):
    """git's --color=WHEN: always, never, or auto (a terminal, NO_COLOR unset, TERM not dumb)."""
    import os

    if when == "always":
        return True
    if when == "never":
        return False
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


STATUS_SGR = {"todo": "36", "in_progress": "33", "in_review": "35", "blocked": "31", "done": "32",
              "failed": "1;31", "cancelled": "2"}
ALERT_SGR = "1;31"
DIM_SGR = "2"


def _join(segments, color):
    """[(text, sgr or None)] -> one line, with colour codes when color is on."""
    if not color:
        return "".join(text for text, _ in segments)
    return "".join(f"\x1b[{sgr}m{text}\x1b[0m" if sgr and text else text for text, sgr in segments)


def _fit_segments(segments, columns):
    """Cut a line of segments to `columns` display columns."""
    out, used = [], 0
    for text, sgr in segments:
        room = columns - used
        if room <= 0:
            break
        if width(text) > room:
            out.append((fit(text, room), sgr))
            break
        out.append((text, sgr))
        used += width(text)
    return out


# -- the board ------------------------------------------------------------------------------

SECTION_CAP = 20     # tasks shown per open section without --all
CLOSED_CAP = 10      # done, failed and cancelled tasks shown without --all
BAR_WIDTH = 10
WIDE = 72            # from this many columns on, a task takes one line; narrower, two


def local_time(stamp, now_ms=None, *, seconds=False):
    """An ISO UTC stamp in the local time zone, for people: '14:03', 'Dec 02 14:03', or
    'Jun 01 2031 12:00' in another year."""
    from datetime import datetime

    from . import clock

    try:
        moment = datetime.fromtimestamp(clock.parse_time(stamp) / 1000).astimezone()
        today = datetime.fromtimestamp((now_ms if now_ms is not None else clock.now_ms()) / 1000).astimezone()
    except (OverflowError, ValueError, OSError):
        # the local calendar ends where UTC's does not (9999-12-31T23:00Z is the year 10000
        # east of it): the UTC stamp as it is, not an internal error
        return stamp
    clock_text = moment.strftime("%H:%M:%S" if seconds else "%H:%M")
    if moment.date() == today.date():
        return clock_text
    # another year says which: 'Jun 01 12:00' a year off read as this year's June
    return moment.strftime("%b %d ") + (f"{moment.year:04d} " if moment.year != today.year else "") + clock_text


def span(ms):
    """A rough length of time for people: 45s, 12m, 3h, 2d."""
    seconds = abs(int(ms)) // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _task_cells(task, status, now):
    """(who, [(note, sgr)]) for a task of the board document, by its column."""
    from . import clock

    notes = []
    who = ""
    if status == "todo":
        who = task["assignee"] or (f"role:{task['role']}" if task["role"] else "")
        deps = []
        for why in task["waits_on"]:
            if why["kind"] == "dep":
                deps.append(f"{why['task']} ({why['status']})")
            elif why["kind"] == "schedule":
                notes.append((f"not before {local_time(why['until'], now)}", None))
            elif why.get("kind"):
                notes.append((one_line(why["kind"].replace("_", " ")), None))
        if deps:
            notes.insert(0, ("waits on " + ", ".join(deps), None))
        if task["ready"]:
            notes.append(("ready", None))
        if task["reason"]:
            notes.append((f"last: {one_line(task['reason'])}", None))
        if task["attempts"]:
            notes.append((f"{task['attempts']} attempt(s)", None))
    elif status in ("in_progress", "in_review"):
        who = task["holder"] or ""
        if task["lease_until"]:
            left = clock.parse_time(task["lease_until"]) - now
            doing = "reviewing, " if status == "in_review" else ""
            if left <= 0:
                notes.append((f"{doing}LEASE EXPIRED {span(left)} ago", ALERT_SGR))
            else:
                notes.append((f"{doing}{span(left)} left (until {local_time(task['lease_until'], now)})", None))
        elif status == "in_review":
            notes.append(("waiting for a reviewer", None))
        if status == "in_review" and task["worked_by"]:
            notes.append(("work by " + ", ".join(task["worked_by"]), None))
        if status == "in_progress" and task["attempts"]:
            notes.append((f"attempt {task['attempts'] + 1}", None))
    elif status == "blocked":
        notes.append((f"reason: {one_line(task['reason']) or '(none given)'}", STATUS_SGR["blocked"]))
    else:
        notes.append((f"{span(now - clock.parse_time(task['updated_at']))} ago", None))
        if status != "done" and task["reason"]:
            notes.append((one_line(task["reason"]), None))
    return one_line(who), notes


def _note_text(notes):
    return "; ".join(text for text, _ in notes)


def _note_sgr(notes):
    return next((sgr for _, sgr in notes if sgr), None)


def _more_hint(status, hidden, project):
    where = f" --project {project}" if project else ""
    return f"… and {hidden} more (kanban list --status {status}{where})"


def board_lines(doc, *, columns=80, color=False, show_all=False):
    """The board document (kanban board --format json) as text lines for a terminal of
    `columns` columns: goals with a progress bar, then a section per non-empty status."""
    from . import clock

    now = clock.parse_time(doc["at"])
    columns = max(columns, 20)
    lines = []

    def add(segments):
        lines.append(_join(_fit_segments(segments, columns), color))

    where = doc["filter"]
    title = "kanban board"
    if where.get("goal"):
        named = [g["title"] for g in doc["goals"] if g["id"] == where["goal"]]
        title = f"goal {where['goal']}" + (f": {one_line(named[0])}" if named else "")
    elif where.get("project"):
        title = f"project {where['project']}"
    stamp = local_time(doc["at"], now, seconds=True)
    add([(title, "1"), (f"  {one_line(doc['board'])}  at {stamp}", DIM_SGR)])

    counts = doc["counts"]
    tasks = sum(counts.values())
    goals = doc["goals"]
    if not tasks and not goals:
        add([("", None)])
        if where.get("project") or where.get("goal"):
            add([("Nothing here yet.", None)])
        else:
            add([("The board is empty. Add the first task:", None)])
            add([('  kanban create "Write the parser" --priority 5', "1")])
            add([("or a whole plan:  kanban plan apply plan.yaml   (see: kanban help workflow)", None)])
        return lines
    parts = [(f"{tasks} task{'s' if tasks != 1 else ''}", None)]
    for status, count in counts.items():
        if count:
            parts += [(", ", None), (f"{count} {status.replace('_', ' ')}", STATUS_SGR[status])]
    parts.append((f"; {doc['ready']} ready", None))
    if doc["expired_leases"]:
        parts.append((f"; {doc['expired_leases']} lease(s) EXPIRED", ALERT_SGR))
    add(parts)

    if goals:
        lines.append("")
        add([(f"GOALS ({len(goals)})", "1")])
        id_w = max(width(g["id"]) for g in goals)
        for goal in goals:
            p = goal["progress"]
            finished = p["done"] + p["cancelled"]
            filled = round(BAR_WIDTH * finished / p["total"]) if p["total"] else 0
            count = f"{p['done']}/{p['total']}" + (f" +{p['cancelled']} cancelled" if p["cancelled"] else "")
            sgr = STATUS_SGR.get(goal["status"])
            head = [("  ", None), (pad(goal["id"], id_w), None), ("  ", None)]
            if columns >= 40:
                head += [("█" * filled, STATUS_SGR["done"]), ("░" * (BAR_WIDTH - filled), DIM_SGR), ("  ", None)]
            head += [(count, sgr), ("  ", None)]
            used = sum(width(t) for t, _ in head)
            add(head + [(fit(one_line(goal["title"]), columns - used), None)])

    sections = []
    for column, status, shown in _sections(doc, show_all):
        rows = [(task, *_task_cells(task, status, now)) for task in shown]
        sections.append((status, column["count"], rows))
    layout = _layout([row for _, _, rows in sections for row in rows], columns)
    limits = {column["status"]: column.get("limit") for column in doc["columns"]}
    for status, count, rows in sections:
        lines.append("")
        add([(_column_title(status, count, limits.get(status)), "1;" + STATUS_SGR[status])])
        for row in rows:
            lines += [_join(_fit_segments(s, columns), color) for s in _row_lines(row, status, layout, columns)]
        if count > len(rows):
            add([("  " + _more_hint(status, count - len(rows), where.get("project")), DIM_SGR)])
    return lines


def _layout(rows, columns):
    """Column widths shared by every section, so the board reads as one grid; None when
    the terminal is too narrow for one line a task."""
    if columns < WIDE or not rows:
        return None
    id_w = max(width(t["id"]) for t, _, _ in rows)
    pri_w = max(width(f"p{t['priority']}") for t, _, _ in rows)
    project_w = min(max(width(one_line(t["project"])) for t, _, _ in rows), 14)
    who_w = min(max(width(w) for _, w, _ in rows), 16)
    note_max = max(width(_note_text(n)) for _, _, n in rows)
    title_max = max(width(one_line(t["title"])) for t, _, _ in rows)
    fixed = 2 + id_w + 2 + pri_w + 2 + (project_w + 2 if project_w else 0) + (who_w + 2 if who_w else 0)
    rest = columns - fixed
    # the title first, up to its longest; the notes keep at least a quarter of the room
    title_w = min(title_max, rest - (min(note_max, rest // 4) + 2 if note_max else 0))
    note_w = min(note_max, rest - title_w - 2) if note_max else 0
    return {"id": id_w, "pri": pri_w, "project": project_w, "who": who_w, "title": title_w, "note": note_w}


def _row_lines(row, status, layout, columns):
    """The segments of a task's line (wide), or of its two lines (narrow)."""
    task, who, notes = row
    sgr = STATUS_SGR[status]
    if layout is not None:
        line = [("  ", None), (pad(task["id"], layout["id"]), sgr), ("  ", None),
                (pad(f"p{task['priority']}", layout["pri"]), DIM_SGR), ("  ", None),
                (pad(one_line(task["title"]), layout["title"]), None)]
        if layout["project"]:
            line += [("  ", None), (pad(one_line(task["project"]), layout["project"]), DIM_SGR)]
        if layout["who"]:
            line += [("  ", None), (pad(who, layout["who"]), None)]
        if layout["note"]:
            line += [("  ", None), (fit(_note_text(notes), layout["note"]), _note_sgr(notes))]
        return [_rstrip(line)]
    head = [("  ", None), (task["id"], sgr), (" ", None), (f"p{task['priority']}", DIM_SGR), (" ", None)]
    used = sum(width(t) for t, _ in head)
    out = [head + [(fit(one_line(task["title"]), columns - used), None)]]
    detail = " · ".join(x for x in (one_line(task["project"]), who, _note_text(notes)) if x)
    if detail:
        out.append([("      ", None), (fit(detail, columns - 6), _note_sgr(notes))])
    return out


def _rstrip(segments):
    """Drop the padding at the end of a line."""
    while segments and not segments[-1][0].strip():
        segments = segments[:-1]
    if segments:
        text, sgr = segments[-1]
        segments = segments[:-1] + [(text.rstrip(), sgr)]
    return segments


def _column_title(status, count, limit):
    """'IN PROGRESS (2)', or under a WIP limit on the column 'IN PROGRESS 3/3' (its whole count)."""
    title = status.upper().replace("_", " ")
    if limit is None:
        return f"{title} ({count})"
    full = limit.get("full_s")
    return f"{title} {limit['count']}/{limit['max']}" + (" full" if limit["count"] >= limit["max"] else "") \
        + (f" ({count} shown)" if count != limit["count"] else "") \
        + (f" (full {seconds_text(full)} in all)" if full else "")


def board_markdown(doc, *, show_all=False):
    """The board document as Markdown: a table per goal list and per non-empty status."""
    from . import clock

    now = clock.parse_time(doc["at"])

    def cell(text):
        return one_line(text).replace("|", "\\|")

    out = ["# kanban board", "", f"{cell(doc['board'])} at {doc['at']}", ""]
    if doc["goals"]:
        out += ["## Goals", "", "| goal | done | title | status |", "|---|---|---|---|"]
        for goal in doc["goals"]:
            p = goal["progress"]
            out.append(f"| {goal['id']} | {p['done']}/{p['total']} | {cell(goal['title'])} | {goal['status']} |")
        out.append("")
    for column, status, shown in _sections(doc, show_all):
        out += [f"## {status.replace('_', ' ').capitalize()} ({column['count']})", "",
                "| id | pri | title | project | who | notes |", "|---|---|---|---|---|---|"]
        for task in shown:
            who, notes = _task_cells(task, status, now)
            out.append(f"| {task['id']} | {task['priority']} | {cell(task['title'])} | {cell(task['project'])} "
                       f"| {cell(who)} | {cell(_note_text(notes))} |")
        hidden = column["count"] - len(shown)
        if hidden:
            out += ["", _more_hint(status, hidden, doc["filter"].get("project"))]
        out.append("")
    if not doc["goals"] and not any(c["count"] for c in doc["columns"]):
        out += ['The board is empty. Add the first task: `kanban create "Write the parser"`', ""]
    return "\n".join(out)


# -- kanban standup ---------------------------------------------------------------------------

def standup_text(doc, columns=None):
    """What changed since `since`, grouped by agent, in local time; on a terminal `columns`
    wide, each line cut to fit (a title first, then a detail goes to a line of its own)."""
    from . import clock

    now = clock.parse_time(doc["until"])
    head = f"since {local_time(doc['since'], now)} ({span(now - clock.parse_time(doc['since']))} ago)"
    if not doc["agents"]:
        return f"Nothing happened on the board {head}.\n"
    out = [f"What changed {head}, by agent:"]
    if columns is not None and width(out[0]) > columns:
        out = [_cut(f"What changed {head}", columns), "by agent:"]
    for agent, events in doc["agents"].items():
        out += ["", _cut(f"{one_line(agent)} ({len(events)})", columns)]
        for event in events:
            data = event["data"] or {}
            detail = data.get("summary") or data.get("reason") or data.get("message") or data.get("comment") or ""
            if event["kind"] == "status_changed" and data.get("to"):
                detail = f"{data.get('from')} -> {data['to']}" + (f": {detail}" if detail else "")
            kind = event["kind"].replace("_", " ")
            line = f"  {local_time(event['at'], now)}  {event['task'] or '':<9} {kind:<20} "
            title = one_line(event.get("title") or "")
            if columns is not None and title and columns - width(line) < 12:  # too narrow: a line of its own
                out.append(line.rstrip())
                line = " " * 9
            line += fit(title, 40 if columns is None else min(40, columns - width(line)))
            detail = f"— {fit(one_line(detail), 60)}" if detail else ""
            if detail and columns is not None and width(line) + 2 + width(detail) > columns:
                out += [line.rstrip(), _cut(" " * 9 + detail, columns)]  # the detail under the title
            else:
                out.append((line + ("  " + detail if detail else "")).rstrip())
    return "\n".join(out) + "\n"


def _cut(line, columns):
    return line if columns is None else fit(line, columns)


# -- kanban plan apply, on a terminal -----------------------------------------------------------

def plan_summary(doc, shown=20):
    """What `plan apply` did, in a few lines: the counts, then the tasks it created."""
    made = [t for t in doc["tasks"] if t.get("created")]
    out = [f"plan {one_line(doc['plan'])}: {doc['created']} created, {doc['existing']} already on the board"]
    for task in made[:shown]:
        out.append(f"  + {task['id']:<9} {task['kind']:<5} {fit(one_line(task['title']), 60)}")
    if len(made) > shown:
        out.append(f"  … and {len(made) - shown} more (kanban plan apply --format json)")
    return "\n".join(out) + "\n"
