"""Faults (issue 5): what the disk and the world do to a board.

A read-only database file or folder, a full disk (a small tmpfs, and a file size
limit), a corrupt or truncated database, a WAL left behind by a SIGKILLed writer, a
board from an older schema (it migrates) and from a newer one (refused, untouched),
a board locked by another writer (busy), and the network-filesystem detection of
`doctor`.  Each gives a clear `db_error` (or `busy`), never a traceback, and loses
nothing that was committed.

Boards are read through kanban (the CLI or Board); apsw, the driver kanban itself
uses, builds the old and new schema boards - never the stdlib sqlite3 module.
"""
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

import apsw
import pytest
from conftest import KANBAN, ROOT, run

from kanban import Board
from kanban.store import SCHEMA_VERSION
from kanban.store.sqlite import MIGRATIONS, NETWORK_FILESYSTEMS, filesystem

TRACE_MARKERS = ("Traceback", 'File "', str(ROOT / "lib"))


def db_error(res, *words):
    """Exit 2, nothing on stdout, a db_error whose message says what is wrong."""
    assert res.rc == 2, res
    assert res.out == "", res
    for marker in TRACE_MARKERS:
        assert marker not in res.err, res
    error = res.error
    assert error["code"] == "db_error", error
    assert error["retryable"] is False
    if words:
        assert any(word in error["error"] for word in words), error
    return error


def digest(path):
    h = hashlib.sha256()
    for name in (str(path), str(path) + "-wal"):
        if os.path.exists(name):
            with open(name, "rb") as handle:
                h.update(handle.read())
    return h.hexdigest()


def titles(kb):
    res = kb("list")
    assert res.rc == 0, res
    return sorted(t["title"] for t in res.json["tasks"])


def fill(kb, count, body_size=0, prefix="task"):
    lines = "".join(json.dumps({"title": f"{prefix} {i}", "body": "b" * body_size}) + "\n" for i in range(count))
    return kb("create", "--stdin", input=lines)


@contextmanager
def tmpfs(folder, size, options=""):
    """A small tmpfs at `folder` (root only); skip the test where mounting is not allowed."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN) and mount(8)")
    os.makedirs(folder, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755{options}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or 'mount failed'}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def remount(folder, mode):
    proc = subprocess.run(["mount", "-o", f"remount,{mode}", str(folder)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def board_at(path):
    def runner(*args, env=None, input=None, agent=None):
        merged = {"KANBAN_DB": path}
        if agent:
            merged["KANBAN_AGENT"] = agent
        merged.update(env or {})
        return run(*args, env=merged, input=input)
    runner.path = path
    return runner


# -- read-only ---------------------------------------------------------------------------------

def unprivileged(kb, *args, agent=None):
    """Run kanban without the root powers that ignore file modes (as any user would be)."""
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("root ignores file modes and setpriv(1) is missing to drop that power")
        prefix = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env["KANBAN_DB"] = str(kb.path)
    if agent:
        env["KANBAN_AGENT"] = agent
    proc = subprocess.run(prefix + [str(KANBAN), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=60)

    class Res:
        rc, out, err = proc.returncode, proc.stdout, proc.stderr

        @property
        def json(self):
            return json.loads(self.out)

        @property
        def error(self):
            return json.loads([line for line in self.err.splitlines() if line.startswith("{")][-1])

        def __repr__(self):
            return f"Res(rc={self.rc}, out={self.out[:200]!r}, err={self.err[-500:]!r})"
    return Res()


def test_read_only_database_file(kb):
    assert fill(kb, 3).rc == 0
    claim = kb("claim", agent="w1").json
    os.chmod(kb.path, 0o444)
    try:
        listed = unprivileged(kb, "list")
        assert listed.rc == 0 and len(listed.json["tasks"]) == 3, listed  # reading still works
        db_error(unprivileged(kb, "create", "new"), "read-only")
        db_error(unprivileged(kb, "complete", claim["id"], "--token", claim["lease_token"], agent="w1"), "read-only")
        db_error(unprivileged(kb, "claim", agent="w2"), "read-only")
    finally:
        os.chmod(kb.path, 0o644)
    # nothing half-done: the claim still holds, and completes now
    assert titles(kb) == ["task 0", "task 1", "task 2"]
    done = kb("complete", claim["id"], "--token", claim["lease_token"], agent="w1")
    assert done.rc == 0 and done.json["status"] == "done"


def test_read_only_folder(tmp_path):
    with tmpfs(tmp_path / "ro", "8m") as folder:
        kb = board_at(folder / ".kanban" / "board.db")
        assert kb("init").rc == 0 and fill(kb, 4).rc == 0
        claim = kb("claim", agent="w1").json
        before = titles(kb)
        remount(folder, "ro")
        assert titles(kb) == before                                   # reads work
        assert kb("show", claim["id"]).json["claimed_by"] == "w1"
        assert kb("doctor").json["integrity"] == ["ok"]
        db_error(kb("create", "new"), "read-only")
        db_error(kb("complete", claim["id"], "--token", claim["lease_token"], agent="w1"), "read-only")
        assert kb("lease", "reap").json == {"expired": []}               # nothing to write: fine
        db_error(kb("lease", "reap", env={"KANBAN_NOW": int(time.time()) + 86400}), "read-only")
        assert kb("init").json["created"] is False                    # idempotent, and writes nothing
        elsewhere = board_at(folder / "new" / "board.db")
        db_error(elsewhere("init"), "cannot")                         # a new board cannot be made there
        remount(folder, "rw")
        assert titles(kb) == before
        assert kb("complete", claim["id"], "--token", claim["lease_token"], agent="w1").rc == 0


# -- a full disk -----------------------------------------------------------------------------------

def test_full_disk(tmp_path):
    with tmpfs(tmp_path / "small", "3m") as folder:
        kb = board_at(folder / ".kanban" / "board.db")
        assert kb("init").rc == 0
        assert fill(kb, 5, prefix="early").rc == 0
        filler = folder / "filler"
        with open(filler, "wb") as handle:  # take every free byte
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError:
                pass
        committed, failure = 5, None
        for attempt in range(40):
            res = fill(kb, 1, body_size=30_000, prefix=f"late-{attempt}")
            if res.rc == 0:
                committed += 1
                continue
            failure = res
            break
        assert failure is not None, "the disk never filled up"
        db_error(failure, "disk is full", "I/O error")
        assert len(titles(kb)) == committed                          # reads still work, nothing lost
        assert kb("doctor").json["integrity"] == ["ok"]
        os.remove(filler)
        assert kb("create", "after the disk was freed").rc == 0       # and it recovers
        assert len(titles(kb)) == committed + 1
        assert kb("doctor").json["integrity"] == ["ok"]


def test_file_size_limit(kb):
    """RLIMIT_FSIZE: the write fails with EFBIG (Python ignores SIGXFSZ)."""
    assert fill(kb, 3).rc == 0
    wal = os.path.getsize(str(kb.path) + "-wal")
    limit = max(os.path.getsize(kb.path), wal) + 4096

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env["KANBAN_DB"] = str(kb.path)
    line = json.dumps({"title": "too big", "body": "x" * 200_000}) + "\n"
    proc = subprocess.run([str(KANBAN), "create", "--stdin"], input=line, capture_output=True, text=True, env=env,
                          preexec_fn=small_files, timeout=60)

    class Res:
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
        error = json.loads(proc.stderr.strip().splitlines()[-1]) if proc.stderr.strip() else {}
    db_error(Res(), "I/O error", "disk is full")
    assert titles(kb) == ["task 0", "task 1", "task 2"]
    assert kb("create", "fine again").rc == 0
    assert kb("doctor").json["integrity"] == ["ok"]


# -- corruption --------------------------------------------------------------------------------------

def checkpoint(path):
    with Board(str(path)) as board:
        board.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def corrupt(path, how):
    size = os.path.getsize(path)
    rng = random.Random(5)
    with open(path, "r+b") as handle:
        if how == "garbage pages":
            handle.seek(4096)
            handle.write(bytes(rng.randrange(256) for _ in range(size - 4096)))
        elif how == "zeroed pages":
            handle.seek(size // 3)
            handle.write(b"\0" * (size // 3))
        elif how == "header":
            handle.write(bytes(rng.randrange(256) for _ in range(100)))
        elif how == "truncated":
            handle.truncate(size * 2 // 5 + 123)  # not even on a page boundary


@pytest.mark.parametrize("how", ["garbage pages", "zeroed pages", "header", "truncated"])
def test_corrupt_database(kb, how):
    assert fill(kb, 400, body_size=200).rc == 0
    checkpoint(kb.path)
    corrupt(kb.path, how)
    words = ("corrupt", "not a SQLite database", "not a kanban board", "malformed")
    listed = kb("list")
    db_error(listed, *words)
    for args in (["create", "x"], ["claim", "--agent", "w1"], ["search", "task"]):
        db_error(kb(*args), *words)
    doctor = kb("doctor", "--exit-code")
    if doctor.rc == 2:
        db_error(doctor, *words)
    else:  # it could read enough to say what is wrong: not ok, and exit 1 under --exit-code
        assert doctor.rc == 1 and doctor.json["ok"] is False and doctor.json["integrity"] != ["ok"], doctor


def test_empty_file_is_not_a_board(kb):
    with open(kb.path, "wb"):
        pass
    os.remove(str(kb.path) + "-wal")
    res = kb("list")
    assert res.rc == 2 and res.out == "" and res.error["code"] in ("not_found", "db_error"), res
    assert "not a kanban board" in res.error["error"]


# -- a WAL left by a killed writer ------------------------------------------------------------------

WRITER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from kanban import Board
board = Board(sys.argv[1])
for i in range(20):
    board.create(f"committed {sys.argv[3]}-{i}")
print("go", flush=True)
n = 0
while True:  # big transactions, one after another, until killed in the middle of one
    board.create_many([{"title": f"batch {sys.argv[3]}-{n} task {i}", "body": "x" * 300} for i in range(2000)])
    n += 1
"""


def test_wal_left_by_a_killed_writer(kb, tmp_path):
    for round_number in range(3):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(kb.path), str(ROOT / "lib"), str(round_number)],
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "go"
        time.sleep(random.uniform(0.05, 0.6))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert os.path.getsize(str(kb.path) + "-wal") > 0, "the killed writer left no WAL"
        # a copy of what the crash left (database and WAL, no shared memory) reads the same
        copy = tmp_path / f"copy{round_number}"
        copy.mkdir()
        shutil.copy(kb.path, copy / "board.db")
        shutil.copy(str(kb.path) + "-wal", copy / "board.db-wal")
        for board in (kb, board_at(copy / "board.db")):
            names = titles(board)
            committed = [n for n in names if n.startswith("committed")]
            batches = {}
            for name in names:
                if name.startswith("batch"):
                    batches[name.split()[1]] = batches.get(name.split()[1], 0) + 1
            assert len(committed) == 20 * (round_number + 1)          # committed data survives
            assert all(count == 2000 for count in batches.values()), batches  # whole transactions or nothing
            assert board("doctor").json["integrity"] == ["ok"]
        assert kb("create", f"after crash {round_number}").rc == 0


# -- schema versions ----------------------------------------------------------------------------------

def test_older_schema_migrates(tmp_path):
    path = tmp_path / ".kanban" / "board.db"
    path.parent.mkdir()
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(MIGRATIONS[0])
    conn.execute("PRAGMA user_version=1")
    conn.execute("INSERT INTO tasks(title, body, created_at, updated_at) VALUES ('legacy task', 'from v1', 1, 1)")
    conn.execute("INSERT INTO events(task_id, kind, actor, at, data) VALUES (1, 'created', 'old', 1, '{}')")
    conn.close()
    kb = board_at(path)
    listed = kb("list")
    assert listed.rc == 0 and [t["title"] for t in listed.json["tasks"]] == ["legacy task"]
    doctor = kb("doctor").json
    assert doctor["schema_version"] == SCHEMA_VERSION == doctor["schema_expected"]
    assert doctor["integrity"] == ["ok"] and doctor["ok"] is True
    found = kb("search", "legacy")                                   # the v2 full-text index has it
    assert found.rc == 0 and [t["id"] for t in found.json["tasks"]] == ["TASK-1"]
    claim = kb("claim", agent="w1").json
    assert kb("complete", claim["id"], "--token", claim["lease_token"], agent="w1").json["status"] == "done"
    # migrated once: opening a current board writes nothing
    before = digest(path)
    assert kb("list").rc == 0 and kb("show", "TASK-1").rc == 0
    assert digest(path) == before


def test_newer_schema_is_refused_and_untouched(kb):
    assert fill(kb, 2).rc == 0
    with Board(str(kb.path)) as board:
        board.db.execute("PRAGMA user_version=99")
    before = digest(kb.path)
    for args in (["list"], ["create", "x"], ["claim", "--agent", "w1"], ["doctor"], ["init"]):
        error = db_error(kb(*args), "newer")
        assert "99" in error["error"] and "upgrade" in error["error"]
    assert digest(kb.path) == before


# -- busy ------------------------------------------------------------------------------------------------

def test_a_board_locked_past_the_busy_timeout_is_busy(kb):
    assert kb("create", "t").rc == 0
    before = digest(kb.path)
    with Board(str(kb.path)) as holder:  # another writer holds the database in a transaction
        holder.db.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        res = kb("create", "blocked", env={"KANBAN_BUSY_TIMEOUT": "1s"})
        waited = time.monotonic() - started
        holder.db.execute("ROLLBACK")
    assert res.rc == 2 and res.out == "" and res.error["code"] == "busy" and res.error["retryable"] is True, res
    assert 0.9 <= waited < 10
    assert digest(kb.path) == before
    assert kb("create", "free again").rc == 0


# -- network filesystems -------------------------------------------------------------------------------

MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
tmpfs /tmp tmpfs rw 0 0
server:/export /mnt/nfs nfs4 rw,vers=4.2 0 0
//nas/share /mnt/my\\040share cifs rw 0 0
alice@host:/ /mnt/ssh fuse.sshfs rw 0 0
server:/export/sub /mnt/nfs/local ext4 rw 0 0
"""


@pytest.mark.parametrize("path, kind", [
    ("/mnt/nfs/team/.kanban/board.db", "nfs4"),
    ("/mnt/my share/.kanban/board.db", "cifs"),      # \040 in /proc/mounts is a space
    ("/mnt/ssh/board.db", "fuse.sshfs"),
    ("/mnt/nfs/local/board.db", "ext4"),             # the deepest mount wins
    ("/mnt/nfsother/board.db", "ext4"),              # a prefix of a name is not a parent folder
    ("/tmp/board.db", "tmpfs"),
    ("/home/me/board.db", "ext4"),
])
def test_filesystem_detection(tmp_path, path, kind):
    mounts = tmp_path / "mounts"
    mounts.write_text(MOUNTS)
    assert filesystem(path, str(mounts)) == kind
    assert (kind in NETWORK_FILESYSTEMS) == (kind in ("nfs4", "cifs", "fuse.sshfs"))


def test_doctor_names_thefilesystem(tmp_path):
    with tmpfs(tmp_path / "fs", "4m") as folder:
        kb = board_at(folder / "board.db")
        assert kb("init").rc == 0
        doctor = kb("doctor").json
        assert doctor["filesystem"] == "tmpfs"
        assert not any("network" in f["message"] for f in doctor["findings"])


def test_unreadable_mounts_table_is_no_error(tmp_path):
    assert filesystem(str(tmp_path / "board.db"), str(tmp_path / "no-such-mounts")) is None


def test_tempfile_module_is_not_a_board():
    """A file that is not SQLite at all is refused as such, not as a crash."""
    with tempfile.NamedTemporaryFile("w", suffix=".db", delete=False) as handle:
        handle.write("just some text, certainly not a database\n" * 200)
    try:
        db_error(run("list", env={"KANBAN_DB": handle.name}), "not a SQLite database", "not a kanban board")
    finally:
        os.remove(handle.name)


def test_init_leaves_a_foreign_sqlite_database_alone(tmp_path):
    """KANBAN_DB pointing at somebody else's SQLite file: `init` must not add tables or switch it to WAL."""
    path = tmp_path / "notes.db"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE notes(body TEXT); INSERT INTO notes VALUES ('keep me')")
    conn.close()
    before = digest(path)
    res = run("init", env={"KANBAN_DB": path})
    assert res.rc == 2 and res.error["code"] == "db_error", res
    assert digest(path) == before
