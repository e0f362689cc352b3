"""After the commit a command can no longer fail: hook trouble is reported, never raised."""
import os


def make_hook(kb, name, body):
    folder = kb.path.parent / "hooks.d"
    folder.mkdir(exist_ok=True)
    hook = folder / name
    hook.write_text("#!/bin/sh\n" + body)
    hook.chmod(0o755)
    return hook


def test_bad_hook_timeout_keeps_the_command(kb, tmp_path):
    marker = tmp_path / "ran"
    make_hook(kb, "post-create", f"cat > {marker}\n")
    res = kb("create", "still created", env={"KANBAN_HOOK_TIMEOUT": "soon"})
    assert res.rc == 0, res
    assert res.json["title"] == "still created"
    assert "KANBAN_HOOK_TIMEOUT" in res.err
    assert marker.exists() and '"kind": "created"' in marker.read_text()


def test_unrunnable_hook_is_a_hook_failed_event(kb):
    hook = make_hook(kb, "post-create", "exit 0\n")
    hook.write_text("#!/nonexistent/interpreter\n")
    os.chmod(hook, 0o755)
    res = kb("create", "created anyway")
    assert res.rc == 0 and res.json["created"] is True
    kinds = [e["kind"] for e in kb("event", "list", "--task", res.json["id"]).json["events"]]
    assert kinds == ["created", "hook_failed"]


HOLD_LOCK = """import fcntl, os, sys, time
fd = os.open(sys.argv[1] + ".lock", os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
time.sleep(float(sys.argv[3]))
"""


def test_commit_then_fail_claim_keeps_its_answer(kb, tmp_path):
    """A failing post-claim hook whose failure cannot be recorded (another process holds
    the board past KANBAN_BUSY_TIMEOUT): the claim committed, so it exits 0 with its task,
    and a caller that trusts the answer never claims twice."""
    import sys
    import time

    holder = tmp_path / "hold.py"
    holder.write_text(HOLD_LOCK)
    ready = tmp_path / "locked"
    make_hook(kb, "post-claim",
              f"{sys.executable} {holder} {kb.path} {ready} 3 </dev/null >/dev/null 2>&1 &\n"
              f"while [ ! -e {ready} ]; do sleep 0.01; done\n"
              "echo 'post-claim refuses' >&2\nexit 1\n")
    for title in ("first", "second"):
        assert kb("create", title).rc == 0
    started = time.monotonic()
    res = kb("claim", agent="w1", env={"KANBAN_BUSY_TIMEOUT": "300ms"})
    assert res.rc == 0, res
    assert res.json["title"] == "first" and res.json["lease_token"], res
    assert "not recorded" in res.err and "busy" not in res.out, res
    assert time.monotonic() - started < 3, "the claim waited for the lock holder"
    time.sleep(max(0, 3.2 - (time.monotonic() - started)))  # the holder lets go
    claimed = kb("list", "--status", "in_progress").json["tasks"]
    assert [t["title"] for t in claimed] == ["first"]
    kinds = [e["kind"] for e in kb("event", "list", "--task", res.json["id"]).json["events"]]
    assert kinds.count("claimed") == 1 and "hook_failed" not in kinds, kinds
