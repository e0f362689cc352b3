"""Group commit: threads of one process writing to one board share commits.

Each thread holds a Board of its own (its own connection), as the Python API is
used from threads.  Requests that arrive while a commit is in flight go together in
the next one; a request that fails inside a shared commit is rolled back alone.
"""
import threading
import time

import pytest

from kanban import Board, KanbanError
from kanban.bench import check_event_log, prepare
from kanban.store.sqlite import group_of


def test_threads_share_commits_and_never_double_claim(tmp_path):
    path = str(tmp_path / "board.db")
    agents, each = 12, 8
    prepare(path, agents * each, "p")
    boards = [Board(path) for _ in range(agents)]
    tokens, errors = [], []
    start = threading.Barrier(agents)

    def work(board, name):
        start.wait()
        try:
            while True:
                task = board.claim(name, project="p")
                if not task:
                    return
                tokens.append(task["lease_token"])
                done = board.complete(task["id"], task["lease_token"], agent=name)
                assert done["status"] == "done"
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(b, f"agent-{n}")) for n, b in enumerate(boards)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for board in boards:
        board.close()
    assert errors == []
    assert len(tokens) == agents * each and len(set(tokens)) == len(tokens)
    log = check_event_log(path, "p")
    assert log == {"double_claims": 0, "claimed_events": agents * each, "tasks_left": 0}
    group = group_of(path)
    # every claim, complete and empty claim went through the group; commits were shared
    assert group.writes == 2 * agents * each + agents
    assert group.commits < group.writes


def test_a_failed_request_is_rolled_back_alone(tmp_path):
    path = str(tmp_path / "board.db")
    prepare(path, 1, None)
    stores = [Board(path).db for _ in range(4)]
    answers = {}

    def insert(store, key, fail=False, hold=False):
        def fn():
            if hold:  # keep this commit open until three more writers queue behind it
                deadline = time.monotonic() + 10
                while len(group_of(path).queue) < 3 and time.monotonic() < deadline:
                    time.sleep(0.005)
            store.execute("INSERT INTO meta(key, value) VALUES (?, 1)", (key,))
            if fail:
                raise KanbanError("conflict", f"{key} refused")
            return key

        def run():
            try:
                answers[key] = store.write(fn)
            except KanbanError as exc:
                answers[key] = exc.code
        return threading.Thread(target=run)

    first = insert(stores[0], "k1", hold=True)
    first.start()
    deadline = time.monotonic() + 10
    while (group_of(path) is None or not group_of(path).leading) and time.monotonic() < deadline:
        time.sleep(0.001)
    others = [insert(stores[1], "k2"), insert(stores[2], "k3", fail=True), insert(stores[3], "k4")]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(30)
    assert answers == {"k1": "k1", "k2": "k2", "k3": "conflict", "k4": "k4"}
    group = group_of(path)
    assert (group.commits, group.writes) == (2, 4)  # [k1], then [k2, k3, k4] together
    keys = {row[0] for row in stores[0].execute("SELECT key FROM meta WHERE key LIKE 'k_'")}
    assert keys == {"k1", "k2", "k4"}
    for store in stores:
        store.close()


@pytest.mark.parametrize("threads", [False, True])
def test_answers_built_from_the_write_match_a_fresh_read(tmp_path, threads):
    """claim and complete answer from what their UPDATE returned: the same task a
    read after the commit shows, alone or through the group."""
    path = str(tmp_path / "board.db")
    prepare(path, 2, None)
    board = Board(path)
    with Board(path) as other:
        other.dep_add("TASK-2", ["TASK-1"])
    out = {}

    def fresh(task_id):
        return board._read(lambda: board._task(int(task_id.split("-")[1])))

    def run():
        task = board.claim("a")
        out["claim"], out["claim_read"] = task, fresh(task["id"])
        done = board.complete(task["id"], task["lease_token"], agent="a")
        out["done"], out["done_read"] = done, fresh(done["id"])
        task = board.claim("a")  # TASK-2, whose dependency is now done
        out["claim2"], out["claim2_read"] = task, fresh(task["id"])

    if threads:
        thread = threading.Thread(target=run)
        thread.start()
        thread.join(30)
    else:
        run()
    board.close()
    assert out["claim"].pop("lease_token") > 0 and out["claim2"].pop("lease_token") > 0
    assert out["claim"] == out["claim_read"] and out["claim"]["status"] == "in_progress"
    assert out["done"] == out["done_read"] and out["done"]["status"] == "done"
    assert out["claim2"] == out["claim2_read"] and out["claim2"]["depends_on"] == ["TASK-1"]
