"""`kanban completion bash|zsh|fish`: completion for the three shells, from the one
list of verbs.

Each shell's script (kanban.bash, kanban.zsh, kanban.fish beside this module; `make
install` installs what this command prints) is a thin adapter: on TAB it runs
`kanban completion --complete -- WORDS...` and shows what that prints, one
candidate a line as `VALUE<TAB>DESCRIPTION` (zsh and fish show the descriptions,
bash only the values), or a line `:files` (let the shell complete paths: folders
end in `/`) or `:commands` (command names, after `--`).

The candidates come from kanban itself, so they never go stale: the verbs and their
summaries from the command files (as `kanban commands`), each verb's options,
sub-commands and operands from its usage text, option values from what the verbs
accept, and task ids from the board, filtered by what the verb takes (complete and
heartbeat: the tasks you hold; approve and reject: tasks in review; unblock: blocked
ones; ...), with their titles as descriptions.
"""
import os
import re
import sys

from . import paths

SHELLS = ("bash", "zsh", "fish")
GLOBAL_OPTIONS = (("--help", "the verbs, grouped"), ("--version", "kanban's version"),
                  ("--exec-path", "the plumbing folder"), ("--man-path", "the man page folder"))
STATUSES = ("todo", "in_progress", "in_review", "blocked", "done", "failed", "cancelled")
VALUES = {
    "--status": STATUSES,
    "--kind": ("task", "goal"),
    "--color": ("auto", "always", "never"),
    "--format": ("json", "table"),
    "--mode": ("cli", "api"),
}
FORMATS = {"board": ("table", "markdown", "json"), "standup": ("table", "json"), "team": ("text", "json")}
# which tasks a verb (or verb and sub-command) takes as its ID
TASKS_FOR = {
    "complete": "held", "lease renew": "held", "lease release": "held", "block": "open",
    "approve": ("in_review",), "reject": ("in_review",), "unblock": ("blocked",),
    "reopen": ("done", "failed", "cancelled"), "cancel": ("todo", "in_progress", "in_review", "blocked"),
    "claim": ("todo",), "move": "any", "show": "any", "comment": "any", "set": "any", "dep": "any",
    "event log": "any", "event list": "any",
}
MOVE_COLUMNS = ("todo", "in_review", "blocked", "done", "cancelled")


def script(shell="bash"):
    with open(paths.completion_script(shell), encoding="utf-8") as handle:
        return handle.read()


def completion(args):
    """porcelain/kanban-completion"""
    if args.get("--complete"):
        words = list(args.get("WORD") or [])
        for value, description in candidates(words[:-1], words[-1] if words else ""):
            sys.stdout.write(f"{value}\t{description}\n" if description else f"{value}\n")
        return 0
    shell = next((s for s in SHELLS if args.get(s)), "bash")
    sys.stdout.write(script(shell))
    return 0


# -- what to offer ----------------------------------------------------------------------------

def _verbs():
    from .dispatch import ALIASES, commands

    found = [(c["name"], c["summary"]) for c in commands(paths.ROOT)]
    found += [(alias, "alias of kanban " + " ".join([verb, *lead])) for alias, (verb, lead) in ALIASES.items()]
    found += [("help", "open a verb's manual"), ("commands", "every verb, as JSON")]
    return sorted(found)


def _help_text(verb):
    from .cli import read_header
    from .dispatch import find_verb

    path = find_verb(paths.ROOT, verb)
    return read_header(path)[2] if path else None


def _option_help(help_text):
    """{--option: its one-line description} from the Options section."""
    found = {}
    for line in help_text.splitlines():
        match = re.match(r"\s+(--[a-z][a-z0-9-]*)(?:=\S+)?\s{2,}(.*)", line)
        if match:
            found.setdefault(match.group(1), match.group(2).strip())
    return found


def _tasks(which, title=True):
    """(id, title) of the board's tasks a verb takes; nothing when there is no board."""
    from .board import Board
    from .errors import KanbanError

    try:
        with Board() as board:
            tasks = board.list(limit=1000)["tasks"]
    except KanbanError:
        return []
    if which == "held":
        agent = os.environ.get("KANBAN_AGENT")
        tasks = [t for t in tasks if t["status"] == "in_progress" and (not agent or t["claimed_by"] == agent)]
    elif which == "open":
        tasks = [t for t in tasks if t["status"] in ("todo", "in_progress")]
    elif which != "any":
        tasks = [t for t in tasks if t["status"] in which]
    from .render import one_line

    return [(t["id"], one_line(f"{t['status']}: {t['title']}") if title else "") for t in tasks]


def _goals():
    return [(t, d) for t, d in _tasks("any") if t in _goal_ids()]


def _goal_ids():
    from .board import Board
    from .errors import KanbanError

    try:
        with Board() as board:
            return {t["id"] for t in board.list(kind="goal", limit=1000)["tasks"]}
    except (KanbanError, TypeError):
        return set()


def _values(verb, option):
    if option == "--format" and verb in FORMATS:
        return [(v, "") for v in FORMATS[verb]]
    if option == "--kind" and verb == "event":  # an event's kind, not a task's
        from .board import EVENT_KINDS

        return [(k, "") for k in EVENT_KINDS]
    if option == "--chart":
        from .charts import TEXT

        return [(c, "") for c in TEXT]
    if option == "--clear":
        from .board import CLEARABLE

        return [(f, "") for f in CLEARABLE]
    if option in VALUES:
        return [(v, "") for v in VALUES[option]]
    if option == "--harness":
        from .skill import HARNESSES

        return [(h, HARNESSES[h][0]) for h in HARNESSES]
    if option == "--goal":
        return _goals()
    if option in ("--depends-on", "--task"):
        return _tasks("any")
    if option == "--project":
        from .board import Board
        from .errors import KanbanError

        try:
            with Board() as board:
                return [(p, "") for p in board.projects()]
        except KanbanError:
            return []
    return []


def _filter(found, prefix):
    return [(v, d) for v, d in found if v.startswith(prefix)]


def candidates(words, cur):
    """[(value, description)] to complete `cur`, the words before it being `words`
    (after `kanban`); [(":files", "")] or [(":commands", "")] to let the shell do it."""
    from .argv import grammar
    from .diagnose import _subcommands

    head = [w for w in words if w.startswith("-")] if words and all(w.startswith("-") for w in words) else []
    if not words or head == words:
        if cur.startswith("-"):
            return _filter(list(GLOBAL_OPTIONS), cur)
        return _filter(_verbs(), cur)
    verb, rest = words[0], list(words[1:])
    from .dispatch import ALIASES

    if verb in ALIASES:
        verb, lead = ALIASES[verb]
        rest = list(lead) + rest
    if verb == "help":
        return _filter(_verbs() + [("workflow", "the guide to a sprint (kanban-workflow(7))")], cur) \
            if not rest else []
    if verb == "commands":
        return _filter([("--format=json", ""), ("--format=table", "")], cur)
    help_text = _help_text(verb)
    if help_text is None:
        return []
    if "--" in rest:  # work, review: a command, then its arguments
        return [(":commands", "")] if rest.index("--") == len(rest) - 1 else [(":files", "")]
    options, words_set = grammar(help_text)
    described = _option_help(help_text)
    if cur.startswith("--") and "=" in cur:
        option, _, value = cur.partition("=")
        return [(f"{option}={v}", d) for v, d in _values(verb, option) if v.startswith(value)]
    if rest and rest[-1] in options and options[rest[-1]] and "=" not in rest[-1]:
        return _filter(_values(verb, rest[-1]), cur)
    if cur.startswith("-"):
        return _filter(sorted((o, described.get(o, "")) for o in options if o != "--help"), cur)
    # the operands so far: words that are neither options nor option values
    operands, skip = [], False
    for word in rest:
        if skip:
            skip = False
        elif word.startswith("--"):
            skip = options.get(word.split("=", 1)[0], False) and "=" not in word
        else:
            operands.append(word)
    subs = _subcommands(help_text, verb, set(words_set) - {verb, "kanban"})
    if subs and not operands:
        return _filter(sorted((s, "") for s in subs), cur)
    usage = _usage_after(help_text, verb, operands[:1] if subs else [])
    wanted = usage[len(operands) - (1 if subs else 0)] if len(usage) > len(operands) - (1 if subs else 0) else \
        (usage[-1] if usage and usage[-1].endswith("...") else None)
    if wanted is None:
        return []
    name = wanted.rstrip(".")
    if name in ("FILE", "MANIFEST", "DEST"):
        return [(":files", "")]
    if name == "COLUMN" and verb == "move":
        return _filter([(c, "") for c in MOVE_COLUMNS], cur)
    if name == "STATUS" and verb == "limit":  # WIP limits are on these two columns
        return _filter([("in_progress", ""), ("in_review", "")], cur)
    if name in ("ID", "DEP", "PAIR"):
        key = " ".join([verb] + operands[:1]) if subs else verb
        which = TASKS_FOR.get(key, TASKS_FOR.get(verb, "any"))
        return _filter(_tasks(which), cur)
    return []


def _usage_after(help_text, verb, sub):
    """The operand names of the usage line for `kanban VERB [SUB]`, in order."""
    from .cli import usage_section

    for line in usage_section(help_text).splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[0] != "kanban" or parts[1] != verb:
            continue
        tail = parts[2:]
        if sub:
            alternatives = re.split(r"[\[\]()|]+", tail[0]) if tail else []
            if sub[0] not in alternatives:
                continue
            tail = tail[1:]
        return [re.sub(r"[\[\]()]", "", t) for t in tail
                if re.fullmatch(r"[\[(]*[A-Z][A-Z_]*(\.\.\.)?[\])]*(\.\.\.)?", t)]
    return []
