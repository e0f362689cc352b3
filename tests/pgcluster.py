"""A throwaway PostgreSQL cluster of the tests' own, which they may restart and crash.

    with pgcluster.running() as cluster:
        url = cluster.url            # postgresql://postgres@127.0.0.1:PORT/postgres
        cluster.restart("fast")      # every session ended, the server back
        cluster.restart("immediate") # a crash: no shutdown checkpoint, recovery from the WAL

    python tests/pgcluster.py --check  # can one run here? (exit 1, saying why not)

The server is PostgreSQL's own initdb and pg_ctl (`find()` says where, or why not) in a
temporary folder: a free loopback port, its Unix socket in that folder, trust
authentication, small shared_buffers, fsync on (a crash restart must lose nothing that
was committed).  initdb refuses to run as root: as root, every server command runs as
the `postgres` user (runuser), in a folder that user owns.

The cluster goes away on every way out: stop() in a finally, atexit, and a watchman
process that stops it and removes its folder when its owner dies without doing so
(SIGKILLed by a test's timeout, say).  A stop that hangs is ended with SIGKILL.
"""
import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BIN_DIRS = ("/usr/local/bin", "/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin",
            "/usr/lib/postgresql/15/bin")
STOP_TIMEOUT_S = 30


class ClusterError(Exception):
    pass


def find():
    """(folder holding initdb and pg_ctl, None), or (None, why not)."""
    for folder in filter(None, [os.environ.get("KANBAN_TEST_PG_BIN"), *BIN_DIRS]):
        if all(os.access(os.path.join(folder, name), os.X_OK) for name in ("initdb", "pg_ctl")):
            break
    else:
        found = shutil.which("pg_ctl")
        if not found or not os.access(os.path.join(os.path.dirname(found), "initdb"), os.X_OK):
            return None, "no initdb and pg_ctl (PostgreSQL's server package; KANBAN_TEST_PG_BIN names their folder)"
        folder = os.path.dirname(found)
    if os.getuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return None, "running as root, and there is no `postgres` user to run initdb as"
        if not shutil.which("runuser"):
            return None, "running as root, and there is no runuser to run initdb as `postgres`"
    return folder, None


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    def __init__(self, shared_buffers="16MB", max_connections=100):
        self.bin, why = find()
        if self.bin is None:
            raise ClusterError(why)
        self.shared_buffers = shared_buffers
        self.max_connections = max_connections
        self.folder = None
        self.watchman = None
        self.port = None
        self.restarts = []  # (mode, seconds it took)

    @property
    def data(self):
        return os.path.join(self.folder, "data")

    @property
    def url(self):
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv, timeout=120):
        argv = [os.path.join(self.bin, argv[0]), *argv[1:]]
        if os.getuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=self.folder,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ClusterError(f"{argv[-1] if argv else ''}: {' '.join(argv)} took more than {timeout} s") from None
        if proc.returncode != 0:
            raise ClusterError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()[-800:]}"
                               f"\n{self.log_tail()}")
        return proc.stdout

    def log_tail(self, chars=1500):
        try:
            with open(os.path.join(self.folder, "server.log"), errors="replace") as handle:
                return handle.read()[-chars:]
        except (OSError, TypeError):
            return ""

    def start(self):
        self.folder = tempfile.mkdtemp(prefix="kanban-pgcluster-")
        if os.getuid() == 0:
            os.chmod(self.folder, 0o700)
            shutil.chown(self.folder, "postgres", None)
        self._watch()
        atexit.register(self.stop)
        self._run("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync",
                  "--locale=C")
        self.port = free_port()
        with open(os.path.join(self.data, "postgresql.conf"), "a", encoding="utf-8") as conf:
            conf.write(f"""
# a throwaway cluster of the tests (tests/pgcluster.py)
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = '{self.folder}'
shared_buffers = {self.shared_buffers}
max_connections = {self.max_connections}
fsync = on
synchronous_commit = on
full_page_writes = on
max_wal_size = 256MB
""")
        self.start_server()
        return self

    def _pg_ctl(self, verb, *extra):
        return self._run("pg_ctl", verb, "-D", self.data, "-l", os.path.join(self.folder, "server.log"), "-w",
                         "-t", "60", *extra, timeout=90)

    def restart(self, mode="fast", down=0.0):
        """pg_ctl restart -m MODE: fast ends every session and checkpoints; immediate is a
        crash (no checkpoint: the server recovers from its WAL on the way up).  With
        `down`, the server stays stopped that many seconds (clients find nobody there)."""
        started = time.monotonic()
        if down:
            self.stop_server(mode)
            time.sleep(down)
            self.start_server()
        else:
            self._pg_ctl("restart", "-m", mode)
        self.restarts.append((mode, round(time.monotonic() - started, 2)))

    def stop_server(self, mode="fast"):
        """Stop the server and keep the cluster, for start_server()."""
        self._pg_ctl("stop", "-m", mode)

    def start_server(self):
        self._pg_ctl("start")

    def postmaster(self):
        """The server's pid, or None when it is not running."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as handle:
                return int(handle.readline())
        except (OSError, ValueError, TypeError):
            return None

    def stop(self):
        """Stop the server (immediately: nothing in it is kept) and remove its folder."""
        if self.folder is None:
            return
        pid = self.postmaster()
        if pid:
            try:
                self._run("pg_ctl", "stop", "-D", self.data, "-m", "immediate", "-w", "-t", "20",
                          timeout=STOP_TIMEOUT_S)
            except ClusterError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None
        if self.watchman is not None:
            self.watchman.stdin.close()  # it finds nothing left to do
            try:
                self.watchman.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.watchman.kill()
                self.watchman.wait()
            self.watchman = None
        atexit.unregister(self.stop)

    def _watch(self):
        """A process that outlives a killed owner: it reads a pipe only we write, and on
        end of file stops whatever is left of the cluster."""
        self.watchman = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--watch", self.folder, self.bin],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


@contextlib.contextmanager
def running(**settings):
    """A started cluster, stopped and removed on the way out."""
    cluster = Cluster(**settings)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def _watchman(folder, bin_dir):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.stdin.buffer.read()  # end of file: the owner stopped the cluster, or died
    if not os.path.isdir(folder):
        return
    leftover = Cluster.__new__(Cluster)
    leftover.bin, leftover.folder, leftover.watchman = bin_dir, folder, None
    leftover.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--watch"]:
        _watchman(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["--check"]:  # make soak: can a cluster of our own run here?
        where, why = find()
        print(f"pgcluster: PostgreSQL in {where}" if where else f"pgcluster: skipped: {why}", file=sys.stderr)
        sys.exit(0 if where else 1)
