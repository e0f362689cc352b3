"""bench/run.py's Postgres section: a CLI claim and complete on a Postgres board (through
the per-user helper, and directly) next to the same on a SQLite board, interleaved in
one run.  Needs a server: KANBAN_BENCH_PG, else KANBAN_TEST_PG (a URL); without one the
section says it was skipped."""
import contextlib
import json
import os
import sys
import time
import uuid

from kanban import bench as kb
from kanban.store import helper as pg_helper
from kanban.store.postgres import display_url


def _server():
    return os.environ.get("KANBAN_BENCH_PG") or os.environ.get("KANBAN_TEST_PG") or ""


def _admin(server, sql):
    from kanban.store.postgres import connect

    with connect(server) as conn:
        conn.execute(sql)


@contextlib.contextmanager
def _direct_here():
    """This process's own boards (making the tasks, reading the event log) connect
    directly: the bench leaves no per-user helper behind (the agents' environment is
    set apart, with a runtime folder of its own)."""
    before = os.environ.get("KANBAN_PG_HELPER")
    os.environ["KANBAN_PG_HELPER"] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("KANBAN_PG_HELPER", None)
        else:
            os.environ["KANBAN_PG_HELPER"] = before


def section_postgres(cfg, work, kanban, summary, ratio, failure):
    with _direct_here():
        return _section_postgres(cfg, work, kanban, summary, ratio, failure)


def _section_postgres(cfg, work, kanban, summary, ratio, failure):
    """claim+complete pairs: SQLite, Postgres through the helper, Postgres direct."""
    server = _server()
    if not server:
        return {"skipped": "no server: set KANBAN_BENCH_PG (or KANBAN_TEST_PG) to a PostgreSQL URL"}
    rounds, warm = cfg.get("pg_rounds", 30), cfg.get("pg_warm", 3)
    folder = os.path.join(work, "postgres")
    runtime = os.path.join(folder, "run")
    os.makedirs(runtime, mode=0o700)
    schema = "kanban_bench_" + uuid.uuid4().hex[:10]
    url = server + ("&" if "?" in server else "?") + f"options=-csearch_path%3D{schema}"
    sqlite_db = os.path.join(folder, "kanban.db")
    total = rounds + warm + 2
    kb.prepare(sqlite_db, total, None)
    kb.prepare(url, 2 * total, None)
    envs = {
        "sqlite": kb.clean_env(KANBAN_DB=sqlite_db, KANBAN_AGENT="bench-pg"),
        "pg_helper": kb.clean_env(KANBAN_DB=url, KANBAN_AGENT="bench-pg", XDG_RUNTIME_DIR=runtime),
        "pg_direct": kb.clean_env(KANBAN_DB=url, KANBAN_AGENT="bench-pg", KANBAN_PG_HELPER="0",
                                  XDG_RUNTIME_DIR=runtime),
    }
    samples = {f"{name}_{op}": [] for name in envs for op in ("claim", "complete")}

    def pair(name):
        claim = kb.run_once([kanban, "claim"], envs[name])
        if claim["rc"] != 0:
            raise failure(f"{name} claim failed: {claim['err'].strip()[-300:]}")
        task = json.loads(claim["out"])
        done = kb.run_once([kanban, "complete", task["id"], "--token", str(task["lease_token"])], envs[name])
        if done["rc"] != 0:
            raise failure(f"{name} complete failed: {done['err'].strip()[-300:]}")
        return {f"{name}_claim": claim, f"{name}_complete": done}

    try:
        kb.run_once([kanban, "list", "--limit", "1"], envs["pg_helper"])  # starts the helper
        for _ in range(100):
            if pg_helper.serving(runtime):
                break
            time.sleep(0.05)
        order = list(envs)
        for number in range(rounds + warm):
            for name in order[number % 3:] + order[:number % 3]:  # rotate: no fixed order
                for key, result in pair(name).items():
                    if number >= warm:
                        samples[key].append(result)
        stats = {key: summary(values) for key, values in samples.items()}
        doctor = kb.run_once([kanban, "doctor"], envs["pg_helper"])
        driver = json.loads(doctor["out"]).get("driver") if doctor["rc"] == 0 else None
    finally:
        pg_helper.stop(runtime)
        try:
            _admin(server, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        except Exception:  # noqa: BLE001 - a scratch schema left behind is named kanban_bench_*
            pass

    def ms(key, what="ms"):
        return stats[key][what]["p50"]
    return {
        "rounds": rounds, "warm_up": warm, "server": display_url(server),
        "driver_via_helper": driver,
        "stats": stats,
        "ratios": {
            "helper_claim_vs_sqlite": ratio(ms("pg_helper_claim"), ms("sqlite_claim")),
            "helper_complete_vs_sqlite": ratio(ms("pg_helper_complete"), ms("sqlite_complete")),
            "direct_claim_vs_sqlite": ratio(ms("pg_direct_claim"), ms("sqlite_claim")),
            "direct_complete_vs_sqlite": ratio(ms("pg_direct_complete"), ms("sqlite_complete")),
            "helper_claim_cpu_vs_sqlite": ratio(ms("pg_helper_claim", "cpu_ms"), ms("sqlite_claim", "cpu_ms")),
        },
    }


def target_rows(section, add, skipped):
    """bench/run.py's targets table: the Postgres rows."""
    if section is None:
        return
    if "skipped" in section or "error" in section:
        skipped("pg", "Postgres CLI claim vs SQLite", section.get("skipped") or section["error"])
        return
    st, r = section["stats"], section["ratios"]
    for op in ("claim", "complete"):
        add("pg", f"Postgres CLI {op} p50 through the helper vs SQLite",
            f"{st[f'pg_helper_{op}']['ms']['p50']:.1f} ms vs {st[f'sqlite_{op}']['ms']['p50']:.1f} ms",
            r[f"helper_{op}_vs_sqlite"], "<= 2x", r[f"helper_{op}_vs_sqlite"] <= 2)
        add("pg", f"Postgres CLI {op} p50 direct (KANBAN_PG_HELPER=0) vs SQLite",
            f"{st[f'pg_direct_{op}']['ms']['p50']:.1f} ms vs {st[f'sqlite_{op}']['ms']['p50']:.1f} ms",
            r[f"direct_{op}_vs_sqlite"], "(for reference)", None)


# -- fleet scale ------------------------------------------------------------------------

FLEET_BACKENDS = ("sqlite", "pg_direct", "pg_pgbouncer")


def _fleet_tasks(cfg, mode, agents):
    return max(agents * cfg[f"fleet_{mode}_each"], cfg[f"fleet_{mode}_min"])


def _wait_for_helper(kanban, env, runtime):
    kb.run_once([kanban, "list", "--limit", "1"], env)  # starts the helper
    for _ in range(100):
        if pg_helper.serving(runtime):
            return
        time.sleep(0.05)


def _fleet_run(mode, backend, agents, cfg, folder, server, kanban):
    """One run: a fresh board with its tasks, `agents` agents working it to the end."""
    from kanban import pgbouncer

    tasks = _fleet_tasks(cfg, mode, agents)
    project = "fleet"
    scratch = os.path.join(folder, f"{mode}-{backend}-{agents}")
    runtime = os.path.join(scratch, "run")
    os.makedirs(runtime, mode=0o700)
    schema = None
    if backend == "sqlite":
        board = os.path.join(scratch, "kanban.db")
    else:
        schema = "kanban_fleet_" + uuid.uuid4().hex[:10]
        board = server + ("&" if "?" in server else "?") + f"options=-csearch_path%3D{schema}"
    names = [f"agent-{n}" for n in range(1, agents + 1)]
    from kanban.errors import KanbanError

    try:
        kb.prepare(board, tasks, project)
        with contextlib.ExitStack() as stack:
            url = board
            if backend == "pg_pgbouncer":
                url = stack.enter_context(pgbouncer.running(server, schema, pool=cfg["fleet_pool"],
                                                            max_clients=2 * max(cfg["fleet_agents"]) + 100))
            if mode == "api":
                # an agent process keeps its own session: no per-user helper in between
                records, wall, _machine = kb.run_api_agents(names, url, project, "15m", scratch,
                                                            processes=cfg["fleet_processes"],
                                                            env={"KANBAN_PG_HELPER": "0"},
                                                            timeout=cfg["fleet_run_timeout"])
            else:
                env = kb.clean_env(KANBAN_DB=url, XDG_RUNTIME_DIR=runtime)
                if backend != "sqlite":
                    _wait_for_helper(kanban, env, runtime)
                try:
                    records, wall, _machine = kb.run_cli_agents(
                        names,
                        lambda agent: [kanban, "claim", "--agent", agent, "--project", project, "--lease", "15m"],
                        lambda agent, task, token: [kanban, "complete", task, "--token", str(token),
                                                    "--agent", agent],
                        env, timeout=cfg["fleet_run_timeout"])
                finally:
                    pg_helper.stop(runtime)
        answer = kb.summarize(records, wall)
        log = kb.check_event_log(board, project)
    except KanbanError as exc:  # the run itself failed (a stall past the watchdog): said in the table
        return {"agents": agents, "tasks": tasks, "failed": exc.message}
    finally:
        if schema:
            try:
                _admin(server, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            except Exception:  # noqa: BLE001 - a scratch schema left behind is named kanban_fleet_*
                pass
    return {
        "agents": agents, "tasks": tasks, "wall_s": answer["wall_s"], "claims": answer["claims"],
        "claims_per_s": answer["claims_per_s"], "claim_latency_ms": answer["claim_latency_ms"],
        "complete_latency_ms": answer["complete_latency_ms"], "errors": answer["errors"],
        "error_samples": answer["error_samples"], "cpu_per_call_ms": answer["cpu_per_call_ms"],
        "too_many_clients": sum(1 for r in records if "too many clients" in (r.get("message") or "")),
        "double_claims": log["double_claims"],
        "double_claims_from_answers": kb.double_claims_from_answers(records),
        "claimed_events": log["claimed_events"], "tasks_left": log["tasks_left"],
    }


PG_BACKENDS = ("pg_direct", "pg_pgbouncer")


def crossover(runs, counts):
    """For each mode and each Postgres backend (direct, through PgBouncer): the smallest
    agent count at which it claims faster than the SQLite file in the same run; None
    when it never does (or did not run)."""
    found = {}
    for mode, backends in runs.items():
        found[mode] = {}
        for backend in PG_BACKENDS:
            found[mode][backend] = None
            for agents in counts:
                key = str(agents)
                lite = (backends.get("sqlite", {}).get(key) or {}).get("claims_per_s") or 0
                pg = (backends.get(backend, {}).get(key) or {}).get("claims_per_s") or 0
                if lite and pg > lite:
                    found[mode][backend] = agents
                    break
    return found


def _faster(runs, backend, counts):
    """The agent counts at which `backend` claimed faster than the SQLite file."""
    out = []
    for agents in counts:
        key = str(agents)
        lite = (runs.get("sqlite", {}).get(key) or {}).get("claims_per_s") or 0
        pg = (runs.get(backend, {}).get(key) or {}).get("claims_per_s") or 0
        if lite and pg > lite:
            out.append(agents)
    return out


def crossover_words(section):
    """The crossover as a sentence per mode: {mode: "Postgres direct first at 8 agents
    (faster at 8, 32 of 8, 32, 128, 512); ..."}."""
    counts = section["agents"]
    out = {}
    for mode, by_backend in section["crossover"].items():
        parts = []
        for backend in PG_BACKENDS:
            if backend in section["skipped"]:
                continue
            at = by_backend.get(backend)
            wins = _faster(section["runs"][mode], backend, counts)
            parts.append(f"{FLEET_LABELS[backend]} first at {at} agents (faster at "
                         f"{', '.join(map(str, wins))} of {', '.join(map(str, counts))})" if at else
                         f"{FLEET_LABELS[backend]} at no count up to {counts[-1]} agents")
        out[mode] = "; ".join(parts) or "no Postgres run"
    return out


def section_fleet(cfg, work, kanban):
    """claims/s and claim p50/p99 at each agent count, for the in-process API and the
    CLI, on SQLite, Postgres direct and Postgres through PgBouncer (transaction mode)."""
    from kanban import pgbouncer

    server = _server()
    counts = cfg["fleet_agents"]
    backends = ["sqlite"]
    skipped = {}
    if not server:
        skipped["pg_direct"] = skipped["pg_pgbouncer"] = \
            "no server: set KANBAN_BENCH_PG (or KANBAN_TEST_PG) to a PostgreSQL URL"
    else:
        backends.append("pg_direct")
        if pgbouncer.find():
            backends.append("pg_pgbouncer")
        else:
            skipped["pg_pgbouncer"] = "pgbouncer is not installed (Debian: apt-get install pgbouncer)"
    folder = os.path.join(work, "fleet")
    os.makedirs(folder)
    runs = {mode: {backend: {} for backend in backends} for mode in ("api", "cli")}
    load_before = [round(x, 2) for x in os.getloadavg()]
    with _direct_here():
        for mode in ("api", "cli"):
            for agents in counts:
                for backend in backends:
                    began = time.perf_counter()
                    run = _fleet_run(mode, backend, agents, cfg, folder, server, kanban)
                    run["seconds"] = round(time.perf_counter() - began, 1)
                    runs[mode][backend][str(agents)] = run
    max_connections = None
    if server:
        try:
            from kanban.store.postgres import connect

            with connect(server) as conn:
                max_connections = int(conn.execute("SHOW max_connections").fetchone()[0])
        except Exception:  # noqa: BLE001 - the figure is for the report only
            pass
    section = {
        "agents": list(counts), "pool": cfg["fleet_pool"], "api_processes": cfg["fleet_processes"],
        "server": display_url(server) if server else None, "max_connections": max_connections,
        "load_average": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
        "skipped": skipped, "runs": runs, "crossover": crossover(runs, counts),
        "double_claims": sum(r.get("double_claims", 0) + r.get("double_claims_from_answers", 0)
                             for backends_ in runs.values() for by_count in backends_.values()
                             for r in by_count.values()),
        "tasks": {mode: {str(n): _fleet_tasks(cfg, mode, n) for n in counts} for mode in ("api", "cli")},
    }
    for mode, words in crossover_words(section).items():  # the answer the section is for, said at once
        sys.stderr.write(f"[bench] fleet crossover, {mode}: Postgres beats the SQLite file: {words}\n")
    return section


FLEET_LABELS = {"sqlite": "SQLite file", "pg_direct": "Postgres direct", "pg_pgbouncer": "Postgres via PgBouncer"}


def fleet_target_rows(section, add, skipped):
    """bench/run.py's targets table: the fleet rows."""
    if section is None:
        return
    if "error" in section:
        skipped("fleet", "fleet scale", section["error"])
        return
    add("fleet", "fleet runs: double claims (event log and answers, every run)", str(section["double_claims"]),
        None, "0", section["double_claims"] == 0)
    words = crossover_words(section)
    for mode, label in (("api", "in-process API"), ("cli", "CLI")):
        add("fleet", f"{label}: fewest agents at which Postgres out-claims the SQLite file", words[mode], None,
            "(measured)", None)


def fleet_markdown(section):
    """bench/run.py's report: the fleet table."""
    if not section or "runs" not in section:
        return []
    out = ["", f"## Fleet scale: {', '.join(str(n) for n in section['agents'])} concurrent agents", "",
           f"Each run: a fresh board, every agent looping claim -> complete until a claim answers {{}}. "
           f"API: one process per agent up to {section['api_processes']} agents, beyond that "
           f"{section['api_processes']} processes each running its share of the agents as threads, each with a "
           f"Board of its own and its own server session (KANBAN_PG_HELPER=0). CLI: every claim and complete "
           "a `kanban` process (on Postgres through the "
           f"per-user helper, started before the run). PgBouncer: transaction mode, {section['pool']} server "
           f"connections. Server: {section['server']}, max_connections {section['max_connections']}. "
           "Errors by code (an agent whose claim fails for another reason than busy stops). Load average "
           f"(1, 5, 15 min) before the section {', '.join(map(str, section['load_average']['before']))}, after "
           f"{', '.join(map(str, section['load_average']['after']))}.", "",
           "| mode | backend | agents | tasks | claims/s | claim p50 | claim p99 | errors | double claims | "
           "tasks left |", "|---|---|---|---|---|---|---|---|---|---|"]
    for mode, backends in section["runs"].items():
        for agents in section["agents"]:
            for backend, by_count in backends.items():
                r = by_count.get(str(agents))
                if not r:
                    continue
                if "failed" in r:
                    out.append(f"| {mode} | {FLEET_LABELS[backend]} | {agents} | {r['tasks']} | failed: "
                               f"{r['failed'][:200]} | | | | | |")
                    continue
                lat = r["claim_latency_ms"]
                errors = ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items())) or "0"
                if r.get("too_many_clients"):
                    errors += f" ({r['too_many_clients']} of them \"too many clients\")"
                out.append(f"| {mode} | {FLEET_LABELS[backend]} | {agents} | {r['tasks']} | "
                           f"{r['claims_per_s'] or 0:.1f} | {lat['p50'] or 0:.1f} ms | {lat['p99'] or 0:.1f} ms | "
                           f"{errors} | {r['double_claims']} | {r['tasks_left']} |")
    for backend, why in section["skipped"].items():
        out.append(f"| - | {FLEET_LABELS[backend]} | - | - | skipped: {why} | | | | | |")
    words = crossover_words(section)
    out += ["", f"Crossover (fewest agents at which Postgres claims faster than the SQLite file, same run, "
            f"{kb.cores()}-core machine): API: {words['api']}. CLI: {words['cli']}."]
    samples = {}
    for backends in section["runs"].values():
        for by_count in backends.values():
            for r in by_count.values():
                for code, text in r.get("error_samples", {}).items():
                    samples.setdefault(code, text)
    if samples:
        out += ["", "Error samples: " + "; ".join(f"`{code}`: {text[:200]}" for code, text in samples.items())]
    return out
