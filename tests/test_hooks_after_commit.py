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
