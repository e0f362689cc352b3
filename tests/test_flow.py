"""Flow charts from the event log (`stats --chart`, SPEC §5 stats): the series are the
event log replayed, the same on the terminal (Unicode) and in JSON."""
import re

from conftest import assert_error, at
from test_schemas import validate


def sprint(kb):
    """A goal of 6 review tasks over a day: 4 claimed, 3 submitted, 2 approved, 1 blocked."""
    goal = kb("create", "Ship it", "--kind", "goal", env=at(0)).json["id"]
    ids = [kb("create", f"t{n}", "--goal", goal, "--review", env=at(60 * n)).json["id"] for n in range(6)]
    for n, task in enumerate(ids[:4]):
        start = 3600 * (n + 1)
        claim = kb("claim", task, "--lease", "2h", agent=f"w{n}", env=at(start)).json
        if n < 3:
            kb("complete", task, "--token", claim["lease_token"], agent=f"w{n}", env=at(start + 1800))
        if n < 2:
            kb("approve", task, agent="rev", env=at(start + 2400))
    kb("block", ids[5], "--reason", "waits on a vendor", env=at(7200))
    return goal, ids


def chart(kb, *args, now=86400):
    res = kb("stats", "--chart", *args, "--format", "json", env=at(now))
    assert res.rc == 0, res
    return validate("kanban-stats", res.json)


def test_cfd_is_the_log_replayed(kb):
    sprint(kb)
    cfd = chart(kb, "cfd")
    series = cfd["series"]
    assert cfd["t"][-1] == "2030-03-18T17:46:40Z"                      # the last sample is now
    last = {status: values[-1] for status, values in series.items()}
    assert last == {"todo": 1, "in_progress": 1, "in_review": 1, "blocked": 1, "done": 2, "failed": 0,
                    "cancelled": 0}
    totals = [sum(series[s][i] for s in series) for i in range(len(cfd["t"]))]
    assert totals == sorted(totals) and totals[-1] == 6                 # tasks only: the goal is no work
    assert max(series["in_progress"]) >= 1 and series["done"] == sorted(series["done"])


def test_burndown_throughput_and_times(kb):
    goal, _ids = sprint(kb)
    burn = chart(kb, "burndown", "--goal", goal)
    [mine] = burn["goals"]
    assert mine["goal"] == goal and mine["title"] == "Ship it"
    assert mine["remaining"][-1] == 4 and mine["total"][-1] == 6
    assert max(mine["remaining"]) == 6 and mine["remaining"].index(6) < len(mine["remaining"]) - 1
    through = chart(kb, "throughput")
    assert through["days"][-1] == "2030-03-18" and sum(through["done"]) == 2
    times = chart(kb, "times")
    assert times["sample"] == 2 and sum(times["cycle"]) == 2 and sum(times["lead"]) == 2
    # cycle: claimed to approved is 40 minutes: the <1h bin
    assert times["cycle"][times["bins"].index("<1h")] == 2
    recent = chart(kb, "cfd", "--since", "2h")
    assert recent["t"][0] == "2030-03-18T15:46:40Z" and recent["step_s"] <= 300   # from 2h ago


def test_charts_in_the_terminal(kb):
    sprint(kb)
    for name, words in (("cfd", ["Cumulative flow", "done 2", "in_review 1"]),
                        ("burndown", ["Burndown TASK-1 Ship it: 4 of 6 left"]),
                        ("throughput", ["2 in 2 days"]), ("times", ["cycle time", "<1h"])):
        res = kb("stats", "--chart", name, env=at(86400))
        assert res.rc == 0 and all(w in res.out for w in words), (name, res.out)
        assert "\x1b[" not in res.out                                  # piped: no colour
    assert "█" in kb("stats", "--chart", "cfd", env=at(86400)).out


def test_chart_errors(kb):
    goal, ids = sprint(kb)
    assert_error(kb("stats", "--chart", "pie"), "invalid")
    assert_error(kb("stats", "--chart", "burndown", "--goal", ids[0]), "invalid")
    assert_error(kb("stats", "--chart", "burndown", "--goal", "TASK-999"), "not_found")
    assert_error(kb("stats", "--chart", "cfd", "--since", "yesterday"), "invalid")
    assert_error(kb("stats", "--goal", goal), "usage")


def test_since_as_epoch_seconds_is_that_time_as_the_man_page_says(kb):
    """`--since 1900000000` is the time at epoch second 1900000000 (as `--since
    2030-03-17T17:46:40Z`), not 1900000000 seconds ago."""
    sprint(kb)
    by_iso = chart(kb, "throughput", "--since", "2030-03-18T00:00:00Z")
    by_epoch = chart(kb, "throughput", "--since", str(1_900_000_000 + 22_400))
    assert by_epoch == by_iso and by_epoch["days"][0] == "2030-03-18"
    assert chart(kb, "throughput", "--since", "1d")["days"][0] == "2030-03-17"   # a unit: a span back


def test_since_plus_d_is_from_now_as_every_time_kanban_reads(kb):
    """SPEC §2: an input time `+10m` is ten minutes from now; `stats --since +1h` took it
    for an hour ago.  A bare duration (1h) is the span back; `+1h` (and any time after
    now) is refused, the message saying to write 1h; standup --since likewise."""
    sprint(kb)
    back = chart(kb, "cfd", "--since", "1h")
    assert back["t"][0] == "2030-03-18T16:46:40Z"                         # an hour before now (at 86400)
    for ahead in ("+1h", "+10m", "2030-03-18T18:00:00Z", str(1_900_000_000 + 86400 + 60)):
        res = kb("stats", "--chart", "cfd", "--since", ahead, env=at(86400))
        assert_error(res, "invalid")
        assert "after now" in res.error["error"] or "from now" in res.error["error"], res.error
    res = kb("stats", "--chart", "cfd", "--since", "+1h", env=at(86400))
    assert "say 1h" in res.error["error"], res.error
    assert chart(kb, "cfd", "--since", "2030-03-18T17:46:40Z")["t"][-1] == "2030-03-18T17:46:40Z"  # now itself
    res = kb("standup", "--since", "+1h", env=at(86400))
    assert_error(res, "invalid")
    assert "say 1h" in res.error["error"], res.error
    assert kb("standup", "--since", "1h", "--format", "json", env=at(86400)).rc == 0


def test_a_bad_since_lists_only_what_since_takes(kb):
    """`stats --since -1h` said to use "ISO-8601, epoch seconds or +10m", and --since
    refuses +10m (a chart starts in the past). The message lists what --since takes;
    standup --since, which takes a span back or a time in the past (as git log --since),
    never offers +10m either."""
    sprint(kb)
    for bad in ("-1h", "soon", "nan", "1e400"):
        res = kb("stats", "--chart", "cfd", "--since", bad, env=at(86400))
        assert_error(res, "invalid")
        assert res.error["error"] == (f"bad --since '{bad}': use a duration back (7d, 2h, 15m), ISO-8601 "
                                      "or epoch seconds"), res.error
    for bad in ("-1h", "soon", "2030-03-18T18:00:00Z"):
        res = kb("standup", "--since", bad, env=at(86400))
        assert_error(res, "invalid")
        assert "+10m" not in res.error["error"], res.error


def _axis(text):
    """The x axis's labels of a chart drawn in the terminal: the line under the └ line."""
    lines = text.splitlines()
    axis = next(i for i, line in enumerate(lines) if "└" in line)
    return lines[axis + 1].split("  ")


def test_a_chart_of_one_minute_has_different_times_at_its_ends(kb):
    """Every event within one minute: the chart had one sample and the same time,
    '2030-01-01 10:00', at both ends of its x axis. It now starts at the first task's
    creation and ends now, labelled to the second when the minute would say the same."""
    goal = kb("create", "Ship", "--kind", "goal", env=at(20)).json["id"]  # 17:47:00 on
    first = kb("create", "one", "--goal", goal, env=at(21)).json["id"]
    kb("create", "two", "--goal", goal, env=at(30))
    kb("claim", first, agent="w1", env=at(40))
    cfd = chart(kb, "cfd", now=55)
    assert len(cfd["t"]) == 2 and cfd["t"][0] < cfd["t"][1]                # the first creation, then now
    assert [cfd["series"][s] for s in ("todo", "in_progress")] == [[1, 1], [0, 1]]
    stamps = ["2030-03-17 17:47:01", "17:47:35"]                           # to the second, the date once
    for name in ("cfd", "burndown"):
        drawn = kb("stats", "--chart", name, env=at(55)).out
        labels = [label.strip() for label in _axis(drawn) if label.strip()]
        assert labels == stamps, (name, drawn)
    from kanban import charts

    svg = charts.svg_cfd(cfd)
    assert [m for m in re.findall(r'class="tick"[^>]*>([^<]*)<', svg) if ":" in m] == stamps, svg
    # one sample (--since now itself; a --since still to come is refused): its time once;
    # a span under a second: to the ms
    drawn = kb("stats", "--chart", "cfd", "--since", "2030-03-17T17:47:35Z", env=at(55)).out
    assert [label.strip() for label in _axis(drawn) if label.strip()] == ["2030-03-17 17:47"], drawn
    assert charts._stamps(["2030-01-01T10:00:00.100Z", "2030-01-01T10:00:00.600Z"]) == \
        ["2030-01-01 10:00:00.100", "10:00:00.600"]
    # a day's throughput: that day once, not at both ends
    through = kb("stats", "--chart", "throughput", env=at(55)).out
    assert [label.strip() for label in _axis(through) if label.strip()] == [cfd["t"][0][:10]], through


def test_charts_have_at_most_60_samples(kb):
    """kanban-stats(1): "at most 60 samples", with the start and the end among them."""
    kb("create", "one", env=at(30))
    for now in (30 + 58 * 60, 30 + 3600, 30 + 3600 * 5, 86400 * 3 + 17):
        assert len(chart(kb, "cfd", now=now)["t"]) <= 60, now
