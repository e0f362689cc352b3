"""What a person meets at a terminal (tmux), beyond the board: `stats --chart`,
`list`/`show --format table`, `standup` and `kanban help` keep within the pane's width
(wide characters counted), and colour follows the board's rules (NO_COLOR, TERM=dumb)."""
import re
import shutil

import pytest
from conftest import T0
from test_board_terminal import SGR, Pane, display_width

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (.ci/run installs it when run as root)")
DAY = 86400


@pytest.fixture
def pane(kb):
    """pane(columns, NAME=value...): a tmux pane that many columns wide, on this test's board."""
    panes = []

    def make(columns=80, **env):
        panes.append(Pane(columns, {"KANBAN_DB": kb.path, **env}))
        return panes[-1]
    yield make
    for p in panes:
        p.close()


@pytest.fixture
def history(kb, monkeypatch):
    """90 days of work on one goal: three tasks a day, two of them done the same day."""
    from kanban import Board

    with Board(kb.path) as b:
        monkeypatch.setenv("KANBAN_NOW", str(T0))
        goal = b.create(title="The goal 日本語 with a long title for the burndown chart, " * 2, kind="goal")["id"]
        for day in range(90):
            for k in range(3):
                monkeypatch.setenv("KANBAN_NOW", str(T0 + day * DAY + k * 3600))
                task = b.create(title=f"t{day}-{k}", goal=goal)["id"]
                if k:
                    claim = b.claim("w", task, lease="1d")
                    monkeypatch.setenv("KANBAN_NOW", str(T0 + day * DAY + k * 3600 + 600 * (day % 7 + 1)))
                    b.complete(task, claim["lease_token"], agent="w")
    monkeypatch.delenv("KANBAN_NOW")
    return {"KANBAN_NOW": str(T0 + 90 * DAY)}


def widest(text):
    return max((display_width(SGR.sub("", line)) for line in text.splitlines()), default=0)


@pytest.mark.parametrize("columns", [40, 60, 80])
@pytest.mark.parametrize("chart", ["cfd", "burndown", "throughput", "times"])
def test_charts_fit_the_terminal(pane, history, columns, chart):
    p = pane(columns, **history)
    text, rc = p.run(f"kanban stats --chart {chart} --format table", escapes=False)
    assert rc == 0 and ("┤" in text or "cycle time" in text), text
    assert widest(text) <= columns, text  # the screen's lines joined where the pane wrapped them


def test_charts_colour_by_the_boards_rules(pane, history):
    p = pane(80, **history)
    text, rc = p.run("kanban stats --chart cfd --format table")
    assert rc == 0 and SGR.search(text), text
    for env in ("NO_COLOR=1", "TERM=dumb"):
        text, rc = p.run(f"{env} kanban stats --chart cfd --format table")
        assert rc == 0 and "┤" in text and not SGR.search(text), (env, text)


def test_charts_piped_are_whole(pane, history):
    """Piped, nothing is cut to a terminal: the last 60 days, as before."""
    p = pane(40, **history)
    text, rc = p.run("kanban stats --chart throughput --format table | cat", escapes=False)
    assert rc == 0 and "in 60 days" in text, text
    assert widest(text) > 40, text


LONG = "Write the parser for the configuration language and its error messages, with tests and docs"


@pytest.fixture
def tasks(kb):
    """Long, wide (CJK, emoji, combining marks) titles; one held, one blocked with a long reason."""
    titles = (LONG, "日本語のタイトルを表示する長いタスクの名前です、とても長い",
              "Ship it 🚀 and celebrate 🎉 with the whole team", "Combining: Zalgo z̷̢a̴l̵g̶o̸ text", "短い")
    ids = [kb("create", title, "--project", "web").json["id"] for title in titles]
    kb("claim", ids[0], agent="w1")
    kb("block", ids[2], "--reason", "waiting for a very long reason that goes on and on, 日本語 and more and more")
    kb("comment", ids[2], "a comment long enough to run past the edge of any narrow terminal, " * 2, agent="w2")
    return ids


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_tables_fit_the_terminal(pane, kb, tasks, columns):
    """The free text of a table (a title, a value, an event's data) is cut to the terminal
    where that makes the table fit; the other columns stay whole."""
    p = pane(columns)
    text, rc = p.run(f"kanban show {tasks[2]} --format table", escapes=False)
    assert rc == 0 and "Ship it 🚀" in text and "blocked" in text, text
    assert widest(text) <= columns, text
    if columns >= 80:  # a few ids, times and names beside the data
        text, rc = p.run("kanban event list --format table --limit 5", escapes=False)
        assert rc == 0 and "cursor:" in text and widest(text) <= columns, text
    if columns >= 120:  # nine columns: the title gives way
        text, rc = p.run("kanban list --format table", escapes=False)
        assert rc == 0 and "Write the parser" in text and "in_progress" in text, text
        assert widest(text) <= columns, text
        assert widest(p.run("kanban list --format table | cat", escapes=False)[0]) > columns  # piped: whole


@pytest.mark.parametrize("columns", [40, 60, 80])
def test_standup_fits_the_terminal(pane, kb, tasks, columns):
    p = pane(columns)
    text, rc = p.run("kanban standup", escapes=False)
    assert rc == 0 and "w1 (1)" in text and "claimed" in text and "— waiting for" in text, text
    assert widest(text) <= columns, text
    assert "Write the" in text  # the titles still show, on a line of their own when narrow


@pytest.mark.parametrize("columns", [60, 80])
def test_help_overview_fits_the_terminal(pane, columns):
    """`kanban help`, as git's: the summaries wrap under themselves within the terminal."""
    p = pane(columns)
    text, rc = p.run("kanban help", escapes=False)
    assert rc == 0 and "Porcelain: for people and loops" in text and "log-progress" in text, text
    assert widest(text) <= columns, text
    piped, rc = p.run("kanban help | cat", escapes=False)  # piped: one line a verb, as before
    assert rc == 0 and any(len(line) > columns for line in piped.splitlines()), piped
    text, rc = p.run("kanban commands --format table", escapes=False)
    assert rc == 0 and "claim-next" in text and widest(text) <= columns, text


def test_board_options_with_a_value_after_a_space(pane, kb):
    """`board --watch 1` and `board --color never` (the value after a space, as for every
    other option) were refused ('unexpected argument'): the board takes no operands, so
    the word is the option's value; alone, --watch is every 2s and --color always."""
    kb("create", "a task")
    p = pane(80)
    text, rc = p.run("kanban board --color never")
    assert rc == 0 and "a task" in text and not SGR.search(text), text
    text, rc = p.run("NO_COLOR=1 kanban board --color")
    assert rc == 0 and SGR.search(text), text
    text, rc = p.run("timeout -s INT 3 kanban board --watch 1 --no-pager")
    assert "a task" in text and '"error"' not in text, text
    text, rc = p.run("kanban board --watch nope")
    assert rc == 2 and "bad --watch 'nope'" in text, text


def test_help_workflow_without_man_is_text(pane, tmp_path):
    """Where man(1) is missing, `kanban help workflow` printed the page's roff source
    ('.SH', '.BR kanban (1)', '\\-\\-review'); it prints the page as text."""
    tools = tmp_path / "tools"  # a PATH with a shell's tools but no man
    tools.mkdir()
    for name in ("sh", "head", "cat", "readlink", "dirname"):
        found = shutil.which(name)
        if found:
            (tools / name).symlink_to(found)
    from conftest import ROOT

    p = pane(60)
    text, rc = p.run(f"PATH={ROOT / 'bin'}:{tools} kanban help workflow", escapes=False)
    assert rc == 0 and "reject" in text, text
    assert not re.search(r"^\.[A-Z]{1,2}\b|\\-|\\f[BIR]|\\\(", text, re.M), text
    out = tmp_path / "guide.txt"
    text, rc = p.run(f"PATH={ROOT / 'bin'}:{tools} kanban help workflow > {out}")
    guide = out.read_text()
    assert rc == 0 and guide.startswith("NAME\n") and "\nDESCRIPTION\n" in guide, guide[:500]
    assert "the way kanban(1) is meant to be used" in guide and "--review" in guide


@pytest.mark.parametrize("columns", [60, 80])
def test_verb_help_fits_the_terminal(pane, columns):
    """`kanban VERB --help` (and `kanban help VERB` without man): a usage or option line
    longer than the terminal goes on under itself, at the option's description."""
    p = pane(columns)
    for verb in ("sprint", "board", "stats", "create"):
        text, rc = p.run(f"kanban {verb} --help", escapes=False)
        assert rc == 0 and text.lstrip().startswith("Usage:") and "Options:" in text, text
        assert widest(text) <= columns, (verb, text)
    text, rc = p.run("kanban board --help", escapes=False)
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  --all "))
    column = lines[at].index("Every task")
    assert lines[at + 1].startswith(" " * column) and lines[at + 1][column] != " ", text
    piped, rc = p.run("kanban board --help | cat", escapes=False)  # piped: as written
    assert rc == 0 and widest(piped) > columns, piped


def test_board_without_its_pager(pane, kb, tmp_path):
    """A board taller than the terminal goes through the pager; where that pager is not
    there (no less installed, a PAGER naming nothing) the board was lost behind
    'sh: less: not found': it is written straight out instead."""
    for n in range(50):  # taller than the pane's 40 rows
        kb("create", f"task {n}")
    tools = tmp_path / "tools"  # a shell's tools but no less
    tools.mkdir()
    for name in ("sh", "cat", "readlink", "dirname"):
        if shutil.which(name):
            (tools / name).symlink_to(shutil.which(name))
    from conftest import ROOT

    p = pane(80)
    for command in (f"PATH={ROOT / 'bin'}:{tools} kanban board --all", "PAGER=no-such-pager kanban board --all",
                    "PAGER='no-such-pager -R' kanban board --all"):
        text, rc = p.run(command, escapes=False)
        assert rc == 0 and "not found" not in text and "task 49" in text, (command, text)


def test_watch_on_a_dumb_terminal(pane, kb):
    """TERM=dumb (an Emacs shell buffer) cannot clear the screen or move the cursor:
    --watch sent those sequences (garbage there) to redraw in place; it prints one board
    after another instead, as piped."""
    kb("create", "a task")
    p = pane(80)
    p.type("clear")
    p.wait_for(lambda s: "clear" not in s)
    p.type("TERM=dumb kanban board --watch 1")
    p.wait_for(lambda s: s.count("1 task, 1 todo") >= 3, timeout=20)  # in place, it would stay one
    p.tmux("send-keys", "-t", "t", "C-c")
    text, rc = p.run("kanban board --no-pager", escapes=False)  # Ctrl-C gave the shell back
    assert rc == 0 and "a task" in text, text
