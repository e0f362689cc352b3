"""bin/kanban: find the verb's file on the exec path and run it in this process."""
import os
import sys

from . import paths
from .errors import KanbanError

# aliases resolve here, not by extra files: alias -> (verb, leading arguments)
ALIASES = {
    "dispatch": ("create", []),
    "claim-next": ("claim", []),
    "heartbeat": ("lease", ["renew"]),
    "extend-lease": ("lease", ["renew"]),
    "log-progress": ("event", ["log"]),
}
PYTHON_MARKER = "\n''''"


def root_of(script):
    """The folder holding libexec/, porcelain/, man/...: kanban.paths answers for every
    layout (a checkout, `make install`, an installed wheel), whoever the caller is."""
    return paths.ROOT


def exec_path(root):
    return paths.exec_path()


def folders(root):
    return [("plumbing", paths.exec_path()), ("porcelain", paths.porcelain_path())]


def find_verb(root, verb):
    for _kind, folder in folders(root):
        path = os.path.join(folder, f"kanban-{verb}")
        if os.path.isfile(path):
            return path
    return None


def run_file(path, args):
    """Run a command file: Python ones in-process, anything else (a script, a compiled
    program: bytes that need not be UTF-8) by exec."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        _cannot_run(path, exc)
    if PYTHON_MARKER.encode() in raw or raw.startswith(b"#!") and b"python" in raw.split(b"\n", 1)[0]:
        source = raw.decode("utf-8")
        sys.argv = [path] + args
        # exec of the text, not of compile(source, path): the builtin compile() builds the
        # ast module's ~120 node types the first time a process calls it (~0.8 ms, a twentieth
        # of a claim); exec parses and compiles the text without them.  The price: the file's
        # own lines show as "<string>" in a traceback (cli.main turns every error into JSON).
        exec(source, {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__})
        return
    try:
        os.execv(path, [path] + args)
    except OSError as exc:  # not executable, no interpreter for its #! line, ...
        _cannot_run(path, exc)


def _cannot_run(path, exc):
    from .cli import fail

    fail(KanbanError("internal", f"cannot run {os.path.basename(path)}: {exc.strerror or exc}", path=path))


def header_of(path):
    """A command file's (summary, usage, help text), or empty ones for a file that has
    none to read: a compiled program, or one this user may not read."""
    from .cli import read_header

    try:
        return read_header(path)
    except (OSError, UnicodeDecodeError):
        return "", "", ""


def commands(root):
    """Every verb with its one-line summary, from the files' `# Summary:` lines."""
    out = []
    for kind, folder in folders(root):
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            path = os.path.join(folder, name)
            if name.startswith("kanban-") and os.path.isfile(path):  # as find_verb: no folders
                # a command of someone else's (a shell script, a program) may have no
                # `# Summary:` line: the listing still says something of it
                summary = header_of(path)[0] or "(no summary: no readable '# Summary:' line)"
                verb = name[len("kanban-"):]
                aliases = sorted(a for a, (v, _) in ALIASES.items() if v == verb)
                out.append({"name": verb, "kind": kind, "summary": summary, "aliases": aliases})
    return out


USAGE = """usage: kanban [--version] [--exec-path] [--man-path] [help] VERB [ARGS...]
"""
GUIDES = {"workflow": ("kanban-workflow", "7")}  # `kanban help NAME` for the guides in man/man7


def main(script):
    from .cli import fail

    root = root_of(script)
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        # as git: the verbs grouped; no verb at all is a mistake (exit 1), asking is not
        sys.stdout.write(overview(root))
        sys.exit(1 if not args else 0)
    verb, rest = args[0], args[1:]
    if verb == "--version":
        from . import __version__

        sys.stdout.write(f"kanban {__version__}\n")
        return
    if verb == "--exec-path":
        sys.stdout.write(exec_path(root) + "\n")
        return
    if verb == "--man-path":
        sys.stdout.write(paths.man_path() + "\n")
        return
    if verb == "commands":
        list_commands(root, rest)
        return
    if verb == "help":
        help_verb(root, rest)
        return
    if verb in ALIASES:
        verb, lead = ALIASES[verb]
        rest = lead + rest
    path = find_verb(root, verb) if "/" not in verb and not verb.startswith("-") else None
    if path is None:
        fail(not_a_verb(root, verb))
    run_file(path, rest)


def not_a_verb(root, verb):
    """The usage error for an unknown verb, or an unknown option of kanban itself, with the
    nearest one as a hint (as git's)."""
    import difflib

    if verb.startswith("-"):
        near = difflib.get_close_matches(verb, ["--help", "--version", "--exec-path", "--man-path"], n=1,
                                         cutoff=0.6)
        hint = f"did you mean {near[0]}?" if near else None
        return KanbanError("usage", f"unknown option {verb}" + (f" ({hint})" if hint else "; see 'kanban help'"),
                           option=verb, hint=hint, usage=USAGE.strip())
    names = [c["name"] for c in commands(root)] + list(ALIASES) + ["help", "commands"]
    near = difflib.get_close_matches(verb, names, n=1, cutoff=0.6)
    hint = f"did you mean '{near[0]}'?" if near else None
    return KanbanError("usage", f"'{verb}' is not a kanban command" + (f" (did you mean '{near[0]}'?)" if near
                                                                       else "; see 'kanban help'"),
                       verb=verb, hint=hint, usage=USAGE.strip())


def overview(root):
    """`kanban --help`: the verbs grouped as plumbing, porcelain and aliases, with summaries."""
    from .render import command_overview, tty_columns

    return command_overview(USAGE, commands(root), {a: " ".join([v, *lead]) for a, (v, lead) in ALIASES.items()},
                            tty_columns())  # summaries wrapped to a terminal's width


COMMANDS_USAGE = """usage: kanban commands [--format=json|table]

Options:
  --format=F    json (the default): {"commands": [...]}; table: the same for people.
"""


def list_commands(root, rest):
    """`kanban commands [--format json|table]`."""
    from .cli import emit, fail

    fmt = "json"
    while rest:
        option = rest.pop(0)
        if option in ("-h", "--help"):  # as after every verb: its usage text and options
            sys.stdout.write(COMMANDS_USAGE)
            return
        if option.startswith("--format="):
            fmt = option.split("=", 1)[1]
        elif option == "--format" and rest:
            fmt = rest.pop(0)
        else:
            fail(KanbanError("usage", f"kanban commands: unexpected argument '{option}'",
                             usage=COMMANDS_USAGE.splitlines()[0]))
    if fmt not in ("json", "table"):
        fail(KanbanError("invalid", f"bad --format {fmt!r}: json or table"))
    found = commands(root)
    if fmt == "table":
        from .render import command_table, tty_columns

        sys.stdout.write(command_table(found, tty_columns()) + "\n")  # the summaries cut to a terminal's width
    else:
        emit({"commands": found})


def help_verb(root, rest):
    """`kanban help [VERB|workflow|commands]`: the man page (paged on a terminal, plain into a
    pipe), or the usage text where man is missing or cannot show it."""
    import shutil

    from .cli import fail

    verb = rest[0] if rest else None
    if verb is None or verb in ("commands", "help"):  # `help help`, as `git help help`
        sys.stdout.write(overview(root))
        return
    if verb in GUIDES:
        page, section = GUIDES[verb]
        local = paths.man_page(page, section)
        if shutil.which("man"):
            os.execvp("man", ["man", local if os.path.exists(local) else page])
        from .render import tty_columns
        from .roff import plain

        with open(local, encoding="utf-8") as handle:  # no man: the page as text, not its roff source
            sys.stdout.write(plain(handle.read(), tty_columns() or 80))
        return
    if verb in ALIASES:
        verb = ALIASES[verb][0]
    page = f"kanban-{verb}"
    if find_verb(root, verb) is None:
        fail(not_a_verb(root, verb))
    local = paths.man_page(page)
    target = local if os.path.exists(local) else page
    if shutil.which("man"):
        if sys.stdout.isatty():
            os.execvp("man", ["man", target])
        text = man_text(target)  # as `git help VERB | cat`: the page, plain, without a pager
        if text:
            sys.stdout.write(text)
            return
    from .render import help_for

    sys.stdout.write(help_for(header_of(find_verb(root, verb))[2]) + "\n")


def man_text(target):
    """What `man TARGET` prints into a pipe, or None where man cannot show it (no page, no
    formatter): then the usage text stands in, and man's complaint is not shown."""
    import subprocess

    try:
        done = subprocess.run(["man", target], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    text = done.stdout.decode("utf-8", "replace")
    return text if done.returncode == 0 and text.strip() else None


def run(script):
    """bin/kanban's entry: main(), then the process ends at once (cli.finish).  Whoever
    calls main() in a process of their own (the bench's phases) keeps a normal exit."""
    from .cli import finish

    try:
        main(script)
        code = 0
    except SystemExit as exc:
        code = exc.code
    finish(code)


def console():
    """The `kanban` console script of an installed wheel ([project.scripts] in
    pyproject.toml): the same dispatcher as bin/kanban."""
    run(None)
