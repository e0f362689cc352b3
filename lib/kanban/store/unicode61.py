"""SQLite FTS5's unicode61 tokenizer, as a table the Postgres backend searches with.

A SQLite board's search splits and folds text with FTS5's unicode61 tokenizer (its
defaults: remove_diacritics 1, categories "L* N* Co"): each code point on its own is
a separator, or a token character kept as it is, folded (upper to lower case, a
diacritic removed: É is e, but Greek keeps its accents; the micro sign is mu, final
sigma is sigma), or dropped (a combining accent).  unicode61_table.py holds that, read
from SQLite by tools/unicode61.py; `mapping()` gives it as (character,
replacement) pairs for store/postgres.py's kanban_fold table: a separator is replaced by
a space, a dropped character by ''.
"""


def mapping():
    """(character, replacement) for every code point unicode61 does not keep as it is."""
    from .unicode61_table import FOLDS, SEPARATORS

    pairs = []
    for start, end in SEPARATORS:
        pairs += [(chr(cp), " ") for cp in range(start, end + 1)]
    pairs += [(chr(cp), chr(fold) if fold else "") for cp, fold in FOLDS.items()]
    return pairs


def scan():
    """What this process's SQLite (apsw's) does with every code point but NUL:
    (the set of separators, {code point: fold or 0} for those it changes, SQLite's version)."""
    import apsw

    tokenize = apsw.Connection(":memory:").fts5_tokenizer("unicode61")
    points = [cp for cp in range(1, 0x110000) if not 0xD800 <= cp <= 0xDFFF]
    starts, parts, offset = {}, [], 0
    for cp in points:
        piece = ("x" + chr(cp) + "x ").encode()
        starts[offset] = cp
        parts.append(piece)
        offset += len(piece)
    found = {}
    for start, _end, text in tokenize(b"".join(parts), apsw.FTS5_TOKENIZE_DOCUMENT, None):
        if start in starts:
            current = starts[start]
            found[current] = [text]
        else:
            found[current].append(text)  # the second "x": the code point separated them
    separators, folds = set(), {}
    for cp in points:
        tokens = found[cp]
        if tokens == ["x", "x"]:
            separators.add(cp)
            continue
        if len(tokens) != 1 or len(tokens[0]) > 3 or tokens[0][0] != "x" or tokens[0][-1] != "x":
            raise AssertionError(f"unicode61 made {tokens!r} of U+{cp:04X}")
        fold = tokens[0][1:-1]
        if fold != chr(cp):
            folds[cp] = ord(fold) if fold else 0
    return separators, folds, apsw.sqlite_lib_version()
