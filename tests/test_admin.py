"""list, search, show, stats, prune --vacuum, doctor, backup (SPEC §5)."""
import json
import os
import subprocess
import time

from conftest import KANBAN, assert_error, at


def new(kb, title, *args, env=None):
    res = kb("create", title, *args, env=env)
    assert res.rc == 0, res
    return res.json["id"]


# -- list ------------------------------------------------------------------------------


def test_list_filters(kb):
    goal = new(kb, "G", "--kind", "goal")
    a = new(kb, "a", "--project", "web", "--priority", "1", "--goal", goal)
    b = new(kb, "b", "--project", "api", "--assignee", "w2", "--priority", "5")
    c = new(kb, "c", "--depends-on", a, "--priority", "3")
    d = new(kb, "d", "--project", "web", "--goal", goal)
    kb("claim", d, agent="w1")
    every = kb("list").json
    assert set(every) == {"tasks"}
    assert [t["id"] for t in every["tasks"]] == [b, c, a, goal, d]  # priority desc, created_at, id
    ids = lambda *args: [t["id"] for t in kb("list", *args).json["tasks"]]  # noqa: E731
    assert ids("--project", "web") == [a, d]
    assert ids("--assignee", "w2") == [b]
    assert ids("--goal", goal) == [a, d]
    assert ids("--ready") == [b, a]
    assert ids("--status", "in_progress") == [d]
    assert ids("--status", "in_progress,todo") == [b, c, a, goal, d]
    assert ids("--limit", "2") == [b, c]
    assert ids("--project", "nothing-here") == []
    for args, code in ((["--status", "open"], "invalid"), (["--limit", "0"], "invalid"),
                       (["--limit", "x"], "invalid"), (["--goal", "TASK-404"], "not_found"),
                       (["--sort", "x"], "usage")):
        assert_error(kb("list", *args), code)


def test_list_table_is_for_people(kb):
    new(kb, "a readable title")
    res = kb("list", "--format", "table")
    assert res.rc == 0 and "a readable title" in res.out
    assert_error(kb("list", "--format", "xml"), "invalid")


# -- search ----------------------------------------------------------------------------


def test_search_titles_and_bodies(kb):
    login = new(kb, "Fix the login form", "--body", "users cannot sign in with SSO")
    new(kb, "Write the report")
    sso = new(kb, "Audit", "--body", "check sso tokens")
    found = kb("search", "login").json
    assert set(found) == {"tasks"} and [t["id"] for t in found["tasks"]] == [login]
    assert sorted(t["id"] for t in kb("search", "sso").json["tasks"]) == sorted([login, sso])
    assert [t["id"] for t in kb("search", "sign", "in").json["tasks"]] == [login]
    assert kb("search", "nothing-matches-this").json == {"tasks": []}
    # text that looks like FTS syntax is taken literally
    assert kb("search", 'NEAR("x" AND') .json == {"tasks": []}
    kb("set", login, "--title", "Repair authentication")
    assert kb("search", "login").json == {"tasks": []}
    assert [t["id"] for t in kb("search", "authentication").json["tasks"]] == [login]
    assert_error(kb("search"), "usage")


# -- show ------------------------------------------------------------------------------


def test_show_has_everything(kb):
    t = new(kb, "t")
    kb("comment", t, "--message", "c1", agent="a")
    for n in range(5):
        kb("event", "log", t, "--message", f"n{n}", agent="a")
    shown = kb("show", t).json
    for key in ("comments", "runs", "events", "waiting_on", "claimable_by"):
        assert key in shown
    assert len(shown["events"]) == 7
    last = kb("show", t, "--events", "2").json["events"]
    assert [e["data"]["message"] for e in last] == ["n3", "n4"]
    assert_error(kb("show", "TASK-999"), "not_found")
    assert_error(kb("show", "nonsense"), "invalid")
    assert_error(kb("show"), "usage")
    assert kb("show", "--format", "table", t).rc == 0


# -- stats -----------------------------------------------------------------------------


def test_stats_counts_and_percentiles(kb):
    ids = [new(kb, f"t{n}", env=at(0)) for n in range(4)]
    new(kb, "G", "--kind", "goal", env=at(0))
    for n, t in enumerate(ids[:2]):
        tok = kb("claim", t, agent="w", env=at(100)).json["lease_token"]
        kb("complete", t, "--token", str(tok), agent="w", env=at(100 + 60 * (n + 1)))
    kb("claim", ids[2], agent="w", env=at(200))
    kb("cancel", ids[3], env=at(200))
    stats = kb("stats", env=at(300)).json
    assert stats["counts"]["done"] == 2 and stats["counts"]["in_progress"] == 1
    assert stats["counts"]["cancelled"] == 1 and stats["counts"]["todo"] == 0
    assert set(stats["counts"]) == {"todo", "in_progress", "in_review", "blocked", "done", "failed", "cancelled"}
    assert stats["cycle_time_s"]["p50"] in (60, 120) and stats["cycle_time_s"]["max"] == 120
    assert stats["done_in"]["1h"] == 2
    assert kb("stats", "--format", "table").rc == 0


# -- prune --vacuum ------------------------------------------------------------------


def test_prune_vacuum(kb):
    t = new(kb, "t", env=at(0))
    for _ in range(20):
        kb("event", "log", t, "--message", "x" * 20000, "--ttl", "1h", agent="w", env=at(0))
    new(kb, "u", env=at(0))  # the newest event is never pruned: none of the notes is the newest
    res = kb("prune", "--vacuum", env=at(7200))
    assert res.rc == 0
    doc = res.json
    assert doc["pruned"] == 20 and doc["vacuumed"] is True and doc["pages_freed"] >= 0
    assert kb("event", "list", env=at(7200)).json["events"][0]["kind"] == "created"
    assert kb("doctor").json["ok"] is True


def test_prune_vacuum_frees_every_free_page(kb):
    t = new(kb, "t", env=at(0))
    for _ in range(20):
        kb("event", "log", t, "--message", "x" * 20000, "--ttl", "1h", agent="w", env=at(0))
    from kanban import Board

    with Board(str(kb.path)) as board:
        pages = board.db.scalar("PRAGMA page_count")
    res = kb("prune", "--vacuum", env=at(7200))
    assert res.rc == 0, res
    assert res.json["pages_freed"] > 20, res.json  # 20 notes of 20 KB: over a hundred pages
    with Board(str(kb.path)) as board:
        assert board.db.scalar("PRAGMA freelist_count") == 0
        assert board.db.scalar("PRAGMA page_count") == pages - res.json["pages_freed"]
    assert kb("prune", "--vacuum", env=at(7200)).json["pages_freed"] == 0


# -- doctor ----------------------------------------------------------------------------


def test_doctor_on_a_healthy_board(kb):
    new(kb, "t")
    doc = kb("doctor").json
    assert doc["ok"] is True and doc["integrity"] == ["ok"]
    assert doc["schema_version"] == doc["schema_expected"] and doc["schema_version"] >= 1
    assert doc["sqlite_version"] and doc["journal_mode"] == "wal"
    assert isinstance(doc["findings"], list) and isinstance(doc["wal"]["bytes"], int)
    assert kb("doctor", "--exit-code").rc == 0


def test_doctor_through_a_symlink_reports_the_real_wal(kb, tmp_path):
    # SQLite keeps the WAL next to the file the link points to, not next to the link
    new(kb, "t")
    link = tmp_path / "elsewhere" / "board.db"
    link.parent.mkdir()
    link.symlink_to(kb.path)
    wal = kb("doctor").json["wal"]
    assert wal["bytes"] > 0
    through = kb("doctor", env={"KANBAN_DB": link}).json["wal"]
    assert os.path.samefile(through["path"], wal["path"]) and through["bytes"] == wal["bytes"]


def test_doctor_warns_of_a_hooks_dir_that_is_not_a_folder(kb, tmp_path):
    """KANBAN_HOOKS_DIR naming nothing (a typo) runs no hook at all, pre-complete neither,
    as git's core.hooksPath does: doctor says so; a real folder, or none named, is quiet."""
    new(kb, "t")
    for named in (tmp_path / "no-such-hooks", kb.path):  # missing, and a file
        doc = kb("doctor", env={"KANBAN_HOOKS_DIR": named}).json
        assert [f for f in doc["findings"] if "KANBAN_HOOKS_DIR" in f["message"]] == [{
            "level": "warning",
            "message": f"KANBAN_HOOKS_DIR names {named}, which is not a folder: no hook runs, not even pre-complete"}]
        assert doc["ok"] is True  # a warning: the board itself is fine
    (tmp_path / "hooks").mkdir(mode=0o755)
    for env in ({"KANBAN_HOOKS_DIR": tmp_path / "hooks"}, {}):
        assert not [f for f in kb("doctor", env=env).json["findings"] if "KANBAN_HOOKS_DIR" in f["message"]]


def test_doctor_reports_expired_leases(kb):
    new(kb, "t", env=at(0))
    kb("claim", "--lease", "1m", agent="w", env=at(0))
    doc = kb("doctor", env=at(3600)).json
    assert any("expired" in f["message"] for f in doc["findings"])


def test_not_a_board_is_a_db_error(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a sqlite file at all" * 200)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env["KANBAN_DB"] = str(junk)
    proc = subprocess.run([str(KANBAN), "list"], env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert json.loads(proc.stderr.strip().splitlines()[-1])["code"] == "db_error"
    assert "Traceback" not in proc.stderr


def test_a_folder_named_as_the_board_is_said_to_be_one(tmp_path):
    folder = tmp_path / "boards"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env["KANBAN_DB"] = str(folder)
    for verb in ("list", "init"):
        proc = subprocess.run([str(KANBAN), verb], env=env, capture_output=True, text=True)
        assert proc.returncode == 2 and proc.stdout == ""
        doc = json.loads(proc.stderr.strip().splitlines()[-1])
        assert doc["code"] == "db_error"
        assert doc["error"] == (f"the board cannot be opened: {folder} is a folder (name the board's file, "
                                f"e.g. {folder / 'board.db'})"), doc
    assert list(folder.iterdir()) == []


# -- backup ----------------------------------------------------------------------------


def test_backup_is_a_working_board(kb, tmp_path):
    ids = [new(kb, f"t{n}") for n in range(3)]
    kb("claim", ids[0], agent="w")
    dest = tmp_path / "copy.db"
    res = kb("backup", str(dest))
    assert res.rc == 0
    doc = res.json
    assert doc["integrity"] == "ok" and doc["bytes"] == dest.stat().st_size and os.path.isabs(doc["backup"])
    original = kb("list").json
    copy = kb("list", env={"KANBAN_DB": str(dest)}).json
    assert copy == original
    assert kb("event", "list", env={"KANBAN_DB": str(dest)}).json == kb("event", "list").json
    # the copy is independent of the board
    new(kb, "after the backup")
    assert len(kb("list", env={"KANBAN_DB": str(dest)}).json["tasks"]) == 3
    assert_error(kb("backup", str(kb.path)), "invalid")
    assert_error(kb("backup", str(tmp_path)), "invalid")
    assert_error(kb("backup"), "usage")


def test_backup_while_agents_write(kb, tmp_path):
    lines = "".join(json.dumps({"title": f"t{n}"}) + "\n" for n in range(60))
    kb("create", "--stdin", input=lines)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update(KANBAN_DB=str(kb.path), KANBAN_AGENT="busy")
    loop = ("i=0; while [ $i -lt 30 ]; do \"$K\" claim >/dev/null || exit 1; i=$((i+1)); done")
    writer = subprocess.Popen(["sh", "-c", loop], env=dict(env, K=str(KANBAN)))
    try:
        copies = []
        for n in range(3):
            dest = tmp_path / f"b{n}.db"
            res = kb("backup", str(dest))
            assert res.rc == 0 and res.json["integrity"] == "ok", res
            copies.append(dest)
            time.sleep(0.05)
    finally:
        assert writer.wait(timeout=60) == 0
    for dest in copies:
        doc = kb("doctor", env={"KANBAN_DB": str(dest)}).json
        assert doc["ok"] is True
        tasks = kb("list", env={"KANBAN_DB": str(dest)}).json["tasks"]
        assert len(tasks) == 60


def test_reading_verbs_take_format_table(kb):
    a = new(kb, "alpha")
    b = new(kb, "beta", "--depends-on", a)
    for args in (["show", b], ["dep", "list", b], ["event", "list"], ["stats"], ["doctor"], ["search", "alpha"]):
        res = kb(*args, "--format", "table")
        assert res.rc == 0 and res.out.strip(), args
        try:
            json.loads(res.out)
        except ValueError:
            pass
        else:
            raise AssertionError(f"{args}: --format table printed JSON")


def test_an_empty_table_is_a_sentence_not_bare_headers(kb):
    """`list`, `search`, `event list` and `limit list` with --format table and nothing to
    show printed the headers alone; now a plain sentence. JSON is as it was."""
    assert kb("list", "--format", "table").out == "no tasks\n"
    assert kb("list").json == {"tasks": []}
    assert kb("event", "list", "--format", "table").out == "no events\ncursor: 0\n"
    assert kb("limit", "list", "--format", "table").out == "no WIP limits\n"
    new(kb, "alpha")
    assert kb("search", "flaky", "CI", "--format", "table").out == "no task matches 'flaky CI'\n"
    assert kb("search", "flaky", "CI").json == {"tasks": []}
    assert kb("list", "--status", "done", "--format", "table").out == "no tasks\n"
    assert kb("search", "--status", "done", "--format", "table").out == "no tasks\n"
    assert kb("event", "list", "--kind", "claimed", "--format", "table").out.startswith("no events\ncursor: ")
    shown = kb("list", "--format", "table").out  # a list with tasks is still a table
    assert shown.startswith("id ") and "alpha" in shown


def test_concurrent_backups_to_one_file(kb, tmp_path):
    """Backups running at once to the same file each use a temp file of their own: all
    succeed, the published file is always a whole board, no temp file is left."""
    lines = "".join(json.dumps({"title": f"t{n}", "body": "b" * 2000}) + "\n" for n in range(300))
    assert kb("create", "--stdin", input=lines).rc == 0
    dest = tmp_path / "out" / "backup.db"
    dest.parent.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update(KANBAN_DB=str(kb.path))
    procs = [subprocess.Popen([str(KANBAN), "backup", str(dest)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    for rc, out, err in results:
        assert rc == 0, (out, err)
        doc = json.loads(out)
        assert doc["integrity"] == "ok" and doc["pages"] > 0, doc
    assert sorted(os.listdir(dest.parent)) == ["backup.db"]
    check = kb("list", "--limit", "1000", env={"KANBAN_DB": str(dest)})
    assert check.rc == 0 and len(check.json["tasks"]) == 300, check
    assert kb("doctor", env={"KANBAN_DB": str(dest)}).json["ok"] is True


def test_a_backup_that_cannot_be_written_does_not_blame_the_board(kb, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    error = assert_error(kb("backup", str(tmp_path / "a-file" / "b.db")), "db_error")
    assert "backup" in error["error"] and "board" not in error["error"], error
