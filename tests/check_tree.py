#!/usr/bin/env python3
"""`make check`: the tree keeps the promises git's own checks keep.

- Every file in libexec/ (plumbing) and porcelain/ is named kanban-VERB, is
  executable, and starts with `# Summary:` and `# Usage:` comments (what `kanban
  help` and `kanban commands` read).
- Every verb has man/man1/kanban-VERB.1 whose NAME is `kanban-VERB \\- <summary>` and
  whose SYNOPSIS, in a .nf/.fi block, is the file's usage text line for line (roff
  escapes and runs of whitespace do not count).  No page outlives its command.
- Every plumbing verb has schemas/kanban-VERB.schema.json (valid JSON).
- Every verb is named in some test: tests/test_*.py (as a string, e.g. "claim") or
  tests/t*.bats (as `kanban claim`).
- command-list.txt lists exactly the verbs present, each with its kind, and exactly
  the dispatcher's aliases (lib/kanban/dispatch.py ALIASES).
- man/man1/kanban.1 and man/man7/kanban-workflow.7 exist.

Usage: python tests/check_tree.py [ROOT]
Prints every problem, one a line, and exits 1 if there is any; 0 and a count otherwise.
Plain Python, no dependencies: it must run before anything is installed.
"""
import ast
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))
from kanban import cli  # noqa: E402 - the same header reader the commands use

FOLDERS = (("plumbing", "libexec"), ("porcelain", "porcelain"))
KINDS = tuple(kind for kind, _ in FOLDERS)
# tests that cover every verb generically (this check's own wrappers) do not count
GENERIC_TESTS = ("test_docs.py",)


# -- command files ----------------------------------------------------------------

def read_header(path):
    """(summary or None, help lines): the comment block kanban.cli itself reads."""
    summary, _usage, help_text = cli.read_header(path)
    return summary or None, help_text.splitlines()


def usage_lines(help_lines):
    """The usage block's lines without the `Usage:` label, or None when there is none."""
    out, inside = [], False
    for line in help_lines:
        if not inside:
            if line.lower().startswith("usage:"):
                inside = True
                rest = line[len("usage:"):]
                if rest.strip():
                    out.append(rest)
            continue
        if not line.strip():
            break
        out.append(line)
    return out if inside else None


def normalise(lines):
    """Whitespace runs become one space; blank lines go."""
    out = []
    for line in lines:
        text = " ".join(line.split())
        if text:
            out.append(text)
    return out


# -- roff ---------------------------------------------------------------------------

# named characters a page may use in code and synopses
ROFF_CHARS = {
    "aq": "'", "dq": '"', "ga": "`", "ha": "^", "ti": "~", "rs": "\\", "em": "\u2014",
    "en": "\u2013", "hy": "-", "mi": "-", "lq": "\u201c", "rq": "\u201d", "oq": "\u2018",
    "cq": "\u2019", "bu": "\u2022", "->": "\u2192", "<-": "\u2190", "co": "\u00a9",
    "ba": "|", "or": "|", "sl": "/", "at": "@", "sh": "#", "Do": "$", "lB": "[", "rB": "]",
    "lC": "{", "rC": "}", "la": "\u27e8", "ra": "\u27e9", "ua": "\u2191", "da": "\u2193",
    "u2500": "\u2500", "u2502": "\u2502", "u2514": "\u2514", "u251C": "\u251c",
}
_ESCAPE = re.compile(
    r"\\(?:"
    r"f(?:\[[^\]]*\]|\(..|.)"          # font change
    r"|\((..)"                         # \(xx
    r"|\[([^\]]*)\]"                   # \[name]
    r"|(s[+-]?\d+)"                    # size change
    r"|(.))",                          # one-character escapes
    re.DOTALL,
)
_ONE_CHAR = {"-": "-", "e": "\\", "\\": "\\", "&": "", "|": "", "^": "", " ": " ", "~": " ",
             "0": " ", "c": "", "%": "", ":": "", ".": ".", "'": "'", "`": "`", "/": "", ",": ""}


def roff_text(line):
    """One line of roff text without its escapes, as a reader sees it."""
    def replace(match):
        two, name, size, one = match.groups()
        if two is not None:
            return ROFF_CHARS.get(two, "")
        if name is not None:
            if name in ROFF_CHARS:
                return ROFF_CHARS[name]
            if re.fullmatch(r"u[0-9A-Fa-f]{4,6}", name):
                return chr(int(name[1:], 16))
            return ""
        if size is not None:
            return ""
        if one is not None:
            return _ONE_CHAR.get(one, one)
        return ""  # a font change
    return _ESCAPE.sub(replace, line)


def macro_args(rest):
    """A macro line's arguments, with roff's double-quote rules."""
    args, current, quoted, i = [], "", False, 0
    had = False
    while i < len(rest):
        ch = rest[i]
        if quoted:
            if ch == '"':
                if rest[i + 1:i + 2] == '"':
                    current += '"'
                    i += 1
                else:
                    quoted = False
            else:
                current += ch
        elif ch == '"' and not current:
            quoted, had = True, True
        elif ch in " \t":
            if current or had:
                args.append(current)
            current, had = "", False
        else:
            current += ch
        i += 1
    if current or had:
        args.append(current)
    return args


FONT_MACROS_SPACED = {"B", "I", "SM", "SB"}
FONT_MACROS_JOINED = {"BR", "RB", "BI", "IB", "IR", "RI"}
LAYOUT_MACROS = {"nf", "fi", "PP", "P", "LP", "br", "sp", "RS", "RE", "in", "ad", "na", "nh",
                 "hy", "ft", "EX", "EE", "ne", "ti", "HP", "IP", "TP", "ll"}


def read_page(path):
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read().splitlines()


def sections(lines):
    """{section name: [roff lines]} of a man page (`.SH NAME` -> "NAME")."""
    out, current = {}, None
    for line in lines:
        if line.startswith(".SH"):
            args = macro_args(line[3:].strip())
            current = " ".join(args).upper()
            out.setdefault(current, [])
        elif current is not None:
            out[current].append(line)
    return out


def section_text_lines(roff_lines):
    """The text lines a section shows, one per source line (for .nf blocks)."""
    out = []
    for line in roff_lines:
        if line.startswith(('.\\"', "'\\\"", '.\\#')) or line.strip() in (".", ""):
            continue
        if line.startswith((".", "'")):
            parts = line[1:].split(None, 1)
            name = parts[0] if parts else ""
            rest = parts[1] if len(parts) > 1 else ""
            if name in FONT_MACROS_SPACED:
                out.append(roff_text(" ".join(macro_args(rest))))
            elif name in FONT_MACROS_JOINED:
                out.append(roff_text("".join(macro_args(rest))))
            # layout and anything else shows no text of its own
            continue
        out.append(roff_text(line))
    return out


def synopsis_problems(page_path, usage):
    """Why the page's SYNOPSIS is not the usage text (empty list when it is)."""
    secs = sections(read_page(page_path))
    if "SYNOPSIS" not in secs:
        return ["has no SYNOPSIS section"]
    body = secs["SYNOPSIS"]
    problems = []
    if not any(line.strip() == ".nf" for line in body):
        problems.append("SYNOPSIS is not in a .nf/.fi block (its lines would be filled together)")
    shown = normalise(section_text_lines(body))
    wanted = normalise(usage)
    if shown != wanted:
        for number in range(max(len(shown), len(wanted))):
            have = shown[number] if number < len(shown) else "(nothing)"
            want = wanted[number] if number < len(wanted) else "(nothing)"
            if have != want:
                problems.append(f"SYNOPSIS line {number + 1} differs from the usage text:\n"
                                f"    usage:    {want}\n    synopsis: {have}")
    return problems


def name_problems(page_path, verb, summary):
    secs = sections(read_page(page_path))
    if "NAME" not in secs:
        return ["has no NAME section"]
    text = " ".join(normalise(section_text_lines(secs["NAME"])))
    wanted = f"kanban-{verb} - {summary}"
    if text.rstrip(".").lower() != wanted.rstrip(".").lower():
        return [f"NAME is {text!r}, expected {wanted!r} (kanban-VERB \\- the # Summary: line)"]
    return []


def title_problems(page_path, name, section):
    for line in read_page(page_path):
        if line.startswith(".TH"):
            args = [roff_text(a) for a in macro_args(line[3:].strip())]
            if len(args) < 2 or args[0].lower() != name.lower() or args[1] != str(section):
                return [f".TH names {' '.join(args[:2])!r}, expected {name.upper()} {section}"]
            return []
    return ["has no .TH line"]


# -- the tree -------------------------------------------------------------------------

class Tree:
    def __init__(self, root=ROOT):
        self.root = root

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def command_files(self):
        """[(kind, folder, file name)] of every file in libexec/ and porcelain/."""
        out = []
        for kind, folder in FOLDERS:
            try:
                names = sorted(os.listdir(self.path(folder)))
            except OSError:
                continue
            for name in names:
                if name.startswith(".") or os.path.isdir(self.path(folder, name)):
                    continue
                out.append((kind, folder, name))
        return out

    def verbs(self, kind=None):
        """[(verb, kind, path)] of the command files named kanban-VERB."""
        return [(name[len("kanban-"):], k, self.path(folder, name))
                for k, folder, name in self.command_files()
                if name.startswith("kanban-") and (kind is None or k == kind)]

    def man_page(self, verb):
        return self.path("man", "man1", f"kanban-{verb}.1")

    def schema(self, verb):
        return self.path("schemas", f"kanban-{verb}.schema.json")

    # each check returns a list of problems, each a line for a person

    def header_problems(self, path):
        problems = []
        if not os.access(path, os.X_OK):
            problems.append("is not executable")
        summary, lines = read_header(path)
        if not summary:
            problems.append("has no '# Summary:' line")
        usage = usage_lines(lines)
        if usage is None:
            problems.append("has no '# Usage:' block")
        elif not normalise(usage):
            problems.append("has an empty '# Usage:' block")
        return problems

    def man_problems(self, verb, path):
        page = self.man_page(verb)
        rel = os.path.relpath(page, self.root)
        if not os.path.isfile(page):
            return [f"has no man page {rel}"]
        summary, lines = read_header(path)
        usage = usage_lines(lines)
        problems = [f"{rel} {p}" for p in title_problems(page, f"kanban-{verb}", 1)]
        if summary:
            problems += [f"{rel} {p}" for p in name_problems(page, verb, summary)]
        if usage:
            problems += [f"{rel} {p}" for p in synopsis_problems(page, usage)]
        return problems

    def schema_problems(self, verb):
        schema = self.schema(verb)
        rel = os.path.relpath(schema, self.root)
        if not os.path.isfile(schema):
            return [f"has no schema {rel}"]
        try:
            with open(schema, encoding="utf-8") as handle:
                document = json.load(handle)
        except ValueError as exc:
            return [f"{rel} is not JSON: {exc}"]
        if not isinstance(document, dict):
            return [f"{rel} is not a JSON Schema object"]
        return []

    def test_texts(self):
        texts = {}
        folder = self.path("tests")
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            return texts
        for name in names:
            if name in GENERIC_TESTS:
                continue
            if (name.startswith("test_") and name.endswith(".py")) or \
                    (name.startswith("t") and name.endswith(".bats")):
                with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as handle:
                    texts[name] = handle.read()
        return texts

    def tested_problems(self, verb, texts=None):
        texts = self.test_texts() if texts is None else texts
        word = re.escape(verb)
        python = re.compile(rf"""(["']){word}\1|\bkanban[ -]{word}(?![\w-])""")
        bats = re.compile(rf"\bkanban[ -]{word}(?![\w-])")
        for name, text in texts.items():
            if (python if name.endswith(".py") else bats).search(text):
                return []
        return ["is named in no test (tests/test_*.py or tests/t*.bats)"]

    def aliases(self):
        """The dispatcher's ALIASES, read from its source (no import), or None."""
        source_path = self.path("lib", "kanban", "dispatch.py")
        try:
            with open(source_path, encoding="utf-8") as handle:
                tree = ast.parse(handle.read())
        except (OSError, SyntaxError):
            return None
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "ALIASES" for t in node.targets):
                raw = ast.literal_eval(node.value)
                return {name: (verb, list(lead)) for name, (verb, lead) in raw.items()}
        return None

    def command_list(self):
        """(verbs {verb: kind}, aliases {name: (verb, lead)}, problems) of command-list.txt."""
        path = self.path("command-list.txt")
        verbs, aliases, problems = {}, {}, []
        try:
            with open(path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except OSError:
            return verbs, aliases, ["command-list.txt is missing"]
        for number, line in enumerate(lines, 1):
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            where = f"command-list.txt:{number}"
            if words[0] == "alias":
                if len(words) < 3:
                    problems.append(f"{where}: expected 'alias NAME VERB [ARGS...]'")
                    continue
                if words[1] in aliases:
                    problems.append(f"{where}: alias {words[1]} listed twice")
                aliases[words[1]] = (words[2], words[3:])
                continue
            if len(words) != 2 or not words[0].startswith("kanban-") or words[1] not in KINDS:
                problems.append(f"{where}: expected 'kanban-VERB  plumbing|porcelain', got {line!r}")
                continue
            verb = words[0][len("kanban-"):]
            if verb in verbs:
                problems.append(f"{where}: {words[0]} listed twice")
            verbs[verb] = words[1]
        return verbs, aliases, problems

    def command_list_problems(self):
        listed, aliases, problems = self.command_list()
        if problems == ["command-list.txt is missing"]:
            return problems
        present = {verb: kind for verb, kind, _ in self.verbs()}
        for verb in sorted(set(present) - set(listed)):
            problems.append(f"command-list.txt does not list kanban-{verb} ({present[verb]})")
        for verb in sorted(set(listed) - set(present)):
            problems.append(f"command-list.txt lists kanban-{verb}, which is in neither libexec/ nor porcelain/")
        for verb in sorted(set(listed) & set(present)):
            if listed[verb] != present[verb]:
                problems.append(f"command-list.txt says kanban-{verb} is {listed[verb]}, "
                                f"but it is {present[verb]}")
        for name, (verb, _lead) in sorted(aliases.items()):
            if verb not in present:
                problems.append(f"command-list.txt: alias {name} names {verb}, which is not a verb")
            if name in present:
                problems.append(f"command-list.txt: alias {name} shadows the verb kanban-{name}")
        real = self.aliases()
        if real is not None:
            for name in sorted(set(real) - set(aliases)):
                problems.append(f"command-list.txt does not list the alias {name} "
                                f"({' '.join([real[name][0]] + real[name][1])})")
            for name in sorted(set(aliases) - set(real)):
                problems.append(f"command-list.txt lists the alias {name}, which the dispatcher does not know")
            for name in sorted(set(aliases) & set(real)):
                if aliases[name] != real[name]:
                    problems.append(f"command-list.txt: alias {name} is "
                                    f"{' '.join([aliases[name][0]] + aliases[name][1])}, the dispatcher "
                                    f"runs {' '.join([real[name][0]] + real[name][1])}")
        return problems

    def page_problems(self):
        """Pages every tree has, and pages whose command is gone."""
        problems = []
        for rel in (("man", "man1", "kanban.1"), ("man", "man7", "kanban-workflow.7")):
            if not os.path.isfile(self.path(*rel)):
                problems.append(f"{'/'.join(rel)} is missing")
        present = {verb for verb, _, _ in self.verbs()}
        try:
            pages = sorted(os.listdir(self.path("man", "man1")))
        except OSError:
            pages = []
        for name in pages:
            match = re.fullmatch(r"kanban-(.+)\.1", name)
            if match and match.group(1) not in present:
                problems.append(f"man/man1/{name} documents kanban-{match.group(1)}, which does not exist")
        return problems

    def problems(self):
        """Every problem in the tree, one line each."""
        out = []
        texts = self.test_texts()
        for kind, folder, name in self.command_files():
            rel = f"{folder}/{name}"
            if not name.startswith("kanban-"):
                out.append(f"{rel}: not named kanban-VERB")
                continue
            verb, path = name[len("kanban-"):], self.path(folder, name)
            found = self.header_problems(path)
            found += self.man_problems(verb, path)
            if kind == "plumbing":
                found += self.schema_problems(verb)
            found += self.tested_problems(verb, texts)
            out += [f"{rel}: {p}" for p in found]
        out += self.command_list_problems()
        out += self.page_problems()
        return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    tree = Tree(os.path.abspath(argv[0]) if argv else ROOT)
    problems = tree.problems()
    for problem in problems:
        print(problem)
    if problems:
        print(f"check_tree: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_tree: ok ({len(tree.verbs())} verbs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
