"""`kanban serve`: the live board in a browser.

A small Starlette application served by uvicorn (the `web` extra: imported by
`serve` only, never on the plumbing path).  Pages are made on the server from the
same Board calls the CLI makes and escaped by Jinja2's autoescape; the charts are
SVG made on the server (lib/kanban/charts.py); the browser loads nothing from
anywhere but this server.

- app.py    the routes: board, task page, charts, the move form (with --write)
- live.py   one watcher follows the event log's cursor and tells every open page,
            over Server-Sent Events, that the board changed
- words.py  what the pages say for the board's keys: fields, events, statuses, error codes
- guard.py  who may ask: loopback only by default, an access token otherwise, the
            CSRF token on every write, the Host header, the security headers
"""
