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
