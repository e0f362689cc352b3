"""make install / uninstall (PREFIX, DESTDIR), and the installed kanban runs."""
import json
import os
import subprocess

from conftest import ROOT


def make(*args, timeout=300):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KANBAN_", "MAKE"))}
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_install_runs_from_prefix_and_uninstall_removes_it(tmp_path):
    prefix = tmp_path / "prefix"
    res = make("install", f"PREFIX={prefix}")
    assert res.returncode == 0, res.stderr
    kanban = prefix / "bin" / "kanban"
    assert kanban.is_symlink()
    for path in ("share/man/man1/kanban.1", "share/man/man1/kanban-claim.1", "share/man/man7/kanban-workflow.7",
                 "share/bash-completion/completions/kanban", "lib/kanban/schemas/task.schema.json",
                 "lib/kanban/hooks.d", "lib/kanban/kanban.mk", "lib/kanban/libexec/kanban-claim"):
        assert (prefix / path).exists(), path
    # the installed commands use the installed venv's interpreter directly, no shell in between
    assert (prefix / "lib/kanban/libexec/kanban-claim").read_text().splitlines()[0] == \
        f"#!{prefix}/lib/kanban/.venv/bin/python -E"
    board = tmp_path / "work"
    board.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    run = lambda *a: subprocess.run([str(kanban), *a], cwd=board, env=env, capture_output=True,  # noqa: E731
                                    text=True, timeout=60)
    assert json.loads(run("init").stdout)["created"] is True
    assert json.loads(run("create", "from the installed copy").stdout)["id"] == "TASK-1"
    assert run("--exec-path").stdout.strip() == str(prefix / "lib" / "kanban" / "libexec")
    assert run("--man-path").stdout.strip() == str(prefix / "share" / "man")
    assert (prefix / "share/man/man1/kanban-claim.1").is_file()
    res = make("uninstall", f"PREFIX={prefix}")
    assert res.returncode == 0, res.stderr
    assert not kanban.exists() and not (prefix / "lib" / "kanban").exists()
    assert not (prefix / "share/man/man1/kanban-claim.1").exists()


def test_destdir_stages_under_destdir_only(tmp_path):
    res = make("install", f"DESTDIR={tmp_path / 'stage'}", "PREFIX=/opt/kanban-test", "EXTRAS=postgres")
    assert res.returncode == 0, res.stderr
    staged = tmp_path / "stage" / "opt" / "kanban-test"
    # EXTRAS installs the optional parts' dependencies into the installed venv
    assert "psycopg" in (staged / "lib/kanban/requirements.txt").read_text()
    assert subprocess.run([str(staged / "lib/kanban/.venv/bin/python"), "-c", "import psycopg"],
                          capture_output=True, timeout=60).returncode == 0
    assert (staged / "bin" / "kanban").is_symlink()
    assert (staged / "lib/kanban/bin/kanban").read_text().splitlines()[0] == \
        "#!/opt/kanban-test/lib/kanban/.venv/bin/python -E"
    assert not os.path.exists("/opt/kanban-test")


FAKE_PYTHON = """#!/bin/sh
# a stand-in for python: makes a venv's shape, slowly, and installs nothing (no network)
case "$1 $2" in
  "-m venv") mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && sleep 0.3 ;;
  "-m pip") sleep 0.3 ;;
esac
exit 0
"""


def test_make_j2_clean_all_cleans_then_builds(tmp_path):
    """`make -j2 clean all` ran clean beside setup: on a checkout with a venv, setup found it
    up to date and clean then deleted it (exit 0, no venv), or clean deleted the one setup
    was building. The real Makefile in a scratch copy, with a python that makes a venv's
    shape without the network: every run ends with a whole venv, made after the clean."""
    import shutil

    for name in ("Makefile", "kanban.mk", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    fake = tmp_path / "fakepy"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KANBAN_", "MAKE"))}
    for attempt in range(3):  # the first run makes the venv; the next ones clean it first
        res = subprocess.run(["make", "--no-print-directory", "-j2", "clean", "all", f"PYTHON={fake}"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res
        assert (tmp_path / ".venv" / ".done").exists() and (tmp_path / ".venv" / "bin" / "python").exists(), \
            (attempt, res)
        lines = res.stdout.splitlines()
        assert lines[0].startswith("rm -rf .venv") and any("-m venv .venv" in line for line in lines[1:]), res.stdout
