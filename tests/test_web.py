"""`kanban serve` (SPEC §6): the live board in a real browser.

A real `kanban serve` process on a seeded board, a real Chromium (Debian's `chromium`
package) driven by Playwright for Python, real `kanban` processes changing the board
while the page is open.  Playwright cannot download browsers here: the tests use
/usr/bin/chromium (or KANBAN_TEST_CHROMIUM) and skip, saying how to get one, when
there is none.  The HTTP-level checks (CSRF, Host, tokens) need no browser.
"""
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from conftest import KANBAN, run
from test_postgres import needs_pg, pg_url  # noqa: F401 - the fixture

pytest.importorskip("starlette", reason="kanban serve needs the 'web' extra (pip install 'kanban[web]')")
pytest.importorskip("uvicorn", reason="kanban serve needs the 'web' extra (pip install 'kanban[web]')")
pytest.importorskip("jinja2", reason="kanban serve needs the 'web' extra (pip install 'kanban[web]')")

CHROMIUM = os.environ.get("KANBAN_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]
EVIL = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2"> & "quotes"'


def _env(db, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update(KANBAN_DB=str(db), **{k: str(v) for k, v in extra.items()})
    return env


def kanban(db, *args, agent=None):
    res = run(*args, env={"KANBAN_DB": db, **({"KANBAN_AGENT": agent} if agent else {})})
    assert res.rc == 0, res
    return res.json if res.out.strip().startswith(("{", "[")) else res.out


@pytest.fixture
def seeded(tmp_path):
    """A board with a goal, work in every open column, a WIP limit and an evil title."""
    db = tmp_path / "board.db"
    kanban(db, "init")
    goal = kanban(db, "create", "Launch", "--kind", "goal")["id"]
    ids = {}
    for name, project in (("write docs", "docs"), ("fix login", "web"), ("review api", "api"),
                          ("vendor contract", "ops"), ("ship it", "web"), ("polish", "web")):
        ids[name] = kanban(db, "create", name, "--project", project, "--goal", goal, "--review")["id"]
    ids["evil"] = kanban(db, "create", EVIL, "--body", "<b>not bold</b>")["id"]
    claim = kanban(db, "claim", ids["review api"], "--agent", "w1")
    kanban(db, "complete", ids["review api"], "--token", claim["lease_token"], agent="w1")
    kanban(db, "claim", ids["fix login"], "--agent", "w2", "--lease", "1h")
    kanban(db, "block", ids["vendor contract"], "--reason", "waits on legal")
    done = kanban(db, "claim", ids["write docs"], "--agent", "w3")
    kanban(db, "complete", ids["write docs"], "--token", done["lease_token"], agent="w3")
    kanban(db, "approve", ids["write docs"], agent="rev")
    kanban(db, "limit", "set", "in_progress", "2")
    return db, goal, ids


class Server:
    def __init__(self, db, *args, port=0, **env):
        self.proc = subprocess.Popen([str(KANBAN), "serve", "--port", str(port), *args], env=_env(db, **env),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"kanban serve did not start: {self.proc.stderr.read()}")
        self.url = line.split()[-1]
        self.db = db

    def get(self, path, headers=None):
        return _http(self.url.rstrip("/") + path, headers=headers)

    def post(self, path, fields, headers=None):
        return _http(self.url.rstrip("/") + path, urllib.parse.urlencode(fields).encode(), headers)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _http(url, data=None, headers=None):
    request = urllib.request.Request(url, data=data, headers=headers or {})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


@pytest.fixture
def server(seeded):
    made = []

    def start(*args):
        made.append(Server(seeded[0], *args))
        return made[-1]
    yield start
    for one in made:
        one.stop()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright for Python "
                                   "(pip install playwright; it is in the test extra)")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (Debian's package; .ci/run installs it "
                    "when it runs as root), or set KANBAN_TEST_CHROMIUM to a Chromium executable")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1500, "height": 950})
    opened = context.new_page()
    yield opened
    context.close()


def card(page, status, task):
    return page.locator(f'.column[data-status="{status}"] .card[data-id="{task}"]')


# -- in the browser ---------------------------------------------------------------------

def test_columns_and_cards_of_a_seeded_board(seeded, server, page, tmp_path):
    db, goal, ids = seeded
    serving = server()
    page.goto(serving.url)
    page.wait_for_selector("#live-state.on", timeout=10_000)
    statuses = page.eval_on_selector_all(".column", "cs => cs.map(c => c.dataset.status)")
    assert statuses == ["todo", "in_progress", "in_review", "blocked", "done", "failed", "cancelled"]
    assert card(page, "todo", ids["ship it"]).count() == 1
    assert card(page, "blocked", ids["vendor contract"]).inner_text().count("waits on legal") == 1
    review = card(page, "in_review", ids["review api"]).inner_text()
    assert "work by w1" in review and "api" in review
    working = card(page, "in_progress", ids["fix login"]).inner_text()
    assert "w2" in working and "left" in working                         # the lease counts down
    assert card(page, "done", ids["write docs"]).count() == 1
    assert page.inner_text('.column[data-status="in_progress"] h2 .wip') == "1/2"  # count against the WIP limit
    progress = page.locator(f'.goal[data-id="{goal}"] progress')
    assert progress.get_attribute("value") == "1" and progress.get_attribute("max") == "6"
    page.set_viewport_size({"width": 1400, "height": 300})
    page.screenshot(path=str(tmp_path / "board.png"), full_page=True)  # the README's picture
    assert (tmp_path / "board.png").stat().st_size > 10_000
    # the task page: the whole history from the event log
    page.goto(serving.url + "task/" + ids["review api"])
    kinds = page.eval_on_selector_all(".history tbody tr", "trs => trs.map(t => t.dataset.kind)")
    assert kinds == ["created", "linked", "claimed", "submitted_for_review"]


def _minutes_left(text):
    """'9m 58s left' -> 9.97 (minutes)."""
    found = re.search(r"(?:(\d+)h )?(\d+)m (\d+)s left", text)
    assert found, text
    hours, minutes, seconds = (int(g or 0) for g in found.groups())
    return hours * 60 + minutes + seconds / 60


def test_a_lease_counts_down_by_the_boards_clock_not_the_browsers(seeded, page):
    """The countdown was the lease's end less the browser's clock: a board served with
    KANBAN_NOW, or a browser whose clock is off, showed another time left than the board
    has. The page counts from the board's now, sent with the page and each refresh."""
    from kanban import clock

    db, _goal, ids = seeded                        # fix login: claimed for 1h on the real clock
    lease_end = clock.parse_time(kanban(db, "show", ids["fix login"])["lease_until"])
    board_now = clock.iso(lease_end - 10 * 60_000)  # the board's clock: 10 minutes left
    serving = Server(db, KANBAN_NOW=board_now)
    try:
        held = f'.card[data-id="{ids["fix login"]}"] .lease'
        for path, where in (("", held), ("task/" + ids["fix login"], ".lease")):
            page.goto(serving.url + path)
            page.wait_for_function("sel => document.querySelector(sel).textContent.includes('left')", arg=where)
            shown = page.inner_text(where)
            assert 9 < _minutes_left(shown) <= 10, (path, shown)
        # a browser clock two hours fast: the board still has 10 minutes left, not "lease expired"
        page.clock.set_system_time(time.time() + 7200)
        page.goto(serving.url)
        where = f'.card[data-id="{ids["fix login"]}"] .lease'
        page.wait_for_function("sel => document.querySelector(sel).textContent.includes('left')", arg=where)
        assert 9 < _minutes_left(page.inner_text(where)) <= 10, page.inner_text(where)
        # a refresh (a claim elsewhere) brings the board's time again
        kanban(db, "claim", ids["ship it"], "--agent", "w9")
        card(page, "in_progress", ids["ship it"]).wait_for(timeout=5_000)
        assert 9 < _minutes_left(page.inner_text(where)) <= 10, page.inner_text(where)
    finally:
        serving.stop()


SNAKE = re.compile(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b")  # lease_until, in_progress, submitted_for_review


def _fields(page):
    """The task page's fields as a person reads them: [(label, value)], in order."""
    return page.eval_on_selector_all(".task dl > dt", "ds => ds.map(d => [d.innerText.trim(), "
                                     "d.nextElementSibling.innerText.trim()])")


def test_the_task_page_labels_its_fields_in_words(seeded, server, page):
    """The task page labelled its fields with the task's JSON keys (role_boundary,
    claimed_by, lease_until, not_before) and its history with the events' kinds and data
    as stored (submitted_for_review, "fields: {'priority': 4}", a lease's raw ISO stamp).
    Each field has a label in words now; its times read as the board's (UTC, marked Z,
    a lease counting down); an empty field is left out; no snake_case key is seen."""
    db, goal, ids = seeded
    held = kanban(db, "create", "held work", "--project", "web", "--role", "backend", "--goal", goal,
                  "--max-attempts", "3")["id"]
    kanban(db, "set", held, "--priority", "4")
    kanban(db, "comment", held, "--message", "started")
    claim = run("claim", held, "--agent", "w5", "--lease", "1h",
                env={"KANBAN_DB": db, "KANBAN_ROLE": "backend"}).json
    kanban(db, "event", "log", held, "halfway", "--token", str(claim["lease_token"]), agent="w5")
    kanban(db, "lease", "renew", held, "--token", str(claim["lease_token"]), "--lease", "2h", agent="w5")
    later = kanban(db, "create", "later", "--assignee", "w9", "--depends-on", ids["fix login"], "--review",
                   "--not-before", "2031-06-01T12:00:00Z")["id"]
    serving = server()
    page.goto(serving.url + "task/" + held)
    page.wait_for_function("() => document.querySelector('.lease').textContent.includes('left')")
    fields = _fields(page)
    assert [label for label, _ in fields] == ["Priority", "Project", "Role", "Goal", "Claimed by", "Lease until",
                                              "Attempts", "Worked on by"], fields
    shown = dict(fields)
    assert shown["Priority"] == "4" and shown["Role"] == "backend" and shown["Goal"] == goal
    assert shown["Claimed by"] == "w5" and shown["Attempts"] == "0 of 3" and shown["Worked on by"] == "w5"
    # the lease as the board's cards show it, counting down, and when it ends, UTC marked Z
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \((1h )?\d+m \d\ds left\)", shown["Lease until"]), shown
    text = page.inner_text("body")
    assert not SNAKE.findall(text), SNAKE.findall(text)
    kinds = page.eval_on_selector_all(".history tbody td:nth-child(3)", "tds => tds.map(t => t.innerText)")
    assert kinds == ["created", "linked", "updated", "commented", "claimed", "progress", "lease renewed"], kinds
    details = page.eval_on_selector_all(".history tbody td:nth-child(5)", "tds => tds.map(t => t.innerText)")
    assert "Priority: 4" in details[2] and "{" not in details[2], details
    assert re.search(r"Lease until: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", details[4]), details
    assert "T" not in details[6].split("Lease until: ")[1], details
    # another: who it is for, its schedule, its deps, its review, why it waits
    page.goto(serving.url + "task/" + later)
    fields = _fields(page)
    assert [label for label, _ in fields] == ["Priority", "Assigned to", "Not before", "Needs review", "Attempts",
                                              "Depends on", "Waiting on"], fields
    shown = dict(fields)
    assert shown["Not before"] == "2031-06-01 12:00:00Z" and shown["Assigned to"] == "w9"
    assert shown["Waiting on"] == (f"{ids['fix login']} (in progress); not before 2031-06-01 12:00:00Z; "
                                   "WIP limit in progress 2/2")         # w2 and w5 hold the column's two
    text = page.inner_text("body")
    assert not SNAKE.findall(text), SNAKE.findall(text)
    # a blocked task's reason, a goal's progress; a goal is never claimed: no attempts
    page.goto(serving.url + "task/" + ids["vendor contract"])
    assert dict(_fields(page))["Reason"] == "waits on legal"
    page.goto(serving.url + "task/" + goal)
    assert [label for label, _ in _fields(page)] == ["Priority", "Progress"]
    for task in (ids["vendor contract"], goal, ids["evil"]):
        page.goto(serving.url + "task/" + task)
        assert all(value for _, value in _fields(page)), (task, _fields(page))   # no empty field
        text = page.inner_text("body")
        assert not SNAKE.findall(text), (task, SNAKE.findall(text))
    # what a machine reads stays as it was: the raw keys are the fields' data attributes
    page.goto(serving.url + "task/" + held)
    assert page.get_attribute('dd[data-field="lease_until"] .lease', "data-until") == \
        kanban(db, "show", held)["lease_until"]
    assert page.locator("tr.event-lease_renewed").count() == 1


def test_no_raw_key_reaches_people_on_the_other_pages(seeded, server, page):
    """The board said a task waits on 'TASK-2 (in_progress)' and on 'WIP limit in_progress';
    the charts' legend read 'in_progress', 'in_review'; an error page's heading was its
    code ('not_found'); the move form offered 'in_review'. All in words now."""
    db, _goal, ids = seeded
    after = kanban(db, "create", "after", "--depends-on", ids["fix login"])["id"]
    kanban(db, "limit", "set", "in_progress", "1", "--project", "web")
    serving = server("--write")
    page.goto(serving.url)
    waits = card(page, "todo", after).inner_text()
    assert f"waits on {ids['fix login']} (in progress)" in waits, waits
    assert "WIP limit in progress (project web) 1/1" in card(page, "todo", ids["ship it"]).inner_text()
    page.goto(serving.url + "charts")
    legend = page.eval_on_selector_all('svg[data-chart="cfd"] g[transform] text', "ts => ts.map(t => t.textContent)")
    assert legend == ["todo", "blocked", "in progress", "in review", "done"], legend
    page.goto(serving.url + "task/TASK-999")
    assert page.inner_text("h1") == "Not found" and page.get_attribute("#live", "data-code") == "not_found"
    page.goto(serving.url + "task/" + ids["ship it"])
    options = page.eval_on_selector_all('#move option', "os => os.map(o => [o.value, o.textContent])")
    assert ["in_review", "in review"] in options, options
    for path in ("", "charts", "task/TASK-999", "task/" + ids["ship it"], "task/" + ids["review api"]):
        page.goto(serving.url + path)
        text = page.inner_text("body")
        assert not SNAKE.findall(text), (path, SNAKE.findall(text))


def test_a_claim_by_a_kanban_process_moves_its_card_within_a_second(seeded, server, page):
    db, _goal, ids = seeded
    serving = server()
    page.goto(serving.url)
    page.wait_for_selector("#live-state.on", timeout=10_000)
    assert card(page, "todo", ids["ship it"]).count() == 1
    claim = subprocess.run([str(KANBAN), "claim", ids["ship it"], "--agent", "w7"], env=_env(db),
                           capture_output=True, text=True, timeout=30)
    committed = time.monotonic()
    assert claim.returncode == 0 and json.loads(claim.stdout)["id"] == ids["ship it"], claim
    card(page, "in_progress", ids["ship it"]).wait_for(timeout=5_000)
    seen = time.monotonic() - committed
    assert seen < 1.0, f"the card moved {seen:.2f}s after the claim committed"
    assert card(page, "todo", ids["ship it"]).count() == 0
    assert page.inner_text('.column[data-status="in_progress"] h2 .wip') == "2/2"


def test_the_page_reconnects_by_itself(seeded, server, page):
    db, _goal, ids = seeded
    serving = server()
    page.goto(serving.url)
    page.wait_for_selector("#live-state.on", timeout=10_000)
    serving.stop()
    assert "Traceback" not in serving.proc.stderr.read()  # a clean stop, even with a page listening
    page.wait_for_selector("#live-state.off", timeout=10_000)
    again = Server(db, port=serving.url.rsplit(":", 1)[1].strip("/"))
    try:
        page.wait_for_selector("#live-state.on", timeout=15_000)
        kanban(db, "cancel", ids["polish"], "--reason", "not needed")
        card(page, "cancelled", ids["polish"]).wait_for(timeout=5_000)
    finally:
        again.stop()


def test_charts_have_the_right_series(seeded, server, page):
    db, goal, ids = seeded
    page.goto(server().url + "charts")
    series = page.eval_on_selector_all('svg[data-chart="cfd"] [data-series]',
                                       "es => es.map(e => [e.dataset.series, e.dataset.values])")
    values = {name: [int(v) for v in text.split(",")] for name, text in series}
    assert list(values) == ["done", "in_review", "in_progress", "blocked", "todo"]
    assert {name: v[-1] for name, v in values.items()} == {"done": 1, "in_review": 1, "in_progress": 1,
                                                          "blocked": 1, "todo": 3}
    burn = page.locator(f'svg[data-chart="burndown"] [data-series="{goal}"]')
    assert burn.get_attribute("data-values").split(",")[-1] == "5"       # 6 tasks, 1 done
    done = page.locator('svg[data-chart="throughput"] [data-series="done"]').get_attribute("data-values")
    assert sum(int(v) for v in done.split(",")) == 1
    for name in ("cycle", "lead"):
        counts = page.locator(f'svg[data-chart="times"] [data-series="{name}"]').get_attribute("data-values")
        assert sum(int(v) for v in counts.split(",")) == 1
    assert page.inner_text(".limits") .count("1/2") == 1


def test_filters_are_kept_in_the_url_and_survive_a_reload(seeded, server, page):
    db, _goal, ids = seeded
    page.goto(server().url)
    page.select_option('select[name="project"]', "web")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**project=web**")
    page.reload()
    assert page.input_value('select[name="project"]') == "web"
    shown = set(page.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.id)"))
    assert shown == {ids["fix login"], ids["ship it"], ids["polish"]}
    page.goto(page.url + "&agent=w2")
    page.reload()
    assert page.input_value('select[name="agent"]') == "w2"
    assert set(page.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.id)")) == {ids["fix login"]}


def test_a_script_title_is_text(seeded, server, page):
    db, _goal, ids = seeded
    serving = server()
    for path in ("", "task/" + ids["evil"]):
        page.goto(serving.url + path)
        page.wait_for_load_state("load")
        assert page.evaluate("window.pwned") is None
        assert page.locator("img[src=x]").count() == 0
    assert page.inner_text("h1").endswith(EVIL)
    assert page.inner_text("pre.body") == "<b>not bold</b>"


def test_a_long_title_keeps_its_card_short(seeded, server, page):
    """A card shows the first lines of a very long title (and of a long reason), not a
    card taller than the screen; the whole text is its tooltip and the task's page."""
    db, _goal, _ids = seeded
    long = "a very long title " * 170 + "END"
    task = kanban(db, "create", long)["id"]
    kanban(db, "block", task, "--reason", "because " * 400)
    serving = server()
    page.goto(serving.url)
    page.wait_for_load_state("load")
    shown = card(page, "blocked", task)
    assert shown.bounding_box()["height"] < 250
    assert shown.locator(".title").get_attribute("title") == long
    assert shown.locator(".reason").get_attribute("title") == "because " * 400
    page.goto(serving.url + "task/" + task)
    page.wait_for_load_state("load")
    assert page.inner_text("h1").endswith("END")


def test_write_moves_cards_with_the_csrf_token_only(seeded, server, page):
    db, _goal, ids = seeded
    read_only = server()
    status, _h, body = read_only.post("/move", {"task": ids["ship it"], "column": "cancelled"})
    assert status == 403 and "read-only" in body
    serving = server("--write")
    status, _h, body = serving.post("/move", {"task": ids["ship it"], "column": "cancelled"})
    assert status == 403 and json.loads(body)["code"] == "forbidden"
    page.goto(serving.url)
    token = page.get_attribute('meta[name="csrf-token"]', "content")
    status, _h, body = serving.post("/move", {"task": ids["ship it"], "column": "cancelled", "csrf": token},
                                    {"Origin": "http://evil.example"})
    assert status == 403                                                  # another site, even with the token
    assert kanban(db, "show", ids["ship it"])["status"] == "todo"        # refused: nothing changed
    # from the board's own page: the task page's form, then a drag into blocked
    page.goto(serving.url + "task/" + ids["ship it"])
    page.select_option('#move select[name="column"]', "cancelled")
    page.fill('#move input[name="reason"]', "not this sprint")
    page.click("#move button[type=submit]")
    page.wait_for_selector(".status-cancelled", timeout=5_000)
    shown = kanban(db, "show", ids["ship it"])
    assert shown["status"] == "cancelled" and shown["events"][-1]["data"]["moved"] is True
    page.goto(serving.url)
    page.on("dialog", lambda dialog: dialog.accept("legal said no"))
    page.drag_and_drop(f'.card[data-id="{ids["polish"]}"]', '.column[data-status="blocked"]')
    card(page, "blocked", ids["polish"]).wait_for(timeout=5_000)
    assert kanban(db, "show", ids["polish"])["reason"] == "legal said no"


# -- over HTTP ----------------------------------------------------------------------------

def test_host_header_and_security_headers(seeded, server):
    serving = server()
    status, headers, _ = serving.get("/")
    assert status == 200
    assert "script-src 'self'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
    status, _h, _b = serving.get("/", {"Host": "evil.example"})
    assert status == 400                                                  # no DNS rebinding onto the board
    assert serving.get("/task/TASK-999")[0] == 404


def test_the_task_pages_times_say_they_are_utc(seeded, server):
    """Event and comment times on a task's page are UTC, marked Z ('2030-01-01 00:00:00Z'):
    unmarked, they read as the browser's local time."""
    db, _goal, ids = seeded
    run("comment", ids["polish"], "--message", "later", env={"KANBAN_DB": db, "KANBAN_NOW": "2030-01-01T00:00:00Z"})
    status, _h, body = server().get("/task/" + ids["polish"])
    assert status == 200 and "2030-01-01 00:00:00Z" in body, body


def test_a_schedule_on_the_board_and_the_task_page_says_it_is_utc(seeded, server):
    """A task waiting on its schedule said "not before 2031-06-01 12:00:00", UTC unmarked,
    where the page's other times are marked Z: it read as the browser's local time."""
    db, _goal, _ids = seeded
    later = kanban(db, "create", "later", "--not-before", "2031-06-01T12:00:00Z")["id"]
    serving = server()
    for path in ("/", "/columns", "/task/" + later):
        status, _h, body = serving.get(path)
        assert status == 200 and "not before 2031-06-01 12:00:00Z" in body, (path, body)
        assert "2031-06-01 12:00:00<" not in body and "2031-06-01 12:00:00," not in body, path
    assert '<dt data-field="not_before">Not before</dt><dd data-field="not_before">2031-06-01 12:00:00Z</dd>' \
        in serving.get("/task/" + later)[2]


def test_a_path_with_no_page_gets_the_error_page_with_a_sentence(seeded, server):
    serving = server()
    for path in ("/nope", "/static/nope.css", "/task/TASK-1/extra"):
        status, headers, body = serving.get(path)
        assert status == 404 and headers["content-type"].startswith("text/html"), (path, status)
        assert f"no page at {path}: the board is at /" in body and 'href="/"' in body, body
    status, _headers, body = serving.get("/move")  # a POST-only path asked with GET
    assert status == 405 and "GET is not taken at /move" in body


def _error_sentence(body):
    """The error page's sentence (its <p>), unescaped."""
    import html

    return html.unescape(re.search(r"<h1>[^<]*</h1><p>(.*?)</p>", body, re.S).group(1))


def test_web_errors_name_the_pages_parameters_and_fields_not_cli_options(seeded, server):
    _db, goal, ids = seeded
    serving = server("--write")
    asked = {  # path -> words the sentence must have
        "/?goal=abc": "bad goal 'abc'",
        "/columns?goal=abc": "bad goal 'abc'",
        f"/?goal={ids['polish']}": f"{ids['polish']} is not a goal",
        "/charts?goal=abc": "bad goal 'abc'",
        f"/charts?goal={ids['polish']}": f"{ids['polish']} is not a goal",
        "/charts?goal=TASK-999": "no task TASK-999",
        "/charts?since=yesterday": "bad since 'yesterday'",
    }
    for path, words in asked.items():
        status, _headers, body = serving.get(path)
        sentence = _error_sentence(body)
        assert status in (400, 404) and words in sentence and "--" not in sentence and "task id" not in sentence, \
            (path, status, sentence)
    assert serving.get(f"/charts?goal={goal}&since=7d")[0] == 200
    token = re.search(r'name="csrf-token" content="([^"]+)"', serving.get("/")[2]).group(1)
    status, _h, body = serving.post("/move", {"task": ids["fix login"], "column": "done", "csrf": token})
    error = json.loads(body)
    assert status == 409 and error["code"] == "conflict" and "held by w2" in error["error"]
    assert "--" not in error["error"] and "force ends that lease" in error["error"], error


def test_a_non_loopback_bind_needs_a_token(seeded, tmp_path):
    db = seeded[0]
    res = run("serve", "--bind", "0.0.0.0", "--port", "0", env={"KANBAN_DB": db}, timeout=30)
    assert res.rc == 2 and json.loads(res.err.splitlines()[-1])["code"] == "usage", res  # no token yet
    token = run("mcp", "token", "add", "person1", env={"KANBAN_DB": db}).json["token"]
    serving = Server(db, "--bind", "0.0.0.0")
    try:
        local = serving.url.replace("0.0.0.0", "127.0.0.1")
        assert _http(local)[0] == 401                                     # no token
        assert _http(local, headers={"Authorization": "Bearer kb_1_wrong"})[0] == 401
        assert _http(local, headers={"Authorization": f"Bearer {token}"})[0] == 200
        status, headers, _ = _http(local + "?project=web&token=" + urllib.parse.quote(token))
        assert status == 303 and headers["location"] == "/?project=web"   # the token leaves the address
        assert "HttpOnly" in headers["set-cookie"] and "SameSite=Strict" in headers["set-cookie"]
        cookie = headers["set-cookie"].split(";")[0]
        assert _http(local, headers={"Cookie": cookie})[0] == 200
    finally:
        serving.stop()


def test_serve_refuses_a_bad_port_and_a_missing_board(tmp_path):
    res = run("serve", "--port", "70000", env={"KANBAN_DB": tmp_path / "none.db"})
    assert res.rc == 2
    res = run("serve", "--port", "0", env={"KANBAN_DB": tmp_path / "none.db"})
    assert res.rc == 2 and json.loads(res.err.splitlines()[-1])["code"] == "not_found"


def _stream(url, since):
    """An open Server-Sent Events stream of the board at `url`: a line reader."""
    import http.client

    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", "/events?since=" + urllib.parse.quote(since))
    answer = conn.getresponse()
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/event-stream")
    return conn, answer


def _live_within_a_second(db, task):
    from kanban import Board

    with Board(str(db)) as board:
        since = board.latest_cursor()
    serving = Server(db)
    try:
        conn, answer = _stream(serving.url, since)
        assert answer.readline().decode().startswith("retry:")
        claim = subprocess.run([str(KANBAN), "claim", task, "--agent", "w8"], env=_env(db), capture_output=True,
                               text=True, timeout=30)
        committed = time.monotonic()
        assert claim.returncode == 0, claim
        lines = []
        while not lines or lines[-1] != "":
            lines.append(answer.readline().decode().rstrip("\n"))
            if lines == [""]:
                lines = []
        seen = time.monotonic() - committed
        assert lines[0] == "event: change", lines
        note = json.loads(lines[2][len("data: "):])
        assert task in note["tasks"] and "claimed" in note["kinds"] and lines[1] == f"id: {note['cursor']}"
        assert seen < 1.0, f"the change reached the stream {seen:.2f}s after the claim committed"
        conn.close()
    finally:
        serving.stop()


def test_a_change_reaches_the_event_stream_within_a_second(seeded):
    db, _goal, ids = seeded
    _live_within_a_second(db, ids["ship it"])


@needs_pg
def test_live_on_a_postgres_board(pg_url):  # noqa: F811
    """The same board on PostgreSQL: the page, the task page and the stream."""
    db = pg_url
    kanban(db, "init")
    goal = kanban(db, "create", "Launch", "--kind", "goal")["id"]
    first = kanban(db, "create", EVIL, "--goal", goal)["id"]
    serving = Server(db)
    try:
        status, _h, body = serving.get("/")
        assert status == 200 and first in body and "<script>window.pwned" not in body
        assert serving.get("/task/" + first)[0] == 200
        assert serving.get("/charts")[0] == 200
    finally:
        serving.stop()
    _live_within_a_second(db, first)


def test_serve_on_a_port_taken_is_a_json_error(seeded):
    """A port another program listens on: exit 2 and one JSON line, as kanban-serve(1) says,
    not the web server's own log line and its exit status 3."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = run("serve", "--port", str(port), env={"KANBAN_DB": seeded[0]}, timeout=30)
    assert res.rc == 2 and res.out == "", res
    [line] = res.err.splitlines()
    error = json.loads(line)
    assert error["code"] == "usage" and error["error"] == f"cannot listen on 127.0.0.1:{port}: Address already in use"


def test_a_move_with_an_empty_field_says_which_field_is_empty(seeded, server):
    """The move form with an empty `task` said "bad task id ''": the page has a task field,
    not a task id argument. An empty field is named as the page names it; nothing moves."""
    db, _goal, ids = seeded
    serving = server("--write")
    token = re.search(r'name="csrf-token" content="([^"]+)"', serving.get("/")[2]).group(1)
    asked = {
        ("", "done"): "the task field is empty: say which task to move (TASK-<n>)",
        ("  ", "done"): "the task field is empty",
        (ids["ship it"], ""): "the column field is empty: say which column to move it to (todo,",
        ("abc", "done"): "bad task 'abc': expected TASK-<n>",
    }
    for (task, column), words in asked.items():
        status, _h, body = serving.post("/move", {"task": task, "column": column, "csrf": token})
        error = json.loads(body)
        assert status == 400 and error["code"] == "invalid" and error["error"].startswith(words), (task, column, error)
        assert "task id" not in error["error"] and "''" not in error["error"], error
    assert kanban(db, "show", ids["ship it"])["status"] == "todo"


def test_a_move_error_keeps_its_hint(seeded, server, page):
    """A move the board refuses with a hint ("did you mean 'done'?") had the hint in its
    JSON but the page showed the sentence alone. The answer has it over HTTP, and the page
    shows it; nothing moves."""
    db, _goal, ids = seeded
    serving = server("--write")
    token = re.search(r'name="csrf-token" content="([^"]+)"', serving.get("/")[2]).group(1)
    status, _h, body = serving.post("/move", {"task": ids["ship it"], "column": "don", "csrf": token})
    error = json.loads(body)
    assert status == 400 and error["code"] == "invalid" and error["hint"] == "did you mean 'done'?", error
    # the task page's form, with a column its select does not offer (a hand-made or stale form)
    page.goto(serving.url + "task/" + ids["ship it"])
    page.eval_on_selector('#move select[name="column"]',
                          "s => { const o = new Option('don', 'don'); s.add(o); s.value = 'don'; }")
    page.click("#move button[type=submit]")
    page.wait_for_selector("#notice:not([hidden])", timeout=5_000)
    shown = page.inner_text("#notice")
    assert "unknown column 'don'" in shown and "did you mean 'done'?" in shown, shown
    assert kanban(db, "show", ids["ship it"])["status"] == "todo"


def _has_ipv6_loopback():
    import socket

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_bind_localhost_listens_on_127_0_0_1_and_on_ipv6_loopback(seeded):
    """`--bind localhost` listened only on the first address the resolver gave (here
    127.0.0.1), where uvicorn listened on each: a browser resolving localhost to ::1 found
    nothing. localhost is both loopbacks now, on one port; real connections to each."""
    serving = Server(seeded[0], "--bind", "localhost")
    try:
        port = int(serving.url.rsplit(":", 1)[1].strip("/"))
        assert serving.url == f"http://localhost:{port}/"
        assert _http(f"http://127.0.0.1:{port}/")[0] == 200
        if not _has_ipv6_loopback():
            pytest.skip("this machine has no IPv6 loopback (::1 cannot be bound): only 127.0.0.1 was checked")
        status, _h, body = _http(f"http://[::1]:{port}/")
        assert status == 200 and "kanban board" in body
    finally:
        serving.stop()


def test_bind_localhost_on_a_port_taken_on_ipv6_loopback_is_a_json_error(seeded):
    """A port free on 127.0.0.1 but taken on ::1: the usual error, nothing half-served."""
    import socket

    if not _has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (::1 cannot be bound)")
    with socket.socket(socket.AF_INET6) as taken:
        taken.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        taken.bind(("::1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = run("serve", "--bind", "localhost", "--port", str(port), env={"KANBAN_DB": seeded[0]}, timeout=30)
    assert res.rc == 2 and res.out == "", res
    assert json.loads(res.err)["error"] == f"cannot listen on localhost:{port}: Address already in use"


def test_no_two_axis_labels_of_a_chart_run_into_each_other(seeded, server, page):
    """The cycle and lead time chart labelled each of its sixteen bins, and '<10m<20m<30m'
    and '<30d>=30d' ran into each other at every width: it names the bounds between the
    bins now. Every chart's x labels, measured in the browser, keep apart."""
    serving = server()
    for width in (1400, 560):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(serving.url + "charts")
        for chart in ("cfd", "burndown", "throughput", "times"):
            boxes = page.eval_on_selector_all(
                f'svg[data-chart="{chart}"] text.tick',
                "ts => ts.filter(t => Number(t.getAttribute('y')) > 220)"
                ".map(t => { const r = t.getBoundingClientRect(); return [t.textContent, r.left, r.right]; })")
            assert boxes, chart
            touching = [(a[0], b[0]) for a, b in zip(boxes, boxes[1:], strict=False) if a[2] > b[1] - 2]
            assert not touching, (width, chart, boxes)
    times = page.eval_on_selector_all('svg[data-chart="times"] text.tick',
                                      "ts => ts.filter(t => Number(t.getAttribute('y')) > 220).map(t => t.textContent)")
    assert times[:3] == ["1m", "2m", "5m"] and times[-1] == "30d", times
    first_bar = page.locator('svg[data-chart="times"] [data-series="cycle"] rect title').first
    assert first_bar.text_content().startswith("<1m: ")                  # each bar still says its bin


def test_every_key_of_a_charts_legend_is_seen_whole(seeded, server, page):
    """The burndown's legend ran on past the chart's right edge, where its keys were drawn
    and nobody saw them (three goals of eight had a key), and the bottom of every legend
    was cut off ('in_progress' read 'in progress', a 'g' lost its tail). The keys wrap in
    rows inside the chart now; measured in Chromium."""
    db, _goal, _ids = seeded
    for n in range(8):
        goal = kanban(db, "create", f"goal number {n} with a rather long title", "--kind", "goal")["id"]
        kanban(db, "create", f"work {n}", "--goal", goal)
    serving = server()
    page.goto(serving.url + "charts")
    for chart in ("cfd", "burndown", "times"):
        keys = page.eval_on_selector_all(
            f'svg[data-chart="{chart}"] g[transform] text',
            "ts => ts.map(t => { const r = t.getBBox(), s = t.closest('svg').viewBox.baseVal,"
            " m = t.parentNode.transform.baseVal[0].matrix;"
            " return [t.textContent, m.e + r.x + r.width, m.f + r.y + r.height, s.width, s.height]; })")
        assert keys, chart
        cut = [key for key in keys if key[1] > key[3] or key[2] > key[4]]
        assert not cut, (chart, cut)
    # nine goals: eight lines, and the ninth is not left out without a word
    legend = page.eval_on_selector_all('svg[data-chart="burndown"] g[transform] text',
                                       "ts => ts.map(t => t.textContent)")
    assert len(legend) == 9 and legend[-1] == "and 1 more goal: choose one above", legend


def test_a_move_the_board_refuses_without_json_says_why(seeded, page):
    """A move answered by something other than the board's JSON (a revoked token's 401,
    plain text) made the page's script fail on r.json() and say nothing: the card stayed
    and nobody knew why. The page shows the answer's sentence; and a board that does not
    answer at all is said too."""
    db, _goal, ids = seeded
    added = run("mcp", "token", "add", "person1", env={"KANBAN_DB": db}).json
    serving = Server(db, "--bind", "0.0.0.0", "--write")
    local = serving.url.replace("0.0.0.0", "127.0.0.1")
    try:
        page.goto(local + "task/" + ids["ship it"] + "?token=" + urllib.parse.quote(added["token"]))
        page.wait_for_selector("#move")
        kanban(db, "mcp", "token", "revoke", str(added["id"]))
        page.select_option('#move select[name="column"]', "cancelled")
        page.click("#move button[type=submit]")
        page.wait_for_selector("#notice:not([hidden])", timeout=5_000)
        assert "this board needs an access token" in page.inner_text("#notice")
        assert kanban(db, "show", ids["ship it"])["status"] == "todo"
    finally:
        serving.stop()
    page.click("#move button[type=submit]")                             # the server is gone
    page.wait_for_function("() => document.getElementById('notice').textContent.includes('did not answer')",
                           timeout=5_000)
