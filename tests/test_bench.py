"""t9000: `kanban bench claim` and the bench/ suite run, report, and find no double claim.

Never a time: these machines are shared, so the tests check that the runs complete,
that the reports carry their keys, and that nobody got a task twice.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, run

from kanban import pgbouncer

CLAIM_KEYS = {
    "mode", "agents", "tasks", "lease", "db", "filesystem", "setup_s", "wall_s", "claims", "completes",
    "empty_claims", "claims_per_s", "claim_latency_ms", "complete_latency_ms", "busy_errors", "errors",
    "calls", "cpu_s", "cpu_per_call_ms", "cores", "cpu_bound_claims_per_s", "vs_cpu_bound",
    "double_claims", "double_claims_by", "claimed_events", "tasks_left",
}
LATENCY_KEYS = {"n", "p50", "p95", "p99", "max", "mean"}


@pytest.mark.parametrize("mode", ["cli", "api"])
def test_bench_claim_works_through_every_task(mode):
    res = run("bench", "claim", "--agents", "4", "--tasks", "40", "--mode", mode, timeout=240)
    assert res.rc == 0, res
    answer = res.json
    assert CLAIM_KEYS <= set(answer)
    assert answer["mode"] == mode and answer["agents"] == 4 and answer["tasks"] == 40
    assert answer["double_claims"] == 0
    assert answer["double_claims_by"] == {"answers": 0, "event_log": 0}
    assert answer["claims"] == 40 and answer["completes"] == 40 and answer["tasks_left"] == 0
    assert answer["claimed_events"] == 40
    assert answer["empty_claims"] == 4  # each agent stops at its first {}
    assert set(answer["claim_latency_ms"]) == LATENCY_KEYS and answer["claim_latency_ms"]["n"] == 40
    assert answer["db"] is None  # the scratch board is gone
    if mode == "api":  # every write noted its hold of the write lock
        lock = answer["lock"]
        assert lock["holds"] == answer["calls"] == 84
        assert 0 < lock["held_frac"] <= 1 and 0 <= lock["idle_while_waited_frac"] <= 1 - lock["held_frac"] + 0.001
        assert set(lock["handoff_ms"]) == LATENCY_KEYS
    else:
        assert "lock" not in answer


def test_bench_claim_table_and_own_board(tmp_path):
    db = tmp_path / "mine.db"
    run("init", env={"KANBAN_DB": db})
    run("create", "not the bench's", env={"KANBAN_DB": db})
    res = run("bench", "claim", "--agents", "2", "--tasks", "6", "--db", db, "--format", "table", timeout=240)
    assert res.rc == 0, res
    assert "double claims" in res.out and "claims/s" in res.out
    # the user's own task was left alone; the bench's are done, under a project of their own
    tasks = run("list", env={"KANBAN_DB": db}).json["tasks"]
    mine = [t for t in tasks if t["title"] == "not the bench's"]
    assert len(mine) == 1 and mine[0]["status"] == "todo"
    bench = [t for t in tasks if t["title"].startswith("bench task")]
    assert len(bench) == 6 and all(t["status"] == "done" and t["project"].startswith("bench-") for t in bench)


def test_bench_claim_refuses_bad_arguments():
    res = run("bench", "claim", "--mode", "telepathy", "--tasks", "2")
    assert res.rc == 2 and res.out == "" and res.error["code"] == "invalid"
    res = run("bench", "claim", "--agents", "0")
    assert res.rc == 2 and res.error["code"] == "invalid"
    res = run("bench", "claim", "--format", "yaml", "--tasks", "1")
    assert res.rc == 2 and res.error["code"] == "invalid"
    res = run("bench")
    assert res.rc == 2 and res.error["code"] == "usage"


def test_suite_quick_run_reports_ratios_and_no_double_claims(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert {"machine", "sections", "targets", "checks", "quick", "seconds"} <= set(report)
    assert report["quick"] is True
    assert {"cpu", "cores", "filesystem", "python", "sqlite_kanban", "sqlite_stdlib"} <= set(report["machine"])
    sections = report["sections"]
    assert {"cli", "size", "contention", "engine", "backlog", "importtime", "phases", "profile"} <= set(sections)
    assert not [name for name, section in sections.items() if "error" in section]
    assert report["checks"]["double_claims"] == 0
    contention = sections["contention"]
    assert contention["kanban_cli"]["double_claims"] == 0 and contention["kanban_api"]["double_claims"] == 0
    assert contention["floor_cli"]["double_claims"] == 0
    assert {"claim_vs_floor", "claim_vs_python"} <= set(sections["cli"]["ratios"])
    assert {"api_p50", "cli_p50"} <= set(sections["size"]["ratios"])
    assert {"vs_floor", "vs_litequeue", "vs_persist-queue", "vs_huey", "vs_own_sql", "own_sql_vs_floor",
            "floor_vs_flush"} <= set(sections["engine"]["ratios"])
    engines = sections["engine"]["engines"]
    flush_us = 1e6 / engines["flush"]["per_s"]
    for name in ("kanban", "kanban-sql", "floor"):  # each engine's time a cycle above the disk's part
        assert engines[name]["outside_flush_us"] == pytest.approx(1e6 / engines[name]["per_s"] - flush_us, abs=0.1)
    assert sections["importtime"]["forbidden_imported"] == []
    for row in report["targets"]:
        assert {"target", "name", "ratio", "goal", "met", "measured"} <= set(row)
    markdown = (out / "report.md").read_text()
    assert "| # | target | ratio | goal | met | measured |" in markdown
    assert report["machine"]["cpu"] is None or report["machine"]["cpu"] in markdown


def _engine_run(engine, folder, cycles):
    """bench/peers.py ENGINE on a fresh board of `cycles` ready tasks: its answer, and
    each task's status and event kinds (with the claims' tokens) afterwards."""
    from kanban import Board
    from kanban.bench import prepare

    folder.mkdir()
    prepare(str(folder / "board.db"), cycles, None)
    proc = subprocess.run([sys.executable, "-E", str(ROOT / "bench" / "peers.py"), engine, str(folder), str(cycles)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with Board(str(folder / "board.db")) as board:
        tasks = {t["id"]: t["status"] for t in board.list()["tasks"]}
        events = [(e["task"], e["kind"], e["data"].get("token"))
                  for e in board.events(limit=10 * cycles)["events"] if e["kind"] != "created"]
    return json.loads(proc.stdout), tasks, events


def test_kanban_sql_engine_is_kanbans_own_cycle_without_its_python(tmp_path):
    """The engine section's reference loop (kanban-sql) runs the statements kanban's
    claim + complete run, so it leaves the board as kanban's own loop does: every task
    done, a claimed and a completed event each, the claim's token in both, two WAL
    syncs a cycle; only the events' times (and the claims' lease ends) differ."""
    cycles = 12
    ours, tasks, events = _engine_run("kanban", tmp_path / "kanban", cycles)
    bare, bare_tasks, bare_events = _engine_run("kanban-sql", tmp_path / "sql", cycles)
    assert bare["engine"] == "kanban-sql" and bare["cycles"] == cycles
    assert bare["synchronous"] == ours["synchronous"] == "1 + 2.00 fdatasync/cycle"
    assert bare_tasks == tasks and set(tasks.values()) == {"done"}
    assert bare_events == events
    claimed = [(task, token) for task, kind, token in bare_events if kind == "claimed"]
    completed = [(task, token) for task, kind, token in bare_events if kind == "completed"]
    assert len(claimed) == cycles and sorted(claimed) == sorted(completed)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (Debian package strace)")
def test_flush_loop_is_two_wal_flushes_a_cycle_and_nothing_else(tmp_path):
    """The engine section's disk reference (peers.py flush): per cycle two rounds of six
    WAL frames written in place in a WAL-sized file, each followed by one fdatasync of
    that file; no database."""
    cycles = 40
    log = tmp_path / "strace.txt"
    proc = subprocess.run(["strace", "-f", "-e", "trace=pwrite64,fdatasync,fsync", "-o", str(log), sys.executable,
                           "-E", str(ROOT / "bench" / "peers.py"), "flush", str(tmp_path), str(cycles)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout)
    assert answer["engine"] == "flush" and answer["cycles"] == cycles and answer["journal_mode"] == "-"
    assert answer["synchronous"] == "2.00 fdatasync/cycle of 6 frames each"
    assert answer["wal_bytes"] == 1000 * (24 + 4096) == (tmp_path / "flush-wal").stat().st_size
    assert not list(tmp_path.glob("*.db"))
    calls = [line.split("(")[0].split()[-1] for line in log.read_text().splitlines() if "(" in line]
    calls = calls[calls.index("fsync") + 1:]  # after the file is written once
    assert calls == (["pwrite64"] * 6 + ["fdatasync"]) * 2 * cycles
    # with K, K frames a commit: the disk's cost of a commit's pages, against the six
    proc = subprocess.run(["strace", "-f", "-e", "trace=pwrite64,fdatasync,fsync", "-o", str(log), sys.executable,
                           "-E", str(ROOT / "bench" / "peers.py"), "flush", str(tmp_path), str(cycles), "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout)
    assert answer["synchronous"] == "2.00 fdatasync/cycle of 1 frame each" and answer["frames"] == 1
    calls = [line.split("(")[0].split()[-1] for line in log.read_text().splitlines() if "(" in line]
    calls = calls[calls.index("fsync") + 1:]
    assert calls == ["pwrite64", "fdatasync"] * 2 * cycles


def _peers():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import peers
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return peers


def test_wal_pages_counts_each_commits_pages_by_btree(tmp_path):
    """bench/peers.py reads a WAL's frames: a commit that changes one row of an
    unindexed table writes one page; with an index on the changed column, two (the
    table's and the index's); a commit of nothing writes none.  Frames of an earlier
    generation (before a checkpoint started the WAL over) are not counted."""
    import sqlite3

    peers = _peers()
    path = tmp_path / "q.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE plain(id INTEGER PRIMARY KEY, n INT)")
    conn.execute("CREATE TABLE indexed(id INTEGER PRIMARY KEY, n INT)")
    conn.execute("CREATE INDEX indexed_n ON indexed(n)")
    conn.executemany("INSERT INTO plain VALUES (?, 0)", [(i,) for i in range(50)])
    conn.executemany("INSERT INTO indexed VALUES (?, 0)", [(i,) for i in range(50)])
    for i in range(20):  # first generation: checkpointed away below, then overwritten in part
        conn.execute("UPDATE indexed SET n = n + 1 WHERE id = ?", (i,))
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # the WAL starts over at the next commit
    for i in range(7):
        conn.execute("UPDATE plain SET n = n + 1 WHERE id = ?", (i,))
    commits, frames, pages = peers.wal_pages(str(path) + "-wal")
    assert (commits, frames, pages) == (7, 7, {"plain": 7})
    for i in range(5):
        conn.execute("UPDATE indexed SET n = n + 1 WHERE id = ?", (i,))
    commits, frames, pages = peers.wal_pages(str(path) + "-wal")
    assert (commits, frames, pages) == (12, 17, {"plain": 7, "indexed": 5, "indexed_n": 5})
    conn.close()
    not_wal = tmp_path / "x-wal"
    not_wal.write_bytes(b"\0" * 4096)
    assert peers.wal_pages(str(not_wal)) is None


def test_engines_say_what_a_commit_wrote(tmp_path):
    """The engine loops' answers carry the WAL pages a commit wrote, by b-tree: kanban's
    claim and complete write the task, its status and lease indexes, the event and the
    events-by-task index; the floor's write no event."""
    ours, _tasks, _events = _engine_run("kanban", tmp_path / "kanban", 30)
    floor = subprocess.run([sys.executable, "-E", str(ROOT / "bench" / "peers.py"), "floor",
                            str(_fresh_board(tmp_path / "floor", 30)), "30"],
                           capture_output=True, text=True, timeout=120)
    assert floor.returncode == 0, floor.stderr[-3000:]
    floor = json.loads(floor.stdout)
    for name in ("tasks", "events", "events_task", "tasks_lease", "tasks_status"):
        assert ours["wal_pages_per_commit"][name] >= 0.9, ours  # (a commit may share a page)
    # (a run this short still has the board's making in its WAL: a few pages of every table)
    assert floor["wal_pages_per_commit"].get("events", 0) < 0.1 and floor["wal_pages_per_commit"]["tasks"] >= 0.9
    assert ours["wal_frames_per_commit"] == pytest.approx(sum(ours["wal_pages_per_commit"].values()), abs=0.05)
    assert ours["wal_frames_per_commit"] >= floor["wal_frames_per_commit"] + 1.5


def _fresh_board(folder, tasks):
    from kanban.bench import prepare

    folder.mkdir()
    prepare(str(folder / "board.db"), tasks, None)
    return folder


@pytest.mark.skipif(not os.environ.get("KANBAN_TEST_PG"), reason="KANBAN_TEST_PG is not set: the fleet section's "
                    "Postgres runs need a server (e.g. KANBAN_TEST_PG=postgresql://postgres@127.0.0.1:5432/test)")
@pytest.mark.skipif(not pgbouncer.find(), reason="pgbouncer is not installed (Debian: apt-get install pgbouncer; "
                    ".ci/run installs it when root)")
def test_fleet_section_runs_every_backend_with_no_double_claim(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--only", "fleet",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    fleet = report["sections"]["fleet"]
    assert "error" not in fleet and fleet["skipped"] == {}
    counts = [str(n) for n in fleet["agents"]]
    assert set(fleet["runs"]) == {"api", "cli"}
    for mode, backends in fleet["runs"].items():
        assert set(backends) == {"sqlite", "pg_direct", "pg_pgbouncer"}
        for backend, by_count in backends.items():
            assert list(by_count) == counts
            for agents, r in by_count.items():
                assert r["double_claims"] == 0 and r["double_claims_from_answers"] == 0, (mode, backend, agents)
                assert r["errors"] == {} and r["tasks_left"] == 0, (mode, backend, agents, r["error_samples"])
                assert r["claims"] == r["tasks"] == fleet["tasks"][mode][agents]
                assert set(r["claim_latency_ms"]) == LATENCY_KEYS
    assert set(fleet["crossover"]) == {"api", "cli"}
    for by_backend in fleet["crossover"].values():  # direct and through PgBouncer, each its own answer
        assert set(by_backend) == {"pg_direct", "pg_pgbouncer"}
        assert all(at is None or at in fleet["agents"] for at in by_backend.values())
    assert "fleet crossover, api: Postgres beats the SQLite file: Postgres direct " in proc.stderr
    assert report["checks"]["double_claims"] == 0
    markdown = (out / "report.md").read_text()
    assert "| mode | backend | agents | tasks | claims/s |" in markdown and "Crossover" in markdown


def test_lock_use_counts_only_the_gaps_someone_waited_across():
    """Holds of the write lock as [asked, got, released], in seconds: the lock is held
    1 + 1 + 1 s of a 6 s run; the 1 s gap before the second hold was waited across
    (it was asked for at 0.5, before the first release), the 2 s gap before the third
    was not (asked for at 4.5, granted at once)."""
    from kanban.bench import lock_use

    records = [{"lock": [[0.0, 0.0, 1.0]]}, {"lock": [[0.5, 2.0, 3.0]]}, {"lock": [[4.5, 5.0, 6.0]]},
               {"op": "claim"}]
    use = lock_use(records)
    assert use["holds"] == 3
    assert use["held_frac"] == 0.5
    assert use["idle_while_waited_frac"] == round(1 / 6, 3)
    assert use["handoff_ms"]["n"] == 1 and use["handoff_ms"]["p50"] == 1000.0
    assert lock_use([{"op": "claim"}]) == {}
