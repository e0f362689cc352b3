"""`kanban serve`: run the web board (lib/kanban/web) under uvicorn.

The web stack is the `web` extra, imported here only.  Bound to a loopback address
(the default) the board answers this machine; bound to anything else it needs the
board's access tokens (`kanban mcp token add AGENT`) on every request, and refuses
to start on a board that has none.
"""
import os
import sys

from .board import Board, login_name, parse_int
from .errors import KanbanError, usage


def serve(args):
    from .extras import require

    uvicorn = require("uvicorn", "web", "kanban serve")
    require("starlette", "web", "kanban serve")
    require("jinja2", "web", "kanban serve")
    from .web import guard
    from .web.app import create_app

    host = args["--bind"] or "127.0.0.1"
    port = parse_int(args["--port"] or "8765", "--port", minimum=0)
    if port > 65535:
        raise KanbanError("invalid", f"bad --port {port}: 0 to 65535")
    with Board() as board:  # the board must exist before anything listens
        location = board.path
        loopback = guard.is_loopback(host)
        token_check = None
        if not loopback:
            if not [t for t in board.token_list()["tokens"] if not t.get("revoked_at")]:
                raise usage(f"--bind {host} is not a loopback address: every request needs an access token, "
                            "and this board has none", hint="kanban mcp token add AGENT, or bind 127.0.0.1")
            token_check = _checker(location)
    hosts = None
    if loopback:
        hosts = {"localhost", "127.0.0.1", "[::1]", "::1", host.lower(),
                 f"[{host.lower()}]" if ":" in host else host.lower()}
    actor = os.environ.get("KANBAN_AGENT") or login_name()
    app = create_app(location, write=bool(args["--write"]), token_check=token_check, hosts=hosts, actor=actor)
    sock = listen(host, port)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    _announce(server, host)
    handle_exit = server.handle_exit

    def closing(sig, frame):  # Ctrl-C: open pages' streams end, so the shutdown is clean
        app.hub.closing = True
        handle_exit(sig, frame)
    server.handle_exit = closing
    server.run(sockets=[sock])
    return 0


def listen(host, port):
    """A socket bound to host:port for uvicorn, or a `usage` error that says why not (the
    port is taken, no such address) before anything is announced: left to uvicorn, a
    taken port is its own log line and exit status 3."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise usage(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _checker(location):
    import threading

    local = threading.local()

    def check(token):
        if getattr(local, "board", None) is None:
            local.board = Board(location)
        return local.board.token_check(token)
    return check


def _announce(server, host):
    """Print the board's address once uvicorn listens (the port may have been 0)."""
    startup = server.startup

    async def started(sockets=None):
        await startup(sockets=sockets)
        for listener in server.servers:
            for sock in listener.sockets:
                port = sock.getsockname()[1]
                shown = f"[{host}]" if ":" in host else host
                sys.stdout.write(f"kanban serve: http://{shown}:{port}/\n")
                sys.stdout.flush()
                return
    server.startup = started
