"""Optional parts: a command that needs one imports it through require(), which says
which extra to install when it is missing.

    from .extras import require

    def serve(args):
        uvicorn = require("uvicorn", "web", "kanban web")   # inside the command only

require(module, extra, what) imports and returns `module`.  When it cannot be
imported, it raises the `usage` error (exit 2, one JSON line) naming the extra:
    {"error": "kanban web needs the 'web' extra: pip install 'kanban[web]'",
     "code": "usage", "extra": "web", "module": "uvicorn", "hint": "..."}
The extras are declared once, in pyproject.toml's [project.optional-dependencies]:
`postgres` (a postgresql:// board), `mcp` (kanban mcp), `web` (the web board).
Call it inside the command that needs the module, never at a module's top: the
plumbing path imports nothing optional.
"""
import sys

from .errors import KanbanError


def require(module, extra, what=None):
    """The imported `module`, or the `usage` error naming the extra that brings it."""
    try:
        __import__(module)
    except ImportError as exc:
        raise missing(module, extra, what, exc) from None
    return sys.modules[module]


def missing(module, extra, what=None, cause=None):
    """The `usage` error for an optional module that is not installed."""
    who = what or f"this command ({module})"
    return KanbanError(
        "usage", f"{who} needs the '{extra}' extra: pip install 'kanban[{extra}]'",
        extra=extra, module=module, detail=str(cause) if cause else None,
        hint=f"installed with pipx: pipx install --force 'kanban[{extra}]'")
