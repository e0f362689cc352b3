"""A whole board as JSON Lines, and back: `kanban export` and `kanban import`.

One record a line, keys sorted, no spaces, so the same board exports to the same bytes
on either backend (schemas/kanban-export.schema.json describes a line):

    {"format":"kanban-export","schema_version":4,"type":"header","version":1}
    {"row":{...},"table":"tasks","type":"row"}          every row of every table
    {"name":"tasks","type":"counter","value":12}         counters past zero
    {"counters":1,"rows":57,"type":"end"}                 what came before: a cut file is refused

Tables in name order, rows by id (or, without one, by their text); then counters by
name.  An import places every record or none: into an empty board whose schema
version is the export's, in one write transaction.
"""
import json

from . import clock, fit
from .errors import KanbanError, conflict, invalid
from .store import INTERNAL_META

FORMAT = "kanban-export"
VERSION = 1
# deps go in before tasks: the dependency triggers find no task to count, and each task
# arrives with its own count of unmet dependencies
FIRST = ("deps",)
# the columns that hold a time (milliseconds since 1970): each must be one every answer
# can print as ISO-8601, between the years 1 and 9999 (clock.MIN_MS .. clock.MAX_MS), or
# `list`, `show` and `board` fail on the imported board
TIME_COLUMNS = {
    "tasks": ("lease_until", "not_before", "started_at", "finished_at", "created_at", "updated_at"),
    "events": ("at", "expires_at"),
    "comments": ("at",),
    "runs": ("started_at", "heartbeat_at", "ended_at"),
    "wip_limits": ("created_at", "updated_at"),
    "access_tokens": ("created_at", "revoked_at"),
}


def _line(record):
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _rows(db, table, columns):
    names = ", ".join(columns)
    if table == "meta":  # the backend's own keys, written as literals: the text reads alike on both
        internal = ", ".join(f"'{key}'" for key in INTERNAL_META)
        return db.rows(f"SELECT {names} FROM meta WHERE key NOT IN ({internal})")
    return db.rows(f"SELECT {names} FROM {table}")


def export_lines(db):
    """Every line of the board's export (call inside one read transaction)."""
    lines = [_line({"type": "header", "format": FORMAT, "version": VERSION, "schema_version": db.version})]
    rows = 0
    for table, columns in sorted(db.tables().items()):
        found = _rows(db, table, columns)
        if "id" in columns:
            found.sort(key=lambda r: r["id"])
            lines += [_line({"type": "row", "table": table, "row": r}) for r in found]
        else:
            lines += sorted(_line({"type": "row", "table": table, "row": r}) for r in found)
        rows += len(found)
    counters = sorted(db.counters().items())
    lines += [_line({"type": "counter", "name": name, "value": value}) for name, value in counters]
    lines.append(_line({"type": "end", "rows": rows, "counters": len(counters)}))
    return lines


def _bad(number, message):
    return invalid(f"line {number} of the export: {message}")


def parse(lines):
    """An export's lines -> (schema_version, {table: [row, ...]}, {counter: value}, where):
    anything that is not a whole, well-formed export is `invalid`.  `where` maps id(row)
    of each row to its line, for the messages of fit.check."""
    header, end = None, None
    tables, counters, count, where = {}, {}, {"rows": 0, "counters": 0}, {}
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        if end is not None:
            raise _bad(number, "a record after the end record")
        try:
            record = json.loads(text)
        except (ValueError, RecursionError):
            raise _bad(number, "not a JSON object") from None
        if not isinstance(record, dict):
            raise _bad(number, "not a JSON object")
        kind = record.get("type")
        if header is None:
            if kind != "header" or record.get("format") != FORMAT:
                raise _bad(number, "not a kanban export (no header record)")
            if record.get("version") != VERSION:
                raise _bad(number, f"export format version {record.get('version')!r}; this kanban reads {VERSION}")
            header = record
        elif kind == "row":
            table, row = record.get("table"), record.get("row")
            if not isinstance(table, str) or not isinstance(row, dict) or not row:
                raise _bad(number, "a row record needs a table and a row object")
            for column, value in row.items():
                if not (value is None or isinstance(value, (str, float)) or
                        (isinstance(value, int) and not isinstance(value, bool))):
                    raise _bad(number, f"{table}.{column} holds a {type(value).__name__}")
            for column in TIME_COLUMNS.get(table, ()):
                value = row.get(column)
                if value is not None and not (isinstance(value, int) and clock.MIN_MS <= value <= clock.MAX_MS):
                    raise _bad(number, f"{table}.{column} {json.dumps(value)[:40]} is not a time in the years"
                                       " 1 to 9999 (milliseconds since 1970)")
            tables.setdefault(table, []).append(row)
            where[id(row)] = number
            count["rows"] += 1
        elif kind == "counter":
            name, value = record.get("name"), record.get("value")
            if not isinstance(name, str) or isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _bad(number, "a counter record needs a name and a whole number")
            counters[name] = value
            count["counters"] += 1
        elif kind == "end":
            if record.get("rows") != count["rows"] or record.get("counters") != count["counters"]:
                raise _bad(number, f"the end record counts {record.get('rows')} rows and {record.get('counters')}"
                                   f" counters; the export holds {count['rows']} and {count['counters']}")
            end = record
        else:
            raise _bad(number, f"unknown record type {kind!r}")
    if header is None:
        raise invalid("the export is empty")
    if end is None:
        raise invalid("the export has no end record: it was cut short")
    return header["schema_version"], tables, counters, where


def load(db, schema_version, tables, counters, where):
    """Place a parsed export into the board (call inside one write transaction): first
    its schema version, tables and columns against the board's, then whether its rows fit
    together (fit.check), then whether the board is empty; nothing is placed until all
    of that passed."""
    if schema_version != db.version:
        raise invalid(f"the export is of schema version {schema_version}; this board has {db.version}"
                      " (export from, and import into, the same kanban release)")
    known = db.tables()
    for table, rows in tables.items():
        if table not in known:
            raise invalid(f"this board has no table {table!r} to place the export's rows in")
        unknown = {column for row in rows for column in row} - set(known[table])
        if unknown:
            raise invalid(f"this board's {table} has no column {sorted(unknown)[0]!r}")
    fit.check(tables, counters, where)
    held = {table: len(_rows(db, table, known[table][:1])) for table in known}
    if any(held.values()):
        raise conflict("the board is not empty: import into a new board ("
                       + ", ".join(f"{n} {t}" for t, n in sorted(held.items()) if n) + ")")
    order = [t for t in FIRST if t in tables] + sorted(t for t in tables if t not in FIRST)
    mark = db.sql("param")
    for table in order:
        for row in tables[table]:
            columns = list(row)
            db.execute(f"INSERT INTO {table}({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})",
                       [row[c] for c in columns])
    try:
        db.set_counters(counters)
    except KanbanError as exc:
        raise invalid(exc.message) from None
    return {"tables": {table: len(rows) for table, rows in sorted(tables.items())},
            "counters": dict(sorted(counters.items()))}
