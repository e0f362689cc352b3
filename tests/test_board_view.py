"""t8100: the porcelain for people: `kanban board`, `kanban skill`, `kanban completion`."""
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT, run

SECTIONS = ("TODO", "IN PROGRESS", "IN REVIEW", "BLOCKED", "DONE", "FAILED", "CANCELLED")


def section(text, name):
    """The lines of one section of `kanban board` (without its heading)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(name + " ("))
    out = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        out.append(line)
    return out


def line_of(lines, task_id):
    found = [line for line in lines if line.split()[0] == task_id]
    assert len(found) == 1, (task_id, lines)
    return found[0]


def sprint(board):
    """A goal of four tasks in every state a person wants to see."""
    goal = board.create("Ship v1", kind="goal", project="web")["id"]
    done = board.create("Write the spec", goal=goal, project="web", priority=5)["id"]
    busy = board.create("Build it", goal=goal, project="web", priority=3, role="dev")["id"]
    waits = board.create("Release it", goal=goal, project="web", depends_on=[busy])["id"]
    stuck = board.create("Fix the CI", project="ops")["id"]
    review = board.create("Tidy docs", project="web", review=True)["id"]
    claim = board.claim("w1", done)
    board.complete(done, claim["lease_token"], agent="w1")
    board.claim("amy", busy, role="dev", lease="10m")
    claim = board.claim("w1", stuck)
    board.block(stuck, "the runner is out of disk", token=claim["lease_token"], agent="w1")
    claim = board.claim("w2", review)
    board.complete(review, claim["lease_token"], agent="w2")
    return dict(goal=goal, done=done, busy=busy, waits=waits, stuck=stuck, review=review)


def test_board_has_a_section_per_status_and_says_who_holds_what(kb, board):
    ids = sprint(board)
    res = kb("board")
    assert res.rc == 0 and res.err == "", res
    text = res.out
    for name in SECTIONS:
        if name not in ("FAILED", "CANCELLED"):
            assert any(line.startswith(name + " (") for line in text.splitlines()), name
    # an empty section is not shown: the summary line counts it
    assert not any(line.startswith(("FAILED", "CANCELLED")) for line in text.splitlines())
    # the goal, its title and its progress: 1 of 3 tasks done
    goal = line_of(section(text, "GOALS"), ids["goal"])
    assert "Ship v1" in goal and "1/3" in goal and "█" in goal
    # who holds what, until when (in the local time zone)
    busy = line_of(section(text, "IN PROGRESS"), ids["busy"])
    assert "amy" in busy and "(until " in busy and "left" in busy and "EXPIRED" not in busy
    assert "web" in busy
    # what a todo task waits on, why a task is blocked, who reviews
    assert f"waits on {ids['busy']} (in_progress)" in line_of(section(text, "TODO"), ids["waits"])
    assert "reason: the runner is out of disk" in line_of(section(text, "BLOCKED"), ids["stuck"])
    assert "waiting for a reviewer; work by w2" in line_of(section(text, "IN REVIEW"), ids["review"])
    assert "Write the spec" in line_of(section(text, "DONE"), ids["done"])
    assert "LEASE" not in text.splitlines()[1]


def test_board_flags_expired_leases(kb, board):
    ids = sprint(board)
    later = int(time.time()) + 3600  # an hour on: amy's 10m lease has run out
    text = kb("board", env={"KANBAN_NOW": later}).out
    busy = line_of(section(text, "IN PROGRESS"), ids["busy"])
    assert "LEASE EXPIRED " in busy and "m ago" in busy
    assert "1 lease(s) EXPIRED" in text.splitlines()[1]
    # the board only reads: the task is still held until a claim or `lease reap`
    assert kb("show", ids["busy"]).json["status"] == "in_progress"


def test_board_filters_by_project_and_goal(kb, board):
    ids = sprint(board)
    text = kb("board", "--project", "ops").out
    assert ids["stuck"] in text and ids["busy"] not in text and "GOALS" not in text
    text = kb("board", "--goal", ids["goal"]).out
    assert text.startswith(f"goal {ids['goal']}: Ship v1")
    for key in ("goal", "done", "busy", "waits"):
        assert ids[key] in text
    assert ids["stuck"] not in text and ids["review"] not in text
    res = kb("board", "--goal", ids["stuck"])
    assert res.rc == 2 and res.out == "" and res.error["code"] == "invalid"
    res = kb("board", "--goal", "TASK-999")
    assert res.rc == 2 and res.error["code"] == "not_found"


def test_board_shows_the_last_closed_tasks_unless_all(kb, board):
    for number in range(12):
        task = board.create(f"chore {number}")["id"]
        board.complete(task, board.claim("w1", task)["lease_token"], agent="w1")
    text = kb("board").out
    assert len(section(text, "DONE")) == 11 and "… and 2 more (kanban list --status done)" in text
    text = kb("board", "--all").out
    assert len(section(text, "DONE")) == 12 and "more" not in text


def test_board_on_an_empty_board_and_without_one(kb, tmp_path):
    text = kb("board").out
    assert "The board is empty. Add the first task:" in text and 'kanban create "' in text
    assert "TODO" not in text and "(none)" not in text
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = run("board", cwd=elsewhere, env={"KANBAN_CEILING_DIRECTORIES": str(tmp_path)})
    assert res.rc == 2 and res.error["code"] == "not_found"


# -- kanban skill ---------------------------------------------------------------------

def test_skill_teaches_the_protocol(kb):
    res = kb("skill")
    assert res.rc == 0
    for needle in ("kanban claim --exit-code", "log-progress ID --token T", "complete ID --token T",
                   "--review", "lease_lost", "retryable", "block ID --token T"):
        assert needle in res.out, needle
    claude = kb("skill", "--harness", "claude").out
    assert claude.startswith("---\nname: kanban\n")
    assert kb("skill", "--list").out.split() == ["claude", "codex", "gemini", "pi", "generic"]
    res = kb("skill", "--harness", "emacs")
    assert res.rc == 2 and res.out == "" and res.error["code"] == "invalid"


def front_matter(text):
    import yaml

    assert text.startswith("---\n")
    head, _, body = text[4:].partition("\n---\n")
    return yaml.safe_load(head), body


def test_init_harness_puts_each_file_where_its_agent_reads(tmp_path):
    res = run("init", "--harness", "claude", "codex", "gemini", "pi", cwd=tmp_path)
    assert res.rc == 0, res
    files = {f["harness"]: f for f in res.json["harness_files"]}
    places = {"claude": ".claude/skills/kanban/SKILL.md", "codex": "AGENTS.md", "gemini": "GEMINI.md",
              "pi": ".pi/skills/kanban/SKILL.md"}
    for harness, place in places.items():
        assert files[harness] == {"harness": harness, "path": str(tmp_path / place), "action": "created"}
        assert (tmp_path / place).read_text() == run("skill", "--harness", harness).out
    for skill in (".claude/skills/kanban/SKILL.md", ".pi/skills/kanban/SKILL.md"):
        meta, body = front_matter((tmp_path / skill).read_text())
        assert meta["name"] == "kanban" == Path(skill).parent.name  # pi: the name is the folder's
        assert 20 < len(meta["description"]) <= 1024 and "\n" not in meta["description"]
        assert "kanban claim --exit-code" in body
    # each agent's own way of running a command, and its MCP route where it has one
    assert "Bash tool" in (tmp_path / places["claude"]).read_text()
    assert "[mcp_servers.kanban]" in (tmp_path / "AGENTS.md").read_text()
    assert "run_shell_command" in (tmp_path / "GEMINI.md").read_text()
    assert "`bash` tool" in (tmp_path / places["pi"]).read_text()
    for place in places.values():
        text = (tmp_path / place).read_text()
        for needle in ("heartbeat", "log-progress", "complete ID --token T", "block ID --token T",
                       "claim --for-review", "lease_lost", "event list", "batch claim", "Team boards"):
            assert needle in text, (place, needle)
    ignore = (tmp_path / ".kanban" / ".gitignore").read_text()
    assert res.json["gitignore"] == str(tmp_path / ".kanban" / ".gitignore")
    for pattern in ("*.db", "*.db-wal", "*.db-shm", "*.lock"):
        assert pattern in ignore.splitlines()


def test_each_agents_mcp_setup_is_the_one_its_documentation_gives():
    """The MCP setup each agent's text shows, checked against the agent's docs (cited in
    kanban-skill(1)): `codex mcp add NAME -- CMD...` and [mcp_servers.NAME] in
    config.toml; `gemini mcp add NAME CMD ARGS...` (project scope by default) and
    mcpServers in settings.json; pi's own MCP client reads mcpServers from
    ~/.pi/agent/mcp.json or a trusted project's .pi/mcp.json.  pi's text said pi had
    no MCP client, and Gemini's gave no command."""
    import json
    import re
    import tomllib

    def blocks(text, lang):
        return re.findall(rf"```{lang}\n(.*?)```", text, re.S)

    server = {"command": "kanban", "args": ["mcp"]}
    codex = run("skill", "--harness", "codex").out
    assert "`codex mcp add kanban -- kanban mcp`" in codex and "`.codex/config.toml`" in codex
    assert [tomllib.loads(b) for b in blocks(codex, "toml")] == [{"mcp_servers": {"kanban": server}}]
    gemini = run("skill", "--harness", "gemini").out
    assert "`gemini mcp add kanban kanban mcp`" in gemini and "`-s user`" in gemini
    assert [json.loads(b) for b in blocks(gemini, "json")] == [{"mcpServers": {"kanban": server}}]
    pi = run("skill", "--harness", "pi").out
    assert "`~/.pi/agent/mcp.json`" in pi and "`.pi/mcp.json`" in pi and "no MCP\nclient of its own" not in pi
    assert [json.loads(b) for b in blocks(pi, "json")] == [{"mcpServers": {"kanban": {**server, "exposure": "direct"}}}]


def test_the_skills_word_on_a_missing_token_is_the_error_an_agent_sees(tmp_path):
    """The skill file tells an agent how to tell a forgotten --token from a stale one by
    the error's own words: those words must be what kanban says."""
    import re

    quoted = re.search(r'\| `lease_lost` \| "([^"]+)"', run("skill", "--harness", "generic").out)
    assert quoted, "the skill's lease_lost row no longer quotes the missing-token error"
    db = str(tmp_path / "board.db")
    assert run("init", env={"KANBAN_DB": db}).rc == 0
    task = run("create", "t", env={"KANBAN_DB": db, "KANBAN_AGENT": "a"}).json["id"]
    claimed = run("claim", task, env={"KANBAN_DB": db, "KANBAN_AGENT": "w"})
    assert claimed.rc == 0
    res = run("block", task, "--reason", "r", env={"KANBAN_DB": db, "KANBAN_AGENT": "w"})
    assert res.rc == 2 and res.error["code"] == "lease_lost"
    assert res.error["error"].startswith(quoted.group(1)), (quoted.group(1), res.error["error"])
    # and what it says of log-progress: a note without --token, a renewal with it
    assert "without\n   `--token` it is only a note: the answer's `data` has no `lease_until`" in run(
        "skill", "--harness", "generic").out
    env = {"KANBAN_DB": db, "KANBAN_AGENT": "w"}
    token = str(claimed.json["lease_token"])
    assert "lease_until" not in run("log-progress", task, "--message", "m", env=env).json["data"]
    assert "lease_until" in run("log-progress", task, "--message", "m", "--token", token, env=env).json["data"]


def test_a_users_agents_md_survives_byte_for_byte(tmp_path):
    mine = "# My project\r\n\nUse tabs.  Trailing spaces stay.   \n\n\u00e9t\u00e9 \U0001f680\n"
    agents = tmp_path / "AGENTS.md"
    agents.write_bytes(mine.encode())
    first = run("init", "--harness", "generic", cwd=tmp_path)
    assert first.rc == 0 and first.json["harness_files"][0]["action"] == "updated"
    after_one = agents.read_bytes()
    assert after_one.startswith(mine.encode())
    assert after_one.count(b"<!-- BEGIN kanban") == 1 and after_one.count(b"<!-- END kanban -->") == 1
    again = run("init", "--harness", "generic", cwd=tmp_path)
    assert again.json["harness_files"][0]["action"] == "unchanged" and agents.read_bytes() == after_one
    # the user adds text after the block, and an old kanban wrote an older block: updated in place
    block_start = after_one.index(b"<!-- BEGIN kanban")
    old = after_one[:block_start] + b"<!-- BEGIN kanban: old -->\nold text\n<!-- END kanban -->\n" + \
        b"\n## My own notes after it\n"
    agents.write_bytes(old)
    res = run("init", "--harness", "codex", cwd=tmp_path)
    assert res.json["harness_files"][0]["action"] == "updated"
    now = agents.read_bytes()
    assert now.startswith(mine.encode()) and now.endswith(b"\n## My own notes after it\n")
    assert b"old text" not in now and b"[mcp_servers.kanban]" in now and now.count(b"<!-- BEGIN kanban") == 1


def test_a_block_whose_end_marker_the_user_deleted_never_takes_their_text(tmp_path):
    """The user cut kanban's block short (its END line gone) and wrote on after it: init
    appended a whole block, and the next init replaced everything from the cut block's
    BEGIN to the new block's END, the user's text in between included."""
    agents = tmp_path / "AGENTS.md"
    assert run("init", "--harness", "codex", cwd=tmp_path).rc == 0
    text = agents.read_text()
    agents.write_text("# mine\n" + text[:text.index("<!-- END kanban -->")] + "\n## My notes\nkeep me\n")
    assert run("init", "--harness", "codex", cwd=tmp_path).rc == 0
    agents.write_text(agents.read_text() + "\nmore of mine\n")
    before = agents.read_text()
    res = run("init", "--harness", "codex", cwd=tmp_path)
    assert res.json["harness_files"][0]["action"] == "unchanged" and agents.read_text() == before
    assert "keep me" in before and before.count("<!-- END kanban -->") == 1
    # the END marker quoted before any block is not a block's end either
    agents.write_text("# mine: kanban's block ends at <!-- END kanban -->\n")
    for _ in range(2):
        assert run("init", "--harness", "codex", cwd=tmp_path).rc == 0
        now = agents.read_text()
        assert now.startswith("# mine: kanban's block ends at <!-- END kanban -->\n")
        assert now.count("<!-- BEGIN kanban") == 1


def test_a_context_file_that_is_a_link_stays_a_link(tmp_path):
    """AGENTS.md and GEMINI.md as links to the user's CLAUDE.md (one file for every agent):
    init replaced each link by a file of its own, so CLAUDE.md never got the block and the
    user's later edits to it no longer reached Codex or Gemini.  Now the file behind the
    links gets one block, the links stay, and a second init changes nothing."""
    mine = "# Project rules\nBe nice.\n"
    (tmp_path / "CLAUDE.md").write_text(mine)
    for name in ("AGENTS.md", "GEMINI.md"):
        (tmp_path / name).symlink_to("CLAUDE.md")
    for _ in range(2):
        res = run("init", "--harness", "codex", "gemini", cwd=tmp_path)
        assert res.rc == 0, res
        for name in ("AGENTS.md", "GEMINI.md"):
            assert (tmp_path / name).is_symlink() and os.readlink(tmp_path / name) == "CLAUDE.md"
        text = (tmp_path / "CLAUDE.md").read_text()
        assert text.startswith(mine) and text.count("<!-- BEGIN kanban") == 1 and "[mcp_servers.kanban]" in text
    assert [f["action"] for f in res.json["harness_files"]] == ["unchanged", "unchanged"]


@pytest.mark.parametrize("link, harness", [
    ("AGENTS.md", ["codex"]), ("AGENTS.md", ["generic", "codex"]), ("GEMINI.md", ["gemini"]),
    (".claude", ["claude"]), (".pi/skills/kanban/SKILL.md", ["pi"]),
    (".kanban", []), (".kanban/board.db", []), (".kanban/.gitignore", []), (".kanban/.gitignore", ["codex"]),
])
def test_init_never_writes_through_a_link_to_nothing(tmp_path, link, harness):
    """A symbolic link whose target does not exist, on the way to a file init writes
    (AGENTS.md, a skill's folder, the board, its .gitignore): init wrote through it and
    created the file, and the folders, it names, here outside the project.  Now init
    refuses (`conflict`, naming the link and its target) and writes nothing at all."""
    project, outside = tmp_path / "project", tmp_path / "outside" / "named"
    (project / link).parent.mkdir(parents=True, exist_ok=True)
    (project / link).symlink_to(outside)
    before = sorted(project.rglob("*"))
    res = run("init", *(["--harness", *harness] if harness else []), cwd=project)
    assert res.rc == 2 and res.out == "" and res.error["code"] == "conflict", res
    assert res.error["link"] == str(project / link) and res.error["target"] == str(outside)
    assert f"{project / link} is a symbolic link to {outside}, which does not exist" in res.error["error"]
    assert not (tmp_path / "outside").exists() and sorted(project.rglob("*")) == before
    # a link to a folder or a user's file that exists is written through, as before
    if link in (".claude", ".kanban"):
        outside.mkdir(parents=True)
    elif link in ("AGENTS.md", "GEMINI.md", ".kanban/.gitignore"):
        outside.parent.mkdir()
        outside.write_text("# mine\n")
    else:
        return  # a SKILL.md or a board file kanban did not write: refused for that (tested elsewhere)
    assert run("init", *(["--harness", *harness] if harness else []), cwd=project).rc == 0
    if outside.is_file():
        assert outside.read_text().startswith("# mine\n")


def test_a_link_where_init_puts_its_temporary_file_is_not_followed(tmp_path):
    """init writes AGENTS.md.kanban-tmp, then renames it over AGENTS.md.  A link left
    (or planted) at that name was followed: the file it named, outside the project,
    got the block, and AGENTS.md became that link.  Now the name is made afresh."""
    project, outside = tmp_path / "project", tmp_path / "outside"
    project.mkdir()
    outside.write_text("precious\n")
    (project / "AGENTS.md.kanban-tmp").symlink_to(outside)
    res = run("init", "--harness", "codex", cwd=project)
    assert res.rc == 0, res
    assert outside.read_text() == "precious\n"
    agents = project / "AGENTS.md"
    assert not agents.is_symlink() and agents.read_text() == run("skill", "--harness", "codex").out
    assert not os.path.lexists(project / "AGENTS.md.kanban-tmp")


def test_the_gitignore_is_never_written_through_a_link_to_nothing(tmp_path):
    """`team start` in a folder without a board writes .kanban/.gitignore as init does:
    a link there to nothing is left alone, not followed."""
    from kanban.skill import write_gitignore

    (tmp_path / ".kanban").mkdir()
    (tmp_path / ".kanban" / ".gitignore").symlink_to(tmp_path / "named")
    assert write_gitignore(str(tmp_path / ".kanban")) is None
    assert not (tmp_path / "named").exists()


@pytest.mark.parametrize("location", ["sqlite:///.kanban/board.db", "file:.kanban/board.db"])
def test_agent_files_go_beside_a_board_named_by_a_uri(tmp_path, location):
    """KANBAN_DB=sqlite:///.kanban/board.db made the board in ./.kanban, but the agent
    files went into a folder named `sqlite:` (the location taken as a path)."""
    res = run("init", "--harness", "codex", env={"KANBAN_DB": location}, cwd=tmp_path)
    assert res.rc == 0, res
    assert res.json["harness_files"][0]["path"] == str(tmp_path / "AGENTS.md")
    assert (tmp_path / "AGENTS.md").is_file() and sorted(p.name for p in tmp_path.iterdir()) == [".kanban", "AGENTS.md"]


def test_kanbans_own_skill_files_are_refreshed_only_with_force(tmp_path):
    assert run("init", "--harness", "claude", cwd=tmp_path).rc == 0
    skill = tmp_path / ".claude" / "skills" / "kanban" / "SKILL.md"
    edited = skill.read_text() + "\nmy local addition\n"
    skill.write_text(edited)
    res = run("init", "--harness", "claude", cwd=tmp_path)
    assert res.json["harness_files"][0]["action"] == "kept" and skill.read_text() == edited
    res = run("init", "--harness", "claude", "--force", cwd=tmp_path)
    assert res.json["harness_files"][0]["action"] == "updated"
    assert skill.read_text() == run("skill", "--harness", "claude").out


def test_a_skill_file_kanban_did_not_write_is_never_replaced(tmp_path):
    mine = tmp_path / ".pi" / "skills" / "kanban" / "SKILL.md"
    mine.parent.mkdir(parents=True)
    mine.write_text("my own notes\n")
    for extra in ([], ["--force"]):
        res = run("init", "--harness", "claude", "pi", *extra, cwd=tmp_path)
        assert res.rc == 2 and res.error["code"] == "conflict"
        assert mine.read_text() == "my own notes\n"
        assert not (tmp_path / ".claude").exists() and not (tmp_path / ".kanban").exists()  # nothing written
    res = run("init", "--harness", "generic", "nope", cwd=tmp_path)
    assert res.rc == 2 and res.error["code"] == "invalid" and not (tmp_path / "AGENTS.md").exists()


# -- kanban completion --------------------------------------------------------------------

def test_completion_script_is_the_shipped_one(kb):
    res = kb("completion", "bash")
    assert res.rc == 0
    assert res.out == (ROOT / "lib" / "kanban" / "kanban.bash").read_text()
    assert kb("completion").out == res.out
    for shell in ("zsh", "fish"):
        assert kb("completion", shell).out == (ROOT / "lib" / "kanban" / f"kanban.{shell}").read_text()
    assert kb("completion", "tcsh").error["code"] == "usage"


def complete(kb, *words):
    """What bash offers for `words` (the last one being completed)."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    code = (f"source {ROOT / 'lib' / 'kanban' / 'kanban.bash'}\n"
            f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _kanban\n"
            'printf "%s\\n" "${COMPREPLY[@]}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update(KANBAN_DB=str(kb.path), PATH=f"{ROOT / 'bin'}:{env['PATH']}")
    proc = subprocess.run(["bash", "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return sorted(proc.stdout.split())


def test_completion_offers_verbs_options_values_and_ids(kb):
    task = kb("create", "x").json["id"]
    assert complete(kb, "kanban", "cl") == ["claim", "claim-next"]
    assert {"board", "work", "review", "log-progress"} <= set(complete(kb, "kanban", ""))
    assert complete(kb, "kanban", "work", "--on") == ["--once"]
    assert complete(kb, "kanban", "list", "--status", "=", "in") == ["in_progress", "in_review"]
    assert complete(kb, "kanban", "lease", "") == ["reap", "release", "renew"]
    assert complete(kb, "kanban", "show", "") == [task]
    assert complete(kb, "kanban", "skill", "--harness", "c") == ["claude", "codex"]


def test_board_as_json_and_markdown(kb, board):
    import json

    from jsonschema import Draft202012Validator

    ids = sprint(board)
    doc = kb("board", "--format", "json").json
    schema = json.loads((ROOT / "schemas" / "kanban-board.schema.json").read_text())
    Draft202012Validator(schema).validate(doc)
    assert doc["at"].endswith("Z") and doc["counts"]["in_progress"] == 1
    review = next(c for c in doc["columns"] if c["status"] == "in_review")["tasks"][0]
    assert review["id"] == ids["review"] and review["worked_by"] == ["w2"]
    assert doc["goals"][0]["title"] == "Ship v1" and doc["goals"][0]["progress"]["done"] == 1
    text = kb("board", "--format", "markdown").out
    assert "## In progress (1)" in text and f"| {ids['busy']} | 3 | Build it | web | amy |" in text
    assert "\x1b" not in text
    assert kb("board", "--format", "yaml").error["code"] == "invalid"
    assert kb("board", "--color=sometimes").error["code"] == "invalid"


def test_board_of_an_unknown_project_says_so(kb, board):
    sprint(board)
    res = kb("board", "--project", "wbe")
    assert res.rc == 2 and res.error["code"] == "not_found"
    assert res.error["error"] == "no project 'wbe' on this board (did you mean 'web'?)"
    assert kb("board", "--project", "ops").rc == 0


def test_board_caps_long_sections(kb):
    import json

    lines = "\n".join(json.dumps({"title": f"chore {n}"}) for n in range(30))
    kb("create", "--stdin", input=lines)
    text = kb("board").out
    assert len(section(text, "TODO")) == 21 and section(text, "TODO")[-1].strip() == \
        "… and 10 more (kanban list --status todo)"
    assert len(section(kb("board", "--all").out, "TODO")) == 30


def test_the_work_loops_progress_shows_control_characters_escaped(kb):
    kb("create", "evil \x1b]52;c;aGk=\x07 title")
    res = kb("work", "--once", "--", "true", agent="w1")
    assert res.rc == 0, res
    assert "claimed TASK-1: evil \\x1b]52;c;aGk=\\x07 title" in res.err
    assert "\x1b" not in res.err and "\x07" not in res.err
