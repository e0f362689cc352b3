"""Say what is wrong with a command line, in plain words, as git does.

docopt only knows that an argv does not match the usage.  When it refuses one,
this module looks at the real arguments (never the argument cache's placeholders)
and names the first mistake: an unknown option (with the nearest one as a hint),
an option without its value, a missing subcommand, argument or required option,
an unknown subcommand (also after `mcp token`), an argument too many (with a hint
to quote a title that has spaces), an option given twice, options that cannot be
used together.  Each guess is checked by asking docopt whether the corrected line
parses, so the sentence is right or it is not said.  Only failing commands come here.
"""
import difflib
import io
import re
from contextlib import redirect_stderr, redirect_stdout

from .errors import KanbanError

_PROBE = "\x00kanban-probe"
_SHORT = re.compile(r"(?<![\w-])(-[a-zA-Z])\b")


def _parses(help_text, argv):
    from docopt import DocoptExit, docopt

    sink = io.StringIO()
    try:
        with redirect_stdout(sink), redirect_stderr(sink):
            return docopt(help_text, argv=argv, default_help=False)
    except (DocoptExit, SystemExit):
        return None


def nearest(word, choices):
    """The closest of `choices` to a misspelt `word`, or None."""
    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def _expand(name, options):
    """docopt accepts a unique prefix of a long option."""
    if name in options:
        return name
    matches = [o for o in options if o.startswith(name)]
    return matches[0] if len(matches) == 1 else None


def _split(argv, options):
    """(positional tokens as (index, text), given option names) of argv[1:]."""
    positional, given = [], set()
    index, rest = 1, False
    while index < len(argv):
        token = argv[index]
        if rest or token == "-" or not token.startswith("-") or _number(token):
            positional.append((index, token))
        elif token == "--":
            rest = True
        elif token.startswith("--"):
            name, eq, _ = token.partition("=")
            name = _expand(name, options) or name
            given.add(name)
            if options.get(name) and not eq:
                index += 1  # its value
        index += 1
    return positional, given


def _number(token):
    return bool(re.fullmatch(r"-\d+(\.\d+)?[smhd]?", token))


def _unknown(token, options):
    near = nearest(token if token.startswith("--") else "-" + token, options)
    return (f"unknown option {token}" + (f" (did you mean {near}?)" if near else ""),
            f"did you mean {near}?" if near else None)


def _option_mistake(help_text, argv, options):
    shorts = set(_SHORT.findall(help_text))
    tokens = argv[1:]
    for position, token in enumerate(tokens):
        if token == "--":
            return None
        if token.startswith("--"):
            raw, eq, _value = token.partition("=")
            name = _expand(raw, options)
            if name is None:
                return _unknown(raw, options)
            if options[name] and not eq:
                following = tokens[position + 1] if position + 1 < len(tokens) else None
                if following is None or following.startswith("--"):
                    metavar = re.search(re.escape(name) + r"=([A-Za-z_]+)", help_text)
                    return (f"option {name} needs a value ({name}={metavar.group(1) if metavar else 'VALUE'})",
                            None)
            if not options[name] and eq:
                return f"option {name} takes no value", f"write {name} alone"
        elif token.startswith("-") and token != "-" and not _number(token) and token[:2] not in shorts:
            return _unknown(token, options)
    return None


def _subcommands(help_text, verb, words, lead=()):
    """The command words that come right after `kanban VERB LEAD...` in the usage lines."""
    from .cli import usage_section

    first = set()
    at = 2 + len(lead)
    for line in usage_section(help_text).splitlines():
        parts = line.split()
        if len(parts) > at and parts[0] == "kanban" and parts[1] == verb and tuple(parts[2:at]) == tuple(lead):
            for word in re.split(r"[\[\]()|]+", parts[at]):
                if word in words:
                    first.add(word)
    return first


def _missing(help_text, argv, options, given, words):
    # the command words given so far (`mcp token`), then the ones that may follow them
    lead = 0
    while lead + 1 < len(argv) and argv[lead + 1] in words:
        lead += 1
    first = _subcommands(help_text, argv[0], words, tuple(argv[1:lead + 1]))
    if not first and lead:  # the last command word given may itself be a mistake of some other kind
        lead = 0
        first = _subcommands(help_text, argv[0], words)
    at = lead + 1
    if first and len(argv) == at:
        return f"missing subcommand: one of {', '.join(sorted(first))}", None
    if first and argv[at] not in words and not argv[at].startswith("-"):
        near = nearest(argv[at], first)
        return (f"unknown subcommand '{argv[at]}' (one of {', '.join(sorted(first))})",
                f"did you mean '{near}'?" if near else None)
    for count in (1, 2):
        found = _parses(help_text, argv + [_PROBE] * count)
        if found is not None:
            names = [k for k, v in found.items() if v == _PROBE or (isinstance(v, list) and _PROBE in v)]
            return f"missing {' and '.join(names) if names else 'an argument'}", None
    if "--" not in argv:
        found = _parses(help_text, argv + ["--", _PROBE])
        if found is not None:  # work, review: the command to run comes after --
            names = [k for k, v in found.items() if isinstance(v, list) and _PROBE in v]
            return f"missing the command to run: -- {names[0] if names else 'CMD'}...", None
    for name, takes_value in sorted(options.items()):
        if name in given or name == "--help":
            continue
        if _parses(help_text, argv + [f"{name}={_PROBE}" if takes_value else name]) is not None:
            return f"missing {name}", None
    for count in (1, 2):  # arguments and a required option both missing: `lease renew`
        for name, takes_value in sorted(options.items()):
            if name in given or name == "--help":
                continue
            found = _parses(help_text, argv + [_PROBE] * count + [f"{name}={_PROBE}" if takes_value else name])
            if found is not None:
                names = [k for k, v in found.items() if k != name and (v == _PROBE or (isinstance(v, list)
                                                                                       and _PROBE in v))]
                return f"missing {' and '.join(names + [name])}", None
    return None


def _unexpected(help_text, argv, positional, options=(), given=()):
    # the fewest trailing arguments whose removal makes the line parse, with a required
    # option that is missing too (`complete TASK-1 extra` without --token)
    probes = [[]] + [[f"{name}={_PROBE}" if options[name] else name] for name in sorted(options)
                     if name not in given and name != "--help"]
    for cut in range(len(positional) - 1, -1, -1):
        gone = {i for i, _ in positional[cut:]}
        kept = [t for i, t in enumerate(argv) if i not in gone]
        parsed = next((found for found in (_parses(help_text, kept + probe) for probe in probes)
                       if found is not None), None)
        if parsed is not None:
            break
    else:
        return None
    extra = [t for _, t in positional[cut:]]
    if len(extra) == 1:
        text = f"unexpected argument '{extra[0]}'"
    else:
        text = "unexpected arguments " + ", ".join(f"'{t}'" for t in extra)
    hint = None
    if cut > 0:
        # a title or query of several words that the shell split
        before = positional[cut - 1][1]
        names = [k for k, v in parsed.items() if v == before and k.isupper() and k not in ("ID", "N")]
        if names:
            whole = " ".join(t for _, t in positional[cut - 1:])
            hint = f'quote a {names[0].lower()} that has spaces: "{whole}"'
    return text, hint


def _option_spans(argv, options):
    """(option name, the indexes of its token and value) for each option given in argv[1:]."""
    spans, index = [], 1
    while index < len(argv):
        token = argv[index]
        if token == "--":
            break
        if token.startswith("--") and not _number(token):
            name, eq, _ = token.partition("=")
            name = _expand(name, options) or name
            span = [index]
            if options.get(name) and not eq and index + 1 < len(argv):
                span.append(index + 1)
            spans.append((name, span))
            index += len(span)
            continue
        index += 1
    return spans


def _together(help_text, argv, options):
    """An option given twice, or options the usage does not allow together."""
    spans = _option_spans(argv, options)

    def without(indexes):
        return [t for i, t in enumerate(argv) if i not in indexes]

    seen = set()
    for name, span in spans:
        if name in seen and _parses(help_text, without(set(span))) is not None:
            return f"option {name} given more than once", None
        seen.add(name)
    alone = sorted({name for name, span in spans if name in options and _parses(
        help_text, without({i for n, s in spans if n == name for i in s})) is not None})
    if len(alone) == 2:
        return f"options {alone[0]} and {alone[1]} cannot be used together", None
    if len(alone) > 2:
        return f"options {', '.join(alone[:-1])} and {alone[-1]} cannot all be used together", None
    return None


def _command_without_dashes(help_text, argv, options):
    """work, review: a command given without the -- before it (`kanban work --agent w
    ./do-task`, whose own options would otherwise read as unknown options of kanban's)."""
    if "--" in argv or " -- " not in help_text:
        return None
    values = {i for _name, span in _option_spans(argv, options) for i in span[1:]}
    for index in range(1, len(argv)):
        token = argv[index]
        if index in values or token.startswith("-"):
            continue
        if _parses(help_text, argv[:index] + ["--"] + argv[index:]) is not None:
            return f"the command to run goes after --: kanban {argv[0]} ... -- {token}", None
        return None
    return None


def usage_error(help_text, argv):
    """The `usage` KanbanError for an argv docopt refused; argv[0] is the verb."""
    from .argv import grammar
    from .cli import usage_section

    verb = argv[0]
    options, words = grammar(help_text)
    words = set(words) - {verb, "kanban"}
    found = _command_without_dashes(help_text, argv, options)
    if found is None:
        found = _option_mistake(help_text, argv, options)
    if found is None:
        positional, given = _split(argv, options)
        positional = [(i, t) for i, t in positional if t not in words]
        found = (_missing(help_text, argv, options, given, words)
                 or _unexpected(help_text, argv, positional, options, given)
                 or _together(help_text, argv, options))
    text, hint = found or ("these arguments do not match its usage", None)
    return KanbanError("usage", f"kanban {verb}: {text}", hint=hint, usage=usage_section(help_text))
