"""Time and leases at their edges (SPEC §2 durations and times, §5 leases), through the
real CLI, on SQLite and on PostgreSQL: what a time or a duration may be, and what a
lease, a schedule or a cut does where the printable years (1 to 9999) end."""
import pytest
from conftest import assert_error, backends, drop_pg_schemas, new_pg_schema, run

NEAR_THE_END = "9990-01-01T00:00:00Z"


@pytest.fixture(params=backends())
def kb(request, tmp_path):
    """kb('claim', ..., now=...) -> Result, on a new board of this test's backend."""
    if request.param == "sqlite":
        where, schema = tmp_path / ".kanban" / "board.db", None
    else:
        schema, where = new_pg_schema()
    assert run("init", env={"KANBAN_DB": where}).rc == 0

    def runner(*args, now=None, agent="w1", env=None, input=None):
        merged = {"KANBAN_DB": where, "KANBAN_AGENT": agent}
        if now is not None:
            merged["KANBAN_NOW"] = now
        merged.update(env or {})
        return run(*args, env=merged, input=input)
    yield runner
    if schema:
        drop_pg_schemas(schema)


@pytest.mark.parametrize("how", [("claim", "TASK-1"), ("claim",), ("batch", "claim", "1")])
def test_a_lease_that_would_end_after_the_year_9999_is_refused_and_the_board_still_shows(kb, how):
    kb("create", "late", now=NEAR_THE_END)
    assert_error(kb(*how, "--lease", "36500d", now=NEAR_THE_END), "invalid")
    assert_error(kb(*how, now=NEAR_THE_END, env={"KANBAN_LEASE": "36500d"}), "invalid")
    shown = kb("show", "TASK-1", now=NEAR_THE_END).json
    assert (shown["status"], shown["lease_until"]) == ("todo", None)        # the failed claim changed nothing
    assert kb("board", "--format", "json", now=NEAR_THE_END).rc == 0
    claim = kb(*how, "--lease", "9d", now=NEAR_THE_END).json
    claim = claim[0] if isinstance(claim, list) else claim
    assert claim["lease_until"] == "9990-01-10T00:00:00Z"


def test_renewals_that_would_end_after_the_year_9999_are_refused(kb):
    kb("create", "late", now=NEAR_THE_END)
    token = kb("claim", "TASK-1", "--lease", "3650d", now=NEAR_THE_END).json["lease_token"]
    later = "9999-06-01T00:00:00Z"                                          # the lease still runs
    assert_error(kb("lease", "renew", "TASK-1", "--token", token, now=later), "invalid")
    assert_error(kb("lease", "renew", "TASK-1", "--token", token, "--lease", "365d", now=later), "invalid")
    assert_error(kb("event", "log", "TASK-1", "--message", "m", "--token", token, now=later), "invalid")
    assert kb("show", "TASK-1", now=later).json["lease_until"] == "9999-12-30T00:00:00Z"
    assert kb("board", "--format", "json", now=later).rc == 0
    renewed = kb("lease", "renew", "TASK-1", "--token", token, "--lease", "30d", now=later).json
    assert renewed["lease_until"] == "9999-12-30T00:00:00Z"                 # never shorter


def test_a_review_lease_that_would_end_after_the_year_9999_is_refused(kb):
    kb("create", "late", "--review", now=NEAR_THE_END)
    token = kb("claim", "TASK-1", now=NEAR_THE_END).json["lease_token"]
    assert kb("complete", "TASK-1", "--token", token, now=NEAR_THE_END).json["status"] == "in_review"
    assert_error(kb("claim", "--for-review", "--lease", "36500d", agent="judge", now=NEAR_THE_END), "invalid")
    assert kb("show", "TASK-1", now=NEAR_THE_END).json["claimed_by"] is None


ARABIC_TEN = "\u0661\u0660"          # '١٠': Python's float() reads it as 10


@pytest.mark.parametrize("duration", [ARABIC_TEN + "m", ARABIC_TEN, "1_0m", "1_000", "\uff11\uff10m"])
def test_a_duration_is_ascii_digits_as_a_token_is(kb, duration):
    """A lease, a wait, a ttl, '+D' and KANBAN_LEASE take ASCII digits, as a token or a
    task id does ('١٠' is a bad token): other digits and '_' were read by float()."""
    kb("create", "t", now="2030-01-01T00:00:00Z")
    for args in (("claim", "TASK-1", "--lease", duration), ("claim", "--wait", duration),
                 ("event", "log", "TASK-1", "--message", "m", "--ttl", duration),
                 ("create", "later", "--not-before", "+" + duration),
                 ("set", "TASK-1", "--not-before", "+" + duration)):
        doc = assert_error(kb(*args, now="2030-01-01T00:00:00Z"), "invalid")
        assert "use 90s, 15m, 2h, 3d or seconds" in doc["error"], doc
    assert_error(kb("claim", "TASK-1", now="2030-01-01T00:00:00Z", env={"KANBAN_LEASE": duration}), "invalid")
    assert_error(kb("list", env={"KANBAN_BUSY_TIMEOUT": duration}), "invalid")
    assert_error(kb("lease", "renew", "TASK-1", "--token", ARABIC_TEN), "invalid")     # as tokens are
    shown = kb("show", "TASK-1", now="2030-01-01T00:00:00Z").json
    assert (shown["status"], shown["not_before"]) == ("todo", None)


@pytest.mark.parametrize("epoch", ["\u0661\u0669\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660",
                                   "1_900_000_000"])
def test_epoch_seconds_are_ascii_digits(kb, epoch):
    assert_error(kb("create", "t", "--not-before", epoch), "invalid")
    assert_error(kb("list", now=epoch), "invalid")                          # KANBAN_NOW too
    assert kb("create", "t", "--not-before", "1900000000").json["not_before"] == "2030-03-17T17:46:40Z"


@pytest.mark.parametrize("duration", ["1e400", "nan", "inf", "-inf"])
def test_a_duration_that_is_no_number_says_what_a_duration_is(kb, duration):
    kb("create", "t")
    doc = assert_error(kb("claim", "TASK-1", "--lease", duration), "invalid")
    assert doc["error"] == f"bad lease {duration!r}: use 90s, 15m, 2h, 3d or seconds", doc


def test_a_task_finished_by_a_clock_behind_the_one_that_claimed_it_took_no_time(kb):
    """Each command reads its own machine's clock (a server board's agents run on several
    machines), or KANBAN_NOW moved back: a task can finish 'before' it was claimed.  stats
    then says 0 s (its schema's minimum), and the times chart bins it, where it said -86400
    and the chart was an internal error."""
    from test_schemas import validate

    kb("create", "skewed", now="2030-01-02T00:00:00Z")
    token = kb("claim", "TASK-1", now="2030-01-02T00:00:00Z").json["lease_token"]
    assert kb("complete", "TASK-1", "--token", token, now="2030-01-01T00:00:00Z").json["status"] == "done"
    stats = validate("kanban-stats", kb("stats", now="2030-01-02T00:00:00Z").json)
    assert stats["cycle_time_s"]["max"] == 0 and stats["lead_time_s"]["p50"] == 0, stats
    res = kb("stats", "--chart", "times", "--format", "json", now="2030-01-02T00:00:00Z")
    assert res.rc == 0, res
    chart = validate("kanban-stats", res.json)
    assert (chart["cycle"][0], chart["lead"][0], chart["sample"]) == (1, 1, 1), chart
    assert kb("stats", "--chart", "times", now="2030-01-02T00:00:00Z").rc == 0


def test_prune_before_the_year_1_is_the_year_1(kb):
    """A cut before the first printable year ('before': '-099-01-27T00:00:00Z' was printed,
    against the timestamp pattern) is the year 1: no note is older."""
    from test_schemas import validate

    kb("create", "early", now="0001-01-02T00:00:00Z")
    kb("event", "log", "TASK-1", "--message", "m", now="0001-01-02T00:00:00Z")
    for cut in ("30d", "36500d"):
        doc = validate("kanban-prune", kb("prune", "--before", cut, now="0001-01-02T00:00:00Z").json)
        assert (doc["before"], doc["pruned"]) == ("0001-01-01T00:00:00Z", 0), doc
    doc = validate("kanban-prune", kb("prune", "--before", "1h", now="0001-01-02T00:00:00Z").json)
    assert doc["before"] == "0001-01-01T23:00:00Z"


def test_a_review_lease_that_ran_out_says_so(kb):
    """approve/reject with the review claim's own token at (or after) its end: lease_lost
    saying the lease expired, where it said the token was not the current one."""
    kb("create", "judge me", "--review", now="2030-01-01T00:00:00Z")
    token = kb("claim", "TASK-1", now="2030-01-01T00:00:00Z").json["lease_token"]
    kb("complete", "TASK-1", "--token", token, now="2030-01-01T00:00:00Z")
    review = kb("claim", "--for-review", "--lease", "1m", agent="judge", now="2030-01-01T00:00:00Z").json
    for verb in (("approve",), ("reject", "--reason", "no")):
        doc = assert_error(kb(*verb, "TASK-1", "--token", review["lease_token"], agent="judge",
                              now="2030-01-01T00:01:00Z"), "lease_lost")
        assert doc["error"] == f"{verb[0]}: the review lease on TASK-1 expired at 2030-01-01T00:01:00Z", doc
    doc = assert_error(kb("approve", "TASK-1", "--token", "999", agent="judge", now="2030-01-01T00:00:30Z"),
                       "lease_lost")
    assert doc["error"] == "approve: token 999 is not the current review lease on TASK-1", doc
    assert kb("show", "TASK-1", now="2030-01-01T00:01:00Z").json["status"] == "in_review"


@pytest.mark.parametrize(("duration", "ms"), [("1.001", 1001), ("1.15d", 99_360_000), ("1.13h", 4_068_000),
                                               ("1.14m", 68_400), (".5", 500), ("2.5ms", 2)])
def test_a_fractional_duration_is_exact_to_the_millisecond(kb, duration, ms):
    """1.15d is 99360000 ms, not a millisecond short (float arithmetic: 1.15 * 86400000)."""
    kb("create", "t", now="2030-01-01T00:00:00Z")
    claim = kb("claim", "TASK-1", "--lease", duration, now="2030-01-01T00:00:00Z").json
    end = 1_893_456_000_000 + ms
    seconds, millis = divmod(end, 1000)
    import time
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + (f".{millis:03d}Z" if millis else "Z")
    assert claim["lease_until"] == stamp, claim


@pytest.mark.parametrize(("epoch", "shown"), [("1900000000.001", "2030-03-17T17:46:40.001Z"),
                                              ("-1.001", "1969-12-31T23:59:58.999Z"),
                                              ("253402300799.999", "9999-12-31T23:59:59.999Z"),
                                              ("100000000000", "5138-11-16T09:46:40Z")])
def test_epoch_seconds_are_exact_and_reach_the_year_9999(kb, epoch, shown):
    """Epoch seconds with milliseconds keep them (1900000000.001 was .000), and run to the
    end of the year 9999 as ISO-8601 does (past 1e11 s they were a 'bad' time)."""
    assert kb("create", "t", "--not-before", epoch).json["not_before"] == shown
    assert kb("create", "u", now=epoch).json["created_at"] == shown


def test_epoch_seconds_past_the_year_9999_are_out_of_range(kb):
    for epoch in ("253402300800", "1767225600000", "1e300"):
        doc = assert_error(kb("create", "t", "--not-before", epoch), "invalid")
        assert doc["error"].endswith("is out of range: years 1 to 9999 only"), doc


@pytest.mark.parametrize("timeout", ["25d", "36500d"])
def test_a_busy_timeout_longer_than_the_backends_take_is_their_longest(kb, timeout):
    """KANBAN_BUSY_TIMEOUT past 2**31-1 ms (about 24.8 days) was an OverflowError (internal)
    on SQLite for every command, and db_error on PostgreSQL for every write."""
    env = {"KANBAN_BUSY_TIMEOUT": timeout}
    assert kb("create", "t", env=env).json["id"] == "TASK-1"
    assert [t["id"] for t in kb("list", env=env).json["tasks"]] == ["TASK-1"]
    assert kb("claim", env=env).json["id"] == "TASK-1"


@pytest.mark.parametrize("tz", ["Pacific/Kiritimati", "Asia/Kolkata", "UTC"])
def test_the_board_for_people_prints_a_time_the_local_calendar_cannot(kb, tz):
    """9999-12-31T23:00:00Z is the year 10000 east of UTC: the board's table and markdown
    were an internal error there (datetime's ValueError); they show the UTC stamp instead.
    The JSON is the same whatever TZ says."""
    kb("create", "far off", "--not-before", "9999-12-31T23:00:00Z", now="2030-01-01T00:00:00Z")
    for fmt in ("table", "markdown"):
        res = kb("board", "--format", fmt, now="2030-01-01T00:00:00Z", env={"TZ": tz})
        assert res.rc == 0 and "far off" in res.out, res
    plain = kb("board", "--format", "json", now="2030-01-01T00:00:00Z", env={"TZ": "UTC"}).out
    assert kb("board", "--format", "json", now="2030-01-01T00:00:00Z", env={"TZ": tz}).out == plain


def test_the_board_for_people_names_the_year_of_a_time_in_another_year(kb):
    kb("create", "next year", "--not-before", "2031-06-01T12:00:00Z", now="2030-01-01T00:00:00Z")
    kb("create", "this year", "--not-before", "2030-06-01T12:00:00Z", now="2030-01-01T00:00:00Z")
    out = kb("board", "--format", "markdown", now="2030-01-01T00:00:00Z", env={"TZ": "UTC"}).out
    assert "not before Jun 01 2031 12:00" in out and "not before Jun 01 12:00" in out, out


def test_an_event_cursor_past_the_newest_event_is_refused(kb):
    """'999' on a board whose newest event is 2 was answered {"events": [], "cursor": "999"},
    and every event up to 999 was then skipped: a cursor no answer gave is invalid.  The
    newest cursor, with nothing new, is still answered as it is (stable)."""
    kb("create", "a")
    kb("event", "log", "TASK-1", "--message", "short-lived", "--ttl", "1s", now="2030-01-01T00:00:00Z")
    newest = kb("event", "list", now="2030-01-01T00:00:00Z").json["cursor"]
    later = "2030-01-01T00:00:05Z"                                          # the note is hidden now
    assert kb("event", "list", "--since", newest, now=later).json == {"events": [], "cursor": newest}
    for args in (("--since", str(int(newest) + 1)), ("--since", "999"), ("--since", "999", "--task", "TASK-1"),
                 ("--since", "999", "--kind", "created")):
        doc = assert_error(kb("event", "list", *args, now=later), "invalid")
        assert "past the newest event" in doc["error"], doc
    kb("create", "b", now=later)
    page = kb("event", "list", "--since", newest, now=later).json
    assert [e["kind"] for e in page["events"]] == ["created"] and int(page["cursor"]) == int(newest) + 1


def test_a_tables_times_say_they_are_utc(kb):
    """list/show/event list --format table print UTC to the minute; unmarked, '00:15' read
    as local time under TZ=Asia/Kolkata (where the board for people shows 05:45)."""
    kb("create", "t", now="2030-01-01T00:00:00Z")
    kb("claim", "TASK-1", "--lease", "15m", now="2030-01-01T00:00:00Z")
    env = {"TZ": "Asia/Kolkata"}
    assert "2030-01-01 00:15Z" in kb("list", "--format", "table", now="2030-01-01T00:00:00Z", env=env).out
    assert "2030-01-01 00:00Z" in kb("event", "list", "--format", "table", env=env).out
    assert "2030-01-01 00:00Z" in kb("show", "TASK-1", "--format", "table", env=env).out
