"""Running hooks: after a commit (post-<verb>), or before completion (pre-complete).

A hook is an executable file, run directly (never through a shell) with the event
JSON on stdin and KANBAN_EVENT, KANBAN_TASK_ID, KANBAN_AGENT and KANBAN_DB in its
environment.  Its stdout and stderr both go to the command's stderr, so a hook can
never corrupt the JSON a command prints.  A hook is killed (with its children)
after KANBAN_HOOK_TIMEOUT.  Hooks in a folder that others may write to, or owned by
another user, are refused with a warning: they would run with the caller's rights.
"""
import os
import stat
import sys

from .errors import KanbanError
from .jsontext import dumps

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


def hooks_dir(db_path):
    named = os.environ.get("KANBAN_HOOKS_DIR")
    if named:
        return named
    if "://" in db_path:
        return None  # a server board has no folder of its own: KANBAN_HOOKS_DIR only
    return os.path.join(os.path.dirname(os.path.abspath(db_path)), "hooks.d")


def _warn(message):
    sys.stderr.write(f"kanban: warning: {message}\n")


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


def _run(path, payload, env_extra, capture_stderr):
    """Run one hook; returns (exit status or None on timeout, captured stderr)."""
    import signal
    import subprocess

    env = dict(os.environ)
    env.update({k: ("" if v is None else str(v)) for k, v in env_extra.items()})
    try:
        child = subprocess.Popen(
            [path],
            stdin=subprocess.PIPE,
            stdout=sys.stderr.fileno(),
            stderr=subprocess.PIPE if capture_stderr else sys.stderr.fileno(),
            env=env,
            start_new_session=True,  # so a timeout kills its children too
        )
    except OSError as exc:
        return 127, f"cannot run {path}: {exc}"
    try:
        _, err = child.communicate(payload, timeout=timeout_seconds())
    except subprocess.TimeoutExpired:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except OSError:
            pass
        child.communicate()
        return None, f"{path} timed out"
    err_text = (err or b"").decode("utf-8", "replace")
    if capture_stderr and err_text:
        sys.stderr.write(err_text)
    return child.returncode, err_text


def _env(event_kind, task_id, agent, db_path):
    return {
        "KANBAN_EVENT": event_kind,
        "KANBAN_TASK_ID": task_id,
        "KANBAN_AGENT": agent,
        "KANBAN_DB": db_path,
    }


def run_post(db_path, event):
    """Run the post-<verb> hooks for one committed event; return the failures."""
    verb = HOOK_FOR_EVENT.get(event["kind"])
    if verb is None:
        return []
    paths = find(hooks_dir(db_path), f"post-{verb}")
    failures = []
    for path in paths:
        payload = dumps(event).encode()
        status, err = _run(
            path, payload, _env(event["kind"], event["task"], event["actor"], db_path), False
        )
        if status != 0:
            reason = err if status is None else f"{os.path.basename(path)} exited {status}"
            failures.append({"hook": path, "event": event["id"], "reason": reason})
    return failures


def run_pre_complete(db_path, task, agent, summary):
    """Run pre-complete hooks; raise hook_rejected when one refuses."""
    paths = find(hooks_dir(db_path), "pre-complete")
    for path in paths:
        payload = dumps({"kind": "complete", "task": task, "actor": agent, "summary": summary})
        status, err = _run(
            path, payload.encode(), _env("complete", task["id"], agent, db_path), True
        )
        if status != 0:
            raise KanbanError(
                "hook_rejected",
                f"pre-complete hook {os.path.basename(path)} refused the completion"
                + (" (timed out)" if status is None else f" (exit {status})"),
                task=task["id"],
                detail=err.strip()[-4000:],
            )
