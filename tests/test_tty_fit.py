"""What a person meets at a terminal (tmux), beyond the board: `stats --chart`,
`list`/`show --format table`, `standup` and `kanban help` keep within the pane's width
(wide characters counted), and colour follows the board's rules (NO_COLOR, TERM=dumb)."""
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
