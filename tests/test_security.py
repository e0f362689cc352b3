"""Security (issue 5): hooks without a shell, unsafe hooks refused, private boards
stay private, errors that say no more than they should, and a fixed SQLite.

The trust model (kanban(1), TRUST MODEL): the cooperating agents of one user; the
role gate and fencing tokens stop mistakes and stale writers, not a hostile local
user.  What is checked here is what that model still promises: nothing a task
carries is ever run, and nobody else's file is run with the caller's rights.
"""
import json
import os
import stat
import subprocess
import sys

import pytest
from conftest import KANBAN, ROOT, exec_path_with, run

PWNED = "pwned"
RECORDER = f"""#!{sys.executable}
# records what it was given: stdin, argv and the KANBAN_ environment
import json, os, sys
out = os.environ["HOOK_OUT"]
payload = sys.stdin.read()
with open(os.path.join(out, "calls.jsonl"), "a") as handle:
    handle.write(json.dumps({{"stdin": payload, "argv": sys.argv,
                             "env": {{k: v for k, v in os.environ.items() if k.startswith("KANBAN_")}}}}) + "\\n")
print("hook output goes to stderr")
"""


def install_hook(folder, name, text=RECORDER, mode=0o755):
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)
    path = folder / name
    path.write_text(text)
    os.chmod(path, mode)
    return path


def calls(out):
    path = out / "calls.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- hooks never pass through a shell ------------------------------------------------------------

@pytest.mark.parametrize("title", [
    f"$(touch {PWNED})", f"`touch {PWNED}`", f"; touch {PWNED}", f"| touch {PWNED}", f"&& touch {PWNED} &",
    f"'; touch {PWNED}; '", f"\"; touch {PWNED}; \"", f"$(rm -rf ./{PWNED}-safe)", "${IFS}touch${IFS}" + PWNED,
    f"\n touch {PWNED}\n", f"> {PWNED}",
])
def test_titles_reach_hooks_as_data(kb, tmp_path, title):
    out = tmp_path / "out"
    out.mkdir()
    install_hook(kb.path.parent / "hooks.d", "post-create")
    work = tmp_path / "cwd"
    work.mkdir()
    res = kb("create", title, agent=f"agent $(touch {PWNED})", env={"HOOK_OUT": out}, cwd=work)
    assert res.rc == 0, res
    assert json.loads(res.out)["title"] == title        # stdout is the answer only
    assert "hook output goes to stderr" in res.err
    assert not (work / PWNED).exists() and not (out / PWNED).exists()
    assert not any(PWNED in name for name in os.listdir(work))
    [call] = calls(out)
    event = json.loads(call["stdin"])
    assert event["kind"] == "created" and event["data"]["title"] == title
    assert call["argv"][1:] == []                        # nothing on the command line
    assert call["env"]["KANBAN_EVENT"] == "created" and call["env"]["KANBAN_TASK_ID"] == event["task"]
    assert call["env"]["KANBAN_AGENT"] == f"agent $(touch {PWNED})"


def test_hooks_folder_with_spaces_and_metacharacters(kb, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    folder = tmp_path / "my hooks; $(touch x)"
    install_hook(folder, "post-create")
    res = kb("create", "t", env={"HOOK_OUT": out, "KANBAN_HOOKS_DIR": folder})
    assert res.rc == 0 and len(calls(out)) == 1, res
    assert not (tmp_path / "x").exists()


# -- unsafe hooks are refused ----------------------------------------------------------------------

def refused_hook(kb, out, reason):
    res = kb("create", "t", env={"HOOK_OUT": out})
    assert res.rc == 0, res                              # the command itself goes on
    assert calls(out) == [], "an unsafe hook ran"
    assert "kanban: warning: hook" in res.err and reason in res.err, res.err
    return res


def test_world_writable_hooks_folder_is_refused(kb, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    folder = kb.path.parent / "hooks.d"
    install_hook(folder, "post-create")
    os.chmod(folder, 0o777)
    refused_hook(kb, out, "writable by every user")
    doctor = kb("doctor").json
    assert any("hooks refused" in f["message"] for f in doctor["findings"])
    os.chmod(folder, 0o755)                              # fixed: it runs again
    assert kb("create", "t2", env={"HOOK_OUT": out}).rc == 0 and len(calls(out)) == 1


def test_world_writable_hook_file_is_refused(kb, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    install_hook(kb.path.parent / "hooks.d", "post-create", mode=0o777)
    refused_hook(kb, out, "writable by every user")


def test_world_writable_hook_subfolder_is_refused(kb, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    sub = kb.path.parent / "hooks.d" / "post-create.d"
    install_hook(sub, "10-record")
    os.chmod(sub, 0o777)
    refused_hook(kb, out, "writable by every user")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
@pytest.mark.parametrize("what", ["file", "folder"])
def test_hook_owned_by_another_user_is_refused(kb, tmp_path, what):
    out = tmp_path / "out"
    out.mkdir()
    folder = kb.path.parent / "hooks.d"
    path = install_hook(folder, "post-create")
    os.chown(path if what == "file" else folder, 65534, 65534)
    refused_hook(kb, out, "owned by another user")


def test_sticky_shared_folder_still_checks_each_hook(kb, tmp_path):
    """A sticky world-writable folder (like /tmp) is allowed; a hook in it must still be safe."""
    out = tmp_path / "out"
    out.mkdir()
    folder = kb.path.parent / "hooks.d"
    install_hook(folder, "post-create")
    os.chmod(folder, 0o1777)
    res = kb("create", "t", env={"HOOK_OUT": out})
    assert res.rc == 0 and len(calls(out)) == 1, res
    os.chmod(folder / "post-create", 0o777)
    fresh = tmp_path / "out2"
    fresh.mkdir()
    refused_hook(kb, fresh, "writable by every user")


# -- private boards stay private --------------------------------------------------------------------

def with_umask(mask, *args, cwd, env=None):
    full = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    full.update(env or {})
    return subprocess.run([str(KANBAN), *args], cwd=cwd, env=full, capture_output=True, text=True,
                          preexec_fn=lambda: os.umask(mask), timeout=60)


@pytest.mark.parametrize("mask", [0o077, 0o027, 0o022, 0o002])
def test_board_files_respect_the_umask(tmp_path, mask):
    work = tmp_path / "w"
    work.mkdir()
    assert with_umask(mask, "init", cwd=work).returncode == 0
    db = work / ".kanban" / "board.db"
    env = {"KANBAN_DB": str(db)}
    assert with_umask(mask, "create", "t", cwd=work, env=env).returncode == 0
    assert with_umask(mask, "backup", str(work / "copy.db"), cwd=work, env=env).returncode == 0
    allowed_file, allowed_dir = 0o666 & ~mask, 0o777 & ~mask
    folder_mode = stat.S_IMODE(os.stat(work / ".kanban").st_mode)
    assert folder_mode & ~allowed_dir == 0, oct(folder_mode)
    files = [p for p in (work / ".kanban").iterdir() if p.is_file()] + [work / "copy.db"]
    assert {p.name for p in files} >= {"board.db", "board.db-wal", "board.db-shm", "copy.db"}
    for path in files:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode & ~allowed_file == 0, f"{path.name} is {oct(mode)} under umask {oct(mask)}"
    if mask == 0o077:
        assert folder_mode == 0o700
        assert {stat.S_IMODE(os.stat(p).st_mode) for p in files} == {0o600}


# -- errors say what is wrong, and no more -----------------------------------------------------------

BOOM = """#!/bin/sh
# Summary: fails on purpose, as a bug would
#
# Usage:
#   kanban boom
''''exec "$(dirname "$0")/../.venv/bin/python" "$0" "$@" # '''
from kanban.cli import main

main(__file__, handler=lambda args: {}["no such key: secret-internal-state"])
"""


def test_an_internal_error_is_one_json_line_without_traceback(tmp_path, board_path):
    libexec = exec_path_with(tmp_path / "libexec", "boom", BOOM)
    res = run("boom", env={"KANBAN_EXEC_PATH": libexec, "KANBAN_DB": board_path})
    assert res.rc == 2 and res.out == "", res
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.err
    error = json.loads(lines[0])
    assert error["code"] == "internal" and "KeyError" in error["error"]
    assert "Traceback" not in res.err and 'File "' not in res.err and str(ROOT) not in res.err
    # the traceback is there for whoever asks for it
    debug = run("boom", env={"KANBAN_EXEC_PATH": libexec, "KANBAN_DB": board_path, "KANBAN_DEBUG": "1"})
    assert "Traceback" in debug.err and json.loads(debug.err.strip().splitlines()[-1])["code"] == "internal"


def test_errors_of_every_kind_carry_no_traceback(kb):
    task = kb("create", "t").json["id"]
    claim = kb("claim", agent="w1").json
    other = kb("create", "u").json["id"]
    assert kb("dep", "add", other, task).rc == 0
    cases = {
        "usage": kb("claim", "--bogus"),
        "invalid": kb("create", "t", "--priority", "high"),
        "not_found": kb("show", "TASK-999"),
        "conflict": kb("unblock", task),
        "lease_lost": kb("complete", task, "--token", claim["lease_token"] + 5, agent="w1"),
        "cycle": kb("dep", "add", task, other),
    }
    for code, res in cases.items():
        assert res.rc == 2 and res.out == "", res
        lines = [line for line in res.err.splitlines() if line.strip()]
        assert len(lines) == 1, res.err
        error = json.loads(lines[0])
        assert error["code"] == code, (code, error)
        assert "\n" not in error["error"]
        for marker in ("Traceback", 'File "', str(ROOT / "lib"), ".py\""):
            assert marker not in res.err, (code, res.err)


# -- the SQLite in use -------------------------------------------------------------------------------

def version_tuple(text):
    return tuple(int(part) for part in text.split(".")[:3])


def test_sqlite_has_the_wal_reset_fix(kb):
    """The WAL-reset corruption bug is fixed in 3.51.3, and in 3.50.7 and 3.44.6 on older branches."""
    doctor = kb("doctor").json
    version = version_tuple(doctor["sqlite_version"])
    fixed = version >= (3, 51, 3) or (3, 50, 7) <= version < (3, 51, 0) or (3, 44, 6) <= version < (3, 45, 0)
    assert fixed, f"SQLite {doctor['sqlite_version']} has the WAL-reset bug"
    assert doctor["driver"].startswith("apsw")


def test_the_board_never_goes_through_the_stdlib_sqlite3(board_path):
    """The stdlib module may link an older SQLite (3.40 here): kanban must not load it."""
    probe = f"""
import sys
sys.path.insert(0, {str(ROOT / 'lib')!r})
from kanban import Board
with Board({str(board_path)!r}) as board:
    board.create("t")
    board.claim("w1")
    board.doctor()
    board.backup({str(board_path.parent / 'copy.db')!r})
assert "sqlite3" not in sys.modules and "_sqlite3" not in sys.modules, "the stdlib sqlite3 was loaded"
import apsw
print(apsw.sqlite_lib_version())
"""
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert version_tuple(proc.stdout.strip()) >= (3, 44, 6)


def test_trust_model_is_documented():
    page = (ROOT / "man" / "man1" / "kanban.1").read_text()
    assert ".SH TRUST MODEL" in page
    section = page.split(".SH TRUST MODEL", 1)[1].split("\n.SH ", 1)[0]
    assert "not a hostile local user" in section and "fencing token" in section


def test_token_revoke_takes_the_id_the_token_or_the_agent(kb):
    """`mcp token add AGENT|list|revoke`: revoke takes the id add printed, the token itself
    (whose secret must match: a wrong one revokes nothing), or an agent's name (all of its
    tokens, answered as list answers)."""
    first = kb("mcp", "token", "add", "alice").json
    second = kb("mcp", "token", "add", "alice").json
    bobs = kb("mcp", "token", "add", "bob").json
    wrong = kb("mcp", "token", "revoke", f"kbt_{bobs['id']}_not-the-secret")
    assert wrong.rc == 2 and json.loads(wrong.err)["code"] == "not_found" and "not-the-secret" not in wrong.err
    assert kb("mcp", "token", "list").json["tokens"][2]["active"] is True
    by_token = kb("mcp", "token", "revoke", bobs["token"])
    assert by_token.rc == 0 and (by_token.json["id"], by_token.json["active"]) == (bobs["id"], False)
    assert bobs["token"].split("_")[2] not in by_token.out + by_token.err
    assert kb("mcp", "token", "revoke", bobs["token"]).json["active"] is False  # twice is once
    by_agent = kb("mcp", "token", "revoke", "alice")
    assert by_agent.rc == 0, by_agent
    assert [(t["id"], t["active"]) for t in by_agent.json["tokens"]] == [(first["id"], False), (second["id"], False)]
    nobody = kb("mcp", "token", "revoke", "nobody")
    assert nobody.rc == 2 and json.loads(nobody.err)["code"] == "not_found"
    assert kb("mcp", "token", "revoke", str(first["id"])).json["id"] == first["id"]  # the id, as before
