"""The board clock and its settings: clock.env answers what os.environ.get answers."""
import os
import time

import pytest

from kanban import clock


def test_env_follows_os_environ(monkeypatch):
    name = "KANBAN_TEST_CLOCK_SETTING"
    monkeypatch.delenv(name, raising=False)
    assert clock.env(name) is None
    for value in ("15m", "", "é ünïcode", "with\tspace"):
        monkeypatch.setenv(name, value)
        assert clock.env(name) == os.environ.get(name) == value
    monkeypatch.delenv(name)
    assert clock.env(name) is None
    os.environ[name] = "set by assignment"
    try:
        assert clock.env(name) == "set by assignment"
    finally:
        del os.environ[name]
    assert clock.env(name) is None


def test_now_follows_kanban_now_set_in_process(monkeypatch):
    monkeypatch.setenv("KANBAN_NOW", "1900000000")
    assert clock.now_ms() == 1_900_000_000_000
    monkeypatch.setenv("KANBAN_NOW", "2030-01-01T00:00:00Z")
    assert clock.iso(clock.now_ms()) == "2030-01-01T00:00:00Z"
    monkeypatch.delenv("KANBAN_NOW")
    assert abs(clock.now_ms() - time.time() * 1000) < 60_000


def _iso_by_gmtime(ms):
    """The ISO text the plain way: every field of time.gmtime, %-formatted."""
    seconds, millis = divmod(ms, 1000)
    stamp = "%04d-%02d-%02dT%02d:%02d:%02d" % time.gmtime(seconds)[:6]
    return f"{stamp}.{millis:03d}Z" if millis else f"{stamp}Z"


def test_iso_agrees_with_gmtime_over_years_1_to_9999():
    """clock.iso keeps each day's date and works the time of day out by arithmetic: the
    same text as gmtime's fields, for any millisecond kanban accepts (years 1 to 9999),
    and around midnight, the epoch and a leap day."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    first, last = -62135596800000, 253402300799999

    @settings(max_examples=3000, deadline=None)
    @given(st.integers(min_value=first, max_value=last))
    def agrees(ms):
        clock._ISO.clear()  # made anew, not a time printed before
        assert clock.iso(ms) == _iso_by_gmtime(ms)

    agrees()
    day = 86_400_000
    leap = 951_782_400_000  # 2000-02-29T00:00:00Z
    for ms in (first, last, 0, -1, 1, day - 1, day, -day, leap - 1, leap, leap + day - 1):
        clock._ISO.clear()
        assert clock.iso(ms) == _iso_by_gmtime(ms)
        assert clock.iso(ms) == _iso_by_gmtime(ms)  # as printed before
    assert clock.iso(leap) == "2000-02-29T00:00:00Z" and clock.iso(leap + 1) == "2000-02-29T00:00:00.001Z"


def test_a_huge_bad_value_is_quoted_short():
    """A 100 KB bad duration or time (an environment variable gone wrong) makes a short
    error: the value's first 60 characters, then '...'."""
    from kanban.clock import parse_duration, parse_time
    from kanban.errors import KanbanError

    for parse, what in ((parse_duration, "lease"), (parse_time, "not_before")):
        with pytest.raises(KanbanError) as caught:
            parse("x" * 100_000, what)
        assert caught.value.code == "invalid"
        assert caught.value.message.startswith(f"bad {what} '" + "x" * 60 + "...'")
        assert len(caught.value.message) < 200
