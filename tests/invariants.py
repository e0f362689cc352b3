"""The invariant checker: what the board and its event log must prove after any run.

    python tests/invariants.py BOARD [--finished] [--json]

It reads the board through kanban itself (Board: the tasks, every event, `doctor`)
and replays each task's event log through the state machine of SPEC section 4:

- fencing tokens come from one board-wide counter: every claim's token is greater
  than every earlier one (in event order);
- a task is claimed only when nobody holds it: no two live leases ever overlap
  (a lease ends by an event - released, completed, expired, ... - and an expiry is
  recorded only once the lease really ran out);
- every holder write (renew, release, complete, block) carries the current token
  while its lease is live: no completion is accepted with a stale token;
- the replayed state equals the stored row (status, holder, lease, attempts): every
  state change has its event, and no event is missing;
- with --finished: every task reached `done` exactly once (one completion), or
  `failed` at max_attempts with no completion; every goal is done;
- `PRAGMA integrity_check` is ok and `doctor` finds no error.

check(path) returns a report dict; "violations" is a list of strings, empty when
the board is sound.
"""
import argparse
import json
import os
import sys
from datetime import datetime

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from kanban import Board  # noqa: E402
from kanban.board import parse_id  # noqa: E402
from kanban.clock import iso  # noqa: E402
from kanban.store import is_server  # noqa: E402

CLOSED = ("done", "failed", "cancelled")
MAX_SHOWN = 50  # violations listed in full; the count is always exact


def ms(text):
    """ISO-8601 from kanban (…Z) -> epoch milliseconds."""
    if text is None:
        return None
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def read_board(path):
    """(tasks, events, doctor) read through kanban's own API."""
    with Board(path) as board:
        tasks = board.list()["tasks"]
        events, cursor = [], None
        while True:
            page = board.events(since=cursor, limit=100000)
            events += page["events"]
            if not page["events"]:
                break
            cursor = page["cursor"]
        doctor = board.doctor()
    return tasks, events, doctor


class Lease:
    __slots__ = ("token", "holder", "until", "review", "start")

    def __init__(self, token, holder, until, review, start):
        self.token, self.holder, self.until, self.review, self.start = token, holder, until, review, start


class Replay:
    """One task's life, rebuilt from its events."""

    def __init__(self, ref):
        self.ref = ref
        self.last_token = 0
        self.kind = "task"
        self.status = None
        self.lease = None
        self.attempts = 0
        self.completions = 0
        self.failures = 0
        self.claims = 0
        self.expiries = 0
        self.rejections = 0


def holder_write(lease, token, at, where, bad, allow_review=False):
    """A write by the holder must carry the current token while its lease is live."""
    if lease is None:
        bad(f"{where}: token {token} accepted but no lease is held")
        return False
    if token != lease.token:
        bad(f"{where}: stale token {token} accepted (current {lease.token})")
        return False
    if at >= lease.until:
        bad(f"{where}: token {token} accepted at {iso(at)} after its lease ran out ({iso(lease.until)})")
        return False
    if lease.review and not allow_review:
        bad(f"{where}: a review lease used for a worker's write")
    return True


def check(path, finished=False, tasks=None, events=None, doctor=None):
    if tasks is None:
        tasks, events, doctor = read_board(path)
    violations = []

    def bad(message):
        violations.append(message)

    replays = {}
    last_token = 0
    server = is_server(path)
    figures = {"claims": 0, "review_claims": 0, "expiries": 0, "completions": 0, "approvals": 0,
               "rejections": 0, "releases": 0, "renewals": 0, "blocks": 0, "failed": 0, "hook_failed": 0}
    previous_id = 0
    for event in events:
        if event["id"] <= previous_id:
            bad(f"event {event['id']} out of order after {previous_id}")
        previous_id = event["id"]
        ref, kind, data, actor = event["task"], event["kind"], event["data"], event["actor"]
        at = ms(event["at"])
        if ref is None:
            continue
        task = replays.get(ref)
        if task is None:
            task = replays[ref] = Replay(ref)
            if kind != "created":
                bad(f"{ref}: first event is {kind}, not created")
        where = f"{ref} event {event['id']} ({kind})"
        lease = task.lease

        if kind == "created":
            task.status = "todo"
            task.kind = (data or {}).get("kind", "task")
        elif kind == "claimed":
            token = data.get("token")
            # a server board's tokens come from a sequence that concurrent claimers draw from
            # before they commit: they increase per task, not in the order of the log
            floor = task.last_token if server else last_token
            if not isinstance(token, int) or token <= floor:
                bad(f"{where}: token {token} does not follow {floor}: tokens must strictly increase")
            last_token = max(last_token, token if isinstance(token, int) else last_token)
            task.last_token = max(task.last_token, token if isinstance(token, int) else 0)
            until = ms(data.get("lease_until"))
            if data.get("review"):
                figures["review_claims"] += 1
                if task.status != "in_review":
                    bad(f"{where}: review claim of a task in {task.status}")
                if lease is not None:
                    bad(f"{where}: review claim while token {lease.token} of {lease.holder} was still held "
                        "(two leases overlap)")
                task.lease = Lease(token, actor, until, True, at)
            else:
                figures["claims"] += 1
                task.claims += 1
                if task.kind != "task":
                    bad(f"{where}: a goal was claimed")
                if task.status != "todo":
                    bad(f"{where}: claimed while {task.status}")
                if lease is not None:
                    bad(f"{where}: claimed while token {lease.token} of {lease.holder} was still held "
                        "(two leases overlap)")
                task.status = "in_progress"
                task.lease = Lease(token, actor, until, False, at)
        elif kind in ("lease_renewed", "heartbeat") or (kind == "progress" and "token" in data):
            if holder_write(lease, data.get("token"), at, where, bad, allow_review=True):
                lease.until = max(lease.until, ms(data.get("lease_until")))
            if kind == "lease_renewed":
                figures["renewals"] += 1
        elif kind == "lease_expired":
            figures["expiries"] += 1
            token = data.get("token")
            if lease is None:
                bad(f"{where}: expiry of token {token} but no lease is held")
            else:
                if token != lease.token:
                    bad(f"{where}: expiry of token {token}, but the current lease is {lease.token}")
                if at < lease.until:
                    bad(f"{where}: lease {lease.token} expired at {event['at']}, before it ran out "
                        f"({iso(lease.until)}): a live lease was taken away")
                if bool(data.get("review")) != lease.review:
                    bad(f"{where}: expiry kind does not match the lease")
            task.lease = None
            if not data.get("review"):
                task.expiries += 1
                task.attempts += 1
                if task.status != "in_progress":
                    bad(f"{where}: worker lease expired while {task.status}")
                if data.get("attempts") != task.attempts:
                    bad(f"{where}: attempts {data.get('attempts')}, replay counts {task.attempts}")
                task.status = "todo"  # or failed: the `failed` event that follows says so
        elif kind == "failed":
            figures["failed"] += 1
            task.failures += 1
            if task.status != "todo" or lease is not None:
                bad(f"{where}: failed from {task.status}")
            task.status = "failed"
        elif kind == "released":
            figures["releases"] += 1
            if holder_write(lease, data.get("token"), at, where, bad, allow_review=True):
                if lease.review:
                    task.lease = None
                else:
                    task.status, task.lease = "todo", None
            else:
                task.lease = None
        elif kind == "completed" and not data.get("goal"):
            figures["completions"] += 1
            task.completions += 1
            if task.status != "in_progress":
                bad(f"{where}: completed while {task.status}")
            holder_write(lease, data.get("token"), at, where, bad)
            task.status, task.lease = "done", None
        elif kind == "submitted_for_review":
            if task.status != "in_progress":
                bad(f"{where}: submitted while {task.status}")
            holder_write(lease, data.get("token"), at, where, bad)
            task.status, task.lease = "in_review", None
        elif kind in ("approved", "rejected"):
            if task.status != "in_review":
                bad(f"{where}: {kind} while {task.status}")
            if lease is not None and at < lease.until:  # a live review lease: only its token may judge
                if "token" in data:
                    holder_write(lease, data["token"], at, where, bad, allow_review=True)
                elif actor != lease.holder:
                    bad(f"{where}: judged by {actor} while {lease.holder} held the live review lease")
            elif data.get("token") is not None:
                holder_write(lease, data["token"], at, where, bad, allow_review=True)
            if kind == "approved":
                figures["approvals"] += 1
                task.completions += 1
                task.status = "done"
            else:
                figures["rejections"] += 1
                task.rejections += 1
                task.status = "todo"
            task.lease = None
        elif kind == "blocked":
            figures["blocks"] += 1
            if task.status == "in_progress":
                if "token" in data:  # by its holder; without a token, by the team's stale-run check
                    holder_write(lease, data["token"], at, where, bad)
            elif task.status != "todo":
                bad(f"{where}: blocked while {task.status}")
            if data.get("from") not in (None, task.status):
                bad(f"{where}: event says from {data.get('from')}, replay has {task.status}")
            task.status, task.lease = "blocked", None
        elif kind == "unblocked":
            if task.status != "blocked":
                bad(f"{where}: unblocked while {task.status}")
            task.status = "todo"
        elif kind == "cancelled":
            if task.status in CLOSED:
                bad(f"{where}: cancelled while {task.status}")
            task.status, task.lease = "cancelled", None
        elif kind == "reopened" and data.get("goal"):  # a goal rolled up: a task of it is open again
            task.status = "todo"
        elif kind == "reopened":
            if task.status not in CLOSED:
                bad(f"{where}: reopened while {task.status}")
            task.status, task.attempts, task.completions = "todo", 0, 0
            task.failures = 0
        elif kind == "completed":  # a goal whose tasks are all closed
            task.status = "done"
        elif kind == "status_changed" and data.get("to"):
            task.status = data["to"]
        elif kind == "hook_failed":
            figures["hook_failed"] += 1

    # the replay must land on the stored row: every state change has its event
    rows = {t["id"]: t for t in tasks}
    for ref in sorted(set(rows) - set(replays), key=parse_id):
        bad(f"{ref}: a task without events")
    for ref in sorted(set(replays) - set(rows), key=parse_id):
        bad(f"{ref}: events for a task that does not exist")
    outcome = {"done": 0, "failed": 0, "other": 0}
    for ref, row in sorted(rows.items(), key=lambda item: parse_id(item[0])):
        task = replays.get(ref)
        if task is None:
            continue
        lease = task.lease
        expected = {
            "status": task.status,
            "claimed_by": lease.holder if lease else None,
            "lease_until": iso(lease.until) if lease else None,
        }
        if row["kind"] == "task":
            expected["attempts"] = task.attempts
        for key, value in expected.items():
            if row[key] != value:
                bad(f"{ref}: {key} is {row[key]!r} but its events say {value!r} (an event is missing)")
        if row["status"] == "in_progress" and (row["claimed_by"] is None or row["lease_until"] is None):
            bad(f"{ref}: in progress without a holder and a lease")
        if row["status"] not in ("in_progress", "in_review") and row["claimed_by"] is not None:
            bad(f"{ref}: {row['status']} but still claimed by {row['claimed_by']}")
        if task.status == "failed" and (row["max_attempts"] is None or task.attempts < row["max_attempts"]):
            bad(f"{ref}: failed after {task.attempts} attempt(s), max_attempts {row['max_attempts']}")
        if task.failures > 1:
            bad(f"{ref}: failed {task.failures} times")
        if row["kind"] != "task":
            if finished and row["status"] != "done":
                bad(f"{ref}: goal is {row['status']} at the end")
            continue
        if row["status"] in ("done", "failed"):
            outcome[row["status"]] += 1
        else:
            outcome["other"] += 1
        if task.completions > 1:
            bad(f"{ref}: completed {task.completions} times (exactly once expected)")
        if finished:
            if row["status"] == "done" and task.completions != 1:
                bad(f"{ref}: done with {task.completions} completion(s)")
            elif row["status"] == "failed" and task.completions:
                bad(f"{ref}: failed after a completion")
            elif row["status"] not in ("done", "failed"):
                bad(f"{ref}: still {row['status']} at the end")

    if doctor is not None:
        if doctor.get("integrity") != ["ok"]:
            bad(f"integrity_check: {doctor.get('integrity')}")
        for finding in doctor.get("findings", []):
            if finding.get("level") == "error":
                bad(f"doctor: {finding.get('message')}")
    return {
        "tasks": sum(1 for t in tasks if t["kind"] == "task"),
        "goals": sum(1 for t in tasks if t["kind"] == "goal"),
        "events": len(events),
        "last_token": last_token,
        "outcome": outcome,
        "figures": figures,
        "integrity": doctor.get("integrity") if doctor else None,
        "violation_count": len(violations),
        "violations": violations[:MAX_SHOWN],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("board")
    parser.add_argument("--finished", action="store_true", help="every task must be done or failed")
    args = parser.parse_args(argv)
    report = check(args.board, finished=args.finished)
    print(json.dumps(report, indent=2))
    return 1 if report["violation_count"] else 0


if __name__ == "__main__":
    sys.exit(main())
