"""The team board's role gate fails closed (SPEC §6): every writing operation of the
board, tried by the coordinator, the task's assignee, another member, an operator, an
outsider and a caller who named no agent, on SQLite and on Postgres.

The gate is the board's, so the matrix runs on the Python API (what the CLI and MCP
call); a few CLI checks at the end show the same answer reaches the command line.
A refused write changes nothing: the event log is the same before and after.
"""

import pytest
from conftest import backends, drop_pg_schemas, new_pg_schema, run

from kanban import Board
from kanban.errors import KanbanError

TEAM = {"name": "crew", "dispatch_mode": "coordinator", "coordinator": "lead",
        "members": {"lead": "coordinator", "dev": "member", "qa": "member"},
        "operators": ["ops"], "dispatcher": "dispatcher@crew", "manifest": "/teams/crew.yaml"}
ROLES = {"coordinator": "lead", "assignee": "dev", "member": "qa", "operator": "ops", "outsider": "mallory",
         "nobody": None, "dispatcher": "dispatcher@crew"}
EVERYONE_ON_THE_TEAM = {"coordinator", "assignee", "member", "operator", "dispatcher"}
RUNS_THE_TEAM = {"operator", "dispatcher"}


def todo(b, **fields):
    return b.create("a task", actor="ops", assignee="dev", **fields)["id"]


def claimed(b):
    task = todo(b)
    return task, b.claim("dev", task)["lease_token"]


def in_review(b):
    task, token = claimed(b)
    b.complete(task, token, review=True, agent="dev")
    return task


def blocked(b):
    task = todo(b)
    b.block(task, "stuck", agent="dev")
    return task


def done(b):
    task, token = claimed(b)
    b.complete(task, token, agent="dev")
    return task


def run_open(b):
    task, token = claimed(b)
    b.run_start(task, agent="dev", token=token)
    return task, token


# name -> (setup(board) -> state, attempt(board, actor, state), who may, does it need an agent)
CASES = {
    "create": (lambda b: None, lambda b, a, s: b.create("new", actor=a), {"coordinator"}, False),
    "create --assignee": (lambda b: None, lambda b, a, s: b.create("new", actor=a, assignee="dev"),
                          {"coordinator"}, False),
    "batch create": (lambda b: None, lambda b, a, s: b.create_many([{"title": "x"}], actor=a), {"coordinator"},
                     False),
    "claim TASK": (todo, lambda b, a, s: b.claim(a, s), {"assignee"}, True),
    "claim (next)": (lambda b: None, lambda b, a, s: b.claim(a), EVERYONE_ON_THE_TEAM, True),
    "claim-many": (lambda b: None, lambda b, a, s: b.claim_many(a, 2), EVERYONE_ON_THE_TEAM, True),
    "heartbeat": (claimed, lambda b, a, s: b.renew(s[0], s[1], agent=a), {"assignee"}, True),
    "release": (claimed, lambda b, a, s: b.release(s[0], s[1], agent=a), {"assignee"}, True),
    "event log": (todo, lambda b, a, s: b.log(s, "a note", agent=a), EVERYONE_ON_THE_TEAM, True),
    "complete": (claimed, lambda b, a, s: b.complete(s[0], s[1], agent=a), {"assignee"}, True),
    "claim --for-review": (in_review, lambda b, a, s: b.claim_review(a, s), {"coordinator", "member"}, True),
    "approve": (in_review, lambda b, a, s: b.approve(s, agent=a), {"coordinator", "member"}, True),
    "reject": (in_review, lambda b, a, s: b.reject(s, "no", agent=a), {"coordinator", "member"}, True),
    "block": (todo, lambda b, a, s: b.block(s, "why", agent=a), {"assignee"}, False),
    "block (claimed)": (claimed, lambda b, a, s: b.block(s[0], "why", token=s[1], agent=a), {"assignee"}, True),
    "unblock": (blocked, lambda b, a, s: b.unblock(s, actor=a), {"assignee", "coordinator"}, False),
    "cancel": (todo, lambda b, a, s: b.cancel(s, actor=a), {"coordinator"}, False),
    "reopen": (done, lambda b, a, s: b.reopen(s, actor=a), EVERYONE_ON_THE_TEAM, False),
    "dep add": (lambda b: (todo(b), todo(b)), lambda b, a, s: b.dep_add(s[0], [s[1]], actor=a), {"coordinator"},
                False),
    "dep rm": (lambda b: _linked(b), lambda b, a, s: b.dep_rm(s[0], [s[1]], actor=a), {"coordinator"}, False),
    "comment": (todo, lambda b, a, s: b.comment(s, "hello", actor=a), EVERYONE_ON_THE_TEAM,
                False),
    "set --priority": (todo, lambda b, a, s: b.set(s, priority=5, actor=a), EVERYONE_ON_THE_TEAM,
                       False),
    "set --assignee": (todo, lambda b, a, s: b.set(s, assignee="qa", actor=a), {"coordinator"}, False),
    "claim --reap": (lambda b: None, lambda b, a, s: b.reap(actor=a), EVERYONE_ON_THE_TEAM, False),
    "move to blocked": (todo, lambda b, a, s: b.move(s, "blocked", reason="why", actor=a), {"assignee"}, False),
    "move to cancelled": (todo, lambda b, a, s: b.move(s, "cancelled", actor=a), {"coordinator"}, False),
    "move blocked to todo": (blocked, lambda b, a, s: b.move(s, "todo", actor=a), {"assignee", "coordinator"},
                             False),
    "run heartbeat": (run_open, lambda b, a, s: b.run_heartbeat(s[0], agent=a, token=s[1]), {"assignee"}, True),
    "prune": (lambda b: None, lambda b, a, s: b.prune("30d", actor=a), EVERYONE_ON_THE_TEAM, False),
    "limit set": (lambda b: None, lambda b, a, s: b.limit_set("in_review", 5, project="gate", actor=a),
                  EVERYONE_ON_THE_TEAM, False),
    "limit rm": (lambda b: b.limit_set("in_review", 4, project="rm-gate", actor="ops"),
                 lambda b, a, s: b.limit_rm("in_review", project="rm-gate", actor=a), EVERYONE_ON_THE_TEAM, False),
}


def _linked(b):
    first, second = todo(b), todo(b)
    b.dep_add(first, [second], actor="ops")
    return first, second


@pytest.fixture(scope="module", params=backends())
def team_board(request, tmp_path_factory):
    from kanban.board import init

    if request.param == "sqlite":
        location = str(tmp_path_factory.mktemp("gate") / ".kanban" / "board.db")
    else:
        schema, location = new_pg_schema()
    init(location)
    with Board(location) as b:
        b.set_team(TEAM)
        yield b
    if request.param == "postgres":
        drop_pg_schemas(schema)


def _last_event(b):
    found = b.events(limit=1_000_000)["events"]
    return found[-1]["id"] if found else 0


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("case", list(CASES))
def test_every_write_by_every_role(team_board, case, role):
    setup, attempt, allowed, needs_agent = CASES[case]
    actor = ROLES[role]
    if case != "claim TASK":  # the people who run the team may do what any member may (not take dev's task)
        allowed = allowed | RUNS_THE_TEAM
    b = team_board
    state = setup(b)
    before = _last_event(b)
    if role == "nobody" and needs_agent:
        with pytest.raises(KanbanError) as refused:
            attempt(b, actor, state)
        assert refused.value.code == "usage"
        return
    if role in allowed:
        attempt(b, actor, state)
        return
    with pytest.raises(KanbanError) as refused:
        attempt(b, actor, state)
    assert refused.value.code == "forbidden", refused.value.to_dict()
    assert _last_event(b) == before, f"{case} by {role} was refused but wrote to the board"
    if role in ("outsider", "nobody"):
        message = refused.value.message
        assert "/teams/crew.yaml" in message and "operators:" in message, message
        assert refused.value.extra["key"] == "operators"


def test_a_board_with_no_team_is_open(board):
    task = board.create("anyone", actor="mallory")["id"]
    assert board.comment(task, "hi")["task"] == task  # no agent named: the login name, as before
    assert board.cancel(task, actor="mallory")["status"] == "cancelled"


def test_the_cli_meets_the_same_gate(kb, tmp_path):
    manifest = tmp_path / "crew.yaml"
    manifest.write_text("name: crew\ncoordinator: lead\noperators: [ops]\nmembers:\n"
                        "- {personality: lead, role: coordinator}\n- {personality: dev}\n", encoding="utf-8")
    assert kb("team", "tick", manifest).rc == 0
    refused = kb("create", "sneaky", agent="mallory")
    assert refused.rc == 2 and refused.out == "" and refused.error["code"] == "forbidden"
    assert str(manifest) in refused.error["error"] and "operators:" in refused.error["error"]
    nobody = kb("create", "who am I")  # no KANBAN_AGENT: the login name is an outsider
    assert nobody.rc == 2 and nobody.error["code"] == "forbidden"
    task = kb("create", "by the operator", agent="ops").json["id"]
    assert kb("show", task).rc == 0 and kb("list", agent="mallory").rc == 0
    assert kb("comment", task, "--message", "x", agent="mallory").error["code"] == "forbidden"
    # a WIP limit too: its --agent is the limit's scope, the caller is KANBAN_AGENT
    assert kb("limit", "set", "in_progress", "3", "--agent", "ops", agent="mallory").error["code"] == "forbidden"
    assert kb("limit", "set", "in_progress", "3", agent="ops").json["max"] == 3
    assert kb("limit", "rm", "in_progress", agent="mallory").error["code"] == "forbidden"
    assert kb("limit", "list").json["limits"][0]["max"] == 3
    assert kb("prune", "--before", "1d", agent="mallory").error["code"] == "forbidden"
    assert kb("prune", "--before", "1d", agent="ops").json["pruned"] == 0
    assert kb("cancel", task, agent="ops").json["status"] == "cancelled"
    assert run("list", env={"KANBAN_DB": kb.path}).rc == 0


def test_access_tokens_on_a_team_board(team_board):
    """Bearer tokens for kanban mcp --http: only operators mint and revoke them; only a hash is kept;
    a token answers for its agent only, until it is revoked."""
    b = team_board
    for who in ("lead", "dev", "mallory", None):
        with pytest.raises(KanbanError) as refused:
            b.token_add("dev", actor=who)
        assert refused.value.code == "forbidden"
    made = b.token_add("dev", actor="ops")
    assert made["agent"] == "dev" and made["token"].startswith("kbt_") and made["active"]
    assert b.token_check(made["token"]) == "dev"
    for wrong in ("", "kbt_", made["token"] + "x", made["token"][:-1], "kbt_999999_x", "Bearer " + made["token"]):
        assert b.token_check(wrong) is None
    listed = b.token_list()["tokens"]
    assert made["id"] in [t["id"] for t in listed] and all("token" not in t and "hash" not in t for t in listed)
    other = b.token_add("qa", actor="ops")
    assert other["id"] > made["id"] and b.token_check(other["token"]) == "qa"
    assert b.token_revoke(made["id"], actor="ops")["active"] is False
    assert b.token_check(made["token"]) is None and b.token_check(other["token"]) == "qa"
    with pytest.raises(KanbanError) as missing:
        b.token_revoke(999_999, actor="ops")
    assert missing.value.code == "not_found"
