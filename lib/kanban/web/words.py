"""What the web pages say for the board's keys: a label in words for each field of a
task, each kind of event and each key of an event's data, a status as words, times
as the rest of the board shows them (UTC to the second, marked Z; a lease counting
down).  The keys themselves stay where machines read them: data attributes, the
/move answer, the event stream.

A key this file has no word for (an event written by a newer kanban, an import's
own data) is still shown, its underscores as spaces: never as it is stored.
"""
import re

from markupsafe import Markup, escape

from .. import clock
from ..board import STATUSES

# the fields of a task, as its page labels them
FIELDS = {
    "priority": "Priority",
    "project": "Project",
    "role_boundary": "Role",
    "assignee": "Assigned to",
    "goal": "Goal",
    "claimed_by": "Claimed by",
    "lease_until": "Lease until",
    "not_before": "Not before",
    "reason": "Reason",
    "review": "Needs review",
    "attempts": "Attempts",
    "max_attempts": "Most attempts",
    "depends_on": "Depends on",
    "worked_by": "Worked on by",
    "waiting_on": "Waiting on",
    "progress": "Progress",
    "title": "Title",
    "body": "Body",
    "kind": "Kind",
    "role": "Role",  # `kanban set --role` records the field under this name
}

# the keys of an event's data, where they differ from a task's field of the same name
DATA = {
    "review": "Review claim",   # claimed, released, lease_expired: a reviewer's claim, not a worker's
    "holder": "Held by",
    "summary": "Summary",
    "message": "Message",
    "comment": "Comment",
    "from": "From",
    "to": "To",
    "tasks": "Tasks",
    "run": "Run",
    "outcome": "Outcome",
    "hook": "Hook",
    "event": "Event",
    "lease_ended": "Ended the lease of",
}

# error codes (SPEC §3) as an error page's heading
ERRORS = {
    "usage": "Bad request", "invalid": "Invalid", "not_found": "Not found", "conflict": "Conflict",
    "lease_lost": "Lease lost", "forbidden": "Forbidden", "cycle": "Dependency cycle", "busy": "Busy",
    "hook_rejected": "Refused by a hook", "db_error": "Database error", "internal": "Internal error",
}

_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
_REF = re.compile(r"TASK-\d+")
NUMBERED = ("comment", "run", "event")  # an id: "#3"


def words(key):
    """A key in words, for one this file does not know: underscores as spaces."""
    return str(key).replace("_", " ")


def label(key):
    return FIELDS.get(key) or words(key).capitalize()


def status(value):
    """A status in running text: 'in progress'."""
    return words(value) if value in STATUSES else value


def when(stamp):
    """UTC to the second, marked Z: unmarked it read as the browser's local time."""
    return (stamp.replace("T", " ").rstrip("Z")[:19] + "Z") if stamp else ""


def lease_left(stamp, now_ms):
    """A lease's time left as the page's script counts it down ('1h 5m 03s left', or
    'lease expired'), for the page before its script runs."""
    ms = clock.parse_time(stamp, "lease_until") - now_ms
    if ms <= 0:
        return "lease expired"
    s = ms // 1000
    hours, minutes = s // 3600, (s % 3600) // 60
    return f"{f'{hours}h ' if hours else ''}{minutes}m {s % 60:02d}s left"


def lease_expired(stamp, now_ms):
    return clock.parse_time(stamp, "lease_until") <= now_ms


def value(key, given):
    """One value of an event's data, escaped, as a person reads it: a status in words,
    a time as the page's others, a task a link, yes or no, an id numbered."""
    if given is None:
        return Markup("none")
    if given is True or given is False:
        return Markup("yes" if given else "no")
    if isinstance(given, dict):
        return pairs(given, FIELDS)
    if isinstance(given, list):
        return Markup(", ").join(value(key, item) for item in given)
    if isinstance(given, int) and key in NUMBERED:
        return Markup("#{}").format(given)
    if isinstance(given, str):
        if key in ("from", "to", "status"):
            return escape(status(given))
        if _STAMP.fullmatch(given):
            return escape(when(given))
        if _REF.fullmatch(given):
            return Markup('<a href="/task/{0}">{0}</a>').format(given)
    return escape(str(given))


def pairs(data, labels):
    """An event's data (or a part of it) as 'Label: value' pieces; the lease token is
    left out, as everywhere on the page."""
    shown = []
    for key, given in data.items():
        if key == "token":
            continue
        if key == "goal" and given is True:  # a goal that moved by itself when its tasks did
            shown.append(Markup('<span class="kv">with its tasks</span>'))
            continue
        if key == "moved" and given is True:  # kanban move, or a card moved on this board
            shown.append(Markup('<span class="kv">moved by hand</span>'))
            continue
        if key == "fields" and isinstance(given, dict):  # `kanban set`: each field changed, by its label
            shown += [Markup('<span class="kv">{}: {}</span>').format(
                label(field), Markup("cleared") if new is None else value(field, new)) for field, new in given.items()]
            continue
        if key == "lease_ended" and isinstance(given, dict):
            given = given.get("holder")
        name = labels.get(key) or FIELDS.get(key) or words(key).capitalize()
        shown.append(Markup('<span class="kv">{}: {}</span>').format(name, value(key, given)))
    return Markup(" ").join(shown)


def details(event):
    """The details cell of a task's history: the event's data in words."""
    return pairs(event.get("data") or {}, DATA)


def waits(entry):
    """One waiting_on reason in words."""
    kind = entry.get("kind")
    if kind == "dep":
        return f"{entry['task']} ({status(entry['status'])})"
    if kind == "schedule":
        return "not before " + when(entry["until"])
    if kind == "wip_limit":
        scope = ", ".join(f"{k} {entry[k]}" for k in ("role", "project", "agent") if entry.get(k))
        return (f"WIP limit {status(entry['status'])}{' (' + scope + ')' if scope else ''} "
                f"{entry['count']}/{entry['max']}")
    if kind == "status":
        return entry.get("reason") or status(entry["status"])
    return entry.get("note") or words(kind)
