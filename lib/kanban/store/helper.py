"""The Postgres helper: one process per user that keeps the driver imported and server
connections open, so a CLI call on a server board costs about what one on a file does.

A CLI call on a Postgres board pays ~150 ms to import psycopg and a new server session
(TCP, authentication, settings) every time.  As git's credential-cache daemon and ssh's
ControlMaster do, the first call starts a helper in the background (and goes on by
itself, directly); later calls find it on a Unix socket and send it their statements
one by one, in the order the verb runs them, over a session the helper keeps for them.
Everything else (the verb, its transaction and retries, the SQL text, the answer)
stays in the CLI process: the contract is the same whichever way a call goes.

- The socket lives in a folder only its user can enter (`$XDG_RUNTIME_DIR/kanban` or
  `/tmp/kanban-<uid>`, mode 0700, checked before use), owner-only itself, and the
  helper serves only its own user (SO_PEERCRED).  Its name is this library's: a helper
  from another kanban release is never asked.
- Each client gets a server session of its own for its whole call, as it would
  directly; a session comes back to the pool only when idle (never inside a
  transaction) and never while it LISTENs.
- A helper that dies takes its sessions with it: the server rolls back whatever was
  open, so nothing half-done is kept and no lease is held by it (a lease is a row with
  an expiry, never a session); the CLI finds no helper and connects directly.
- A session a client gave back is kept 5 s for the next call, then closed (the server's
  connections are shared); the helper exits after KANBAN_PG_HELPER_IDLE (default 5m)
  without a client; KANBAN_PG_HELPER=0
  turns it off (every call connects directly).

The wire: a 4-byte length, then a marshal'd tuple (stdlib, no JSON parser to import).
"""
import marshal
import os
import socket
import struct

from .. import paths

PROTOCOL = 3
# a session back from a client waits this long for the next one, then is closed: the
# server's connections are shared, and a helper keeps only what calls in a row reuse
KEEP_S = 5.0
KEEP_PER_BOARD = 4
KEEP_IN_ALL = 16


class RemoteError(Exception):
    """A failure the helper reports: the server's SQLSTATE (None: the session is gone)."""

    def __init__(self, message, sqlstate=None):
        super().__init__(message)
        self.sqlstate = sqlstate


def _folder():
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        return os.path.join(base, "kanban")
    return os.path.join("/tmp", f"kanban-{os.getuid()}")


def serving(runtime=None):
    """The pid of a helper serving in `runtime` (an XDG_RUNTIME_DIR; None: this user's
    folder), or None."""
    return next(_serving(runtime), None)


def _serving(runtime):
    """The pids that the sockets' lock files name, of processes alive that are helpers.
    Reads only: taking a lock to test it would turn away a helper starting."""
    folder = os.path.join(str(runtime), "kanban") if runtime is not None else _folder()
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return
    for name in names:
        if not name.endswith(".sock.lock"):
            continue
        try:
            with open(os.path.join(folder, name), encoding="ascii") as lock:
                text = lock.read().strip()
        except (OSError, ValueError):
            continue
        if not text.isdigit():
            continue
        try:
            with open(f"/proc/{text}/cmdline", "rb") as cmdline:
                if b"kanban.store.helper" not in cmdline.read():
                    continue  # gone, and its pid is another process's now
        except FileNotFoundError:
            continue
        except OSError:
            pass  # no /proc here: trust the lock file
        yield int(text)


def stop(runtime=None):
    """SIGTERM every helper serving in `runtime` (see serving); their pids."""
    import signal

    pids = list(_serving(runtime))
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return pids


def socket_path():
    """Where this library's helper listens: one per user and per installed kanban."""
    import zlib

    tag = zlib.crc32(f"{paths.PACKAGE}:{PROTOCOL}".encode()) & 0xFFFFFFFF
    return os.path.join(_folder(), f"pg-{tag:08x}.sock")


def _private(folder):
    """Is `folder` ours alone (so nobody else can plant a socket in it)?"""
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    import stat

    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def _send(sock, message):
    data = marshal.dumps(message)
    sock.sendall(struct.pack("!I", len(data)) + data)


_PLAIN = (str, int, float, bool, type(None), bytes)


def _plain(value):
    """A value as marshal carries it: subclasses of str and int as the plain type."""
    if type(value) in _PLAIN:
        return value
    for kind in (bool, int, str, float, bytes):
        if isinstance(value, kind):
            return kind(value)
    return value


def _params(params):
    if params is None:
        return None
    if isinstance(params, dict):
        return {key: _plain(value) for key, value in params.items()}
    return tuple(_plain(value) for value in params)


def _receive(sock):
    head = _exactly(sock, 4)
    if head is None:
        return None
    data = _exactly(sock, struct.unpack("!I", head)[0])
    return None if data is None else marshal.loads(data)


def _exactly(sock, size):
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(min(size - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


# -- the client side (the CLI process: no driver) -----------------------------------------

class _Column:
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


class Result:
    """A statement's answer, as much of a psycopg cursor as the Postgres store reads."""

    def __init__(self, names, rows, rowcount):
        self.description = None if names is None else [_Column(n) for n in names]
        self._rows = rows
        self.rowcount = rowcount

    def fetchall(self):
        rows, self._rows = self._rows, []
        return rows

    def fetchone(self):
        return self._rows.pop(0) if self._rows else None

    def __iter__(self):
        return iter(self.fetchall())


class _Info:
    def __init__(self, server_version, backend_pid):
        self.server_version = server_version
        self.backend_pid = backend_pid  # the key the server (or a pooler) gave the session
        self.transaction_status = 0  # idle


class Remote:
    """A server session held by the helper for this process: the calls the store makes
    on a psycopg connection, one round trip each."""

    def __init__(self, sock, server_version, backend_pid, driver):
        self.sock = sock
        self.info = _Info(server_version, backend_pid)
        self.driver = driver
        self.closed = False

    def _call(self, *message):
        if self.closed:
            raise RemoteError("the helper's session is closed")
        try:
            _send(self.sock, message)
            reply = _receive(self.sock)
        except OSError as exc:
            reply = None
            cause = exc
        else:
            cause = None
        if reply is None:  # the helper is gone, and the session with it
            self.closed = True
            self.info.transaction_status = 0
            raise RemoteError(f"the kanban helper went away{f': {cause}' if cause else ''}")
        if reply[0] == "error":
            if reply[3] == -1:  # the server ended the session
                self.close()
                self.info.transaction_status = 0
            else:
                self.info.transaction_status = reply[3]
            raise RemoteError(reply[1], reply[2])
        return reply

    def execute(self, sql, params=None):
        _, names, rows, rowcount, status = self._call("execute", str(sql), _params(params))
        self.info.transaction_status = status
        return Result(names, rows, rowcount)

    def notifications(self, timeout):
        return self._call("notifies", timeout)[1]

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass


def connect(url):
    """A session through this user's helper, or None: no helper (one is started for the
    next call), or helpers turned off.  A server's refusal is raised as RemoteError."""
    if os.environ.get("KANBAN_PG_HELPER", "1") == "0":
        return None
    path = socket_path()
    if not _private(os.path.dirname(path)):
        _start(path)
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(None)
    try:
        sock.connect(path)
        _send(sock, ("connect", PROTOCOL, url, _libpq_environment()))
        reply = _receive(sock)
    except OSError:
        sock.close()
        _start(path)
        return None
    if reply is None:
        sock.close()
        return None
    if reply[0] == "error":
        sock.close()
        raise RemoteError(reply[1], reply[2])
    return Remote(sock, reply[1], reply[3], reply[2])


def _libpq_environment():
    """The variables libpq reads (PGPASSWORD, PGSSLMODE, PGOPTIONS, ...): the helper
    connects with the caller's, not its own."""
    return {name: value for name, value in os.environ.items() if name.startswith("PG")}


def _start(path):
    """Start the helper in the background, in a session of its own; never wait for it."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("psycopg") is None:
        return  # without the postgres extra the helper could not connect: the call says which extra
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError:
        return
    if not _private(folder):
        return  # someone else's folder, or too open: no helper here
    code = f"import sys; sys.path.insert(0, {paths.LIB!r}); from kanban.store.helper import serve; serve({path!r})"
    try:
        subprocess.Popen([sys.executable, "-E", "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    except OSError:
        pass


# -- the helper itself ------------------------------------------------------------------------

def idle_seconds():
    from ..clock import parse_duration

    try:
        return parse_duration(os.environ.get("KANBAN_PG_HELPER_IDLE") or "5m", "KANBAN_PG_HELPER_IDLE") / 1000
    except Exception:  # noqa: BLE001 - a bad setting: the default
        return 300.0


class Helper:
    def __init__(self, path):
        import threading

        self.path = path
        self.lock = threading.Lock()
        self.pool = {}      # (url, environment) -> [idle psycopg connections]
        self.environment = threading.Lock()  # held while a connect reads os.environ
        self.clients = 0
        self.last_seen = None

    def serve(self):
        import fcntl
        import time

        lock = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another helper serves this socket
        os.ftruncate(lock, 0)
        os.write(lock, f"{os.getpid()}\n".encode())  # who serves it, for people and tests
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)
        try:
            listener.bind(self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        listener.listen(128)
        listener.settimeout(1.0)
        idle = idle_seconds()
        self.last_seen = time.monotonic()
        try:
            while True:
                try:
                    sock, _ = listener.accept()
                except TimeoutError:
                    self._close_stale()
                    with self.lock:
                        if self.clients == 0 and time.monotonic() - self.last_seen > idle:
                            break
                    continue
                if not self._same_user(sock):
                    sock.close()
                    continue
                import threading

                with self.lock:
                    self.clients += 1
                threading.Thread(target=self._client, args=(sock,), daemon=True).start()
        finally:
            try:
                os.unlink(self.path)  # ours: only the holder of the lock binds it
            except OSError:
                pass
            listener.close()
            os.close(lock)
            for connections in self.pool.values():
                for conn, _ in connections:
                    conn.close()

    @staticmethod
    def _same_user(sock):
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            return struct.unpack("3i", creds)[1] == os.getuid()
        except OSError:
            return False

    def _take(self, key):
        with self.lock:
            idle = self.pool.get(key) or []
            while idle:
                conn, _ = idle.pop()
                if not conn.closed:
                    return conn
        return None

    def _close_stale(self):
        import time

        now, stale = time.monotonic(), []
        with self.lock:
            for key, idle in list(self.pool.items()):
                stale += [conn for conn, since in idle if now - since > KEEP_S]
                idle[:] = [(conn, since) for conn, since in idle if now - since <= KEEP_S]
                if not idle:
                    del self.pool[key]
        for conn in stale:
            conn.close()

    def _give_back(self, key, conn, listening):
        from psycopg import pq

        if conn.closed or listening or conn.info.transaction_status != pq.TransactionStatus.IDLE:
            conn.close()  # the server rolls back whatever it held
            return
        import time

        with self.lock:
            idle = self.pool.setdefault(key, [])
            if len(idle) < KEEP_PER_BOARD and sum(len(v) for v in self.pool.values()) < KEEP_IN_ALL:
                idle.append((conn, time.monotonic()))
                return
        conn.close()

    def _connect(self, postgres, url, environment):
        """Connect as the caller would: with its libpq variables in the environment."""
        with self.environment:
            saved = {name: value for name, value in os.environ.items() if name.startswith("PG")}
            for name in saved:
                del os.environ[name]
            os.environ.update(environment)
            try:
                return postgres.connect(url)
            finally:
                for name in environment:
                    os.environ.pop(name, None)
                os.environ.update(saved)

    def _client(self, sock):
        import time

        conn, key, listening = None, None, False
        try:
            from . import postgres

            message = _receive(sock)
            if not message or message[0] != "connect" or message[1] != PROTOCOL:
                return
            _, _, url, environment = message
            key = (url, tuple(sorted(environment.items())))
            conn = self._take(key)
            if conn is None:
                try:
                    conn = self._connect(postgres, url, environment)
                except Exception as exc:  # noqa: BLE001 - the client reports it
                    _send(sock, ("error", str(exc), getattr(exc, "sqlstate", None), 0))
                    return
            _send(sock, ("ok", conn.info.server_version, postgres.driver_name(), conn.info.backend_pid))
            while True:
                message = _receive(sock)
                if message is None:
                    return
                try:
                    if message[0] == "execute":
                        cursor = conn.execute(message[1], message[2])
                        if message[1].lstrip()[:6].upper() == "LISTEN":
                            listening = True
                        names = None if cursor.description is None else [c.name for c in cursor.description]
                        rows = cursor.fetchall() if names is not None else []
                        _send(sock, ("ok", names, rows, cursor.rowcount, int(conn.info.transaction_status)))
                    elif message[0] == "notifies":
                        payloads = []
                        notes = conn.notifies(timeout=max(0.0, message[1]))
                        try:
                            for note in notes:  # the first one wakes the client, which looks again
                                payloads.append(note.payload)
                                break
                        finally:
                            notes.close()
                        _send(sock, ("ok", payloads))
                    else:
                        return
                except Exception as exc:  # noqa: BLE001 - the client decides what it means
                    status = -1 if conn.closed else int(conn.info.transaction_status)
                    _send(sock, ("error", str(exc), getattr(exc, "sqlstate", None), status))
        except OSError:
            pass
        finally:
            sock.close()
            if conn is not None:
                try:
                    self._give_back(key, conn, listening)
                except Exception:  # noqa: BLE001 - a broken session is dropped
                    conn.close()
            with self.lock:
                self.clients -= 1
                self.last_seen = time.monotonic()


def serve(path):
    """Run the helper on `path` until it has been idle for KANBAN_PG_HELPER_IDLE."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    Helper(path).serve()
