"""Where kanban's own files are: the one answer for every layout it runs from.

Every file the toolkit reads at run time (the plumbing and porcelain command files,
the schemas, the man pages, the sample hooks, kanban.mk, the completion scripts) is
found through this module, never by a path computed elsewhere.  Three layouts, one
shape -- a root folder holding libexec/, porcelain/, schemas/, man/, hooks.d/ and
kanban.mk:

- a checkout: the root is the checkout, this package is its lib/kanban/;
- `make install PREFIX=...`: the root is PREFIX/lib/kanban, a copy of the checkout's
  layout (this package is PREFIX/lib/kanban/lib/kanban/);
- an installed wheel (pip, pipx): the root is the package folder itself, where the
  wheel puts those folders (pyproject.toml maps them in).

The answer comes from this module's own __file__ (one stat), not importlib.resources
or importlib.metadata: the dispatcher asks on every call, and the plumbing path
imports nothing it can avoid.  A wheel is always installed unpacked, so plain paths
are right.
"""
import os
import sys

PACKAGE = os.path.dirname(os.path.abspath(__file__))
# the folder that holds the `kanban` package (a checkout's lib/, or site-packages)
LIB = os.path.dirname(PACKAGE)
# the wheel carries libexec/ inside the package; elsewhere the package is ROOT/lib/kanban
ROOT = PACKAGE if os.path.isdir(os.path.join(PACKAGE, "libexec")) else os.path.dirname(LIB)


def replace_file(path, text, *, mode=None, tmp=None):
    """Put `text` (UTF-8) at `path` at once: written to a new temporary file beside it
    (`tmp`; PATH.PID.tmp by default), then renamed over it.  Whatever stands at the
    temporary name (left by a process that died, or a link planted there) is removed
    first and the file is created anew (O_EXCL), so nothing is ever written through a
    link found there.  mode: the new file's (umask aside), else that of the file it
    replaces, else the default."""
    tmp = tmp or f"{path}.{os.getpid()}.tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(text.encode("utf-8"))
    if mode is None and os.path.exists(path):
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
    os.replace(tmp, path)


def exec_path():
    """The plumbing folder (`kanban --exec-path`); KANBAN_EXEC_PATH overrides it."""
    return os.environ.get("KANBAN_EXEC_PATH") or os.path.join(ROOT, "libexec")


def porcelain_path():
    return os.path.join(ROOT, "porcelain")


def man_path():
    """The folder to add to MANPATH (`kanban --man-path`): it holds man1/ and man7/.
    `make install` puts the pages in PREFIX/share/man, ROOT being PREFIX/lib/kanban."""
    beside = os.path.join(ROOT, "man")
    if os.path.isdir(beside):
        return beside
    return os.path.join(os.path.dirname(os.path.dirname(ROOT)), "share", "man")


def man_page(page, section="1"):
    """The file of man page `page` (e.g. kanban-claim) in `section`."""
    return os.path.join(man_path(), f"man{section}", f"{page}.{section}")


def schema(name):
    """The file of a published schema, e.g. schema("plan.schema.json")."""
    return os.path.join(ROOT, "schemas", name)


def sample_hooks():
    """The sample hooks users copy into .kanban/hooks.d/."""
    return os.path.join(ROOT, "hooks.d")


def makefile():
    """kanban.mk, the sprint targets a Makefile includes."""
    return os.path.join(ROOT, "kanban.mk")


def completion_script(shell):
    """The completion script for `shell` (bash, ...): kanban.<shell> beside the modules."""
    return os.path.join(PACKAGE, f"kanban.{shell}")


def command():
    """The `kanban` dispatcher to give child processes (team members, bench agents):
    bin/kanban of a checkout or of `make install`, else the installed console script,
    which lives beside the interpreter in a venv (pip, pipx) or elsewhere on PATH."""
    script = os.path.join(ROOT, "bin", "kanban")
    if os.path.isfile(script):
        return script
    import shutil

    beside = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "kanban")
    return beside if os.path.isfile(beside) else (shutil.which("kanban") or "kanban")
