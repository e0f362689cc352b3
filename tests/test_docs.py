"""The manual and the tree: tests/check_tree.py's checks, one test per verb, and more.

- each command file has its header, man page, schema and a test naming it
  (porcelain pages are checked once they exist; `make check` insists on them);
- every page renders through groff (as `man -l` does) without a warning;
- `kanban help VERB` runs man even into a pipe, and prints the usage text where man cannot.

The examples of every page run in tests/test_doc_examples.py, each command checked
for the exit status its page gives it.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_tree  # noqa: E402
from check_tree import Tree, normalise, read_header, roff_text, usage_lines  # noqa: E402

ROOT = check_tree.ROOT
TREE = Tree(ROOT)
VERBS = TREE.verbs()
PLUMBING = [verb for verb, kind, _ in VERBS if kind == "plumbing"]
PATHS = {verb: path for verb, _, path in VERBS}
PAGES = sorted(
    os.path.relpath(os.path.join(folder, name), ROOT)
    for folder in (os.path.join(ROOT, "man", "man1"), os.path.join(ROOT, "man", "man7"))
    if os.path.isdir(folder)
    for name in os.listdir(folder) if re.search(r"\.[1-8]$", name)
)
ALIASES = TREE.aliases() or {}


def test_the_tree_has_the_core_verbs():
    # the SPEC's plumbing list: a missing file would otherwise just shrink the parameters
    expected = {"init", "create", "claim", "lease", "event", "dep", "complete", "approve", "reject",
                "block", "unblock", "cancel", "reopen", "show", "list", "search", "comment", "set",
                "batch", "stats", "prune", "doctor", "backup", "move", "limit"}
    assert expected <= set(PLUMBING)


# -- the tree checks, per verb ------------------------------------------------------

@pytest.mark.parametrize("verb", sorted(PATHS))
def test_command_file_has_summary_and_usage(verb):
    assert TREE.header_problems(PATHS[verb]) == []


@pytest.mark.parametrize("verb", sorted(PATHS))
def test_man_page_synopsis_is_the_usage_text(verb):
    # plumbing and porcelain alike: every verb has its page (make check insists on it too)
    assert TREE.man_problems(verb, PATHS[verb]) == []


def test_kanban_1_synopsis_is_the_dispatchers_usage():
    # kanban(1) is the dispatcher's page: its SYNOPSIS shows the usage lines bin/kanban prints
    from kanban import dispatch

    secs = check_tree.sections(check_tree.read_page(os.path.join(ROOT, "man", "man1", "kanban.1")))
    shown = normalise(check_tree.section_text_lines(secs["SYNOPSIS"]))
    usages = normalise([dispatch.USAGE.split(":", 1)[1], "kanban commands [--format=json|table]"])
    assert shown[:len(usages)] == usages
    proc = subprocess.run([os.path.join(ROOT, "bin", "kanban"), "commands", "--bogus"], capture_output=True,
                          text=True, env=_clean_env(), timeout=60)
    assert "usage: " + usages[1] in proc.stderr


@pytest.mark.parametrize("verb", PLUMBING)
def test_plumbing_verb_has_a_schema(verb):
    assert TREE.schema_problems(verb) == []


@pytest.mark.parametrize("verb", sorted(PATHS))
def test_verb_is_named_in_a_test(verb):
    assert TREE.tested_problems(verb) == []


def test_command_list_lists_exactly_the_verbs_and_aliases():
    assert TREE.command_list_problems() == []


def test_no_page_is_missing_or_stale():
    assert TREE.page_problems() == []


def test_command_list_agrees_with_kanban_commands():
    listed, aliases, problems = TREE.command_list()
    assert problems == []
    proc = subprocess.run([os.path.join(ROOT, "bin", "kanban"), "commands"], capture_output=True,
                          text=True, env=_clean_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    import json

    answer = json.loads(proc.stdout)["commands"]
    present = {c["name"]: c["kind"] for c in answer}
    assert {v: k for v, k in listed.items() if v in present} == present
    for command in answer:
        # the summary `kanban commands` prints is the one the man page's NAME repeats
        assert command["summary"] == read_header(PATHS[command["name"]])[0]
        assert sorted(command["aliases"]) == sorted(a for a, (v, _) in aliases.items()
                                                    if v == command["name"])


def test_kanban_1_lists_every_verb_with_its_summary():
    # kanban(1)'s COMMANDS: one entry per verb, under its kind, saying its # Summary: line
    secs = check_tree.sections(check_tree.read_page(os.path.join(ROOT, "man", "man1", "kanban.1")))
    body = secs["COMMANDS"]
    entries, kind = {}, None
    for number, line in enumerate(body):
        if line.startswith(".SS"):
            kind = {"Plumbing": "plumbing", "Porcelain": "porcelain"}[line[3:].strip()]
        match = re.fullmatch(r"\.BR (?:\\%)?kanban\\-([a-z-]+) \(1\)", line)
        if match:
            entries[match.group(1).replace("\\-", "-")] = (kind, roff_text(body[number + 1]))
    listed, _aliases, _problems = TREE.command_list()
    assert {verb: kind for verb, (kind, _) in entries.items()} == listed
    for verb, (_kind, text) in entries.items():
        if verb in PATHS:
            assert text.rstrip(".") == read_header(PATHS[verb])[0].rstrip("."), verb


# -- the checker itself ----------------------------------------------------------------

def test_roff_text_drops_escapes():
    assert roff_text(r"kanban claim [\-\-agent=A] \fB\-\-exit\-code\fR") == \
        "kanban claim [--agent=A] --exit-code"
    assert roff_text(r"jq \(aq.id\(aq \e\&") == "jq '.id' \\"
    assert roff_text(r"\[u2014] \(em \f(CWx\fP") == "\u2014 \u2014 x"


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, mode)


def _scratch_tree(root, synopsis):
    _write(os.path.join(root, "libexec", "kanban-frob"),
           "#!/bin/sh\n# Summary: Frob a task\n#\n# Usage:\n#   kanban frob ID [--hard]\n"
           "#              [--agent=A]\n#\n# Options:\n#   --hard   Harder.\necho '{}'\n", 0o755)
    _write(os.path.join(root, "man", "man1", "kanban-frob.1"),
           '.TH KANBAN\\-FROB 1\n.SH NAME\nkanban\\-frob \\- Frob a task\n.SH SYNOPSIS\n.nf\n'
           + synopsis + "\n.fi\n.SH DESCRIPTION\nFrobs.\n")
    _write(os.path.join(root, "man", "man1", "kanban.1"), ".TH KANBAN 1\n")
    _write(os.path.join(root, "man", "man7", "kanban-workflow.7"), ".TH KANBAN\\-WORKFLOW 7\n")
    _write(os.path.join(root, "schemas", "kanban-frob.schema.json"), '{"type": "object"}\n')
    _write(os.path.join(root, "tests", "test_frob.py"), 'def test_frob(kb):\n    kb("frob", "TASK-1")\n')
    _write(os.path.join(root, "command-list.txt"), "# verbs\nkanban-frob  plumbing\n")


def test_check_tree_passes_a_good_tree(tmp_path):
    _scratch_tree(str(tmp_path), "kanban frob ID [\\-\\-hard]\n       [\\fB\\-\\-agent\\fR=A]")
    assert Tree(str(tmp_path)).problems() == []
    assert check_tree.main([str(tmp_path)]) == 0


def test_check_tree_reports_every_problem(tmp_path, capsys):
    root = str(tmp_path)
    _scratch_tree(root, "kanban frob ID [\\-\\-soft]\n[\\-\\-agent=A]")
    os.chmod(os.path.join(root, "libexec", "kanban-frob"), 0o644)
    os.remove(os.path.join(root, "schemas", "kanban-frob.schema.json"))
    os.remove(os.path.join(root, "tests", "test_frob.py"))
    _write(os.path.join(root, "porcelain", "kanban-zap"), "#!/bin/sh\necho zap\n", 0o755)
    _write(os.path.join(root, "man", "man1", "kanban-gone.1"), ".TH KANBAN\\-GONE 1\n")
    assert check_tree.main([root]) == 1
    out = capsys.readouterr().out
    assert "libexec/kanban-frob: is not executable" in out
    assert "SYNOPSIS line 1 differs" in out and "kanban frob ID [--soft]" in out
    assert "has no schema schemas/kanban-frob.schema.json" in out
    assert "libexec/kanban-frob: is named in no test" in out
    assert "porcelain/kanban-zap: has no '# Summary:' line" in out
    assert "porcelain/kanban-zap: has no '# Usage:' block" in out
    assert "porcelain/kanban-zap: has no man page man/man1/kanban-zap.1" in out
    assert "command-list.txt does not list kanban-zap (porcelain)" in out
    assert "man/man1/kanban-gone.1 documents kanban-gone, which does not exist" in out


def test_check_tree_wants_synopsis_lines_in_a_nf_block(tmp_path):
    root = str(tmp_path)
    _scratch_tree(root, "kanban frob ID [\\-\\-hard]\n[\\-\\-agent=A]")
    page = os.path.join(root, "man", "man1", "kanban-frob.1")
    with open(page, encoding="utf-8") as handle:
        text = handle.read().replace(".nf\n", "").replace(".fi\n", "")
    _write(page, text)
    problems = Tree(root).problems()
    assert problems == ["libexec/kanban-frob: man/man1/kanban-frob.1 SYNOPSIS is not in a .nf/.fi block"
                        " (its lines would be filled together)"]


def test_check_tree_compares_name_and_aliases(tmp_path):
    root = str(tmp_path)
    _scratch_tree(root, "kanban frob ID [\\-\\-hard]\n[\\-\\-agent=A]")
    page = os.path.join(root, "man", "man1", "kanban-frob.1")
    with open(page, encoding="utf-8") as handle:
        _write(page, handle.read().replace("Frob a task", "Frobnicate"))
    _write(os.path.join(root, "lib", "kanban", "dispatch.py"),
           'ALIASES = {"zz": ("frob", ["--hard"]), "yy": ("frob", [])}\n')
    _write(os.path.join(root, "command-list.txt"),
           "kanban-frob  plumbing\nalias zz frob\nalias xx nothing\n")
    problems = "\n".join(Tree(root).problems())
    assert "NAME is 'kanban-frob - Frobnicate', expected 'kanban-frob - Frob a task'" in problems
    assert "alias zz is frob, the dispatcher runs frob --hard" in problems
    assert "does not list the alias yy" in problems
    assert "alias xx names nothing, which is not a verb" in problems


# -- rendering -------------------------------------------------------------------------

def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KANBAN_")}
    env.update(extra)
    return env


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_without_warnings(page):
    path = os.path.join(ROOT, page)
    if shutil.which("groff"):
        proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", path], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    if shutil.which("man"):
        proc = subprocess.run(["man", "--warnings", "-l", path], capture_output=True, text=True,
                              env=_clean_env(MANWIDTH="80", MANPAGER="cat", PAGER="cat"), timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == "", proc.stderr
        name = os.path.basename(page).rsplit(".", 1)[0]
        assert "NAME" in proc.stdout and name in proc.stdout.replace("\u2010", "-")
    _lint(path)


KNOWN_MACROS = {
    "TH", "SH", "SS", "TP", "TQ", "PP", "P", "LP", "IP", "HP", "RS", "RE", "B", "I", "BR", "RB", "BI",
    "IB", "IR", "RI", "SM", "SB", "nf", "fi", "br", "sp", "EX", "EE", "UR", "UE", "MT", "ME", "ad", "nr",
    "na", "nh", "hy", "in", "ti", "ne", "ft", "TS", "TE", "ll", "ds", "de", "..", "if", "ie", "el",
}


def _lint(path):
    """What any formatter needs: known macros, .nf/.fi and .EX/.EE and .RS/.RE paired,
    no '\\"' (a comment) inside text, a .TH first, NAME and SYNOPSIS present."""
    lines = check_tree.read_page(path)
    requests = [line for line in lines if line.startswith(".") and not line.startswith('.\\"')]
    assert requests and requests[0].startswith(".TH "), "a page starts with .TH"
    table = False
    for number, line in enumerate(lines, 1):
        if line.startswith(".TS"):
            table = True
        elif line.startswith(".TE"):
            table = False
        if line.startswith(".") and not line.startswith('.\\"') and not table:
            name = line[1:].split(None, 1)[0] if line[1:].strip() else ""
            assert name in KNOWN_MACROS, f"{path}:{number}: unknown macro {line!r}"
        if not line.startswith(('.\\"', "'")):
            assert '\\"' not in line.replace("\\\\", ""), f"{path}:{number}: \\\" starts a comment"
        assert line == line.rstrip(), f"{path}:{number}: trailing whitespace"
    for start, end in (("nf", "fi"), ("EX", "EE"), ("RS", "RE"), ("TS", "TE")):
        opened = sum(1 for line in lines if re.match(rf"\.{start}\b", line))
        closed = sum(1 for line in lines if re.match(rf"\.{end}\b", line))
        assert opened == closed, f"{path}: .{start} and .{end} do not pair ({opened} vs {closed})"
    secs = check_tree.sections(lines)
    assert "NAME" in secs and "SYNOPSIS" in secs


# -- what the pages say a verb reads and takes -----------------------------------------

# the module that reads a porcelain verb's environment (variables of kanban(1) aside)
ENV_MODULES = {"board": "boardview.py", "completion": "completion.py", "mcp": "mcp.py", "plan": "plan.py",
               "review": "work.py", "serve": "serve.py", "sprint": "sprint.py", "team": "team.py",
               "work": "work.py"}
NOT_READ = {("review", "KANBAN_ROLE")}  # work.py reads it for workers only: a review has no --role


def _section(verb, name):
    page = os.path.join(ROOT, "man", "man1", f"kanban-{verb}.1")
    secs = check_tree.sections(check_tree.read_page(page))
    return "\n".join(roff_text(line) for line in secs.get(name, []))


@pytest.mark.parametrize("verb", sorted(ENV_MODULES))
def test_environment_names_what_the_verb_reads(verb):
    with open(os.path.join(ROOT, "lib", "kanban", ENV_MODULES[verb]), encoding="utf-8") as handle:
        code = handle.read()
    read = set(re.findall(r'env_or\(args, "[^"]+", "(\w+)"\)', code))
    read |= set(re.findall(r'environ(?:\.get\(|\[)"([A-Z][A-Z0-9_]+)"', code))
    assert read, f"{ENV_MODULES[verb]} reads no variable: the table is stale"
    shown = _section(verb, "ENVIRONMENT")
    assert sorted(name for name in read - {n for v, n in NOT_READ if v == verb}
                  if not re.search(rf"\b{name}\b", shown)) == []


def test_every_variable_the_code_reads_is_in_an_environment_section():
    # kanban(1) for the ones every command reads, a verb's page for its own
    read = set()
    for folder, _, names in os.walk(os.path.join(ROOT, "lib", "kanban")):
        for name in names:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), encoding="utf-8") as handle:
                    code = handle.read()
                for found in re.findall(r'environ(?:\.get\(|\[)\s*"([A-Z][A-Z0-9_]+)"|getenv\("([A-Z][A-Z0-9_]+)"|'
                                        r'env_or\(args, "[^"]+", "([A-Z][A-Z0-9_]+)"\)', code):
                    read |= {variable for variable in found if variable}
    shown = "\n".join(roff_text(line) for page in PAGES
                      for line in check_tree.sections(check_tree.read_page(os.path.join(ROOT, page)))
                      .get("ENVIRONMENT", []))
    assert len(read) > 20
    assert sorted(v for v in read if not re.search(rf"\b{v}\b", shown)) == []


@pytest.mark.parametrize("verb", PLUMBING)
def test_errors_lists_what_every_verb_can_answer(verb):
    # any command line can fail to parse, and every verb but init needs a board
    listed = set(re.findall(r"\b[a-z_]+\b", _section(verb, "ERRORS")))
    assert {"usage"} | ({"not_found"} if verb != "init" else set()) <= listed


# the plumbing a team board's gate may refuse (SPEC §6: every write by a caller not on the team)
GATED = ["approve", "batch", "block", "cancel", "claim", "comment", "complete", "create", "dep", "event", "lease",
         "limit", "move", "prune", "reject", "reopen", "set", "unblock"]


@pytest.mark.parametrize("verb", GATED)
def test_errors_of_a_gated_verb_list_forbidden(verb):
    assert re.search(r"\bforbidden\b", _section(verb, "ERRORS"))


@pytest.mark.parametrize("verb", sorted(PATHS))
def test_options_describes_every_option_of_the_usage(verb):
    usage = " ".join(read_header(PATHS[verb])[1])
    options = set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", usage))
    described = _section(verb, "OPTIONS")
    assert sorted(o for o in options if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", described)) == []


# -- kanban help -------------------------------------------------------------------------

def _help(*args, man=True):
    """`kanban help ARGS` into a pipe; man=False puts first on PATH a man that cannot show any
    page (as where groff is missing), so the usage text stands in."""
    env = _clean_env()
    if not man:
        import tempfile

        fake = tempfile.mkdtemp(prefix="kanban-no-man-")
        with open(os.path.join(fake, "man"), "w", encoding="utf-8") as handle:
            handle.write("#!/bin/sh\necho 'man: cannot format' >&2\nexit 3\n")
        os.chmod(os.path.join(fake, "man"), 0o755)
        env["PATH"] = fake + os.pathsep + env.get("PATH", "")
    try:
        return subprocess.run([os.path.join(ROOT, "bin", "kanban"), "help", *args], capture_output=True,
                              text=True, env=env, stdin=subprocess.DEVNULL, timeout=60)
    finally:
        if not man:
            shutil.rmtree(fake, ignore_errors=True)


@pytest.mark.parametrize("verb", sorted(PATHS))
def test_help_prints_the_usage_where_man_cannot(verb):
    proc = _help(verb, man=False)
    assert proc.returncode == 0, proc.stderr
    usage = normalise(usage_lines(read_header(PATHS[verb])[1]))
    shown = normalise(proc.stdout.splitlines())
    assert shown[0].lower() == "usage:"
    assert shown[1:1 + len(usage)] == usage


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_help_of_an_alias_is_the_verbs(alias):
    verb = ALIASES[alias][0]
    assert _help(alias).stdout == _help(verb).stdout != ""
    assert _help(alias, man=False).stdout == _help(verb, man=False).stdout != ""


@pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed")
def test_help_into_a_pipe_is_the_man_page():
    """As `git help VERB | cat`: the page, plain (SPEC: `kanban help VERB` opens `man kanban-VERB`)."""
    proc = _help("claim")
    assert proc.returncode == 0 and proc.stderr == "", proc
    assert proc.stdout.split()[0] == "KANBAN-CLAIM(1)" and "SYNOPSIS" in proc.stdout and "--wait" in proc.stdout


def test_help_of_an_unknown_verb_is_a_usage_error():
    proc = _help("no-such-verb")
    assert proc.returncode == 2 and proc.stdout == ""
    assert '"code": "usage"' in proc.stderr
