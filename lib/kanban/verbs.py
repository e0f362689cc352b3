"""The plumbing verbs: docopt arguments in, one JSON document out.

One function per libexec/kanban-<verb>, named after it.  Each opens the board,
makes one call into Board (one transaction), and prints the answer.  The return
value is the exit status (None for 0).
"""
import errno
import os
import sys
import time

from .board import Board
from .board import init as init_board
from .cli import EXIT_NOTHING, emit, env_or, reader_gone, reader_left, standard_input
from .errors import invalid, not_found, usage
from .jsontext import dumps


def _board():
    return Board()


def _agent(args, required=True):
    agent = env_or(args, "--agent", "KANBAN_AGENT")
    if agent == "":
        raise invalid("--agent must not be empty")
    if required and not agent:
        raise usage("no agent: pass --agent or set KANBAN_AGENT")
    return agent


def _format(args):
    fmt = args.get("--format") or "json"
    if fmt not in ("json", "table"):
        raise invalid(f"bad --format {fmt!r}: json or table")
    return fmt


def _show(args, document, kind, empty=None):
    if _format(args) == "table":
        from . import render

        sys.stdout.write(render.table(kind, document, empty, render.tty_columns()) + "\n")
    else:
        emit(document)


def _nothing(args, answer):
    """Print the answer; exit 1 under --exit-code when there was nothing to do."""
    emit(answer)
    if not answer and args.get("--exit-code"):
        return EXIT_NOTHING
    return None


def init(args):
    if args["NAME"] and not args["--harness"]:
        raise usage(f"{args['NAME'][0]!r}: name harnesses after --harness")
    args["--harness"] = [*dict.fromkeys(args["--harness"] + args["NAME"])]  # `list` is a verb here
    from .skill import ignore_runtime_files, plan, project_folder, refuse_dangling_link, write
    from .store import find_board, locate

    # every file init writes is checked before the board or any file is written: a
    # symbolic link to nothing on the way to one is refused, not written through
    where = find_board(create=True)  # KANBAN_DB or ./.kanban/board.db
    board = locate(where)
    if not board.is_server:
        folder = os.path.dirname(os.path.abspath(board.target))
        refuse_dangling_link(board.target)
        if os.path.basename(folder) == ".kanban":  # where init writes its .gitignore
            refuse_dangling_link(os.path.join(folder, ".gitignore"))
    planned = None
    if args["--harness"]:
        planned = plan(args["--harness"], project_folder(where), force=args["--force"])
    answer = init_board(harness=args["--harness"])
    ignore = ignore_runtime_files(answer["db"])
    if ignore:
        answer["gitignore"] = ignore
    if planned is not None:
        answer["harness_files"] = write(planned)
        answer["skills"] = [f["path"] for f in answer["harness_files"]]
    emit(answer)


def create(args):
    actor = _agent(args, required=False)
    with _board() as board:
        if args["--stdin"]:
            specs = []
            for number, line in enumerate(standard_input(), 1):
                if not line.strip():
                    continue
                try:
                    import json

                    specs.append(json.loads(line))
                except ValueError as exc:
                    # the decoder's own 'line 1 column 5 (char 4)' counts within this line
                    # only: said as a column, it cannot be taken for the line of the input
                    what = getattr(exc, "msg", "").removesuffix(" at")  # 'Unterminated string starting at'
                    why = f" ({what[:1].lower()}{what[1:]} at column {exc.pos + 1})" if hasattr(exc, "pos") else ""
                    raise invalid(f"line {number} is not JSON{why}", line=number) from None
                except RecursionError:
                    raise invalid(f"line {number} is nested too deeply", line=number) from None
            emit(board.create_many(specs, actor=actor))
            return None
        emit(board.create(
            args["TITLE"], actor=actor, body=args["--body"], priority=args["--priority"],
            project=args["--project"], role=args["--role"], assignee=args["--assignee"],
            goal=args["--goal"], depends_on=args["--depends-on"], not_before=args["--not-before"],
            max_attempts=args["--max-attempts"], review=bool(args["--review"]), key=args["--key"],
            kind=args["--kind"]))
    return None


def claim(args):
    from .clock import parse_duration

    agent = _agent(args)
    role = env_or(args, "--role", "KANBAN_ROLE")
    lease = env_or(args, "--lease", "KANBAN_LEASE")
    wait_s = parse_duration(args["--wait"], "--wait") / 1000 if args["--wait"] is not None else 0
    deadline = time.monotonic() + wait_s
    with _board() as board:
        while True:
            if args["--for-review"]:
                answer = board.claim_review(agent, args["ID"], lease=lease)
            else:
                answer = board.claim(agent, args["ID"], role=role, project=args["--project"], lease=lease)
            if answer or args["ID"] or time.monotonic() >= deadline:
                return _nothing(args, answer)
            # real time, even under KANBAN_NOW: poll at most every 250 ms
            while time.monotonic() < deadline:
                board.wait_for_work(min(0.25, max(0.0, deadline - time.monotonic())))
                if args["--for-review"] or board.has_work(agent, role, args["--project"]):
                    break


def lease(args):
    with _board() as board:
        if args["reap"]:
            emit(board.reap(actor=_agent(args, required=False)))
            return
        agent = _agent(args)
        if args["renew"]:
            # --lease, else KANBAN_LEASE (SPEC §2: the two are the one lease), else the claim's
            emit(board.renew(args["ID"], args["--token"], lease=env_or(args, "--lease", "KANBAN_LEASE"),
                             agent=agent))
        else:
            emit(board.release(args["ID"], args["--token"], agent=agent))


def event(args):
    with _board() as board:
        if args["log"]:
            message = args["--message"] if args["--message"] is not None else args["MESSAGE"]
            emit(board.log(args["ID"], message, token=args["--token"], agent=_agent(args), ttl=args["--ttl"]))
            return None
        limit = args["--limit"] or 100
        if not args["--follow"]:
            _show(args, board.events(task=args["--task"], kind=args["--kind"], since=args["--since"],
                                     limit=limit), "events")
            return None
        cursor = args["--since"]
        while True:  # JSON Lines until interrupted
            page = board.events(task=args["--task"], kind=args["--kind"], since=cursor, limit=limit)
            for item in page["events"]:
                sys.stdout.write(dumps(item, ensure_ascii=False) + "\n")
            sys.stdout.flush()
            cursor = page["cursor"]
            if not page["events"]:
                if reader_left():  # nothing to write, and nobody to read it: as git's `| head` ends
                    reader_gone()
                time.sleep(0.25)


def complete(args):
    with _board() as board:
        emit(board.complete(args["ID"], args["--token"], summary=args["--summary"], review=args["--review"],
                            verify=not args["--no-verify"], agent=_agent(args)))


def approve(args):
    with _board() as board:
        emit(board.approve(args["ID"], agent=_agent(args), token=args["--token"], comment=args["--comment"]))


def reject(args):
    with _board() as board:
        emit(board.reject(args["ID"], args["--reason"], agent=_agent(args), token=args["--token"]))


def block(args):
    with _board() as board:
        emit(board.block(args["ID"], args["--reason"], token=args["--token"], agent=_agent(args, False)))


def unblock(args):
    with _board() as board:
        emit(board.unblock(args["ID"], reason=args["--reason"], actor=_agent(args, False)))


def cancel(args):
    with _board() as board:
        emit(board.cancel(args["ID"], reason=args["--reason"], actor=_agent(args, False)))


def move(args):
    with _board() as board:
        emit(board.move(args["ID"], args["COLUMN"], reason=args["--reason"], force=args["--force"],
                        actor=_agent(args, False)))


def reopen(args):
    with _board() as board:
        emit(board.reopen(args["ID"], actor=_agent(args, False)))


def dep(args):
    with _board() as board:
        if args["add"]:
            emit(board.dep_add(args["ID"], args["DEP"], actor=_agent(args, False)))
        elif args["rm"]:
            emit(board.dep_rm(args["ID"], args["DEP"], actor=_agent(args, False)))
        else:
            _show(args, board.dep_list(args["ID"]), "deps")


def show(args):
    with _board() as board:
        from .board import parse_int

        events = parse_int(args["--events"], "--events", minimum=0)
        _show(args, board.show(args["ID"], events=events), "show")


def list(args):  # noqa: A001 - the verb's name
    with _board() as board:
        _show(args, board.list(status=args["--status"], project=args["--project"], assignee=args["--assignee"],
                               goal=args["--goal"], ready=args["--ready"], limit=args["--limit"]), "tasks")


def search(args):
    with _board() as board:
        if not args["QUERY"]:  # the seed's `search --status BLOCKED`: filters alone
            if args["--status"] is None and args["--project"] is None:
                raise usage("search needs a QUERY, or --status/--project to filter on")
            answer = board.list(status=args["--status"], project=args["--project"], limit=args["--limit"])
        else:
            answer = board.search(" ".join(args["QUERY"]), limit=args["--limit"], status=args["--status"],
                                  project=args["--project"])
        empty = None
        if args["QUERY"]:
            from .render import one_line

            empty = f"no task matches {one_line(' '.join(args['QUERY']))!r}"
        _show(args, answer, "tasks", empty)


def comment(args):
    message = args["--message"] if args["--message"] is not None else args["MESSAGE"]
    with _board() as board:
        emit(board.comment(args["ID"], message, actor=_agent(args, False)))


def set(args):  # noqa: A001 - the verb's name
    fields = {name: args[f"--{name.replace('_', '-')}"] for name in (
        "title", "body", "priority", "project", "assignee", "role", "goal", "not_before", "max_attempts")}
    if args["--review"]:
        fields["review"] = True
    elif args["--no-review"]:
        fields["review"] = False
    if args["FIELD"] and not args["--clear"]:
        raise usage(f"{args['FIELD'][0]!r}: name fields to clear after --clear")
    clear = [part.strip().replace("-", "_") for item in args["--clear"] + args["FIELD"]
             for part in item.split(",") if part.strip()]
    with _board() as board:
        emit(board.set(args["ID"], clear=clear, actor=_agent(args, False), **fields))


def batch(args):
    with _board() as board:
        if args["claim"]:
            answer = board.claim_many(_agent(args), args["N"], role=env_or(args, "--role", "KANBAN_ROLE"),
                                      project=args["--project"], lease=env_or(args, "--lease", "KANBAN_LEASE"))
            return _nothing(args, answer)
        if args["complete"]:
            pairs = []
            for pair in args["PAIR"]:
                task, sep, token = pair.rpartition(":")
                if not sep or not task:
                    raise invalid(f"bad pair {pair!r}: expected ID:TOKEN")
                pairs.append((task, token))
            emit(board.complete_many(pairs, agent=_agent(args), verify=not args["--no-verify"]))
        elif args["set-priority"]:
            emit(board.set_many(args["ID"], actor=_agent(args, False), priority=args["N"]))
        else:
            emit(board.set_many(args["ID"], actor=_agent(args, False), project=args["P"]))
    return None


def stats(args):
    if args["--chart"] is None:
        if args["--goal"] is not None or args["--since"] is not None:
            raise usage("--goal and --since go with --chart")
        with _board() as board:
            _show(args, board.stats(), "stats")
        return
    from . import charts, flow
    from .board import parse_id

    fmt = args["--format"] or "table"
    if fmt not in ("json", "table"):
        raise invalid(f"bad --format {fmt!r}: json or table")
    name = args["--chart"]
    if name not in charts.TEXT:
        raise invalid(f"bad --chart {name!r}: one of {', '.join(charts.TEXT)}")
    goal = parse_id(args["--goal"], "goal") if args["--goal"] is not None else None
    with _board() as board:
        if goal is not None and board.show(goal, events=0)["kind"] != "goal":
            raise invalid(f"TASK-{goal} is not a goal")
        history = board.flow_history()
    series = flow.chart(history, name, goal=goal, since=flow.since_ms(args["--since"], history["now"]))
    if fmt == "json":
        emit(series)
    else:
        from .render import tty_columns, use_color

        # the board's rules: colour on a terminal unless NO_COLOR or TERM=dumb; as wide as it
        sys.stdout.write(charts.TEXT[name](series, color=use_color("auto", sys.stdout), columns=tty_columns()) + "\n")


def limit(args):
    scope = {"role": args["--role"], "project": args["--project"], "agent": args["--agent"]}
    actor = os.environ.get("KANBAN_AGENT")  # --agent is the limit's scope, not who sets it
    with _board() as board:
        if args["set"]:
            emit(board.limit_set(args["STATUS"], args["N"], **scope, actor=actor))
        elif args["rm"]:
            emit(board.limit_rm(args["STATUS"], **scope, actor=actor))
        else:
            _show(args, board.limit_list(), "limits")


def prune(args):
    with _board() as board:
        emit(board.prune(args["--before"], vacuum=args["--vacuum"], actor=os.environ.get("KANBAN_AGENT")))


def doctor(args):
    with _board() as board:
        answer = board.doctor()
    _show(args, answer, "doctor")
    if args["--exit-code"] and not answer["ok"]:
        return EXIT_NOTHING
    return None


def backup(args):
    with _board() as board:
        emit(board.backup(args["FILE"]))


def export(args):
    with _board() as board:
        lines = board.export_lines()
    sys.stdout.write("".join(line + "\n" for line in lines))


def import_board(args):
    """`kanban import` (its libexec file names this handler: `import` is Python's word)."""
    name = args["FILE"]
    try:
        # records end at "\n" only: str.splitlines() would also cut at the U+2028, U+2029
        # and U+0085 that an export holds raw inside its strings
        if name in (None, "-"):
            lines = standard_input().read().split("\n")
        else:
            with open(name, encoding="utf-8") as source:
                lines = source.read().split("\n")
    except OSError as exc:
        raise (not_found if exc.errno == errno.ENOENT else invalid)(
            f"cannot read {name}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise invalid(f"{name or 'stdin'} is not UTF-8 text") from None
    with _board() as board:
        emit(board.import_lines(lines))

