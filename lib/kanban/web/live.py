"""Live updates: one watcher follows the event log, every open page hears of changes.

The watcher is a thread with a board connection of its own.  It reads the events
after its cursor every POLL_S seconds (on a Postgres board it also wakes early on
LISTEN/NOTIFY, through Board.wait_for_work), and when there are new ones it puts a
note — the new cursor, the tasks and kinds that changed — on the queue of every
subscribed page.  A page's Server-Sent Events stream sends that note; the page then
fetches its columns again.  A page that connects with an older cursor than the
watcher's is told at once, so nothing between its render and its connection is lost.
EventSource reconnects by itself (the stream asks for a retry after 1 s).
"""
import asyncio
import threading

from ..jsontext import dumps

POLL_S = 0.15
KEEPALIVE_S = 15
TICK_S = 0.5  # how soon a stream notices that the server is shutting down


class Hub:
    def __init__(self, open_board):
        self.open_board = open_board
        self.cursor = None
        self.subscribers = set()
        self.loop = None
        self.stopping = threading.Event()
        self.closing = False  # the server is shutting down: every stream ends
        self.thread = None
        self.error = None

    def start(self, loop):
        self.loop = loop
        with self.open_board() as board:
            self.cursor = board.latest_cursor()
        self.thread = threading.Thread(target=self._watch, name="kanban-live", daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=2)

    def _watch(self):
        board = None
        while not self.stopping.is_set():
            try:
                if board is None:
                    board = self.open_board()
                page = board.events(since=self.cursor, limit=1000, check_cursor=False)
                if page["events"]:
                    self.cursor = page["cursor"]
                    note = {"cursor": page["cursor"],
                            "tasks": sorted({e["task"] for e in page["events"] if e["task"]}),
                            "kinds": sorted({e["kind"] for e in page["events"]})}
                    self._tell(note)
                    continue  # there may be more
                board.wait_for_work(POLL_S)
            except Exception as exc:  # noqa: BLE001 - a busy or lost board: try again, keep serving
                self.error = f"{type(exc).__name__}: {exc}"
                if board is not None:
                    try:
                        board.close()
                    except Exception:  # noqa: BLE001
                        pass
                    board = None
                self.stopping.wait(1.0)
        if board is not None:
            board.close()

    def _tell(self, note):
        for queue in list(self.subscribers):
            self.loop.call_soon_threadsafe(queue.put_nowait, note)

    async def stream(self, request, since):
        """The Server-Sent Events of one page: `change` notes until it goes away."""
        queue = asyncio.Queue()
        self.subscribers.add(queue)
        try:
            yield "retry: 1000\n\n"
            if since != self.cursor:
                yield _event({"cursor": self.cursor, "tasks": [], "kinds": []})
            quiet = 0.0
            while not self.closing:
                try:
                    note = await asyncio.wait_for(queue.get(), TICK_S)
                except asyncio.TimeoutError:
                    quiet += TICK_S
                    if quiet >= KEEPALIVE_S:
                        quiet = 0.0
                        if await request.is_disconnected():
                            return
                        yield ": keepalive\n\n"
                    continue
                quiet = 0.0
                while not queue.empty():  # a burst of notes: one change is enough
                    note = queue.get_nowait()
                yield _event(note)
        finally:
            self.subscribers.discard(queue)


def _event(note):
    return f"event: change\nid: {note['cursor']}\ndata: {dumps(note, compact=True)}\n\n"
