"""Storage behind one interface: where a board lives, and what every backend offers.

A board is a SQLite file (store/sqlite.py) or a schema on a PostgreSQL server
(store/postgres.py).  `Store` is the whole of what board.py may ask of either; each
backend implements all of it.  `locate()` is the one place a location (KANBAN_DB, a
path, a `file:` or `sqlite:` URI, a `postgresql://` URL) picks its backend, and
`open_store()` opens it.  Nothing here imports a driver: apsw is imported with the
SQLite backend, psycopg with the Postgres one, and only when a board needs it.
"""
import os
from abc import ABC, abstractmethod

from ..errors import KanbanError, usage

# The schema's version, the same on both backends: version n means the same tables.
SCHEMA_VERSION = 12

# meta's keys that belong to the backend, not to the board (an export leaves them out)
INTERNAL_META = ("lease_token", "schema_version")

BOARD_DIR = ".kanban"
BOARD_FILE = "board.db"
SERVER_SCHEMES = ("postgresql://", "postgres://")


class Location:
    """Where a board lives: `backend` ("sqlite" or "postgres") and `target` (a file
    path, or the server URL as given)."""

    __slots__ = ("backend", "target")

    def __init__(self, backend, target):
        self.backend, self.target = backend, target

    @property
    def is_server(self):
        return self.backend == "postgres"


def locate(location):
    """The backend and target a location names.

    - `postgresql://...` or `postgres://...`: a schema on a server;
    - `sqlite:///relative/board.db`, `sqlite:////absolute/board.db` (as SQLAlchemy
      writes them) and `sqlite:relative.db`: a file;
    - `file:relative.db`, `file:/absolute.db`, `file:///absolute.db`,
      `file://localhost/absolute.db` (RFC 8089): a file, percent-escapes decoded;
    - anything else: a file path, as written.
    A URI that names another host, or that carries query parameters, is a `usage` error.
    """
    text = str(location)
    if not text:
        raise usage("the board location is empty (KANBAN_DB)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 arrive as lone surrogates
        shown = os.fsencode(text).decode("utf-8", "backslashreplace")
        raise usage(f"bad board location '{shown}': it is not valid UTF-8, and SQLite names"
                    " its files in UTF-8") from None
    if text.startswith(SERVER_SCHEMES):
        return Location("postgres", text)
    scheme = text.split(":", 1)[0].lower() if ":" in text else ""
    if scheme == "sqlite":
        rest = text[len("sqlite:"):]
        if rest.startswith("//"):
            rest = rest[2:]
            if not rest.startswith("/"):
                raise usage(f"bad board location {text!r}: write sqlite:///relative/path or "
                            "sqlite:////absolute/path")
            rest = rest[1:]
        return Location("sqlite", _file_path(text, rest))
    if scheme == "file":
        from urllib.parse import urlsplit  # a file: URI only: it imports re

        try:
            parts = urlsplit(text)
        except ValueError:
            raise usage(f"bad board location {text!r}") from None
        if parts.netloc not in ("", "localhost"):
            raise usage(f"bad board location {text!r}: it names the host {parts.netloc!r}; "
                        "write file:relative/path or file:///absolute/path")
        return Location("sqlite", _file_path(text, parts.path, parts.query or parts.fragment))
    if "://" in text:
        raise usage(f"bad board location {text!r}: a file path, sqlite:///path, file:///path "
                    "or postgresql://... ")
    return Location("sqlite", text)


def _file_path(text, path, extra=""):
    if extra or "?" in path:
        raise usage(f"bad board location {text!r}: a board location takes no parameters")
    from urllib.parse import unquote

    path = unquote(path)
    if not path or "\x00" in path:
        raise usage(f"bad board location {text!r}: no file named")
    return path


def is_server(location):
    """Does `location` name a board on a server (rather than a file)?"""
    return str(location).startswith(SERVER_SCHEMES)


def find_board(create=False):
    """The board's location: KANBAN_DB, else .kanban/board.db here or above.

    The search stops below any folder in KANBAN_CEILING_DIRECTORIES, as git's does.
    With create=True, the answer for `init`: KANBAN_DB or ./.kanban/board.db.
    """
    named = os.environ.get("KANBAN_DB")
    if named:
        return named
    try:
        here = os.getcwd()
    except FileNotFoundError:  # the folder was removed under the shell that sits in it
        raise KanbanError("not_found", "the current folder no longer exists: no board to find or make"
                          " here (cd to a folder that exists, or set KANBAN_DB)") from None
    if create:
        return os.path.join(here, BOARD_DIR, BOARD_FILE)
    ceilings = {
        os.path.realpath(c) for c in os.environ.get("KANBAN_CEILING_DIRECTORIES", "").split(":") if c
    }
    folder = here
    while True:
        if os.path.realpath(folder) in ceilings:
            break
        candidate = os.path.join(folder, BOARD_DIR, BOARD_FILE)
        if os.path.exists(candidate):
            return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    raise KanbanError(
        "not_found",
        "no kanban board here or in any parent folder (run 'kanban init', or set KANBAN_DB)",
    )


# the longest wait both backends take: SQLite's busy timeout and PostgreSQL's lock_timeout
# are C ints of milliseconds (about 24.8 days); a longer one was an internal error
# (OverflowError) on SQLite and db_error on PostgreSQL for every command
BUSY_TIMEOUT_MAX_MS = 2**31 - 1


def busy_timeout_ms():
    from ..clock import parse_duration

    ms = parse_duration(os.environ.get("KANBAN_BUSY_TIMEOUT") or "10s", "KANBAN_BUSY_TIMEOUT")
    return min(ms, BUSY_TIMEOUT_MAX_MS)


class Store(ABC):
    """One open board, on either backend.

    Statements run as they are given, in the backend's own dialect: a statement with
    parameters comes from `sql(name)` (store/queries.py); nothing is rewritten.  `read`
    and `write` run a function inside one transaction: a snapshot to read, or a write that commits
    whole or not at all, retried while the board is busy (so the function must only
    touch the database).  Everything else is asked inside one of them, except
    `wait`, `backup`, `describe`, `vacuum` and `close`.
    """

    backend = ""        # "sqlite" or "postgres"
    is_server = False   # a server board has no file, no folder of its own
    path = ""           # the location as opened: a file path, or the server URL
    version = 0         # the schema version the board holds
    created = False     # did opening with create=True make the board?

    # -- statements ----------------------------------------------------------------
    @abstractmethod
    def rows(self, sql, params=()):
        """Every row of a query, as dicts."""

    @abstractmethod
    def row(self, sql, params=()):
        """The first row of a query as a dict, or None."""

    @abstractmethod
    def scalar(self, sql, params=()):
        """The first column of the first row, or None."""

    @abstractmethod
    def execute(self, sql, params=()):
        """Run a statement; iterate the answer for its rows (as tuples)."""

    @abstractmethod
    def insert(self, sql, params=()):
        """Run an INSERT of one row; the new row's id (the Postgres text says RETURNING id;
        SQLite's does not, and the id comes from the connection)."""

    def last_event_id(self):
        """The id of the last event this transaction inserted (after a many-row INSERT
        into events: the last of them, the others the ids just before it)."""
        return self.scalar(self.sql("last_event_id"))

    @abstractmethod
    def changes(self):
        """How many rows the last INSERT, UPDATE or DELETE changed."""

    @abstractmethod
    def sql(self, name):
        """Statement (or fragment) `name` in this backend's dialect, as it runs: from
        store/queries.py, where both dialects are written out side by side."""

    @abstractmethod
    def tables(self):
        """The board's tables and their columns ({table: [column, ...]}), as both backends
        hold them: a backend's own tables (search indexes, id counters) and derived
        columns are left out."""

    @abstractmethod
    def counters(self):
        """The counters a board hands numbers out from, those past zero: each table's
        last id ({table: n}) and "lease_token" (the next fencing token less one: on
        Postgres the sequence's last value, on SQLite read from the event ids)."""

    @abstractmethod
    def set_counters(self, values):
        """Set counters (as counters() names them), inside a write, after an import's
        rows are placed; a name this board has no counter for is `invalid`."""

    # -- transactions --------------------------------------------------------------
    @abstractmethod
    def read(self, fn):
        """fn() inside one read transaction: a consistent snapshot."""

    @abstractmethod
    def write(self, fn):
        """fn() inside one write transaction; retried while busy, up to KANBAN_BUSY_TIMEOUT."""

    @abstractmethod
    def wait(self, seconds):
        """Sleep up to `seconds`; a backend that hears of changes may wake early (True)."""

    # -- the board as a whole ------------------------------------------------------
    @abstractmethod
    def describe(self):
        """doctor's facts about the storage: {db, driver, sqlite_version, schema_version,
        journal_mode, page_count, freelist_count, wal, filesystem, ...}."""

    @abstractmethod
    def warnings(self):
        """doctor's findings about the storage itself: a list of messages."""

    @abstractmethod
    def integrity(self):
        """The storage's own consistency check: ["ok"], or what is wrong."""

    @abstractmethod
    def vacuum(self):
        """Give freed space back; the number of pages freed."""

    @abstractmethod
    def backup(self, dest):
        """A consistent copy as a SQLite board file at `dest`: {backup, bytes, pages,
        integrity, at}."""

    @abstractmethod
    def folder(self):
        """The board's own folder (hooks, skills, teams), or None for a server board."""

    @abstractmethod
    def location(self):
        """What KANBAN_DB should say to reach this board from another process."""

    @abstractmethod
    def display(self):
        """The location to show: an absolute path, or the URL without its password."""

    @abstractmethod
    def migrate(self, target=SCHEMA_VERSION):
        """Bring the schema up to `target` in one write; False when it already is."""

    @abstractmethod
    def close(self):
        """Release the connection (and any lock file handle)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_store(location=None, create=False):
    """Open (with create, initialise) the board at `location` (default: find_board)."""
    where = locate(location or find_board(create=create))
    if where.is_server:
        from .postgres import open_board  # psycopg is imported for a server board only
    else:
        from .sqlite import open_board
    return open_board(where.target, create=create)
