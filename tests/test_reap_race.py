"""A claim that races a reap (SPEC §3, §5): `{}` means "no ready task to claim", so a
claim must answer a task whenever one is ready, or is being put back to todo by a reap
in flight, and no other claimer takes it.  On PostgreSQL a reap (`kanban lease reap`, or
the claim that reaps many expired leases first) holds the rows it reaps until it commits;
a claim that passed over them and found nothing else waits for that reap and takes one.
SQLite runs one writer at a time, so its claims queue behind the reap anyway: the same
tests hold there.  Real `kanban` processes, all started at once, on a real board."""
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from conftest import KANBAN, ROOT, backends, drop_pg_schemas, new_pg_schema, run

T0 = "2030-01-01T00:00:00Z"


def at_hour(hours):
    return f"2030-01-01T{hours:02d}:00:00Z"


@pytest.fixture(params=backends())
def board(request, tmp_path):
    """The location of a new board on this test's backend."""
    if request.param == "sqlite":
        where = str(tmp_path / uuid.uuid4().hex / "board.db")
        schema = None
    else:
        schema, where = new_pg_schema()
    assert run("init", env={"KANBAN_DB": where}).rc == 0
    yield where
    if schema:
        drop_pg_schemas(schema)


def _env(where, now, **more):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update(KANBAN_DB=where, KANBAN_NOW=now, **more)
    return env


def _start(where, now, *args):
    return subprocess.Popen([str(KANBAN), *args], env=_env(where, now), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _claim_all(where, now, count):
    """Claim every ready task at `now` with a 30 minute lease: all of them run out by the
    next hour."""
    res = run("batch", "claim", count, "--agent", "old", "--lease", "30m", env={"KANBAN_DB": where, "KANBAN_NOW": now})
    assert res.rc == 0, res
    return len(res.json)


def test_claims_racing_a_reap_take_the_tasks_it_puts_back(board):
    """Every task in progress under a lease that has run out, nothing else ready: a
    `lease reap` and many claims at once, round after round.  Each claim answers a task
    (the reap or one claim puts them all back to todo), and no two the same task."""
    tasks, claimers, rounds = 300, 8, 5
    assert run("create", "--stdin", input="".join(json.dumps({"title": f"t{n}"}) + "\n" for n in range(tasks)),
               env={"KANBAN_DB": board, "KANBAN_NOW": T0}).rc == 0
    assert _claim_all(board, T0, tasks) == tasks
    empty = []
    for hour in range(1, rounds + 1):
        now = at_hour(hour)
        procs = [_start(board, now, "lease", "reap", "--agent", "reaper")]
        procs += [_start(board, now, "claim", "--agent", f"c{n}", "--lease", "30m") for n in range(claimers)]
        answers = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0 and err == "", (proc.args, proc.returncode, err)
            answers.append(json.loads(out))
        claimed = answers[1:]
        empty += [(hour, n) for n, answer in enumerate(claimed) if answer == {}]
        ids = [answer["id"] for answer in claimed if answer]
        assert len(set(ids)) == len(ids), ids                              # never one task twice
        assert all(answer["claimed_by"].startswith("c") for answer in claimed if answer)
        # every task in progress again, under a lease that runs out before the next round
        _claim_all(board, now, tasks)
    assert empty == [], f"claims that answered {{}} while reaped tasks were ready: {empty}"


HOLD_REAP = r"""
import sys
sys.path.insert(0, sys.argv[1])
from kanban import Board
board = Board()
def hold():
    board._writes("reaper")
    print("reaped", len(board._reap("reaper")), flush=True)
    sys.stdin.readline()
board._write(hold)
"""


def test_a_claim_waits_for_a_reap_in_flight_and_takes_what_it_put_back(board):
    """A reap holds its transaction open with every expired lease reaped and nothing else
    ready: claims started meanwhile do not answer {}, they take the reaped tasks once it
    commits, one each; the reaper's events and the claims' fencing tokens stay whole."""
    run("create", "--stdin", input="".join(json.dumps({"title": f"t{n}"}) + "\n" for n in range(6)),
        env={"KANBAN_DB": board, "KANBAN_NOW": T0})
    assert _claim_all(board, T0, 6) == 6
    now = at_hour(1)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_REAP, str(ROOT / "lib")], env=_env(board, now),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "reaped 6"
        claims = [_start(board, now, "claim", "--agent", f"c{n}") for n in range(4)]
        time.sleep(1.0)
        assert [proc.poll() for proc in claims] == [None] * 4              # waiting for the reap, not {}
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
        answers = []
        for proc in claims:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0 and err == "", err
            answers.append(json.loads(out))
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    ids = sorted(answer["id"] for answer in answers if answer)
    assert len(ids) == 4 and len(set(ids)) == 4, answers
    assert all(answer["attempts"] == 1 for answer in answers)           # reaped once, by the reaper
    expired = run("event", "list", "--kind", "lease_expired", env={"KANBAN_DB": board, "KANBAN_NOW": now}).json
    assert sorted(e["actor"] for e in expired["events"]) == ["reaper"] * 6
    tokens = [answer["lease_token"] for answer in answers]
    assert len(set(tokens)) == 4
