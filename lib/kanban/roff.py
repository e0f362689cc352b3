"""A man page as plain text, for `kanban help workflow` where man(1) is missing: the
roff requests kanban's pages use (.SH, .PP, .TP, .IP, .B/.BR/.I..., .EX/.nf) done
roughly as man does them (headings, filled paragraphs, examples kept as written),
instead of printing the page's source."""
import re
import textwrap

_ESCAPES = (("\\(dq", '"'), ("\\(rs", "\\"), ("\\(bu", "•"), ("\\(em", "—"), ("\\(en", "–"),
            ("\\(aq", "'"), ("\\(cq", "’"), ("\\(oq", "‘"), ("\\(lq", "“"), ("\\(rq", "”"),
            ("\\%", ""), ("\\&", ""), ("\\-", "-"), ("\\ ", " "), ("\\e", "\\"))
_FONT = re.compile(r"\\f[BIRP]|\\f\(..|\\f\[[A-Z]*\]")
_ARGS = re.compile(r'"((?:[^"]|"")*)"|(\S+)')
_ALTERNATING = {".B", ".I", ".BR", ".RB", ".BI", ".IB", ".IR", ".RI", ".SM", ".SB"}


def _unescape(text):
    text = _FONT.sub("", text)
    for escape, plain in _ESCAPES:
        text = text.replace(escape, plain)
    return text


def _args(rest):
    return [bare or quoted.replace('""', '"') for quoted, bare in _ARGS.findall(rest)]


def plain(source, columns=80):
    """The page `source` (roff) as text `columns` wide."""
    out, words, literal, indent = [], [], False, 7
    tagged = None  # .TP: the next line is the tag, the paragraph goes under it

    def flush():
        nonlocal words
        if words:
            out.extend(textwrap.wrap(" ".join(words), max(indent + 20, columns - 2), initial_indent=" " * indent,
                                     subsequent_indent=" " * indent, break_on_hyphens=False, break_long_words=False))
        words = []

    for line in source.splitlines():
        request, _, rest = line.partition(" ")
        if line.startswith(('.\\"', "'\\\"")) or line == ".":
            continue
        if literal and request not in (".fi", ".EE", ".in"):
            out.append(" " * indent + _unescape(line))
            continue
        if request in (".SH", ".SS"):
            flush()
            indent = 7
            out += ["", _unescape(" ".join(_args(rest))).upper() if request == ".SH" else
                    "   " + _unescape(" ".join(_args(rest)))]
        elif request in (".PP", ".LP", ".P", ".sp"):
            flush()
            indent = 7 if indent > 7 and tagged is None else indent
            out.append("")
        elif request in (".TP", ".IP"):
            flush()
            out.append("")
            indent = 7
            if request == ".IP" and rest:
                tag = _unescape(_args(rest)[0])
                out.append(" " * indent + tag)
                out[-1] = out[-1] + " "  # the bullet, then the paragraph beside it
                words = []
                indent = 9
            elif request == ".TP":
                tagged = True
        elif request in (".nf", ".EX"):
            flush()
            literal = True
        elif request in (".fi", ".EE"):
            literal = False
        elif request in (".RS",):
            flush()
            indent += 4
        elif request in (".RE",):
            flush()
            indent = max(7, indent - 4)
        elif request in _ALTERNATING:  # .B and .I: one font; .BR and the like: fonts in turn, no spaces
            words.append(_unescape((" " if request in (".B", ".I", ".SM", ".SB") else "").join(_args(rest))))
        elif request.startswith(".") and len(request) <= 4:
            continue  # .TH, .nr, .nh, .ad, .in, .hy and the like: nothing to show
        else:
            words.append(_unescape(line))
        if tagged and request not in (".TP",) and words:
            out.append(" " * 7 + " ".join(words))
            words, tagged, indent = [], None, 14
    flush()
    # an .IP bullet's paragraph began on the bullet's own line: join the two
    text = "\n".join(out)
    text = re.sub(r"^( +\S) \n +", r"\1 ", text, flags=re.M)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"
