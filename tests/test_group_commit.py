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


def run_agents(boards, work):
    """work(board, name) in a thread per board ("agent-N"), all joined; then every
    board closed."""
    threads = [threading.Thread(target=work, args=(b, f"agent-{n}")) for n, b in enumerate(boards)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for board in boards:
        board.close()


def lead(thread, path):
    """Start `thread`, whose write holds its batch open, and wait (up to 10 s) until it
    leads the board's group: the writes started after it queue for the next batch."""
    thread.start()
    deadline = time.monotonic() + 10
    while (group_of(path) is None or not group_of(path).leading) and time.monotonic() < deadline:
        time.sleep(0.001)


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

    run_agents(boards, work)
    assert errors == []
    assert len(tokens) == agents * each and len(set(tokens)) == len(tokens)
    log = check_event_log(path, "p")
    assert log == {"double_claims": 0, "claimed_events": agents * each, "tasks_left": 0}
    group = group_of(path)
    # every claim, complete and empty claim went through the group; commits were shared
    assert group.writes == 2 * agents * each + agents
    assert group.commits < group.writes


def test_threads_in_step_meet_in_one_batch_each_round(tmp_path):
    """Threads that each write again as soon as they are answered meet in one batch a
    round: the next batch starts when the answered threads have been woken, not when
    the first of them (most often the batch's leader) asks again, which made a batch of
    one and then one of all the others, every other round.  8 threads, 25 claims and
    completions each and a last empty claim: 51 writes each, so at least 51 commits
    (about 90 when each leader went on alone)."""
    path = str(tmp_path / "board.db")
    agents, each = 8, 25
    prepare(path, agents * each, None)
    boards = [Board(path) for _ in range(agents)]
    start = threading.Barrier(agents)

    def work(board, name):
        start.wait()
        while task := board.claim(name):
            board.complete(task["id"], task["lease_token"], agent=name)

    run_agents(boards, work)
    group = group_of(path)
    assert group.writes == agents * (2 * each + 1)
    assert group.commits < 70  # a thread that misses a round goes in the next one: 51 + misses
    assert check_event_log(path, None)["double_claims"] == 0


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
    lead(first, path)
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


def _queue_behind_a_held_lock(path, count, request):
    """Start `count` threads that each run request(n) while another writer holds the
    board's write lock, wait until the first leads and the rest have queued behind
    it, then let the lock go: the rest meet in one batch.  The threads' answers."""
    from kanban.store.sqlite import WriterLock

    holder = WriterLock(path)
    assert holder.acquire(time.monotonic() + 10)
    answers = {}

    def run(n):
        try:
            answers[n] = request(n)
        except KanbanError as exc:
            answers[n] = exc.code

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        group = group_of(path)
        if group is not None and group.leading and len(group.queue) == count - 1:
            break
        time.sleep(0.002)
    holder.release()
    holder.close()
    for thread in threads:
        thread.join(30)
    return answers


def test_concurrent_claims_are_made_together_and_match_claims_alone(tmp_path):
    """Claims that meet in one batch are made by one set run: each agent gets a task
    of its own, in the board's order, with a fencing token of its own, and the board
    holds what the same claims made one by one would have left."""
    path = str(tmp_path / "board.db")
    prepare(path, 12, None)
    boards = [Board(path) for _ in range(8)]
    answers = _queue_behind_a_held_lock(path, 8, lambda n: boards[n].claim(f"agent-{n}"))
    for board in boards:
        board.close()
    group = group_of(path)
    assert group.together == 7  # the first claimed alone, while the lock was held; then 7 at once
    assert (group.commits, group.writes) == (2, 8)
    claimed = {answers[n]["id"]: answers[n] for n in range(8)}
    assert sorted(claimed) == sorted(f"TASK-{n}" for n in range(1, 9))  # the 8 best, no task twice
    assert len({a["lease_token"] for a in claimed.values()}) == 8
    import json
    import sqlite3

    with sqlite3.connect(path) as conn:
        held = {task_id: (token, json.loads(data)["token"]) for task_id, token, data in conn.execute(
            "SELECT t.id, t.lease_token, e.data FROM tasks t JOIN events e ON e.task_id = t.id"
            " AND e.kind = 'claimed'")}
    with Board(path) as board:
        for n in range(8):
            answer = dict(answers[n])
            token = answer.pop("lease_token")
            assert answer["claimed_by"] == f"agent-{n}"
            task_id = int(answer["id"].split("-")[1])
            assert held[task_id] == (token, token)  # the row and its claimed event hold the answer's token
            assert answer == board._read(lambda task_id=task_id: board._task(task_id))
    log = check_event_log(path, None)
    assert log["double_claims"] == 0 and log["claimed_events"] == 8


def test_concurrent_completions_are_made_together_and_answer_as_a_read_does(tmp_path):
    """Completions that meet in one batch are made by one set run, and each caller's
    answer (made in its own thread, from what the run wrote) is the task as a read
    after the commit shows it, dependencies included."""
    path = str(tmp_path / "board.db")
    prepare(path, 8, None)
    with Board(path) as board:
        board.dep_add("TASK-3", ["TASK-8", "TASK-7"])
        for ref in ("TASK-8", "TASK-7"):  # done first: TASK-3 is ready, and its answers list them
            held = board.claim("agent-0", ref)
            board.complete(ref, held["lease_token"], agent="agent-0")
        claims = [board.claim(f"agent-{n}") for n in range(6)]
    boards = [Board(path) for _ in range(6)]
    answers = _queue_behind_a_held_lock(
        path, 6, lambda n: boards[n].complete(claims[n]["id"], claims[n]["lease_token"], agent=f"agent-{n}"))
    for board in boards:
        board.close()
    group = group_of(path)
    assert (group.commits, group.writes, group.together) == (2, 6, 5)  # one alone, then five at once
    with Board(path) as board:
        for n in range(6):
            task_id = int(answers[n]["id"].split("-")[1])
            assert answers[n] == board._read(lambda task_id=task_id: board._task(task_id))
            assert answers[n]["status"] == "done"
    assert answers[2]["id"] == "TASK-3" and answers[2]["depends_on"] == ["TASK-7", "TASK-8"]


def test_a_bad_completion_among_concurrent_ones_fails_alone(tmp_path):
    """Completions that meet in one batch are made together; when one of them cannot be
    (a stale token), the set run is rolled back and each runs alone: the bad one gets
    lease_lost and changes nothing, the others complete."""
    path = str(tmp_path / "board.db")
    prepare(path, 6, None)
    with Board(path) as board:
        claims = [board.claim(f"agent-{n}") for n in range(6)]
    boards = [Board(path) for _ in range(6)]

    def complete(n):
        token = claims[n]["lease_token"] + (1000 if n == 3 else 0)
        return boards[n].complete(claims[n]["id"], token, agent=f"agent-{n}")["status"]

    answers = _queue_behind_a_held_lock(path, 6, complete)
    for board in boards:
        board.close()
    assert answers == {0: "done", 1: "done", 2: "done", 3: "lease_lost", 4: "done", 5: "done"}
    with Board(path) as board:
        assert board.show(claims[3]["id"])["status"] == "in_progress"
    group = group_of(path)
    assert group.writes == 6 and group.together == 0  # the set run failed: each ran alone


def test_batches_run_on_the_group_connection_which_closes_with_the_last_board(tmp_path):
    """Whoever leads, a batch runs on the one connection the group keeps (its page cache
    stays the board's latest): the threads' own connections change nothing.  Closing the
    last board that wrote through the group closes that connection; a later batch opens
    it again."""
    path = str(tmp_path / "board.db")
    prepare(path, 24, None)
    boards = [Board(path) for _ in range(6)]

    def work(n):
        task = boards[n].claim(f"agent-{n}")
        boards[n].complete(task["id"], task["lease_token"], agent=f"agent-{n}")

    for _ in range(2):
        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    group = group_of(path)
    assert group.writes == 24 and group.members == 6
    assert [board.db.conn.total_changes() for board in boards] == [0] * 6
    writer = group.writer
    assert writer.conn.total_changes() > 0
    for board in boards[:5]:
        board.close()
    assert group.writer is writer  # one board is still open
    boards[5].close()
    assert group.writer is None and group.members == 0
    with pytest.raises(Exception, match="closed"):
        writer.conn.execute("SELECT 1")

    again = [Board(path) for _ in range(2)]
    threads = [threading.Thread(target=lambda b=b: b.claim("late")) for b in again]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert group.writer is not None and group.writer is not writer and group.members == 2
    for board in again:
        board.close()
    assert group.writer is None
    assert check_event_log(path, None)["double_claims"] == 0


def test_a_forked_child_starts_without_the_parents_groups(tmp_path):
    """A child made by fork never runs a batch on the parent's connection, nor waits
    for a batch the parent's threads were leading: it starts a group of its own."""
    import os

    path = str(tmp_path / "board.db")
    prepare(path, 4, None)
    board = Board(path)
    thread = threading.Thread(target=lambda: board.claim("parent"))
    thread.start()
    thread.join(30)
    assert group_of(path) is not None and group_of(path).writer is not None
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if all holds
        status = 1
        try:
            if group_of(path) is None:
                child = Board(path)
                done = []
                t = threading.Thread(target=lambda: done.append(child.claim("child")))
                t.start()
                t.join(30)
                mine = group_of(path)
                status = 0 if done and done[0]["claimed_by"] == "child" and mine.writes == 1 else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert group_of(path).writes == 1  # the parent's group is its own still
    board.close()


def test_a_signal_during_the_wait_is_raised_after_the_answer_and_the_wake_ups_go_on(tmp_path):
    """The main thread waiting in a batch is interrupted by a signal whose handler
    raises: the exception reaches it only once its write is committed, and the threads
    answered after it in the same batch are woken all the same (each woken thread wakes
    the next)."""
    import signal

    path = str(tmp_path / "board.db")
    prepare(path, 1, None)
    stores = [Board(path).db for _ in range(4)]
    fired, answers = [], {}
    main = threading.get_ident()

    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        fired.append(signum)
        raise Interrupted()

    def queued(n):  # wait until n requests wait behind the batch being led
        deadline = time.monotonic() + 10
        while (group_of(path) is None or len(group_of(path).queue) < n) and time.monotonic() < deadline:
            time.sleep(0.002)

    def insert(store, key, after=0, hold=False):
        def fn():
            if hold:  # keep the first batch open until three requests queue and the main thread took a signal
                queued(3)
                deadline = time.monotonic() + 10
                while not fired and time.monotonic() < deadline:
                    # again until it is taken: one that comes before the main thread blocks waits for it to wake
                    signal.pthread_kill(main, signal.SIGUSR1)
                    time.sleep(0.02)
            store.execute("INSERT INTO meta(key, value) VALUES (?, 1)", (key,))
            return key

        def run():
            if after:
                queued(after)
            answers[key] = store.write(fn)
        return threading.Thread(target=run)

    leader = insert(stores[0], "k0", hold=True)
    lead(leader, path)
    later = [insert(stores[2], "k2", after=1), insert(stores[3], "k3", after=2)]
    for thread in later:
        thread.start()
    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        with pytest.raises(Interrupted):
            stores[1].write(lambda: stores[1].execute("INSERT INTO meta(key, value) VALUES ('k1', 1)"))
        with Board(path) as board:  # committed before the exception was raised
            assert board.db.scalar("SELECT count(*) FROM meta WHERE key = 'k1'") == 1
    finally:
        signal.signal(signal.SIGUSR1, previous)
    for thread in [leader, *later]:
        thread.join(30)
    assert fired and answers == {"k0": "k0", "k2": "k2", "k3": "k3"}
    assert (group_of(path).commits, group_of(path).writes) == (2, 4)  # [k0], then [k1, k2, k3]
    for store in stores:
        store.close()
