"""The dispatcher and the shell contract (SPEC §1-§3): exec path, version, commands, aliases,
help, usage errors, finding the board, the environment, and errors that change nothing."""
import fcntl
import getpass
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import exec_path_with, reaped

ROOT = Path(__file__).resolve().parent.parent
KANBAN = ROOT / "bin" / "kanban"
CODES = {"usage", "invalid", "not_found", "conflict", "lease_lost", "forbidden", "cycle", "busy",
         "hook_rejected", "db_error", "internal"}
PLUMBING = ["init", "create", "claim", "lease", "event", "dep", "complete", "approve", "reject", "block",
            "unblock", "cancel", "reopen", "show", "list", "search", "comment", "set", "batch", "stats",
            "prune", "doctor", "backup"]
ALIASES = {"dispatch": "create", "claim-next": "claim", "heartbeat": "lease", "extend-lease": "lease",
           "log-progress": "event"}


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def sh(*args, cwd=None, input=None, timeout=60, **env):
    return subprocess.run([str(KANBAN), *map(str, args)], cwd=cwd, env=clean_env(**env), input=input,
                          capture_output=True, text=True, timeout=timeout)


def assert_error(res, code):
    rc = getattr(res, "rc", None)
    rc = res.returncode if rc is None else rc
    out = res.out if hasattr(res, "out") else res.stdout
    err = res.err if hasattr(res, "err") else res.stderr
    assert rc == 2, (rc, out, err)
    assert out == "", out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    doc = json.loads(lines[0])
    assert set(doc) >= {"error", "code", "retryable"}
    assert doc["code"] == code and doc["code"] in CODES, doc
    assert isinstance(doc["error"], str) and doc["error"] and "Traceback" not in err
    assert doc["retryable"] is (code == "busy")
    return doc


# -- the dispatcher itself ---------------------------------------------------------------


def test_exec_path_is_a_bare_path():
    res = sh("--exec-path")
    assert res.returncode == 0 and res.stderr == ""
    assert res.stdout == str(ROOT / "libexec") + "\n"
    folder = Path(res.stdout.strip())
    assert all((folder / f"kanban-{verb}").is_file() for verb in PLUMBING)


def test_version():
    res = sh("--version")
    assert res.returncode == 0 and res.stdout.startswith("kanban ") and res.stdout.strip() != "kanban"


def test_commands_lists_every_verb_as_json():
    res = sh("commands")
    assert res.returncode == 0
    doc = json.loads(res.stdout)
    by_name = {c["name"]: c for c in doc["commands"]}
    for verb in PLUMBING:
        assert verb in by_name, verb
        assert by_name[verb]["summary"], verb
        assert by_name[verb]["kind"] == "plumbing"
    for alias, verb in ALIASES.items():
        assert alias in by_name[verb]["aliases"]


def test_no_arguments_prints_the_verbs_and_fails():
    res = sh()
    assert res.returncode == 1 and "usage" in res.stdout.lower() and "   claim " in res.stdout
    for flag in ("-h", "--help"):
        res = sh(flag)
        assert res.returncode == 0 and res.stdout == sh().stdout


def test_unknown_verb_is_a_usage_error():
    for args in (["no-such-verb"], ["-x"], ["../bin/kanban"], ["claim/../init"]):
        assert_error(sh(*args), "usage")


def test_unknown_option_and_missing_argument_are_usage_errors(kb):
    for args in (["claim", "--frobnicate"], ["list", "--bogus=1"], ["show"], ["dep"], ["lease"],
                 ["event", "log"], ["complete", "TASK-1"], ["create", "a", "b"]):
        res = kb(*args, agent="w")
        doc = assert_error(res, "usage")
        assert "bad arguments" in doc["error"] or "usage" in doc["error"].lower() or doc["error"]


def test_verb_help_flag(kb):
    res = kb("claim", "--help")
    assert res.rc == 0 and "kanban claim" in res.out


def test_commands_help_flag_prints_its_usage():
    # `-h`/`--help` after a verb prints its usage (kanban(1)); `commands` is a verb of the dispatcher
    for flag in ("-h", "--help"):
        res = sh("commands", flag)
        assert res.returncode == 0 and res.stderr == "", res
        assert res.stdout.splitlines()[0] == "usage: kanban commands [--format=json|table]"
        assert "--format=F" in res.stdout


def test_help_verb_without_a_terminal_prints_its_page():
    res = sh("help", "claim")
    assert res.returncode == 0 and "kanban claim" in res.stdout and "--wait" in res.stdout
    res = sh("help", "heartbeat")  # an alias: the verb it stands for
    assert res.returncode == 0 and "kanban lease renew" in res.stdout
    assert_error(sh("help", "no-such-verb"), "usage")


def fake_man(tmp_path, body):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "man").write_text("#!/bin/sh\n" + body)
    (fake / "man").chmod(0o755)
    return f"{fake}:{os.environ['PATH']}"


def test_help_verb_runs_man_into_a_pipe_too(tmp_path):
    # SPEC §1: `kanban help VERB` opens `man kanban-VERB`; as `git help VERB | cat`, man runs when
    # stdout is a pipe too (it prints the page without a pager).  It printed the usage text before.
    res = sh("help", "claim", PATH=fake_man(tmp_path, 'echo "MAN PAGE OF $*"\n'))
    assert res.returncode == 0 and res.stderr == "", res
    assert res.stdout.startswith("MAN PAGE OF ") and "kanban-claim" in res.stdout, res.stdout


def test_help_verb_prints_the_usage_where_man_fails(tmp_path):
    # a man that cannot show the page (no groff, no such page): the usage text, never its error
    res = sh("help", "claim", PATH=fake_man(tmp_path, 'echo "man: no formatter" >&2\nexit 16\n'))
    assert res.returncode == 0 and res.stderr == "", res
    assert res.stdout.startswith("Usage:") and "--wait" in res.stdout


def test_help_verb_opens_the_man_page_on_a_terminal(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    record = tmp_path / "man-args"
    (fake / "man").write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > '{record}'\n")
    (fake / "man").chmod(0o755)
    primary, secondary = os.openpty()
    try:
        env = clean_env(PATH=f"{fake}:{os.environ['PATH']}")
        proc = subprocess.run([str(KANBAN), "help", "claim"], stdin=secondary, stdout=secondary,
                              stderr=secondary, env=env, timeout=30)
    finally:
        os.close(secondary)
        os.close(primary)
    assert proc.returncode == 0
    args = record.read_text().split()
    assert len(args) == 1 and Path(args[0]).name in ("kanban-claim", "kanban-claim.1")


@pytest.mark.parametrize("alias,args,check", [
    ("dispatch", ["via dispatch"], lambda d: d["title"] == "via dispatch" and d["created"] is True),
    ("claim-next", [], lambda d: d["claimed_by"] == "w1"),
])
def test_aliases_create_and_claim(kb, alias, args, check):
    if alias == "claim-next":
        kb("create", "x")
    res = kb(alias, *args, agent="w1")
    assert res.rc == 0 and check(res.json)


def test_lease_and_progress_aliases(kb):
    t = kb("create", "t", env={"KANBAN_NOW": "1900000000"}).json["id"]
    tok = kb("claim", agent="w1", env={"KANBAN_NOW": "1900000000"}).json["lease_token"]
    for alias in ("heartbeat", "extend-lease"):
        res = kb(alias, t, "--token", tok, "--lease", "1h", agent="w1", env={"KANBAN_NOW": "1900000000"})
        assert res.rc == 0 and res.json["lease_until"] == "2030-03-17T18:46:40Z"
    res = kb("log-progress", t, "--message", "hi", "--token", tok, agent="w1")
    assert res.rc == 0 and res.json["kind"] == "progress"
    assert_error(kb("heartbeat", t, "--token", tok), "usage")  # no agent


# -- finding the board ---------------------------------------------------------------------


def test_init_creates_the_board_here_and_is_idempotent(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    res = sh("init", cwd=project)
    assert res.returncode == 0
    doc = json.loads(res.stdout)
    assert doc["db"] == str(project / ".kanban" / "board.db") and doc["created"] is True
    assert isinstance(doc["schema_version"], int)
    again = json.loads(sh("init", cwd=project).stdout)
    assert again["created"] is False and again["db"] == doc["db"]


def test_init_where_a_file_is_in_the_way_of_the_folder_says_so(tmp_path):
    """A file named .kanban (or a file above KANBAN_DB's folder): db_error that names the
    folder and the file in the way; it said only 'the board cannot be used: File exists'."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / ".kanban").write_text("not a folder\n")
    doc = assert_error(sh("init", cwd=project), "db_error")
    assert doc["error"] == (f"cannot make the board's folder {project / '.kanban'}: a file of that name, "
                            "or of a folder above it, is in the way"), doc
    doc = assert_error(sh("init", KANBAN_DB=project / ".kanban" / "x" / "board.db"), "db_error")
    assert "is in the way" in doc["error"], doc
    assert (project / ".kanban").read_text() == "not a folder\n"


def test_board_found_from_a_subfolder(tmp_path):
    project = tmp_path / "proj"
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    sh("init", cwd=project)
    ceiling = str(tmp_path.parent)
    res = sh("create", "from deep inside", cwd=deep, KANBAN_CEILING_DIRECTORIES=ceiling)
    assert res.returncode == 0, res.stderr
    listed = json.loads(sh("list", cwd=project).stdout)["tasks"]
    assert [t["title"] for t in listed] == ["from deep inside"]
    # KANBAN_DB wins over the search
    other = tmp_path / "other.db"
    sh("init", KANBAN_DB=other)
    assert json.loads(sh("list", cwd=deep, KANBAN_DB=other).stdout) == {"tasks": []}


def test_ceiling_directories_stop_the_search(tmp_path):
    project = tmp_path / "proj"
    deep = project / "a" / "b"
    deep.mkdir(parents=True)
    sh("init", cwd=project)
    for ceiling in (project / "a", project, f"/nonexistent:{project / 'a'}"):
        assert_error(sh("list", cwd=deep, KANBAN_CEILING_DIRECTORIES=ceiling), "not_found")
    # a ceiling elsewhere does not matter; one above the board does not either
    res = sh("list", cwd=deep, KANBAN_CEILING_DIRECTORIES=f"{tmp_path / 'elsewhere'}:{tmp_path}")
    assert res.returncode == 0 and json.loads(res.stdout) == {"tasks": []}


def test_a_deleted_current_folder_is_said_in_plain_words(tmp_path):
    # the folder a shell sits in was removed under it: no board to find there (not_found),
    # nor to make (init); a board named by an absolute KANBAN_DB still works.  (Run by the
    # interpreter, as an installed kanban is: bin/kanban's /bin/sh line may say on its own
    # that it cannot tell the current folder.)
    gone = tmp_path / "gone"
    gone.mkdir()
    board = tmp_path / "board.db"
    assert sh("init", KANBAN_DB=board).returncode == 0

    def inside(*args, **env):
        script = 'cd "$1" && rmdir "$1" && shift && exec "$@"'
        return subprocess.run(["sh", "-c", script, "sh", str(gone), sys.executable, "-E", str(KANBAN), *args],
                              env=clean_env(**env),
                              capture_output=True, text=True, timeout=60)

    for args in (["list"], ["init"], ["create", "x"]):
        gone.mkdir(exist_ok=True)
        res = inside(*args)
        doc = assert_error(res, "not_found")
        assert "current folder" in doc["error"], doc
    gone.mkdir()
    res = inside("create", "x", KANBAN_DB=board)
    assert res.returncode == 0 and json.loads(res.stdout)["title"] == "x", res


def test_a_board_path_that_is_not_utf8_is_refused_in_plain_words(tmp_path):
    # SQLite names its files in UTF-8: a KANBAN_DB of other bytes cannot be opened or made
    named = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.db")
    for args in (["init"], ["create", "x"], ["list"]):
        doc = assert_error(sh(*args, KANBAN_DB=named), "usage")
        assert "not valid UTF-8" in doc["error"] and "caf\\xe9.db" in doc["error"], doc
    assert os.listdir(tmp_path) == []


def test_no_board_is_not_found(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    ceiling = str(tmp_path.parent)
    for args in (["list"], ["create", "x"], ["claim", "--agent", "w"], ["show", "TASK-1"]):
        assert_error(sh(*args, cwd=empty, KANBAN_CEILING_DIRECTORIES=ceiling), "not_found")
    assert not (empty / ".kanban").exists()
    assert_error(sh("list", KANBAN_DB=tmp_path / "missing.db"), "not_found")
    assert not (tmp_path / "missing.db").exists()


# -- the environment -----------------------------------------------------------------------


def test_commands_that_need_an_agent(kb):
    t = kb("create", "t").json["id"]
    tok = kb("claim", agent="w1").json["lease_token"]
    r = kb("create", "r", "--review").json["id"]
    rtok = kb("claim", r, agent="w1").json["lease_token"]
    kb("complete", r, "--token", rtok, agent="w1")
    before = (kb("list").out, kb("event", "list").out)
    for args in (["claim"], ["lease", "renew", t, "--token", tok], ["lease", "release", t, "--token", tok],
                 ["event", "log", t, "--message", "m"], ["complete", t, "--token", tok],
                 ["block", t, "--reason", "r", "--token", tok], ["approve", r],
                 ["reject", r, "--reason", "no"], ["batch", "claim", "1"]):
        assert_error(kb(*args), "usage")
    assert (kb("list").out, kb("event", "list").out) == before


def test_other_writes_record_the_login_name(kb):
    t = kb("create", "t").json["id"]
    kb("comment", t, "--message", "m")
    events = kb("event", "list").json["events"]
    assert {e["actor"] for e in events} == {getpass.getuser()}
    kb("comment", t, "--message", "m", env={"KANBAN_AGENT": "named"})
    assert kb("event", "list").json["events"][-1]["actor"] == "named"


def test_agent_option_beats_the_environment(kb):
    kb("create", "t")
    doc = kb("claim", "--agent", "opt", agent="env").json
    assert doc["claimed_by"] == "opt"


def test_kanban_role_and_lease_from_the_environment(kb):
    kb("create", "qa", "--role", "qa", env={"KANBAN_NOW": "1900000000"})
    doc = kb("claim", agent="w", env={"KANBAN_ROLE": "qa", "KANBAN_LEASE": "1h", "KANBAN_NOW": "1900000000"}).json
    assert doc["role_boundary"] == "qa" and doc["lease_until"] == "2030-03-17T18:46:40Z"


def test_kanban_now_forms(kb):
    for value in ("1900000000", "2030-03-17T17:46:40Z", "2030-03-17T17:46:40+00:00"):
        doc = kb("create", "t", env={"KANBAN_NOW": value}).json
        assert doc["created_at"] == "2030-03-17T17:46:40Z"
    assert_error(kb("create", "t", env={"KANBAN_NOW": "half past"}), "invalid")


def test_bad_durations_in_the_environment(kb):
    kb("create", "t")
    assert_error(kb("claim", agent="w", env={"KANBAN_LEASE": "-5m"}), "invalid")
    assert_error(kb("claim", agent="w", env={"KANBAN_LEASE": "forever"}), "invalid")


def test_busy_when_a_writer_holds_the_board(kb):
    kb("create", "t")
    before = (kb("list").out, kb("event", "list").out)
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
sys.path.insert(0, {str(ROOT / 'lib')!r})
import apsw
conn = apsw.Connection({str(kb.path)!r})
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE meta SET value = value WHERE key = 'lease_token'")
print("locked", flush=True)
time.sleep(30)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        res = kb("create", "blocked writer", env={"KANBAN_BUSY_TIMEOUT": "1s"}, timeout=30)
        elapsed = time.monotonic() - start
        doc = assert_error(res, "busy")
        assert doc["retryable"] is True
        assert 0.9 <= elapsed < 10
        # reads go on under WAL
        assert kb("list").rc == 0
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert (kb("list").out, kb("event", "list").out) == before
    assert kb("create", "now it works").rc == 0


def test_busy_on_the_writer_lock_file(kb):
    with open(str(kb.path) + ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        res = kb("claim", agent="w", env={"KANBAN_BUSY_TIMEOUT": "1s"}, timeout=30)
    assert_error(res, "busy")


# -- every error: exit 2, one JSON line, nothing changed -------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A board with one task in each interesting state, built once for the error table."""
    path = tmp_path_factory.mktemp("errors") / ".kanban" / "board.db"

    def k(*args, agent=None, **env):
        extra = {"KANBAN_DB": path, "KANBAN_NOW": "1900000000"}
        if agent:
            extra["KANBAN_AGENT"] = agent
        extra.update(env)
        return sh(*args, **extra)
    assert k("init").returncode == 0
    ids = {}
    ids["goal"] = json.loads(k("create", "G", "--kind", "goal").stdout)["id"]
    ids["todo"] = json.loads(k("create", "todo", "--goal", ids["goal"]).stdout)["id"]
    ids["dep"] = json.loads(k("create", "waits", "--depends-on", ids["todo"]).stdout)["id"]
    ids["held"] = json.loads(k("create", "held", "--priority", "9").stdout)["id"]
    ids["token"] = json.loads(k("claim", ids["held"], agent="w1").stdout)["lease_token"]
    ids["review"] = json.loads(k("create", "rev", "--review", "--assignee", "w1").stdout)["id"]
    rtok = json.loads(k("claim", ids["review"], agent="w1").stdout)["lease_token"]
    assert k("complete", ids["review"], "--token", rtok, agent="w1").returncode == 0
    ids["done"] = json.loads(k("create", "done").stdout)["id"]
    dtok = json.loads(k("claim", ids["done"], agent="w2").stdout)["lease_token"]
    assert k("complete", ids["done"], "--token", dtok, agent="w2").returncode == 0
    ids["assigned"] = json.loads(k("create", "mine", "--assignee", "w9").stdout)["id"]
    ids["role"] = json.loads(k("create", "qa", "--role", "qa").stdout)["id"]
    return k, ids


def error_cases(i):
    t, tok = i["held"], str(i["token"])
    return [
        (["show", "TASK-999"], "not_found", None),
        (["show", "TASK-x"], "invalid", None),
        (["create", ""], "invalid", None),
        (["create", "x", "--priority", "high"], "invalid", None),
        (["create", "x", "--depends-on", "TASK-404"], "not_found", None),
        (["create", "x", "--not-before", "tomorrowish"], "invalid", None),
        (["create", "x", "--goal", i["goal"], "--depends-on", i["goal"]], "cycle", None),
        (["claim", "--lease", "-5m"], "invalid", "w3"),
        (["claim", t], "conflict", "w3"),
        (["claim", i["dep"]], "conflict", "w3"),
        (["claim", i["assigned"]], "forbidden", "w3"),
        (["claim", i["role"]], "forbidden", "w3"),
        (["claim", i["goal"]], "conflict", "w3"),
        (["claim", "--for-review", i["todo"]], "conflict", "w3"),
        (["claim", "--for-review", i["review"]], "forbidden", "w1"),
        (["complete", i["todo"], "--token", "1"], "conflict", "w1"),
        (["complete", t, "--token", str(int(tok) + 50)], "lease_lost", "w1"),
        (["complete", t, "--token", "seven"], "invalid", "w1"),
        (["complete", t, "--token", tok], "lease_lost", "w1", {"KANBAN_NOW": "1900099999"}),
        (["lease", "renew", t, "--token", tok, "--lease", "0"], "invalid", "w1"),
        (["lease", "release", t, "--token", "999"], "lease_lost", "w1"),
        (["event", "log", t, "--message", "m", "--token", "999"], "lease_lost", "w1"),
        (["event", "list", "--since", "not-a-cursor"], "invalid", None),
        (["event", "list", "--kind", "nope"], "invalid", None),
        (["approve", i["review"]], "forbidden", "w1"),
        (["reject", i["review"], "--reason", "r"], "forbidden", "w1"),
        (["approve", i["todo"]], "conflict", "r1"),
        (["approve", i["done"]], "conflict", "r1"),
        (["block", t, "--reason", "r", "--token", "999"], "lease_lost", "w1"),
        (["block", i["done"], "--reason", "r"], "conflict", None),
        (["unblock", i["todo"]], "conflict", None),
        (["cancel", i["done"]], "conflict", None),
        (["reopen", i["todo"]], "conflict", None),
        (["dep", "add", i["todo"], i["dep"]], "cycle", None),
        (["dep", "add", i["todo"], i["goal"]], "cycle", None),
        (["dep", "add", i["todo"], "TASK-404"], "not_found", None),
        (["dep", "rm", i["dep"], t], "not_found", None),
        (["set", t, "--priority", "urgent"], "invalid", None),
        (["set", t], "usage", None),
        (["comment", t, "--message", ""], "invalid", None),
        (["list", "--status", "sleeping"], "invalid", None),
        (["list", "--limit", "-1"], "invalid", None),
        (["search"], "usage", None),
        (["batch", "complete", f"{t}:{tok}", f"{i['todo']}:1"], "conflict", "w1"),
        (["batch", "set-priority", "3", t, "TASK-404"], "not_found", None),
        (["prune", "--before", "-1d"], "invalid", None),
        (["backup"], "usage", None),
        (["frobnicate"], "usage", None),
        (["claim", "--frobnicate"], "usage", "w1"),
        (["claim"], "usage", None),
    ]


def dump(path):
    """Every row of every table, read through kanban's own library (no second SQLite)."""
    sys.path.insert(0, str(ROOT / "lib"))
    from kanban import Board

    with Board(str(path)) as board:
        def read():
            tables = [r["name"] for r in board.db.rows(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            return {t: board.db.rows(f'SELECT * FROM "{t}"') for t in tables}
        return board.db.read(read)


def test_every_error_changes_nothing(prepared):
    k, ids = prepared
    path = Path(json.loads(k("init").stdout)["db"])
    rows_before = dump(path)
    assert rows_before["tasks"] and rows_before["events"] and rows_before["meta"]
    before = (k("list").stdout, k("event", "list", "--limit", "100000").stdout,
              [k("show", ids[n]).stdout for n in ("todo", "held", "review", "done")])
    failures = []
    for case in error_cases(ids):
        args, code, agent = case[:3]
        env = case[3] if len(case) > 3 else {}
        res = k(*args, agent=agent, **env)
        try:
            assert_error(res, code)
        except AssertionError as exc:
            failures.append((args, code, res.returncode, res.stdout[:200], res.stderr[:300], str(exc)[:200]))
    assert failures == []
    after = (k("list").stdout, k("event", "list", "--limit", "100000").stdout,
             [k("show", ids[n]).stdout for n in ("todo", "held", "review", "done")])
    assert after == before
    assert dump(path) == rows_before  # no row differs, in any table


def test_closed_stdout_is_not_a_traceback(kb):
    lines = "".join(json.dumps({"title": f"task number {n}"}) + "\n" for n in range(300))
    kb("create", "--stdin", input=lines)
    proc = subprocess.run(["sh", "-c", f'"{KANBAN}" list | head -c 10 >/dev/null'], env=clean_env(KANBAN_DB=kb.path),
                          capture_output=True, text=True, timeout=30)
    assert "Traceback" not in proc.stderr



def closed_pipe_run(args, env, stderr_too=False):
    """Run kanban with stdout (and with stderr_too, stderr: `2>&1 | head`) a real pipe
    whose reader has already gone: (status, stderr)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([str(KANBAN), *args], stdout=write_end, stderr=write_end if stderr_too else
                              subprocess.PIPE, env=env, timeout=30)
    finally:
        os.close(write_end)
    return proc.returncode, (proc.stderr or b"").decode()


@pytest.mark.parametrize("args", [["show", "TASK-999"], ["no-such-verb"], ["claim"], ["list", "--bogus"]])
def test_an_error_whose_reader_is_gone_is_sigpipe_too(kb, args):
    """`kanban show TASK-999 2>&1 | head`: the error has no reader either; SIGPIPE as git,
    where it was the interpreter's own status 120 after an unwritable traceback."""
    status, _err = closed_pipe_run(args, clean_env(KANBAN_DB=kb.path), stderr_too=True)
    assert status == -13


@pytest.mark.parametrize("args", [["create", "written anyway"], ["list"], ["list", "--format", "table"],
                                  ["show", "TASK-1"], ["event", "list"], ["board"], ["board", "--format", "json"],
                                  ["--version"], ["--exec-path"], ["commands"], ["help", "create"]])
def test_a_reader_gone_is_sigpipe_as_git(kb, args):
    """A reader that left before the answer: killed by SIGPIPE (141 in a shell), quietly, as
    git is; never exit 2 with an error, which would say the command failed."""
    kb("create", "first")
    status, err = closed_pipe_run(args, clean_env(KANBAN_DB=kb.path))
    assert status == -13, (status, err)
    assert err == ""
    titles = [t["title"] for t in kb("list").json["tasks"]]
    assert ("written anyway" in titles) is (args[0] == "create")  # the write committed


def test_an_idle_follow_ends_when_its_reader_goes(kb):
    """--follow with nothing new to write still notices its reader left (on Linux), instead
    of waiting for ever, a board connection open, for an event nobody will read."""
    kb("create", "one")
    read_end, write_end = os.pipe()
    proc = subprocess.Popen([str(KANBAN), "event", "list", "--follow"], stdout=write_end, stderr=subprocess.PIPE,
                            env=clean_env(KANBAN_DB=kb.path))
    os.close(write_end)
    with reaped(proc):
        with os.fdopen(read_end, "rb") as reader:
            assert json.loads(reader.readline())["kind"] == "created"
        assert proc.wait(timeout=10) == -13
        assert proc.stderr.read() == b""


def test_a_worker_loop_whose_reader_is_gone_goes_on_with_its_tasks(kb):
    """work holds leases: a closed stdout drops CMD's output, not the tasks, and the loop
    ends 0 (what was left in its buffer must not end it by SIGPIPE at the last flush)."""
    for _ in range(6):  # the leftover buffer is a race: a few loops to meet it
        task = kb("create", "loud").json["id"]
        status, err = closed_pipe_run(["work", "--agent", "w1", "--once", "--", "sh", "-c", "seq 100000"],
                                      clean_env(KANBAN_DB=kb.path))
        assert status == 0, err
        assert kb("show", task).json["status"] == "done"
    # `2>&1 | head`: its progress lines have no reader either; the loop still works every task
    tasks = [kb("create", f"quiet {n}").json["id"] for n in range(3)]
    status, _err = closed_pipe_run(["work", "--agent", "w1", "--", "sh", "-c", "seq 1000; seq 1000 >&2"],
                                   clean_env(KANBAN_DB=kb.path), stderr_too=True)
    assert status == 0
    assert {kb("show", task).json["status"] for task in tasks} == {"done"}


def test_head_closing_early_is_141_for_plumbing_and_porcelain(kb):
    # answers larger than a pipe's buffer (64 KiB), so the reader is gone before the end
    lines = "".join(json.dumps({"title": f"task number {n} " + "x" * 60}) + "\n" for n in range(1000))
    kb("create", "--stdin", input=lines)
    script = (f'set -o pipefail; "{KANBAN}" list | head -c 10 >/dev/null; echo list=$?; '
              f'"{KANBAN}" board --all | head -n 1 >/dev/null; echo board=$?; '
              f'{{ sleep 1; "{KANBAN}" create late; }} | head -c 0; echo create=$?')
    proc = subprocess.run(["bash", "-c", script], env=clean_env(KANBAN_DB=kb.path), capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout.split() == ["list=141", "board=141", "create=141"], proc
    assert proc.stderr == ""
    assert kb("list", "--status", "todo", "--limit", "2000").out.count('"late"') == 1


def test_follow_ends_by_sigpipe_when_its_reader_goes(kb):
    kb("create", "one")
    read_end, write_end = os.pipe()
    proc = subprocess.Popen([str(KANBAN), "event", "list", "--follow"], stdout=write_end, stderr=subprocess.PIPE,
                            env=clean_env(KANBAN_DB=kb.path))
    os.close(write_end)
    with reaped(proc):
        with os.fdopen(read_end, "rb") as reader:
            assert json.loads(reader.readline())["kind"] == "created"
        kb("create", "two")  # something new to stream, to nobody
        assert proc.wait(timeout=30) == -13
        assert proc.stderr.read() == b""


LATE = """#!/bin/sh
# Summary: leaves work for the end of the process, as a porcelain verb may
#
# Usage:
#   kanban late MARK
''''exec "$(dirname "$0")/../.venv/bin/python" "$0" "$@" # '''
import atexit, sys, threading, time
from kanban.cli import main


def late(args):
    mark = args["MARK"]
    if mark.endswith("atexit"):
        atexit.register(lambda: open(mark, "w").write("atexit ran"))
    else:
        threading.Thread(target=lambda: (time.sleep(0.3), open(mark, "w").write("thread ran"))).start()
    sys.stdout.write("answer, buffered\\n")
    return 3


main(__file__, handler=late)
"""


@pytest.mark.parametrize("what", ["atexit", "thread"])
def test_the_fast_exit_leaves_nothing_undone(tmp_path, what):
    # bin/kanban ends the process with os._exit once the verb is done (no teardown): only
    # when no atexit function, thread, tracer or profiler is left to run
    libexec = exec_path_with(tmp_path / "libexec", "late", LATE)
    mark = tmp_path / f"mark-{what}"
    res = sh("late", mark, KANBAN_EXEC_PATH=libexec)
    assert (res.returncode, res.stdout, res.stderr) == (3, "answer, buffered\n", "")
    assert mark.read_text() == f"{what} ran"


def test_a_bad_kanban_now_names_only_the_forms_it_takes(kb):
    # KANBAN_NOW is the clock itself: ISO-8601 or epoch seconds, never '+10m' (relative to
    # what?), so its error must not offer that form, and '+10m' itself is refused
    for value in ("half past", "+10m"):
        doc = assert_error(kb("create", "t", env={"KANBAN_NOW": value}), "invalid")
        assert doc["error"] == f"bad KANBAN_NOW {value!r}: use ISO-8601 or epoch seconds", doc
    # a time typed in still offers the relative form, which it takes
    doc = assert_error(kb("create", "t", "--not-before", "tomorrow"), "invalid")
    assert doc["error"] == "bad not_before 'tomorrow': use ISO-8601, epoch seconds or +10m"


def test_an_exec_path_with_odd_files_gives_answers_not_tracebacks(tmp_path):
    # a command in any language runs by exec, bytes that are not UTF-8 and all (a script
    # written in Latin-1, a compiled program); a folder named kanban-* is no command; a
    # file that cannot be run is one JSON error
    libexec = exec_path_with(tmp_path / "libexec", "latin", "")
    (libexec / "kanban-latin").write_bytes(b"#!/bin/sh\n# Summary: caf\xe9\necho ran \"$@\"\n")
    (libexec / "kanban-folder").mkdir()
    (libexec / "kanban-stuck").write_text("#!/bin/sh\necho never\n")
    (libexec / "kanban-stuck").chmod(0o644)
    res = sh("latin", "a", "b", KANBAN_EXEC_PATH=libexec)
    assert (res.returncode, res.stdout, res.stderr) == (0, "ran a b\n", "")
    listed = sh("commands", KANBAN_EXEC_PATH=libexec)
    assert listed.returncode == 0 and listed.stderr == "", listed
    names = {c["name"]: c for c in json.loads(listed.stdout)["commands"] if c["kind"] == "plumbing"}
    assert set(names) == {"latin", "stuck"}
    # a command with no `# Summary:` line (stuck) is still listed with one, so the answer
    # keeps to its schema (a summary is never empty)
    from test_schemas import validate

    validate("kanban-commands", json.loads(listed.stdout))
    assert names["stuck"]["summary"] == "(no summary: no readable '# Summary:' line)"
    for args in (["--help"], ["help"], ["help", "latin"], ["commands", "--format", "table"]):
        res = sh(*args, KANBAN_EXEC_PATH=libexec)
        assert res.returncode == 0 and res.stderr == "", (args, res)
    for verb in ("folder", "latn"):
        assert_error(sh(verb, KANBAN_EXEC_PATH=libexec), "usage")
    doc = assert_error(sh("stuck", KANBAN_EXEC_PATH=libexec), "internal")
    assert doc["error"].startswith("cannot run kanban-stuck: "), doc
