"""The web board's routes.  Every page is made from Board calls, as the CLI's answers are.

    GET  /              the board: goals with progress, a column per status, filters
    GET  /columns       the same board's goals and columns only (what a live page refetches)
    GET  /task/ID       a task with its whole history from the event log
    GET  /charts        cumulative flow, burndown per goal, cycle and lead time, throughput
    GET  /events        Server-Sent Events: `change` whenever the event log moves
    POST /move          with --write: Board.move, the CLI's `kanban move` (CSRF token required)
    GET  /static/...    the page's own CSS and JavaScript
"""
import asyncio
import contextlib
import os
import secrets
import threading
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import boardview, charts, clock, flow
from ..board import CLOSED, STATUSES, Board, parse_id
from ..errors import KanbanError
from ..render import seconds_text
from . import guard, words
from .live import Hub

HERE = Path(__file__).resolve().parent
FILTERS = ("project", "role", "agent", "goal")
OPEN_CAP, CLOSED_CAP = 200, 30  # cards drawn per column; the count says how many there are
HTTP_STATUS = {"usage": 400, "invalid": 400, "not_found": 404, "conflict": 409, "lease_lost": 409,
               "forbidden": 403, "cycle": 409, "busy": 503, "hook_rejected": 409, "db_error": 500, "internal": 500}
TITLES = {status: status.replace("_", " ").upper() for status in STATUSES}


def create_app(location, *, write=False, token_check=None, hosts=None, actor=None):
    """The ASGI application for the board at `location`.

    write: people may move cards.  token_check: token -> agent (None: no token needed).
    hosts: the Host names accepted (None: any).  actor: who moves cards without a token."""
    local = threading.local()

    def open_board():
        return Board(location)

    def board():
        if getattr(local, "board", None) is None:
            local.board = open_board()
        return local.board

    hub = Hub(open_board)
    csrf = secrets.token_urlsafe(32)
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.globals.update(titles=TITLES, write=write, csrf=csrf if write else "", static=_static_version())
    env.filters["when"] = words.when
    env.filters["waits"] = words.waits
    env.filters["status"] = words.status
    env.filters["words"] = words.words
    env.filters["details"] = words.details
    env.globals.update(label=words.label, errors=words.ERRORS, lease_left=words.lease_left,
                       lease_expired=words.lease_expired)
    env.globals["seconds"] = seconds_text
    # the board's clock (KANBAN_NOW too), in epoch ms: the page counts leases down from it,
    # not from the browser's clock, which may be set otherwise
    env.globals["board_now"] = clock.now_ms

    def page(name, status=200, **values):
        return HTMLResponse(env.get_template(name).render(**values), status_code=status)

    def failed(exc):
        return page("error.html", HTTP_STATUS.get(exc.code, 500), error=exc.to_dict())

    def view(request):
        filters = {key: (request.query_params.get(key) or None) for key in FILTERS}
        try:
            doc = board_view(board(), filters)
        except KanbanError as exc:
            return None, failed(exc)
        return doc, None

    def index(request):
        doc, error = view(request)
        if error:
            return error
        return page("board.html", doc=doc, filters=doc["filter"], cursor=hub.cursor or "",
                    query=request.url.query)

    def columns(request):
        doc, error = view(request)
        if error:
            return error
        return page("columns.html", doc=doc)

    def task(request):
        try:
            b = board()
            shown = b.show(request.path_params["ref"], events=0)
            history, cursor = [], None
            while True:
                batch = b.events(task=shown["id"], since=cursor, limit=1000)
                history += batch["events"]
                if not batch["events"]:
                    break
                cursor = batch["cursor"]
            worked_by = b.holders_of([shown["id"]]).get(shown["id"], [])
        except KanbanError as exc:
            return failed(exc)
        return page("task.html", task=shown, history=history, worked_by=worked_by, cursor=hub.cursor or "",
                    columns=Board.MOVE_COLUMNS)

    def chart_page(request):
        goal, since = request.query_params.get("goal") or None, request.query_params.get("since") or None
        try:
            b = board()
            goal_id = _goal_of(b, goal)
            history = b.flow_history()
            start = flow.since_ms(since, history["now"], "since")
            drawn = {name: Markup(charts.SVG[name](flow.chart(history, name, goal=goal_id, since=start)))
                     for name in ("cfd", "burndown", "throughput", "times")}
            limits = b.stats()["limits"]
        except KanbanError as exc:
            return failed(exc)
        goals = [t for t in history["tasks"] if t["kind"] == "goal"]
        return page("charts.html", charts=drawn, goals=goals, goal=goal, since=since or "", limits=limits,
                    cursor=hub.cursor or "", seconds=seconds_text)

    async def events(request):
        return StreamingResponse(hub.stream(request, request.query_params.get("since")),
                                 media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    async def move(request):
        if not write:
            return JSONResponse({"error": "this board is read-only: serve it with --write", "code": "forbidden"},
                                status_code=403)
        from urllib.parse import parse_qsl

        # an urlencoded form, as the page sends it (no multipart parser needed)
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not guard.same_origin(headers) or not guard.csrf_ok(
                csrf, headers.get("x-csrf-token") or form.get("csrf")):
            return JSONResponse({"error": "missing or wrong CSRF token: move cards from the board's own page",
                                 "code": "forbidden"}, status_code=403)
        who = request.scope.get("state", {}).get("agent") or actor
        from starlette.concurrency import run_in_threadpool

        try:
            task, column = _form_field(form, "task"), _form_field(form, "column")
            moved = await run_in_threadpool(
                board().move, parse_id(task, "task"), column, reason=form.get("reason") or None,
                force=form.get("force") in ("1", "on", "true"), actor=who)
        except KanbanError as exc:
            return JSONResponse(_in_form_words(exc.to_dict()), status_code=HTTP_STATUS.get(exc.code, 500))
        return JSONResponse(moved)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        hub.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            hub.stop()

    routes = [
        Route("/", index), Route("/columns", columns), Route("/task/{ref}", task), Route("/charts", chart_page),
        Route("/events", events), Route("/move", move, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    async def no_page(request, exc):
        """A path the board has no page for (or a method it does not take there): the
        error page, with a sentence, as for every other error."""
        if exc.status_code == 405:
            error = {"code": "usage", "error": f"{request.method} is not taken at {request.url.path}"}
        else:
            error = {"code": "not_found", "error": f"no page at {request.url.path}: the board is at /"}
        return page("error.html", exc.status_code, error=error)

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: no_page, 405: no_page})
    guarded = guard.Guard(app, hosts=hosts, check_token=token_check)
    guarded.hub = hub  # serve ends the live streams when it shuts down
    return guarded


def board_view(b, filters):
    """The board for a page: goals with progress, and a column per status whose cards
    have the shape of `kanban board`'s (boardview); open columns drawn up to OPEN_CAP
    cards, closed ones their latest CLOSED_CAP, each with its whole count and WIP limit.
    Only what is drawn is read, so a board of many done tasks renders as fast as a
    small one."""
    project, goal, role, agent = (filters[key] for key in ("project", "goal", "role", "agent"))
    now = clock.now_ms()
    scope = {"project": project, "goal": goal}
    if goal is not None:
        goals = [b.show(_goal_of(b, goal), events=0)]
    else:
        goals = b.list(kind="goal", project=project, details=True)["tasks"]
    counts = b.column_counts(role=role, agent=agent, **scope)
    work = b.list(status=",".join(s for s in STATUSES if s not in CLOSED), kind="task", details=True,
                  **scope)["tasks"]
    worked_by = b.holders_of([t["id"] for t in work if t["status"] == "in_review"])
    cards = [(t["status"], boardview._entry(t, now, worked_by)) for t in work]
    roles = sorted({c["role"] for _, c in cards if c["role"]})
    agents = sorted({a for _, c in cards for a in (c["holder"], c["assignee"], *c["worked_by"]) if a})
    cards = [(status, c) for status, c in cards if (role is None or c["role"] == role)
             and (agent is None or agent in (c["holder"], c["assignee"], *c["worked_by"]))]
    limits = b.column_limits()
    columns = []
    for status in STATUSES:
        if status in CLOSED:
            shown = [boardview._entry(t, now, {}) for t in b.recent(status, role=role, agent=agent, limit=CLOSED_CAP,
                                                                     **scope)["tasks"]]
        else:
            shown = [c for card_status, c in cards if card_status == status][:OPEN_CAP]
        columns.append({"status": status, "count": counts[status], "tasks": shown, "limit": limits.get(status)})
    return {
        "goals": [{"id": g["id"], "title": g["title"], "status": g["status"],
                   "progress": g.get("progress") or {"total": 0, "done": 0, "cancelled": 0}} for g in goals],
        "columns": columns, "filter": dict(filters),
        "choices": {"project": b.projects(), "role": roles, "agent": agents,
                    "goal": [(g["id"], g["title"]) for g in goals]},
    }


def _goal_of(b, goal):
    """The `goal` query parameter as a goal's number (None when not given), or the error
    that names the parameter: not the CLI's option, nor "task id"."""
    if goal is None:
        return None
    number = parse_id(goal, "goal")
    head = b.show(number, events=0)
    if head["kind"] != "goal":
        raise KanbanError("invalid", f"{head['id']} is not a goal", task=head["id"])
    return number


def _form_field(form, name):
    """A field of the move form, or the error that says, in the page's words, that it is
    empty (not the board's "bad task id ''")."""
    value = form.get(name, "")
    if not value.strip():
        which = "task to move (TASK-<n>)" if name == "task" else \
            f"column to move it to ({', '.join(Board.MOVE_COLUMNS)})"
        raise KanbanError("invalid", f"the {name} field is empty: say which {which}")
    return value


# The board's messages speak to the CLI (`kanban move ... --force`); the page's form and
# its drag and drop have a `force` field instead.
FORM_WORDS = {"--force": "force", "--reason": "reason"}


def _in_form_words(error):
    for option, field in FORM_WORDS.items():
        for key in ("error", "hint"):
            if error.get(key):
                error[key] = error[key].replace(option, field)
    return error


def _static_version():
    """A cache-busting mark for the static files: their newest change."""
    folder = HERE / "static"
    return str(int(max((os.stat(folder / name).st_mtime for name in os.listdir(folder)), default=0)))
