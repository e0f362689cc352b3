"""bin/kanban: find the verb's file on the exec path and run it in this process."""
import os
import sys

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
    return os.path.dirname(os.path.dirname(os.path.realpath(script)))


def exec_path(root):
    return os.environ.get("KANBAN_EXEC_PATH") or os.path.join(root, "libexec")


def folders(root):
    return [("plumbing", exec_path(root)), ("porcelain", os.path.join(root, "porcelain"))]


def find_verb(root, verb):
    for _kind, folder in folders(root):
        path = os.path.join(folder, f"kanban-{verb}")
        if os.path.isfile(path):
            return path
    return None


def run_file(path, args):
    """Run a command file: Python ones in-process, anything else by exec."""
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    if PYTHON_MARKER in source or source.startswith("#!") and "python" in source.split("\n", 1)[0]:
        sys.argv = [path] + args
        code = compile(source, path, "exec")
        exec(code, {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__})
        return
    os.execv(path, [path] + args)


def commands(root):
    """Every verb with its one-line summary, from the files' `# Summary:` lines."""
    from .cli import read_header

    out = []
    for kind, folder in folders(root):
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            if name.startswith("kanban-"):
                summary = read_header(os.path.join(folder, name))[0]
                verb = name[len("kanban-"):]
                aliases = sorted(a for a, (v, _) in ALIASES.items() if v == verb)
                out.append({"name": verb, "kind": kind, "summary": summary, "aliases": aliases})
    return out


USAGE = """usage: kanban [--version] [--exec-path] [help] VERB [ARGS...]

Plumbing prints one JSON document; porcelain is for people and loops.
'kanban commands' lists every verb; 'kanban help VERB' opens its man page.
"""


def main(script):
    from .cli import emit, fail

    root = root_of(script)
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        sys.exit(0)
    verb, rest = args[0], args[1:]
    if verb == "--version":
        from . import __version__

        sys.stdout.write(f"kanban {__version__}\n")
        return
    if verb == "--exec-path":
        sys.stdout.write(exec_path(root) + "\n")
        return
    if verb == "commands":
        emit({"commands": commands(root)})
        return
    if verb == "help":
        help_verb(root, rest)
        return
    if verb in ALIASES:
        verb, lead = ALIASES[verb]
        rest = lead + rest
    path = find_verb(root, verb) if "/" not in verb and not verb.startswith("-") else None
    if path is None:
        fail(KanbanError("usage", f"'{verb}' is not a kanban command; see 'kanban commands'", verb=verb))
    run_file(path, rest)


def help_verb(root, rest):
    """`kanban help VERB`: the man page, or the usage text where man is missing."""
    import shutil

    verb = rest[0] if rest else None
    if verb in ALIASES:
        verb = ALIASES[verb][0]
    page = f"kanban-{verb}" if verb else "kanban"
    man_dir = os.path.join(root, "man")
    if verb and find_verb(root, verb) is None:
        from .cli import fail

        fail(KanbanError("usage", f"'{verb}' is not a kanban command; see 'kanban commands'"))
    local = os.path.join(man_dir, "man1", page + ".1")
    if shutil.which("man") and sys.stdout.isatty():
        target = local if os.path.exists(local) else page
        os.execvp("man", ["man", target])
    if verb:
        from .cli import read_header

        sys.stdout.write(read_header(find_verb(root, verb))[2] + "\n")
    else:
        sys.stdout.write(USAGE)
