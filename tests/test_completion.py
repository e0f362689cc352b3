"""Completion for bash, zsh and fish, from the one list of verbs: the candidates
(`kanban completion --complete`), and each shell completing for real in a terminal
(tmux).  zsh and fish tests skip, and say so, where the shell is not installed
(.ci/run installs both when it runs as root)."""
import os
import re
import shutil
import subprocess
import time
import uuid

import pytest
from conftest import ROOT


def offered(kb, *words, agent=None):
    res = kb("completion", "--complete", "--", *words, agent=agent)
    assert res.rc == 0, res
    return [line.split("\t") for line in res.out.splitlines()]


def values(kb, *words, agent=None):
    return sorted(v[0] for v in offered(kb, *words, agent=agent))


@pytest.fixture
def held(kb):
    """TASK ids in each state: mine (held by w1), theirs (held by w2), review, blocked, done, todo."""
    ids = {name: kb("create", f"the {name} task").json["id"]
           for name in ("mine", "theirs", "review", "blocked", "done", "todo")}
    kb("claim", ids["mine"], agent="w1")
    kb("claim", ids["theirs"], agent="w2")
    token = kb("claim", ids["review"], agent="w2").json["lease_token"]
    kb("complete", ids["review"], "--token", str(token), "--review", agent="w2")
    kb("block", ids["blocked"], "--reason", "waiting")
    kb("move", ids["done"], "done")
    return ids


def test_verbs_with_their_summaries(kb):
    found = dict(tuple(v) if len(v) == 2 else (v[0], "") for v in offered(kb, "cl"))
    assert set(found) == {"claim", "claim-next"}
    assert found["claim"].startswith("Claim the best ready task") and found["claim-next"] == "alias of kanban claim"
    every = values(kb, "")
    for verb in ("board", "move", "sprint", "standup", "heartbeat", "help", "commands"):
        assert verb in every


def test_task_ids_filtered_by_what_the_verb_takes(kb, held):
    assert values(kb, "complete", "", agent="w1") == [held["mine"]]
    assert values(kb, "heartbeat", "", agent="w1") == [held["mine"]]
    assert values(kb, "lease", "release", "", agent="w2") == [held["theirs"]]
    assert values(kb, "approve", "") == [held["review"]] == values(kb, "reject", "")
    assert values(kb, "unblock", "") == [held["blocked"]]
    assert values(kb, "reopen", "") == [held["done"]]
    assert held["done"] not in values(kb, "cancel", "") and held["todo"] in values(kb, "cancel", "")
    assert len(values(kb, "show", "")) == 6
    # titles as descriptions
    assert dict(offered(kb, "approve", ""))[held["review"]] == "in_review: the review task"


def test_options_and_their_values(kb, held):
    options = dict(v if len(v) == 2 else (v[0], "") for v in offered(kb, "board", "--"))
    assert {"--format", "--color", "--watch", "--all"} <= set(options)
    assert options["--all"].startswith("Every task")
    assert values(kb, "board", "--format", "") == ["json", "markdown", "table"]
    assert values(kb, "list", "--status=in") == ["--status=in_progress", "--status=in_review"]
    assert values(kb, "move", held["todo"], "") == ["blocked", "cancelled", "done", "in_review", "todo"]
    assert values(kb, "limit", "set", "") == ["in_progress", "in_review"]
    assert values(kb, "skill", "--harness", "c") == ["claude", "codex"]
    assert values(kb, "plan", "apply", "") == [":files"]
    assert values(kb, "work", "--agent", "w1", "--", "") == [":commands"]
    assert values(kb, "help", "workf") == ["workflow"]
    assert values(kb, "stats", "--chart", "") == ["burndown", "cfd", "throughput", "times"]
    assert values(kb, "event", "list", "--kind=un") == ["--kind=unblocked", "--kind=unlinked"]
    assert values(kb, "create", "x", "--kind", "") == ["goal", "task"]
    assert values(kb, "team", "start", "--format", "") == ["json", "text"]
    assert values(kb, "set", held["todo"], "--clear", "g") == ["goal"]
    assert values(kb, "bench", "claim", "--mode", "") == ["api", "cli"]


def test_no_board_offers_no_ids(tmp_path):
    from conftest import run

    res = run("completion", "--complete", "--", "show", "", cwd=tmp_path,
              env={"KANBAN_CEILING_DIRECTORIES": str(tmp_path.parent)})
    assert res.rc == 0 and res.out == ""


# -- in the shells themselves -------------------------------------------------------------------

SETUP = {
    "bash": ("bash --norc --noprofile", "source <(kanban completion bash)"),
    "zsh": ("zsh -f", "autoload -U compinit && compinit -u && source <(kanban completion zsh)"),
    "fish": ("fish --no-config", "kanban completion fish | source"),
}


class Shell:
    def __init__(self, shell, kb, cwd):
        if shutil.which("tmux") is None:
            pytest.skip("tmux is not installed (.ci/run installs it when run as root)")
        if shutil.which(shell) is None:
            pytest.skip(f"{shell} is not installed (.ci/run installs it when run as root)")
        self.socket = f"kanban-{shell}-{uuid.uuid4().hex[:8]}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KANBAN_", "TMUX"))}
        env.update(KANBAN_DB=str(kb.path), KANBAN_AGENT="w1", PATH=f"{ROOT / 'bin'}:{env['PATH']}",
                   HOME=str(cwd), XDG_CONFIG_HOME=str(cwd / ".config"), PS1="$ ")
        self.env = env
        command, setup = SETUP[shell]
        self.tmux("new-session", "-d", "-x", "160", "-y", "40", "-s", "t", "-c", str(cwd), command)
        self.keys(setup, "Enter")
        time.sleep(1.5)

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.socket, *args], env=self.env, capture_output=True,
                              text=True, timeout=30).stdout

    def keys(self, *keys):
        for key in keys:
            if key in ("Enter", "Tab", "C-c", "C-u"):
                self.tmux("send-keys", "-t", "t", key)
            else:
                self.tmux("send-keys", "-t", "t", "-l", key)

    def screen(self):
        return self.tmux("capture-pane", "-t", "t", "-p")

    def complete(self, line, tabs=1, want=None, timeout=20):
        """Type `line`, press TAB; the screen once `want` shows (or after the TABs)."""
        self.keys("C-c")
        time.sleep(0.3)
        self.tmux("clear-history", "-t", "t")
        self.keys(line)
        deadline = time.monotonic() + timeout
        for _ in range(tabs):
            self.keys("Tab")
            time.sleep(1.0)
        while want is not None and time.monotonic() < deadline and not re.search(want, self.screen()):
            time.sleep(0.2)
        return self.screen()

    def close(self):
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], env=self.env, capture_output=True, timeout=30)


@pytest.fixture
def shell(kb, tmp_path):
    opened = []

    def start(name):
        s = Shell(name, kb, tmp_path)
        opened.append(s)
        return s
    yield start
    for s in opened:
        s.close()


@pytest.mark.parametrize("name", ["bash", "zsh", "fish"])
def test_completion_in_the_shell(shell, kb, held, tmp_path, name):
    s = shell(name)
    # a verb: one candidate, completed on the line
    assert re.search(r"kanban approve\b", s.complete("kanban appr", want=r"kanban approve"))
    # the only task in review
    assert f"kanban approve {held['review']}" in s.complete("kanban approve ", want=held["review"])
    # an option's value
    assert "kanban board --format markdown" in s.complete("kanban board --format mar", want="markdown")
    # values taken from what the verb accepts: a chart's name, an event's kind (not a task's)
    assert "kanban stats --chart throughput" in s.complete("kanban stats --chart thr", want="throughput")
    assert "kanban event list --kind claimed" in s.complete("kanban event list --kind clai", want="claimed")
    # a folder ends in /
    (tmp_path / "plans").mkdir()
    assert "kanban plan apply plans/" in s.complete("kanban plan apply pla", want="plans/")
    if name in ("zsh", "fish"):  # descriptions: the tasks' titles, on the second TAB
        screen = s.complete("kanban show ", tabs=2, want="the review task")
        assert "the review task" in screen and "the blocked task" in screen
