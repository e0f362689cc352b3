"""The manual's examples do what the manual says, run as a reader would run them.

Every `.EX`/`.EE` block of every page (man/man1/*.1, man/man7/*.7) and every ```sh
block of README.md, in order, one bash session per page in a scratch folder with a
fresh board and a copy of examples/ (some pages work from a checkout). A block is
run when it is commands (it starts with `kanban`, an assignment or a shell word),
whether or not it is marked `.\\" norun` for tests/test_docs.py; a JSON answer, a
YAML file, a Makefile, a script's text, a crontab line or a board shown as output is
only shown. Each command (a line, with its continuation lines, here-document and
loop body) must exit as the page says:

- every command of its pipeline exits 0, by default;
- a command whose stderr goes into the pipe (`2>&1 |`, `2>&1 >/dev/null |`) shows
  an error: the kanban command at its head exits 2, the rest of the pipe 0;
- a `# exit N` comment says N for the command at its head.

A few answers the pages state are checked word for word (EXPECTED). The commands
that cannot run here are in SKIPPED with the reason: they need a terminal, a server
that runs until stopped, the network, a long-running loop or benchmark, or a script
or file of the reader's own.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_tree  # noqa: E402

ROOT = check_tree.ROOT
PAGES = sorted(
    os.path.relpath(os.path.join(folder, name), ROOT)
    for folder in (os.path.join(ROOT, "man", "man1"), os.path.join(ROOT, "man", "man7"))
    for name in os.listdir(folder) if re.search(r"\.[1-8]$", name)
) + ["README.md"]

TERMINAL = "needs a terminal: it redraws or pages until a person quits"
SERVER = "starts a server that runs until it is stopped"
LOOP = "a worker loop on a script of the reader's own, running until the board is drained or for minutes"
SLOW = "a benchmark: tens of seconds of CPU (tests/test_bench.py runs small ones)"
NETWORK = "builds and installs packages (network, pipx)"
READERS = "needs files of the reader's own that the page shows but does not write"

# (page, the start of a command) -> why it is not run here
SKIPPED = {
    ("man/man1/kanban-board.1", "kanban board --watch"): TERMINAL,
    ("man/man7/kanban-workflow.7", "kanban board --watch"): TERMINAL,
    ("man/man1/kanban-skill.1", "kanban skill --harness claude | less"): TERMINAL,
    ("man/man1/kanban-skill.1", "kanban skill --harness codex > /tmp/block.md"):
        "writes /tmp/block.md, outside the scratch folder",
    ("man/man1/kanban-completion.1", 'kanban completion zsh > "${fpath[1]}/_kanban"'):
        "zsh's $fpath: under bash it is empty and the file would go to /",
    ("man/man1/kanban-completion.1", "kanban completion fish > ~/.config/fish/completions"):
        "fish makes its folder on its first run; the scratch HOME has none",
    ("man/man1/kanban-serve.1", "kanban serve"): SERVER,
    ("man/man1/kanban-mcp.1", "kanban mcp --http"): SERVER,
    ("README.md", "kanban serve"): SERVER,
    ("man/man1/kanban-bench.1", "kanban bench"): SLOW,
    ("man/man1/kanban-bench.1", "TMPDIR=/mnt/shared kanban bench"): SLOW,
    ("man/man1/kanban-work.1", "kanban work --agent w1 -- ./do-task.sh"): LOOP,
    ("man/man1/kanban-work.1", "kanban work --agent alice"): LOOP,
    ("man/man1/kanban-work.1", "kanban work --agent bob"): LOOP,
    ("man/man1/kanban-work.1", "kanban work --agent carol"): LOOP,
    ("man/man1/kanban-work.1", "wait"): LOOP,
    ("man/man1/kanban-work.1", "kanban work --agent w2 --lease 2m"): LOOP,
    ("man/man1/kanban-review.1", "kanban review"): LOOP,
    ("man/man7/kanban-workflow.7", "kanban work --agent worker-1"): LOOP,
    ("README.md", "kanban work"): LOOP,
    ("README.md", "kanban review"): LOOP,
    ("man/man1/kanban-sprint.1", "kanban sprint --work-cmd ./agent.sh"): READERS + " (./agent.sh, ./judge.sh)",
    ("man/man1/kanban-sprint.1", "KANBAN_WORK_CMD=./agent.sh make sprint"): READERS + " (./agent.sh, a Makefile)",
    ("man/man7/kanban-workflow.7", "make sprint"): READERS + " (the Makefile, sprint.yaml)",
    ("man/man7/kanban-workflow.7", "kanban team validate team.yaml"): READERS + " (team.yaml, plan.yaml)",
    ("man/man7/kanban-workflow.7", "KANBAN_AGENT=coordinator kanban plan apply plan.yaml"): READERS,
    ("man/man7/kanban-workflow.7", "kanban team start team.yaml &"): SERVER,
    ("man/man7/kanban-workflow.7", "kanban team status team.yaml"): READERS,
    ("README.md", "kanban plan apply sprint.yaml"): READERS + " (sprint.yaml)",
    ("README.md", "kanban team start"): "a dispatcher that runs until it is stopped",
    ("README.md", "make demo"): "sets up a venv (network) and runs the demo sprint",
    ("README.md", "make test"): "the whole test suite",
    ("README.md", "make dist"): NETWORK,
    ("README.md", "pipx install"): NETWORK,
    ("README.md", "man kanban-claim"): "needs the pipx install above",
    ("README.md", 'export MANPATH="$(kanban --man-path)'): "needs the pipx install above",
}

# (page, the start of a command) -> what it prints, as the page says or implies
EXPECTED = {
    ("man/man1/kanban-import.1", "KANBAN_DB=new.db kanban import"): "1",
    ("man/man1/kanban-prune.1", 'kanban event list --task "$id"'): "created\nclaimed\ncommented",
    ("man/man1/kanban-plan.1", "kanban plan apply sprint.yaml | jq"): '{"created":0,"existing":4}',
    ("man/man1/kanban-approve.1", 'kanban approve "$id" --agent w1 2>&1'): "forbidden",
    ("man/man1/kanban-cancel.1", 'kanban complete "$id" --token "$token"'): "lease_lost",
    ("man/man1/kanban-lease.1", 'kanban lease renew "$id"'): "lease_lost",
    ("man/man1/kanban-team.1", 'kanban show TASK-1 | jq'):
        '{"status":"done","progress":{"total":4,"done":4,"cancelled":0}}',
    ("README.md", 'kanban move TASK-3 todo --force'): None,  # runs (exit 0) and prints the task
}

COMMAND = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=|(kanban|export|unset|cat|printf|mkdir|chmod|for|while|echo|ls|"
                     r"source|timeout|make|sqlite3|pipx|man)\b")
OPENS = re.compile(r"(?:^\s*|[;&|(]\s*|\bdo\s+|\bthen\s+)(while|for|until|if|case)\b")
CLOSES = re.compile(r"(?:^\s*|[;&|]\s*|\s)(done|fi|esac)(?=\s*(?:$|[;&|)>]))")


def blocks(page):
    """The code blocks of a page, as the reader sees them: lists of lines."""
    path = os.path.join(ROOT, page)
    found = []
    if page.endswith(".md"):
        current = None
        with open(path, encoding="utf-8") as handle:
            for line in handle.read().splitlines():
                if current is None and line.startswith("```sh"):
                    current = []
                elif current is not None and line.startswith("```"):
                    found.append(current)
                    current = None
                elif current is not None:
                    current.append(line)
        return found
    current = None
    for line in check_tree.read_page(path):
        if line.startswith(".EX"):
            current = []
        elif line.startswith(".EE"):
            found.append(current)
            current = None
        elif current is not None and not line.startswith('.\\"'):
            current.append(check_tree.roff_text(line))
    return found


def is_commands(lines):
    """A block of commands, not a file, a script's text or an answer shown."""
    meaningful = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not meaningful or (lines and lines[0].startswith("#!")):
        return False
    return bool(COMMAND.match(meaningful[0]))


def commands(lines):
    """Split a block into commands: a line with its continuations (a trailing \\, |, &&
    or ||), its here-document, and a loop's or an if's body up to its end."""
    units, current, depth, heredoc = [], [], 0, None
    for line in lines:
        current.append(line)
        if heredoc is not None:
            if line.strip() == heredoc:
                heredoc = None
            else:
                continue
        else:
            match = re.search(r"<<-?\s*\\?['\"]?(\w+)['\"]?", line)
            if match:
                heredoc = match.group(1)
                continue
            code = line.split(" #", 1)[0]
            depth += len(OPENS.findall(code)) - len(CLOSES.findall(code))
        code = line.split(" #", 1)[0].rstrip()
        if heredoc is None and depth <= 0 and not re.search(r"(\\|\||&&|\|\|)$", code) and code.strip():
            units.append("\n".join(current))
            current, depth = [], 0
        elif not code.strip() and not current[:-1]:
            current = []
    if current and any(line.strip() for line in current):
        units.append("\n".join(current))
    return units


def skip_reason(page, unit):
    for (where, start), reason in SKIPPED.items():
        if where == page and unit.lstrip().startswith(start):
            return reason
    return None


def expectation(unit):
    """((which command, the exit status it must have), or None for 0 everywhere in the
    pipe; a description).  The others of the pipe exit 0; a loop is judged whole."""
    said = re.search(r"#\s*exit (\d+)", unit)
    if said:
        return ("last", int(said.group(1))), f"exit {said.group(1)} for its last command, as its comment says"
    if re.search(r"2>&1( >/dev/null)?\s*\|(?!\|)", unit):
        return ("first", 2), "an error (its stderr goes into the pipe)"
    if re.match(r"\s*(while|for|until|if|case)\b", unit):
        return ("whole", 0), "exit 0"
    return None, "every command of it exits 0"


def plan(page):
    """What the page's examples are: [(command, skip reason or None)]."""
    out = []
    for lines in blocks(page):
        if not is_commands(lines):
            continue
        for unit in commands(lines):
            out.append((unit, skip_reason(page, unit)))
    return out


def _env(tmp):
    env = {key: value for key, value in os.environ.items() if not key.startswith("KANBAN_")}
    env.update(PATH=os.path.join(ROOT, "bin") + os.pathsep + os.environ["PATH"], HOME=str(tmp),
               KANBAN_CEILING_DIRECTORIES=str(tmp), XDG_CONFIG_HOME=str(tmp / ".config"),
               XDG_CACHE_HOME=os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
               MEMBER_DELAY="0", NO_COLOR="1", PAGER="cat", MANPAGER="cat", MANWIDTH="80", LC_ALL="C.UTF-8")
    return env


def run_page(page, tmp):
    """Run a page's examples in one bash session; [(command, statuses, stdout, stderr)]."""
    work = tmp / "work"
    work.mkdir()
    shutil.copytree(os.path.join(ROOT, "examples"), work / "examples")
    env = _env(tmp)
    init = subprocess.run(["kanban", "init"], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    units = [unit for unit, reason in plan(page) if reason is None]
    script = []
    for number, unit in enumerate(units):
        script.append(f"printf '\\n@@{number}@@\\n'; printf '\\n@@{number}@@\\n' >&2\n{unit}\n"
                      f"printf '\\n@@rc {number} %s %s\\n' \"$?\" \"${{PIPESTATUS[*]}}\"")
    (tmp / "examples.sh").write_text("\n".join(script) + "\n")
    proc = subprocess.run(["bash", str(tmp / "examples.sh")], cwd=work, env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)
    outs = re.split(r"\n@@(\d+)@@\n", "\n" + proc.stdout)
    errs = re.split(r"\n@@(\d+)@@\n", "\n" + proc.stderr)
    stdout = {int(outs[i]): outs[i + 1] for i in range(1, len(outs) - 1, 2)}
    stderr = {int(errs[i]): errs[i + 1] for i in range(1, len(errs) - 1, 2)}
    results = []
    for number, unit in enumerate(units):
        text = stdout.get(number, "")
        match = re.search(r"\n?@@rc \d+ (\d+) ([\d ]*)\n?$", text)
        statuses = [int(s) for s in match.group(1, 2)[1].split()] if match else None
        if match and expectation(unit)[0] == ("whole", 0):
            statuses = [int(match.group(1))]  # a loop's status, not its last condition's
        shown = text[:match.start()] if match else text
        results.append((unit, statuses, shown, stderr.get(number, "")))
    return results


def runnable(page):
    return bool(plan(page)) and not all(reason for _, reason in plan(page))


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """Every page's examples, run side by side (each page in its own folder): {page: results}."""
    from concurrent.futures import ThreadPoolExecutor

    pages = [page for page in PAGES if runnable(page)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {page: pool.submit(run_page, page, tmp_path_factory.mktemp("page")) for page in pages}
    return {page: future.result() for page, future in futures.items()}


@pytest.mark.parametrize("page", PAGES)
def test_examples_exit_as_the_page_says(page, ran):
    if not shutil.which("jq"):
        pytest.skip("the examples use jq, which is not installed")
    if not plan(page):
        pytest.skip(f"{page} shows no command to run")
    if not runnable(page):
        pytest.skip(f"{page}: every example is in SKIPPED (" + "; ".join(sorted({r for _, r in plan(page)})) + ")")
    problems = []
    seen = set()
    for unit, statuses, out, err in ran[page]:
        want, said = expectation(unit)
        if statuses is None:
            problems.append(f"{unit!r} did not finish:\n{err[-1500:]}")
            continue
        if want is None:
            ok = all(status == 0 for status in statuses)
        else:
            which, status = want
            at = -1 if which == "last" else 0
            rest = statuses[:-1] if which == "last" else statuses[1:]
            ok = statuses[at] == status and all(other == 0 for other in rest)
        if not ok:
            problems.append(f"{unit!r}: exit statuses {statuses}, where the page says {said}\n"
                            f"--- stdout\n{out[-1500:]}\n--- stderr\n{err[-1500:]}")
        assert "Traceback" not in err, f"{unit!r}:\n{err}"
        for (where, start), expected in EXPECTED.items():
            if where == page and unit.lstrip().startswith(start):
                seen.add(start)
                if expected is not None and out.strip() != expected:
                    problems.append(f"{unit!r} printed {out.strip()!r}, where the page says {expected!r}")
    assert not problems, f"{page}:\n\n" + "\n\n".join(problems)
    assert seen == {start for where, start in EXPECTED if where == page}, "an EXPECTED command is gone"


def test_every_plumbing_page_and_the_guides_have_examples_that_run():
    tree = check_tree.Tree(ROOT)
    pages = [f"man/man1/kanban-{verb}.1" for verb, kind, _ in tree.verbs() if kind == "plumbing"]
    pages += ["man/man1/kanban.1", "man/man7/kanban-workflow.7"]
    assert [page for page in pages if not runnable(page)] == []


def test_every_skipped_command_is_on_its_page():
    # a SKIPPED entry that matches nothing is a stale reason: the page changed
    planned = {page: [unit for unit, _ in plan(page)] for page in PAGES}
    stale = [(page, start) for page, start in SKIPPED
             if not any(unit.lstrip().startswith(start) for unit in planned[page])]
    assert stale == []


def test_the_splitting_keeps_a_command_whole():
    lines = ['kanban complete "$id" \\', '    --token "$t" | jq .status',
             "while task=$(kanban claim --exit-code); do", '    id=$(echo "$task")', "done",
             "cat > f <<'EOF'", "a: 1", "EOF", "for n in 1 2; do kanban create \"T $n\"; done",
             "kanban list |", "    jq .tasks   # a comment"]
    assert commands(lines) == [
        'kanban complete "$id" \\\n    --token "$t" | jq .status',
        'while task=$(kanban claim --exit-code); do\n    id=$(echo "$task")\ndone',
        "cat > f <<'EOF'\na: 1\nEOF",
        'for n in 1 2; do kanban create "T $n"; done',
        "kanban list |\n    jq .tasks   # a comment"]
    assert expectation("kanban dep add a b 2>&1 | jq -r .code")[0] == ("first", 2)
    assert expectation("printf x |\n    kanban plan lint -    # exit 2: cycle")[0] == ("last", 2)
    assert expectation("kanban show X >/dev/null 2>&1 || echo $?")[0] is None
    assert expectation("kanban list | jq .tasks")[0] is None
    assert len(commands(["while x; do", "    if [ a ]; then", "        b", "    fi", "done", "c"])) == 2
    assert commands(['kanban complete "$id" \\', '    --summary "it: done" >/dev/null', "kanban list"]) == [
        'kanban complete "$id" \\\n    --summary "it: done" >/dev/null', "kanban list"]
    assert not is_commands(["{\"id\": 1}"]) and not is_commands(["#!/bin/sh", "echo hi"])
    assert not is_commands(["name: sprint"]) and not is_commands(["15 3 * * *  kanban prune"])
    assert is_commands(["# a note", "kanban init"])
