"""`kanban board` in a real terminal (tmux): colour on a TTY only, NO_COLOR and --color,
never wider than the pane at 80 and 160 columns, CJK and emoji aligned, --watch redraws
in place until Ctrl-C, a long board goes through the pager, control characters escaped."""
import json
import os
import re
import shutil
import subprocess
import time
import uuid

import pytest
from conftest import ROOT, run

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (.ci/run installs it when run as root)")
SGR = re.compile(r"\x1b\[[0-9;]*m")


def display_width(text):
    from kanban.render import width

    return width(text)


class Pane:
    """One tmux session of a given size on a private server, running bash."""

    def __init__(self, columns, env):
        self.socket = f"kanban-test-{uuid.uuid4().hex[:8]}"
        self.columns = columns
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("KANBAN_", "NO_COLOR", "TMUX"))}
        clean.update({k: str(v) for k, v in env.items()})
        clean["PATH"] = f"{ROOT / 'bin'}:{clean['PATH']}"
        clean["PS1"] = "$ "
        clean.pop("COLUMNS", None)
        clean.pop("LINES", None)
        self.env = clean
        self.tmux("new-session", "-d", "-x", str(columns), "-y", "40", "-s", "t",
                  "bash --norc --noprofile")
        self.tmux("set-option", "-g", "status", "off")

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.socket, *args], env=self.env, capture_output=True,
                              text=True, timeout=30, check=True).stdout

    def type(self, line):
        self.tmux("send-keys", "-t", "t", "-l", line)
        self.tmux("send-keys", "-t", "t", "Enter")

    def screen(self, escapes=False):
        return self.tmux("capture-pane", "-t", "t", "-p", "-J", *(["-e"] if escapes else []))

    def run(self, command, escapes=True, timeout=30):
        """Run `command` in the pane's shell; (screen text since the command, its exit status)."""
        marker = uuid.uuid4().hex[:8]
        self.type("clear")
        self.wait_for(lambda s: "clear" not in s)
        self.type(f"{command}; echo done-{marker}-$?")
        found = self.wait_for(lambda s: re.search(rf"done-{marker}-(\d+)", s), timeout=timeout)
        text = self.screen(escapes)
        end = re.search(rf"done-{marker}-\d+", text)
        body = text[: end.start()]
        body = body.split("\n", 1)[1] if "\n" in body else ""  # drop the command line itself
        return body, int(found.group(1))

    def wait_for(self, predicate, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate(self.screen())
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError("timed out; the pane shows:\n" + self.screen())

    def close(self):
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], env=self.env, capture_output=True, timeout=30)


@pytest.fixture
def pane(kb):
    panes = []

    def make(columns=80, **env):
        p = Pane(columns, {"KANBAN_DB": kb.path, **env})
        panes.append(p)
        return p
    yield make
    for p in panes:
        p.close()


TITLES = [
    "Write the parser for the configuration language and its error messages, with tests",
    "日本語のタイトルを表示する長いタスクの名前です",
    "Ship it 🚀 and celebrate 🎉 with the whole team",
    "Réécrire l’interface en français, avec des accents",
    "短い",
]


@pytest.fixture
def crowded(kb):
    goal = kb("create", "Launch 🚀 the 日本語 site", "--kind", "goal", "--project", "web").json["id"]
    ids = [kb("create", title, "--project", "web" if n % 2 else "データ", "--goal", goal,
              "--priority", str(n)).json["id"] for n, title in enumerate(TITLES)]
    held = kb("claim", ids[1], agent="worker-with-a-long-name").json
    kb("block", ids[0], "--reason", "waiting for the grammar review, which takes a while to arrive")
    return {"goal": goal, "ids": ids, "held": held}


def rows_of(screen):
    return [line for line in screen.splitlines() if line.strip()]


def test_colour_on_a_tty_and_never_when_piped(pane, crowded):
    p = pane(100)
    text, rc = p.run("kanban board")
    assert rc == 0 and SGR.search(text), text
    assert "\x1b[33m" in text  # in progress is yellow
    for command in ("NO_COLOR=1 kanban board", "kanban board --color=never", "kanban board | cat"):
        text, rc = p.run(command)
        assert rc == 0 and "TODO (" in text and not SGR.search(text), (command, text)
    text, rc = p.run("NO_COLOR=1 kanban board --color=always")
    assert SGR.search(text)
    piped = run("board", env={"KANBAN_DB": crowded and p.env["KANBAN_DB"]})
    assert piped.rc == 0 and "\x1b" not in piped.out
    forced = run("board", "--color=always", env={"KANBAN_DB": p.env["KANBAN_DB"]})
    assert "\x1b[" in forced.out


@pytest.mark.parametrize("columns", [40, 60, 80, 120, 160])
def test_no_line_is_wider_than_the_pane(pane, crowded, columns):
    p = pane(columns)
    text, rc = p.run("kanban board", escapes=False)
    assert rc == 0
    lines = rows_of(text)
    assert any(crowded["ids"][2] in line for line in lines)
    for line in lines:  # -J joins wrapped rows: a wrapped row would be wider than the pane
        assert display_width(line) <= columns, (columns, line)
    if columns >= 160:  # room enough: whole titles
        assert TITLES[0] in text


def test_wide_characters_stay_aligned(pane, crowded):
    p = pane(160)
    text, _ = p.run("kanban board", escapes=False)
    todo = [line for line in text.splitlines() if re.match(r"\s+TASK-\d+\s+p\d", line)]
    todo = [line for line in todo if "web" in line or "データ" in line]
    assert len(todo) >= 4, text
    # the project column starts at the same display column on every row, CJK titles or not
    starts = set()
    for line in todo:
        match = re.search(r"  (web|データ)\b", line)
        starts.add(display_width(line[: match.start()]))
    assert len(starts) == 1, todo


def test_watch_redraws_in_place_until_ctrl_c(pane, kb, crowded):
    p = pane(100)
    p.type("kanban board --watch=1s; echo watch-ended-$?")
    p.wait_for(lambda s: crowded["ids"][2] in s)
    kb("create", "A task made while watching")
    p.wait_for(lambda s: "A task made while watching" in s, timeout=20)
    screen = p.screen()
    assert screen.count("kanban board") == 1  # redrawn in place, not scrolled
    p.tmux("send-keys", "-t", "t", "C-c")
    p.wait_for(lambda s: "watch-ended-0" in s)


def test_a_long_board_goes_through_the_pager(pane, kb, tmp_path):
    lines = "\n".join(json.dumps({"title": f"task {n}"}) for n in range(60))
    assert kb("create", "--stdin", input=lines).rc == 0
    paged = tmp_path / "paged.txt"
    p = pane(100, PAGER=f"cat > {paged}")
    text, rc = p.run("kanban board --all")
    assert rc == 0 and paged.read_text().count("\n") > 40
    assert "task 59" in paged.read_text()
    os.unlink(paged)
    p.run("kanban board")  # capped at 20 a section: fits the pane, no pager
    assert not paged.exists()


def test_control_characters_are_shown_escaped(pane, kb):
    title = "\x1b]52;c;aGk=\x07 \x1b[31mred\u202e"
    task = kb("create", title).json["id"]
    assert kb("show", task).json["title"] == title  # JSON keeps the exact text
    p = pane(160)
    for command in ("kanban board", "kanban list --format table", f"kanban show {task} --format table"):
        text, rc = p.run(command, escapes=False)
        assert rc == 0 and "\\x1b]52;c;aGk=\\x07 \\x1b[31mred\\u202e" in text, (command, text)
    out = run("board", "--color=never", env={"KANBAN_DB": kb.path}).out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
