"""Errors and help as git's: usage mistakes named in plain words with the verb's usage,
near misses of verbs, subcommands and options hinted, the verbs grouped (SPEC §1, §3)."""
import json

import pytest
from conftest import assert_error, run

CASES = [
    (["complete", "TASK-1", "--summary", "done"], "kanban complete: missing --token", None),
    (["complete", "TASK-1", "--token", "3", "extra"], "kanban complete: unexpected argument 'extra'", None),
    (["list", "--stauts", "todo"], "kanban list: unknown option --stauts (did you mean --status?)",
     "did you mean --status?"),
    (["create", "Fix", "the", "bug"], "kanban create: unexpected arguments 'the', 'bug'",
     'quote a title that has spaces: "Fix the bug"'),
    (["lease", "renw", "TASK-1"], "kanban lease: unknown subcommand 'renw' (one of reap, release, renew)",
     "did you mean 'renew'?"),
    (["lease"], "kanban lease: missing subcommand: one of reap, release, renew", None),
    (["create"], "kanban create: missing TITLE", None),
    (["dep", "add"], "kanban dep: missing ID and DEP", None),
    (["move", "TASK-1"], "kanban move: missing COLUMN", None),
    (["list", "--status"], "kanban list: option --status needs a value (--status=S)", None),
    (["list", "--ready=yes"], "kanban list: option --ready takes no value", "write --ready alone"),
    (["claim", "-x"], "kanban claim: unknown option -x", None),
    (["work", "--agent", "w1"], "kanban work: missing the command to run: -- CMD...", None),
    # the command without its --: said so, not an unknown option of the command's own (-c)
    (["work", "--agent", "w1", "--once", "sh", "-c", "exit 0"],
     "kanban work: the command to run goes after --: kanban work ... -- sh", None),
    (["review", "--agent", "r1", "true"], "kanban review: the command to run goes after --: kanban review ... -- true",
     None),
    (["reject", "TASK-1", "nope"], "kanban reject: unexpected argument 'nope'", None),
    (["lease", "renew"], "kanban lease: missing ID and --token", None),
    (["mcp", "token"], "kanban mcp: missing subcommand: one of add, list, revoke", None),
    (["mcp", "token", "revok", "3"], "kanban mcp: unknown subcommand 'revok' (one of add, list, revoke)",
     "did you mean 'revoke'?"),
    (["set", "TASK-1", "--review", "--no-review"],
     "kanban set: options --no-review and --review cannot be used together", None),
    (["claim", "--for-review", "--project", "p"],
     "kanban claim: options --for-review and --project cannot be used together", None),
    (["create", "x", "--priority", "1", "--priority=2"], "kanban create: option --priority given more than once",
     None),
]


@pytest.mark.parametrize("args,message,hint", CASES, ids=[" ".join(c[0]) for c in CASES])
@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_a_usage_mistake_in_plain_words(kb, tmp_path, args, message, hint, cache):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    if cache == "warm":  # the argument cache has seen this shape: its placeholders must not leak
        kb(*args, env=env)
    doc = assert_error(kb(*args, env=env), "usage")
    assert doc["error"] == message
    assert doc.get("hint") == hint
    assert doc["usage"].startswith("Usage:\n  kanban " + args[0])
    assert "@kanban-value" not in json.dumps(doc) and "Argument(" not in json.dumps(doc)


@pytest.mark.parametrize("typo,verb", [("clam", "claim"), ("boad", "board"), ("comlete", "complete")])
def test_a_misspelt_verb_gets_did_you_mean(typo, verb):
    doc = assert_error(run(typo), "usage")
    assert doc["error"] == f"'{typo}' is not a kanban command (did you mean '{verb}'?)"
    assert doc["hint"] == f"did you mean '{verb}'?"
    doc = assert_error(run("help", typo), "usage")
    assert doc["hint"] == f"did you mean '{verb}'?"


@pytest.mark.parametrize("typo,option", [("--verison", "--version"), ("--exec-pat", "--exec-path"),
                                         ("-v", None), ("--frob", None)])
def test_an_unknown_option_of_kanban_itself_is_named_an_option(typo, option):
    # an option before the verb is not a command: it reads as git's 'unknown option'
    doc = assert_error(run(typo), "usage")
    hint = f"did you mean {option}?" if option else None
    assert doc["error"] == f"unknown option {typo}" + (f" ({hint})" if hint else "; see 'kanban help'")
    assert doc.get("hint") == hint and doc["option"] == typo and "verb" not in doc
    assert doc["usage"].startswith("usage: kanban ")


def test_no_near_miss_says_where_to_look():
    doc = assert_error(run("xyzzy"), "usage")
    assert "hint" not in doc and "kanban help" in doc["error"]


def test_help_groups_the_verbs_with_their_summaries():
    res = run("--help")
    assert res.rc == 0
    out = res.out
    plumbing, porcelain, aliases = (out.index(h) for h in ("Plumbing", "Porcelain", "Aliases"))
    assert plumbing < porcelain < aliases
    assert "   move " in out[plumbing:porcelain] and "   board " in out[porcelain:aliases]
    assert "   heartbeat      lease renew" in out[aliases:]
    assert "Move a card by hand to another column" in out
    assert all(len(line) <= 100 for line in out.splitlines())
    bare = run()
    assert bare.rc == 1 and bare.out == out
    assert run("help").out == out and run("help", "commands").out == out
    # `help help` (as `git help help`): the same; it was "'help' is not a kanban command (did you
    # mean 'help'?)"
    again = run("help", "help")
    assert again.rc == 0 and again.out == out and again.err == ""


def test_help_workflow_opens_the_guide():
    res = run("help", "workflow")
    assert res.rc == 0 and "kanban-workflow" in res.out and "Traceback" not in res.err


def test_commands_as_a_table():
    res = run("commands", "--format", "table")
    assert res.rc == 0
    lines = res.out.splitlines()
    assert lines[0].split() == ["verb", "kind", "summary", "aliases"]
    assert any(line.startswith("claim ") and "plumbing" in line and "claim-next" in line for line in lines)
    assert json.loads(run("commands", "--format=json").out)["commands"]
    assert_error(run("commands", "--format", "yaml"), "invalid")
    assert_error(run("commands", "extra"), "usage")


@pytest.mark.parametrize("args, option", [
    (["standup", "--since", "soon"], "--since"),
    (["board", "--watch=soon"], "--watch"),
    (["claim", "--agent", "w1", "--wait", "soon"], "--wait"),
    (["prune", "--before", "soon"], "--before"),
])
def test_a_bad_duration_names_its_option(kb, args, option):
    # 'bad since' or 'bad watch' left the reader to guess which option was meant
    res = kb(*args)
    error = assert_error(res, "invalid")
    assert error["error"].startswith(f"bad {option} 'soon'"), error


def test_double_dash_ends_the_options_as_in_git(kb):
    """`--` ends the options (git, POSIX): what follows is a value even when it starts with a
    dash.  `kanban create -- -x` said "unexpected argument '-x'": docopt takes `--` only
    where a usage text declares it, and no plumbing verb's does."""
    made = kb("create", "--priority", "4", "--", "-1 is a title", agent="w1").json
    assert made["title"] == "-1 is a title" and made["priority"] == 4
    assert kb("create", "--", "--help", agent="w1").json["title"] == "--help"
    assert kb("create", "--", "plain", agent="w1").json["title"] == "plain"
    tid = made["id"]
    assert kb("comment", tid, "--", "-1 from me", agent="w1").json["body"] == "-1 from me"
    assert kb("event", "log", tid, "--", "--- half way", agent="w1").json["data"]["message"] == "--- half way"
    assert [t["id"] for t in kb("search", "--", "-1", agent="w1").json["tasks"]] == [tid]
    assert kb("show", "--", tid).json["id"] == tid
    before = kb("list").out
    doc = assert_error(kb("create", "--", agent="w1"), "usage")
    assert doc["error"] == "kanban create: missing TITLE", doc
    doc = assert_error(kb("create", "--", "-a", "-b", agent="w1"), "usage")
    assert doc["error"] == "kanban create: unexpected arguments '-a', '-b'", doc
    assert kb("list").out == before
