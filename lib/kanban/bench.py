"""kanban bench: claims measured on a real disk, with real concurrent processes.

`kanban bench claim --agents N --tasks M` makes a scratch board (a temporary folder
unless --db), creates M tasks, and lets N agents work through them at once, each a
loop of claim then complete until a claim answers {}:

- cli mode: every claim and every complete is a real `kanban` process, exactly what
  an agent's shell runs.  One driver process starts them with posix_spawn and reaps
  them with wait4, which also hands back each process's own CPU time, so the driver
  itself costs next to nothing on a small machine.
- api mode: every agent is a process of its own holding one kanban.Board, so what is
  measured is the engine without interpreter start-up.

The answer: claims/s, claim (and complete) latency percentiles, busy errors, every
other error by code, and double claims counted twice over, from the claim answers
the agents got and from the board's event log; both must be 0.  CPU time per call
gives the CPU bound (cores / CPU seconds per claim+complete cycle) the throughput is
compared with, in the same run.  bench/run.py builds its suite on these functions.
"""
import json
import math
import os
import sys
import time

from . import paths
from .store import is_server

KANBAN = paths.command()
LIB = paths.LIB
MAX_RETRIES = 100  # busy answers in a row before an agent gives up
# the events that end whatever lease a task had (the log check of double claims)
LEASE_ENDS = ("lease_expired", "released", "completed", "submitted_for_review", "blocked",
              "failed", "cancelled", "approved", "rejected", "reopened")


# -- numbers ---------------------------------------------------------------------

def percentiles(values):
    """p50/p95/p99/max/mean (nearest rank) of a list of milliseconds; None when empty."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    ordered = sorted(values)
    count = len(ordered)

    def rank(q):
        return round(ordered[min(count - 1, max(0, math.ceil(q * count) - 1))], 3)
    return {"n": count, "p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99),
            "max": round(ordered[-1], 3), "mean": round(sum(ordered) / count, 3)}


def cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def busy_cpu_seconds():
    """CPU seconds the whole machine has spent not idle (Linux /proc/stat), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# -- processes -------------------------------------------------------------------

def spawn(argv, env, stdin_pipe=False):
    """Start argv (an absolute path first) with pipes for stdout and stderr.

    Returns (pid, stdout fd, stderr fd, stdin fd or None).  posix_spawn, not fork:
    the child starts without copying this process.
    """
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    actions = [(os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)]
    in_r = in_w = None
    if stdin_pipe:
        in_r, in_w = os.pipe()
        actions.append((os.POSIX_SPAWN_DUP2, in_r, 0))
    else:
        actions.append((os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0))
    try:
        pid = os.posix_spawn(argv[0], list(argv), env, file_actions=actions)
    finally:
        os.close(out_w)
        os.close(err_w)
        if in_r is not None:
            os.close(in_r)
    return pid, out_r, err_r, in_w


def drain(fd):
    """Everything left on a pipe, then close it."""
    chunks = []
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def run_once(argv, env):
    """Run one command to its end: {"ms", "cpu_ms", "rc", "out", "err"}.

    Wall time from just before the spawn to the reaped exit; CPU time is the child's
    own (user + system), from wait4.
    """
    started = time.perf_counter()
    pid, out_r, err_r, _ = spawn(argv, env)
    out = drain(out_r)
    err = drain(err_r)
    _pid, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - started
    return {"ms": elapsed * 1000, "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1000,
            "rc": os.waitstatus_to_exitcode(status), "out": out, "err": err}


def clean_env(**extra):
    """This environment without KANBAN_* (the user's board, agent, hooks), plus extra.

    KANBAN_BUSY_TIMEOUT is kept: a user may bench with the timeout they run with.
    """
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KANBAN_") or k == "KANBAN_BUSY_TIMEOUT"}
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    return env


def error_code(err, rc):
    """The `code` of the last JSON line on stderr, else exit_<rc>."""
    for line in reversed(err.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line).get("code") or f"exit_{rc}"
            except ValueError:
                break
    return f"exit_{rc}"


def outcome(rc, out, err):
    """(outcome, error code, answer) of a claim or complete process."""
    if rc == 0:
        try:
            answer = json.loads(out)
        except ValueError:
            return "error", "bad_output", None
        return ("ok" if answer else "empty"), None, answer
    return "error", error_code(err, rc), None


def error_text(err, out=""):
    """What a failed call said, briefly: its last stderr line (or stdout)."""
    lines = [line for line in (err or out or "").strip().splitlines() if line.strip()]
    return lines[-1][:400] if lines else ""


# -- agents ----------------------------------------------------------------------

class _Agent:
    def __init__(self, name):
        self.name = name
        self.retries = 0


def _watchdog(timeout, pids, killed=None):
    """None without a timeout; else a started timer that SIGKILLs every process pids()
    names after `timeout` seconds (noting it in `killed`), so a stalled run ends."""
    if not timeout:
        return None
    import signal
    import threading

    def kill_all():
        if killed is not None:
            killed.append(True)
        for pid in pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    watchdog = threading.Timer(timeout, kill_all)
    watchdog.daemon = True
    watchdog.start()
    return watchdog


def run_cli_agents(names, claim_argv, complete_argv, env, timeout=None):
    """Every agent loops claim -> complete as processes until a claim answers {}.

    claim_argv(agent) and complete_argv(agent, task_id, token) give the command lines.
    A busy answer retries the same step (up to MAX_RETRIES in a row); a failed complete
    goes back to claiming; any other failed claim ends that agent.  Returns
    (records, wall seconds, machine busy CPU seconds meanwhile less this driver's own,
    or None): one record per process.  timeout: seconds after which no process is started and those still
    running are killed (each then a failed call, exit_-9).
    """
    running = {}  # pid -> (agent, op, started, stdout, stderr, claim)
    records = []
    machine = busy_cpu_seconds()
    driver = time.process_time()
    origin = time.monotonic()

    def launch(agent, op, claim=None):
        if timeout and time.monotonic() - origin > timeout:
            return
        argv = claim_argv(agent.name) if op == "claim" else complete_argv(agent.name, *claim)
        started = time.monotonic()
        pid, out_r, err_r, _ = spawn(argv, env)
        running[pid] = (agent, op, started, out_r, err_r, claim)

    watchdog = _watchdog(timeout, lambda: list(running))
    for name in names:
        launch(_Agent(name), "claim")
    while running:
        pid, status, usage = os.wait4(-1, 0)
        ended = time.monotonic()
        if pid not in running:
            continue
        agent, op, started, out_r, err_r, claim = running.pop(pid)
        rc = os.waitstatus_to_exitcode(status)
        out, err = drain(out_r), drain(err_r)
        result, code, answer = outcome(rc, out, err)
        record = {"agent": agent.name, "op": op, "outcome": result, "code": code,
                  "ms": (ended - started) * 1000, "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1000,
                  "start": started - origin, "end": ended - origin}
        if result == "error":
            record["message"] = error_text(err, out)
        if op == "claim" and result == "ok":
            record["task"], record["token"] = answer.get("id"), answer.get("lease_token")
        elif op == "complete":
            record["task"], record["token"] = claim
        records.append(record)
        agent.retries = agent.retries + 1 if code == "busy" else 0
        if code == "busy" and agent.retries <= MAX_RETRIES:
            launch(agent, op, claim)  # the same step again
        elif op == "claim" and result == "ok":
            launch(agent, "complete", (record["task"], record["token"]))
        elif op == "complete":
            launch(agent, "claim")
        # an empty claim, or a claim that failed for good: this agent is finished
    if watchdog:
        watchdog.cancel()
    wall = time.monotonic() - origin
    return records, wall, _less(_since(machine), time.process_time() - driver)


def _since(machine):
    now = busy_cpu_seconds()
    return None if machine is None or now is None else now - machine


def _less(machine, own):
    """The machine's busy CPU seconds without `own` (the bench's own bookkeeping), or None."""
    return None if machine is None else max(0.0, machine - own)


def api_worker(argv):
    """One api-mode agent (run by run_api_agents): BOARD AGENT PROJECT LEASE OUTFILE.

    AGENT may be several names, comma-separated: then each is a thread of this process
    with a Board of its own (how the fleet bench runs hundreds of agents on a small
    machine).  An agent whose board cannot be opened (a server refusing more clients)
    is recorded as one failed claim with the error's code.
    """
    path, agents, project, lease, out_path = argv
    project = project or None
    sys.path.insert(0, LIB)
    from kanban import Board, KanbanError

    names = agents.split(",")
    # a lone agent runs on the process's main thread, as a one-agent program does, and is
    # charged the whole process's CPU during each call; agents sharing a process are
    # threads, each charged its own thread's CPU
    alone = len(names) == 1
    cpu_clock = time.process_time if alone else time.thread_time
    results = {name: [] for name in names}

    def open_board():
        try:
            board = Board(path)
            board.__enter__()
            return board
        except KanbanError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - reported as this agent's one failed claim
            return KanbanError("internal", f"{type(exc).__name__}: {exc}")

    def run(agent, board):
        if isinstance(board, KanbanError):
            now = time.monotonic()
            results[agent].append({"agent": agent, "op": "claim", "outcome": "error", "code": board.code,
                                   "ms": 0.0, "cpu_ms": 0.0, "start": now, "end": now,
                                   "message": json.dumps(board.to_dict())[:400]})
            return
        try:
            results[agent] = _api_loop(board, agent, project, lease, KanbanError, cpu_clock)
        except Exception as exc:  # noqa: BLE001 - an agent that broke is reported, not lost
            now = time.monotonic()
            results[agent].append({"agent": agent, "op": "claim", "outcome": "error", "code": "internal",
                                   "ms": 0.0, "cpu_ms": 0.0, "start": now, "end": now,
                                   "message": f"{type(exc).__name__}: {exc}"[:400]})
        finally:
            board.__exit__(None, None, None)

    def start_signal():
        sys.stdout.write(f"ready {time.process_time()}\n")  # the CPU it spent getting ready
        sys.stdout.flush()
        sys.stdin.readline()  # the start signal: every agent begins together

    if alone:
        board = open_board()
        start_signal()
        run(names[0], board)
    else:
        import threading

        ready = threading.Barrier(len(names) + 1)
        go = threading.Event()

        def agent_thread(agent):
            board = open_board()
            ready.wait()
            go.wait()
            run(agent, board)

        threads = [threading.Thread(target=agent_thread, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        ready.wait()
        start_signal()
        go.set()
        for thread in threads:
            thread.join()
    with open(out_path, "w", encoding="utf-8") as out:
        json.dump([r for name in names for r in results[name]], out)


def _api_loop(board, agent, project, lease, KanbanError, cpu_clock):
    """One agent's claim -> complete loop on its own Board until a claim answers {};
    each call's CPU time by cpu_clock."""
    records = []
    claim, retries, op = None, 0, "claim"
    holds = None
    if board.db.backend == "sqlite":  # each call's holds of the board's write lock
        holds = board.db.lock.trace = []
    while True:
        started, cpu = time.monotonic(), cpu_clock()
        try:
            if op == "claim":
                answer = board.claim(agent, project=project, lease=lease)
            else:
                answer = board.complete(claim[0], claim[1], agent=agent)
            result, code = ("ok" if answer else "empty"), None
        except KanbanError as exc:
            answer, result, code = None, "error", exc.code
            message = json.dumps(exc.to_dict())[:400]
        ended = time.monotonic()
        record = {"agent": agent, "op": op, "outcome": result, "code": code,
                  "ms": (ended - started) * 1000, "cpu_ms": (cpu_clock() - cpu) * 1000,
                  "start": started, "end": ended}
        if result == "error":
            record["message"] = message
        if holds is not None:
            record["lock"] = holds[:]
            holds.clear()
        if op == "claim" and result == "ok":
            record["task"], record["token"] = answer["id"], answer["lease_token"]
        elif op == "complete":
            record["task"], record["token"] = claim
        records.append(record)
        retries = retries + 1 if code == "busy" else 0
        if code == "busy" and retries <= MAX_RETRIES:
            continue
        if op == "claim":
            if result != "ok":
                break
            op, claim = "complete", (record["task"], record["token"])
        else:
            op = "claim"
    return records


def run_api_agents(names, path, project, lease, scratch, processes=None, env=None, timeout=None):
    """Every agent a process with its own Board; all start on one signal.

    processes: at most this many processes, the agents dealt out among them, each a
    thread with its own Board (default: one process per agent).  env: more variables
    for the agents' environment.  timeout: seconds after which every agent process still
    running is killed (then the run fails, saying so).

    Returns (records, wall seconds, machine busy CPU seconds meanwhile or None), wall
    from the signal to the last call's end.  The machine's figure leaves out what this
    process and the agent processes spent outside the agents' calls (starting and
    stopping, writing their records), so it is the calls' CPU plus everybody else's.
    """
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from kanban.bench import api_worker; "
            "api_worker(sys.argv[2:])")
    env = clean_env(**(env or {}))
    workers = []
    count = min(len(names), processes or len(names))
    for number in range(count):
        group = names[number::count]
        out_path = os.path.join(scratch, f"{group[0]}.json")
        argv = [sys.executable, "-E", "-c", code, LIB, path, ",".join(group), project or "", lease, out_path]
        pid, out_r, err_r, in_w = spawn(argv, env, stdin_pipe=True)
        workers.append((pid, out_r, err_r, in_w, out_path))
    failed = []
    killed = []
    watchdog = _watchdog(timeout, lambda: [pid for pid, *_ in workers], killed)
    ready_cpu = {}  # each agent process's CPU seconds before the start signal
    for pid, out_r, _err_r, _in_w, _out in workers:
        line = b""
        while not line.endswith(b"\n"):
            chunk = os.read(out_r, 64)
            if not chunk:
                failed.append(pid)
                break
            line += chunk
        ready_cpu[pid] = float(line.split()[1]) if len(line.split()) == 2 else 0.0
    machine = busy_cpu_seconds()
    driver = time.process_time()
    origin = time.monotonic()
    for _pid, _out_r, _err_r, in_w, _out in workers:
        try:
            os.write(in_w, b"go\n")
        except BrokenPipeError:
            pass
        os.close(in_w)
    records, errors, finished = [], [], []
    outside = 0.0  # CPU seconds the agent processes spent after the signal outside their calls
    for pid, out_r, err_r, _in_w, out_path in workers:
        drain(out_r)
        finished.append(pid)
        if len(finished) == len(workers):
            machine = _since(machine)
            driver = time.process_time() - driver
        err = drain(err_r)
        _pid, status, usage = os.wait4(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0 or not os.path.exists(out_path):
            errors.append(err.strip().splitlines()[-1] if err.strip() else f"agent process {pid} failed")
            continue
        with open(out_path, encoding="utf-8") as handle:
            found = json.load(handle)
        records += found
        outside += max(0.0, usage.ru_utime + usage.ru_stime - ready_cpu.get(pid, 0.0)
                       - sum(r["cpu_ms"] for r in found) / 1000)
    if watchdog:
        watchdog.cancel()
    if errors:
        from .errors import KanbanError

        stalled = f" (still running after {timeout} s: killed)" if killed else ""
        raise KanbanError("internal", f"{len(errors)} api agent(s) failed{stalled}: {errors[0]}")
    for record in records:
        record["start"] -= origin
        record["end"] -= origin
    wall = max((r["end"] for r in records), default=0.0)
    return records, wall, _less(machine, outside + driver)


# -- the board -------------------------------------------------------------------

def prepare(db, tasks, project):
    """Create the bench's tasks (one transaction) on board `db`, made if missing."""
    from .board import Board, init

    init(db)
    specs = [{"title": f"bench task {n}", "project": project} for n in range(1, tasks + 1)]
    with Board(db) as board:
        for start in range(0, len(specs), 5000):
            board.create_many(specs[start:start + 5000], actor="kanban-bench")


def double_claims_from_answers(records, tokens_unique=True):
    """Claims of a task someone else still held, judged from what the agents were told.

    A task claimed k times needs k-1 holders who later lost it (their complete
    answered lease_lost): any claim beyond that overlapped a live one.  A token
    handed out twice is a double claim too.
    """
    claims, lost, tokens = {}, {}, []
    for r in records:
        if r["op"] == "claim" and r["outcome"] == "ok":
            claims[r["task"]] = claims.get(r["task"], 0) + 1
            tokens.append(r["token"])
        elif r["op"] == "complete" and r["code"] == "lease_lost":
            lost[r["task"]] = lost.get(r["task"], 0) + 1
    doubles = sum(max(0, count - 1 - lost.get(task, 0)) for task, count in claims.items())
    return doubles + (len(tokens) - len(set(tokens)) if tokens_unique else 0)


def check_event_log(db, project):
    """Walk the event log of the bench's tasks: a `claimed` while the task is still
    held is a double claim.  Also counts claimed events and tasks left undone."""
    from .board import Board

    held, doubles, claimed = {}, 0, 0
    with Board(db) as board:
        def read():
            return list(board.db.execute(board.db.sql("project_events"), (project,)))
        events = board.db.read(read)
        undone = board.db.read(lambda: board.db.scalar(board.db.sql("project_undone"), (project,)))
    for task_id, kind in events:
        if kind == "claimed":
            claimed += 1
            if held.get(task_id):
                doubles += 1
            held[task_id] = True
        elif kind in LEASE_ENDS:
            held[task_id] = False
    return {"double_claims": doubles, "claimed_events": claimed, "tasks_left": undone}


def summarize(records, wall, cpu_cores=None):
    """The numbers every claim run reports, from its per-call records."""
    cpu_cores = cpu_cores or cores()
    claims = [r for r in records if r["op"] == "claim" and r["outcome"] == "ok"]
    completes = [r for r in records if r["op"] == "complete" and r["outcome"] == "ok"]
    errors, samples = {}, {}
    for r in records:
        if r["outcome"] == "error":
            errors[r["code"]] = errors.get(r["code"], 0) + 1
            samples.setdefault(r["code"], f"{r['op']}: {r.get('message', '')}")
    cpu_s = sum(r["cpu_ms"] for r in records) / 1000
    cpu_per_cycle = cpu_s / len(completes) if completes else None
    bound = cpu_cores / cpu_per_cycle if cpu_per_cycle else None
    per_s = len(claims) / wall if wall > 0 else None
    return {
        "wall_s": round(wall, 3),
        "claims": len(claims),
        "completes": len(completes),
        "empty_claims": sum(1 for r in records if r["op"] == "claim" and r["outcome"] == "empty"),
        "claims_per_s": round(per_s, 2) if per_s else None,
        "claim_latency_ms": percentiles([r["ms"] for r in claims]),
        "complete_latency_ms": percentiles([r["ms"] for r in completes]),
        "busy_errors": errors.get("busy", 0),
        "errors": errors,
        "error_samples": samples,
        "calls": len(records),
        "cpu_s": round(cpu_s, 3),
        "cpu_per_call_ms": round(cpu_s * 1000 / len(records), 3) if records else None,
        "cores": cpu_cores,
        "cpu_bound_claims_per_s": round(bound, 2) if bound else None,
        "vs_cpu_bound": round(per_s / bound, 3) if per_s and bound else None,
    }


def lock_use(records):
    """How the board's write lock was used, from the [asked, got, released] holds the
    api-mode agents noted (SQLite only; {} without them): the fraction of the run it was
    held, the fraction it sat free while a writer waited for it (time the product loses,
    whatever the machine's load), and the handoff, from one writer's release to the next
    writer's grant while someone waited."""
    holds = sorted((h for r in records for h in r.get("lock", ()) if h[2] is not None), key=lambda h: h[1])
    if not holds:
        return {}
    start, end = min(h[0] for h in holds), max(h[2] for h in holds)
    span = end - start
    if span <= 0:
        return {}
    held = idle_waiting = 0.0
    handoffs = []
    asks = sorted(h[0] for h in holds)
    asked_by = 0  # how many holds were asked for before the previous release
    for number, (_asked, got, released) in enumerate(holds):
        held += released - got
        if number:
            before = holds[number - 1][2]
            while asked_by < len(asks) and asks[asked_by] < before:
                asked_by += 1
            # the `number` holds granted so far were all asked for before it; any more
            # is a writer that waited across the gap
            if asked_by > number and got > before:
                idle_waiting += got - before
                handoffs.append((got - before) * 1000)
    return {"holds": len(holds), "held_frac": round(held / span, 3),
            "idle_while_waited_frac": round(idle_waiting / span, 3),
            "handoff_ms": percentiles(handoffs)}


def load_share(answer, machine, wall):
    """CPU the rest of the machine used meanwhile (why a run on a shared machine can sit
    below its bound), and the bound with only the cores it left free."""
    if machine is None or wall <= 0:
        return {}
    other = round(max(0.0, machine - answer["cpu_s"]) / wall, 2)
    out = {"other_load_cores": other}
    cpu_per_cycle = answer["cpu_s"] / answer["completes"] if answer["completes"] else None
    free = max(0.1, answer["cores"] - other)
    if cpu_per_cycle and answer["claims_per_s"]:
        bound = free / cpu_per_cycle
        out["cpu_bound_free_cores_claims_per_s"] = round(bound, 2)
        out["vs_free_cores_cpu_bound"] = round(answer["claims_per_s"] / bound, 3)
    return out


def claim_bench(agents=4, tasks=100, mode="cli", lease="15m", db=None, keep=False, scratch_root=None):
    """Run `kanban bench claim` and return its answer (a dict).

    scratch_root: where the temporary folder goes (default: the system's).
    """
    import shutil
    import tempfile

    from .clock import parse_duration
    from .errors import invalid
    from .store.sqlite import filesystem

    if agents < 1 or tasks < 1:
        raise invalid("--agents and --tasks must be at least 1")
    if mode not in ("cli", "api"):
        raise invalid(f"bad --mode {mode!r}: cli or api")
    parse_duration(lease, "--lease")
    scratch = tempfile.mkdtemp(prefix="kanban-bench-", dir=scratch_root)
    path = (db if is_server(db) else os.path.abspath(db)) if db else os.path.join(scratch, "board.db")
    project = f"bench-{os.getpid()}-{int(time.time())}"
    names = [f"bench-agent-{n}" for n in range(1, agents + 1)]
    try:
        setup = time.monotonic()
        prepare(path, tasks, project)
        setup = time.monotonic() - setup
        if mode == "cli":
            env = clean_env(KANBAN_DB=path)
            records, wall, machine = run_cli_agents(
                names,
                lambda agent: [KANBAN, "claim", "--agent", agent, "--project", project, "--lease", lease],
                lambda agent, task, token: [KANBAN, "complete", task, "--token", str(token), "--agent", agent],
                env)
        else:
            records, wall, machine = run_api_agents(names, path, project, lease, scratch)
        answer = {"mode": mode, "agents": agents, "tasks": tasks, "lease": lease,
                  "db": path if (db or keep) else None, "filesystem": filesystem(path),
                  "setup_s": round(setup, 3)}
        answer.update(summarize(records, wall))
        lock = lock_use(records)
        if lock:
            answer["lock"] = lock
        log = check_event_log(path, project)
        from_answers = double_claims_from_answers(records)
        answer.update({
            "double_claims": from_answers + log["double_claims"],
            "double_claims_by": {"answers": from_answers, "event_log": log["double_claims"]},
            "claimed_events": log["claimed_events"],
            "tasks_left": log["tasks_left"],
        })
        answer.update(load_share(answer, machine, wall))
        return answer
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)


# -- the porcelain ----------------------------------------------------------------

def render_table(answer):
    def ms(stats):
        if not stats or stats.get("p50") is None:
            return "-"
        return f"{stats['p50']:.1f} / {stats['p95']:.1f} / {stats['p99']:.1f} / {stats['max']:.1f} ms"

    rows = [
        ("mode", f"{answer['mode']}: {answer['agents']} agents, {answer['tasks']} tasks, lease {answer['lease']}"),
        ("board", f"{answer['db'] or '(scratch, removed)'} on {answer['filesystem'] or '?'}"),
        ("claims", f"{answer['claims']} in {answer['wall_s']:.2f} s"),
        ("claims/s", f"{answer['claims_per_s'] or 0:.1f}"),
        ("claim p50/p95/p99/max", ms(answer["claim_latency_ms"])),
        ("complete p50/p95/p99/max", ms(answer["complete_latency_ms"])),
        ("busy errors", str(answer["busy_errors"])),
        ("other errors", ", ".join(f"{k}: {v}" for k, v in answer["errors"].items() if k != "busy") or "0"),
        ("double claims", f"{answer['double_claims']} (answers {answer['double_claims_by']['answers']}, "
                          f"event log {answer['double_claims_by']['event_log']})"),
        ("CPU per call", f"{answer['cpu_per_call_ms'] or 0:.1f} ms"),
        ("CPU bound", f"{answer['cpu_bound_claims_per_s'] or 0:.1f} claims/s on {answer['cores']} cores"
                      f" (throughput {answer['vs_cpu_bound'] or 0:.2f}x of it)"),
    ]
    if "lock" in answer:
        lock = answer["lock"]
        rows.append(("write lock", f"held {lock['held_frac']:.0%}, free while a writer waited "
                     f"{lock['idle_while_waited_frac']:.0%}; handoff {ms(lock['handoff_ms'])}"))
    if "other_load_cores" in answer:
        rows.append(("other load", f"{answer['other_load_cores']:.2f} cores busy elsewhere"
                     + (f" (throughput {answer['vs_free_cores_cpu_bound']:.2f}x of the bound on the cores left)"
                        if "vs_free_cores_cpu_bound" in answer else "")))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def bench(args):
    """porcelain/kanban-bench: the handler (docopt arguments in, exit status out)."""
    from .board import parse_int
    from .cli import emit
    from .errors import invalid

    fmt = args.get("--format") or "json"
    if fmt not in ("json", "table"):
        raise invalid(f"bad --format {fmt!r}: json or table")
    answer = claim_bench(
        agents=parse_int(args["--agents"], "--agents", minimum=1),
        tasks=parse_int(args["--tasks"], "--tasks", minimum=1),
        mode=args["--mode"], lease=args["--lease"], db=args["--db"], keep=bool(args["--keep"]))
    if fmt == "table":
        sys.stdout.write(render_table(answer) + "\n")
    else:
        emit(answer)
    return 1 if answer["double_claims"] else 0
