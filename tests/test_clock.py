"""The board clock and its settings: clock.env answers what os.environ.get answers."""
import os
import time

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
