"""The web board's figures for bench/run.py (section `web`).

- first render: a 10,000-task board (bench/run.py's build_board) served by a real
  `kanban serve`; the server's time to answer `/` (p50 of N), and in Chromium the
  time from navigation to the first contentful paint and to DOMContentLoaded; set
  against `kanban board --format json` on the same board, the CLI's own answer.
- SSE latency: a page open on that board; a real `kanban claim ID` process; the time
  from the claim's commit (the process has returned) to the card standing in the IN
  PROGRESS column of the page's DOM, measured with the same wall clock; set against
  the watcher's poll interval.

Without a browser (no Playwright, or no /usr/bin/chromium) the browser figures are
skipped and say why; the server's figures are still taken.
"""
import os
import statistics
import subprocess
import time
import urllib.request

CHROMIUM = os.environ.get("KANBAN_TEST_CHROMIUM") or "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]


def _ms(values):
    values = sorted(values)
    return {"p50": round(statistics.median(values), 1), "max": round(values[-1], 1), "n": len(values)}


def section_web(cfg, work, build_board, kanban, python):
    """`build_board(path, total, ready)` makes the board; `kanban` is bin/kanban."""
    full = cfg["cli_rounds"] >= 20
    tasks = 10_000 if full else 2_000  # quick: a smaller board, fewer rounds
    rounds = 10 if full else 4
    folder = os.path.join(work, "web")
    os.makedirs(folder)
    path = os.path.join(folder, "board.db")
    built = build_board(path, tasks, min(3000, tasks // 3))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env["KANBAN_DB"] = path
    out = {"tasks": tasks, "board": built}

    cli = []
    for _ in range(max(3, rounds // 2)):
        began = time.perf_counter()
        subprocess.run([kanban, "board", "--format", "json"], env=env, capture_output=True, check=True)
        cli.append((time.perf_counter() - began) * 1000)
    out["cli_board_json_ms"] = _ms(cli)

    server = subprocess.Popen([kanban, "serve", "--port", "0"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        if not line:
            return {"error": f"kanban serve did not start: {server.stderr.read()[-500:]}"}
        url = line.split()[-1]
        served = []
        for _ in range(rounds):
            began = time.perf_counter()
            with urllib.request.urlopen(url, timeout=60) as answer:
                size = len(answer.read())
            served.append((time.perf_counter() - began) * 1000)
        out["server_first_page_ms"] = _ms(served)
        out["page_bytes"] = size
        out["first_page_vs_cli_board"] = round(out["server_first_page_ms"]["p50"] / out["cli_board_json_ms"]["p50"], 2)
        out.update(_browser(url, env, kanban, path, rounds))
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    return out


def _browser(url, env, kanban, path, rounds):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"browser": "skipped: Playwright for Python is not installed (it is in the test extra)"}
    if not os.path.exists(CHROMIUM):
        return {"browser": f"skipped: no Chromium at {CHROMIUM} (apt-get install chromium)"}
    from kanban import Board
    from kanban.web.live import POLL_S

    with Board(path) as board:
        todo = [t["id"] for t in board.list(status="todo", ready=True, limit=500)["tasks"]
                if t["role_boundary"] is None and t["assignee"] is None]
    out = {"browser": "chromium"}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        paints, loaded = [], []
        for _ in range(max(3, rounds // 2)):
            page = browser.new_page(viewport={"width": 1500, "height": 950})  # a fresh page paints afresh
            page.goto(url, wait_until="load")
            page.wait_for_timeout(100)
            timing = page.evaluate("""() => {
                const nav = performance.getEntriesByType('navigation')[0];
                const fcp = performance.getEntriesByName('first-contentful-paint')[0];
                return {fcp: fcp ? fcp.startTime : null, dcl: nav.domContentLoadedEventEnd};
            }""")
            if timing["fcp"] is not None:
                paints.append(timing["fcp"])
            loaded.append(timing["dcl"])
            page.close()
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.goto(url, wait_until="load")
        out["browser_first_contentful_paint_ms"] = _ms(paints) if paints else None
        out["browser_dom_content_loaded_ms"] = _ms(loaded)
        page.wait_for_selector("#live-state.on", timeout=30_000)
        latencies = []
        for task in todo[:rounds]:
            subprocess.run([kanban, "claim", task, "--agent", "bench-web"], env=env, capture_output=True, check=True)
            committed = time.time() * 1000
            seen = page.wait_for_function(
                """id => document.querySelector(`.column[data-status="in_progress"] .card[data-id="${id}"]`)
                        ? Date.now() : false""", arg=task, timeout=30_000).json_value()
            latencies.append(seen - committed)
        out["sse_latency_ms"] = _ms(latencies)
        out["sse_latency_vs_poll"] = round(out["sse_latency_ms"]["p50"] / (POLL_S * 1000), 2)
        browser.close()
    return out


def markdown(section):
    if "server_first_page_ms" not in section:
        return []
    lines = ["", f"## The web board on a {section['tasks']:,}-task board (`kanban serve`)", "",
             "| measure | p50 | max | runs |", "|---|---|---|---|"]

    def row(name, stats):
        if stats:
            lines.append(f"| {name} | {stats['p50']:.0f} ms | {stats['max']:.0f} ms | {stats['n']} |")
    row("`kanban board --format json` (CLI, the same board)", section["cli_board_json_ms"])
    row(f"server answers `/` ({section['page_bytes'] / 1000:.0f} kB)", section["server_first_page_ms"])
    row("browser: first contentful paint", section.get("browser_first_contentful_paint_ms"))
    row("browser: DOMContentLoaded", section.get("browser_dom_content_loaded_ms"))
    row("SSE latency: `kanban claim` committed to the card in the DOM", section.get("sse_latency_ms"))
    lines.append("")
    lines.append(f"First page / CLI board: {section['first_page_vs_cli_board']}x"
                 + (f"; SSE latency / watcher poll interval: {section['sse_latency_vs_poll']}x"
                    if "sse_latency_vs_poll" in section else f"; browser {section.get('browser')}") + ".")
    return lines
