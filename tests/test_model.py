"""The board against a reference model: a hypothesis state machine (issue 5).

Random sequences of create (tasks and goals, goals inside goals), claim (best or by
id), claim --for-review, renew, release, complete (--review), approve, reject, block,
unblock, cancel, reopen (of tasks and of goals), dep add/rm (on goals too), lease reap
and KANBAN_NOW clock jumps (forward and back) run against
the real Board and against the small model below, written from SPEC section 4.
Every answer is checked (the task it returns, or the error code), and after every
step the whole board is compared with the model: status, holder, lease, attempts,
deps, goals and `ready` (a goal in todo or done is done exactly when it has tasks
and all are done or cancelled, nested goals included); the review gate refuses every
agent that held the task by any path (claimed it, or completed, blocked, renewed or
released it with the current token); a claimed task has a holder and a lease (live, or expired and
reclaimable); fencing tokens go up at every claim (the model takes each one from the board: a
SQLite board draws them from its event ids, so they skip numbers); and
tests/invariants.py replays the event log to the same state.
"""
import copy
import os
import shutil
import tempfile

import invariants
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, multiple, precondition, rule

from kanban import Board, KanbanError
from kanban.clock import iso

START = 1_900_000_000  # epoch seconds; whole seconds keep KANBAN_NOW exact
AGENTS = st.sampled_from(["ann", "bob", "cid"])
PICK = st.integers(min_value=0, max_value=63)  # a task: mapped onto the tasks that exist, or one past
MAYBE_PICK = st.one_of(st.none(), st.none(), PICK)  # mostly: the best ready task
# which token a holder write carries: the current lease of a task that has one, one a claim gave
# earlier (maybe stale by now), none, or one never issued
HOW = st.sampled_from(["current", "current", "current", "held", "none", "never"])
LEASES = st.sampled_from([30, 60, 300])
MAX_TASKS = 8


class Refusal(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


class Task:
    def __init__(self, number, now, priority, review, max_attempts, not_before, deps, kind="task", goal=None):
        self.id = number
        self.kind = kind
        self.goal = goal
        self.status = "todo"
        self.priority = priority
        self.created_at = now
        self.review = review
        self.max_attempts = max_attempts
        self.not_before = not_before
        self.deps = set(deps)
        self.attempts = 0
        self.holder = self.token = self.until = self.lease_ms = None
        self.holders = set()  # agents that ever held it for work, by any path (the review gate)
        self.tokens = set()   # every token issued on it (worker or review)

    def end_lease(self):
        self.holder = self.token = self.until = self.lease_ms = None


class Model:
    """The board as SPEC section 4 describes it; times in ms."""

    def __init__(self, now):
        self.now = now
        self.tasks = {}
        self.last_token = 0

    def ref(self, number):
        return f"TASK-{number}"

    def get(self, number):
        if number not in self.tasks:
            raise Refusal("not_found")
        return self.tasks[number]

    def ready(self, t):
        return (t.status == "todo" and t.kind == "task" and all(self.tasks[d].status == "done" for d in t.deps)
                and (t.not_before is None or t.not_before <= self.now))

    def order(self, t):
        return (-t.priority, t.created_at, t.id)

    def reap(self):
        expired = sorted((t for t in self.tasks.values() if t.until is not None and t.until <= self.now),
                         key=lambda t: (t.until, t.id))
        for t in expired:
            if t.status == "in_progress":
                t.attempts += 1
                t.status = "failed" if t.max_attempts is not None and t.attempts >= t.max_attempts else "todo"
            t.end_lease()
        return [t.id for t in expired]

    def issue(self, t, agent, lease_ms):
        self.last_token += 1
        t.holder, t.token, t.until, t.lease_ms = agent, self.last_token, self.now + lease_ms, lease_ms
        t.tokens.add(self.last_token)
        return self.last_token

    def adopt(self, number, token):
        """The board's token for the claim of task `number` the model just made, in place
        of the one issue() counted (the model does not know the board's next token, only
        that it is larger than every one before)."""
        t = self.tasks[number]
        t.tokens.discard(t.token)
        t.token = self.last_token = token
        t.tokens.add(token)

    def check_lease(self, t, token, need=("in_progress",)):
        if t.status not in need:
            raise Refusal("lease_lost" if token is not None and token in t.tokens else "conflict")
        if token is None or t.token != token or t.holder is None:
            raise Refusal("lease_lost")
        if t.until is None or t.until <= self.now:
            raise Refusal("lease_lost")

    def reaches(self, start, target):
        """Does `start` wait on `target`: through deps, or (a goal) through its tasks?"""
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == target:
                return True
            if node not in seen:
                seen.add(node)
                todo += list(self.tasks[node].deps)
                todo += [t.id for t in self.tasks.values() if t.goal == node]
        return False

    def settle(self):
        """SPEC 4: a goal (todo or done) is done when it has tasks, all done or cancelled;
        goals inside goals count as tasks of theirs.  Applied until nothing changes."""
        changed = True
        while changed:
            changed = False
            for g in self.tasks.values():
                if g.kind != "goal" or g.status not in ("todo", "done"):
                    continue
                members = [t for t in self.tasks.values() if t.goal == g.id]
                want = "done" if members and all(t.status in ("done", "cancelled") for t in members) else "todo"
                if g.status != want:
                    g.status, changed = want, True

    def held(self, t, agent):
        """An agent that passed the lease check on a task in progress held it."""
        if t.status == "in_progress":
            t.holders.add(agent)

    # -- operations: each returns what the board must answer, or raises Refusal --------

    def create(self, priority, review, max_attempts, not_before, deps, kind="task", goal=None):
        if goal is not None:
            self.get(goal)
        for dep in deps:
            self.get(dep)
        if goal is not None:
            if self.tasks[goal].kind != "goal":
                raise Refusal("invalid")
            if any(self.reaches(dep, goal) for dep in deps):
                raise Refusal("cycle")
        number = len(self.tasks) + 1
        self.tasks[number] = Task(number, self.now, priority, review, max_attempts, not_before, deps, kind, goal)
        self.settle()
        return number

    def claim(self, agent, number, lease_ms):
        self.reap()
        self.settle()
        if number is None:
            ready = sorted((t for t in self.tasks.values() if self.ready(t)), key=self.order)
            if not ready:
                return None
            t = ready[0]
        else:
            t = self.get(number)
            if t.status != "todo" or not self.ready(t):
                raise Refusal("conflict")
        t.status = "in_progress"
        t.holders.add(agent)
        return t.id, self.issue(t, agent, lease_ms)

    def claim_review(self, agent, number, lease_ms):
        self.reap()
        self.settle()
        if number is None:
            waiting = sorted((t for t in self.tasks.values() if t.status == "in_review" and t.holder is None
                              and agent not in t.holders), key=self.order)
            if not waiting:
                return None
            t = waiting[0]
        else:
            t = self.get(number)
            if t.status != "in_review" or t.holder is not None:
                raise Refusal("conflict")
            if agent in t.holders:
                raise Refusal("forbidden")
        return t.id, self.issue(t, agent, lease_ms)

    def renew(self, number, token, lease_ms, agent):
        t = self.get(number)
        self.check_lease(t, token, ("in_progress", "in_review"))
        self.held(t, agent)
        t.until = max(t.until, self.now + (lease_ms or t.lease_ms))

    def release(self, number, token, agent):
        t = self.get(number)
        self.check_lease(t, token, ("in_progress", "in_review"))
        self.held(t, agent)
        if t.status == "in_progress":
            t.status = "todo"
        t.end_lease()

    def complete(self, number, token, review, agent):
        t = self.get(number)
        self.check_lease(t, token)
        self.held(t, agent)
        if review or t.review:
            t.status, t.review = "in_review", True
        else:
            t.status = "done"
        t.end_lease()
        self.settle()

    def judge(self, agent, number, token, verdict):
        t = self.get(number)
        if t.status != "in_review":
            raise Refusal("conflict")
        if agent in t.holders:
            raise Refusal("forbidden")
        live = t.holder is not None and t.until is not None and t.until > self.now
        if (live or token is not None) and (not live or token != t.token):
            raise Refusal("lease_lost")
        t.status = "done" if verdict == "approve" else "todo"
        t.end_lease()
        self.settle()

    def block(self, number, token, agent):
        t = self.get(number)
        if t.status == "in_progress":
            self.check_lease(t, token)
            self.held(t, agent)
        elif t.status != "todo":  # a holder's token of a task since closed: lease_lost, as check_lease
            raise Refusal("lease_lost" if token is not None and token in t.tokens else "conflict")
        elif token is not None:  # a holder's write: a todo task has no lease for a token to match
            raise Refusal("lease_lost")
        t.status = "blocked"
        t.end_lease()

    def unblock(self, number):
        t = self.get(number)
        if t.status != "blocked":
            raise Refusal("conflict")
        t.status = "todo"
        self.settle()

    def cancel(self, number):
        t = self.get(number)
        if t.status not in ("todo", "in_progress", "in_review", "blocked"):
            raise Refusal("conflict")
        t.status = "cancelled"
        t.end_lease()
        self.settle()

    def reopen(self, number):
        t = self.get(number)
        if t.status not in ("done", "failed", "cancelled"):
            raise Refusal("conflict")
        members = [m for m in self.tasks.values() if m.goal == t.id]
        if t.kind == "goal" and members and all(m.status in ("done", "cancelled") for m in members):
            raise Refusal("conflict")  # it would be done again at once: refused
        t.status, t.attempts = "todo", 0
        self.settle()

    def dep_add(self, number, dep):
        t = self.get(number)
        self.get(dep)
        if self.reaches(dep, number):
            raise Refusal("cycle")
        t.deps.add(dep)

    def dep_rm(self, number, dep):
        t = self.get(number)
        if dep not in t.deps:
            raise Refusal("not_found")
        t.deps.discard(dep)


class BoardMachine(RuleBasedStateMachine):
    leases = Bundle("leases")          # (task, token) from every work claim, kept after they go stale
    review_leases = Bundle("review_leases")

    def __init__(self):
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="kanban-model-")
        self.saved_now = os.environ.get("KANBAN_NOW")
        self.model = Model(START * 1000)
        self.set_clock()
        self.board = Board(os.path.join(self.folder, "board.db"), create=True)
        self.steps = []

    def teardown(self):
        self.board.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.saved_now is None:
            os.environ.pop("KANBAN_NOW", None)
        else:
            os.environ["KANBAN_NOW"] = self.saved_now

    def set_clock(self):
        os.environ["KANBAN_NOW"] = str(self.model.now // 1000)

    # -- the step harness: the model and the board must agree ----------------------------

    def both(self, name, model_op, board_op):
        """Run the operation on a copy of the model and on the board; compare outcomes."""
        trial = copy.deepcopy(self.model)
        try:
            expected = model_op(trial)
            expected_error = None
        except Refusal as refusal:
            expected, expected_error = None, refusal.code
        try:
            answer = board_op()
            error = None
        except KanbanError as exc:
            answer, error = None, exc.code
        self.steps.append(name)
        assert error == expected_error, f"{name}: board said {error or answer}, model expected {expected_error}"
        if expected_error is None:
            self.model = trial  # a failed command changes nothing: keep the old model
        return expected, answer

    def pick(self, pick):
        """Mostly a task that exists; now and then TASK-<n+1>, which does not."""
        if pick is None:
            return None
        return pick % (len(self.model.tasks) + 1) + 1

    def token_for(self, held, how, pick, statuses=("in_progress", "in_review")):
        """(task, token) for a holder write: see HOW."""
        number, token = held
        if how == "current":
            holding = [t for t in self.model.tasks.values()
                       if t.status in statuses and (t.token is not None or statuses == ("in_review",))]
            if holding:
                t = holding[pick % len(holding)]
                return t.id, t.token
        if how == "none":
            return number, None
        if how == "never":
            return number, self.model.last_token + 1000
        return number, token

    def expect_task(self, answer, number):
        t = self.model.tasks[number]
        assert answer["id"] == f"TASK-{number}"
        got = {k: answer[k] for k in ("status", "claimed_by", "lease_until", "attempts", "ready", "review",
                                      "priority", "max_attempts", "depends_on", "created_at", "not_before",
                                      "kind", "goal")}
        want = {"kind": t.kind, "goal": None if t.goal is None else f"TASK-{t.goal}",
                "status": t.status, "claimed_by": t.holder, "lease_until": iso(t.until), "attempts": t.attempts,
                "ready": self.model.ready(t), "review": t.review, "priority": t.priority,
                "max_attempts": t.max_attempts, "depends_on": [f"TASK-{d}" for d in sorted(t.deps)],
                "created_at": iso(t.created_at), "not_before": iso(t.not_before)}
        assert got == want, f"after {self.steps[-1]}: {answer['id']}: board {got} != model {want}"

    # -- rules ---------------------------------------------------------------------------------

    CREATE = dict(priority=st.integers(-1, 2), review=st.booleans(), max_attempts=st.none() | st.integers(1, 2),
                  not_before=st.one_of(st.none(), st.none(), st.none(), st.integers(-60, 600)),
                  deps=st.one_of(st.just([]), st.just([]), st.lists(PICK, min_size=1, max_size=2)),
                  kind=st.sampled_from(["task", "task", "task", "goal"]),
                  goal=st.one_of(st.none(), st.none(), PICK))

    @initialize(tasks=st.lists(st.fixed_dictionaries(CREATE), min_size=1, max_size=4))
    def first_tasks(self, tasks):
        for spec in tasks:
            self.create(**spec)

    @precondition(lambda self: len(self.model.tasks) < MAX_TASKS)
    @rule(**CREATE)
    def create(self, priority, review, max_attempts, not_before, deps, kind, goal):
        deps = sorted({pick % len(self.model.tasks) + 1 for pick in deps}) if self.model.tasks else []
        goals = [t.id for t in self.model.tasks.values() if t.kind == "goal"]
        # mostly a goal that exists; now and then a plain task (refused: invalid)
        goal = None if goal is None or not self.model.tasks else (
            goals[goal % len(goals)] if goals and goal % 4 else goal % len(self.model.tasks) + 1)
        at = None if not_before is None else self.model.now + not_before * 1000
        number, answer = self.both(
            f"create {kind} goal={goal} deps={deps}", lambda m: m.create(priority, review, max_attempts, at, deps,
                                                                         kind, goal),
            lambda: self.board.create(f"task {len(self.model.tasks) + 1}", priority=priority, review=review,
                                      max_attempts=max_attempts, not_before=None if at is None else at // 1000,
                                      depends_on=[f"TASK-{d}" for d in deps], kind=kind,
                                      goal=None if goal is None else f"TASK-{goal}"))
        if answer is not None:
            assert answer["created"] is True
            self.expect_task(answer, number)

    @rule(target=leases, agent=AGENTS, number=MAYBE_PICK, lease=LEASES)
    def claim(self, agent, number, lease):
        number = self.pick(number)
        before = self.model.last_token
        expected, answer = self.both(
            f"claim {number} by {agent}", lambda m: m.claim(agent, number, lease * 1000),
            lambda: self.board.claim(agent, number, lease=f"{lease}s"))
        if answer is None:
            return multiple()
        if expected is None:
            assert answer == {}
            return multiple()
        number, _ = expected
        token = answer["lease_token"]
        assert isinstance(token, int) and token > before, "fencing tokens go up at every claim"
        self.model.adopt(number, token)
        self.expect_task(answer, number)
        return multiple((number, token))

    @rule(target=review_leases, agent=AGENTS, number=MAYBE_PICK, lease=LEASES)
    def claim_review(self, agent, number, lease):
        number = self.pick(number)
        before = self.model.last_token
        expected, answer = self.both(
            f"claim --for-review {number} by {agent}", lambda m: m.claim_review(agent, number, lease * 1000),
            lambda: self.board.claim_review(agent, number, lease=f"{lease}s"))
        if answer is None:
            return multiple()
        if expected is None:
            assert answer == {}
            return multiple()
        number, _ = expected
        token = answer["lease_token"]
        assert isinstance(token, int) and token > before, "fencing tokens go up at every claim"
        self.model.adopt(number, token)
        self.expect_task(answer, number)
        return multiple((number, token))

    @rule(agent=AGENTS, held=leases | review_leases, how=HOW, pick=PICK, lease=st.none() | LEASES)
    def renew(self, agent, held, how, pick, lease):
        number, value = self.token_for(held, how, pick)
        _, answer = self.both(
            f"renew {number} {value} by {agent}", lambda m: m.renew(number, value, lease and lease * 1000, agent),
            lambda: self.board.renew(number, value, lease=lease and f"{lease}s", agent=agent))
        if answer is not None:
            assert answer["lease_token"] == value
            self.expect_task(answer, number)

    @rule(agent=AGENTS, held=leases | review_leases, how=HOW, pick=PICK)
    def release(self, agent, held, how, pick):
        number, value = self.token_for(held, how, pick)
        _, answer = self.both(f"release {number} {value} by {agent}", lambda m: m.release(number, value, agent),
                              lambda: self.board.release(number, value, agent=agent))
        if answer is not None:
            self.expect_task(answer, number)

    @rule(agent=AGENTS, held=leases | review_leases, how=HOW, pick=PICK, review=st.booleans())
    def complete(self, agent, held, how, pick, review):
        number, value = self.token_for(held, how, pick, ("in_progress",))
        _, answer = self.both(f"complete {number} {value} review={review} by {agent}",
                              lambda m: m.complete(number, value, review, agent),
                              lambda: self.board.complete(number, value, review=review, agent=agent))
        if answer is not None:
            self.expect_task(answer, number)

    @rule(agent=AGENTS, held=review_leases | leases, how=HOW, pick=PICK, verdict=st.sampled_from(["approve", "reject"]))
    def judge(self, agent, held, how, pick, verdict):
        number, value = self.token_for(held, how, pick, ("in_review",))
        if verdict == "approve":
            call = lambda: self.board.approve(number, agent=agent, token=value)
        else:
            call = lambda: self.board.reject(number, "not good enough", agent=agent, token=value)
        _, answer = self.both(f"{verdict} {number} by {agent} {value}",
                              lambda m: m.judge(agent, number, value, verdict), call)
        if answer is not None:
            self.expect_task(answer, number)

    @rule(agent=AGENTS, held=leases | review_leases, how=HOW, pick=PICK)
    def block(self, agent, held, how, pick):
        number, value = self.token_for(held, how, pick, ("in_progress",))
        _, answer = self.both(f"block {number} {value} by {agent}", lambda m: m.block(number, value, agent),
                              lambda: self.board.block(number, "stuck", token=value, agent=agent))
        if answer is not None:
            self.expect_task(answer, number)

    @rule(number=PICK)
    def park(self, number):
        """Block a todo task or goal by id, as a person does (no token)."""
        number = self.pick(number)
        _, answer = self.both(f"block {number} (todo)", lambda m: m.block(number, None, "lead"),
                              lambda: self.board.block(number, "parked", agent="lead"))
        if answer is not None:
            self.expect_task(answer, number)

    @rule(number=PICK, verb=st.sampled_from(["unblock", "cancel", "reopen"]))
    def simple(self, number, verb):
        number = self.pick(number)
        _, answer = self.both(f"{verb} {number}", lambda m: getattr(m, verb)(number),
                              lambda: getattr(self.board, verb)(number, actor="lead"))
        if answer is not None:
            self.expect_task(answer, number)

    @rule(number=PICK, dep=PICK, add=st.booleans())
    def dep(self, number, dep, add):
        number = self.pick(number)
        dep = self.pick(dep)
        if add:
            _, answer = self.both(f"dep add {number} {dep}", lambda m: m.dep_add(number, dep),
                                  lambda: self.board.dep_add(number, [dep], actor="lead"))
        else:
            _, answer = self.both(f"dep rm {number} {dep}", lambda m: m.dep_rm(number, dep),
                                  lambda: self.board.dep_rm(number, [dep], actor="lead"))
        if answer is not None:
            assert answer["depends_on"] == [f"TASK-{d}" for d in sorted(self.model.tasks[number].deps)]

    @rule(seconds=st.sampled_from([1, 29, 30, 31, 59, 60, 120, 301, 900]) | st.integers(-90, -1))
    def tick(self, seconds):
        """KANBAN_NOW jumps: leases run out, schedules open; sometimes the clock goes back."""
        self.model.now += seconds * 1000
        self.set_clock()
        self.steps.append(f"tick {seconds}s")

    @rule()
    def reap(self):
        expected, answer = self.both("reap", lambda m: m.reap(), lambda: self.board.reap(actor="lead"))
        assert [t["id"] for t in answer["expired"]] == [f"TASK-{n}" for n in sorted(expected)]

    # -- after every step ------------------------------------------------------------------------

    @invariant()
    def board_matches_model(self):
        tasks = self.board.list()["tasks"]
        assert sorted(t["id"] for t in tasks) == sorted(f"TASK-{n}" for n in self.model.tasks)
        for task in tasks:
            number = int(task["id"][5:])
            self.expect_task(task, number)
            if task["status"] == "in_progress":
                # claimed: a holder and a lease; an expired one is back in the pool (the next claim reaps it)
                assert task["claimed_by"] and task["lease_until"]
            elif task["status"] != "in_review":
                assert task["claimed_by"] is None and task["lease_until"] is None
        ready = sorted(t["id"] for t in self.board.list(ready=True)["tasks"])
        assert ready == sorted(f"TASK-{t.id}" for t in self.model.tasks.values() if self.model.ready(t))

    @invariant()
    def event_log_replays(self):
        report = invariants.check(self.board.path)
        assert report["violations"] == [], (self.steps, report["violations"])
        assert report["last_token"] == self.model.last_token


TestBoardModel = BoardMachine.TestCase
# KANBAN_MODEL_EXAMPLES=2000 for a long hunt; the suite's default takes ~10 s
TestBoardModel.settings = settings(max_examples=int(os.environ.get("KANBAN_MODEL_EXAMPLES", "60")),
                                   stateful_step_count=40, deadline=None,
                                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
