"""Hooks (SPEC §7): post-<verb> after the commit, pre-complete before it; never on stdout."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

KANBAN = Path(__file__).resolve().parent.parent / "bin" / "kanban"
T0 = 1_900_000_000
CODES = {"usage", "invalid", "not_found", "conflict", "lease_lost", "forbidden", "cycle", "busy",
         "hook_rejected", "db_error", "internal"}

RECORDER = f"""#!{sys.executable}
# records what a hook receives, then makes noise on both of its outputs
import json, os, sys
payload = sys.stdin.read()
record = {{"name": os.path.basename(sys.argv[0]), "stdin": json.loads(payload),
          "env": {{k: os.environ.get(k) for k in
                  ("KANBAN_EVENT", "KANBAN_TASK_ID", "KANBAN_AGENT", "KANBAN_DB")}}}}
with open(os.environ["HOOK_LOG"], "a") as log:
    log.write(json.dumps(record) + "\\n")
print("HOOK-STDOUT-NOISE {{not json")
print("HOOK-STDERR-NOISE", file=sys.stderr)
"""


def write_hook(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    path.chmod(0o755)
    return path


def assert_error(res, code):
    assert res.rc == 2, res
    assert res.out == "", res
    lines = [line for line in res.err.splitlines() if line.startswith("{")]
    assert len(lines) == 1, res
    doc = json.loads(lines[0])
    assert doc["code"] == code and doc["code"] in CODES, res
    return doc


@pytest.fixture
def hooks(kb, tmp_path):
    folder = kb.path.parent / "hooks.d"
    folder.mkdir()
    log = tmp_path / "hook-log.jsonl"

    def records():
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]
    hooks_api = type("Hooks", (), {})()
    hooks_api.folder = folder
    hooks_api.log = log
    hooks_api.env = {"HOOK_LOG": str(log)}
    hooks_api.records = records
    return hooks_api


def one_json_document(res):
    """stdout is exactly one JSON document (plus its newline)."""
    assert res.out.endswith("\n") and res.out.count("\n") == 1, res
    return json.loads(res.out)


def test_post_claim_gets_event_and_environment(kb, hooks):
    write_hook(hooks.folder, "post-claim", RECORDER)
    task = kb("create", "t", env=hooks.env).json
    res = kb("claim", agent="w1", env=hooks.env)
    assert res.rc == 0
    claimed = one_json_document(res)
    assert claimed["id"] == task["id"]
    assert "HOOK-STDOUT-NOISE" in res.err and "HOOK-STDERR-NOISE" in res.err
    [record] = hooks.records()
    assert record["env"] == {"KANBAN_EVENT": "claimed", "KANBAN_TASK_ID": task["id"], "KANBAN_AGENT": "w1",
                             "KANBAN_DB": str(kb.path)}
    event = record["stdin"]
    assert set(event) == {"id", "task", "kind", "actor", "at", "data"}
    assert event["kind"] == "claimed" and event["task"] == task["id"] and event["actor"] == "w1"
    assert event["data"]["token"] == claimed["lease_token"]
    logged = kb("event", "list", "--kind", "claimed").json["events"]
    assert logged == [event]


def test_every_post_hook_fires(kb, hooks):
    for verb in ("create", "claim", "complete", "block", "unblock", "approve", "reject", "cancel",
                 "reopen", "release", "expire"):
        write_hook(hooks.folder, f"post-{verb}", RECORDER)
    env = dict(hooks.env, KANBAN_NOW=str(T0))
    later = dict(hooks.env, KANBAN_NOW=str(T0 + 3600))
    a = kb("create", "a", env=env).json["id"]
    tok = kb("claim", a, "--lease", "1m", agent="w1", env=env).json["lease_token"]
    kb("lease", "reap", env=later)
    tok = kb("claim", a, agent="w1", env=later).json["lease_token"]
    kb("lease", "release", a, "--token", tok, agent="w1", env=later)
    tok = kb("claim", a, agent="w1", env=later).json["lease_token"]
    kb("block", a, "--reason", "stuck", "--token", tok, agent="w1", env=later)
    kb("unblock", a, env=later)
    tok = kb("claim", a, agent="w1", env=later).json["lease_token"]
    kb("complete", a, "--token", tok, "--review", agent="w1", env=later)
    kb("reject", a, "--reason", "again", agent="r1", env=later)
    tok = kb("claim", a, agent="w1", env=later).json["lease_token"]
    kb("complete", a, "--token", tok, "--review", agent="w1", env=later)
    kb("approve", a, agent="r1", env=later)
    kb("reopen", a, env=later)
    kb("cancel", a, env=later)
    tok = kb("claim", kb("create", "b", env=later).json["id"], agent="w2", env=later).json["lease_token"]
    got = [(r["name"], r["env"]["KANBAN_EVENT"]) for r in hooks.records()]
    assert got == [
        ("post-create", "created"), ("post-claim", "claimed"), ("post-expire", "lease_expired"),
        ("post-claim", "claimed"), ("post-release", "released"), ("post-claim", "claimed"),
        ("post-block", "blocked"), ("post-unblock", "unblocked"), ("post-claim", "claimed"),
        ("post-complete", "submitted_for_review"), ("post-reject", "rejected"), ("post-claim", "claimed"),
        ("post-complete", "submitted_for_review"), ("post-approve", "approved"), ("post-reopen", "reopened"),
        ("post-cancel", "cancelled"), ("post-create", "created"), ("post-claim", "claimed"),
    ]
    assert all(r["stdin"]["kind"] == r["env"]["KANBAN_EVENT"] for r in hooks.records())
    assert kb("event", "list", "--kind", "hook_failed").json["events"] == []
    del tok


def test_a_card_moved_by_hand_fires_the_hook_of_the_verb_it_stands_for(kb, hooks):
    """kanban move records status_changed for most moves; the move is still an unblock,
    a reopen, a completion or a release, and a post-<verb> hook watching for those
    must not miss the ones a person made by hand (the event is the one on stdin)."""
    for verb in ("complete", "block", "unblock", "approve", "cancel", "reopen", "release"):
        write_hook(hooks.folder, f"post-{verb}", RECORDER)
    env = dict(hooks.env, KANBAN_AGENT="alice")
    a = kb("create", "a", env=env).json["id"]
    for column in ("blocked", "todo", "done", "todo", "in_review", "done", "cancelled"):
        args = ["move", a, column] + (["--reason", "stuck"] if column == "blocked" else [])
        assert kb(*args, env=env).rc == 0
    kb("reopen", a, env=env)
    kb("claim", a, agent="w1", env=hooks.env)
    assert kb("move", a, "todo", "--force", env=env).rc == 0
    got = [(r["name"], r["env"]["KANBAN_EVENT"], r["stdin"]["data"].get("from"), r["stdin"]["data"].get("to"))
           for r in hooks.records()]
    assert got == [
        ("post-block", "blocked", "todo", "blocked"), ("post-unblock", "status_changed", "blocked", "todo"),
        ("post-complete", "status_changed", "todo", "done"), ("post-reopen", "status_changed", "done", "todo"),
        ("post-complete", "status_changed", "todo", "in_review"), ("post-approve", "approved", "in_review", "done"),
        ("post-cancel", "cancelled", "done", "cancelled"),
        ("post-reopen", "reopened", "cancelled", None), ("post-release", "status_changed", "in_progress", "todo"),
    ]
    assert all(r["stdin"]["kind"] == r["env"]["KANBAN_EVENT"] and r["env"]["KANBAN_TASK_ID"] == a
               for r in hooks.records())
    assert kb("event", "list", "--kind", "hook_failed").json["events"] == []


def test_post_complete_on_done(kb, hooks):
    write_hook(hooks.folder, "post-complete", RECORDER)
    t = kb("create", "t").json["id"]
    tok = kb("claim", agent="w1").json["lease_token"]
    res = kb("complete", t, "--token", tok, "--summary", "all good", agent="w1", env=hooks.env)
    assert one_json_document(res)["status"] == "done"
    [record] = hooks.records()
    assert record["stdin"]["kind"] == "completed" and record["stdin"]["data"]["summary"] == "all good"


def test_hooks_in_a_dot_d_folder_run_in_order(kb, hooks):
    write_hook(hooks.folder / "post-create.d", "20-second", RECORDER)
    write_hook(hooks.folder / "post-create.d", "10-first", RECORDER)
    write_hook(hooks.folder, "post-create", RECORDER)
    (hooks.folder / "post-create.d" / "30-not-executable").write_text("#!/bin/sh\nexit 1\n")
    res = kb("create", "t", env=hooks.env)
    one_json_document(res)
    assert [r["name"] for r in hooks.records()] == ["post-create", "10-first", "20-second"]


def test_hooks_dir_from_environment(kb, hooks, tmp_path):
    elsewhere = tmp_path / "my hooks"  # a space: hooks never pass through a shell
    write_hook(elsewhere, "post-create", RECORDER)
    write_hook(hooks.folder, "post-create", "#!/bin/sh\necho default-folder-ran >&2\n")
    res = kb("create", "t", env=dict(hooks.env, KANBAN_HOOKS_DIR=str(elsewhere)))
    one_json_document(res)
    assert len(hooks.records()) == 1 and "default-folder-ran" not in res.err


def test_failing_hook_leaves_hook_failed_and_the_command_stands(kb, hooks):
    write_hook(hooks.folder, "post-claim", "#!/bin/sh\necho 'it broke' >&2\nexit 3\n")
    t = kb("create", "t").json["id"]
    res = kb("claim", agent="w1")
    assert res.rc == 0
    claimed = one_json_document(res)
    assert claimed["id"] == t and claimed["status"] == "in_progress"
    assert "it broke" in res.err
    assert kb("show", t).json["status"] == "in_progress"
    failed = kb("event", "list", "--kind", "hook_failed").json["events"]
    assert len(failed) == 1 and failed[0]["task"] == t
    claimed_event = kb("event", "list", "--kind", "claimed").json["events"][0]
    assert failed[0]["data"]["event"] == claimed_event["id"]
    assert failed[0]["data"]["hook"].endswith("post-claim")
    # the token still works: nothing was undone
    done = kb("complete", t, "--token", claimed["lease_token"], agent="w1")
    assert done.rc == 0 and done.json["status"] == "done"


def test_hanging_hook_is_killed_after_the_timeout(kb, hooks, tmp_path):
    marker = tmp_path / "grandchild-survived"
    write_hook(hooks.folder, "post-create",
               f"#!/bin/sh\n(sleep 2; touch '{marker}') &\nsleep 60\n")
    start = time.monotonic()
    res = kb("create", "t", env={"KANBAN_HOOK_TIMEOUT": "1s"}, timeout=30)
    elapsed = time.monotonic() - start
    assert res.rc == 0 and one_json_document(res)["status"] == "todo"
    assert elapsed < 8, elapsed
    failed = kb("event", "list", "--kind", "hook_failed").json["events"]
    assert len(failed) == 1 and "timed out" in failed[0]["data"]["reason"]
    time.sleep(max(0.0, start + 2.8 - time.monotonic()))
    assert not marker.exists(), "the hook's children outlived the timeout"


def _alive(pid):
    """Is process `pid` running (not gone, not a zombie waiting for its parent)?"""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and relies on coreutils timeout(1)")
@pytest.mark.parametrize("hook", ["post-create", "pre-complete"])
def test_a_hook_outlives_a_killed_command_by_no_more_than_its_timeout(kb, hooks, tmp_path, hook):
    """SIGKILL the command while its hook hangs: nobody is left to kill the hook at
    KANBAN_HOOK_TIMEOUT but the hook's own watchdog, which kills it (and what it started
    in its group) a second after the timeout, instead of letting it run on for good."""
    import signal

    pids = tmp_path / "pids"
    write_hook(hooks.folder, hook, f"#!/bin/sh\nsleep 60 &\necho $$ $! > '{pids}.tmp'\nmv '{pids}.tmp' '{pids}'\n"
               "wait\n")
    if hook == "pre-complete":
        task = kb("create", "t").json["id"]
        token = kb("claim", agent="w1").json["lease_token"]
        argv = [str(KANBAN), "complete", task, "--token", str(token)]
    else:
        argv = [str(KANBAN), "create", "t"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update(KANBAN_DB=str(kb.path), KANBAN_AGENT="w1", KANBAN_HOOK_TIMEOUT="2s")
    command = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not pids.exists():
            assert time.monotonic() < deadline and command.poll() is None, "the hook never started"
            time.sleep(0.02)
        started = time.monotonic()
        command.send_signal(signal.SIGKILL)
        command.wait()
        hook_pid, child_pid = (int(n) for n in pids.read_text().split())
        assert _alive(hook_pid) and _alive(child_pid)  # the command is gone; its hook hangs on
        while (_alive(hook_pid) or _alive(child_pid)) and time.monotonic() < started + 10:
            time.sleep(0.05)
        assert not _alive(hook_pid) and not _alive(child_pid), "the hook outlived its timeout"
        assert time.monotonic() - started < 5  # 2 s and the watchdog's 1 s grace, not 60 s
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()


def test_a_hook_with_no_interpreter_line_never_runs_through_a_shell(kb, hooks, tmp_path):
    """A hook the kernel cannot run (a script with no #! line) fails as a hook: its
    commands are not handed to /bin/sh (which execvp, and so timeout(1), would do)."""
    marker = tmp_path / "ran-in-a-shell"
    write_hook(hooks.folder, "post-create", f"touch '{marker}'\n")
    res = kb("create", "t")
    assert res.rc == 0 and one_json_document(res)["title"] == "t"
    assert not marker.exists()
    failed = kb("event", "list", "--kind", "hook_failed").json["events"]
    assert len(failed) == 1 and failed[0]["data"]["hook"].endswith("post-create")


def test_pre_complete_refusal(kb, hooks):
    write_hook(hooks.folder, "pre-complete", f"""#!{sys.executable}
import json, os, sys
doc = json.load(sys.stdin)
with open(os.environ["HOOK_LOG"], "a") as log:
    log.write(json.dumps({{"name": "pre-complete", "stdin": doc, "env": {{}}}}) + "\\n")
print("3 tests failed: test_login", file=sys.stderr)
sys.exit(1)
""")
    t = kb("create", "t").json["id"]
    tok = kb("claim", agent="w1").json["lease_token"]
    before = (kb("list").out, kb("event", "list").out)
    res = kb("complete", t, "--token", tok, "--summary", "s", agent="w1", env=hooks.env)
    doc = assert_error(res, "hook_rejected")
    assert "3 tests failed: test_login" in doc["detail"]
    assert (kb("list").out, kb("event", "list").out) == before
    assert kb("show", t).json["status"] == "in_progress"
    [record] = hooks.records()
    assert record["stdin"]["task"]["id"] == t and record["stdin"]["actor"] == "w1"
    # --no-verify skips it, as in git
    res = kb("complete", t, "--token", tok, "--no-verify", agent="w1", env=hooks.env)
    assert res.rc == 0 and one_json_document(res)["status"] == "done"
    assert len(hooks.records()) == 1


def test_a_pre_complete_refusal_is_one_json_line_on_stderr(kb, hooks):
    """Any error is one JSON line on stderr (SPEC 3): a refusing pre-complete hook's own
    output is in the error's `detail`, not printed before it; a hook that lets the
    completion go on has its output passed on as any hook's."""
    write_hook(hooks.folder, "pre-complete",
               "#!/bin/sh\necho 'NOISE-ON-STDOUT'\necho '3 tests failed' >&2\nexit 1\n")
    t = kb("create", "t").json["id"]
    tok = kb("claim", agent="w1").json["lease_token"]
    res = kb("complete", t, "--token", tok, agent="w1")
    doc = assert_error(res, "hook_rejected")
    assert res.err.count("\n") == 1 and json.loads(res.err) == doc, res.err
    assert "3 tests failed" in doc["detail"] and "NOISE-ON-STDOUT" in doc["detail"]
    write_hook(hooks.folder, "pre-complete", "#!/bin/sh\necho 'checks passed' >&2\n")
    res = kb("complete", t, "--token", tok, agent="w1")
    assert res.rc == 0 and one_json_document(res)["status"] == "done"
    assert "checks passed" in res.err


@pytest.mark.skipif(not shutil.which("script"), reason="script(1) is not installed (util-linux)")
def test_a_pre_complete_hook_shows_its_output_live_on_a_terminal(kb, hooks, tmp_path):
    """At a terminal a person sees a pre-complete hook's output as it comes (a test run
    can take minutes), then the refusal."""
    write_hook(hooks.folder, "pre-complete", "#!/bin/sh\necho 'running the tests' >&2\nexit 1\n")
    t = kb("create", "t").json["id"]
    tok = kb("claim", agent="w1").json["lease_token"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update(KANBAN_DB=str(kb.path), KANBAN_AGENT="w1")
    command = f"{KANBAN} complete {t} --token {tok}"
    proc = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, env=env,
                          timeout=60)
    screen = proc.stdout.replace("\r", "")
    assert "running the tests" in screen and screen.index("running the tests") < screen.index('"hook_rejected"')


def test_pre_complete_that_passes(kb, hooks):
    write_hook(hooks.folder, "pre-complete", "#!/bin/sh\ncat >/dev/null\necho checking >&2\necho out\nexit 0\n")
    t = kb("create", "t").json["id"]
    tok = kb("claim", agent="w1").json["lease_token"]
    res = kb("complete", t, "--token", tok, agent="w1")
    assert res.rc == 0 and one_json_document(res)["status"] == "done"


def test_pre_complete_checks_the_token_first(kb, hooks):
    write_hook(hooks.folder, "pre-complete", f"#!/bin/sh\ntouch '{hooks.log}'\nexit 0\n")
    t = kb("create", "t").json["id"]
    tok = kb("claim", agent="w1").json["lease_token"]
    assert_error(kb("complete", t, "--token", tok + 5, agent="w1"), "lease_lost")
    assert not hooks.log.exists()


def test_pre_complete_timeout_refuses(kb, hooks):
    write_hook(hooks.folder, "pre-complete", "#!/bin/sh\nsleep 60\n")
    t = kb("create", "t").json["id"]
    tok = kb("claim", agent="w1").json["lease_token"]
    res = kb("complete", t, "--token", tok, agent="w1", env={"KANBAN_HOOK_TIMEOUT": "1s"}, timeout=30)
    assert_error(res, "hook_rejected")
    assert kb("show", t).json["status"] == "in_progress"


def test_batch_complete_runs_pre_complete(kb, hooks):
    write_hook(hooks.folder, "pre-complete", "#!/bin/sh\necho nope >&2\nexit 1\n")
    t = kb("create", "t").json["id"]
    tok = kb("claim", agent="w1").json["lease_token"]
    doc = assert_error(kb("batch", "complete", f"{t}:{tok}", agent="w1"), "hook_rejected")
    assert "nope" in doc["detail"]
    res = kb("batch", "complete", f"{t}:{tok}", "--no-verify", agent="w1")
    assert res.rc == 0 and res.json[0]["status"] == "done"


def test_shell_metacharacters_are_inert(kb, hooks, tmp_path):
    pwned = tmp_path / "pwned"
    write_hook(hooks.folder, "post-create", RECORDER)
    write_hook(hooks.folder, "post-claim", RECORDER)
    title = f"$(touch {pwned}) `touch {pwned}`; touch {pwned} && echo hi"
    task = kb("create", title, "--body", f"$(touch {pwned})", env=hooks.env)
    assert task.rc == 0 and task.json["title"] == title
    kb("claim", agent=f"w1; touch {pwned}", env=hooks.env)
    assert not pwned.exists()
    records = hooks.records()
    assert records[0]["stdin"]["data"]["title"] == title
    assert records[1]["env"]["KANBAN_AGENT"] == f"w1; touch {pwned}"


def test_hook_may_call_kanban_after_the_commit(kb, hooks):
    write_hook(hooks.folder, "post-claim",
               f'#!/bin/sh\nexec "{KANBAN}" comment "$KANBAN_TASK_ID" --message "seen by hook"\n')
    t = kb("create", "t").json["id"]
    res = kb("claim", agent="w1", timeout=30)
    assert res.rc == 0 and one_json_document(res)["id"] == t
    assert [c["body"] for c in kb("show", t).json["comments"]] == ["seen by hook"]


def test_loud_hook_cannot_corrupt_stdout(kb, hooks):
    write_hook(hooks.folder, "post-create",
               f"#!{sys.executable}\nimport sys\nsys.stdout.write('x' * 300000)\nsys.stdout.flush()\n")
    res = kb("create", "t")
    assert res.rc == 0 and one_json_document(res)["title"] == "t"
    # the first 64 KB are shown, the rest is read and dropped, and the cut is said
    assert 64 * 1024 <= res.err.count("x") < 70000 and "only the first 65536 are shown" in res.err, res.err[-300:]


def test_writable_hook_folder_is_refused(kb, hooks):
    write_hook(hooks.folder, "post-create", RECORDER)
    os.chmod(hooks.folder, 0o777)
    try:
        res = kb("create", "t", env=hooks.env)
    finally:
        os.chmod(hooks.folder, 0o755)
    assert res.rc == 0 and one_json_document(res)["title"] == "t"
    assert hooks.records() == [] and "warning" in res.err


def test_hook_that_ignores_a_large_payload(kb, hooks):
    write_hook(hooks.folder, "post-complete", "#!/bin/sh\nexit 0\n")
    write_hook(hooks.folder, "pre-complete", "#!/bin/sh\nexit 0\n")
    t = kb("create", "t").json["id"]
    tok = kb("claim", agent="w1").json["lease_token"]
    res = kb("complete", t, "--token", tok, "--summary", "s" * 99_000, agent="w1")
    assert res.rc == 0 and one_json_document(res)["status"] == "done"
    assert kb("event", "list", "--kind", "hook_failed").json["events"] == []


# -- nasty hooks: fork, linger, setsid, ignore SIGTERM, print megabytes --------------------------

NASTY_PRE_COMPLETE = {
    # a background child left behind by a hook that passed: not a refusal, and not waited for
    "linger": ("sleep 30 &\nexit 0\n", True),
    "linger-holding-output": ("(sleep 30; echo late) &\necho passing\nexit 0\n", True),
    # a child in a session of its own holding the output pipe: the command does not wait for it
    "setsid": ("setsid sleep 30 &\nexit 0\n", True),
    "setsid-then-hang": ("setsid sleep 30 &\nsleep 30\n", False),
    # SIGTERM means nothing to it: the group is killed outright
    "ignore-sigterm": ("trap '' TERM\nsleep 30\nsleep 30\n", False),
    "megabytes": ("head -c 5000000 /dev/zero | tr '\\0' x\nexit 0\n", True),
    "megabytes-forever": ("yes nasty\n", False),
    "fork-bomb-ish": ("for i in 1 2 3 4 5 6 7 8; do (sleep 30) & done\nexit 0\n", True),
}


@pytest.mark.parametrize("name", sorted(NASTY_PRE_COMPLETE))
def test_nasty_pre_complete_hooks_are_bounded(kb, hooks, name):
    body, passes = NASTY_PRE_COMPLETE[name]
    write_hook(hooks.folder, "pre-complete", "#!/bin/sh\n" + body)
    t = kb("create", "t").json["id"]
    tok = kb("claim", agent="w1").json["lease_token"]
    start = time.monotonic()
    res = kb("complete", t, "--token", tok, agent="w1", env={"KANBAN_HOOK_TIMEOUT": "2s"}, timeout=60)
    elapsed = time.monotonic() - start
    assert elapsed < 6, (name, elapsed)  # the timeout and a little, never the children's life
    assert len(res.err) < 80_000, (name, len(res.err))
    if passes:
        assert res.rc == 0 and one_json_document(res)["status"] == "done", res.err[-500:]
    else:
        doc = assert_error(res, "hook_rejected")
        assert "timed out" in doc["error"], doc
        assert kb("show", t).json["status"] == "in_progress"


@pytest.mark.parametrize("body", ["sleep 30 &\nexit 1\n", "setsid sleep 30 &\nexit 0\n",
                                  "trap '' TERM\nsleep 30\n", "head -c 3000000 /dev/urandom\n"])
def test_nasty_post_hooks_never_hold_the_caller(kb, hooks, body):
    """The caller reads the command's output to its end: a hook's children must not keep
    it open, and a hook that hangs is killed at the timeout."""
    write_hook(hooks.folder, "post-create", "#!/bin/sh\n" + body)
    start = time.monotonic()
    res = kb("create", "t", env={"KANBAN_HOOK_TIMEOUT": "2s"}, timeout=60)
    assert time.monotonic() - start < 6
    assert res.rc == 0 and one_json_document(res)["title"] == "t"
    assert len(res.err) < 80_000
