"""The agent skill: the protocol an agent follows to work on a kanban board.

`kanban skill --harness NAME` prints it; `kanban init --harness NAME` writes it to
.kanban/skills/<harness>/SKILL.md next to the board (install below), where a
harness can be pointed at it.  The text is the same for every harness; only the
header differs (front matter for harnesses that load SKILL.md files, a line on
where to hook it in for the others).
"""
import os

from .errors import KanbanError

# harness -> (front matter?, how to load the file)
HARNESSES = {
    "claude": (True, "Claude Code loads skills from .claude/skills/<name>/SKILL.md: link this file there,\n"
                     "e.g. `mkdir -p .claude/skills/kanban && ln -s ../../../.kanban/skills/claude/SKILL.md "
                     ".claude/skills/kanban/`."),
    "codex": (False, "Codex reads AGENTS.md: add a line there saying\n"
                     "\"Coordinate through the kanban board: follow .kanban/skills/codex/SKILL.md\"."),
    "gemini": (False, "Gemini CLI reads GEMINI.md: add a line there saying\n"
                      "\"Coordinate through the kanban board: follow .kanban/skills/gemini/SKILL.md\"."),
    "pi": (True, "pi loads skills from a skills folder: link or copy this file into it as kanban/SKILL.md."),
    "generic": (False, "Give this file to the agent as part of its instructions."),
}
DEFAULT_HARNESS = "generic"
MARKER = "<!-- written by kanban (kanban skill / kanban init --harness); edit the source, not this copy -->"

FRONT_MATTER = """---
name: kanban
description: Coordinate with other agents through a shared kanban board (claim a task, keep its lease alive,
  log progress, complete or block it, review others' work). Use when the project has a .kanban/ folder or
  KANBAN_DB is set, or when asked to take work from the board.
---
"""

PROTOCOL = """# kanban: how to work on the shared board

Several agents share one task board. The board is the only coordination point: never
keep your own list of who does what, never edit the database file, and never work on a
task you have not claimed. Every command prints one JSON document on stdout.

Set your identity once: `export KANBAN_AGENT=<your-name>` (and `KANBAN_ROLE=<role>` if
you have one). The board is `.kanban/board.db` in this folder or a parent, or `$KANBAN_DB`.

## The work loop

1. **Claim** the best ready task:
   `kanban claim --exit-code` (alias `claim-next`; add `--role R`, `--project P`).
   The answer is the task JSON plus `lease_token`. `{}` with exit status 1 means there
   is nothing for you to do: stop, or wait with `--wait 5m`.
   Keep `id` and `lease_token`: every write you make about the task needs both.
2. **Read** it: `kanban show ID` (body, comments, why a past attempt was rejected).
3. **Keep the lease alive.** A claim holds the task for 15 minutes (`--lease D`).
   Before it runs out, log progress, which renews it:
   `kanban log-progress ID --token T --message "tests pass, writing docs"`
   or just `kanban heartbeat ID --token T`. If your lease expires, another agent
   gets the task and your token stops working.
4. **Finish** it, with a one-line summary:
   `kanban complete ID --token T --summary "what you did"`.
   Add `--review` when the work should be checked by someone else first (some tasks
   always go through review). A `pre-complete` hook may refuse the completion
   (`hook_rejected`, its output in `detail`): fix what it says and complete again.
5. **Stuck?** Block it with what you need: `kanban block ID --token T --reason "..."`.
   **Giving it back** unfinished (no attempt counted): `kanban lease release ID --token T`.
6. Go back to 1.

Running a command per task instead? `kanban work --agent A -- CMD...` does this loop
for you: CMD gets the task JSON on stdin and `KANBAN_TASK_ID`, `KANBAN_LEASE_TOKEN`,
`KANBAN_DB` in its environment; exit 0 completes the task, anything else blocks it.

## Reviewing

`kanban claim --for-review` claims a task waiting in review (never one you worked
on: self-review is `forbidden`). Then `kanban approve ID --token T [--comment C]`, or
`kanban reject ID --token T --reason "what must change"` (the task goes back to todo
with your reason). `kanban review --agent R -- CMD...` runs this as a loop.

## Managing

- `kanban create "title" [--body B] [--priority N] [--role R] [--assignee A]
  [--depends-on ID,...] [--goal ID] [--review] [--key K]`; goals: `--kind goal`.
  `--key` makes a create safe to repeat. Many at once: `kanban create --stdin`
  (JSON Lines; `goal` and `depends_on` may name keys of the same batch).
- `kanban list --status blocked`, `kanban board` (for people), `kanban search WORDS`.
- `kanban unblock ID`, `kanban cancel ID --reason R`, `kanban reopen ID`,
  `kanban dep add ID DEP`, `kanban comment ID --message M`.

## Exit status and errors

- `0`: done; the answer is on stdout.
- `1`: nothing to do (only with `--exit-code`), stdout is `{}`.
- `2`: an error. Nothing on stdout; stderr has one JSON line:
  `{"error": "<for a person>", "code": "<code>", "retryable": <bool>}`.

What to do about each code:

| code | meaning | what you do |
|---|---|---|
| `lease_lost` | your token is stale: the lease ran out or the task moved on | stop work on that task; claim another |
| `conflict` | the task's state does not allow it (e.g. completing a todo task) | `kanban show ID`, then decide |
| `forbidden` | a gate refused you (self-review, a task assigned to someone else) | leave it to someone else |
| `busy` | the board stayed locked (`retryable: true`) | wait a moment and retry the same command |
| `hook_rejected` | a pre-complete hook refused (its output in `detail`) | fix it, complete again |
| `not_found`, `invalid`, `usage`, `cycle` | your command is wrong | fix the command; do not retry as is |
| `db_error`, `internal` | the board itself is in trouble | stop and tell a person |

Only `busy` is worth retrying unchanged. Never loop on an error.
"""


def _check(harness):
    if harness not in HARNESSES:
        raise KanbanError("invalid", f"unknown harness {harness!r}: one of {', '.join(HARNESSES)}",
                          harness=harness)
    return harness


def text(harness=None):
    """The skill for a harness, as the file it is written to."""
    harness = _check(harness or DEFAULT_HARNESS)
    front, how = HARNESSES[harness]
    head = FRONT_MATTER if front else ""
    note = "\n".join(f"<!-- {line} -->" for line in how.splitlines())
    return f"{head}{MARKER}\n{note}\n\n{PROTOCOL}"


def install(harnesses, board_dir):
    """Write <board_dir>/skills/<harness>/SKILL.md for each harness; the paths written.

    Files under a .kanban folder are kanban's and are rewritten.  Elsewhere (a board
    kept outside .kanban/) an existing file is replaced only if kanban wrote it.
    """
    harnesses = [_check(h) for h in dict.fromkeys(harnesses or [])]  # all valid before any write
    ours = os.path.basename(os.path.normpath(os.path.abspath(board_dir))) == ".kanban"
    written = []
    for harness in harnesses:
        folder = os.path.join(os.path.abspath(board_dir), "skills", harness)
        path = os.path.join(folder, "SKILL.md")
        content = text(harness)
        try:
            with open(path, encoding="utf-8") as handle:
                existing = handle.read()
        except FileNotFoundError:
            existing = None
        except OSError as exc:
            raise KanbanError("invalid", f"cannot read {path}: {exc.strerror}", path=path) from None
        if existing is not None and not ours and MARKER not in existing:
            raise KanbanError("conflict", f"{path} exists and was not written by kanban: not replacing it",
                              path=path)
        if existing != content:
            try:
                os.makedirs(folder, exist_ok=True)
                tmp = path + ".tmp"
                with open(tmp, "w", encoding="utf-8") as handle:
                    handle.write(content)
                os.replace(tmp, path)
            except OSError as exc:
                raise KanbanError("db_error", f"cannot write {path}: {exc.strerror}", path=path) from None
        written.append(path)
    return written


def skill(args):
    """porcelain/kanban-skill"""
    import sys

    if args["--list"]:
        sys.stdout.write("".join(f"{name}\n" for name in HARNESSES))
        return 0
    sys.stdout.write(text(args["--harness"]))
    return 0
