"""Installed as Python users install it: `python -m build` makes a wheel and an sdist,
each goes into a fresh venv outside the checkout (no lib/ on the path, as pip or pipx
would install it), and the installed `kanban` console script runs a smoke suite; then
`pip uninstall` leaves nothing behind.  The wheel must carry every file the toolkit
reads at run time (test_wheel_carries_every_run_time_file).

Installing pulls kanban's dependencies from the package index (or pip's cache), as
`make setup` does; the sdist is built by pip in its own isolated environment."""
import importlib.util
import json
import os
import pty
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
from conftest import CODES, ROOT

RUN_TIME_FOLDERS = ("libexec", "porcelain", "schemas", "man", "hooks.d")
VERSION = re.search(r'^__version__ = "([^"]+)"', (ROOT / "lib/kanban/__init__.py").read_text(), re.M).group(1)
# what the claim path must never import; installed, the console script adds nothing to it
HEAVY = {"jsonschema", "tabulate", "yaml", "psycopg", "docopt", "json", "re", "typing", "importlib.metadata",
         "pkg_resources", "importlib_metadata"}

pytestmark = pytest.mark.skipif(
    not (importlib.util.find_spec("build") and importlib.util.find_spec("hatchling")),
    reason="building the wheel needs the build and hatchling packages (the test extra: make setup)")


def checkout_files(folder):
    base = ROOT / folder
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    # the default build: the sdist, then the wheel built from that sdist (so the sdist
    # is proven complete too); no isolation: the test extra has the backend
    res = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    (wheel,), (sdist,) = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert wheel.name == f"kanban-{VERSION}-py3-none-any.whl" and sdist.name == f"kanban-{VERSION}.tar.gz"
    return {"wheel": wheel, "sdist": sdist}


def test_wheel_carries_every_run_time_file(dist):
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        infos = {info.filename: info for info in wheel.infolist()}
        entry_points = wheel.read(f"kanban-{VERSION}.dist-info/entry_points.txt").decode()
    missing = []
    for folder in RUN_TIME_FOLDERS:
        for name in checkout_files(folder):
            if f"kanban/{folder}/{name}" not in infos:
                missing.append(f"{folder}/{name}")
    for name in checkout_files("lib/kanban"):
        if f"kanban/{name}" not in infos:
            missing.append(f"lib/kanban/{name}")
    if "kanban/kanban.mk" not in infos:
        missing.append("kanban.mk")
    # the man pages also as data, for man itself (<venv>/share/man, pipx's man folder)
    for name in checkout_files("man"):
        if f"kanban-{VERSION}.data/data/share/man/{name}" not in infos:
            missing.append(f"share/man/{name}")
    assert not missing, f"the wheel lacks {missing}"
    assert not [n for n in infos if "__pycache__" in n or n.endswith(".pyc")]
    # command files and sample hooks stay executable (hooks are run directly)
    for folder in ("libexec", "porcelain", "hooks.d"):
        for name in checkout_files(folder):
            assert infos[f"kanban/{folder}/{name}"].external_attr >> 16 & 0o111, f"{folder}/{name} lost its x bit"
    assert "kanban = kanban.dispatch:console" in entry_points


def test_sdist_carries_the_tree(dist):
    with tarfile.open(dist["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    needed = [f"{folder}/{name}" for folder in (*RUN_TIME_FOLDERS, "lib/kanban") for name in checkout_files(folder)]
    needed += ["kanban.mk", "pyproject.toml", "README.md", "command-list.txt", "bin/kanban", "Makefile"]
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True)
    if tracked.returncode == 0:  # a git checkout: every tracked file but CI's own
        needed += [name for name in tracked.stdout.splitlines()
                   if not name.startswith(".ci/") and (ROOT / name).exists()]
    assert not [n for n in needed if n not in names]


def test_one_version():
    """__version__ in lib/kanban/__init__.py is the version; pyproject.toml reads it from
    there, and each man page's footer must say the same."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]', pyproject, re.M) and not re.search(r"^version =", pyproject, re.M)
    stale = [page.name for page in sorted((ROOT / "man").rglob("*.[17]"))
             if f'"kanban {VERSION}"' not in page.read_text().split("\n", 1)[0]]
    assert not stale, f"man pages whose .TH line is not kanban {VERSION}: {stale}"


def test_paths_are_computed_in_one_place():
    """Only kanban.paths climbs from a module's location to the toolkit's folders (bin/,
    libexec/, schemas/, ...): a module that does it itself finds the checkout's layout,
    which a wheel lacks.  (Files beside a module travel with the package: those are fine.)"""
    climbs = re.compile(r"__file__.*(dirname\(.*dirname\(|\.parent\.parent|\.parents\[|\.\.)"
                        r"|dirname\(\s*os\.path\.dirname\(.*__file__")
    toolkit = re.compile(r"""["'](bin|libexec|porcelain|schemas|man|hooks\.d|kanban\.mk|examples)["'/]""")
    found = []
    for module in sorted((ROOT / "lib/kanban").rglob("*.py")):
        if module.name == "paths.py" and module.parent.name == "kanban":
            continue
        text = module.read_text()
        if not toolkit.search(text):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if "__file__" in line and climbs.search(line):
                found.append(f"{module.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "use kanban.paths instead:\n" + "\n".join(found)


class Installed:
    """A venv outside the checkout with kanban installed from one built file."""

    def __init__(self, venv, work):
        self.venv, self.work = venv, work
        self.bin = venv / "bin"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("KANBAN_", "PYTHON", "VIRTUAL_ENV"))}
        self.env["PATH"] = os.pathsep.join([str(self.bin), "/usr/local/bin", "/usr/bin", "/bin"])
        self.env["XDG_CACHE_HOME"] = str(work / "cache")

    def run(self, *args, agent=None, input=None, **env):
        env = dict(self.env, **env, **({"KANBAN_AGENT": agent} if agent else {}))
        return subprocess.run([str(self.bin / "kanban"), *args], cwd=self.work, env=env, input=input,
                              capture_output=True, text=True, timeout=60)

    def json(self, *args, **kw):
        res = self.run(*args, **kw)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    def python(self, code):
        res = subprocess.run([str(self.bin / "python"), "-c", code], cwd=self.work, env=self.env,
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        return res.stdout

    def pip(self, *args):
        return subprocess.run([sys.executable, "-m", "pip", "--python", str(self.bin / "python"), *args],
                              capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module", params=["wheel", "sdist"])
def installed(request, dist, tmp_path_factory):
    top = tmp_path_factory.mktemp(f"installed-{request.param}")
    venv, work = top / "venv", top / "work"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    kit = Installed(venv, work)
    res = kit.pip("install", "-q", str(dist[request.param]))
    assert res.returncode == 0, res.stdout + res.stderr
    return kit


def site_packages(kit):
    return Path(kit.python("import sysconfig; print(sysconfig.get_path('purelib'))").strip())


def test_the_installed_kanban_runs_from_the_package_not_the_checkout(installed):
    where = installed.python("import kanban, kanban.paths as p; print(kanban.__file__); print(p.ROOT)").split()
    package = site_packages(installed) / "kanban"
    assert where == [str(package / "__init__.py"), str(package)]
    assert installed.run("--version").stdout == f"kanban {VERSION}\n"
    module = subprocess.run([str(installed.bin / "python"), "-m", "kanban", "--version"], cwd=installed.work,
                            env=installed.env, capture_output=True, text=True, timeout=60)
    assert module.stdout == f"kanban {VERSION}\n", module.stderr
    exec_path = installed.run("--exec-path").stdout.strip()
    assert exec_path == str(package / "libexec") and os.path.isfile(os.path.join(exec_path, "kanban-claim"))
    man_path = installed.run("--man-path").stdout.strip()
    assert man_path == str(package / "man")
    if shutil.which("man"):  # what a user does with it: MANPATH finds the pages
        res = subprocess.run(["man", "-w", "kanban-claim"], env=dict(installed.env, MANPATH=man_path),
                             capture_output=True, text=True, timeout=30)
        assert res.stdout.strip() == str(package / "man/man1/kanban-claim.1"), res.stderr
        # and without MANPATH: man looks beside the venv's bin/ on PATH, where pip put the pages
        env = {k: v for k, v in installed.env.items() if k != "MANPATH"}
        res = subprocess.run(["man", "-w", "kanban-claim"], env=env, capture_output=True, text=True, timeout=30)
        assert res.stdout.strip() == str(installed.venv / "share/man/man1/kanban-claim.1"), res.stderr


def test_smoke_suite_through_the_installed_command(installed):
    kb = installed
    assert kb.json("init")["created"] is True
    # a sample hook from the installed hooks.d, installed as its header says
    samples = Path(kb.run("--exec-path").stdout.strip()).parent / "hooks.d"
    (kb.work / ".kanban/hooks.d").mkdir(exist_ok=True)
    shutil.copy(samples / "post-complete.log", kb.work / ".kanban/hooks.d/post-complete")
    task = kb.json("create", "ship the wheel")
    assert task["id"] == "TASK-1"
    claim = kb.json("claim", agent="worker-1")
    assert claim["id"] == "TASK-1" and claim["lease_token"]
    done = kb.json("complete", "TASK-1", "--token", str(claim["lease_token"]), "--summary", "built", agent="worker-1")
    assert done["status"] == "done"
    log = (kb.work / ".kanban/activity.log").read_text()
    assert "TASK-1 completed by worker-1: built" in log
    board = kb.run("board")
    assert board.returncode == 0 and "ship the wheel" in board.stdout
    applied = kb.json("plan", "apply", str(ROOT / "examples/plan.yaml"))
    assert applied["created"] == 5 and kb.json("plan", "apply", str(ROOT / "examples/plan.yaml"))["created"] == 0
    doctor = kb.json("doctor")
    assert doctor["ok"] is True and doctor["kanban_version"] == VERSION
    # every verb's file is there and loads its module (porcelain files import theirs first)
    verbs = [line.split()[0][len("kanban-"):] for line in (ROOT / "command-list.txt").read_text().splitlines()
             if line.startswith("kanban-")]
    listed = {c["name"] for c in kb.json("commands")["commands"]}
    assert set(verbs) <= listed, set(verbs) - listed
    for verb in verbs:
        res = kb.run(verb, "--help")
        assert res.returncode == 0 and "Usage:" in res.stdout, (verb, res.stderr)
    help_text = kb.run("help", "claim")  # not a terminal: the usage text from the installed command file
    assert help_text.returncode == 0 and "kanban claim [ID]" in help_text.stdout
    # an error: exit 2, nothing on stdout, one JSON line with a code from the closed list
    res = kb.run("show", "TASK-99")
    assert res.returncode == 2 and res.stdout == ""
    error = json.loads(res.stderr)
    assert error["code"] == "not_found" and error["code"] in CODES
    # a part whose extra is not installed names the extra, as a usage error, every time: the
    # first call used to start the per-user Postgres helper, and every later call, through it,
    # said db_error "cannot reach the PostgreSQL server"
    for _ in range(3):
        res = kb.run("list", KANBAN_DB="postgresql://kanban@127.0.0.1:1/none")
        error = json.loads(res.stderr)
        assert res.returncode == 2 and error["code"] == "usage" and error["extra"] == "postgres", res.stderr
        assert "pip install 'kanban[postgres]'" in error["error"]
        time.sleep(0.5)  # time for a helper, had one been started, to listen
    for argv, extra in ((["serve", "--port", "0"], "web"), (["mcp"], "mcp")):  # the extras' other commands
        res = kb.run(*argv, input="")
        error = json.loads(res.stderr)
        assert res.returncode == 2 and error["code"] == "usage" and error["extra"] == extra, res.stderr


def test_help_opens_the_installed_man_page(installed):
    if not shutil.which("man"):
        pytest.skip("no man program on this machine")
    # a terminal: `kanban help claim` opens the page through man (MANPAGER=cat prints it)
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(installed.work)
        os.execve(str(installed.bin / "kanban"), ["kanban", "help", "claim"],
                  dict(installed.env, MANPAGER="cat", PAGER="cat", MANWIDTH="100"))
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    text = re.sub(r".\x08", "", out.decode("utf-8", "replace"))
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "kanban-claim" in text and "SYNOPSIS" in text, text


def test_bash_completion_works_installed(installed):
    if not shutil.which("bash"):
        pytest.skip("no bash on this machine")
    script = installed.run("completion", "bash")
    assert script.returncode == 0 and "complete -F _kanban kanban" in script.stdout
    probe = ('source <(kanban completion bash); COMP_WORDS=(kanban cla); COMP_CWORD=1; _kanban; '
             'printf "%s\\n" "${COMPREPLY[@]}"; COMP_WORDS=(kanban claim --ag); COMP_CWORD=2; _kanban; '
             'printf "%s\\n" "${COMPREPLY[@]}"')
    res = subprocess.run(["bash", "-c", probe], cwd=installed.work, env=installed.env, capture_output=True,
                         text=True, timeout=60)
    offered = res.stdout.split()
    assert "claim" in offered and "claim-next" in offered and "--agent" in offered, res


def test_the_claim_path_imports_no_heavy_module_installed(installed):
    kb = installed
    kb.json("create", "timed")
    modules = set()
    for _ in range(2):  # the second call reads the argument cache, as every later call does
        res = subprocess.run([str(kb.bin / "python"), "-X", "importtime", str(kb.bin / "kanban"), "claim"],
                             cwd=kb.work, env=dict(kb.env, KANBAN_AGENT="timer"), capture_output=True, text=True,
                             timeout=60)
        assert res.returncode in (0, 1), res.stderr
        modules = {line.split("|")[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    heavy = {m for m in modules if m in HEAVY or m.split(".")[0] in HEAVY}
    assert not heavy, f"the installed claim imported {sorted(heavy)}"
    assert "apsw" in modules and "kanban.dispatch" in modules


def test_uninstall_leaves_nothing(installed):
    site = site_packages(installed)
    res = installed.pip("uninstall", "-y", "kanban")
    assert res.returncode == 0, res.stderr
    assert not (installed.bin / "kanban").exists()
    assert not (installed.venv / "share/man/man1/kanban-claim.1").exists()
    assert not [p.name for p in site.iterdir() if p.name.lower().startswith("kanban")]
