"""The flow charts drawn for people: SVG for the web board, Unicode for a terminal.

Both draw the series of lib/kanban/flow.py (the same numbers `stats --chart
--format json` prints).  The SVG is made on the server, with nothing loaded from
anywhere: a board runs offline.  Every text that comes from the board (a goal's
title) is escaped.  Each series element carries `data-series` and `data-values`, so
a test, or a person with the inspector, can read the numbers back.
"""
from html import escape

# the colour of each status, on the web and in a terminal (256-colour SGR)
COLOURS = {"todo": "#9aa5b1", "in_progress": "#2f80ed", "in_review": "#9b51e0", "blocked": "#eb5757",
           "done": "#27ae60", "failed": "#6d4c41", "cancelled": "#c4c4c4"}
SGR = {"todo": "37", "in_progress": "34", "in_review": "35", "blocked": "31", "done": "32", "failed": "33",
       "cancelled": "90"}
GLYPHS = {"done": "█", "in_review": "▓", "in_progress": "▒", "blocked": "▞", "todo": "░"}
EIGHTHS = " ▁▂▃▄▅▆▇█"
STACK = ("done", "in_review", "in_progress", "blocked", "todo")  # bottom to top


# -- SVG -----------------------------------------------------------------------------

W, H = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 28
LEGEND_ROW = 18


def _frame(kind, title, body, legend=(), extra=""):
    keys, x, row = [], LEFT, 0
    for label, colour in legend:  # each key as wide as its label, in rows that fit the width
        size = 30 + 8 * len(label)
        if x > LEFT and x + size - 20 > W - RIGHT:  # past the right edge it was drawn where none sees it
            x, row = LEFT, row + 1
        keys.append(f'<g transform="translate({x},{H + 14 + LEGEND_ROW * row})"><rect width="10" height="10" '
                    f'fill="{colour}"/><text x="14" y="9">{escape(label)}</text></g>')
        x += size
    keys = "".join(keys)
    # room under the last row for the letters' descenders ('g', '_'), which were cut off
    height = H + (14 + LEGEND_ROW * (row + 1) if legend else 0)
    return (f'<svg class="chart" data-chart="{kind}" viewBox="0 0 {W} {height}" width="100%" role="img" '
            f'xmlns="http://www.w3.org/2000/svg"{extra}><title>{escape(title)}</title>{body}{keys}</svg>')


def _axes(top_value, labels, clamp=True):
    """The y axis from 0 to top_value, and x labels [(x, text)]."""
    bottom, top = H - BOTTOM, TOP
    parts = [f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{W - RIGHT}" y2="{bottom}"/>',
             f'<line class="axis" x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}"/>',
             f'<text class="tick" x="{LEFT - 6}" y="{bottom}" text-anchor="end">0</text>',
             f'<text class="tick" x="{LEFT - 6}" y="{top + 8}" text-anchor="end">{top_value}</text>']
    for x, text in labels:  # the labels at the ends stay inside the frame
        anchor = "middle" if not clamp else "start" if x - LEFT < 60 else "end" if W - RIGHT - x < 60 else "middle"
        parts.append(f'<text class="tick" x="{x:.1f}" y="{H - 8}" text-anchor="{anchor}">{escape(text)}</text>')
    return "".join(parts)


def _xs(count):
    span = W - LEFT - RIGHT
    if count <= 1:
        return [LEFT + span / 2] * count
    return [LEFT + span * i / (count - 1) for i in range(count)]


def _y(value, top_value):
    return (H - BOTTOM) - (H - BOTTOM - TOP) * (value / top_value if top_value else 0)


def _time_labels(times, xs):
    if not times:
        return []
    picks = sorted({0, len(times) // 2, len(times) - 1})
    return list(zip([xs[i] for i in picks], _stamps([times[i] for i in picks]), strict=True))


def _stamps(stamps):
    """Sample times as an axis shows them: to the minute ('2030-01-01 10:00'), or to the
    second where the minute would show two labels the same (a span of a minute or so);
    the date once when they all fall on one day ('2030-01-01 10:00:11', '10:00:45')."""
    distinct = len(set(stamps))
    cut = next((cut for cut in (16, 19) if len({stamp[:cut] for stamp in stamps}) == distinct), 23)
    one_day = len({stamp[:10] for stamp in stamps}) == 1
    return [stamp[:cut].replace("T", " ") if n == 0 or not one_day else stamp[11:cut]
            for n, stamp in enumerate(stamps)]


def _values(values):
    return ",".join(str(v) for v in values)


def svg_cfd(data):
    times, series = data["t"], data["series"]
    xs = _xs(len(times))
    totals = [sum(series[s][i] for s in STACK) for i in range(len(times))]
    top_value = max(totals, default=0) or 1
    below = [0] * len(times)
    paths = []
    for status in STACK:
        above = [below[i] + series[status][i] for i in range(len(times))]
        upper = " ".join(f"{xs[i]:.1f},{_y(above[i], top_value):.1f}" for i in range(len(times)))
        lower = " ".join(f"{xs[i]:.1f},{_y(below[i], top_value):.1f}" for i in reversed(range(len(times))))
        paths.append(f'<polygon data-series="{status}" data-values="{_values(series[status])}" '
                     f'fill="{COLOURS[status]}" points="{upper} {lower}"/>')
        below = above
    body = "".join(paths) + _axes(top_value, _time_labels(times, xs))
    # the keys in words ('in progress'); each area's data-series is its status as stored
    return _frame("cfd", "Cumulative flow", body, [(s.replace("_", " "), COLOURS[s]) for s in reversed(STACK)])


def svg_burndown(data):
    times, goals = data["t"], data["goals"][:8]
    xs = _xs(len(times))
    top_value = max((max(g["total"], default=0) for g in goals), default=0) or 1
    palette = ("#2f80ed", "#27ae60", "#9b51e0", "#f2994a", "#eb5757", "#56ccf2", "#6d4c41", "#333333")
    lines, legend = [], []
    for n, goal in enumerate(goals):
        colour = palette[n % len(palette)]
        points = " ".join(f"{xs[i]:.1f},{_y(v, top_value):.1f}" for i, v in enumerate(goal["remaining"]))
        lines.append(f'<polyline data-series="{escape(goal["goal"])}" data-values="{_values(goal["remaining"])}" '
                     f'fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        legend.append((f'{goal["goal"]} {goal["title"] or ""}'[:28], colour))
    body = "".join(lines) + _axes(top_value, _time_labels(times, xs))
    hidden = len(data["goals"]) - len(goals)
    if hidden:  # the rest were left out without a word: say so, and how to see one
        legend.append((f"and {hidden} more goal{'s' if hidden > 1 else ''}: choose one above", "none"))
    if not goals:
        body += f'<text class="empty" x="{W / 2}" y="{H / 2}" text-anchor="middle">no goal has tasks yet</text>'
    return _frame("burndown", "Burndown: tasks left per goal", body, legend)


def _bars(kind, title, labels, groups, label_every=1, edges=False):
    """Grouped bars: groups is [(name, colour, values)], one bar per label and group.
    edges: the axis names the bounds between the bars ('<1m', '<2m' bars: '1m' under
    the line between them), not each bar: sixteen bins' own labels ran into each other."""
    count = len(labels)
    top_value = max((max(values, default=0) for _, _, values in groups), default=0) or 1
    span = W - LEFT - RIGHT
    slot = span / max(count, 1)
    width = max(1.0, slot * 0.8 / max(len(groups), 1))
    parts = []
    for g, (name, colour, values) in enumerate(groups):
        rects = []
        for i, value in enumerate(values):
            x = LEFT + slot * i + slot * 0.1 + width * g
            y = _y(value, top_value)
            rects.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{H - BOTTOM - y:.1f}">'
                         f'<title>{escape(labels[i])}: {value}</title></rect>')
        parts.append(f'<g data-series="{escape(name)}" data-values="{_values(values)}" fill="{colour}">'
                     + "".join(rects) + "</g>")
    if edges:
        ticks = [(LEFT + slot * (i + 1), labels[i].lstrip("<")) for i in range(count - 1)]
    else:
        ticks = [(LEFT + slot * (i + 0.5), labels[i]) for i in range(0, count, label_every)]
    return _frame(kind, title, "".join(parts) + _axes(top_value, ticks, clamp=False),
                  [(name, colour) for name, colour, _ in groups] if len(groups) > 1 else ())


def svg_throughput(data):
    days, done = data["days"][-60:], data["done"][-60:]
    every = max(1, len(days) // 6)
    return _bars("throughput", "Throughput: tasks done per day", [d[5:] for d in days],
                 [("done", COLOURS["done"], done)], every)


def svg_times(data):
    return _bars("times", "Cycle and lead time", data["bins"],
                 [("cycle", COLOURS["in_progress"], data["cycle"]), ("lead", COLOURS["todo"], data["lead"])],
                 edges=True)


SVG = {"cfd": svg_cfd, "burndown": svg_burndown, "throughput": svg_throughput, "times": svg_times}


# -- Unicode, for a terminal ---------------------------------------------------------------

def _paint(text, status, color):
    return f"\x1b[{SGR[status]}m{text}\x1b[0m" if color and text.strip() else text


def _columns(values, height):
    """Each value as a column of `height` cells drawn with eighth blocks; rows top to bottom."""
    top_value = max(values, default=0) or 1
    rows = []
    for row in range(height, 0, -1):
        line = ""
        for value in values:
            filled = value / top_value * height
            part = filled - (row - 1)
            line += EIGHTHS[max(0, min(8, round(part * 8)))]
        rows.append(line)
    return rows, top_value


def _with_axis(rows, top_value, first, last, width, columns=None):
    label = len(str(top_value))
    out = [f"{(str(top_value) if n == 0 else ''):>{label}} ┤{row}" for n, row in enumerate(rows)]
    out.append(f"{'0':>{label}} └" + "─" * width)
    if first == last:  # one sample, one day: its time once, not at both ends
        out.append(" " * (label + 2) + first)
        return out
    gap = max(2, width - len(first) - len(last))
    if columns is not None and label + 2 + len(first) + gap + len(last) > columns:
        out.append(" " * (label + 2) + first)  # the last time does not fit beside the first
        return out
    out.append(" " * (label + 2) + first + " " * gap + last)
    return out


def _room(values, columns):
    """How many samples (one a column) fit beside the y axis in `columns`; None: all."""
    if columns is None:
        return None
    return max(1, columns - len(str(max(values, default=0) or 1)) - 2)


def _legend(items, columns):
    """The legend's keys joined by two spaces, in as many lines as `columns` needs."""
    lines, line, used = [], [], 0
    for text, size in items:
        if line and columns is not None and used + 2 + size > columns:
            lines.append("  ".join(line))
            line, used = [], 0
        used += (2 if line else 0) + size
        line.append(text)
    return lines + (["  ".join(line)] if line else [])


def _ends(times):
    """The first and the last sample time as the x axis shows them."""
    if not times:
        return "", ""
    if times[0] == times[-1]:  # one sample: one label (the axis shows it once)
        return _stamps(times[:1]) * 2
    return tuple(_stamps([times[0], times[-1]]))


def text_cfd(data, color=False, height=12, columns=None):
    """The charts for a terminal `columns` wide (None: as wide as the data): the latest
    samples that fit, the titles cut and the legend wrapped to that width."""
    times, series = data["t"], data["series"]
    totals = [sum(series[s][i] for s in STACK) for i in range(len(times))]
    top_value = max(totals, default=0) or 1
    keep = _room(totals, columns) or len(times)
    shown = range(max(0, len(times) - keep), len(times))
    rows = []
    for row in range(height, 0, -1):
        line = ""
        for i in shown:
            level, below, cell = (row - 0.5) / height * top_value, 0, " "
            for status in STACK:
                below += series[status][i]
                if level < below:
                    cell = _paint(GLYPHS[status], status, color)
                    break
            line += cell
        rows.append(line)
    out = ["Cumulative flow (tasks by status)"]
    out += _with_axis(rows, top_value, *_ends(times[shown.start:]), len(shown), columns)
    last = {s: series[s][-1] if series[s] else 0 for s in STACK}
    out += _legend([(f"{_paint(GLYPHS[s], s, color)} {s} {last[s]}", len(f"x {s} {last[s]}"))
                    for s in reversed(STACK)], columns)
    return "\n".join(out)


def text_burndown(data, color=False, height=8, columns=None):
    from .render import fit

    out = []
    for goal in data["goals"]:
        remaining = goal["remaining"]
        keep = _room(remaining, columns) or len(remaining)
        remaining, times = remaining[-keep:], data["t"][-keep:]
        rows, top_value = _columns(remaining, height)
        left = remaining[-1] if remaining else 0
        title = (f"Burndown {goal['goal']} {goal['title'] or ''}: {left} of "
                 f"{goal['total'][-1] if goal['total'] else 0} left")
        if columns is not None and _width(title) > columns:  # the title cut, the counts kept
            counts = title[title.rindex(": "):]
            title = fit(title[: -len(counts)], columns - _width(counts)) + counts
        out.append(title)
        out += _with_axis([_paint(r, "in_progress", color) for r in rows], top_value, *_ends(times),
                          len(remaining), columns)
        out.append("")
    return "\n".join(out).rstrip() if out else "Burndown: no goal has tasks yet"


def text_throughput(data, color=False, height=8, columns=None):
    keep = min(60, _room(data["done"][-60:], columns) or 60)
    days, done = data["days"][-keep:], data["done"][-keep:]
    rows, top_value = _columns(done, height)
    out = [f"Throughput: tasks done per day ({sum(done)} in {len(days)} days)"]
    if columns is not None and len(out[0]) > columns:
        out = [f"Done per day ({sum(done)} in {len(days)} days)"]
    out += _with_axis([_paint(r, "done", color) for r in rows], top_value, days[0] if days else "",
                      days[-1] if days else "", len(days), columns)
    return "\n".join(out)


def text_times(data, color=False, width=40, columns=None):
    out = [f"Cycle and lead time ({data['sample']} done tasks)"]
    top_value = max(data["cycle"] + data["lead"], default=0) or 1
    label = max(len(b) for b in data["bins"])
    if columns is not None:  # '  <label> bar value' within the terminal
        width = max(1, min(width, columns - label - 4 - len(str(top_value))))
    for name, status in (("cycle", "in_progress"), ("lead", "todo")):
        out.append(f"{name} time")
        for bin_label, value in zip(data["bins"], data[name], strict=True):
            if value:
                bar = "█" * max(1, round(value / top_value * width))
                out.append(f"  {bin_label:>{label}} {_paint(bar, status, color)} {value}")
    return "\n".join(out)


def _width(text):
    from .render import width

    return width(text)


TEXT = {"cfd": text_cfd, "burndown": text_burndown, "throughput": text_throughput, "times": text_times}
