"""The worker and reviewer loops behind `kanban work` and `kanban review`.

A loop claims a task, runs the user's command on it (argv as given, never through a
shell) and turns the command's exit status into the board's answer:

    work:    exit 0 -> complete (summary: the last line of its stdout)
             else   -> block (reason: the tail of its stderr)
    review:  exit 0 -> approve (comment: the last line of its stdout)
             else   -> reject (reason: the tail of its stderr)

While the command runs, the loop renews the lease every third of its length, so a
long task keeps its claim however long it takes and a dead loop loses it as soon as
the lease runs out.  If a renewal says the lease is gone (the task was cancelled,
reclaimed or moved on), the command is stopped: its work no longer counts.
SIGINT and SIGTERM stop the command and give the task back (`lease release`, no
attempt counted), then exit 128 + the signal number.

The command's stdout and stderr pass through to the loop's own stdout and stderr;
the loop's progress lines go to stderr.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque

from . import clock
from .board import DEFAULT_LEASE, Board
from .cli import EXIT_NOTHING, env_or, to_devnull
from .errors import KanbanError, usage

POLL_S = 0.25  # waiting for work: at most every 250 ms, as `claim --wait`
TICK_S = 0.1  # how often a running command is checked (exit, signals, renewal)
KILL_GRACE_S = 5.0  # SIGTERM, then SIGKILL after this long
TAIL_CHARS = 2000  # how much of the command's stderr a block or reject reason keeps
TAIL_LINES = 20
# a lease renewal failing with one of these means the task is no longer ours
LOST = ("lease_lost", "conflict", "not_found")
# errors of the board itself, not of a task: the loop stops without counting an attempt
BOARD_TROUBLE = ("busy", "db_error", "internal", "usage")


SUMMARY_CHARS = 2000  # how much of the command's last stdout line a summary or comment keeps
LINE_BYTES = 64 * 1024  # a "line" longer than this is cut: the rest never reaches the board


def clean(text, keep_newlines=False):
    """Text fit for the board: NUL and other control characters (escape sequences
    included) written out visibly as \\xNN; tabs kept, newlines kept when asked."""
    def visible(char):
        code = ord(char)
        if char == "\t" or (keep_newlines and char == "\n"):
            return char
        if code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
            return f"\\x{code:02x}"
        return char
    return "".join(visible(c) for c in text)


def bound(text, limit):
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Pump(threading.Thread):
    """Copy a child's stream to one of ours, keeping (bounded) its tail and last line.
    Reads in blocks, so output without newlines, binary or huge costs no more memory."""

    def __init__(self, source, sink):
        super().__init__(daemon=True)
        self.source, self.sink = source, sink
        self.tail = deque()
        self.tail_len = 0
        self._line = b""       # the line being read (its first LINE_BYTES)
        self._last = None      # the last complete non-blank line

    def run(self):
        for block in iter(lambda: self.source.read1(65536), b""):
            try:
                self.sink.write(block)
                self.sink.flush()
            except BrokenPipeError:
                # nobody reads our stream any more: what is left in its buffer, and all
                # that follows, goes to /dev/null, so the loop's own last flush does not
                # end it by SIGPIPE (kanban(1): the loops go on with their tasks)
                to_devnull(self.sink)
            except (OSError, ValueError):
                pass  # our own stream is gone: keep draining the child
            self._keep(block)
        self.source.close()

    def _keep(self, block):
        text = block.decode("utf-8", "replace")
        self.tail.append(text)
        self.tail_len += len(text)
        while self.tail_len > TAIL_CHARS * 2 and len(self.tail) > 1:
            self.tail_len -= len(self.tail.popleft())
        if self.tail_len > TAIL_CHARS * 4:  # one huge block: keep its end only
            joined = "".join(self.tail)[-TAIL_CHARS * 2:]
            self.tail, self.tail_len = deque([joined]), len(joined)
        *complete, rest = block.split(b"\n")
        for piece in complete:
            line = (self._line + piece)[:LINE_BYTES]
            self._line = b""
            if line.strip():
                self._last = line
        self._line = (self._line + rest)[:LINE_BYTES]

    @property
    def last_line(self):
        """The last non-blank line, cleaned and bounded: a summary or a comment."""
        line = self._line if self._line.strip() else self._last
        if line is None:
            return None
        text = clean(line.decode("utf-8", "replace").strip())
        return bound(text, SUMMARY_CHARS) if text else None

    def text(self):
        """The tail: at most TAIL_LINES lines and TAIL_CHARS characters, cleaned."""
        lines = clean("".join(self.tail).strip(), keep_newlines=True).splitlines()[-TAIL_LINES:]
        text = "\n".join(lines)
        return text if len(text) <= TAIL_CHARS else "…" + text[-(TAIL_CHARS - 1):]


def _feed(pipe, data):
    try:
        pipe.write(data)
    except (BrokenPipeError, OSError):
        pass  # the command does not read its stdin: fine
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def _check_command(cmd):
    """Refuse a command that cannot run before any task is claimed for it."""
    if not cmd:
        raise usage("no command: put it after --")
    name = cmd[0]
    if os.sep in name:
        if not (os.path.isfile(name) and os.access(name, os.X_OK)):
            raise usage(f"cannot run {name}: not an executable file", command=name)
    elif shutil.which(name) is None:
        raise usage(f"cannot run {name}: not found on PATH", command=name)


class Outcome:
    """How one run of the command ended."""

    def __init__(self, status, stdout, stderr, lost=None, signum=None):
        self.status = status  # exit status; negative: killed by that signal; None: we stopped it
        self.stdout, self.stderr = stdout, stderr
        self.lost = lost  # the KanbanError that said the lease is gone
        self.signum = signum  # the signal that stopped the loop

    def reason(self, name):
        """A block/reject reason: the tail of stderr, after how the command ended."""
        if self.status is not None and self.status < 0:
            head = f"{name} was killed by signal {-self.status}"
        else:
            head = f"{name} exited {self.status}"
        tail = self.stderr.text()
        return f"{head}: {tail}" if tail else f"{head} (nothing on stderr)"


class Loop:
    """One worker (or reviewer) loop; `run()` returns the exit status."""

    verb = "work"

    def __init__(self, args):
        self.agent = env_or(args, "--agent", "KANBAN_AGENT")
        if not self.agent:
            raise usage("no agent: pass --agent or set KANBAN_AGENT")
        self.lease = env_or(args, "--lease", "KANBAN_LEASE") or DEFAULT_LEASE
        self.lease_ms = clock.parse_duration(self.lease, "lease")
        self.wait_s = clock.parse_duration(args["--wait"], "--wait") / 1000 if args["--wait"] else 0.0
        self.once = bool(args["--once"])
        self.exit_code = bool(args["--exit-code"])
        self.cmd = list(args["CMD"])
        _check_command(self.cmd)
        self.name = clean(os.path.basename(self.cmd[0]))
        self.signum = None
        self.board = None

    # -- what differs between workers and reviewers ------------------------------

    def claim(self):
        raise NotImplementedError

    def peek(self):
        raise NotImplementedError

    def finish(self, task, token, outcome):
        raise NotImplementedError

    def extra_env(self):
        return {}

    # -- the loop -------------------------------------------------------------------

    def say(self, message):
        from .render import terminal_text  # titles and reasons are data: never terminal controls

        try:
            sys.stderr.write(f"kanban {self.verb} ({self.agent}): {terminal_text(message)}\n")
            sys.stderr.flush()
        except BrokenPipeError:
            to_devnull(sys.stderr)  # progress nobody reads any more: the tasks go on

    def _on_signal(self, signum, _frame):
        self.signum = signum  # acted on between steps, never in the middle of a write

    def run(self):
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            with self._open_board() as board:
                self.board = board
                self.db = board.db.location()
                return self._loop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _open_board(self):
        """The board.  A server that cannot be reached (restarting, or failing over) is
        tried again for up to KANBAN_BUSY_TIMEOUT, as a loop already running rides out
        a restart: a loop started in that window waits for it instead of exiting."""
        from .store import busy_timeout_ms

        deadline = time.monotonic() + busy_timeout_ms() / 1000
        delay, said = 0.05, False
        while True:
            try:
                return Board()
            except KanbanError as exc:
                unreachable = exc.code == "db_error" and exc.message.startswith("cannot reach")
                if not unreachable or self.signum is not None or time.monotonic() >= deadline:
                    raise
                if not said:
                    self.say(f"{exc.message}: trying again for up to {busy_timeout_ms() / 1000:g}s")
                    said = True
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 1.0)

    def _loop(self):
        handled = 0
        while True:
            task = self._next()
            if self.signum is not None:
                if task:
                    self._release(task["id"], task["lease_token"])
                return 128 + self.signum
            if not task:
                break
            self._handle(task)
            handled += 1
            if self.signum is not None:
                return 128 + self.signum
            if self.once:
                break
        if not handled:
            self.say("nothing to do" + (f" (waited {self.wait_s:g}s)" if self.wait_s else ""))
        else:
            self.say(f"done: {handled} task(s) handled")
        if not handled or not self.once:  # --once after a task: the rest is not its business
            self._say_left()
        return EXIT_NOTHING if not handled and self.exit_code else 0

    def _say_left(self):
        """Work this loop may not take, named, so that stopping with work left is never
        silent: ready tasks for another role or agent, reviews of this agent's own work."""
        try:
            left = self.left_for_others()
        except KanbanError:
            return  # only a note: the loop's answer stands
        if left:
            shown = ", ".join(f"{task} ({why})" for task, why in left[:5])
            more = f" and {len(left) - 5} more" if len(left) > 5 else ""
            self.say(f"left for others: {shown}{more}")

    def left_for_others(self):
        return []

    def _next(self):
        """Claim the next task, waiting up to --wait (real time) for one to appear."""
        deadline = time.monotonic() + self.wait_s
        while True:
            task = self.claim()
            if task or self.signum is not None or time.monotonic() >= deadline:
                return task
            while self.signum is None and time.monotonic() < deadline:
                self.board.wait_for_work(min(POLL_S, max(0.0, deadline - time.monotonic())))
                if self.peek():
                    break

    def _handle(self, task):
        task_id, token = task["id"], task["lease_token"]
        self.say(f"claimed {task_id}: {task['title']} (token {token}, lease {self.lease})")
        try:
            document = dict(self.board.show(task_id), lease_token=token)
        except KanbanError:
            self._release(task_id, token)
            raise
        outcome = self._run(task_id, token, document)
        if outcome.signum is not None:
            self._release(task_id, token)
            return
        if outcome.lost is not None:
            self.say(f"lost the lease on {task_id} ({outcome.lost.message}): stopped {self.name}, moving on")
            return
        try:
            self.finish(task, token, outcome)
        except KanbanError as exc:
            if exc.code in BOARD_TROUBLE:
                self._release(task_id, token)  # not the task's fault: no attempt counted
                raise
            if exc.code != "lease_lost":
                # the board refused what this task led to: the task, not the loop, pays
                self._give_back(task_id, token, f"kanban {self.verb} could not finish it: {exc.code}: "
                                f"{clean(exc.message)}")
                return
            now = self.board.show(task_id, events=0)["status"]
            self.say(f"{task_id} moved on without us (now {now}): {exc.message}")

    def _give_back(self, task_id, token, reason):
        """Give the task back counting an attempt (failed at max_attempts), and go on."""
        reason = bound(reason, TAIL_CHARS)
        try:
            back = self.board.give_back(task_id, token, reason, agent=self.agent)
            self.say(f"gave {task_id} back (attempt {back['attempts']}, now {back['status']}): {reason}")
        except KanbanError as exc:
            self.say(f"could not give {task_id} back: {exc.message}")

    def _release(self, task_id, token):
        try:
            self.board.release(task_id, token, agent=self.agent)
            self.say(f"released {task_id}")
        except KanbanError as exc:
            self.say(f"could not release {task_id}: {exc.message}")

    def _run(self, task_id, token, document):
        """Run the command on one task, renewing the lease while it runs."""
        env = dict(os.environ, KANBAN_TASK_ID=task_id, KANBAN_LEASE_TOKEN=str(token), KANBAN_DB=self.db,
                   KANBAN_AGENT=self.agent, **self.extra_env())
        try:
            child = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, start_new_session=True,
                                     preexec_fn=die_with_parent())
        except OSError as exc:
            self._release(task_id, token)
            raise usage(f"cannot run {self.cmd[0]}: {exc.strerror}", command=self.cmd[0]) from None
        with _Leash(child.pid):
            return self._watch(child, task_id, token, document)

    def _watch(self, child, task_id, token, document):
        # our own stdout may be a closed or redirected stream object: write bytes to its fd
        out = _Pump(child.stdout, sys.stdout.buffer)
        err = _Pump(child.stderr, sys.stderr.buffer)
        payload = (json.dumps(document, ensure_ascii=False) + "\n").encode()
        feeder = threading.Thread(target=_feed, args=(child.stdin, payload), daemon=True)
        for thread in (out, err, feeder):
            thread.start()
        every = self.lease_ms / 3000
        next_renewal = time.monotonic() + every
        lost = None
        status = None
        while True:
            try:
                status = child.wait(timeout=TICK_S)
                break
            except subprocess.TimeoutExpired:
                pass
            if self.signum is not None:
                self.say(f"signal {self.signum}: stopping {self.name} on {task_id}")
                _stop(child)
                status = None
                break
            if time.monotonic() >= next_renewal:
                try:
                    self.board.renew(task_id, token, agent=self.agent)
                    next_renewal = time.monotonic() + every
                except KanbanError as exc:
                    if exc.code in LOST:
                        lost = exc
                        _stop(child)
                        status = None
                        break
                    # busy and the like: say so and try again soon, the lease still runs
                    self.say(f"could not renew the lease on {task_id}: {exc.message}")
                    next_renewal = time.monotonic() + min(every, 1.0)
        for thread in (out, err):
            thread.join(timeout=2.0)  # a daemon the command left behind may hold the pipes
        return Outcome(status, out, err, lost=lost, signum=self.signum)


# The command runs in a session of its own (a Ctrl-C meant for the loop is not its), so
# nothing would stop it, or what it started, if the loop itself were SIGKILLed: it would
# work on for a task whose lease is about to expire.  Two leashes hold it to the loop:
# on Linux the kernel SIGKILLs the command when the loop dies (PR_SET_PDEATHSIG), and
# everywhere a watcher process, in a session of its own too (a kill of the loop's
# process group does not reach it), waits on a pipe only the loop writes; at its end
# of file without a word from the loop, the loop has died: it stops the command's
# whole process group (a shell's children too) as _stop does, SIGTERM then SIGKILL.
PR_SET_PDEATHSIG = 1
WATCHER = """
import os, signal, sys, time
group, grace = int(sys.argv[1]), float(sys.argv[2])
signal.signal(signal.SIGINT, signal.SIG_IGN)
if sys.stdin.buffer.read(1):
    sys.exit(0)
for sig in (signal.SIGTERM, signal.SIGKILL):
    deadline = time.monotonic() + grace
    try:
        os.killpg(group, sig)
        while time.monotonic() < deadline:
            time.sleep(0.1)
            os.killpg(group, 0)
    except OSError:
        sys.exit(0)
"""


def die_with_parent(sig=signal.SIGKILL):
    """Popen's preexec_fn: on Linux, the child gets `sig` when its parent dies (the
    kernel watches the thread that started it: start it from one that lives as long
    as the process, as the loops and the sprint do from their main thread); elsewhere
    None (for the loop's command the watcher alone does it)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def leash():
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the leash was on
            os._exit(128 + sig)
    return leash


class _Leash:
    """`with _Leash(pid):` the watcher of the command's process group while it runs."""

    def __init__(self, group):
        self.watcher = None
        try:
            read_end, self.write_end = os.pipe()
        except OSError:
            return
        try:
            self.watcher = subprocess.Popen([sys.executable, "-I", "-S", "-c", WATCHER, str(group),
                                             str(KILL_GRACE_S)], stdin=read_end, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            os.close(self.write_end)  # no watcher: the Linux leash still holds
        finally:
            os.close(read_end)

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        if self.watcher is None:
            return
        try:
            os.write(self.write_end, b".")  # the command is done with: let it be
        except OSError:
            pass
        os.close(self.write_end)
        try:
            self.watcher.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            self.watcher.kill()
            self.watcher.wait()


def _stop(child):
    """SIGTERM the command's process group, SIGKILL it after a grace period."""
    for sig, grace in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(child.pid, sig)
        except OSError:
            pass
        try:
            child.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


class Worker(Loop):
    verb = "work"

    def __init__(self, args):
        super().__init__(args)
        self.role = env_or(args, "--role", "KANBAN_ROLE")
        self.project = args["--project"]
        self.review = bool(args["--review"])

    def extra_env(self):
        return {"KANBAN_ROLE": self.role} if self.role else {}

    def claim(self):
        return self.board.claim(self.agent, role=self.role, project=self.project, lease=self.lease)

    def peek(self):
        return self.board.has_work(self.agent, self.role, self.project)

    def left_for_others(self):
        left = []
        for task in self.board.list(ready=True, project=self.project)["tasks"]:
            if task["assignee"] is not None and task["assignee"] != self.agent:
                left.append((task["id"], f"assigned to {task['assignee']}"))
            elif task["role_boundary"] is not None and task["role_boundary"] != self.role:
                left.append((task["id"], f"needs role {task['role_boundary']}"))
        return left

    def finish(self, task, token, outcome):
        task_id = task["id"]
        if outcome.status == 0:
            summary = outcome.stdout.last_line
            try:
                done = self.board.complete(task_id, token, summary=summary, review=self.review, agent=self.agent)
            except KanbanError as exc:
                if exc.code != "hook_rejected":
                    raise
                detail = exc.extra.get("detail") or ""
                reason = bound(clean(exc.message + (f": {detail}" if detail else ""), keep_newlines=True),
                               TAIL_CHARS)
                self.board.block(task_id, reason, token=token, agent=self.agent)
                self.say(f"blocked {task_id}: {reason}")
                return
            if done["status"] == "in_review":
                self.say(f"submitted {task_id} for review" + (f": {summary}" if summary else ""))
            else:
                self.say(f"completed {task_id}" + (f": {summary}" if summary else ""))
            return
        reason = outcome.reason(self.name)
        self.board.block(task_id, reason, token=token, agent=self.agent)
        self.say(f"blocked {task_id}: {reason.splitlines()[0]}")


class Reviewer(Loop):
    verb = "review"

    def _give_back(self, task_id, token, reason):
        # a review claim counts no attempts: the review lease goes back, the task stays in review
        self.say(f"could not judge {task_id}: {reason}")
        self._release(task_id, token)

    def extra_env(self):
        return {"KANBAN_REVIEW": "1"}

    def claim(self):
        # the board offers only tasks this agent never held, so self-review never comes up here
        return self.board.claim_review(self.agent, lease=self.lease)

    def left_for_others(self):
        tasks = [t["id"] for t in self.board.list(status="in_review")["tasks"]]
        held = self.board.holders_of(tasks) if tasks else {}
        return [(task, "its review needs an agent that never held it") for task in tasks
                if self.agent in held.get(task, ())]

    def peek(self):
        # a read: is any task in review without a live review lease?
        now = clock.now_ms()
        return any(t["claimed_by"] is None or clock.parse_time(t["lease_until"]) <= now
                   for t in self.board.list(status="in_review")["tasks"])

    def finish(self, task, token, outcome):
        task_id = task["id"]
        try:
            if outcome.status == 0:
                comment = outcome.stdout.last_line
                self.board.approve(task_id, agent=self.agent, token=token, comment=comment)
                self.say(f"approved {task_id}" + (f": {comment}" if comment else ""))
            else:
                reason = outcome.reason(self.name)
                self.board.reject(task_id, reason, agent=self.agent, token=token)
                self.say(f"rejected {task_id}: {reason.splitlines()[0]}")
        except KanbanError as exc:
            if exc.code != "forbidden":
                raise
            self._release(task_id, token)
            self.say(f"skipped {task_id}: {exc.message}")


def work(args):
    """porcelain/kanban-work"""
    return Worker(args).run()


def review(args):
    """porcelain/kanban-review"""
    return Reviewer(args).run()
