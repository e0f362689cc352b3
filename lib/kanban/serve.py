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
    socks = listen(host, port)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    _announce(server, host)
    handle_exit = server.handle_exit

    def closing(sig, frame):  # Ctrl-C: open pages' streams end, so the shutdown is clean
        app.hub.closing = True
        handle_exit(sig, frame)
    server.handle_exit = closing
    server.run(sockets=socks)
    return 0


def listen(host, port):
    """Sockets bound to host:port for uvicorn, one for each address `host` stands for (as
    uvicorn binds a name), or a `usage` error that says why not (the port is taken, no
    such address) before anything is announced: left to uvicorn, a taken port is its own
    log line and exit status 3.  `localhost` is the loopback of each family the machine
    has, 127.0.0.1 and ::1, whatever the resolver lists first: a browser that resolves it
    to ::1 reaches the board as one that resolves it to 127.0.0.1 does.  Port 0 is one
    port the kernel picks, the same on every address."""
    import errno
    import socket

    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise usage(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    addresses = []
    if host.lower().rstrip(".") == "localhost":
        addresses = [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, ("127.0.0.1", port)),
                     (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, ("::1", port, 0, 0))]
    for family, kind, proto, _, address in found:
        if address[:2] not in [a[3][:2] for a in addresses]:
            addresses.append((family, kind, proto, address))
    unavailable = (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT)
    for attempt in range(20):
        socks, chosen, failed = [], port, None
        for family, kind, proto, address in addresses:
            try:
                sock = socket.socket(family, kind, proto)
            except OSError as exc:  # a family this machine has not (no IPv6): the other addresses
                failed = failed or exc
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((address[0], chosen, *address[2:]))
            except OSError as exc:
                sock.close()
                if exc.errno in unavailable:  # an address this machine has not (no ::1): the others
                    failed = failed or exc
                    continue
                for bound in socks:
                    bound.close()
                # port 0 and the kernel's port for the first address taken on another: pick again
                if port == 0 and socks and exc.errno == errno.EADDRINUSE and attempt < 19:
                    socks = None
                    break
                raise usage(f"cannot listen on {host}:{chosen}: {exc.strerror or exc}") from None
            socks.append(sock)
            chosen = sock.getsockname()[1]
        if socks is None:
            continue
        if socks:
            return socks
        raise usage(f"cannot listen on {host}:{port}: {failed.strerror or failed}") from None
    raise usage(f"cannot listen on {host}:{port}: no port free on every address")  # pragma: no cover


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
