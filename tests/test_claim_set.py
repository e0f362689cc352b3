"""claim_many and complete_many answer and write exactly what claims and completions one
at a time would (SPEC §5 `batch`): two boards built alike, one worked in batches and one
a task at a time under the same board clock, end with the same answers, the same hook
events and the same tables, row for row.  The boards cover what the batch path must see
to: priorities, role boundaries, assignees, not_before, dependencies, review tasks,
goals inside goals, open runs, a team, WIP limits and expired leases; on SQLite and on
PostgreSQL."""
import uuid

import pytest
from conftest import T0, backends, drop_pg_schemas, new_pg_schema

from kanban import Board, hooks
from kanban.board import init, parse_id
from kanban.errors import KanbanError

TEAM = {"name": "crew", "dispatch_mode": "coordinator", "coordinator": "lead",
        "members": {"lead": "coordinator", "w1": "member", "w2": "member"},
        "operators": ["ops"], "manifest": "/teams/crew.yaml"}


@pytest.fixture(params=backends())
def boards(request, tmp_path, monkeypatch):
    """boards() -> (batched, one_by_one): two new boards on this test's backend, the board
    clock fixed at T0, a hooks folder so every post hook's event is recorded (in `fired`,
    by board) instead of run."""
    monkeypatch.setenv("KANBAN_NOW", str(T0))
    folder = tmp_path / "hooks"
    folder.mkdir()
    monkeypatch.setenv("KANBAN_HOOKS_DIR", str(folder))
    fired = {}
    monkeypatch.setattr(hooks, "run_post", lambda path, event: fired.setdefault(path, []).append(event) or [])
    schemas, opened = [], []

    def location():
        if request.param == "sqlite":
            return str(tmp_path / uuid.uuid4().hex / "board.db")
        schema, where = new_pg_schema()
        schemas.append(schema)
        return where

    def make():
        pair = []
        for _ in range(2):
            where = location()
            init(where)
            pair.append(Board(where))
        opened.extend(pair)
        return pair

    make.fired = lambda board: fired.get(board.path, [])
    yield make
    for board in opened:
        board.close()
    if schemas:
        drop_pg_schemas(*schemas)


def fill(board, *, classes=False):
    """The same tasks on every board: ids, priorities and times alike."""
    ids = {}

    def create(name, **fields):
        ids[name] = board.create(name, actor="ops", **fields)["id"]

    create("outer", kind="goal")
    create("inner", kind="goal", goal=ids["outer"])
    create("plain-0")
    create("plain-5a", priority=5)
    create("plain-5b", priority=5)
    create("plain-1", priority=1, body="with a body")
    create("in-inner-a", priority=2, goal=ids["inner"])
    create("in-inner-b", priority=2, goal=ids["inner"])
    create("in-outer", priority=2, goal=ids["outer"])
    create("review", priority=4, review=True)
    create("review-in-goal", priority=4, review=True, goal=ids["outer"])
    create("later", priority=9, not_before="2099-01-01T00:00:00Z")
    create("was-later", priority=3, not_before="2000-01-01T00:00:00Z")
    create("waits", priority=8, depends_on=[ids["plain-0"]])
    create("waited-on-by-two", priority=6)
    create("waits-too", priority=7, depends_on=[ids["waited-on-by-two"]])
    create("web-a", project="web", priority=1)
    create("web-b", project="web")
    for n in range(6):
        create(f"filler-{n}", priority=n % 3)
    if classes:
        create("for-ops", priority=5, role="ops")
        create("for-ops-web", priority=2, role="ops", project="web")
        create("for-w1", priority=1, assignee="w1")
        create("for-w2", priority=7, assignee="w2")
        create("for-w1-ops", priority=9, assignee="w1", role="ops")
    return ids


def tables(board):
    def read():
        found = {name: board.db.rows(f"SELECT * FROM {name} ORDER BY {order}") for name, order in (
            ("tasks", "id"), ("events", "id"), ("holders", "task_id, agent"), ("runs", "id"),
            ("deps", "task_id, dep_id"), ("meta", "key"))}
        found["counters"] = board.db.counters()
        return found
    return board.db.read(read)


def one_by_one_claims(board, agent, count, **where):
    out = []
    for _ in range(count):
        claimed = board.claim(agent, **where)
        if not claimed:
            break
        out.append(claimed)
    return out


def work(batched, single, agent, count, **where):
    """claim_many on one board, claims one by one on the other: the same answers."""
    claims = batched.claim_many(agent, count, **where)
    assert claims == one_by_one_claims(single, agent, count, **where)
    return claims


def finish(batched, single, claims, agent):
    pairs = [(claim["id"], claim["lease_token"]) for claim in claims]
    answers = batched.complete_many(pairs, agent=agent)
    assert answers == [single.complete(task, token, agent=agent) for task, token in pairs]
    return answers


def same_boards(batched, single, boards):
    assert tables(batched) == tables(single)
    assert boards.fired(batched) == boards.fired(single)


def test_batches_of_the_open_class_write_what_one_by_one_writes(boards):
    batched, single = boards()
    ids = [fill(board) for board in (batched, single)][0]
    first = work(batched, single, "w1", 5)
    # by priority, then age; "later" is not due yet and the two that wait on others are not ready
    assert [claim["title"] for claim in first] == ["waited-on-by-two", "plain-5a", "plain-5b", "review",
                                                   "review-in-goal"]
    assert len({claim["lease_token"] for claim in first}) == 5
    web = work(batched, single, "w2", 3, project="web")
    assert [claim["title"] for claim in web] == ["web-a", "web-b"]
    rest = work(batched, single, "w1", 50, lease="1h")
    assert not {"later", "waits", "waits-too"} & {claim["title"] for claim in rest}
    held = next(claim for claim in rest if claim["title"] == "in-inner-a")
    for board in (batched, single):
        board.run_start(held["id"], agent="w1", token=held["lease_token"])
    done = finish(batched, single, first + rest, "w1")
    assert {answer["status"] for answer in done} == {"done", "in_review"}
    assert [answer["status"] for answer in done if answer["review"]] == ["in_review", "in_review"]
    finish(batched, single, web, "w3")  # another agent with the tokens: it becomes a holder too
    again = work(batched, single, "w2", 50)  # ready now that what they wait on is done
    assert [claim["title"] for claim in again] == ["waits", "waits-too"]
    finish(batched, single, again, "w2")
    assert batched.show(ids["inner"])["status"] == "done"  # its tasks are done: the goal rolled up
    assert batched.show(ids["outer"])["status"] == "todo"  # one of its tasks is in review
    same_boards(batched, single, boards)
    assert [event["kind"] for event in boards.fired(batched)].count("claimed") == len(first + web + rest + again)


def test_role_and_assignee_classes_and_many_agents_in_one_claim_set(boards):
    batched, single = boards()
    for board in (batched, single):
        fill(board, classes=True)
    work(batched, single, "w1", 3)
    work(batched, single, "w2", 2, role="ops")
    work(batched, single, "w1", 4, role="ops", project="web")
    for agents in (["w1", "w2", "w1", "w3"], ["w3"] * 4, ["w2", "w3"] * 9):
        for role in (None, "ops"):
            claims = batched._write(lambda: batched._claim_set(agents, role, None, 60_000))  # noqa: B023
            assert claims == single._write(lambda: [single._claim(agent, None, role, None, 60_000)  # noqa: B023
                                                    for agent in agents])  # noqa: B023
    same_boards(batched, single, boards)


def test_the_open_class_alone_takes_one_pass_for_many_agents(boards):
    batched, single = boards()
    for board in (batched, single):
        fill(board)
    agents = ["w1", "w2", "w1", "w\u00e9\U0001f600", "w2"] * 5  # a name JSON escapes (to SQL and back)
    claims = batched._write(lambda: batched._claim_set(agents, None, None, 60_000))
    assert claims == single._write(lambda: [single._claim(agent, None, None, None, 60_000) for agent in agents])
    assert claims[-1] == {} and [claim["claimed_by"] for claim in claims[:3]] == ["w1", "w2", "w1"]
    assert claims[-1] is not claims[-2]  # each caller its own answer (group commit hands them to threads)
    items = [(parse_id(claim["id"]), claim["lease_token"], claim["claimed_by"]) for claim in claims if claim]
    answers = batched._write(lambda: batched._complete_set(items))
    assert answers == single._write(lambda: [single._complete(task, token, None, False, agent)
                                             for task, token, agent in items])
    same_boards(batched, single, boards)


def test_a_team_board_gates_every_agent_of_a_batch(boards):
    batched, single = boards()
    for board in (batched, single):
        fill(board)
        board.set_team(TEAM)
    claims = work(batched, single, "w1", 4)
    finish(batched, single, claims, "w1")
    for board in (batched, single):
        with pytest.raises(KanbanError) as refused:
            board._write(lambda b=board: b._claim_set(["w2", "mallory", "w1"], None, None, 60_000))
        assert refused.value.code == "forbidden" and refused.value.extra["agent"] == "mallory"
    claims = work(batched, single, "w2", 3)
    with pytest.raises(KanbanError) as refused:
        batched.complete_many([(claim["id"], claim["lease_token"]) for claim in claims], agent="mallory")
    with pytest.raises(KanbanError) as alone:
        single.complete(claims[0]["id"], claims[0]["lease_token"], agent="mallory")
    assert refused.value.to_dict() == alone.value.to_dict()
    finish(batched, single, claims, "w2")
    same_boards(batched, single, boards)


def test_wip_limits_and_expired_leases(boards, monkeypatch):
    batched, single = boards()
    for board in (batched, single):
        fill(board)
        board.limit_set("in_progress", 4)
        board.limit_set("in_progress", 1, project="web")
    early = work(batched, single, "w1", 3, lease="1m")
    work(batched, single, "w2", 5)  # the limit stops it at one
    monkeypatch.setenv("KANBAN_NOW", str(T0 + 120))  # the first three leases run out
    for board in (batched, single):
        board.limit_rm("in_progress")
    late = work(batched, single, "w3", 30)  # reaps them first, then claims past them
    assert {claim["id"] for claim in early} <= {claim["id"] for claim in late}
    with pytest.raises(KanbanError) as lost:
        batched.complete_many([(late[0]["id"], late[0]["lease_token"]), (early[0]["id"], early[0]["lease_token"])],
                              agent="w1")
    assert lost.value.code == "lease_lost"
    finish(batched, single, late, "w3")
    same_boards(batched, single, boards)


@pytest.mark.parametrize("spoil", ["token", "missing", "twice", "not-claimed"])
def test_a_failing_item_fails_the_batch_as_one_by_one_and_changes_nothing(boards, spoil):
    batched, single = boards()
    for board in (batched, single):
        fill(board)
    claims = work(batched, single, "w1", 6)
    items = [(parse_id(claim["id"]), claim["lease_token"], "w1") for claim in claims]
    if spoil == "token":
        items[3] = (items[3][0], items[3][1] + 1000, "w1")
    elif spoil == "missing":
        items[4] = (999_999, 1, "w1")
    elif spoil == "twice":
        items[5] = items[1]
    else:
        items[2] = (1, 1, "w1")  # the outer goal: never claimed
    before = tables(batched)
    with pytest.raises(KanbanError) as batch:
        batched._write(lambda: batched._complete_set(items))
    with pytest.raises(KanbanError) as alone:
        single._write(lambda: [single._complete(task, token, None, False, agent) for task, token, agent in items])
    assert batch.value.to_dict() == alone.value.to_dict()
    assert tables(batched) == before
    with pytest.raises(KanbanError) as public:
        batched.complete_many([item[:2] for item in items], agent="w1")
    assert public.value.to_dict() == alone.value.to_dict()
    assert tables(batched) == before
    finish(batched, single, claims, "w1")
    same_boards(batched, single, boards)


def test_a_count_past_one_pass_claims_every_ready_task(boards, monkeypatch):
    import kanban.board

    monkeypatch.setattr(kanban.board, "_SET_CHUNK", 4)
    batched, single = boards()
    for board in (batched, single):
        fill(board)
    claims = work(batched, single, "w1", 10)
    assert len(claims) == 10
    claims += work(batched, single, "w1", 1000)
    finish(batched, single, claims, "w1")
    same_boards(batched, single, boards)
