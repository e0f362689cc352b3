"""Running hooks: after a commit (post-<verb>), or before completion (pre-complete).

A hook is an executable file, run directly (never through a shell) with the event
JSON on stdin and KANBAN_EVENT, KANBAN_TASK_ID, KANBAN_AGENT and KANBAN_DB in its
environment.  Its stdout and stderr both go to the command's stderr (up to 64 KB),
so a hook can never corrupt the JSON a command prints.  A hook runs in a session
of its own; at KANBAN_HOOK_TIMEOUT its whole process group is killed, and nothing
it leaves behind is waited for.  Hooks in a folder that others may write to, or owned by
another user, are refused with a warning: they would run with the caller's rights.
"""
import os
import stat
import sys

from .errors import KanbanError
from .jsontext import dumps
from .store import is_server

# event kind -> the verb in the hook's name (post-<verb>)
HOOK_FOR_EVENT = {
    "created": "create",
    "claimed": "claim",
    "completed": "complete",
    "submitted_for_review": "complete",
    "blocked": "block",
    "unblocked": "unblock",
    "approved": "approve",
    "rejected": "reject",
    "cancelled": "cancel",
    "reopened": "reopen",
    "released": "release",
    "lease_expired": "expire",
}

def hook_verb(kind, data=None):
    """The post-<verb> hook an event fires, or None.  A card a person moved (kanban move)
    records status_changed for most moves; the move is still the verb it stands for:
    blocked -> todo unblocks, a closed task -> todo reopens, a held task -> todo is given
    back (release), -> done or in_review completes.  (To blocked or cancelled, and an
    approval, record blocked, cancelled and approved, which fire their own hooks.)"""
    verb = HOOK_FOR_EVENT.get(kind)
    if verb is not None or kind != "status_changed" or not data or not data.get("moved"):
        return verb
    source, column = data.get("from"), data.get("to")
    if column in ("done", "in_review"):
        return "complete"
    if column == "todo":
        if source == "blocked":
            return "unblock"
        from .board import CLOSED  # (here: board imports this module)

        if source in CLOSED:
            return "reopen"
        if data.get("lease_ended"):
            return "release"
    return None


def hooks_dir(db_path):
    named = os.environ.get("KANBAN_HOOKS_DIR")
    if named:
        return named
    if is_server(db_path):
        return None  # a server board has no folder of its own: KANBAN_HOOKS_DIR only
    return os.path.join(os.path.dirname(os.path.abspath(db_path)), "hooks.d")


def _warning(message):
    return f"kanban: warning: {message}\n"


def _warn(message):
    sys.stderr.write(_warning(message))


def _unsafe(path, info):
    """Why a hook file or folder must not be trusted, or None."""
    uid = os.getuid()
    if info.st_uid not in (uid, 0):
        return f"{path} is owned by another user (uid {info.st_uid})"
    if info.st_mode & stat.S_IWOTH and not (stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX):
        return f"{path} is writable by every user"
    return None


def find(directory, name):
    """The executables for hook `name`: <dir>/<name>, then <dir>/<name>.d/* in order."""
    if not directory:
        return []
    try:
        info = os.stat(directory)
    except OSError:
        return []
    problem = _unsafe(directory, info)
    if problem:
        _warn(f"hooks refused: {problem}")
        return []
    found = []
    single = os.path.join(directory, name)
    candidates = [single]
    folder = single + ".d"
    try:
        folder_info = os.stat(folder)
    except OSError:
        folder_info = None
    if folder_info is not None and stat.S_ISDIR(folder_info.st_mode):
        problem = _unsafe(folder, folder_info)
        if problem:
            _warn(f"hooks refused: {problem}")
        else:
            candidates += [os.path.join(folder, entry) for entry in sorted(os.listdir(folder))]
    for path in candidates:
        try:
            info = os.stat(path)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or not os.access(path, os.X_OK):
            continue
        problem = _unsafe(path, info)
        if problem:
            _warn(f"hook refused: {problem}")
            continue
        found.append(path)
    return found


def timeout_seconds():
    """KANBAN_HOOK_TIMEOUT; a bad value warns and keeps the default, because post hooks
    run after the commit, where a command can no longer fail."""
    from .clock import parse_duration

    try:
        return parse_duration(os.environ.get("KANBAN_HOOK_TIMEOUT") or "10s", "KANBAN_HOOK_TIMEOUT") / 1000
    except KanbanError as exc:
        _warn(f"{exc.message}; using 10s")
        return 10.0


# what of a hook's output reaches the command's stderr; the rest is read and dropped
OUTPUT_LIMIT = 64 * 1024
# how long the output of a hook that has exited is still read (its children may hold the pipe)
DRAIN_SECONDS = 0.1


class _Output:
    """A hook's stdout and stderr, passed on to the command's stderr up to OUTPUT_LIMIT;
    the end of it is kept for the error detail.  hold=True: what would be passed on is
    kept instead, for release() (a pre-complete hook's, shown only if it lets the
    completion go on: a refusal's stderr is its one JSON line, the output in `detail`)."""

    def __init__(self, hold=False):
        import codecs

        self.shown = 0
        self.dropped = 0
        self.tail = b""
        self.held = [] if hold else None
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")  # bytes that are not text

    def _show(self, data):
        if self.held is None:
            _write_stderr(data)
        else:
            self.held.append(data)

    def add(self, chunk):
        room = OUTPUT_LIMIT - self.shown
        if room > 0:
            self._show(self.decoder.decode(chunk[:room]).encode("utf-8"))
            self.shown += min(room, len(chunk))
        self.dropped += max(0, len(chunk) - max(room, 0))
        self.tail = (self.tail + chunk)[-4000:]

    def finish(self, path):
        self._show(self.decoder.decode(b"", final=True).encode("utf-8"))
        if self.dropped:
            note = f"{path} wrote {self.shown + self.dropped} bytes; only the first {self.shown} are shown"
            if self.held is None:
                _warn(note)
            else:
                self.held.append(_warning(note).encode())
        return self.tail.decode("utf-8", "replace")

    def release(self):
        """Pass on what was held."""
        if self.held:
            _write_stderr(b"".join(self.held))
        self.held = None


def _stderr_is_a_terminal():
    try:
        return os.isatty(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False


def _write_stderr(data):
    try:
        sys.stderr.flush()
        os.write(sys.stderr.fileno(), data)
    except (OSError, ValueError):
        pass  # no stderr to show it on: the hook still counts


def _read_some(fd, output, until):
    """Read what the hook writes until `until` (monotonic) or end of file; True at EOF."""
    import select
    import time

    while True:
        remaining = until - time.monotonic()
        if remaining <= 0:
            return False
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return False
        chunk = os.read(fd, 65536)
        if not chunk:
            return True
        output.add(chunk)


# how long after KANBAN_HOOK_TIMEOUT the hook's own watchdog kills it (_bounded): the
# command's kill comes first while the command lives
WATCHDOG_GRACE_S = 1.0
_TIMEOUT_PROGRAM = []  # coreutils timeout(1), looked up once a process: [path or None]


def _bounded(path, seconds):
    """The argv that runs hook `path`: under coreutils timeout(1) where there is one, so
    that the hook is killed at the timeout (plus WATCHDOG_GRACE_S) even when the command
    that ran it is gone (SIGKILLed while the hook ran): timeout(1) makes itself the
    leader of the hook's process group and, at the time given, SIGKILLs the whole group
    (the hook and what it started there), itself included.  While the command lives it
    kills the group itself, at the timeout, first.  Without timeout(1) (not Linux), the
    hook runs as it is, bounded by the command alone."""
    if not _TIMEOUT_PROGRAM:
        import shutil

        _TIMEOUT_PROGRAM.append(shutil.which("timeout"))
    program = _TIMEOUT_PROGRAM[0]
    if program is None or not _executable(path):
        return [path]  # a file that cannot run: Popen says why
    return [program, "-s", "KILL", f"{seconds + WATCHDOG_GRACE_S:.3f}s", path]


def _executable(path):
    """Can the kernel run `path` itself: executable, and a script with a #! line or an
    ELF program?  timeout(1) runs its command with execvp, which hands a file the kernel
    refuses (no #! line) to /bin/sh: a hook never runs through a shell, so such a file
    is run without the watchdog and fails as it always did (Exec format error)."""
    try:
        with open(path, "rb") as handle:
            start = handle.read(4)
    except OSError:
        return False
    return os.access(path, os.X_OK) and (start[:2] == b"#!" or start == b"\x7fELF")


def _run(path, payload, env_extra, output=None):
    """Run one hook in a session of its own; returns (exit status, or None when it timed
    out, the end of its output).  The hook reads the payload from a file (it may never
    read it), and its output comes through a pipe the command reads, in time and size
    bounds: at the timeout its whole process group is killed, and children it leaves
    behind (even in a session of their own) are not waited for, nor is their output."""
    import signal
    import subprocess
    import tempfile
    import time

    env = dict(os.environ)
    env.update({k: ("" if v is None else str(v)) for k, v in env_extra.items()})
    seconds = timeout_seconds()
    read_end, write_end = os.pipe()
    try:
        with tempfile.TemporaryFile() as stdin:
            stdin.write(payload)
            stdin.seek(0)
            child = subprocess.Popen(_bounded(path, seconds), stdin=stdin, stdout=write_end, stderr=write_end,
                                     env=env, start_new_session=True)  # its own group: a timeout kills them all
    except OSError as exc:
        os.close(read_end)
        return 127, f"cannot run {path}: {exc}"
    finally:
        os.close(write_end)
    output = output or _Output()
    deadline = time.monotonic() + seconds
    status = None
    try:
        eof = False
        while status is None and time.monotonic() < deadline:
            if eof:
                try:
                    status = child.wait(timeout=max(0.0, min(0.05, deadline - time.monotonic())))
                except subprocess.TimeoutExpired:
                    pass
                continue
            eof = _read_some(read_end, output, min(deadline, time.monotonic() + 0.05))
            status = child.poll()
        if status is None:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except OSError:
                pass
            child.wait()
        if not eof:
            _read_some(read_end, output, time.monotonic() + DRAIN_SECONDS)
    finally:
        os.close(read_end)
    tail = output.finish(path)
    if status is None:
        return None, f"{path} timed out after {seconds:g}s" + (f": {tail.strip()[-1000:]}" if tail.strip() else "")
    return status, tail


def _env(event_kind, task_id, agent, db_path):
    return {
        "KANBAN_EVENT": event_kind,
        "KANBAN_TASK_ID": task_id,
        "KANBAN_AGENT": agent,
        "KANBAN_DB": db_path,
    }


def run_post(db_path, event):
    """Run the post-<verb> hooks for one committed event; return the failures."""
    verb = hook_verb(event["kind"], event.get("data"))
    if verb is None:
        return []
    paths = find(hooks_dir(db_path), f"post-{verb}")
    failures = []
    for path in paths:
        payload = dumps(event).encode()
        status, err = _run(path, payload, _env(event["kind"], event["task"], event["actor"], db_path))
        if status != 0:
            reason = err if status is None else f"{os.path.basename(path)} exited {status}"
            failures.append({"hook": path, "event": event["id"], "reason": reason})
    return failures


def run_pre_complete(db_path, task, agent, summary):
    """Run pre-complete hooks; raise hook_rejected when one refuses."""
    paths = find(hooks_dir(db_path), "pre-complete")
    for path in paths:
        payload = dumps({"kind": "complete", "task": task, "actor": agent, "summary": summary})
        # for a program reading the command's stderr, a refusal is its one JSON line (the
        # hook's output goes in `detail`): the output waits for the hook's verdict.  A
        # person at a terminal sees it as it comes
        output = _Output(hold=not _stderr_is_a_terminal())
        status, err = _run(path, payload.encode(), _env("complete", task["id"], agent, db_path), output)
        if status == 0:
            output.release()
        else:
            raise KanbanError(
                "hook_rejected",
                f"pre-complete hook {os.path.basename(path)} refused the completion"
                + (" (timed out)" if status is None else f" (exit {status})"),
                task=task["id"],
                detail=err.strip()[-4000:],
            )
