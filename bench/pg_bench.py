"""bench/run.py's Postgres section: a CLI claim and complete on a Postgres board (through
the per-user helper, and directly) next to the same on a SQLite board, interleaved in
one run.  Needs a server: KANBAN_BENCH_PG, else KANBAN_TEST_PG (a URL); without one the
section says it was skipped."""
import json
import os
import signal
import time
import uuid

from kanban import bench as kb
from kanban.store.postgres import display_url


def _server():
    return os.environ.get("KANBAN_BENCH_PG") or os.environ.get("KANBAN_TEST_PG") or ""


def _admin(server, sql):
    from kanban.store.postgres import connect

    with connect(server) as conn:
        conn.execute(sql)


def _helper_pid(runtime):
    folder = os.path.join(runtime, "kanban")
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        if name.endswith(".sock.lock"):
            text = open(os.path.join(folder, name), encoding="utf-8").read().strip()
            if text:
                return int(text)
    return None


def section_postgres(cfg, work, kanban, summary, ratio, failure):
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
            if _helper_pid(runtime):
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
        helper = _helper_pid(runtime)
        if helper:
            try:
                os.kill(helper, signal.SIGTERM)
            except ProcessLookupError:
                pass
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
