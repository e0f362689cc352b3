"""Who may ask the web board, and what every answer carries.

- Bound to a loopback address (the default, 127.0.0.1), the board answers this
  machine only; the Host header must name the board (no DNS rebinding).
- Bound to anything else, every request needs an access token (`kanban mcp token
  add AGENT`): `Authorization: Bearer T`, or `?token=T` once, which sets an HttpOnly,
  SameSite=Strict cookie and redirects to the same page without the token in the
  address.  The token's agent is who moves cards.  Tokens are checked by the board
  (stored hashed, compared in constant time) and never logged.
- Every write carries the page's CSRF token (a secret of this server's run), and a
  request whose Origin is another site is refused.
- Every answer forbids framing, inline scripts and loading from elsewhere (CSP).
"""
import hmac
import ipaddress
from urllib.parse import parse_qsl, urlencode

COOKIE = "kanban_token"
HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
     b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def is_loopback(host):
    if host in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(value):
    value = value.strip().lower()
    if value.startswith("["):
        return value[:value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def same_origin(headers):
    """False when the request says it comes from another site."""
    origin = headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/").lower() == host.lower()


def csrf_ok(expected, given):
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


class Guard:
    """ASGI middleware: Host check, access tokens (when required), security headers."""

    def __init__(self, app, *, hosts=None, check_token=None):
        self.app = app
        self.hosts = hosts              # allowed Host names, or None for any
        self.check_token = check_token  # token -> agent or None; None when no token is needed

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + HEADERS
            await send(message)

        if self.hosts is not None and _host_name(headers.get("host", "")) not in self.hosts:
            return await _plain(send_with_headers, 400, "bad Host header: this board answers on its own address only")
        if self.check_token is not None:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            auth = headers.get("authorization", "")
            token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
            from_query = token is None and "token" in query
            if token is None:
                token = query.get("token") if from_query else _cookie(headers.get("cookie", ""), COOKIE)
            from starlette.concurrency import run_in_threadpool

            agent = await run_in_threadpool(self.check_token, token) if token else None
            if not agent:
                return await _plain(send_with_headers, 401, "this board needs an access token "
                                    "(kanban mcp token add AGENT): Authorization: Bearer TOKEN, or ?token=TOKEN",
                                    [(b"www-authenticate", b'Bearer realm="kanban"')])
            if from_query:
                rest = urlencode([(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"))
                                  if k != "token"])
                location = scope["path"] + (f"?{rest}" if rest else "")
                cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
                return await _plain(send_with_headers, 303, "see " + location,
                                    [(b"location", location.encode("latin-1")),
                                     (b"set-cookie", cookie.encode("latin-1"))])
            scope.setdefault("state", {})["agent"] = agent
        return await self.app(scope, receive, send_with_headers)


def _cookie(header, name):
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


async def _plain(send, status, text, extra=()):
    body = (text + "\n").encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})
