"""A PgBouncer in transaction mode in front of one schema of a Postgres server, on a free
loopback port: what the suite's pooler tests and the bench's fleet section run against.

    with pgbouncer.running(server_url, schema, pool=4) as url:
        ...  # url: postgresql://user@127.0.0.1:PORT/board

It runs the Debian `pgbouncer` binary (`find()` says where, or None) with its own
folder (config, trusted user list, log, pid), and stops it on the way out.  The schema
must exist: every server session the pooler opens sets it as the search_path, since
startup options (such as search_path) do not pass a pooler.
"""
import contextlib
import os
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


@contextlib.contextmanager
def running(server, schema, pool=4, max_clients=500):
    """Start a PgBouncer (transaction mode, at most `pool` server connections, up to
    `max_clients` clients) for `schema` on `server`; yield the board's URL through it."""
    binary = find()
    if not binary:
        raise PgBouncerError("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    host, port, dbname, user = server_parts(server)
    folder = tempfile.mkdtemp(prefix="kanban-pgbouncer-")
    listen = free_port()
    with open(os.path.join(folder, "users.txt"), "w", encoding="utf-8") as users:
        users.write(f'"{user}" ""\n')
    config = f"""[databases]
board = host={host} port={port} dbname={dbname} user={user} connect_query='SET search_path TO {schema}'
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = transaction
default_pool_size = {pool}
max_db_connections = {pool}
max_client_conn = {max_clients}
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
"""
    ini = os.path.join(folder, "pgbouncer.ini")
    with open(ini, "w", encoding="utf-8") as out:
        out.write(config)
    argv = [binary, ini]
    if os.getuid() == 0:  # PgBouncer will not run as root
        shutil.chown(folder, "postgres")
        for name in os.listdir(folder):
            shutil.chown(os.path.join(folder, name), "postgres")
        argv = [binary, "-u", "postgres", ini]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", listen)) == 0:
                    break
            if process.poll() is not None:
                raise PgBouncerError(f"pgbouncer did not start: {process.stdout.read()}")
            time.sleep(0.05)
        yield f"postgresql://{user}@127.0.0.1:{listen}/board"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)
