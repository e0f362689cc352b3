"""kanban claim: order, gates, --project, --wait, --exit-code, and a many-process race (SPEC §5)."""
import json
import os
import subprocess
import textwrap
import time

from conftest import KANBAN, assert_error, default_sigint, reaped


def snapshot(kb):
    return kb("list").out, kb("event", "list", "--limit", "100000").out


def test_claim_answer_has_a_lease_token(kb):
    task = kb("create", "one", env={"KANBAN_NOW": "2030-01-01T00:00:00Z"}).json
    res = kb("claim", "--lease", "10m", agent="w1", env={"KANBAN_NOW": "2030-01-01T00:00:00Z"})
    assert res.rc == 0 and res.err == ""
    claimed = res.json
    assert claimed["id"] == task["id"] and claimed["status"] == "in_progress"
    assert claimed["claimed_by"] == "w1" and claimed["lease_until"] == "2030-01-01T00:10:00Z"
    assert type(claimed["lease_token"]) is int and claimed["ready"] is False
    events = kb("event", "list", "--kind", "claimed").json["events"]
    assert len(events) == 1 and events[0]["actor"] == "w1" and events[0]["task"] == task["id"]
    assert events[0]["data"]["token"] == claimed["lease_token"]


def test_default_lease_is_15m_and_env_overrides(kb):
    now = {"KANBAN_NOW": "2030-01-01T00:00:00Z"}
    kb("create", "a", env=now)
    kb("create", "b", env=now)
    assert kb("claim", agent="w1", env=now).json["lease_until"] == "2030-01-01T00:15:00Z"
    env = dict(now, KANBAN_LEASE="2h")
    assert kb("claim", agent="w1", env=env).json["lease_until"] == "2030-01-01T02:00:00Z"


def test_tokens_increase_across_the_board(kb):
    for n in range(4):
        kb("create", f"t{n}")
    tokens = [kb("claim", agent=f"w{n}").json["lease_token"] for n in range(4)]
    assert tokens == sorted(tokens) and len(set(tokens)) == 4


def test_claim_order_priority_then_created_then_id(kb):
    t = {}
    for name, prio, at in [("low-old", 1, 100), ("high-new", 5, 300), ("high-old", 5, 200),
                           ("mid", 3, 50), ("high-old-twin", 5, 200)]:
        t[name] = kb("create", name, "--priority", str(prio),
                     env={"KANBAN_NOW": 1_900_000_000 + at}).json["id"]
    later = {"KANBAN_NOW": 1_900_001_000}
    order = [kb("claim", agent="w", env=later).json["id"] for _ in range(5)]
    assert order == [t["high-old"], t["high-old-twin"], t["high-new"], t["mid"], t["low-old"]]
    assert kb("claim", agent="w", env=later).json == {}


def test_negative_priority_goes_last(kb):
    kb("create", "neg", "--priority", "-5")
    zero = kb("create", "zero").json
    assert kb("claim", agent="w").json["id"] == zero["id"]


def test_nothing_to_claim_and_exit_code(kb):
    res = kb("claim", agent="w1")
    assert res.rc == 0 and res.json == {} and res.err == ""
    res = kb("claim", "--exit-code", agent="w1")
    assert res.rc == 1 and res.json == {}
    kb("create", "x")
    res = kb("claim", "--exit-code", agent="w1")
    assert res.rc == 0 and res.json["title"] == "x"


def test_claim_next_alias(kb):
    task = kb("create", "x").json
    res = kb("claim-next", agent="w1")
    assert res.rc == 0 and res.json["id"] == task["id"] and "lease_token" in res.json


def test_agent_is_required(kb):
    kb("create", "x")
    before = snapshot(kb)
    assert_error(kb("claim"), "usage")
    assert snapshot(kb) == before
    res = kb("claim", "--agent", "a1")
    assert res.rc == 0 and res.json["claimed_by"] == "a1"


def test_role_boundary(kb):
    backend = kb("create", "backend work", "--role", "backend", "--priority", "9").json
    free = kb("create", "anyone").json
    # an agent without the role skips it
    assert kb("claim", agent="w1").json["id"] == free["id"]
    assert kb("claim", agent="w1").json == {}
    assert kb("claim", "--role", "frontend", agent="w1").json == {}
    # a ready task: who may claim it does not enter into `ready`
    assert kb("show", backend["id"]).json["ready"] is True
    got = kb("claim", agent="w2", env={"KANBAN_ROLE": "backend"}).json
    assert got["id"] == backend["id"]


def test_role_holder_also_takes_open_tasks(kb):
    free = kb("create", "anyone", "--priority", "5").json
    role = kb("create", "qa only", "--role", "qa").json
    assert kb("claim", "--role", "qa", agent="w").json["id"] == free["id"]
    assert kb("claim", "--role", "qa", agent="w").json["id"] == role["id"]


def test_assignee(kb):
    mine = kb("create", "for w2", "--assignee", "w2", "--priority", "9").json
    free = kb("create", "anyone").json
    assert kb("claim", agent="w1").json["id"] == free["id"]
    assert kb("claim", agent="w1").json == {}
    assert kb("claim", agent="w2").json["id"] == mine["id"]


def test_claim_by_id_gates(kb):
    mine = kb("create", "for w2", "--assignee", "w2").json
    role = kb("create", "needs qa", "--role", "qa").json
    both = kb("create", "qa and w3", "--role", "qa", "--assignee", "w3").json
    before = snapshot(kb)
    assert_error(kb("claim", mine["id"], agent="w1"), "forbidden")
    assert_error(kb("claim", role["id"], agent="w1"), "forbidden")
    assert_error(kb("claim", role["id"], "--role", "dev", agent="w1"), "forbidden")
    assert_error(kb("claim", both["id"], "--role", "qa", agent="w1"), "forbidden")
    assert_error(kb("claim", both["id"], agent="w3"), "forbidden")
    assert snapshot(kb) == before
    assert kb("claim", mine["id"], agent="w2").json["claimed_by"] == "w2"
    assert kb("claim", role["id"], "--role", "qa", agent="w1").json["claimed_by"] == "w1"
    assert kb("claim", both["id"], "--role", "qa", agent="w3").json["claimed_by"] == "w3"


def test_claim_by_id_skips_the_order(kb):
    kb("create", "first", "--priority", "9")
    low = kb("create", "low", "--priority", "-1").json
    got = kb("claim", low["id"], agent="w1").json
    assert got["id"] == low["id"] and got["status"] == "in_progress"
    # ids are accepted in any case and as bare numbers
    other = kb("create", "other").json
    number = other["id"].split("-")[1]
    assert kb("claim", number, agent="w1").json["id"] == other["id"]


def test_claim_by_id_errors(kb):
    goal = kb("create", "a goal", "--kind", "goal").json
    dep = kb("create", "dep").json
    waiting = kb("create", "waits", "--depends-on", dep["id"]).json
    later = kb("create", "later", "--not-before", "2099-01-01T00:00:00Z").json
    taken = kb("create", "taken").json
    kb("claim", taken["id"], agent="w9")
    done = kb("create", "finished").json
    tok = kb("claim", done["id"], agent="w9").json["lease_token"]
    kb("complete", done["id"], "--token", tok, agent="w9")
    before = snapshot(kb)
    assert_error(kb("claim", waiting["id"], agent="w1"), "conflict")  # dep not done
    assert_error(kb("claim", later["id"], agent="w1"), "conflict")  # not_before ahead
    assert_error(kb("claim", taken["id"], agent="w1"), "conflict")  # in progress
    assert_error(kb("claim", done["id"], agent="w1"), "conflict")
    assert_error(kb("claim", goal["id"], agent="w1"), "conflict")
    assert_error(kb("claim", "TASK-999", agent="w1"), "not_found")
    assert_error(kb("claim", "banana", agent="w1"), "invalid")
    assert_error(kb("claim", "--lease", "-5m", agent="w1"), "invalid")
    assert_error(kb("claim", "--lease", "0", agent="w1"), "invalid")
    assert_error(kb("claim", "--lease", "soon", agent="w1"), "invalid")
    assert_error(kb("claim", "--wait", "forever", agent="w1"), "invalid")
    assert_error(kb("claim", "--bogus", agent="w1"), "usage")
    assert snapshot(kb) == before


def test_project_filter(kb):
    kb("create", "web task", "--project", "web", "--priority", "9")
    api = kb("create", "api task", "--project", "api").json
    assert kb("claim", "--project", "api", agent="w").json["id"] == api["id"]
    assert kb("claim", "--project", "api", agent="w").json == {}
    assert kb("claim", "--project", "web", agent="w").json["project"] == "web"


def test_deps_and_schedule_gate_the_pick(kb):
    now = 1_900_000_000
    env = {"KANBAN_NOW": now}
    a = kb("create", "a", env=env).json
    b = kb("create", "b", "--depends-on", a["id"], "--priority", "9", env=env).json
    c = kb("create", "c", "--not-before", "+1h", "--priority", "8", env=env).json
    got = kb("claim", agent="w", env=env).json
    assert got["id"] == a["id"]
    assert kb("claim", agent="w", env=env).json == {}
    kb("complete", a["id"], "--token", got["lease_token"], agent="w", env=env)
    assert kb("claim", "--lease", "1d", agent="w", env=env).json["id"] == b["id"]
    assert kb("claim", agent="w", env={"KANBAN_NOW": now + 3599}).json == {}
    assert kb("claim", agent="w", env={"KANBAN_NOW": now + 3600}).json["id"] == c["id"]


def test_wait_gives_up_with_empty_answer(kb):
    start = time.monotonic()
    res = kb("claim", "--wait", "1s", agent="w1")
    elapsed = time.monotonic() - start
    assert res.rc == 0 and res.json == {}
    assert 0.9 <= elapsed < 5
    res = kb("claim", "--wait", "1s", "--exit-code", agent="w1")
    assert res.rc == 1 and res.json == {}


def test_wait_claims_a_task_created_meanwhile(kb):
    env = dict(os.environ, KANBAN_DB=str(kb.path), KANBAN_AGENT="waiter")
    env.pop("KANBAN_NOW", None)
    waiter = subprocess.Popen([str(KANBAN), "claim", "--wait", "20s"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.6)
        assert waiter.poll() is None, "claim --wait returned before any work existed"
        created = kb("create", "arrives later").json
        started = time.monotonic()
        out, err = waiter.communicate(timeout=15)
        assert time.monotonic() - started < 5
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    got = json.loads(out)
    assert got["id"] == created["id"] and got["claimed_by"] == "waiter"
    assert isinstance(got["lease_token"], int)


def test_wait_with_id_does_not_wait(kb):
    task = kb("create", "x").json
    kb("claim", task["id"], agent="w9")
    start = time.monotonic()
    assert_error(kb("claim", task["id"], "--wait", "5s", agent="w1"), "conflict")
    assert time.monotonic() - start < 4


def test_batch_claim_takes_up_to_n(kb):
    ids = [kb("create", f"t{n}", "--priority", str(n)).json["id"] for n in range(3)]
    got = kb("batch", "claim", "2", agent="w1").json
    assert [t["id"] for t in got] == [ids[2], ids[1]]
    assert all(t["claimed_by"] == "w1" and isinstance(t["lease_token"], int) for t in got)
    got = kb("batch", "claim", "5", agent="w1").json
    assert [t["id"] for t in got] == [ids[0]]
    res = kb("batch", "claim", "5", "--exit-code", agent="w1")
    assert res.rc == 1 and res.json in ([], {})


# -- the race -------------------------------------------------------------------------

WORKER = textwrap.dedent("""\
    #!/bin/sh
    # claim until there is nothing left; one JSON answer per line in $1, errors in $2
    while :; do
        out=$("$KANBAN" claim --exit-code 2>>"$2")
        rc=$?
        if [ $rc -eq 0 ]; then
            printf '%s\\n' "$out" >>"$1"
        elif [ $rc -eq 1 ]; then
            exit 0
        else
            exit $rc
        fi
    done
""")


def test_many_processes_never_double_claim(kb, tmp_path):
    tasks, workers = 200, 40
    batch = "".join(json.dumps({"title": f"race {n}", "priority": n % 7}) + "\n" for n in range(tasks))
    created = kb("create", "--stdin", input=batch).json
    assert len(created) == tasks
    script = tmp_path / "worker.sh"
    script.write_text(WORKER)
    script.chmod(0o755)
    procs = []
    base = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    for n in range(workers):
        env = dict(base, KANBAN=str(KANBAN), KANBAN_DB=str(kb.path), KANBAN_AGENT=f"racer-{n}")
        out, err = tmp_path / f"out-{n}", tmp_path / f"err-{n}"
        out.touch()
        err.touch()
        procs.append((n, subprocess.Popen([str(script), str(out), str(err)], env=env), out, err))
    deadline = time.monotonic() + 100
    for _, proc, _, _ in procs:
        proc.wait(timeout=max(1, deadline - time.monotonic()))
    claims = []
    for n, proc, out, err in procs:
        assert proc.returncode == 0, (n, err.read_text())
        assert err.read_text() == "", (n, err.read_text())  # zero busy (or any) errors
        for line in out.read_text().splitlines():
            doc = json.loads(line)
            assert doc["claimed_by"] == f"racer-{n}"
            claims.append(doc)
    ids = [c["id"] for c in claims]
    assert len(ids) == tasks and len(set(ids)) == tasks, "a task was claimed twice or not at all"
    assert set(ids) == {t["id"] for t in created}
    tokens = [c["lease_token"] for c in claims]
    assert len(set(tokens)) == tasks
    # the event log agrees: one `claimed` event per task, with the claimer's token
    events = kb("event", "list", "--kind", "claimed", "--limit", "1000").json["events"]
    assert len(events) == tasks
    assert sorted(e["task"] for e in events) == sorted(ids)
    by_task = {c["id"]: c for c in claims}
    for e in events:
        assert e["actor"] == by_task[e["task"]]["claimed_by"]
        assert e["data"]["token"] == by_task[e["task"]]["lease_token"]
    # and the board: every task in progress, held by the one who got it
    listed = kb("list", "--limit", "1000").json["tasks"]
    assert all(t["status"] == "in_progress" and t["claimed_by"] == by_task[t["id"]]["claimed_by"]
               for t in listed)
    assert kb("claim", agent="late").json == {}


def test_wait_uses_real_time_even_under_kanban_now(kb):
    start = time.monotonic()
    res = kb("claim", "--wait", "1s", agent="w1", env={"KANBAN_NOW": "1900000000"})
    assert res.rc == 0 and res.json == {}
    assert 0.9 <= time.monotonic() - start < 5


def _fds(pid):
    try:
        return os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []


def test_interrupted_wait_exits_quietly(kb):
    import signal

    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update(KANBAN_DB=str(kb.path), KANBAN_AGENT="w1")
    proc = subprocess.Popen([str(KANBAN), "claim", "--wait", "30s"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    # interrupt it inside the wait, not during interpreter start-up: once it has the board open
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(
            os.path.realpath(f"/proc/{proc.pid}/fd/{fd}") == os.path.realpath(kb.path)
            for fd in _fds(proc.pid)):
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    with reaped(proc):
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130 and out == "" and "Traceback" not in err
    assert kb("event", "list").json["events"] == []
