#!/usr/bin/env python3
"""kanban's benchmark suite: every target a ratio of two things measured in one run.

    bench/run.py [--quick] [--only SECTION,...] --out DIR

Writes DIR/report.json (everything) and DIR/report.md (the ratios first, then the
details and the machine).  `make bench` runs the full suite (under 10 minutes on a
2-core machine, plus up to ~6 for the fleet section with a Postgres server), `make
bench-quick` the quick one (under a minute: small sizes, no million-task board, peers
that are not installed skipped).  Shared machines are
noisy, so nothing here passes or fails on a time: a target is a ratio of two
numbers taken side by side, interleaved, with the same interpreter (-E, as the CLI
runs it) and warm caches.

Sections (the issue's targets, then where the time goes):
  cli         1. `kanban claim` / `complete` vs bench/floor_claim.py and `python -c pass`
  size        2. claim p50 on a 1,000,000-task board vs a 1,000-task one (in-process, CLI)
  contention  3. 50 CLI agents x 20 tasks: double claims, busy errors, throughput vs the
                 CPU bound, p99 vs the floor script run the same way
  engine      4. in-process claim+complete cycles/s vs the floor, litequeue,
                 persist-queue, huey; claim_many/complete_many for K = 1, 8, 32
  backlog     5. backlog.md create/edit/list vs kanban create/claim/complete/list
  importtime  `python -X importtime` of a CLI claim, by module
  phases      a CLI claim split into start-up, imports, parsing, open, transaction
  profile     cProfile (and pyinstrument) of the in-process claim; cProfile of the CLI
  installed   `kanban claim` through the wheel's console script (pip/pipx) vs bin/kanban
  web         `kanban serve` on a 10,000-task board: time to first render (server, browser)
              vs `kanban board --format json`; SSE latency from a CLI claim to the DOM
  postgres    CLI claim/complete on a Postgres board (through the helper, and directly) vs
              SQLite, interleaved (bench/pg_bench.py; needs KANBAN_BENCH_PG or KANBAN_TEST_PG)
  fleet       8, 32, 128 and 512 concurrent agents (in-process API and CLI) on SQLite, Postgres
              direct and Postgres through PgBouncer: claims/s, claim p50/p99, errors by code,
              double claims from the event log, and the crossover (bench/pg_bench.py)
"""
import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "lib"))

from kanban import bench as kb  # noqa: E402  (after the path is set)

sys.path.insert(0, HERE)
import pg_bench  # noqa: E402  (bench/pg_bench.py, next to this file)

PY = os.path.join(ROOT, ".venv", "bin", "python")
if not os.path.exists(PY):
    PY = sys.executable
KANBAN = kb.KANBAN
FLOOR = os.path.join(HERE, "floor_claim.py")
PEERS = os.path.join(HERE, "peers.py")
BACKLOG = os.path.join(ROOT, ".tools", "node_modules", ".bin", "backlog")
FORBIDDEN = ("jsonschema", "tabulate", "yaml", "psycopg")

SETTINGS = {
    "full": {
        "cli_rounds": 60, "cli_warm": 5,
        "size_small": 1_000, "size_big": 1_000_000, "size_ready": 450, "size_big_ready": 10_000, "size_api": 300,
        "pick_calls": 2000, "pick_rounds": 7,
        "size_cli": 40, "size_warm": 10,
        "contention_agents": 50, "contention_tasks_each": 20,
        "engine_cycles": 1500, "engine_rounds": 5, "engine_threads": 32,
        "backlog_rounds": 10, "backlog_warm": 2,
        "importtime_runs": 7, "phases_runs": 15, "profile_claims": 500, "profile_cli_runs": 10,
        "pg_rounds": 30, "pg_warm": 3,
        "fleet_agents": (8, 32, 128, 512), "fleet_pool": 16, "fleet_processes": 32,
        "fleet_api_each": 4, "fleet_api_min": 128, "fleet_cli_each": 1, "fleet_cli_min": 32, "fleet_run_timeout": 90,
    },
    "quick": {
        "cli_rounds": 12, "cli_warm": 2,
        "size_small": 1_000, "size_big": 20_000, "size_ready": 120, "size_big_ready": 500, "size_api": 60,
        "pick_calls": 300, "pick_rounds": 3,
        "size_cli": 8, "size_warm": 3,
        "contention_agents": 8, "contention_tasks_each": 5,
        "engine_cycles": 300, "engine_rounds": 1, "engine_threads": 8,
        "backlog_rounds": 3, "backlog_warm": 1,
        "importtime_runs": 3, "phases_runs": 5, "profile_claims": 100, "profile_cli_runs": 3,
        "pg_rounds": 8, "pg_warm": 2,
        "fleet_agents": (2, 4), "fleet_pool": 2, "fleet_processes": 2,
        "fleet_api_each": 2, "fleet_api_min": 8, "fleet_cli_each": 1, "fleet_cli_min": 4, "fleet_run_timeout": 60,
    },
}
SECTIONS = ("cli", "size", "contention", "engine", "backlog", "importtime", "phases", "profile", "installed", "web",
            "postgres", "fleet")


class BenchFailure(Exception):
    pass


def log(message):
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def p50(samples):
    return kb.percentiles(samples)["p50"]


def run_ok(argv, env, what):
    result = kb.run_once(argv, env)
    if result["rc"] != 0:
        raise BenchFailure(f"{what} failed (exit {result['rc']}): {result['err'].strip()[-500:]}")
    return result


def summary(samples):
    """Latency and CPU percentiles of a list of run_once results."""
    return {"ms": kb.percentiles([s["ms"] for s in samples]),
            "cpu_ms": kb.percentiles([s["cpu_ms"] for s in samples])}


# -- the machine ---------------------------------------------------------------

def machine(work):
    from kanban.store.sqlite import filesystem

    cpu = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), None)
    except OSError:
        pass
    memory = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as info:
            memory = round(int(info.readline().split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    stdlib_sqlite = kb.run_once([PY, "-E", "-c", "import sqlite3; print(sqlite3.sqlite_version)"],
                                kb.clean_env())["out"].strip()
    import apsw

    versions = {}
    for package in ("apsw", "docopt-ng", "litequeue", "persist-queue", "huey", "pyinstrument"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:  # noqa: BLE001 - not installed
            versions[package] = None
    backlog = None
    if os.path.exists(BACKLOG):
        backlog = kb.run_once([BACKLOG, "--version"], kb.clean_env())["out"].strip() or None
    node = shutil.which("node")
    return {
        "cpu": cpu,
        "cores": kb.cores(),
        "cpu_count": os.cpu_count(),
        "memory_gib": memory,
        "filesystem": filesystem(work),
        "scratch": work,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_executable": PY,
        "sqlite_kanban": apsw.sqlite_lib_version(),
        "sqlite_stdlib": stdlib_sqlite,
        "packages": versions,
        "backlog_md": backlog,
        "node": kb.run_once([node, "--version"], kb.clean_env())["out"].strip() if node else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


# -- 1. CLI claim vs the floor -------------------------------------------------------

# what start-up and single imports cost as whole processes (no -X importtime inflation)
STARTUP = {
    "python_pass": [PY, "-E", "-c", "pass"],
    "python_no_site_pass": [PY, "-E", "-S", "-c", "pass"],
    "python_import_json": [PY, "-E", "-c", "import json"],
    "python_import_re": [PY, "-E", "-c", "import re"],
    "python_import_apsw": [PY, "-E", "-c", "import apsw"],
    "python_import_sqlite3": [PY, "-E", "-c", "import sqlite3"],
}


def section_cli(cfg, work):
    rounds, warm = cfg["cli_rounds"], cfg["cli_warm"]
    folder = os.path.join(work, "cli")
    os.makedirs(folder)
    kanban_db, floor_db = os.path.join(folder, "kanban.db"), os.path.join(folder, "floor.db")
    kb.prepare(kanban_db, rounds + warm, None)
    kb.prepare(floor_db, rounds + warm, None)
    env_kanban = kb.clean_env(KANBAN_DB=kanban_db, KANBAN_AGENT="bench-cli")
    env = kb.clean_env()
    names = ("kanban_claim", "kanban_complete", "floor_claim", "floor_complete") + tuple(STARTUP)
    samples = {name: [] for name in names}

    def kanban_pair():
        claim = run_ok([KANBAN, "claim"], env_kanban, "kanban claim")
        task = json.loads(claim["out"])
        done = run_ok([KANBAN, "complete", task["id"], "--token", str(task["lease_token"])], env_kanban,
                      "kanban complete")
        return {"kanban_claim": claim, "kanban_complete": done}

    def floor_pair():
        claim = run_ok([PY, "-E", FLOOR, floor_db, "bench-cli"], env, "floor claim")
        task = json.loads(claim["out"])
        done = run_ok([PY, "-E", FLOOR, floor_db, "bench-cli", task["id"], str(task["lease_token"])], env,
                      "floor complete")
        return {"floor_claim": claim, "floor_complete": done}

    def bare():
        return {name: run_ok(argv, env, " ".join(argv[1:])) for name, argv in STARTUP.items()}

    steps = [kanban_pair, floor_pair, bare]
    for number in range(rounds + warm):
        for step in steps[number % 3:] + steps[:number % 3]:  # rotate: no fixed order
            for name, result in step().items():
                if number >= warm:
                    samples[name].append(result)
    stats = {name: summary(values) for name, values in samples.items()}

    def ms(name, key="ms"):
        return stats[name][key]["p50"]
    return {
        "rounds": rounds, "warm_up": warm,
        "commands": {
            "kanban_claim": f"{KANBAN} claim", "kanban_complete": f"{KANBAN} complete ID --token T",
            "floor_claim": f"{PY} -E bench/floor_claim.py BOARD AGENT",
            "floor_complete": f"{PY} -E bench/floor_claim.py BOARD AGENT ID TOKEN",
            **{name: " ".join(argv) for name, argv in STARTUP.items()},
        },
        "stats": stats,
        "ratios": {
            "claim_vs_floor": ratio(ms("kanban_claim"), ms("floor_claim")),
            "claim_vs_python": ratio(ms("kanban_claim"), ms("python_pass")),
            "complete_vs_floor": ratio(ms("kanban_complete"), ms("floor_complete")),
            "claim_cpu_vs_floor_cpu": ratio(ms("kanban_claim", "cpu_ms"), ms("floor_claim", "cpu_ms")),
            "floor_vs_python": ratio(ms("floor_claim"), ms("python_pass")),
        },
        "above_python_ms": {
            "kanban_claim": round(ms("kanban_claim") - ms("python_pass"), 2),
            "floor_claim": round(ms("floor_claim") - ms("python_pass"), 2),
        },
    }


# -- installed: the wheel's console script vs the checkout's bin/kanban ---------------

def section_installed(cfg, work):
    """`kanban claim` through the console script of the built wheel, installed in a fresh
    venv as pip and pipx install it, against the checkout's bin/kanban: interleaved, one
    board each, same tasks; and what the installed claim imports (it must not pull in
    importlib.metadata or pkg_resources at start-up)."""
    rounds, warm = cfg["cli_rounds"], cfg["cli_warm"]
    folder = os.path.join(work, "installed")
    dist, venv = os.path.join(folder, "dist"), os.path.join(folder, "venv")
    env = kb.clean_env()
    if not (importlib.util.find_spec("build") and importlib.util.find_spec("hatchling")):
        raise BenchFailure("building the wheel needs build and hatchling (the test extra: make setup)")
    run_ok([PY, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, ROOT], env, "python -m build")
    run_ok([PY, "-m", "venv", "--without-pip", venv], env, "python -m venv")
    wheel = os.path.join(dist, next(name for name in os.listdir(dist) if name.endswith(".whl")))
    run_ok([PY, "-m", "pip", "--python", os.path.join(venv, "bin", "python"), "install", "-q", wheel], env,
           "pip install of the wheel")
    commands = {"installed": os.path.join(venv, "bin", "kanban"), "checkout": KANBAN}
    envs = {}
    for name in commands:
        board = os.path.join(folder, f"{name}.db")
        kb.prepare(board, rounds + warm + 2, None)
        envs[name] = kb.clean_env(KANBAN_DB=board, KANBAN_AGENT="bench-installed")
    samples = {name: [] for name in commands}
    for number in range(rounds + warm):
        for name in (list(commands) if number % 2 else list(reversed(commands))):  # alternate the order
            result = run_ok([commands[name], "claim"], envs[name], f"{name} kanban claim")
            if number >= warm:
                samples[name].append(result)
    traced = run_ok([os.path.join(venv, "bin", "python"), "-X", "importtime", commands["installed"], "claim"],
                    envs["installed"], "importtime of the installed claim")
    modules = [row[0] for row in parse_importtime(traced["err"])]
    stats = {name: summary(values) for name, values in samples.items()}
    return {
        "rounds": rounds, "warm_up": warm,
        "commands": {name: f"{path} claim" for name, path in commands.items()},
        "stats": stats,
        "ratios": {"installed_vs_checkout": ratio(stats["installed"]["ms"]["p50"], stats["checkout"]["ms"]["p50"])},
        "installed_metadata_imports": sorted(m for m in modules if m.startswith(
            ("importlib.metadata", "importlib_metadata", "pkg_resources"))),
        "installed_forbidden_imported": sorted(m for m in modules if m.split(".")[0] in FORBIDDEN),
    }


# -- 2. board size --------------------------------------------------------------------

def build_board(path, total, ready):
    """A board of `total` tasks, `ready` of them claimable by anyone, built in one go.

    The rest, in the proportions of a long-lived board: 1% waiting on deps (on tasks
    in progress), 1% for other roles, 1% assigned to other agents, 0.5% in progress
    under live leases, 0.5% blocked, everything else done; each task with its
    created event, and claimed + completed events and a holder once worked on.
    One bulk INSERT ... SELECT through the board's own connection.
    """
    from kanban.board import Board, init

    other = total - ready
    counts = {"progress": max(1, other // 200), "blocked": max(1, other // 200),
              "role": max(1, other // 100), "assignee": max(1, other // 100), "deps": max(1, other // 100)}
    counts["done"] = other - sum(counts.values())
    edges, at = {}, 0
    for name in ("done", "progress", "blocked", "role", "assignee", "deps"):
        at += counts[name]
        edges[name] = at
    init(path)
    start = int(time.time() * 1000) - total - 10_000
    params = {"total": total, "t0": start, "far": start + 10 * 365 * 86400 * 1000,
              **{f"e_{k}": v for k, v in edges.items()}, "n_progress": counts["progress"]}
    with Board(path) as board:
        def fill():
            board.db.execute(
                """WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :total)
                INSERT INTO tasks(kind, title, status, priority, project, role_boundary, assignee,
                                  claimed_by, lease_until, lease_token, lease_ms, attempts, reason,
                                  started_at, finished_at, created_at, updated_at)
                SELECT 'task', 'task ' || n,
                       CASE WHEN n <= :e_done THEN 'done' WHEN n <= :e_progress THEN 'in_progress'
                            WHEN n <= :e_blocked THEN 'blocked' ELSE 'todo' END,
                       n % 5, 'project-' || (n % 7),
                       CASE WHEN n > :e_blocked AND n <= :e_role THEN 'role-' || (n % 9) END,
                       CASE WHEN n > :e_role AND n <= :e_assignee THEN 'agent-' || (n % 97) END,
                       CASE WHEN n > :e_done AND n <= :e_progress THEN 'agent-' || (n % 97) END,
                       CASE WHEN n > :e_done AND n <= :e_progress THEN :far END,
                       CASE WHEN n > :e_done AND n <= :e_progress THEN n END,
                       CASE WHEN n > :e_done AND n <= :e_progress THEN 900000 END,
                       CASE WHEN n <= :e_progress THEN 1 ELSE 0 END,
                       CASE WHEN n > :e_progress AND n <= :e_blocked THEN 'filler' END,
                       CASE WHEN n <= :e_progress THEN :t0 + n END,
                       CASE WHEN n <= :e_done THEN :t0 + n + 5000 END,
                       :t0 + n, :t0 + n
                  FROM s""", params)
            board.db.execute(
                "INSERT INTO deps(task_id, dep_id) SELECT id, :e_done + 1 + (id % :n_progress) FROM tasks"
                " WHERE id > :e_assignee AND id <= :e_deps", params)
            board.db.execute(
                "INSERT INTO events(task_id, kind, actor, at, data)"
                " SELECT id, 'created', 'bench', created_at, '{\"kind\":\"task\"}' FROM tasks ORDER BY id")
            board.db.execute(
                "INSERT INTO events(task_id, kind, actor, at, data)"
                " SELECT id, 'claimed', claimed_by_or, started_at, '{\"token\":' || id || '}' FROM"
                " (SELECT id, 'agent-' || (id % 97) AS claimed_by_or, started_at FROM tasks"
                "   WHERE started_at IS NOT NULL ORDER BY id)")
            board.db.execute(
                "INSERT INTO events(task_id, kind, actor, at, data)"
                " SELECT id, 'completed', 'agent-' || (id % 97), finished_at, '{}' FROM tasks"
                " WHERE status = 'done' ORDER BY id")
            board.db.execute("UPDATE meta SET value = :total WHERE key = 'lease_token'", params)
        board.db.write(fill)
        board.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        ready_now = board.db.scalar(
            "SELECT count(*) FROM tasks WHERE status = 'todo' AND unmet_deps = 0"
            " AND role_boundary IS NULL AND assignee IS NULL")
    return {"total": total, "ready": ready_now, **{k: v for k, v in counts.items()},
            "bytes": os.path.getsize(path)}


def section_web(cfg, work):
    """The web board: time to first render of a 10,000-task board, SSE latency CLI write -> DOM (bench/web_board.py)."""
    import web_board as web_bench

    return web_bench.section_web(cfg, work, build_board, KANBAN, PY)


def pick_times(path, calls, rounds):
    """One claim pick: kanban's (Board._pick, as a claim by an agent without role runs
    it) against the floor script's PICK, on the same connection, in one read
    transaction, in alternating rounds of `calls` each; per call, the median round."""
    sys.path.insert(0, HERE)
    import floor_claim

    from kanban import Board

    board = Board(path)
    timings = {"kanban": [], "floor": []}

    def measure():
        conn = board.db.conn
        ours, theirs = board._pick("bench-pick", None, None), conn.execute(floor_claim.PICK).fetchone()[0]
        if ours != theirs:
            raise BenchFailure(f"kanban's pick ({ours}) and the floor's ({theirs}) disagree on {path}")
        for number in range(rounds + 1):
            for name in (("kanban", "floor") if number % 2 else ("floor", "kanban")):
                started = time.perf_counter()
                if name == "kanban":
                    for _ in range(calls):
                        board._pick("bench-pick", None, None)
                else:
                    for _ in range(calls):
                        conn.execute(floor_claim.PICK).fetchone()
                if number:  # the first round warms up
                    timings[name].append((time.perf_counter() - started) * 1e6 / calls)
    try:
        board._read(measure)
    finally:
        board.close()
    kanban_us, floor_us = statistics.median(timings["kanban"]), statistics.median(timings["floor"])
    return {"kanban": round(kanban_us, 2), "floor": round(floor_us, 2), "ratio": ratio(kanban_us, floor_us)}


def section_size(cfg, work):
    from kanban import Board

    folder = os.path.join(work, "size")
    os.makedirs(folder)
    small, big = cfg["size_small"], cfg["size_big"]
    paths = {small: os.path.join(folder, f"tasks-{small}.db"), big: os.path.join(folder, f"tasks-{big}.db")}
    boards = {}
    for size, path in paths.items():
        started = time.perf_counter()
        boards[size] = build_board(path, size, cfg["size_big_ready"] if size == big else cfg["size_ready"])
        boards[size]["build_s"] = round(time.perf_counter() - started, 2)
        log(f"size: built a {size:,}-task board in {boards[size]['build_s']} s")
    picks = {str(size): pick_times(path, cfg["pick_calls"], cfg["pick_rounds"]) for size, path in paths.items()}
    # in-process: one Board per file, claims alternating between them
    api = {small: [], big: []}
    cpu = {small: [], big: []}
    opened = {size: Board(path) for size, path in paths.items()}
    try:
        for number in range(cfg["size_warm"] + cfg["size_api"]):
            order = (small, big) if number % 2 else (big, small)
            for size in order:
                started, spent = time.perf_counter(), time.process_time()
                task = opened[size].claim("bench-size")
                elapsed, spent = time.perf_counter() - started, time.process_time() - spent
                if not task:
                    raise BenchFailure(f"the {size}-task board ran out of ready tasks")
                if number >= cfg["size_warm"]:
                    api[size].append(elapsed * 1000)
                    cpu[size].append(spent * 1000)
    finally:
        for board in opened.values():
            board.close()
    cli = {small: [], big: []}
    envs = {size: kb.clean_env(KANBAN_DB=path, KANBAN_AGENT="bench-size") for size, path in paths.items()}
    for number in range(cfg["size_warm"] + cfg["size_cli"]):
        order = (small, big) if number % 2 else (big, small)
        for size in order:
            result = run_ok([KANBAN, "claim"], envs[size], f"kanban claim on the {size}-task board")
            if number >= cfg["size_warm"]:
                cli[size].append(result)
    for path in paths.values():
        for suffix in ("", "-wal", "-shm", ".lock"):
            try:
                os.remove(path + suffix)
            except OSError:
                pass
    out = {
        "boards": {str(size): info for size, info in boards.items()},
        "api_claim_ms": {str(size): kb.percentiles(values) for size, values in api.items()},
        "api_claim_cpu_ms": {str(size): kb.percentiles(values) for size, values in cpu.items()},
        "cli_claim": {str(size): summary(values) for size, values in cli.items()},
        "pick_us": picks,
    }
    out["ratios"] = {
        **{f"pick_{size}_vs_floor": picks[str(size)]["ratio"] for size in (small, big)},
        "api_p50": ratio(out["api_claim_ms"][str(big)]["p50"], out["api_claim_ms"][str(small)]["p50"]),
        "api_cpu_p50": ratio(out["api_claim_cpu_ms"][str(big)]["p50"], out["api_claim_cpu_ms"][str(small)]["p50"]),
        "cli_p50": ratio(out["cli_claim"][str(big)]["ms"]["p50"], out["cli_claim"][str(small)]["ms"]["p50"]),
    }
    return out


# -- 3. contention ---------------------------------------------------------------------

def _lock_note(lock, claims_per_s=None):
    """The write lock's use in an api run, the figures the machine's load does not set,
    and the throughput the lock itself would allow: the run's, had the lock been held
    all the time with the same holds (no writer ever waiting on a free lock)."""
    if not lock:
        return ""
    handoff = lock["handoff_ms"]
    bound = (f"; held all the time, the lock would allow ~{claims_per_s / lock['held_frac']:.0f} claims/s"
             if claims_per_s and lock["held_frac"] else "")
    return (f"; write lock held {lock['held_frac']:.0%} of the run, free while a writer waited "
            f"{lock['idle_while_waited_frac']:.0%}, handoff p50 {handoff['p50'] or 0:.2f} ms, "
            f"p99 {handoff['p99'] or 0:.1f} ms{bound}")


def section_contention(cfg, work):
    agents, each = cfg["contention_agents"], cfg["contention_tasks_each"]
    tasks = agents * each
    log(f"contention: {agents} kanban CLI agents, {tasks} tasks")
    kanban = kb.claim_bench(agents=agents, tasks=tasks, mode="cli", scratch_root=work)
    log(f"contention: {agents} floor-script agents, {tasks} tasks")
    folder = tempfile.mkdtemp(prefix="floor-", dir=work)
    path = os.path.join(folder, "board.db")
    kb.prepare(path, tasks, None)
    names = [f"bench-agent-{n}" for n in range(1, agents + 1)]
    records, wall, machine_cpu = kb.run_cli_agents(
        names,
        lambda agent: [PY, "-E", FLOOR, path, agent],
        lambda agent, task, token: [PY, "-E", FLOOR, path, agent, task, str(token)],
        kb.clean_env())
    floor = kb.summarize(records, wall)
    floor["double_claims"] = kb.double_claims_from_answers(records, tokens_unique=False)
    floor.update(kb.load_share(floor, machine_cpu, wall))
    shutil.rmtree(folder, ignore_errors=True)
    log(f"contention: {agents} api agents (in-process), {tasks} tasks")
    api = kb.claim_bench(agents=agents, tasks=tasks, mode="api", scratch_root=work)
    return {
        "agents": agents, "tasks": tasks,
        "kanban_cli": kanban, "floor_cli": floor, "kanban_api": api,
        "ratios": {
            "throughput_vs_cpu_bound": kanban["vs_cpu_bound"],
            "p99_vs_floor_p99": ratio(kanban["claim_latency_ms"]["p99"], floor["claim_latency_ms"]["p99"]),
            "p50_vs_floor_p50": ratio(kanban["claim_latency_ms"]["p50"], floor["claim_latency_ms"]["p50"]),
            "claims_per_s_vs_floor": ratio(kanban["claims_per_s"], floor["claims_per_s"]),
        },
    }


# -- 4. engine ----------------------------------------------------------------------------

ENGINE_MODULES = {"litequeue": "litequeue", "persist-queue": "persistqueue", "huey": "huey"}


def section_engine(cfg, work):
    cycles, rounds = cfg["engine_cycles"], cfg["engine_rounds"]
    runs = [("kanban", None), ("kanban-sql", None), ("floor", None), ("litequeue", None), ("persist-queue", None),
            ("huey", None), ("flush", None), ("flush", 1),
            ("kanban-batch", 1), ("kanban-batch", 8), ("kanban-batch", 32), ("kanban-threads", cfg["engine_threads"])]
    skipped = {}
    for engine, module in ENGINE_MODULES.items():
        if importlib.util.find_spec(module) is None:
            skipped[engine] = f"not installed (pip install {engine})"
    runs = [r for r in runs if r[0] not in skipped]
    results = {}
    env = kb.clean_env()
    for number in range(rounds):
        shift = number % len(runs)
        for engine, k in runs[shift:] + runs[:shift]:
            folder = tempfile.mkdtemp(prefix=f"{engine}-", dir=work)
            if engine in ("kanban", "kanban-batch", "kanban-threads", "kanban-sql", "floor"):
                kb.prepare(os.path.join(folder, "board.db"), cycles, None)
            argv = [PY, "-E", PEERS, engine, folder, str(cycles)] + ([str(k)] if k else [])
            result = run_ok(argv, env, f"engine {engine}")
            name = engine if k is None else f"{engine}-{k}"
            results.setdefault(name, []).append(json.loads(result["out"]))
            shutil.rmtree(folder, ignore_errors=True)
    engines = {}
    for name, found in results.items():
        engines[name] = {
            "per_s": round(statistics.median(r["per_s"] for r in found), 1),
            "per_s_runs": [r["per_s"] for r in found],
            "cpu_per_cycle_us": round(statistics.median(r["cpu_per_cycle_us"] for r in found), 1),
            "user_per_cycle_us": round(statistics.median(r["user_per_cycle_us"] for r in found), 1),
            "sys_per_cycle_us": round(statistics.median(r["sys_per_cycle_us"] for r in found), 1),
            "wal_bytes": found[-1].get("wal_bytes"),
            "wal_frames_per_commit": found[-1].get("wal_frames_per_commit"),
            "wal_pages_per_commit": found[-1].get("wal_pages_per_commit"),
            "journal_mode": found[0]["journal_mode"], "synchronous": found[0]["synchronous"],
        }
        if "frames" in found[0]:  # a flush loop: the frames it writes a commit
            engines[name]["frames"] = found[0]["frames"]
        if "claim_latency_ms" in found[0]:  # the threads run: the round of the median throughput
            middle = sorted(found, key=lambda r: r["per_s"])[len(found) // 2]
            engines[name].update({key: middle[key] for key in (
                "threads", "claim_latency_ms", "commits", "writes", "errors", "tasks_left")})
            engines[name]["double_claims"] = sum(r["double_claims"] for r in found)
    kanban = engines["kanban"]["per_s"]
    ratios = {"vs_floor": ratio(kanban, engines["floor"]["per_s"]),
              "cpu_vs_floor": ratio(engines["kanban"]["cpu_per_cycle_us"], engines["floor"]["cpu_per_cycle_us"])}
    if "kanban-sql" in engines:  # kanban's statements from a bare loop: what its Python costs
        ratios["vs_own_sql"] = ratio(kanban, engines["kanban-sql"]["per_s"])
        ratios["own_sql_vs_floor"] = ratio(engines["kanban-sql"]["per_s"], engines["floor"]["per_s"])
    threads = f"kanban-threads-{cfg['engine_threads']}"
    if threads in engines:
        ratios["threads_vs_floor"] = ratio(engines[threads]["per_s"], engines["floor"]["per_s"])
    for peer in ("litequeue", "persist-queue", "huey"):
        ratios[f"vs_{peer}"] = ratio(kanban, engines[peer]["per_s"]) if peer in engines else None
    for k in (1, 8, 32):
        name = f"kanban-batch-{k}"
        if name in engines:
            ratios[f"batch_{k}_vs_floor"] = ratio(engines[name]["per_s"], engines["floor"]["per_s"])
    if "flush" in engines:  # the disk's part of a cycle: what each engine spends above it is its own
        flush_us = 1e6 / engines["flush"]["per_s"]
        for name, found in engines.items():
            if not name.startswith(("flush", "kanban-batch", "kanban-threads")):
                found["outside_flush_us"] = round(1e6 / found["per_s"] - flush_us, 1)
        ratios["floor_vs_flush"] = ratio(engines["floor"]["per_s"], engines["flush"]["per_s"])
        if "flush-1" in engines:  # what a page more in a commit costs the disk, per flush
            extra = 1e6 / engines["flush"]["per_s"] - 1e6 / engines["flush-1"]["per_s"]
            pages = engines["flush"]["frames"] - engines["flush-1"]["frames"]
            ratios["flush_us_per_page"] = round(extra / 2 / pages, 1)
    return {"cycles": cycles, "rounds": rounds, "engines": engines, "skipped": skipped, "ratios": ratios,
            "unit": "claim+complete cycles/s (tasks/s for kanban-batch-K); median of the rounds"}


# -- 5. backlog.md ----------------------------------------------------------------------------

def section_backlog(cfg, work):
    if not os.path.exists(BACKLOG):
        return {"skipped": "backlog.md is not installed (npm install --prefix .tools backlog.md)"}
    repo = os.path.join(work, "backlog")
    os.makedirs(repo)
    env = kb.clean_env()
    previous = os.getcwd()
    os.chdir(repo)  # backlog works on the current folder; posix_spawn has no cwd
    try:
        run_ok([shutil.which("git") or "/usr/bin/git", "init", "-q"], env, "git init")
        run_ok([BACKLOG, "init", "bench", "--defaults"], env, "backlog init")
        run_ok([BACKLOG, "config", "set", "remoteOperations", "false"], env, "backlog config")
        board = os.path.join(work, "backlog-kanban", "board.db")
        from kanban.board import init

        init(board)
        env_kanban = kb.clean_env(KANBAN_DB=board, KANBAN_AGENT="bench-backlog")
        ops = ("backlog_create", "backlog_edit_start", "backlog_edit_done", "backlog_list",
               "kanban_create", "kanban_claim", "kanban_complete", "kanban_list")
        samples = {op: [] for op in ops}
        for number in range(cfg["backlog_warm"] + cfg["backlog_rounds"]):
            got = {}
            made = run_ok([BACKLOG, "task", "create", f"bench task {number}", "--plain"], env, "backlog task create")
            found = re.search(r"task-(\d+)", made["out"], re.IGNORECASE)
            if not found:
                raise BenchFailure(f"no task id in backlog's answer: {made['out'][:200]!r}")
            ident = found.group(1)
            got["backlog_create"] = made
            got["kanban_create"] = run_ok([KANBAN, "create", f"bench task {number}"], env_kanban, "kanban create")
            got["backlog_edit_start"] = run_ok([BACKLOG, "task", "edit", ident, "-s", "In Progress", "--plain"], env,
                                               "backlog task edit")
            claim = run_ok([KANBAN, "claim"], env_kanban, "kanban claim")
            got["kanban_claim"] = claim
            task = json.loads(claim["out"])
            got["backlog_edit_done"] = run_ok([BACKLOG, "task", "edit", ident, "-s", "Done", "--plain"], env,
                                              "backlog task edit")
            got["kanban_complete"] = run_ok([KANBAN, "complete", task["id"], "--token", str(task["lease_token"])],
                                            env_kanban, "kanban complete")
            got["backlog_list"] = run_ok([BACKLOG, "task", "list", "--plain"], env, "backlog task list")
            got["kanban_list"] = run_ok([KANBAN, "list"], env_kanban, "kanban list")
            if number >= cfg["backlog_warm"]:
                for op, result in got.items():
                    samples[op].append(result)
    finally:
        os.chdir(previous)
    stats = {op: summary(values) for op, values in samples.items()}

    def ms(op):
        return stats[op]["ms"]["p50"]
    pairs = {"create": ("kanban_create", "backlog_create"), "claim": ("kanban_claim", "backlog_edit_start"),
             "complete": ("kanban_complete", "backlog_edit_done"), "list": ("kanban_list", "backlog_list")}
    kanban_mean = statistics.mean(ms(a) for a, _ in pairs.values())
    backlog_mean = statistics.mean(ms(b) for _, b in pairs.values())
    return {
        "rounds": cfg["backlog_rounds"], "stats": stats,
        "pairs": {name: {"kanban": a, "backlog": b} for name, (a, b) in pairs.items()},
        "ratios": {"per_operation": ratio(kanban_mean, backlog_mean),
                   **{name: ratio(ms(a), ms(b)) for name, (a, b) in pairs.items()}},
        "per_operation_ms": {"kanban": round(kanban_mean, 2), "backlog": round(backlog_mean, 2)},
    }


# -- where the time goes -----------------------------------------------------------------------

IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def parse_importtime(text):
    """[(module, self us, cumulative us, depth)] from `python -X importtime` stderr."""
    rows = []
    for line in text.splitlines():
        found = IMPORT_LINE.match(line)
        if found:
            rows.append((found.group(4), int(found.group(1)), int(found.group(2)), (len(found.group(3)) - 1) // 2))
    return rows


def section_importtime(cfg, work):
    runs = cfg["importtime_runs"]
    board = os.path.join(work, "importtime", "board.db")
    kb.prepare(board, runs + 2, None)
    env = kb.clean_env(KANBAN_DB=board, KANBAN_AGENT="bench-importtime")
    claim_runs, bare_runs = [], []
    for number in range(runs + 1):
        claim = run_ok([PY, "-E", "-X", "importtime", KANBAN, "claim"], env, "importtime claim")
        bare = run_ok([PY, "-E", "-X", "importtime", "-c", "pass"], env, "importtime pass")
        if number:  # the first run warms the caches
            claim_runs.append(parse_importtime(claim["err"]))
            bare_runs.append(parse_importtime(bare["err"]))

    def medians(all_runs):
        self_us, cumulative, depth = {}, {}, {}
        for rows in all_runs:
            for name, own, cum, level in rows:
                self_us.setdefault(name, []).append(own)
                cumulative.setdefault(name, []).append(cum)
                depth[name] = level
        return ({n: statistics.median(v) for n, v in self_us.items()},
                {n: statistics.median(v) for n, v in cumulative.items()}, depth)
    own, cum, depth = medians(claim_runs)
    bare_own, _bare_cum, _ = medians(bare_runs)
    extra = {n: v for n, v in own.items() if n not in bare_own}
    groups = {}
    for name, value in extra.items():
        root = name.split(".")[0]
        groups[root] = groups.get(root, 0) + value
    top_level = sorted(((n, cum[n]) for n in extra if depth[n] == 0), key=lambda x: -x[1])
    return {
        "runs": runs,
        "note": "microseconds under -X importtime, which inflates them; medians of the runs",
        "total_us": round(sum(own.values())),
        "interpreter_us": round(sum(bare_own.values())),
        "claim_path_us": round(sum(extra.values())),
        "modules": len(own),
        "claim_path_modules": sorted(extra),
        "by_package_us": dict(sorted(((k, round(v)) for k, v in groups.items()), key=lambda x: -x[1])),
        "top_level_cumulative_us": [[n, round(v)] for n, v in top_level],
        "top_self_us": [[n, round(v)] for n, v in sorted(extra.items(), key=lambda x: -x[1])[:25]],
        "forbidden_imported": sorted(n for n in own if n.split(".")[0] in FORBIDDEN),
    }


PHASES = r"""
import time
began = time.perf_counter()
import os, sys  # json only once the clock has stopped: it costs more than the claim's own imports
lib, kanban, modules, out_path = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4]
sys.path.insert(0, lib)
for name in modules:  # what a real claim imports, in the order it did
    if name and name not in sys.modules:
        try:
            __import__(name)
        except Exception:
            pass
imported = time.perf_counter()
from kanban.board import Board
spent = {"open": 0.0, "claim": 0.0}
def timed(function, key):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[key] += time.perf_counter() - started
    return wrapper
Board.__init__ = timed(Board.__init__, "open")
Board.claim = timed(Board.claim, "claim")
from kanban.dispatch import main
sys.argv = [kanban, "claim"]
real_stdout, sys.stdout = sys.stdout, open(os.devnull, "w")
try:
    main(kanban)
except SystemExit:
    pass
ended = time.perf_counter()
sys.stdout = real_stdout
import json
with open(out_path, "w") as out:
    json.dump({"imports": (imported - began) * 1000, "open": spent["open"] * 1000,
               "claim": spent["claim"] * 1000,
               "cli": (ended - imported - spent["open"] - spent["claim"]) * 1000}, out)
"""
PHASE_NAMES = {
    "imports": "importing the claim path's modules ({count} beyond the interpreter's)",
    "open": "opening the board (Board.__init__: connect, pragmas, schema version)",
    "claim": "the claim transaction (Board.claim: lock, reap, pick, update, event, answer)",
    "cli": "the CLI around it (dispatch, arguments, JSON out, close)",
}


def section_phases(cfg, work):
    """A CLI claim split into phases, through the real entry point (bin/kanban's
    dispatch.main) with Board.__init__ and Board.claim timed: robust to refactors of
    everything around them.  The imports are done up front, in the order a real
    claim does them (from -X importtime), so they are timed as one phase."""
    runs = cfg["phases_runs"]
    folder = os.path.join(work, "phases")
    board = os.path.join(folder, "board.db")
    kb.prepare(board, 2 * runs + 6, None)
    env = kb.clean_env(KANBAN_DB=board, KANBAN_AGENT="bench-phases")
    claim = run_ok([PY, "-E", "-X", "importtime", KANBAN, "claim"], env, "importtime claim")
    bare = run_ok([PY, "-E", "-X", "importtime", "-c", "pass"], env, "importtime pass")
    baseline = {row[0] for row in parse_importtime(bare["err"])}
    modules = [row[0] for row in parse_importtime(claim["err"]) if row[0] not in baseline]
    lib, out_path = os.path.join(ROOT, "lib"), os.path.join(folder, "phases.json")
    phases, whole, startup = {}, [], []
    for number in range(runs + 1):
        run_ok([PY, "-E", "-c", PHASES, lib, KANBAN, ",".join(modules), out_path], env, "phases")
        real = run_ok([KANBAN, "claim"], env, "kanban claim")
        nothing = run_ok([PY, "-E", "-c", "pass"], env, "python -c pass")
        if not number:
            continue
        with open(out_path, encoding="utf-8") as handle:
            for name, ms in json.load(handle).items():
                phases.setdefault(name, []).append(ms)
        whole.append(real["ms"])
        startup.append(nothing["ms"])
    total = statistics.median(whole)
    rows = [["interpreter start-up and exit (python -E -c pass)", round(statistics.median(startup), 2)]]
    rows += [[PHASE_NAMES[name].format(count=len(modules)), round(statistics.median(values), 2)]
             for name, values in phases.items()]
    rows.append(["the rest (sh and exec, teardown, noise): the real command minus the above",
                 round(total - sum(v for _, v in rows), 2)])
    return {"runs": runs, "kanban_claim_p50_ms": round(total, 2), "phases_ms": rows, "modules": modules}


def section_profile(cfg, work):
    import cProfile
    import io
    import pstats

    from kanban import Board

    claims = cfg["profile_claims"]
    out = {"claims": claims}

    def board_with(name):
        path = os.path.join(work, "profile", name, "board.db")
        kb.prepare(path, claims + 10, None)
        return Board(path)

    def cycle(board):
        task = board.claim("bench-profile")
        board.complete(task["id"], task["lease_token"], agent="bench-profile")

    board = board_with("cprofile")
    for _ in range(5):
        cycle(board)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(claims):
        cycle(board)
    profiler.disable()
    board.close()
    for key in ("cumulative", "tottime"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(key).print_stats(22)
        out[f"cprofile_{key}"] = _trim_pstats(text.getvalue())
    if importlib.util.find_spec("pyinstrument") is not None:
        from pyinstrument import Profiler

        board = board_with("pyinstrument")
        for _ in range(5):
            cycle(board)
        profiler = Profiler(interval=0.0001)
        profiler.start()
        for _ in range(claims):
            cycle(board)
        profiler.stop()
        board.close()
        out["pyinstrument"] = profiler.output_text(unicode=False, color=False, show_all=False)
    else:
        out["pyinstrument"] = None
    out["sql"] = sql_profile(board_with("sql"), cycle, claims)
    # the whole CLI process under cProfile, merged over several runs
    runs = cfg["profile_cli_runs"]
    path = os.path.join(work, "profile", "cli", "board.db")
    kb.prepare(path, runs + 2, None)
    env = kb.clean_env(KANBAN_DB=path, KANBAN_AGENT="bench-profile")
    stats = None
    for number in range(runs + 1):
        target = os.path.join(work, "profile", "cli", f"claim-{number}.prof")
        run_ok([PY, "-E", "-m", "cProfile", "-o", target, KANBAN, "claim"], env, "cProfile kanban claim")
        if number == 0:
            continue
        if stats is None:
            stats = pstats.Stats(target, stream=io.StringIO())
        else:
            stats.add(target)
    text = io.StringIO()
    stats.stream = text
    stats.strip_dirs().sort_stats("tottime").print_stats(25)
    out["cli_cprofile_tottime"] = _trim_pstats(text.getvalue())
    out["cli_cprofile_runs"] = runs
    return out


def sql_profile(board, cycle, cycles):
    """SQLite's own time per statement over `cycles` claim+complete cycles (apsw's
    trace_v2 profile events): which statements cost what, and which scan or sort."""
    import apsw

    for _ in range(5):
        cycle(board)
    seen = {}

    def record(event):
        sql = " ".join(event["sql"].split())
        entry = seen.setdefault(sql, {"calls": 0, "ns": 0, "vm_steps": 0, "fullscan_steps": 0, "sorts": 0})
        status = event.get("stmt_status") or {}
        entry["calls"] += 1
        entry["ns"] += event["nanoseconds"]
        entry["vm_steps"] += status.get("SQLITE_STMTSTATUS_VM_STEP", 0)
        entry["fullscan_steps"] += status.get("SQLITE_STMTSTATUS_FULLSCAN_STEP", 0)
        entry["sorts"] += status.get("SQLITE_STMTSTATUS_SORT", 0)

    board.db.conn.trace_v2(apsw.SQLITE_TRACE_PROFILE, record)
    started = time.perf_counter()
    for _ in range(cycles):
        cycle(board)
    elapsed = time.perf_counter() - started
    board.db.conn.trace_v2(0, None)
    board.close()
    rows = []
    for sql, entry in sorted(seen.items(), key=lambda item: -item[1]["ns"]):
        rows.append({"sql": sql if len(sql) <= 160 else sql[:157] + "...",
                     "per_cycle": round(entry["calls"] / cycles, 2),
                     "us_per_cycle": round(entry["ns"] / 1000 / cycles, 1),
                     "vm_steps_per_call": round(entry["vm_steps"] / entry["calls"], 1),
                     "fullscan_steps_per_call": round(entry["fullscan_steps"] / entry["calls"], 1),
                     "sorts_per_call": round(entry["sorts"] / entry["calls"], 2)})
    total_us = sum(entry["ns"] for entry in seen.values()) / 1000 / cycles
    return {"cycles": cycles, "wall_us_per_cycle": round(elapsed * 1e6 / cycles, 1),
            "sqlite_us_per_cycle": round(total_us, 1),
            "statements_per_cycle": round(sum(e["calls"] for e in seen.values()) / cycles, 1),
            "statements": rows}


def _trim_pstats(text):
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    head = [line for line in lines[:start] if "function calls" in line]
    return "\n".join(head + lines[start:]).strip()


# -- targets and the report ------------------------------------------------------------------

def _threads_bound(threads, floor, cores):
    """What bounds the threads run, from its own figures.  The GIL runs one thread's
    Python at a time, but the SQLite steps, the WAL sync and the kernel's side of the
    wake-ups run without it: the CPU per cycle is not all serial, so 1 / (CPU per cycle)
    is no bound.  What is: the cores (at this CPU per cycle), and the cores' use says
    whether the run was waiting rather than computing."""
    cpu = threads["cpu_per_cycle_us"]
    busy = threads["per_s"] * cpu / 1e6
    text = (f"bound: {cpu:.0f} us of CPU per cycle ({threads['user_per_cycle_us']:.0f} user + "
            f"{threads['sys_per_cycle_us']:.0f} sys); the {cores} cores allow at most ~{cores * 1e6 / cpu:.0f} "
            f"cycles/s = {cores * 1e6 / cpu / floor:.2f}x the floor.  The run kept {busy:.2f} cores busy")
    if busy < 1:
        return text + (", less than the one core of Python the GIL allows: the rest of the time the threads "
                       "waited (for one another's wake-ups, for the WAL syncs, for a core other work held)")
    return text + "; the GIL allows one core of Python, the rest is SQLite and the kernel"


def _flush_bound(engines):
    """What the disk allows, from the flush loop (bench/peers.py flush): two WAL flushes a
    cycle and nothing else, and what each engine spends a cycle above them."""
    if "flush" not in engines:
        return None
    flush = engines["flush"]
    outside = ", ".join(f"{name} {found['outside_flush_us']:.0f} us" for name, found in engines.items()
                        if "outside_flush_us" in found)
    goal = 1e6 / (0.9 * engines["floor"]["per_s"]) - 1e6 / flush["per_s"]
    return (f"the disk: two WAL flushes a cycle alone run {flush['per_s']:.0f} cycles/s "
            f"({1e6 / flush['per_s']:.0f} us a cycle), the floor at {engines['floor']['per_s'] / flush['per_s']:.2f}x "
            f"of that.  Time a cycle above the flushes: {outside}; 0.9x the floor allows kanban {goal:.0f} us")


def targets(report):
    s = report["sections"]
    rows = []

    def add(number, name, measured, value, goal, met, note=None):
        rows.append({"target": number, "name": name, "measured": measured, "ratio": value, "goal": goal,
                     "met": met, "note": note})

    def skipped(number, name, why):
        add(number, name, why, None, "-", None)

    cli = s.get("cli")
    if cli and "error" not in cli:
        st = cli["stats"]
        add(1, "CLI claim p50 vs the stdlib floor script",
            f"{st['kanban_claim']['ms']['p50']:.1f} ms vs {st['floor_claim']['ms']['p50']:.1f} ms",
            cli["ratios"]["claim_vs_floor"], "<= 1.2x", cli["ratios"]["claim_vs_floor"] <= 1.2)
        add(1, "CLI claim p50 vs `python -c pass`",
            f"{st['kanban_claim']['ms']['p50']:.1f} ms vs {st['python_pass']['ms']['p50']:.1f} ms",
            cli["ratios"]["claim_vs_python"], "(for reference)", None)
    elif cli:
        skipped(1, "CLI claim vs the floor", cli["error"])
    size = s.get("size")
    if size and "error" not in size:
        small, big = sorted(size["api_claim_ms"], key=int)
        for mode, key, label in (("api", "api_p50", "in-process"), ("cli", "cli_p50", "CLI")):
            if mode == "api":
                a, b = size["api_claim_ms"][big]["p50"], size["api_claim_ms"][small]["p50"]
            else:
                a, b = size["cli_claim"][big]["ms"]["p50"], size["cli_claim"][small]["ms"]["p50"]
            add(2, f"claim p50 ({label}), {int(big):,} vs {int(small):,} tasks",
                f"{a:.2f} ms vs {b:.2f} ms", size["ratios"][key], "<= 1.2x", size["ratios"][key] <= 1.2,
                None if int(big) >= 1_000_000 else "quick run: not the million-task board")
        for board in (small, big):
            pick = size["pick_us"][board]
            add(2, f"one claim pick vs the floor's pick, {int(board):,}-task board "
                f"({size['boards'][board]['ready']:,} ready)",
                f"{pick['kanban']:.1f} us vs {pick['floor']:.1f} us", pick["ratio"], "<= 2x",
                pick["ratio"] is not None and pick["ratio"] <= 2)
    elif size:
        skipped(2, "board size", size["error"])
    con = s.get("contention")
    if con and "error" not in con:
        k, f = con["kanban_cli"], con["floor_cli"]
        label = f"{con['agents']} CLI agents x {con['tasks'] // con['agents']} tasks"
        add(3, f"{label}: double claims", f"{k['double_claims']} (answers + event log)", None, "0",
            k["double_claims"] == 0)
        add(3, f"{label}: busy errors surfaced", f"{k['busy_errors']} (floor script: {f['busy_errors']})", None,
            "0", k["busy_errors"] == 0)
        add(3, f"{label}: throughput vs CPU bound",
            f"{k['claims_per_s']:.1f} claims/s vs {k['cpu_bound_claims_per_s']:.1f}"
            f" ({k['cores']} cores / {k['cpu_s'] / max(1, k['completes']):.3f} CPU s per cycle)",
            con["ratios"]["throughput_vs_cpu_bound"], ">= 0.9x", (con["ratios"]["throughput_vs_cpu_bound"] or 0) >= 0.9,
            f"other load on the machine meanwhile: {k.get('other_load_cores', '?')} cores; on the cores it left: "
            f"{fmt_ratio(k.get('vs_free_cores_cpu_bound'))}")
        add(3, f"{label}: claim p99 vs the floor script's",
            f"{k['claim_latency_ms']['p99']:.0f} ms vs {f['claim_latency_ms']['p99']:.0f} ms",
            con["ratios"]["p99_vs_floor_p99"], "<= 0.5x", (con["ratios"]["p99_vs_floor_p99"] or 9) <= 0.5)
        a = con["kanban_api"]
        add(3, f"{con['agents']} API agents (a Board each): throughput vs CPU bound",
            f"{a['claims_per_s']:.1f} claims/s vs {a['cpu_bound_claims_per_s'] or 0:.1f}",
            a["vs_cpu_bound"], ">= 0.9x", (a["vs_cpu_bound"] or 0) >= 0.9,
            f"other load on the machine meanwhile: {a.get('other_load_cores', '?')} cores; on the cores it left: "
            f"{fmt_ratio(a.get('vs_free_cores_cpu_bound'))}" + _lock_note(a.get("lock"), a["claims_per_s"]))
    elif con:
        skipped(3, "contention", con["error"])
    eng = s.get("engine")
    if eng and "error" not in eng:
        e = eng["engines"]
        add(4, "in-process claim+complete vs the floor (each commit on disk before its answer)",
            f"{e['kanban']['per_s']:.0f} vs {e['floor']['per_s']:.0f} cycles/s", eng["ratios"]["vs_floor"],
            ">= 0.9x", eng["ratios"]["vs_floor"] >= 0.9, _flush_bound(e))
        add(4, "CPU per in-process cycle vs the floor's",
            f"{e['kanban']['cpu_per_cycle_us']:.0f} us vs {e['floor']['cpu_per_cycle_us']:.0f} us",
            eng["ratios"]["cpu_vs_floor"], "<= 2x", eng["ratios"]["cpu_vs_floor"] <= 2)
        if "kanban-sql" in e:
            add(4, "kanban's own statements, locks and syncs from a bare loop (kanban-sql) vs the floor",
                f"{e['kanban-sql']['per_s']:.0f} vs {e['floor']['per_s']:.0f} cycles/s; CPU "
                f"{e['kanban-sql']['cpu_per_cycle_us']:.0f} vs {e['floor']['cpu_per_cycle_us']:.0f} us",
                eng["ratios"]["own_sql_vs_floor"], "(for reference)", None,
                f"kanban itself runs at {fmt_ratio(eng['ratios']['vs_own_sql'])} of it: the rest is kanban's Python")
        for peer in ("litequeue", "persist-queue", "huey"):
            if peer in e:
                # what the peer's ratio would be with none of kanban's Python (kanban-sql)
                bare = (f"kanban's own statements from a bare loop (kanban-sql): "
                        f"{fmt_ratio(ratio(e['kanban-sql']['per_s'], e[peer]['per_s']))} {peer}"
                        if "kanban-sql" in e else None)
                pages = _pages_note(e["kanban"], e[peer], peer, eng["ratios"].get("flush_us_per_page"))
                if pages:
                    bare = f"{bare}; {pages}" if bare else pages
                add(4, f"in-process claim+complete vs {peer}",
                    f"{e['kanban']['per_s']:.0f} vs {e[peer]['per_s']:.0f} cycles/s", eng["ratios"][f"vs_{peer}"],
                    "> 1x", eng["ratios"][f"vs_{peer}"] > 1, bare)
            else:
                skipped(4, f"in-process claim+complete vs {peer}", eng["skipped"].get(peer, "skipped"))
        batch = [f"K={k}: {e[f'kanban-batch-{k}']['per_s']:.0f}" for k in (1, 8, 32) if f"kanban-batch-{k}" in e]
        if batch:
            add(4, "claim_many/complete_many, tasks/s (K=32 vs the floor's cycles/s)", ", ".join(batch),
                eng["ratios"].get("batch_32_vs_floor"), ">= 5x", (eng["ratios"].get("batch_32_vs_floor") or 0) >= 5)
        threads = next((e[n] for n in e if n.startswith("kanban-threads-")), None)
        if threads:
            lat = threads["claim_latency_ms"]
            add(4, f"{threads['threads']} threads in one process (group commit) vs the floor's single writer",
                f"{threads['per_s']:.0f} vs {e['floor']['per_s']:.0f} cycles/s; {threads['writes']} writes in "
                f"{threads['commits']} commits; claim p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms",
                eng["ratios"].get("threads_vs_floor"), ">= 3x", (eng["ratios"].get("threads_vs_floor") or 0) >= 3,
                _threads_bound(threads, e["floor"]["per_s"], report["machine"]["cores"]))
            add(4, f"{threads['threads']} threads: double claims (event log, all rounds)",
                str(threads["double_claims"]), None, "0", threads["double_claims"] == 0)
    elif eng:
        skipped(4, "engine", eng["error"])
    bl = s.get("backlog")
    if bl and "skipped" in bl:
        skipped(5, "per operation vs backlog.md", bl["skipped"])
    elif bl and "error" not in bl:
        add(5, "per operation vs backlog.md (create/claim/complete/list vs create/edit/edit/list)",
            f"{bl['per_operation_ms']['kanban']:.1f} ms vs {bl['per_operation_ms']['backlog']:.1f} ms",
            bl["ratios"]["per_operation"], "<= 0.15x", bl["ratios"]["per_operation"] <= 0.15)
    elif bl:
        skipped(5, "backlog.md", bl["error"])
    imp = s.get("importtime")
    if imp and "error" not in imp:
        add("-", "claim path imports none of " + ", ".join(FORBIDDEN),
            ", ".join(imp["forbidden_imported"]) or "none imported", None, "none", not imp["forbidden_imported"])
    ins = s.get("installed")
    if ins and "error" not in ins:
        value = ins["ratios"]["installed_vs_checkout"]
        add("-", "`kanban claim` installed from the wheel (pip/pipx) vs the checkout's bin/kanban",
            f"{ins['stats']['installed']['ms']['p50']:.1f} vs {ins['stats']['checkout']['ms']['p50']:.1f} ms p50; "
            f"metadata imports: {', '.join(ins['installed_metadata_imports']) or 'none'}", value, "<= 1.1x",
            value is not None and value <= 1.1 and not ins["installed_metadata_imports"])
    elif ins:
        skipped("-", "installed vs checkout claim", ins["error"])
    pg_bench.target_rows(s.get("postgres"), add, skipped)
    pg_bench.fleet_target_rows(s.get("fleet"), add, skipped)
    return rows


def _pages_note(kanban, peer, name, per_page_us=None):
    """The WAL pages a commit of kanban's and of a peer's, as the bench read them from
    each engine's WAL (bench/peers.py wal_pages): every page is written and flushed,
    at `per_page_us` a page a flush on this disk (the flush loops)."""
    ours, theirs = kanban.get("wal_frames_per_commit"), peer.get("wal_frames_per_commit")
    if not ours or not theirs:
        return None
    cost = (f" (~{2 * (ours - theirs) * per_page_us:.0f} us a cycle of flushing at {per_page_us:.1f} us a page)"
            if per_page_us and ours > theirs else "")
    return f"WAL pages a commit: kanban {ours:.1f}, {name} {theirs:.1f}{cost}"


def fmt_ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def fmt_met(met):
    return {True: "yes", False: "**no**", None: "-"}[met]


def markdown(report):
    m = report["machine"]
    out = [f"# kanban benchmark report ({'quick' if report['quick'] else 'full'} run)", ""]
    out.append(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(report['started']))}, "
               f"{report['seconds']:.0f} s. Machine: {m['cpu']}, {m['cores']} cores, "
               f"{m['memory_gib']} GiB, {m['filesystem']} ({m['os']}); Python {m['python']}; "
               f"SQLite {m['sqlite_kanban']} (apsw, kanban) and {m['sqlite_stdlib']} (stdlib: floor, peers); "
               f"load average at start {', '.join(str(x) for x in m['load_average'])}.")
    out += ["", "## Targets (ratios measured side by side in this run)", "",
            "| # | target | ratio | goal | met | measured |", "|---|---|---|---|---|---|"]
    for row in report["targets"]:
        note = f" ({row['note']})" if row.get("note") else ""
        out.append(f"| {row['target']} | {row['name']} | {fmt_ratio(row['ratio'])} | {row['goal']} | "
                   f"{fmt_met(row['met'])} | {row['measured']}{note} |")
    s = report["sections"]
    for name, section in s.items():
        if "error" in section:
            out += ["", f"Section `{name}` failed: {section['error']}"]
    if "cli" in s and "stats" in s["cli"]:
        out += ["", "## 1. One CLI call (sequential, interleaved, p50 / p95 of "
                f"{s['cli']['rounds']} runs each)", "",
                "| command | wall p50 | wall p95 | CPU p50 |", "|---|---|---|---|"]
        for name, st in s["cli"]["stats"].items():
            out.append(f"| {s['cli']['commands'][name]} | {st['ms']['p50']:.1f} ms | {st['ms']['p95']:.1f} ms | "
                       f"{st['cpu_ms']['p50']:.1f} ms |")
    if "phases" in s and "phases_ms" in s["phases"]:
        out += ["", f"## Where a CLI claim's {s['phases']['kanban_claim_p50_ms']:.1f} ms go "
                f"(p50 of {s['phases']['runs']} runs per phase)", "", "| phase | ms |", "|---|---|"]
        out += [f"| {name} | {ms:.2f} |" for name, ms in s["phases"]["phases_ms"]]
    if "importtime" in s and "by_package_us" in s["importtime"]:
        imp = s["importtime"]
        out += ["", f"## Imports on the claim path (`-X importtime`, median of {imp['runs']} runs; "
                f"{imp['claim_path_us'] / 1000:.1f} ms beyond the interpreter's own "
                f"{imp['interpreter_us'] / 1000:.1f} ms)", "", "| package | self, all its modules | ",
                "|---|---|"]
        out += [f"| {name} | {us / 1000:.2f} ms |" for name, us in list(imp["by_package_us"].items())[:15]]
        out += ["", "Top-level imports, cumulative: " + ", ".join(
            f"{n} {us / 1000:.1f} ms" for n, us in imp["top_level_cumulative_us"][:10]) + "."]
    if "size" in s and "boards" in s["size"]:
        z = s["size"]
        out += ["", "## 2. Board size", "", "| board | ready | file | build | in-process p50 | CPU p50 | CLI p50 "
                "| pick: kanban / floor |", "|---|---|---|---|---|---|---|---|"]
        for size, info in z["boards"].items():
            pick = z["pick_us"][size]
            out.append(f"| {int(size):,} tasks | {info['ready']} | {info['bytes'] / 1e6:.1f} MB | {info['build_s']} s "
                       f"| {z['api_claim_ms'][size]['p50']:.2f} ms | {z['api_claim_cpu_ms'][size]['p50']:.2f} ms "
                       f"| {z['cli_claim'][size]['ms']['p50']:.1f} ms "
                       f"| {pick['kanban']:.1f} / {pick['floor']:.1f} us |")
    if "contention" in s and "kanban_cli" in s["contention"]:
        c = s["contention"]
        out += ["", f"## 3. Contention: {c['agents']} agents, {c['tasks']} tasks", "",
                "| run | claims/s | CPU bound | p50 | p95 | p99 | busy | double | other load |",
                "|---|---|---|---|---|---|---|---|---|"]
        for label, r in (("kanban CLI", c["kanban_cli"]), ("floor script", c["floor_cli"]),
                         ("kanban api", c["kanban_api"])):
            lat = r["claim_latency_ms"]
            out.append(f"| {label} | {r['claims_per_s']:.1f} | {r['cpu_bound_claims_per_s'] or 0:.1f} | "
                       f"{lat['p50']:.1f} ms | {lat['p95']:.1f} ms | {lat['p99']:.1f} ms | {r['busy_errors']} | "
                       f"{r['double_claims']} | {r.get('other_load_cores', '-')} |")
    if "engine" in s and "engines" in s["engine"]:
        e = s["engine"]
        out += ["", f"## 4. Engine ({e['cycles']} cycles, median of {e['rounds']} rounds)", "",
                "| engine | per s | vs kanban | above the flushes | CPU per cycle (user + sys) | WAL pages a commit "
                "| WAL at end | journal | synchronous |",
                "|---|---|---|---|---|---|---|---|---|"]
        base = e["engines"]["kanban"]["per_s"]
        for name, r in e["engines"].items():
            wal = f"{r['wal_bytes'] / 1e6:.1f} MB" if r.get("wal_bytes") is not None else "-"
            above = f"{r['outside_flush_us']:.0f} us" if "outside_flush_us" in r else "-"
            frames = r.get("wal_frames_per_commit")
            frames = f"{frames:.1f}" if frames is not None else "-"
            out.append(f"| {name} | {r['per_s']:.0f} | {r['per_s'] / base:.2f}x | {above} | "
                       f"{r['cpu_per_cycle_us']:.0f} us ({r['user_per_cycle_us']:.0f} + "
                       f"{r['sys_per_cycle_us']:.0f}) | {frames} | {wal} | "
                       f"{r['journal_mode']} | {r['synchronous']} |")
        for name, why in e["skipped"].items():
            out.append(f"| {name} | skipped: {why} | | | | | | | |")
        out += ["", "(synchronous 2 = FULL: SQLite fsyncs the WAL inside each COMMIT.  kanban commits at"
                " 1 = NORMAL and fdatasyncs the WAL itself after the write lock, before the caller's answer:"
                " the column says how many times a cycle it did.  flush is no engine: two commits' WAL writes"
                " and fdatasyncs a cycle and nothing else, the disk's part of every cycle; \"above the flushes\""
                " is an engine's time a cycle beyond it, its own work.  WAL pages a commit: read from each"
                " engine's WAL at the end of its last round, every page a commit wrote; each is written and"
                " flushed.)"]
        pages = [f"{name}: " + ", ".join(f"{b} {n:g}" for b, n in r["wal_pages_per_commit"].items() if n >= 0.1)
                 for name, r in e["engines"].items()
                 if r.get("wal_pages_per_commit") and not name.startswith(("kanban-batch", "kanban-threads"))]
        if pages:
            out += ["", "The b-trees a commit's pages belong to (pages a commit): " + "; ".join(pages) + "."]
    if "backlog" in s and "stats" in s["backlog"]:
        b = s["backlog"]
        out += ["", f"## 5. backlog.md vs kanban (p50 of {b['rounds']} runs)", "",
                "| operation | kanban | backlog.md | ratio |", "|---|---|---|---|"]
        for name, pair in b["pairs"].items():
            out.append(f"| {name} | {b['stats'][pair['kanban']]['ms']['p50']:.1f} ms | "
                       f"{b['stats'][pair['backlog']]['ms']['p50']:.1f} ms | {fmt_ratio(b['ratios'][name])} |")
    if "profile" in s and "cprofile_tottime" in s["profile"]:
        p = s["profile"]
        out += ["", f"## Profile of {p['claims']} in-process claim+complete cycles (cProfile, by own time)", "",
                "```",
                p["cprofile_tottime"], "```"]
        if p.get("pyinstrument"):
            out += ["", "pyinstrument:", "", "```", p["pyinstrument"].strip(), "```"]
        q = p.get("sql")
        if q:
            out += ["", f"SQLite's own time per statement over {q['cycles']} in-process cycles: "
                    f"{q['statements_per_cycle']} statements, {q['sqlite_us_per_cycle']:.0f} us of "
                    f"{q['wall_us_per_cycle']:.0f} us per cycle (COMMIT includes the fsync)", "",
                    "| statement | per cycle | us per cycle | VM steps | full-scan steps | sorts |",
                    "|---|---|---|---|---|---|"]
            for row in q["statements"][:20]:
                sql = row["sql"].replace("|", "\\|")
                out.append(f"| `{sql}` | {row['per_cycle']} | {row['us_per_cycle']} | {row['vm_steps_per_call']} | "
                           f"{row['fullscan_steps_per_call']} | {row['sorts_per_call']} |")
        out += ["", f"cProfile of `kanban claim` as a process ({p['cli_cprofile_runs']} runs merged, by own time):",
                "", "```", p["cli_cprofile_tottime"], "```"]
    if "web" in s:
        import web_board as web_bench

        out += web_bench.markdown(s["web"])
    out += pg_bench.fleet_markdown(s.get("fleet"))
    out += ["", "Everything, with every percentile: `report.json`."]
    return "\n".join(out) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--out", required=True, help="folder for report.json and report.md")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    options = parser.parse_args(argv)
    chosen = SECTIONS if not options.only else tuple(x.strip() for x in options.only.split(","))
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    cfg = SETTINGS["quick" if options.quick else "full"]
    os.makedirs(options.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="kanban-bench-suite-")
    started = time.time()
    report = {"quick": options.quick, "started": started, "settings": cfg, "sections": {}}
    try:
        report["machine"] = machine(work)
        functions = {"cli": section_cli, "size": section_size, "contention": section_contention,
                     "engine": section_engine, "backlog": section_backlog, "importtime": section_importtime,
                     "phases": section_phases, "profile": section_profile, "installed": section_installed,
                     "web": section_web, "postgres": section_postgres, "fleet": section_fleet}
        for name in chosen:
            log(f"{name} ...")
            began = time.perf_counter()
            try:
                report["sections"][name] = functions[name](cfg, work)
            except (BenchFailure, kb_errors()) as exc:
                report["sections"][name] = {"error": str(exc)}
                log(f"{name} failed: {exc}")
            report["sections"][name]["seconds"] = round(time.perf_counter() - began, 1)
            log(f"{name} done in {report['sections'][name]['seconds']} s")
    finally:
        if options.keep:
            log(f"scratch kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report["seconds"] = round(time.time() - started, 1)
    report["targets"] = targets(report)
    con = report["sections"].get("contention", {})
    report["checks"] = {
        "double_claims": sum(con.get(run, {}).get("double_claims", 0) for run in ("kanban_cli", "kanban_api"))
        + report["sections"].get("fleet", {}).get("double_claims", 0),
        "sections_failed": [n for n, sec in report["sections"].items() if "error" in sec],
    }
    with open(os.path.join(options.out, "report.json"), "w", encoding="utf-8") as out:
        json.dump(report, out, indent=2)
        out.write("\n")
    with open(os.path.join(options.out, "report.md"), "w", encoding="utf-8") as out:
        out.write(markdown(report))
    log(f"wrote {options.out}/report.json and report.md in {report['seconds']} s")
    return 1 if report["checks"]["sections_failed"] or report["checks"]["double_claims"] else 0


def section_postgres(cfg, work):
    return pg_bench.section_postgres(cfg, work, KANBAN, summary, ratio, BenchFailure)


def section_fleet(cfg, work):
    return pg_bench.section_fleet(cfg, work, KANBAN)


def kb_errors():
    from kanban.errors import KanbanError

    return KanbanError


if __name__ == "__main__":
    sys.exit(main())
