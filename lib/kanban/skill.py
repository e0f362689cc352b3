"""The agent skill: the protocol an agent follows to work on a kanban board, written
where each agent looks for its instructions.

`kanban skill --harness NAME` prints the text; `kanban init --harness NAME...`
installs it, checked against each agent's own documentation:

- claude: a project skill, .claude/skills/kanban/SKILL.md, with `name` and
  `description` front matter (https://code.claude.com/docs/en/skills).
- codex: AGENTS.md at the project root, which Codex reads from the Git root down to
  the working folder (https://developers.openai.com/codex/guides/agents-md).
- gemini: GEMINI.md at the project root, Gemini CLI's context file, loaded from the
  workspace folders and their parents (https://geminicli.com/docs/cli/gemini-md).
- pi: a project skill, .pi/skills/kanban/SKILL.md, with `name` and `description`.
  Older pi wanted the name equal to the folder's
  (https://github.com/badlogic/pi-mono/blob/main/packages/coding-agent/docs/skills.md);
  current pi does not, and loads project skills only once the project is trusted
  (https://pi.dev/docs/latest/skills, https://pi.dev/docs/latest/configuration).
  `kanban` in a `kanban/` folder suits both.
- generic: AGENTS.md, the open format many agents read (https://agents.md).

A SKILL.md under .claude/ or .pi/ is kanban's own file: written when missing,
refreshed only with --force, and never one kanban did not write.  AGENTS.md and
GEMINI.md belong to the user: kanban writes only a block between its markers and
updates that block in place; every byte outside it stays as it was.
"""
import os

from . import paths
from .errors import KanbanError

# harness -> (file relative to the project, "own" file or a "block" in the user's file)
HARNESSES = {
    "claude": (os.path.join(".claude", "skills", "kanban", "SKILL.md"), "own"),
    "codex": ("AGENTS.md", "block"),
    "gemini": ("GEMINI.md", "block"),
    "pi": (os.path.join(".pi", "skills", "kanban", "SKILL.md"), "own"),
    "generic": ("AGENTS.md", "block"),
}
DEFAULT_HARNESS = "generic"
MARKER = "<!-- written by kanban (kanban skill / kanban init --harness); edit the source, not this copy -->"
BEGIN = "<!-- BEGIN kanban: written by `kanban init --harness`; kanban rewrites this block, edit outside it -->"
END = "<!-- END kanban -->"
BEGIN_PREFIX = "<!-- BEGIN kanban"

# one line each: pi's front-matter parser reads single-line `key: value` pairs
FRONT_MATTER = (
    "---\n"
    "name: kanban\n"
    "description: Coordinate with other agents through the shared kanban board - claim a task, keep its lease"
    " alive, log progress, complete or block it, review others' work. Use when the project has a .kanban/ folder"
    " or KANBAN_DB is set, or when asked to take work from the board.\n"
    "---\n"
)

# how each agent runs a command, and when its MCP route is the better one
HOW = {
    "claude": """## In Claude Code

Run every `kanban` command with the Bash tool, one command per call, and read its JSON
answer (pipe through `jq` when you need one field). For long loops prefer the MCP
tools: `claude mcp add kanban -- kanban mcp` (or a `.mcp.json` at the project root
with `{"mcpServers": {"kanban": {"command": "kanban", "args": ["mcp"]}}}`) gives you
`kanban_claim`, `kanban_heartbeat`, `kanban_complete`, `kanban_block`, ... with the
same JSON, and the lease token is remembered for you.
""",
    "codex": """## In Codex

Run `kanban` commands in the shell (one command per call) and read the JSON they print.
With the MCP server configured, the `kanban_*` tools do the same and remember your
lease token: `codex mcp add kanban -- kanban mcp` (it writes `~/.codex/config.toml`),
or this table in `~/.codex/config.toml`, or in the project's `.codex/config.toml`
(read only in a trusted project):

```toml
[mcp_servers.kanban]
command = "kanban"
args = ["mcp"]
```
""",
    "gemini": """## In Gemini CLI

Run `kanban` commands with the `run_shell_command` tool and read the JSON they print.
With the MCP server configured, the `kanban_*` tools do the same and remember your
lease token: `gemini mcp add kanban kanban mcp` writes it into the project's
`.gemini/settings.json` (add `-s user` for `~/.gemini/settings.json`):

```json
{"mcpServers": {"kanban": {"command": "kanban", "args": ["mcp"]}}}
```

Where folder trust is turned on, an untrusted folder's `.gemini/settings.json` is
ignored and no MCP server connects: the shell commands still work.
""",
    "pi": """## In pi

Run `kanban` commands with the `bash` tool and read the JSON they print: that works in
every pi. A pi with MCP support (`/mcp` answers) can use the `kanban_*` tools instead,
which remember your lease token: add the server to `~/.pi/agent/mcp.json`, or to the
project's `.pi/mcp.json` (read only in a trusted project):

```json
{"mcpServers": {"kanban": {"command": "kanban", "args": ["mcp"], "exposure": "direct"}}}
```

`"exposure": "direct"` declares the tools to you; without it pi offers them only to
codemode scripts. Older pi versions have no MCP client: use the shell commands.
""",
    "generic": """## Running the commands

Run `kanban` commands in a shell and read the JSON they print. Agents with an MCP
client can use `kanban mcp` (stdio) instead: the `kanban_*` tools take and return the
same JSON and remember the lease token.
""",
}

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
   Before it runs out, log progress, which renews it when you pass the token (without
   `--token` it is only a note: the answer's `data` has no `lease_until`):
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
| `lease_lost` | "no lease token given", or your token is stale | none given: add `--token T`; stale: claim another |
| `conflict` | the task's state does not allow it (e.g. completing a todo task) | `kanban show ID`, then decide |
| `forbidden` | a gate refused you (self-review, a task assigned to someone else) | leave it to someone else |
| `busy` | the board stayed locked (`retryable: true`) | wait a moment and retry the same command |
| `hook_rejected` | a pre-complete hook refused (its output in `detail`) | fix it, complete again |
| `not_found`, `invalid`, `usage`, `cycle` | your command is wrong | fix the command; do not retry as is |
| `db_error`, `internal` | the board itself is in trouble | stop and tell a person |

Only `busy` is worth retrying unchanged. Never loop on an error.
"""
PROTOCOL_MORE = """## Events

`kanban event list --task ID` is a task's history (who claimed, renewed, completed,
rejected and why); `kanban event list --since CURSOR` returns what happened after a
cursor a previous answer gave (`--follow` streams JSON Lines), so you can watch the
board without polling every task. `kanban show ID` has the last events too.

## Batch

`kanban batch claim N` claims up to N tasks in one transaction; `kanban batch complete
ID:TOKEN ...` completes several; `kanban batch set-priority N ID...` and `kanban batch
set-project P ID...` change many. All or nothing: one failure changes nothing.

## Team boards

On a team board (`kanban team start team.yaml`) a role gate applies: only the
coordinator creates, assigns, links and cancels; only the assignee completes, blocks,
unblocks and heartbeats; anyone in the team comments, shows and lists. Whoever is
neither a member nor an operator is refused (`forbidden`). The dispatcher gives you a
task with `KANBAN_TASK_ID` and `KANBAN_LEASE_TOKEN` in your environment: heartbeat
while you work, complete or block when you stop. Blocked work waits for the
coordinator (or you, with `kanban unblock`).

People may move a card by hand (`kanban move ID COLUMN --force`): if that was your
task, your next write fails with `lease_lost`. Stop and claim another.
"""


def _check(harness):
    if harness not in HARNESSES:
        raise KanbanError("invalid", f"unknown harness {harness!r}: one of {', '.join(HARNESSES)}",
                          harness=harness)
    return harness


def text(harness=None):
    """The skill for a harness: a whole SKILL.md, or the block written into AGENTS.md/GEMINI.md."""
    harness = _check(harness or DEFAULT_HARNESS)
    _place, kind = HARNESSES[harness]
    body = f"{PROTOCOL}\n{HOW[harness]}\n{PROTOCOL_MORE}"
    if kind == "own":
        return f"{FRONT_MATTER}{MARKER}\n\n{body}"
    return f"{BEGIN}\n\n{body}\n{END}\n"


def project_folder(board):
    """Where the agent files go: the folder holding .kanban/, else the working folder.
    `board` is a location as KANBAN_DB takes it (a path, sqlite:///..., file:...)."""
    from .store import locate

    where = locate(board)
    if not where.is_server:
        folder = os.path.dirname(os.path.abspath(where.target))
        if os.path.basename(folder) == ".kanban":
            return os.path.dirname(folder)
    return os.getcwd()


def _read(path):
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise KanbanError("invalid", f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}",
                          path=path) from None


def with_block(existing, block):
    """The user's file with kanban's block put in place of the old one, or appended;
    every byte outside the markers kept."""
    if existing is None or existing == "":
        return block
    # any kanban's block, older texts included: the first END with a BEGIN before it, and
    # the last such BEGIN, so that a BEGIN whose END the user deleted (their text after
    # it) is never taken as the start of a block ending at the next kanban block's END
    begin, end = -1, existing.find(END)
    while end >= 0:
        begin = existing.rfind(BEGIN_PREFIX, 0, end)
        if begin >= 0:
            break
        end = existing.find(END, end + len(END))
    if begin >= 0 and end >= 0:
        after = end + len(END)
        if existing.startswith("\n", after):
            after += 1
        return existing[:begin] + block + existing[after:]
    sep = "" if existing.endswith("\n\n") else "\n" if existing.endswith("\n") else "\n\n"
    return existing + sep + block


def dangling_link(path):
    """The first symbolic link on the way to `path` (a folder above it, or the file
    itself) whose target does not exist, as (link, what it names); None when there is
    none.  Writing through such a link would create the file or folders it names,
    wherever that is: outside the project as easily as inside it."""
    path = os.path.abspath(path)
    head, parts = path, []
    while True:
        head, tail = os.path.split(head)
        if not tail:
            break
        parts.append(tail)
    here = head
    for part in reversed(parts):
        here = os.path.join(here, part)
        if os.path.islink(here):
            if not os.path.exists(here):
                return here, os.readlink(here)
        elif not os.path.lexists(here):
            return None  # nothing further down exists: nothing to follow
    return None


def refuse_dangling_link(path):
    """A clear `conflict` before anything is written when `path` leads through a link
    to nothing (see dangling_link)."""
    found = dangling_link(path)
    if found:
        link, target = found
        raise KanbanError("conflict", f"{link} is a symbolic link to {target}, which does not exist: kanban "
                          "creates nothing a link points to, so remove the link or create its target",
                          path=path, link=link, target=target)


def plan(harnesses, project, force=False):
    """[(harness, path, new content or None when left as is, action)]: every check made
    before anything is written."""
    harnesses = [_check(h) for h in dict.fromkeys(harnesses or [])]
    # codex and generic share AGENTS.md: Codex's text says everything the generic one does
    if "codex" in harnesses and "generic" in harnesses:
        harnesses.remove("generic")
    out, planned = [], {}  # the real file behind each path -> its action
    for harness in harnesses:
        place, kind = HARNESSES[harness]
        path = os.path.join(project, place)
        refuse_dangling_link(path)
        real = os.path.realpath(path)
        if real in planned:  # GEMINI.md a link to AGENTS.md (or both to CLAUDE.md): one block serves both
            out.append((harness, path, None, planned[real]))
            continue
        existing = _read(path)
        wanted = text(harness)
        if kind == "block":
            content = with_block(existing, wanted)
        else:
            content = wanted
            if existing is not None and MARKER not in existing:
                raise KanbanError("conflict", f"{path} exists and was not written by kanban: not replacing it",
                                  path=path, harness=harness)
            if existing is not None and existing != wanted and not force:
                out.append((harness, path, None, "kept"))  # kanban's own file: refreshed with --force
                continue
        action = "unchanged" if existing == content else "created" if existing is None else "updated"
        planned[real] = action
        out.append((harness, path, None if action == "unchanged" else content, action))
    return out


def write(planned):
    """Write what plan() decided: [{"harness", "path", "action"}].  A path that is a
    symbolic link (AGENTS.md -> CLAUDE.md) is written through: the file it names gets
    the text and the link stays a link.  plan() refused a link to nothing."""
    done = []
    for harness, path, content, action in planned:
        if content is not None:
            try:
                target = os.path.realpath(path)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                paths.replace_file(target, content, tmp=f"{target}.kanban-tmp")
            except OSError as exc:
                raise KanbanError("db_error", f"cannot write {path}: {exc.strerror}", path=path) from None
        done.append({"harness": harness, "path": path, "action": action})
    return done


def install(harnesses, project, force=False):
    """Install the skill for each harness under `project`; what was done to each file."""
    return write(plan(harnesses, project, force))


GITIGNORE = """# written by kanban init: the board's runtime files stay out of git
# (hooks/, teams/ and anything else you put here are yours to commit)
*.db
*.db-wal
*.db-shm
*.db-journal
*.lock
*.tmp
*.log
*.pid
"""


def write_gitignore(board_dir):
    """.kanban/.gitignore for the board's runtime files; a user's own file is left alone,
    and so is a link to nothing (writing through it would create the file it names)."""
    path = os.path.join(board_dir, ".gitignore")
    if os.path.lexists(path):
        return path if os.path.exists(path) else None
    try:
        with open(path, "x", encoding="utf-8") as handle:  # O_EXCL: never through a link
            handle.write(GITIGNORE)
    except OSError:
        return None  # a read-only folder: the board works without it
    return path


def ignore_runtime_files(db):
    """The .kanban/.gitignore of a board file made in a .kanban folder (`kanban init`, or
    `team start` in a folder without a board): its path, or None (a server board, a file
    elsewhere, a read-only folder)."""
    from .store import is_server

    if is_server(db) or os.path.basename(os.path.dirname(db)) != ".kanban":
        return None
    return write_gitignore(os.path.dirname(db))


def skill(args):
    """porcelain/kanban-skill"""
    import sys

    if args["--list"]:
        sys.stdout.write("".join(f"{name}\n" for name in HARNESSES))
        return 0
    sys.stdout.write(text(args["--harness"]))
    return 0
