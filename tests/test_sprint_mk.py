"""kanban.mk and kanban sprint: a Makefile sprint (board, plan, workers and a reviewer)
drains the board, and tells the truth when it cannot: exit status and a summary."""
import contextlib
import os
import re
import signal
import subprocess
import textwrap
import time

import pytest
from conftest import KANBAN, ROOT, run

PLAN = textwrap.dedent("""\
    version: 1
    name: mk-sprint
    goals:
      - key: release
        title: Cut the release
        tasks:
          - {key: notes, title: Write the notes, review: true}
          - {key: tag, title: Tag the commit, depends_on: [notes]}
          - {key: announce, title: Announce it, depends_on: [tag]}
    """)


def make(folder, *targets, timeout=180, **variables):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update(KANBAN_DB=str(folder / ".kanban" / "board.db"), MAKEFLAGS="")
    argv = ["make", "--no-print-directory", "-f", str(ROOT / "kanban.mk"), *targets, f"KANBAN={KANBAN}",
            "KANBAN_WAIT=1s", *(f"{k}={v}" for k, v in variables.items())]
    proc = subprocess.Popen(argv, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the sprint's loops too
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def tasks(folder):
    return run("list", env={"KANBAN_DB": folder / ".kanban" / "board.db"}).json["tasks"]


def test_make_sprint_from_an_empty_folder_drains_the_board(tmp_path):
    (tmp_path / "sprint.yaml").write_text(PLAN)
    proc = make(tmp_path, "sprint", KANBAN_WORK_CMD="true", KANBAN_REVIEW_CMD="true", KANBAN_WORKERS=2)
    assert proc.returncode == 0, proc.stderr
    assert len(tasks(tmp_path)) == 4
    assert {t["status"] for t in tasks(tmp_path)} == {"done"}
    assert "Cut the release" in proc.stdout  # the board is printed at the end
    assert "kanban sprint: done: all 3 task(s) done" in proc.stderr
    # applying the plan again creates nothing new
    again = make(tmp_path, "sprint-plan")
    assert again.returncode == 0, again.stderr
    assert len(tasks(tmp_path)) == 4


def test_a_sprint_without_a_work_command_refuses_to_start(tmp_path):
    (tmp_path / "sprint.yaml").write_text(PLAN)
    proc = make(tmp_path, "sprint")
    assert proc.returncode != 0
    assert "no work command" in proc.stderr and "KANBAN_WORK_CMD=" in proc.stderr and "CMD=" in proc.stderr
    assert not (tmp_path / ".kanban").exists()  # nothing was started
    res = run("sprint", env={"KANBAN_DB": tmp_path / "b.db"})
    assert res.rc == 2 and res.error["code"] == "usage" and "KANBAN_WORK_CMD" in res.error["error"]


def logging_kanban(folder):
    """A KANBAN for make that notes in folder/log when `plan apply` starts and ends (slowly),
    and when a sprint or a board starts, then runs the real kanban."""
    log = folder / "log"
    wrapper = folder / "kanban"
    wrapper.write_text(f"""#!/bin/sh
case "$1 $2" in "plan apply") echo plan-start >> {log}; sleep 1;; sprint*) echo run-start >> {log};;
  board*) echo board >> {log};; esac
"{KANBAN}" "$@"; status=$?
case "$1 $2" in "plan apply") echo plan-end >> {log};; esac
exit $status
""")
    wrapper.chmod(0o755)
    return wrapper, log


@pytest.mark.parametrize("targets", [["sprint-plan", "sprint-run"], ["sprint-lint", "sprint-plan", "sprint-run",
                                                                     "sprint-board"], ["sprint"],
                                     ["sprint-lint", "sprint-plan", "sprint"]])
def test_make_j_keeps_the_plan_before_the_run(tmp_path, targets):
    (tmp_path / "sprint.yaml").write_text(PLAN)
    wrapper, log = logging_kanban(tmp_path)
    proc = make(tmp_path, "-j4", *targets, KANBAN_WORK_CMD="true", KANBAN_REVIEW_CMD="true", KANBAN=wrapper)
    assert proc.returncode == 0, proc.stderr
    board = ["board"] if "sprint-board" in targets or "sprint" in targets else []
    plans = ["plan-start", "plan-end"] * (2 if "sprint-plan" in targets and "sprint" in targets else 1)
    assert log.read_text().split() == [*plans, "run-start", *board]
    assert {t["status"] for t in tasks(tmp_path)} == {"done"}


def test_make_j_sprint_without_a_work_command_applies_no_plan(tmp_path):
    (tmp_path / "sprint.yaml").write_text(PLAN)
    wrapper, log = logging_kanban(tmp_path)
    proc = make(tmp_path, "-j4", "sprint", KANBAN=wrapper)
    assert proc.returncode != 0 and "no work command" in proc.stderr
    assert not log.exists() and not (tmp_path / ".kanban").exists()  # nothing was started


def test_workers_keep_serving_while_a_review_rejects_once(tmp_path):
    (tmp_path / "sprint.yaml").write_text(PLAN)
    state = tmp_path / "state"
    state.mkdir()
    # (make reads `$`: `$$` reaches the shell as `$`)
    reviewer = (f'f={state}/rejected-$$KANBAN_TASK_ID; if [ -e "$$f" ]; then exit 0; fi; '
                'touch "$$f"; echo "the notes miss the upgrade steps" >&2; exit 1')
    proc = make(tmp_path, "sprint", KANBAN_WORK_CMD="sleep 0.2", KANBAN_REVIEW_CMD=reviewer, KANBAN_WORKERS=2)
    assert proc.returncode == 0, proc.stderr
    assert {t["status"] for t in tasks(tmp_path)} == {"done"}
    rejected = run("event", "list", "--kind", "rejected",
                   env={"KANBAN_DB": tmp_path / ".kanban" / "board.db"}).json["events"]
    assert len(rejected) == 1 and "upgrade steps" in rejected[0]["data"]["reason"]


def test_a_task_nobody_can_take_is_reported_not_waited_on(tmp_path):
    db = {"KANBAN_DB": tmp_path / ".kanban" / "board.db"}
    assert run("init", env=db).rc == 0
    fine = run("create", "An ordinary task", env=db).json["id"]
    ghost = run("create", "For a ghost", "--assignee", "ghost", env=db).json["id"]
    dba = run("create", "Needs a DBA", "--role", "dba", env=db).json["id"]
    stuck = run("create", "Will fail", "--assignee", "worker-1", env=db).json["id"]
    cmd = f'if [ "$$KANBAN_TASK_ID" = {stuck} ]; then echo "no disk left" >&2; exit 1; fi'
    proc = make(tmp_path, "sprint", KANBAN_PLAN="none.yaml", KANBAN_WORK_CMD=cmd)
    assert proc.returncode != 0
    status = {t["id"]: t["status"] for t in tasks(tmp_path)}
    assert status == {fine: "done", ghost: "todo", dba: "todo", stuck: "blocked"}
    err = proc.stderr
    assert "kanban sprint: NOT DONE: 1 of 4 task(s) done; left: 2 todo, 1 blocked" in err
    assert f"{ghost}" in err and "nobody can take it: assigned to ghost" in err
    assert f"{dba}" in err and "needs role dba, which no worker has" in err
    assert f"{stuck}" in err and "blocked: " in err and "no disk left" in err


def test_work_waiting_on_a_task_nobody_can_take_is_reported_not_waited_on(tmp_path):
    """A dependency nobody can take (assigned to someone who is not a worker, or in review
    with no reviewer) never finishes, so neither does what waits on it: the sprint ends
    and says so instead of starting idle workers for it forever."""
    db = {"KANBAN_DB": tmp_path / ".kanban" / "board.db"}
    assert run("init", env=db).rc == 0
    ghost = run("create", "For a ghost", "--assignee", "ghost", env=db).json["id"]
    after_ghost = run("create", "After the ghost", "--depends-on", ghost, env=db).json["id"]
    then = run("create", "Then this", "--depends-on", after_ghost, env=db).json["id"]
    reviewed = run("create", "Reviewed work", "--review", env=db).json["id"]
    after_review = run("create", "After the review", "--depends-on", reviewed, env=db).json["id"]
    proc = make(tmp_path, "sprint-run", KANBAN_WORK_CMD="true", timeout=60)
    assert proc.returncode != 0
    status = {t["id"]: t["status"] for t in tasks(tmp_path)}
    assert status == {ghost: "todo", after_ghost: "todo", then: "todo", reviewed: "in_review",
                      after_review: "todo"}
    err = proc.stderr
    assert "nobody can take it: assigned to ghost" in err
    assert f"waits on {ghost} (todo)" in err and f"waits on {after_ghost} (todo)" in err
    assert f"waits on {reviewed} (in_review)" in err


def test_review_work_with_no_reviewer_is_left_and_said(tmp_path):
    db = {"KANBAN_DB": tmp_path / ".kanban" / "board.db"}
    assert run("init", env=db).rc == 0
    task = run("create", "Reviewed work", "--review", env=db).json["id"]
    proc = make(tmp_path, "sprint-run", KANBAN_WORK_CMD="true")
    assert proc.returncode != 0
    assert f"{task}" in proc.stderr and "waiting for a reviewer (no KANBAN_REVIEW_CMD set)" in proc.stderr


@pytest.mark.parametrize("stuck", ["in review, no reviewer", "assigned to nobody", "blocked"])
def test_a_chain_behind_a_task_that_never_moves_ends_the_sprint(tmp_path, stuck):
    """A todo task whose dep waits on one that will never move (in review with no review
    command, assigned to an agent who is not a worker, blocked) is not work coming: the
    sprint ends and names them, where it used to start its idle workers again for ever."""
    db = {"KANBAN_DB": tmp_path / ".kanban" / "board.db"}
    assert run("init", env=db).rc == 0
    first = {"in review, no reviewer": ["--review"], "assigned to nobody": ["--assignee", "ghost"],
             "blocked": []}[stuck]
    head = run("create", "Head", *first, env=db).json["id"]
    if stuck == "blocked":
        assert run("block", head, "--reason", "waiting for the vendor", env=db).rc == 0
    middle = run("create", "Middle", "--depends-on", head, env=db).json["id"]
    tail = run("create", "Tail", "--depends-on", middle, env=db).json["id"]
    proc = make(tmp_path, "sprint-run", timeout=60, KANBAN_WORK_CMD="true", KANBAN_WORKERS=1)
    assert proc.returncode != 0
    assert "kanban sprint: NOT DONE" in proc.stderr
    for task in (head, middle, tail):
        assert task in proc.stderr
    assert f"waits on {middle} (todo)" in proc.stderr


def test_standup_groups_what_changed_by_agent(tmp_path):
    db = {"KANBAN_DB": tmp_path / ".kanban" / "board.db"}
    assert run("init", env=db).rc == 0
    task = run("create", "Write the notes", env=db).json["id"]
    token = run("claim", "--agent", "w1", env=db).json["lease_token"]
    run("complete", task, "--token", str(token), "--summary", "notes written", "--agent", "w1", env=db)
    run("comment", task, "--message", "nice", "--agent", "alice", env=db)
    proc = make(tmp_path, "standup")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.index("alice (1)") < out.index("w1 (2)")
    assert "claimed" in out and "completed" in out and "notes written" in out and "Write the notes" in out
    doc = run("standup", "--format", "json", env=db).json
    assert [e["kind"] for e in doc["agents"]["w1"]] == ["claimed", "completed"]
    assert run("standup", "--since", "1s", env={**db, "KANBAN_NOW": "4102444800"}).out.startswith("Nothing")


def test_standup_since_takes_a_time_as_git_log_does(tmp_path):
    """--since 2026-12-01 (as git log --since): from that moment, UTC unless it says;
    a time after now is refused, and so is what is neither a duration nor a time."""
    db = {"KANBAN_DB": tmp_path / ".kanban" / "board.db"}
    at = {**db, "KANBAN_NOW": "2026-12-02T10:00:00Z"}
    assert run("init", env=db).rc == 0
    run("create", "Yesterday's", "--agent", "w1", env={**db, "KANBAN_NOW": "2026-12-01T10:00:00Z"})
    run("create", "Today's", "--agent", "w1", env=at)
    doc = run("standup", "--since", "2026-12-02", "--format", "json", env=at).json
    assert doc["since"] == "2026-12-02T00:00:00Z"
    assert [e["title"] for e in doc["agents"]["w1"]] == ["Today's"]
    both = run("standup", "--since", "2026-12-01T09:00:00+00:00", "--format", "json", env=at).json
    assert [e["title"] for e in both["agents"]["w1"]] == ["Yesterday's", "Today's"]
    assert run("standup", "--since", "48h", "--format", "json", env=at).json["since"] == "2026-11-30T10:00:00Z"
    for bad in ("2026-12-03", "2026-13-45", "nonsense"):
        res = run("standup", "--since", bad, env=at)
        assert res.rc == 2 and res.out == "" and '"invalid"' in res.err, (bad, res)


def test_a_task_rejected_again_and_again_is_blocked_not_looped_on(tmp_path):
    db = {"KANBAN_DB": tmp_path / ".kanban" / "board.db"}
    assert run("init", env=db).rc == 0
    task = run("create", "Never good enough", "--review", env=db).json["id"]
    proc = make(tmp_path, "sprint-run", KANBAN_WORK_CMD="true", KANBAN_REVIEW_CMD="echo no >&2; exit 1")
    assert proc.returncode != 0
    shown = run("show", task, env=db).json
    assert shown["status"] == "blocked", shown
    times = int(re.search(r"rejected (\d+) times in this sprint", shown["reason"]).group(1))
    assert times >= 3 and f"rejected {times} times in this sprint" in proc.stderr


def test_included_kanban_mk_leaves_the_includers_default_goal(tmp_path):
    """`include kanban.mk` at the top of a Makefile (as this checkout's own does) must not
    make a bare `make` start a sprint; kanban.mk alone still defaults to `sprint`."""
    (tmp_path / "Makefile").write_text(f"include {ROOT / 'kanban.mk'}\n\nmine:\n\t@echo mine here\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env["MAKEFLAGS"] = ""
    proc = subprocess.run(["make", "--no-print-directory", f"KANBAN={KANBAN}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "mine here\n", proc
    alone = make(tmp_path)
    assert alone.returncode != 0 and "no work command, so no sprint" in alone.stderr
    assert not (tmp_path / ".kanban").exists()


@pytest.mark.skipif(not os.uname().sysname == "Linux", reason="the loops follow a SIGKILLed sprint on Linux only")
def test_a_sigkilled_sprint_leaves_no_loop_working_without_it(tmp_path):
    """The loops (kanban work) of a sprint killed outright get SIGTERM: each stops its
    command and gives its task back, instead of working on with nobody watching."""
    db = {"KANBAN_DB": tmp_path / ".kanban" / "board.db"}
    assert run("init", env=db).rc == 0
    task = run("create", "long", env=db).json["id"]
    pidfile = tmp_path / "pid"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update(KANBAN_DB=str(db["KANBAN_DB"]))
    sprint = subprocess.Popen([str(KANBAN), "sprint", "--workers", "1", "--wait", "1s", "--work-cmd",
                               f"echo $$ > {pidfile}.new; mv {pidfile}.new {pidfile}; exec sleep 300"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        command = int(pidfile.read_text())
        assert run("show", task, env=db).json["claimed_by"] == "worker-1"
        sprint.kill()
        sprint.wait(timeout=10)
        deadline = time.monotonic() + 20
        while run("show", task, env=db).json["status"] != "todo" and time.monotonic() < deadline:
            time.sleep(0.2)
        shown = run("show", task, env=db).json
        assert shown["status"] == "todo" and shown["claimed_by"] is None and shown["attempts"] == 0
        assert [e for e in shown["events"] if e["kind"] == "released"]
        with contextlib.suppress(FileNotFoundError), open(f"/proc/{command}/stat") as handle:
            assert handle.read().split(") ")[1][0] in "ZX"  # the loop's command is gone too
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sprint.pid, signal.SIGKILL)  # the loops and commands of a failed test
