"""Crash chaos, short: SIGKILLed workers, then the invariant checker (issue 5).

`make soak` runs the same program for minutes (tests/chaos.py); here one round of a
few hundred tasks: on a SQLite file, on the KANBAN_TEST_PG server when one is named,
and on a PostgreSQL cluster of the soak's own, restarted in the middle, where initdb
and pg_ctl are installed.  The checker itself is tested too: a board whose log was tampered
with must be caught, or a clean bill of health would prove nothing.
"""
import copy
import json
import os
import subprocess
import sys

import invariants
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def soak(folder, tasks, round_timeout, timeout, *more):
    """One short round of tests/chaos.py: its report, once it says zero violations, every
    task done or failed, and every stale write refused as lease_lost."""
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "chaos.py"), "--tasks", str(tasks), "--api-workers", "2",
         "--cli-workers", "2", "--reviewers", "2", "--kill-every", "0.2", "--round-timeout", str(round_timeout),
         "--dir", str(folder), "--json", *more],
        capture_output=True, text=True, timeout=timeout)
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr
    report = json.loads(lines[-1])
    assert report["violations"] == 0, "\n".join(lines[:-1])
    assert proc.returncode == 0, proc.stderr
    assert report["tasks"] == tasks and report["outcome"]["other"] == 0
    assert report["outcome"]["done"] + report["outcome"]["failed"] == tasks
    assert set(report["stale_write_outcomes"]) <= {"lease_lost"}
    return report


def test_chaos_short(tmp_path):
    report = soak(tmp_path / "chaos", 250, 90, 150)
    assert report["kills"] >= 10 and report["restarts"] >= 3, report
    assert report["integrity"] == ["ok"]
    # the checker agrees when run on its own, through the CLI entry point
    again = subprocess.run([sys.executable, os.path.join(HERE, "invariants.py"), report["board"], "--finished"],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stdout[-2000:]


@pytest.mark.skipif(not os.environ.get("KANBAN_TEST_PG"), reason="KANBAN_TEST_PG is not set: name a PostgreSQL "
                    "server to soak the Postgres backend (e.g. postgresql://postgres@127.0.0.1:5432/test)")
def test_chaos_short_on_postgres(tmp_path):
    """The same soak on a server board, whose sessions are also ended by pg_terminate_backend."""
    report = soak(tmp_path / "chaos", 150, 150, 240, "--pg", os.environ["KANBAN_TEST_PG"])
    kinds = report["kills_by_kind"]  # sessions ended: busy or idle ones, and waiting workers' LISTEN
    ended = kinds.get("pg_terminate_backend", 0) + kinds.get("pg_terminate_listener", 0)
    assert ended >= 3 and kinds.get("pg_terminate_backend", 0) >= 1, kinds


def test_chaos_short_on_a_cluster_of_its_own(tmp_path):
    """The soak on a server of its own, restarted in the middle: -m fast, then -m
    immediate (a crash); waiting workers' LISTEN sessions are terminated too."""
    import pgcluster

    if pgcluster.find()[0] is None:
        pytest.skip(f"no PostgreSQL cluster of the soak's own: {pgcluster.find()[1]}")
    pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")
    report = soak(tmp_path / "chaos", 150, 150, 240, "--pg-own-cluster")
    assert [r["mode"] for r in report["server_restarts"]] == ["fast", "immediate"], report["server_restarts"]
    assert all(r["sessions_ended"] for r in report["server_restarts"]), report["server_restarts"]
    kinds = report["kills_by_kind"]
    assert kinds.get("pg_terminate_backend", 0) >= 1 and kinds.get("pg_terminate_listener", 0) >= 1, kinds
    assert kinds["pg_terminate_backend"] + kinds["pg_terminate_listener"] >= 3, kinds
    assert kinds.get("in_transaction", 0) >= 1, kinds  # SIGKILLed while its session held a transaction id


# -- the checker catches what it must ------------------------------------------------------

@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A small board with claims, an expiry, a review, a release and a failure."""
    from kanban import Board

    path = str(tmp_path_factory.mktemp("inv") / "board.db")
    saved = os.environ.get("KANBAN_NOW")
    try:
        os.environ["KANBAN_NOW"] = "2030-01-01T00:00:00Z"
        with Board(path, create=True) as board:
            a = board.create("a")["id"]
            b = board.create("b", review=True)["id"]
            c = board.create("c", max_attempts=1)["id"]
            d = board.create("d")["id"]
            t = board.claim("w1", a, lease="1m")
            board.renew(a, t["lease_token"], agent="w1")
            board.complete(a, t["lease_token"], agent="w1")
            t = board.claim("w1", b, lease="1m")
            board.complete(b, t["lease_token"], agent="w1")
            r = board.claim_review("r1", b, lease="1m")
            board.approve(b, agent="r1", token=r["lease_token"])
            board.claim("w2", c, lease="1m")
            t = board.claim("w2", d, lease="1m")
            board.release(d, t["lease_token"], agent="w2")
            os.environ["KANBAN_NOW"] = "2030-01-01T00:05:00Z"
            board.reap()
            t = board.claim("w3", d, lease="1m")
            board.complete(d, t["lease_token"], agent="w3")
    finally:
        if saved is None:
            os.environ.pop("KANBAN_NOW", None)
        else:
            os.environ["KANBAN_NOW"] = saved
    return invariants.read_board(path)


def verdict(board, mutate=None):
    tasks, events, doctor = copy.deepcopy(board)
    if mutate:
        mutate(tasks, events, doctor)
    return invariants.check(None, finished=True, tasks=tasks, events=events, doctor=doctor)


def find(events, task, kind):
    return next(e for e in events if e["task"] == task and e["kind"] == kind)


def test_checker_passes_a_clean_board(clean):
    report = verdict(clean)
    assert report["violations"] == [] and report["outcome"] == {"done": 3, "failed": 1, "other": 0}
    assert report["figures"]["expiries"] == 1 and report["figures"]["failed"] == 1


def test_checker_catches_a_second_completion(clean):
    def mutate(tasks, events, doctor):
        events.append(dict(find(events, "TASK-1", "completed"), id=events[-1]["id"] + 1))
    report = verdict(clean, mutate)
    assert any("TASK-1" in v and "completed while done" in v for v in report["violations"]), report


def test_checker_catches_a_stale_token(clean):
    def mutate(tasks, events, doctor):
        find(events, "TASK-4", "completed")["data"]["token"] -= 1
    assert any("stale token" in v for v in verdict(clean, mutate)["violations"])


def test_checker_catches_tokens_going_back(clean):
    def mutate(tasks, events, doctor):
        find(events, "TASK-2", "claimed")["data"]["token"] = 1
    assert any("strictly increase" in v for v in verdict(clean, mutate)["violations"])


def test_checker_catches_overlapping_leases(clean):
    def mutate(tasks, events, doctor):  # the expiry of TASK-3's lease goes missing
        events.remove(find(events, "TASK-3", "lease_expired"))
    violations = verdict(clean, mutate)["violations"]
    assert any("TASK-3" in v for v in violations), violations


def test_checker_catches_an_early_expiry(clean):
    def mutate(tasks, events, doctor):
        find(events, "TASK-3", "lease_expired")["at"] = "2030-01-01T00:00:30Z"
    assert any("before it ran out" in v for v in verdict(clean, mutate)["violations"])


def test_checker_catches_a_completion_after_the_lease(clean):
    def mutate(tasks, events, doctor):
        find(events, "TASK-4", "completed")["at"] = "2030-01-01T00:09:00Z"
    assert any("after its lease ran out" in v for v in verdict(clean, mutate)["violations"])


def test_checker_catches_a_state_change_without_event(clean):
    def mutate(tasks, events, doctor):
        next(t for t in tasks if t["id"] == "TASK-2")["status"] = "todo"
    violations = verdict(clean, mutate)["violations"]
    assert any("TASK-2: status" in v and "event is missing" in v for v in violations), violations


def test_checker_catches_a_bad_integrity_check(clean):
    def mutate(tasks, events, doctor):
        doctor["integrity"] = ["*** in database main *** Page 3: btreeInitPage() returns error code 11"]
    assert any("integrity_check" in v for v in verdict(clean, mutate)["violations"])
