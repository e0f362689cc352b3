"""Time and durations.  KANBAN_NOW lives here and only here.

Times are kept as integer milliseconds since the epoch (UTC) in the database, so
comparisons are exact; they are printed as ISO-8601 UTC with a trailing Z.
"""
import os
import time

from .errors import invalid

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# the times ISO-8601 writes with four year digits: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z
MIN_MS = -62_135_596_800_000
MAX_MS = 253_402_300_799_999


# os.environ's own dict (POSIX: the names and values as bytes), which os.environ keeps
# current: asking it for a name that is not set costs a dict lookup, where
# os.environ.get raises and catches KeyError twice over (~2 us; every write asks for
# KANBAN_NOW and every claim for KANBAN_LEASE).  None where it is not so.
_ENVIRON = getattr(os.environ, "_data", None)
if not isinstance(_ENVIRON, dict) or not all(isinstance(name, bytes) for name in _ENVIRON):
    _ENVIRON = None


def env(name):
    """os.environ.get(name), quick when the name is not set."""
    if _ENVIRON is not None and name.encode() not in _ENVIRON:
        return None
    return os.environ.get(name)


def now_ms():
    """The board clock: KANBAN_NOW when set (for tests), else the real clock."""
    # env()'s quick answer for a name that is not set, without its call: every write asks
    if _ENVIRON is None or b"KANBAN_NOW" in _ENVIRON:
        fixed = os.environ.get("KANBAN_NOW")
        if fixed:
            return _parse_absolute(fixed, "KANBAN_NOW", forms="ISO-8601 or epoch seconds")
    return int(time.time() * 1000)


def _shown(value, most=60):
    """A bad value as an error quotes it: its repr, cut to its first `most` characters (a
    100 KB value in an environment variable must not make a 100 KB error line)."""
    if not isinstance(value, str):
        return repr(value)
    return repr(value if len(value) <= most else value[:most] + "...")


_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def _decimal_ms(number, unit_ms):
    """A plain decimal ('1.001', '-2', '.5') times `unit_ms`, in whole milliseconds (cut
    toward zero) by integer arithmetic; None for any other form ('1e3').  float() is
    not exact: 1.001 * 1000 is 1000.9999999999999, and 1.15d came out a millisecond short."""
    body = number[1:] if number[:1] in ("+", "-") else number
    whole, _, fraction = body.partition(".")
    if not (whole or fraction) or not (whole.isdigit() or not whole) or not (fraction.isdigit() or not fraction):
        return None
    scale = 10 ** len(fraction)
    ms = (int(whole or "0") * scale + int(fraction or "0")) * unit_ms // scale
    return -ms if number[:1] == "-" else ms


def parse_duration(text, what="duration"):
    """'90s', '15m', '2h', '3d', '1w', '250ms' or plain seconds -> milliseconds (> 0)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        exact = _decimal_ms(repr(text), 1000) if isinstance(text, float) and text == text else None
        scaled = exact if exact is not None else float(text) * 1000
    else:
        raw = str(text).strip().lower()
        unit = next((u for u in ("ms", "s", "m", "h", "d", "w") if raw.endswith(u)), None)
        number = raw[: -len(unit)] if unit else raw
        try:
            # ASCII digits only, as a token or an id: float() alone also reads '١٠' and '1_0'
            if not number.isascii() or "_" in number:
                raise ValueError(number)
            value = float(number)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(number)
        except ValueError:
            raise invalid(f"bad {what} {_shown(text)}: use 90s, 15m, 2h, 3d or seconds") from None
        exact = _decimal_ms(number.strip(), _UNIT_MS[unit or "s"]) if len(number) < 400 else None
        scaled = exact if exact is not None else value * _UNITS[unit or "s"] * 1000
    if scaled != scaled:
        raise invalid(f"bad {what} {_shown(text)}")
    # compare before int(): 1e308 * 1000 is infinity, and int(inf) would be an internal error
    if scaled > 100 * 365 * 86400 * 1000:
        raise invalid(f"{what} {_shown(text)} is too long")
    ms = int(scaled) if scaled > 0 else 0
    if ms <= 0:
        raise invalid(f"{what} must be positive, got {_shown(text)}")
    if ms > 100 * 365 * 86400 * 1000:
        raise invalid(f"{what} {_shown(text)} is too long")
    return ms


def parse_time(text, what="time"):
    """ISO-8601, epoch seconds, or '+10m' (relative to the board clock) -> ms."""
    raw = str(text).strip()
    if raw.startswith("+"):
        return _in_range(now_ms() + parse_duration(raw[1:], what), what, raw)
    return _parse_absolute(raw, what)


def _in_range(ms, what, raw):
    """A time between the years 1 and 9999, else invalid: every answer prints it as ISO-8601."""
    if not MIN_MS <= ms <= MAX_MS:
        raise invalid(f"{what} {_shown(raw)} is out of range: years 1 to 9999 only")
    return ms


def _parse_absolute(raw, what, forms="ISO-8601, epoch seconds or +10m"):
    """ISO-8601 or epoch seconds -> ms; `forms` is what the error offers instead (what the
    caller takes: KANBAN_NOW, the clock itself, has no '+10m')."""
    raw = raw.strip()
    try:
        # epoch seconds in ASCII digits only: float() alone also reads '١٧٦٧' and '1_767'
        if not raw.isascii() or "_" in raw:
            raise ValueError(raw)
        value = float(raw)
    except ValueError:
        pass
    else:
        if value != value or value in (float("inf"), float("-inf")):
            raise invalid(f"bad {what} {_shown(raw)}: use {forms}")
        exact = _decimal_ms(raw, 1000) if len(raw) < 400 else None
        if exact is None:  # '1e3': beyond 1e15 s, int() of the product would be no year (or infinity)
            exact = int(value * 1000) if abs(value) < 1e15 else (MAX_MS + 1 if value > 0 else -(MAX_MS + 1))
        return _in_range(exact, what, raw)
    from datetime import datetime, timezone  # only when a time is typed in

    text = raw[:-1] + "+00:00" if raw[-1:] in ("Z", "z") else raw
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(f"bad {what} {_shown(raw)}: use {forms}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        ms = int(moment.timestamp() * 1000)
    except (OverflowError, ValueError):
        raise invalid(f"{what} {_shown(raw)} is out of range: years 1 to 9999 only") from None
    return _in_range(ms, what, raw)


_ISO = {}  # the last times formatted: a write prints its own `now` several times
_DAYS = {}  # day number since the epoch -> 'YYYY-MM-DDT': a day's times share it
_SECONDS = {}  # second since the epoch -> 'YYYY-MM-DDTHH:MM:SS': a second's times share it
# what follows a time's seconds, by its milliseconds: "Z" for a whole second, else the fraction
_FRACTIONS = ("Z",) + tuple(".%03dZ" % millis for millis in range(1, 1000))


def iso(ms):
    """Milliseconds -> '2026-01-01T00:15:00Z' (fraction only when not whole)."""
    if ms is None:
        return None
    text = _ISO.get(ms)
    if text is None:
        if len(_ISO) > 256:
            _ISO.clear()
        # a time not printed yet (every write's own `now`, a claim's lease end): made here,
        # not in a call of its own
        seconds, millis = divmod(int(ms), 1000)
        text = _SECONDS.get(seconds)
        if text is None:
            if len(_SECONDS) > 64:
                _SECONDS.clear()
            text = _SECONDS[seconds] = _second(seconds)
        text = _ISO[ms] = text + _FRACTIONS[millis]
    return text


def _second(seconds):
    """'YYYY-MM-DDTHH:MM:SS' of a second since the epoch."""
    day, second = divmod(seconds, 86400)
    date = _DAYS.get(day)
    if date is None:
        if len(_DAYS) > 64:
            _DAYS.clear()
        # not strftime("%Y"): glibc does not pad years before 1000 to four digits (ISO-8601 needs them)
        date = _DAYS[day] = "%04d-%02d-%02dT" % time.gmtime(day * 86400)[:3]
    hour, second = divmod(second, 3600)
    minute, second = divmod(second, 60)
    # the time of day by arithmetic, not gmtime, in one %-format (quicker than an
    # f-string's format spec per field)
    return "%s%02d:%02d:%02d" % (date, hour, minute, second)
