"""t0000: the basic contract every verb shares."""


def test_claim_complete_cycle(kb):
    created = kb("create", "first task", "--priority", "3").json
    assert created["created"] is True and created["status"] == "todo" and created["ready"] is True
    claimed = kb("claim", agent="w1").json
    assert claimed["id"] == created["id"] and claimed["status"] == "in_progress"
    assert isinstance(claimed["lease_token"], int)
    done = kb("complete", claimed["id"], "--token", claimed["lease_token"], agent="w1").json
    assert done["status"] == "done" and done["claimed_by"] is None and done["lease_until"] is None


def test_nothing_to_claim(kb):
    res = kb("claim", agent="w1")
    assert res.rc == 0 and res.json == {}
    res = kb("claim", "--exit-code", agent="w1")
    assert res.rc == 1 and res.json == {}


def test_error_contract(kb):
    res = kb("show", "TASK-999")
    assert res.rc == 2 and res.out == ""
    assert res.error["code"] == "not_found" and res.error["retryable"] is False
    res = kb("no-such-verb")
    assert res.rc == 2 and res.out == "" and res.error["code"] == "usage"
    res = kb("claim")
    assert res.rc == 2 and res.error["code"] == "usage"


def test_an_answer_that_cannot_be_written_is_one_json_error(kb, tmp_path):
    """`kanban show ID > /dev/full`: the full disk is said in the one JSON line, exit 2,
    not a Python traceback (and never the interpreter's 'Exception ignored')."""
    import json
    import os
    import subprocess

    from conftest import KANBAN

    if not os.path.exists("/dev/full"):
        import pytest

        pytest.skip("no /dev/full on this system")
    task = kb("create", "t").json["id"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env["KANBAN_DB"] = str(kb.path)
    with open("/dev/full", "w") as full:
        proc = subprocess.run([str(KANBAN), "show", task], stdout=full, stderr=subprocess.PIPE, text=True,
                              env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, lines
    error = json.loads(lines[0])
    assert error["code"] == "internal" and "No space left on device" in error["error"], error


def test_a_closed_standard_stream_is_one_json_error_and_changes_nothing(kb):
    """`kanban create T >&-`: with no stdout there is nowhere to write the answer, so the
    command refuses before it writes; `kanban create --stdin <&-` has nothing to read."""
    import json
    import os
    import subprocess

    from conftest import KANBAN

    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env["KANBAN_DB"] = str(kb.path)

    def closed(fds, *args):
        """Run kanban with the descriptors `fds` closed; stderr captured (unless closed)."""
        return subprocess.run([str(KANBAN), *args], stderr=subprocess.PIPE, text=True, env=env, timeout=60,
                              preexec_fn=lambda: [os.close(fd) for fd in fds])

    def error_of(proc):
        lines = proc.stderr.splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc
        return json.loads(lines[0])

    before = kb("export").out
    for args in (["create", "t"], ["show", "TASK-1"], ["board"]):
        error = error_of(closed((1,), *args))
        assert error["code"] == "internal" and error["error"].startswith("standard output is closed"), error
    assert closed((1, 2), "create", "t").returncode == 2
    for args in (["create", "--stdin"], ["import"], ["plan", "lint", "-"]):
        error = error_of(closed((0,), *args))
        assert error["code"] == "invalid" and error["error"].startswith("standard input is closed"), error
    assert kb("export").out == before
