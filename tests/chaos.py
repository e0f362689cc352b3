"""Crash chaos: workers killed with SIGKILL at random moments, until all work is done.

    python tests/chaos.py --minutes 3                   # make soak (SOAK_MINUTES=3)
    python tests/chaos.py --tasks 250 --json            # the suite's short run

A board of thousands of tasks (short leases; some with max_attempts, some through
review, some with deps and goals) is worked by worker processes of six kinds:
loops over the Board API, processes of four such loops in threads (whose writes
share commits), loops over the real `kanban` CLI (one process per call),
`kanban work` and `kanban review` loops running a command per task, and reviewer
loops.  A pre-complete hook sleeps now and then and refuses now and then; a
post-complete hook sleeps for one task in four; now and then either leaves children
behind (some in a session of their own), prints a megabyte, or (post-complete) ignores
SIGTERM and hangs past KANBAN_HOOK_TIMEOUT.  A supervisor kills with SIGKILL, at
random moments: a writer caught holding the board's write lock (inside its
transaction), a `kanban` command, a worker or command while its hook runs, the hook
itself, the command of a `kanban work` loop, or a worker - and restarts killed
workers, until every task is done or failed at max_attempts.  Some workers stall
past their lease on purpose and then try to complete with the stale token, which
must be refused with `lease_lost`.

Rounds of tasks are added until --minutes run out; then tests/invariants.py proves
from the board and its event log that nothing went wrong, and the workers' own
journals are checked against the board: every completion, approval and rejection
a worker was told succeeded is in the event log.

With --pg URL (make soak and the suite's short soak do so when KANBAN_TEST_PG is set)
the board is a fresh schema on that server, the hooks come from KANBAN_HOOKS_DIR, and
a writer caught inside its transaction is found by the server (a session of this run,
named by its application_name, that holds a transaction id) and SIGKILLed, and the
server ends sessions too: pg_terminate_backend of a random session of this run, a
waiting `claim` or a helper's session included.  A command whose session ends while its COMMIT is under way cannot
know whether it committed and says so (`db_error`, "cannot reach"): a worker counts it
as killed, an outcome unknown to it, as it does a SIGKILLed command.  Every worker's
sessions carry its name (application_name kanban-SCHEMA-WORKER), so a session of a
waiting `kanban claim --wait`, `kanban work` or `kanban review` (a LISTEN) is
terminated too, on purpose, and counted apart.

With --pg-own-cluster the server is a throwaway cluster of the soak's own
(tests/pgcluster.py: initdb and pg_ctl, fsync on), and the server is restarted in the
middle, --pg-restarts times (2 by default): `pg_ctl stop -m fast` and `-m immediate`
in turn (immediate is a crash: recovery from the WAL), down --pg-down seconds, then
started again (the supervisor waits meanwhile).  Every session ends; clients
reconnect or fail with `db_error` ("cannot reach"), which a worker counts as an
outcome unknown to it, and a lease held by a lost client comes back by expiry;
a `kanban work` or `review` loop must ride it out (one that stops is a crash).  The restarts come at even intervals of
--minutes, or (one round) as even fractions of the tasks are finished.  The cluster is
removed on every way out, a killed soak included.  With --pgbouncer the workers reach
the board through a PgBouncer in transaction mode (kanban.pgbouncer, --pgbouncer-pool
server connections), the supervisor directly; when an invariant is violated, the
board is kept first, as `kanban export` writes it (board.jsonl in the soak's folder).

Prints the figures (tasks, kills, restarts, violations, duration); --json adds the
report as one JSON line at the end.  Exit status 1 when any invariant is violated.
"""
import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KANBAN = os.path.join(ROOT, "bin", "kanban")
sys.path.insert(0, os.path.join(ROOT, "lib"))
sys.path.insert(0, HERE)

# what a worker does with a task it claimed (the rest: work, then complete)
P_STALL = 0.02    # sleep past the lease, then try to complete with the stale token
P_RELEASE = 0.02  # give it back
P_BLOCK = 0.015   # block it (the supervisor unblocks)
P_REVIEW = 0.05   # complete --review
P_BATCH = 0.08    # batch claim a few tasks, batch complete them in one transaction
P_REJECT = 0.15   # a reviewer rejects
THREADS = 4       # API loops in a `threads` worker's process
HOOK = """#!/bin/sh
# chaos: a slow post-complete hook, so kills land inside it, and a nasty one now and then:
# it leaves children behind (in its group, or in a session of their own), ignores SIGTERM
# and hangs past KANBAN_HOOK_TIMEOUT, or prints a megabyte
cat >/dev/null
n=${KANBAN_TASK_ID#TASK-}
if [ $((n % 4)) -eq 0 ]; then sleep 0.3; fi
case $((n % 41)) in
  1) sleep 0.8 & ;;
  2) setsid sleep 0.8 & ;;
  3) head -c 1000000 /dev/zero | tr '\\0' x ;;
  4) trap '' TERM; sleep 3 ;;
  5) (sleep 0.5; echo "chaos: a child writes late" >&2) & exit 1 ;;
esac
exit 0
"""
JUDGED = {"approve": "approved", "reject": "rejected"}
PRE_HOOK = """#!/bin/sh
# chaos: a pre-complete hook that takes its time now and then, and refuses now and then
cat >/dev/null
n=${KANBAN_TASK_ID#TASK-}
if [ $((n % 5)) -eq 1 ]; then sleep 0.2; fi
r=$(od -An -N1 -tu1 /dev/urandom | tr -d ' ')
if [ "$r" -lt 6 ]; then echo "chaos: pre-complete refuses" >&2; exit 1; fi
case $((n % 43)) in
  1) sleep 0.8 & ;;                      # passes, and leaves a child behind
  2) setsid sleep 0.8 & ;;
  3) head -c 1000000 /dev/urandom ;;     # a megabyte that is not text
esac
exit 0
"""
WORK_CMD = """#!{python}
# chaos-cmd: what `kanban work` / `kanban review` run on a task: a little work, now and then a failure
import json, random, sys, time
task = json.load(sys.stdin)
time.sleep(random.uniform(0, 0.05))
if random.random() < 0.03:
    sys.stderr.write("chaos: failing on purpose\\n")
    sys.exit(1)
print("chaos: done " + task["id"])
"""
UNEXPECTED = ("db_error", "internal", "usage", "invalid", "not_found", "forbidden", "cycle", "hook_rejected")


# -- the workers -------------------------------------------------------------------------

class Refused(Exception):
    """A command failed with a code from the closed list."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class Killed(Exception):
    """The `kanban` command itself was killed: its outcome is unknown to the worker."""


class BoardApi:
    """The Python API, in this process: kills land inside its transactions."""

    def __init__(self, db, summary="chaos"):
        from kanban import Board, KanbanError

        self.summary = summary  # None: plain completions, which threads make together
        while True:
            try:
                self.board = Board(db)
                return
            except KanbanError as exc:  # a server on its way back up: try again, as an agent would
                if not _session_lost(exc):
                    raise
            time.sleep(0.2)

    def _call(self, name, *args, **kwargs):
        from kanban import KanbanError

        try:
            return getattr(self.board, name)(*args, **kwargs)
        except KanbanError as exc:
            raise Refused(exc.code, exc.message) from None

    def claim(self, agent, lease):
        return self._call("claim", agent, lease=lease)

    def claim_review(self, agent, lease):
        return self._call("claim_review", agent, lease=lease)

    def claim_many(self, agent, count, lease):
        return self._call("claim_many", agent, count, lease=lease)

    def complete_many(self, agent, pairs):
        return self._call("complete_many", pairs, agent=agent)

    def complete(self, agent, task, token, review=False):
        return self._call("complete", task, token, review=review, agent=agent, summary=self.summary)

    def renew(self, agent, task, token):
        return self._call("renew", task, token, agent=agent)

    def log(self, agent, task, token, message):
        return self._call("log", task, message, token=token, agent=agent)

    def release(self, agent, task, token):
        return self._call("release", task, token, agent=agent)

    def block(self, agent, task, token, reason):
        return self._call("block", task, reason, token=token, agent=agent)

    def approve(self, agent, task, token):
        return self._call("approve", task, agent=agent, token=token)

    def reject(self, agent, task, token, reason):
        return self._call("reject", task, reason, agent=agent, token=token)


def _session_lost(exc):
    """A server board's session ended under the command, mid-commit: outcome unknown."""
    return exc.code == "db_error" and "cannot reach" in str(exc) and bool(os.environ.get("CHAOS_PG"))


class CliApi:
    """The real `kanban` command, one process per call, as a shell loop would."""

    def __init__(self, db):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
        self.env.update(KANBAN_DB=db, KANBAN_HOOK_TIMEOUT="5s")

    def _run(self, agent, *args):
        proc = subprocess.run([KANBAN, *map(str, args)], capture_output=True, text=True,
                              env=dict(self.env, KANBAN_AGENT=agent))
        if proc.returncode < 0:
            raise Killed()
        if "Traceback" in proc.stderr:
            raise Refused("internal", "a Python traceback reached the terminal: " + proc.stderr[-500:])
        if proc.returncode == 0:
            return json.loads(proc.stdout)
        lines = [line for line in proc.stderr.splitlines() if line.startswith("{")]
        if proc.returncode != 2 or proc.stdout or not lines:
            raise Refused("internal", f"exit {proc.returncode}, stdout {proc.stdout[:200]!r}, "
                                      f"stderr {proc.stderr[-300:]!r}")
        error = json.loads(lines[-1])
        raise Refused(error["code"], error["error"])

    def claim(self, agent, lease):
        # half the time waiting a little for work: a LISTEN on a server board
        return self._run(agent, "claim", "--lease", lease, *(["--wait", "1s"] if random.random() < 0.5 else []))

    def claim_review(self, agent, lease):
        return self._run(agent, "claim", "--for-review", "--lease", lease)

    def claim_many(self, agent, count, lease):
        return self._run(agent, "batch", "claim", count, "--lease", lease)

    def complete_many(self, agent, pairs):
        return self._run(agent, "batch", "complete", *[f"{task}:{token}" for task, token in pairs])

    def complete(self, agent, task, token, review=False):
        return self._run(agent, "complete", task, "--token", token, "--summary", "chaos",
                         *(["--review"] if review else []))

    def renew(self, agent, task, token):
        return self._run(agent, "lease", "renew", task, "--token", token)

    def log(self, agent, task, token, message):
        return self._run(agent, "event", "log", task, "--message", message, "--token", token)

    def release(self, agent, task, token):
        return self._run(agent, "lease", "release", task, "--token", token)

    def block(self, agent, task, token, reason):
        return self._run(agent, "block", task, "--reason", reason, "--token", token)

    def approve(self, agent, task, token):
        return self._run(agent, "approve", task, "--token", token)

    def reject(self, agent, task, token, reason):
        return self._run(agent, "reject", task, "--reason", reason, "--token", token)


def worker(kind, db, agent, journal_path, lease, seed):
    """Loop forever (until killed): claim, work, complete - or review.  A `threads`
    worker is THREADS API loops in threads of one process, each with a Board of its
    own: their writes share commits, and their claims and plain completions are made
    together (group commit), so a kill lands in the middle of a shared batch."""
    if kind == "threads":
        import threading

        loops = [threading.Thread(target=worker, daemon=True,
                                  args=("thread-api", db, f"{agent}-t{n}",
                                        journal_path.replace(".jsonl", f"-t{n}.jsonl"), lease, seed + n))
                 for n in range(THREADS)]
        for loop in loops:
            loop.start()
        for loop in loops:
            loop.join()
        return
    rng = random.Random(seed)
    if kind.endswith("api"):
        api = BoardApi(db, summary=None if kind == "thread-api" else "chaos")
    else:
        api = CliApi(db)
    lease_s = float(lease.rstrip("s"))
    journal = open(journal_path, "a", buffering=1)  # one write(2) per line

    def note(**entry):
        journal.write(json.dumps(dict(entry, agent=agent)) + "\n")

    def batch_once():
        claimed = api.claim_many(agent, rng.randint(2, 4), lease)
        if not claimed:
            time.sleep(rng.uniform(0.02, 0.1))
            return
        pairs = [(t["id"], t["lease_token"]) for t in claimed]
        for tid, token in pairs:
            note(op="claim", task=tid, token=token)
        time.sleep(rng.uniform(0, 0.03))
        try:
            done = api.complete_many(agent, pairs)
        except Refused as exc:
            if exc.code != "hook_rejected":
                raise
            note(op="hook_rejected", task=pairs[0][0], token=pairs[0][1])
            for tid, token in pairs:  # all or nothing: give them all back
                try:
                    api.release(agent, tid, token)
                except Refused:
                    pass
            return
        for (tid, token), task in zip(pairs, done, strict=True):
            note(op="complete", task=tid, token=token, status=task["status"])

    def work_once():
        if rng.random() < P_BATCH:
            return batch_once()
        task = api.claim(agent, lease)
        if not task:
            time.sleep(rng.uniform(0.02, 0.1))
            return
        tid, token = task["id"], task["lease_token"]
        note(op="claim", task=tid, token=token)
        roll = rng.random()
        if roll < P_STALL:
            time.sleep(lease_s + rng.uniform(0.05, 0.4))
            try:
                api.complete(agent, tid, token)
                note(op="stale", task=tid, token=token, accepted=True)
            except Refused as exc:
                note(op="stale", task=tid, token=token, accepted=False, code=exc.code)
            return
        if roll < P_STALL + P_RELEASE:
            api.release(agent, tid, token)
            return
        if roll < P_STALL + P_RELEASE + P_BLOCK:
            api.block(agent, tid, token, "chaos: blocked on purpose")
            return
        time.sleep(rng.uniform(0, 0.03))
        if rng.random() < 0.2:
            api.renew(agent, tid, token)
        if rng.random() < 0.1:
            api.log(agent, tid, token, "chaos: working")
        try:
            done = api.complete(agent, tid, token, review=rng.random() < P_REVIEW)
        except Refused as exc:
            if exc.code != "hook_rejected":
                raise
            note(op="hook_rejected", task=tid, token=token)
            api.release(agent, tid, token)  # the pre-complete hook said no: give it back
            return
        note(op="complete", task=tid, token=token, status=done["status"])

    def review_once():
        task = api.claim_review(agent, lease)
        if not task:
            time.sleep(rng.uniform(0.05, 0.15))
            return
        tid, token = task["id"], task["lease_token"]
        time.sleep(rng.uniform(0, 0.02))
        if rng.random() < P_REJECT:
            api.reject(agent, tid, token, "chaos: rejected on purpose")
            note(op="reject", task=tid, token=token)
        else:
            api.approve(agent, tid, token)
            note(op="approve", task=tid, token=token)

    once = review_once if kind.startswith("review") else work_once
    while True:
        try:
            once()
        except Killed:
            continue
        except Refused as exc:
            if _session_lost(exc):
                continue
            if exc.code in UNEXPECTED:
                note(op="error", code=exc.code, message=str(exc)[:500])
            time.sleep(rng.uniform(0.001, 0.01))


# -- the supervisor --------------------------------------------------------------------------

def proc_table():
    """pid -> (ppid, state, cmdline) for every process (Linux /proc)."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        table[int(name)] = (int(fields[1]), fields[0].decode(), cmdline)
    return table


def lock_holders(path):
    """The pids holding the flock on `path` (/proc/locks): writers inside a transaction."""
    try:
        inode = os.stat(path).st_ino
        with open("/proc/locks") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    holders = []
    for line in lines:
        parts = line.split()
        if len(parts) > 5 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(inode):
            holders.append(int(parts[4]))
    return holders


def become_subreaper():
    """Orphaned hooks of killed workers become our children, so we can reap them."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:  # noqa: BLE001 - without it the orphans go to init
        pass


def reap_orphans(workers):
    """Collect zombies that are ours but not a worker (orphaned hooks and commands)."""
    mine = os.getpid()
    keep = {p.pid for p in workers.values()}
    for pid, (ppid, state, _cmd) in proc_table().items():
        if ppid == mine and state == "Z" and pid not in keep:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


class Chaos:
    def __init__(self, args, cluster=None):
        self.args = args
        self.rng = random.Random(args.seed)
        self.folder = args.dir or tempfile.mkdtemp(prefix="kanban-chaos-")
        self.db = os.path.join(self.folder, ".kanban", "board.db")
        self.hooks = os.path.join(self.folder, ".kanban", "hooks.d")
        self.journals = os.path.join(self.folder, "journals")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
        self.schema = None
        self.cluster = cluster
        self.server_restarts = []  # {"mode", "seconds", "sessions_ended"}
        self.listener_last = False  # was the last session ended a waiting worker's?
        if args.pg:  # a fresh schema on the server; this run's sessions carry its name
            self.schema = f"chaos_{os.getpid()}_{self.rng.randrange(16**6):06x}"
            self.db = args.pg + ("&" if "?" in args.pg else "?") + f"options=-csearch_path%3D{self.schema}"
            self.env.update(KANBAN_HOOKS_DIR=self.hooks, PGAPPNAME=f"kanban-{self.schema}", CHAOS_PG="1",
                            XDG_RUNTIME_DIR=os.path.join(self.folder, "run"))
            os.makedirs(os.path.join(self.folder, "run"), mode=0o700, exist_ok=True)
            # the supervisor's own reads connect directly: no helper of its own left behind
            os.environ["KANBAN_PG_HELPER"] = "0"
        self.env.update(KANBAN_DB=self.db, KANBAN_HOOK_TIMEOUT="2s")
        self.worker_db = self.db
        self.workers = {}   # slot -> Popen
        self.kinds = {}     # slot -> worker kind
        self.pending = {}   # slot -> restart time
        self.kills = Counter()
        self.restarts = 0
        self.crashes = []
        self.rounds = 0
        self.unblocked = 0

    def kanban(self, *args, input=None):
        proc = subprocess.run([KANBAN, *map(str, args)], capture_output=True, text=True, env=self.env,
                              input=input)
        if proc.returncode != 0:
            raise RuntimeError(f"kanban {' '.join(map(str, args[:3]))}: exit {proc.returncode}: {proc.stderr}")
        return json.loads(proc.stdout)

    # -- set-up --------------------------------------------------------------------------

    def setup(self):
        os.makedirs(self.journals, exist_ok=True)
        self.kanban("init")
        hooks = self.hooks
        os.makedirs(hooks, exist_ok=True)
        os.chmod(hooks, 0o755)
        for name, text in (("post-complete", HOOK), ("pre-complete", PRE_HOOK)):
            path = os.path.join(hooks, name)
            with open(path, "w") as handle:
                handle.write(text)
            os.chmod(path, 0o755)
        self.work_cmd = os.path.join(self.folder, "chaos-cmd")
        with open(self.work_cmd, "w") as handle:
            handle.write(WORK_CMD.format(python=sys.executable))
        os.chmod(self.work_cmd, 0o755)

    def populate(self):
        """One round of tasks: some review, some max_attempts, some deps and goals."""
        self.rounds += 1
        r, n, rng = self.rounds, self.args.tasks, self.rng
        lines, safe = [], []
        goals = [f"r{r}-g{k}" for k in range(max(1, n // 250))]
        for key in goals:
            lines.append({"title": f"chaos goal {key}", "kind": "goal", "key": key})
        for i in range(n):
            key = f"r{r}-t{i}"
            spec = {"title": f"chaos task {key}", "body": "work to survive", "key": key,
                    "priority": rng.randint(0, 5), "review": rng.random() < 0.15}
            if rng.random() < 0.15:
                spec["max_attempts"] = rng.randint(1, 3)
            else:
                # only tasks that cannot fail may be waited on, so that all work can end
                if safe and rng.random() < 0.1:
                    spec["depends_on"] = sorted(set(rng.sample(safe[-50:], min(len(safe[-50:]), rng.randint(1, 2)))))
                elif rng.random() < 0.2:
                    spec["goal"] = rng.choice(goals)
                safe.append(key)
            lines.append(spec)
        text = "".join(json.dumps(spec) + "\n" for spec in lines)
        return len(self.kanban("create", "--stdin", "--agent", "planner", input=text))

    # -- workers ---------------------------------------------------------------------------

    def start(self, slot):
        kind = self.kinds[slot]
        seed = self.rng.randrange(2**32)
        log = open(os.path.join(self.journals, f"{slot}.stderr"), "ab")
        if kind in ("work", "review-loop"):  # the porcelain loops, as people run them
            verb = "work" if kind == "work" else "review"
            argv = [KANBAN, verb, "--agent", slot, "--lease", self.args.lease, "--wait", "1d", "--",
                    self.work_cmd]
        else:
            argv = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--db", self.worker_db,
                    "--agent", slot, "--journal", os.path.join(self.journals, f"{slot}.jsonl"),
                    "--lease", self.args.lease, "--seed", str(seed)]
        env = dict(self.env, KANBAN_DB=self.worker_db)
        if self.schema:
            env["PGAPPNAME"] = f"kanban-{self.schema}-{slot}"
        self.workers[slot] = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log,
                                              stdin=subprocess.DEVNULL)
        log.close()

    def start_all(self):
        a = self.args
        for kind, count in (("api", a.api_workers), ("threads", a.thread_workers), ("cli", a.cli_workers),
                            ("work", a.work_loops),
                            ("review-api", a.reviewers - a.reviewers // 2), ("review-cli", a.reviewers // 2),
                            ("review-loop", a.review_loops)):
            for number in range(count):
                slot = f"{kind}-{number}"
                self.kinds[slot] = kind
                self.start(slot)

    def check_workers(self):
        """Restart killed workers when due; a worker that exits by itself is a crash."""
        now = time.monotonic()
        for slot, proc in list(self.workers.items()):
            code = proc.poll()
            if code is None or slot in self.pending:
                continue
            if code != -signal.SIGKILL:
                self.crashes.append(f"worker {slot} exited by itself with status {code}")
            self.pending[slot] = now + self.rng.uniform(0, 0.3)
        for slot, due in list(self.pending.items()):
            if due <= now:
                del self.pending[slot]
                self.start(slot)
                self.restarts += 1

    def kill_one(self):
        """SIGKILL one process: a worker, a `kanban` command, one inside its hook, or the hook."""
        table = proc_table()
        live = {p.pid: slot for slot, p in self.workers.items() if p.poll() is None and slot not in self.pending}
        if not live:
            return
        commands = [pid for pid, (ppid, state, cmd) in table.items()
                    if ppid in live and self.kinds[live[ppid]].endswith("cli") and b"kanban" in cmd
                    and state != "Z"]
        work_commands = [pid for pid, (ppid, state, cmd) in table.items()
                         if ppid in live and self.kinds[live[ppid]] in ("work", "review-loop")
                         and b"chaos-cmd" in cmd and state != "Z"]
        ours = set(live) | set(commands)
        hooks = [pid for pid, (ppid, state, cmd) in table.items()
                 if ppid in ours and (b"post-complete" in cmd or b"pre-complete" in cmd) and state != "Z"]
        roll = self.rng.random()
        if self.schema and roll < 0.25:
            waiting = {self.workers[slot].pid: slot for slot in live.values()
                       if self.kinds[slot] in ("work", "review-loop")}
            waiting = {slot for pid, slot in waiting.items()  # a loop running no command: claiming or waiting
                       if not any(ppid == pid and b"chaos-cmd" in cmd for ppid, _s, cmd in table.values())}
            waiting |= {live[ppid] for pid, (ppid, state, cmd) in table.items()  # a `kanban claim --wait`
                        if ppid in live and b"--wait" in cmd and state != "Z"}
            what = self.terminate_session(waiting)
            if what:
                self.kills[what] += 1
                return
        writers = []
        tries = 40 if roll < 0.25 and not self.schema else 0
        for _ in range(tries):  # catch a writer between BEGIN and COMMIT
            writers = [pid for pid in lock_holders(self.db + ".lock") if pid in ours]
            if writers:
                break
            time.sleep(0.0005)
        # until one kill has landed inside a server transaction, every kill looks for one
        # first: the soak must show that case whatever the machine's load or the dice
        if self.schema and (roll < 0.4 or not self.kills["in_transaction"]):
            writers = self.server_writers(live, commands, table)
        if writers:
            victim, what = writers[0], "in_transaction"
        elif hooks and roll < 0.45:
            hook = self.rng.choice(hooks)
            if self.rng.random() < 0.8:
                victim, what = table[hook][0], "in_hook"
            else:
                victim, what = hook, "hook"
        elif commands and roll < 0.65:
            victim, what = self.rng.choice(commands), "cli_command"
        elif work_commands and roll < 0.75:
            victim, what = self.rng.choice(work_commands), "work_command"
        else:
            victim, what = self.rng.choice(list(live)), "worker"
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.kills[what] += 1

    def server_writers(self, live, commands, table):
        """The processes of this run's sessions inside a write transaction (the server gave
        it a transaction id): a worker over the API, a loop, or a CLI worker's `kanban` command."""
        from kanban.store import postgres

        process = {slot: pid for pid, slot in live.items() if not self.kinds[slot].endswith("cli")}
        process.update({live[table[pid][0]]: pid for pid in commands})  # a CLI worker's session is its command's
        prefix = f"kanban-{self.schema}"
        try:
            with postgres.connect(self.args.pg) as conn:
                for _ in range(20):
                    found = conn.execute("SELECT application_name FROM pg_stat_activity WHERE backend_xid IS NOT NULL"
                                         " AND left(application_name, %s) = %s", (len(prefix), prefix)).fetchall()
                    writers = [process[name[len(prefix) + 1:]] for name, in found if name[len(prefix) + 1:] in process]
                    if writers:
                        return writers
                    time.sleep(0.001)
        except postgres.PgError:  # read when raised: the driver's errors join it on first connect
            pass
        return []

    def sessions(self, conn):
        """(pid, state, worker slot or '') of this run's server sessions."""
        prefix = f"kanban-{self.schema}"
        found = conn.execute(
            "SELECT pid, state, application_name FROM pg_stat_activity"
            " WHERE left(application_name, %s) = %s AND pid <> pg_backend_pid()",
            (len(prefix), prefix)).fetchall()
        return [(pid, state, name[len(prefix) + 1:]) for pid, state, name in found]

    def terminate_session(self, waiting):
        """pg_terminate_backend of one of this run's sessions: a waiting worker's idle one
        (its LISTEN) when there is one and the last session ended was not one, else one in
        a transaction if any is.  The kind of kill, or None when there was no session (or
        no server)."""
        from kanban.store import postgres

        try:
            with postgres.connect(self.args.pg) as conn:
                found = self.sessions(conn)
                if not found:
                    return None
                # through a pooler nobody LISTENs (claim --wait polls there)
                listeners = [] if self.args.pgbouncer else \
                    [pid for pid, state, slot in found if state == "idle" and slot in waiting]
                busy = [pid for pid, state, _ in found if state and state != "idle"]
                # a waiting worker whenever there is one, unless the last session ended was
                # one: the two kinds alternate, so even a short run ends some of each
                if listeners and not self.listener_last:
                    victim, what = self.rng.choice(listeners), "pg_terminate_listener"
                else:
                    victim, what = self.rng.choice(busy or [pid for pid, _s, _w in found]), "pg_terminate_backend"
                conn.execute("SELECT pg_terminate_backend(%s)", (victim,))
        except postgres.PgError:
            return None  # the server is restarting
        self.listener_last = what == "pg_terminate_listener"
        return what

    def restart_server(self, mode):
        """Stop the soak's own server (-m fast, or immediate: a crash), wait, start it again."""
        from kanban.store import postgres

        try:
            with postgres.connect(self.args.pg) as conn:
                sessions = len(self.sessions(conn))
        except postgres.PgError:
            sessions = None
        started = time.monotonic()
        self.cluster.restart(mode, down=self.args.pg_down)
        self.server_restarts.append({"mode": mode, "seconds": round(time.monotonic() - started, 2),
                                     "sessions_ended": sessions})

    def drop_schema(self):
        from kanban.store.postgres import connect

        if self.cluster:
            return  # the cluster goes, and the schema with it

        with connect(self.args.pg) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")

    def stop_helper(self):
        from kanban.store import helper

        helper.stop(os.path.join(self.folder, "run"))

    def stop_all(self):
        if self.schema:
            self.stop_helper()
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.workers.values():
            proc.wait()
        deadline = time.monotonic() + 5  # orphaned hooks and their children sleep at most 1 s
        while time.monotonic() < deadline:
            reap_orphans(self.workers)
            keep = {p.pid for p in self.workers.values()} | {self.cluster.postmaster() if self.cluster else None}
            if not any(ppid == os.getpid() and pid not in keep for pid, (ppid, _s, _c) in proc_table().items()):
                break
            time.sleep(0.05)

    # -- the run -----------------------------------------------------------------------------

    def open_tasks(self):
        from kanban import Board

        with Board(self.db) as board:
            counts = board.stats()["counts"]
            blocked = board.list(status="blocked")["tasks"] if counts["blocked"] else []
            for task in blocked:
                try:
                    board.unblock(task["id"], actor="supervisor", reason="chaos: go on")
                    self.unblocked += 1
                except Exception:  # noqa: BLE001 - a worker may have moved it meanwhile
                    pass
        return sum(counts[s] for s in ("todo", "in_progress", "in_review", "blocked"))

    def run(self):
        a = self.args
        started = time.monotonic()
        budget = a.minutes * 60 + a.seconds
        self.setup()
        pooler = contextlib.ExitStack()
        if a.pgbouncer:  # the workers' board, through the pooler; the supervisor reads it directly
            from kanban import pgbouncer

            self.worker_db = pooler.enter_context(pgbouncer.running(a.pg, self.schema, pool=a.pgbouncer_pool))
        become_subreaper()
        total = self.populate()
        stuck = []
        restarts = [("fast", "immediate")[k % 2] for k in range(self.args.pg_restarts if self.cluster else 0)]
        try:
            self.start_all()
            while True:
                round_started = time.monotonic()
                next_kill = time.monotonic() + self.rng.expovariate(1 / a.kill_every)
                next_look = 0
                while True:
                    now = time.monotonic()
                    if now >= next_kill:
                        self.kill_one()
                        next_kill = now + self.rng.expovariate(1 / a.kill_every)
                    self.check_workers()
                    if now >= next_look:
                        reap_orphans(self.workers)
                        still_open = self.open_tasks()
                        if still_open == 0:
                            break
                        if restarts:
                            # the next restart is due at an even share of the time, or of the tasks
                            share = (len(self.server_restarts) + 1) / (len(self.server_restarts) + len(restarts) + 1)
                            done = (now - started) / budget if budget else 1 - still_open / total
                            if done >= share:
                                self.restart_server(restarts.pop(0))
                        next_look = now + 0.5
                    if now - round_started > a.round_timeout:
                        stuck.append(f"round {self.rounds}: work not done after {a.round_timeout} s")
                        break
                    time.sleep(0.01)
                if stuck or time.monotonic() - started >= budget:
                    break
                total += self.populate()
        finally:
            self.stop_all()
            pooler.close()
        duration = time.monotonic() - started
        return self.verify(total, duration, stuck)

    def verify(self, created, duration, stuck):
        import invariants

        tasks, events, doctor = invariants.read_board(self.db)
        report = invariants.check(self.db, finished=not stuck, tasks=tasks, events=events, doctor=doctor)
        violations = list(report["violations"])
        count = report["violation_count"] + len(stuck) + len(self.crashes)
        violations += stuck + self.crashes
        # the workers' journals against the board: nothing a worker was told is lost
        accepted = {(e["task"], e["data"].get("token")) for e in events
                    if e["kind"] in ("completed", "submitted_for_review")}
        judged = {(e["task"], e["actor"], e["kind"]) for e in events if e["kind"] in ("approved", "rejected")}
        ops = Counter()
        stale_codes = Counter()
        for name in sorted(os.listdir(self.journals)):
            if not name.endswith(".jsonl"):
                continue
            with open(os.path.join(self.journals, name)) as handle:
                for line in handle:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue  # the worker was killed in the middle of the line
                    op = entry["op"]
                    ops[op] += 1
                    problem = None
                    if op == "complete" and (entry["task"], entry["token"]) not in accepted:
                        problem = f"{entry['task']}: completion with token {entry['token']} was acknowledged " \
                                  "to the worker but is not in the event log"
                    elif op in JUDGED and (entry["task"], entry["agent"], JUDGED[op]) not in judged:
                        problem = f"{entry['task']}: {op} by {entry['agent']} acknowledged but not in the log"
                    elif op == "stale":
                        stale_codes[entry.get("code") or "ACCEPTED"] += 1
                        if entry["accepted"]:
                            problem = f"{entry['task']}: completion with stale token {entry['token']} accepted"
                        elif entry.get("code") != "lease_lost":
                            problem = f"{entry['task']}: stale completion refused with {entry.get('code')}," \
                                      " not lease_lost"
                    elif op == "error":
                        problem = f"worker {entry['agent']}: unexpected {entry['code']}: {entry['message']}"
                    if problem:
                        count += 1
                        if len(violations) < invariants.MAX_SHOWN:
                            violations.append(problem)
        figures = report["figures"]
        return {
            "board": self.db,
            "rounds": self.rounds,
            "tasks": report["tasks"],
            "goals": report["goals"],
            "created": created,
            "outcome": report["outcome"],
            "workers": {"api": self.args.api_workers, "threads": self.args.thread_workers * THREADS,
                        "cli": self.args.cli_workers,
                        "work_loops": self.args.work_loops, "reviewers": self.args.reviewers,
                        "review_loops": self.args.review_loops},
            "lease": self.args.lease,
            "kills": sum(v for k, v in self.kills.items()),
            "kills_by_kind": dict(self.kills),
            "restarts": self.restarts,
            "server_restarts": self.server_restarts,
            "claims": figures["claims"],
            "review_claims": figures["review_claims"],
            "expired_leases": figures["expiries"],
            "completions": figures["completions"],
            "approvals": figures["approvals"],
            "rejections": figures["rejections"],
            "failed_at_max_attempts": figures["failed"],
            "releases": figures["releases"],
            "renewals": figures["renewals"],
            "blocks": figures["blocks"],
            "unblocked_by_supervisor": self.unblocked,
            "hook_failed": figures["hook_failed"],
            "stale_writes_tried": sum(stale_codes.values()),
            "stale_write_outcomes": dict(stale_codes),
            "journal": dict(ops),
            "events": report["events"],
            "last_token": report["last_token"],
            "integrity": report["integrity"],
            "violations": count,
            "violation_list": violations[:invariants.MAX_SHOWN],
            "duration_s": round(duration, 1),
        }


def print_figures(r, out=sys.stdout):
    kinds = r["kills_by_kind"]
    lines = [
        f"chaos: {r['rounds']} round(s), {r['tasks']} tasks and {r['goals']} goals in {r['duration_s']} s",
        f"  workers: {r['workers']['api']} API loops, {r['workers']['threads']} API loops in threads"
        f" (group commit), {r['workers']['cli']} CLI loops,"
        f" {r['workers']['work_loops']} `kanban work`, {r['workers']['reviewers']} reviewer loops,"
        f" {r['workers']['review_loops']} `kanban review`; lease {r['lease']}",
        f"  kills: {r['kills']} (inside a write transaction {kinds.get('in_transaction', 0)},"
        f" worker {kinds.get('worker', 0)}, kanban command {kinds.get('cli_command', 0)},"
        f" a work loop's command {kinds.get('work_command', 0)},"
        f" while its pre- or post-complete hook ran {kinds.get('in_hook', 0)}, the hook itself {kinds.get('hook', 0)});"
        f" restarts {r['restarts']}",
        f"  outcome: {r['outcome']['done']} done, {r['outcome']['failed']} failed at max_attempts,"
        f" {r['outcome']['other']} other",
        f"  claims {r['claims']} (+{r['review_claims']} for review), expired leases {r['expired_leases']},"
        f" completions {r['completions']}, approvals {r['approvals']}, rejections {r['rejections']},"
        f" releases {r['releases']}, blocks {r['blocks']}, hook failures {r['hook_failed']},"
        f" pre-complete refusals seen by the journaling workers {r['journal'].get('hook_rejected', 0)}",
        f"  stale-token completions tried {r['stale_writes_tried']}: {r['stale_write_outcomes']}",
        f"  events {r['events']}, last fencing token {r['last_token']}, integrity {r['integrity']}",
        f"  invariant violations: {r['violations']}",
    ]
    if r.get("server_restarts") is not None and (r["server_restarts"] or "pg_terminate_backend" in kinds):
        lines[3:3] = [
            f"  server sessions ended by pg_terminate_backend: {kinds.get('pg_terminate_backend', 0)} at random"
            f" (one in a transaction when there is one), {kinds.get('pg_terminate_listener', 0)} of a worker waiting"
            " for work (claim --wait, work, review: a LISTEN)",
            "  server restarts: " + (", ".join(f"-m {x['mode']} ({x['sessions_ended']} sessions, {x['seconds']} s)"
                                              for x in r["server_restarts"]) or "none"),
    ]
    lines += [f"    - {v}" for v in r["violation_list"]]
    out.write("\n".join(lines) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description="kanban crash chaos soak")
    parser.add_argument("--minutes", type=float, default=0, help="keep adding rounds of tasks this long")
    parser.add_argument("--seconds", type=float, default=0, help="added to --minutes")
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per round")
    parser.add_argument("--api-workers", type=int, default=3)
    parser.add_argument("--thread-workers", type=int, default=1,
                        help=f"processes of {THREADS} API loops in threads (their writes share commits)")
    parser.add_argument("--cli-workers", type=int, default=2)
    parser.add_argument("--reviewers", type=int, default=2, help="reviewer loops over the API and the CLI")
    parser.add_argument("--work-loops", type=int, default=1, help="`kanban work` loops")
    parser.add_argument("--review-loops", type=int, default=1, help="`kanban review` loops")
    parser.add_argument("--lease", default="3s", help="worker lease, in seconds (e.g. 3s)")
    parser.add_argument("--kill-every", type=float, default=0.25, help="mean seconds between kills")
    parser.add_argument("--round-timeout", type=float, default=900)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--dir", help="work here (kept); default a temporary folder, removed when all is well")
    parser.add_argument("--json", action="store_true", help="end with the report as one JSON line")
    parser.add_argument("--pg", help="run the board on this PostgreSQL server (a URL), in a schema of its own")
    parser.add_argument("--pg-own-cluster", action="store_true",
                        help="run the board on a throwaway PostgreSQL cluster of its own (initdb, pg_ctl), "
                             "restarted in the middle")
    parser.add_argument("--pg-restarts", type=int, default=2,
                        help="with --pg-own-cluster: server restarts, -m fast and -m immediate in turn")
    parser.add_argument("--pg-down", type=float, default=1.0,
                        help="with --pg-own-cluster: seconds the server stays down in a restart")
    parser.add_argument("--pgbouncer", action="store_true",
                        help="with --pg or --pg-own-cluster: the workers reach the board through a PgBouncer "
                             "in transaction mode")
    parser.add_argument("--pgbouncer-pool", type=int, default=4, help="the PgBouncer's server connections")
    # worker mode (the supervisor starts itself as workers)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--agent", help=argparse.SUPPRESS)
    parser.add_argument("--journal", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        worker(args.worker, args.db, args.agent, args.journal, args.lease, args.seed)
        return 0
    if args.seed is None:
        args.seed = random.randrange(2**32)
    cluster = None
    if args.pg_own_cluster:
        import pgcluster

        if args.pg:
            parser.error("--pg and --pg-own-cluster: one server or the other")
        try:
            cluster = pgcluster.Cluster().start()
        except pgcluster.ClusterError as exc:
            print(f"chaos: no cluster of its own: {exc}", file=sys.stderr)
            return 2
        args.pg = cluster.url
    try:
        chaos = Chaos(args, cluster)
        try:
            report = chaos.run()
            if cluster and report["violations"]:  # the cluster goes: keep the board as a file
                with open(os.path.join(chaos.folder, "board.jsonl"), "w") as out:
                    subprocess.run([KANBAN, "export"], stdout=out, env=dict(chaos.env, KANBAN_PG_HELPER="0"))
                report["board"] = os.path.join(chaos.folder, "board.jsonl")
        finally:
            if chaos.schema:
                chaos.stop_helper()
    finally:
        if cluster:
            cluster.stop()
    report["seed"] = args.seed
    print_figures(report)
    if args.json:
        print(json.dumps(report))
    if report["violations"]:
        print(f"chaos: board kept at {chaos.folder} (seed {args.seed})", file=sys.stderr)
        return 1
    if chaos.schema:
        chaos.drop_schema()
    if not args.dir:
        shutil.rmtree(chaos.folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
