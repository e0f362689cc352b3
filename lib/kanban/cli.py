"""The command-line layer: usage text from the verb's file, docopt, one JSON answer.

Each libexec/porcelain file carries its `# Summary:` and `# Usage:` comments (as
rbenv's commands do) and calls main(__file__).  main parses the arguments with
docopt, calls the verb's function in kanban.verbs (or the porcelain's own
function), prints one JSON document, and turns every failure into exit 2 with one
JSON line on stderr.  Nothing but the standard library's C parts and the SQLite
driver is imported on the way to a claim (not even json: see jsontext).
"""
import os
import sys
import time

from .errors import KanbanError
from .jsontext import dumps

EXIT_NOTHING = 1  # --exit-code and nothing to do
EXIT_ERROR = 2
EXIT_READER_GONE = 141  # 128 + SIGPIPE: where the signal itself cannot end the process


def read_header(path):
    """(summary, usage text, whole help text) from a command file's comments."""
    summary, lines = "", []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if number == 0 and line.startswith("#!"):
                continue
            if not line.startswith("#"):
                break
            text = line[2:].rstrip("\n") if line.startswith("# ") else line[1:].rstrip("\n")
            if text.startswith("Summary:"):
                summary = text[len("Summary:"):].strip()
            else:
                lines.append(text)
    help_text = "\n".join(lines).strip("\n")
    return summary, usage_section(help_text), help_text


def usage_section(help_text):
    """The `Usage:` block of a help text (up to the first blank line)."""
    out, inside = [], False
    for line in help_text.splitlines():
        if line.lower().startswith("usage:"):
            inside = True
            out.append(line)
            continue
        if inside:
            if not line.strip():
                break
            out.append(line)
    return "\n".join(out)


def fail(error):
    """Exit 2 with one JSON line on stderr: the one way a command fails."""
    if sys.stderr is not None:  # None: started with stderr closed (`2>&-`)
        try:
            sys.stderr.write(dumps(error.to_dict()) + "\n")
            sys.stderr.flush()
        except BrokenPipeError:  # `2>&1 | head`: the error's reader is gone too
            to_devnull(sys.stderr)
            reader_gone()
    sys.exit(EXIT_ERROR)


def standard_input():
    """sys.stdin, which Python leaves None when the caller closed it (`<&-`)."""
    if sys.stdin is None:
        raise KanbanError("invalid", "standard input is closed: there is nothing to read")
    return sys.stdin


def emit(document):
    sys.stdout.write(dumps(document, ensure_ascii=False) + "\n")


def parse(help_text, argv):
    """docopt (through the shape cache), its exits turned into the `usage` error."""
    head = argv[1:argv.index("--")] if "--" in argv else argv[1:]
    if any(a in ("-h", "--help") for a in head):
        from .render import help_for

        sys.stdout.write(help_for(help_text) + "\n")
        sys.exit(0)

    def run_docopt(args):
        from docopt import DocoptExit, docopt

        try:
            return docopt(help_text, argv=args, default_help=False)
        except DocoptExit:
            raise _Refused() from None

    from .argv import parse as cached_parse

    given, swapped = _end_of_options(help_text, argv)
    try:
        args = cached_parse(help_text, given, run_docopt)
    except _Refused:
        # say what is wrong with the real arguments, never the cache's placeholders
        from .diagnose import usage_error

        # (a `--` that ends nothing, as in `create --`, is left out: 'missing TITLE')
        raise usage_error(help_text, argv[:-1] if swapped is not None and argv[-1] == "--" else argv) from None
    if not swapped:
        return args
    back = swapped.get
    return {key: ([back(v, v) if isinstance(v, str) else v for v in value] if isinstance(value, list)
                  else back(value, value) if isinstance(value, str) else value)
            for key, value in args.items()}


def _end_of_options(help_text, argv):
    """`--` ends the options, as in git and every POSIX tool: `kanban create -- -x` makes a
    task titled '-x'.  docopt knows `--` only where the usage text declares it (work's
    `-- CMD...`); elsewhere the `--` goes, and each word after it that looks like an option
    is given to the parser as a stand-in that cannot be one, swapped back in its answer.
    -> (argv for the parser, {stand-in: word}, or None when there is nothing to do)."""
    if "--" not in argv[1:] or " -- " in f" {usage_section(help_text)} ".replace("[--]", " -- "):
        return argv, None  # no `--`, or the usage text's own (work's `-- CMD...`): docopt's
    cut = argv.index("--", 1)
    given, swapped = argv[:cut], {}
    for word in argv[cut + 1:]:
        if word.startswith("-"):
            stand_in = f"@kanban-word-{len(swapped)}@"
            swapped[stand_in] = word
            word = stand_in
        given.append(word)
    return given, swapped


class _Refused(Exception):
    """docopt refused an argv (the argument cache may have asked with placeholders)."""


def main(path, argv=None, handler=None, prepare=None):
    """Run the command whose file is `path` with argv (default sys.argv[1:]); `prepare`
    may rewrite the arguments first (an option whose value is optional, as git's)."""
    verb = os.path.basename(path)[len("kanban-"):]
    argv = sys.argv[1:] if argv is None else argv
    if sys.stdout is None:  # started with stdout closed (`>&-`): refused before anything changes
        fail(KanbanError("internal", "standard output is closed: there is nowhere to write the answer"))
    if prepare is not None:
        argv = prepare(list(argv))
    try:
        _summary, _usage, help_text = read_header(path)
        args = parse(help_text, [verb] + list(argv))
        if handler is None:
            from . import verbs

            handler = getattr(verbs, verb.replace("-", "_"))
        code = handler(args)
    except KanbanError as exc:
        fail(exc)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        reader_gone()
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug: say so in JSON, never a traceback
        if os.environ.get("KANBAN_DEBUG"):
            import traceback

            traceback.print_exc()
        fail(KanbanError("internal", f"internal error: {type(exc).__name__}: {exc}",
                         detail="set KANBAN_DEBUG=1 for the traceback"))
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        reader_gone()
    except OSError as exc:  # e.g. a full disk (`> /dev/full`): said in JSON, not a traceback
        _quiet_pipe()
        fail(KanbanError("internal", f"cannot write the answer to standard output: {exc.strerror or exc}"))
    sys.exit(code or 0)


def finish(code=0):
    """End the process with `code`, as sys.exit(code) would, without the interpreter's
    teardown: freeing every module and object a claim loaded costs ~2 ms, more than the
    claim's transaction, and the kernel frees the memory, closes the files and drops
    the locks anyway.  Only when nothing is left for the teardown to do: stdout and
    stderr flushed, no atexit function (weakref.finalize and tempfile register one), no
    other thread, no tracer or profiler waiting to write its report.  Otherwise, and for
    an exit status that is not a number, sys.exit does it the long way."""
    if code is None:
        code = 0
    threading = sys.modules.get("threading")
    if (not isinstance(code, int) or sys.gettrace() is not None or sys.getprofile() is not None
            or (threading is not None and threading.active_count() > 1)):
        sys.exit(code)
    try:
        if sys.stdout is not None:
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                reader_gone()
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        sys.exit(code)  # the long way says what went wrong, as it would have
    atexit = sys.modules.get("atexit")  # registering a function imports it
    if atexit is not None and atexit._ncallbacks():
        sys.exit(code)
    os._exit(code & 0xFF)


def reader_left():
    """Has stdout's reader gone (a pipe whose read end is closed)?  For a stream that
    waits, as `--follow`, to notice it while there is nothing to write; False where
    the system does not say (poll() reports POLLERR on such a pipe on Linux)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)
        return any(events & select.POLLERR for _fd, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


def reader_gone():
    """The reader of stdout went away before the answer was written (`| head -1`, a
    script that stopped reading): end as git and coreutils do, killed by SIGPIPE
    (status 141 in a shell), quietly.  Not exit 2: nothing failed, and what the
    command wrote to the board stays written; not 0 either: the answer was not read."""
    _quiet_pipe()
    try:
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
    import signal

    if hasattr(signal, "SIGPIPE"):  # POSIX: the signal's own death, as the shell reports it
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGPIPE)
        time.sleep(1)  # another thread may take the signal: it ends the process meanwhile
    os._exit(EXIT_READER_GONE)


def _quiet_pipe():
    # stdout was closed by the reader (e.g. `| head`): do not print a second error
    to_devnull(sys.stdout)


def to_devnull(stream):
    """What is left in `stream`'s buffer, and all that follows, goes to /dev/null."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass


def env_or(args, option, variable):
    """The option's value when given (even empty: the verb refuses it), else the
    environment variable's when set and not empty, else None."""
    value = args.get(option)
    return value if value is not None else (os.environ.get(variable) or None)
