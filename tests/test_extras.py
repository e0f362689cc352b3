"""Optional parts: a command that needs a missing extra names it, as a `usage` error.

The installed-wheel half (a real `kanban` without the `postgres` extra, pointed at a
postgresql:// board) is in test_wheel.py."""
import json

import pytest
from conftest import CODES

from kanban.cli import fail
from kanban.errors import KanbanError
from kanban.extras import require


def test_require_returns_the_module():
    import tomllib

    assert require("tomllib", "postgres") is tomllib


def test_a_missing_module_is_a_usage_error_naming_the_extra(capsys):
    with pytest.raises(KanbanError) as caught:
        require("kanban_no_such_module", "web", "kanban web")
    error = caught.value
    assert error.code == "usage" and error.code in CODES and not error.retryable
    assert "kanban web" in error.message and "pip install 'kanban[web]'" in error.message
    assert error.extra["extra"] == "web" and error.extra["module"] == "kanban_no_such_module"
    # through the one way a command fails: exit 2, one JSON line
    with pytest.raises(SystemExit) as exited:
        fail(error)
    assert exited.value.code == 2
    doc = json.loads(capsys.readouterr().err)
    assert doc["code"] == "usage" and doc["extra"] == "web" and "kanban[web]" in doc["hint"]
