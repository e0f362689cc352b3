"""A PgBouncer in transaction mode in front of one schema of a Postgres server, on a free
loopback port: what the suite's pooler tests and the bench's fleet section run against.

    with pgbouncer.running(server_url, schema, pool=4) as url:
        ...  # url: postgresql://user@127.0.0.1:PORT/board
    with pgbouncer.started(server_url, schema, pool=4) as bouncer:
        ...  # bouncer.url, bouncer.logins(), bouncer.show("POOLS")

It runs the Debian `pgbouncer` binary (`find()` says where, or None) with its own
folder (config, trusted user list, log, pid), and stops it on the way out.  The schema
must exist: every server session the pooler opens sets it as the search_path, since
startup options (such as search_path) do not pass a pooler.

PgBouncer's own output goes to a file, never to a pipe: a pipe nobody reads fills up
(64 KiB of log lines, a few hundred connections) and PgBouncer, blocked writing to it,
stops serving everyone.
"""
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from urllib.parse import urlsplit


class PgBouncerError(Exception):
    pass


def find():
    """The pgbouncer executable, or None when it is not installed."""
    return shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_parts(server):
    """(host, port, database, user) of a postgresql:// URL."""
    parts = urlsplit(server)
    return (parts.hostname or "127.0.0.1", parts.port or 5432, parts.path.lstrip("/") or "postgres",
            parts.username or "postgres")


class Bouncer:
    """A running PgBouncer: the board's URL through it, its log, its admin console."""

    def __init__(self, url, admin_url, log):
        self.url, self.admin_url, self.log = url, admin_url, log

    def logins(self):
        """How many client connections to the board's database PgBouncer has logged
        (each new client connection is one `login attempt` line, log_connections)."""
        with open(self.log, encoding="utf-8", errors="replace") as text:
            return sum(1 for line in text if re.search(r" board/\S+ login attempt:", line))

    def refusals(self):
        """How many client connections PgBouncer refused before login (a startup
        parameter it does not accept, such as `options`)."""
        with open(self.log, encoding="utf-8", errors="replace") as text:
            return sum(1 for line in text if "closing because: unsupported startup parameter" in line)

    def show(self, what):
        """The rows of the admin console's SHOW <what> (POOLS, CLIENTS, SERVERS, STATS)
        as dicts."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as conn:
            cursor = conn.execute(f"SHOW {what}")
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@contextlib.contextmanager
def started(server, schema, pool=4, max_clients=500):
    """Start a PgBouncer (transaction mode, at most `pool` server connections, up to
    `max_clients` clients) for `schema` on `server`; yield it as a Bouncer."""
    binary = find()
    if not binary:
        raise PgBouncerError("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    host, port, dbname, user = server_parts(server)
    folder = tempfile.mkdtemp(prefix="kanban-pgbouncer-")
    listen = free_port()
    with open(os.path.join(folder, "users.txt"), "w", encoding="utf-8") as users:
        users.write(f'"{user}" ""\n')
    # The settings a fleet needs (man kanban-workflow(7), A FLEET ON POSTGRES): transaction
    # pooling; the board's schema set on each server connection (connect_query), as no
    # startup option passes; a pool far below the clients, and a client limit above them;
    # after a failed login to the server (a restart) clients are refused for
    # server_login_retry (pgbouncer.ini(5); default 15 s): kept well below KANBAN_BUSY_TIMEOUT.
    config = f"""[databases]
board = host={host} port={port} dbname={dbname} user={user} connect_query='SET search_path TO {schema}'
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
listen_backlog = {max(128, max_clients)}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
admin_users = {user}
pool_mode = transaction
default_pool_size = {pool}
max_db_connections = {pool}
max_client_conn = {max_clients}
server_login_retry = 1
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
"""
    ini = os.path.join(folder, "pgbouncer.ini")
    with open(ini, "w", encoding="utf-8") as out:
        out.write(config)
    argv = [binary, "-q", ini]  # -q: nothing on stderr, the log file has it all
    if os.getuid() == 0:  # PgBouncer will not run as root
        shutil.chown(folder, "postgres")
        for name in os.listdir(folder):
            shutil.chown(os.path.join(folder, name), "postgres")
        argv = [binary, "-q", "-u", "postgres", ini]
    output_path = os.path.join(folder, "output.txt")
    with open(output_path, "wb") as output:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", listen)) == 0:
                    break
            if process.poll() is not None:
                log = _tail(os.path.join(folder, "pgbouncer.log"))
                raise PgBouncerError(f"pgbouncer did not start: {_tail(output_path)} {log}")
            time.sleep(0.05)
        yield Bouncer(f"postgresql://{user}@127.0.0.1:{listen}/board",
                      f"postgresql://{user}@127.0.0.1:{listen}/pgbouncer", os.path.join(folder, "pgbouncer.log"))
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _tail(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as text:
            return text.read()[-2000:].strip()
    except OSError:
        return ""


@contextlib.contextmanager
def running(server, schema, pool=4, max_clients=500):
    """As started(), yielding the board's URL through the PgBouncer only."""
    with started(server, schema, pool=pool, max_clients=max_clients) as bouncer:
        yield bouncer.url
