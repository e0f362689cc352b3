"""kanban event: progress notes, the list cursor, filters, --follow, TTLs and prune (SPEC §5)."""
import json
import os
import selectors
import subprocess
import time

from conftest import KANBAN, assert_error, at, default_sigint, reaped

EVENT_KEYS = {"id", "task", "kind", "actor", "at", "data"}
STATE_KINDS = {"created", "claimed", "completed", "released", "blocked", "unblocked", "cancelled",
               "reopened", "lease_expired", "lease_renewed", "linked", "commented", "updated"}


def test_log_progress_note(kb):
    t = kb("create", "t", env=at(0)).json["id"]
    res = kb("event", "log", t, "--message", "compiling", agent="w1", env=at(5))
    assert res.rc == 0
    doc = res.json
    assert set(doc) == EVENT_KEYS
    assert doc["kind"] == "progress" and doc["task"] == t and doc["actor"] == "w1"
    assert doc["data"]["message"] == "compiling" and doc["at"] == "2030-03-17T17:46:45Z"
    # positional message and the log-progress alias
    assert kb("event", "log", t, "linking", agent="w1").json["data"]["message"] == "linking"
    assert kb("log-progress", t, "--message", "done soon", agent="w1").json["kind"] == "progress"
    listed = kb("event", "list", "--task", t, "--kind", "progress").json["events"]
    assert [e["data"]["message"] for e in listed] == ["compiling", "linking", "done soon"]


def test_log_errors(kb):
    t = kb("create", "t").json["id"]
    before = kb("event", "list").out
    assert_error(kb("event", "log", t, "--message", "m"), "usage")  # no agent
    assert_error(kb("event", "log", t, "--message", "", agent="w"), "invalid")
    assert_error(kb("event", "log", "TASK-99", "--message", "m", agent="w"), "not_found")
    assert_error(kb("event", "log", t, "--message", "m", "--ttl", "-1h", agent="w"), "invalid")
    assert_error(kb("event", "log", t, "--message", "m", "--token", "x", agent="w"), "invalid")
    assert_error(kb("event", "log", t, "--message", "m", "--token", "5", agent="w"), "conflict")
    assert kb("event", "list").out == before


def test_list_order_shape_and_cursor(kb):
    ids = [kb("create", f"t{n}").json["id"] for n in range(3)]
    page = kb("event", "list").json
    assert set(page) == {"events", "cursor"} and isinstance(page["cursor"], str)
    events = page["events"]
    assert [e["task"] for e in events] == ids and all(set(e) == EVENT_KEYS for e in events)
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    cursor = page["cursor"]
    # nothing new: no events, the same cursor
    again = kb("event", "list", "--since", cursor).json
    assert again == {"events": [], "cursor": cursor}
    kb("claim", agent="w")
    newer = kb("event", "list", "--since", cursor).json
    assert [e["kind"] for e in newer["events"]] == ["claimed"] and newer["cursor"] != cursor
    assert kb("event", "list", "--since", newer["cursor"]).json == {"events": [], "cursor": newer["cursor"]}


def test_list_limit_pages_through(kb):
    for n in range(5):
        kb("create", f"t{n}")
    seen, cursor = [], None
    for _ in range(10):
        args = ["event", "list", "--limit", "2"] + (["--since", cursor] if cursor else [])
        page = kb(*args).json
        assert len(page["events"]) <= 2
        if not page["events"]:
            break
        seen += [e["id"] for e in page["events"]]
        cursor = page["cursor"]
    assert len(seen) == 5 and len(set(seen)) == 5
    assert len(kb("event", "list").json["events"]) == 5  # default limit 100 covers them


def test_default_limit_is_100(kb):
    lines = "".join(json.dumps({"title": f"t{n}"}) + "\n" for n in range(120))
    kb("create", "--stdin", input=lines)
    page = kb("event", "list").json
    assert len(page["events"]) == 100
    assert len(kb("event", "list", "--since", page["cursor"]).json["events"]) == 20


def test_filters(kb):
    a = kb("create", "a").json["id"]
    b = kb("create", "b").json["id"]
    kb("claim", b, agent="w")
    kb("comment", a, "--message", "hi")
    only_a = kb("event", "list", "--task", a).json["events"]
    assert [e["kind"] for e in only_a] == ["created", "commented"]
    claimed = kb("event", "list", "--kind", "claimed").json["events"]
    assert [(e["task"], e["actor"]) for e in claimed] == [(b, "w")]
    assert kb("event", "list", "--task", a, "--kind", "claimed").json["events"] == []


def test_list_errors(kb):
    kb("create", "a")
    assert_error(kb("event", "list", "--since", "yesterday"), "invalid")
    assert_error(kb("event", "list", "--since", "-1"), "invalid")
    assert_error(kb("event", "list", "--kind", "exploded"), "invalid")
    assert_error(kb("event", "list", "--limit", "0"), "invalid")
    assert_error(kb("event", "list", "--limit", "lots"), "invalid")
    assert_error(kb("event", "list", "--task", "TASK-404"), "not_found")
    assert_error(kb("event", "list", "--frobnicate"), "usage")
    assert_error(kb("event"), "usage")


def test_progress_notes_hidden_after_ttl(kb):
    t = kb("create", "t", env=at(0)).json["id"]
    kb("event", "log", t, "--message", "short", "--ttl", "1h", agent="w", env=at(0))
    kb("event", "log", t, "--message", "default", agent="w", env=at(0))

    def notes(seconds):
        events = kb("event", "list", "--kind", "progress", env=at(seconds)).json["events"]
        return [e["data"]["message"] for e in events]
    assert notes(1800) == ["short", "default"]
    assert notes(3601) == ["default"]
    assert notes(3 * 86400 - 1) == ["default"]
    assert notes(3 * 86400 + 1) == []
    # hidden from show too; the state changes stay
    shown = kb("show", t, env=at(3 * 86400 + 1)).json
    assert [e["kind"] for e in shown["events"]] == ["created"]


def test_prune_drops_progress_never_state_changes(kb):
    env0 = at(0)
    a = kb("create", "a", env=env0).json["id"]
    b = kb("create", "b", env=env0).json["id"]
    kb("dep", "add", b, a, env=env0)
    tok = kb("claim", a, "--lease", "1m", agent="w1", env=env0).json["lease_token"]
    kb("event", "log", a, "--message", "p1", "--token", tok, agent="w1", env=env0)
    kb("lease", "renew", a, "--token", tok, agent="w1", env=env0)
    kb("lease", "reap", env=at(3600))
    tok = kb("claim", a, agent="w2", env=at(3600)).json["lease_token"]
    kb("event", "log", a, "--message", "p2", "--ttl", "365d", agent="w2", env=at(3600))
    kb("complete", a, "--token", tok, agent="w2", env=at(3600))
    kb("comment", b, "--message", "note", env=at(3600))
    kb("block", b, "--reason", "r", env=at(3600))
    kb("unblock", b, env=at(3600))
    kb("cancel", b, env=at(3600))
    kb("reopen", b, env=at(3600))
    kb("set", b, "--priority", "3", env=at(3600))
    tok = kb("claim", b, agent="w3", env=at(3600)).json["lease_token"]
    kb("lease", "release", b, "--token", tok, agent="w3", env=at(3600))
    everything = kb("event", "list", "--limit", "1000", env=at(0)).json["events"]
    kinds = {e["kind"] for e in everything}
    assert STATE_KINDS <= kinds and "progress" in kinds
    # a cut of 30 days, 40 days on: both notes go (one expired, one older than the cut)
    later = at(40 * 86400)
    res = kb("prune", "--before", "30d", env=later)
    assert res.rc == 0
    assert res.json["pruned"] == 2
    left = kb("event", "list", "--limit", "1000", env=later).json["events"]
    assert left == [e for e in everything if e["kind"] != "progress"]
    # a second prune finds nothing
    assert kb("prune", env=later).json["pruned"] == 0


def test_prune_keeps_recent_notes(kb):
    t = kb("create", "t", env=at(0)).json["id"]
    kb("event", "log", t, "--message", "old", "--ttl", "100d", agent="w", env=at(0))
    kb("event", "log", t, "--message", "new", "--ttl", "100d", agent="w", env=at(20 * 86400))
    assert kb("prune", "--before", "10d", env=at(21 * 86400)).json["pruned"] == 1
    notes = kb("event", "list", "--kind", "progress", env=at(21 * 86400)).json["events"]
    assert [e["data"]["message"] for e in notes] == ["new"]
    assert_error(kb("prune", "--before", "soon"), "invalid")
    assert_error(kb("prune", "--before", "0"), "invalid")


def test_follow_streams_json_lines(kb):
    kb("create", "first")
    kb("create", "second")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env["KANBAN_DB"] = str(kb.path)
    proc = subprocess.Popen([str(KANBAN), "event", "list", "--follow"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    buffer = b""

    def read_lines(count, timeout=10):
        nonlocal buffer
        deadline = time.monotonic() + timeout
        while buffer.count(b"\n") < count and time.monotonic() < deadline:
            if selector.select(timeout=max(0.0, deadline - time.monotonic())):
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                buffer += chunk
        lines = buffer.split(b"\n")
        got, buffer = lines[:count], b"\n".join(lines[count:])
        return [json.loads(line) for line in got]

    try:
        first = read_lines(2)
        assert [e["kind"] for e in first] == ["created", "created"]
        assert [json.loads(json.dumps(e)) for e in first] == kb("event", "list").json["events"]
        assert proc.poll() is None  # still following
        third = kb("create", "third").json
        kb("claim", third["id"], agent="w")
        more = read_lines(2)
        assert [(e["kind"], e["task"]) for e in more] == [("created", third["id"]), ("claimed", third["id"])]
        assert all(set(e) == EVENT_KEYS for e in first + more)
    finally:
        proc.kill()
        proc.wait()
        selector.close()
        proc.stdout.close()
        proc.stderr.close()


def test_follow_with_filters_and_since(kb):
    a = kb("create", "a").json["id"]
    cursor = kb("event", "list").json["cursor"]
    b = kb("create", "b").json["id"]
    kb("claim", a, agent="w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env["KANBAN_DB"] = str(kb.path)
    proc = subprocess.Popen([str(KANBAN), "event", "list", "--follow", "--since", cursor, "--kind", "created"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = proc.stdout.readline()
        assert json.loads(line)["task"] == b
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_follow_stops_quietly_on_sigint(kb):
    import signal

    kb("create", "a")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env["KANBAN_DB"] = str(kb.path)
    proc = subprocess.Popen([str(KANBAN), "event", "list", "--follow"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    first = proc.stdout.readline()
    assert json.loads(first)["kind"] == "created"
    proc.send_signal(signal.SIGINT)
    with reaped(proc):
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130 and out == "" and "Traceback" not in err
