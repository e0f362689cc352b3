"""Argument parsing: docopt-ng is the grammar, a shape cache keeps it off the hot path.

docopt's answer depends on an argv only through the *shape* of its tokens: which
are option names, which are command words, and where the values sit.  So the
first time a shape is seen (say `claim --agent @0 --lease @1`), docopt parses it
with placeholder values and the answer is stored; later calls with the same shape
swap their own values in and never import docopt (4 ms of imports and 3 ms of
parsing, on a claim that otherwise takes ~12 ms of Python).  Anything unusual —
short options, `--`, abbreviations, values docopt might read differently — goes
straight to docopt.  tests/test_argv.py checks the cache against docopt itself.
"""
import marshal
import os

_PLACEHOLDER = "@kanban-value-{}@"
MAX_ENTRIES = 500
_PRIME = (1 << 61) - 1


def grammar(help_text):
    """({option: takes_value}, {command words}) as the usage text declares them."""
    import re  # only when a usage text is first seen: the answer is cached

    from .cli import usage_section

    option_re = re.compile(r"(--[a-z][a-z0-9-]*)(=[A-Za-z_]+)?")
    word_re = re.compile(r"^[a-z][a-z0-9-]*$")

    options = {}
    for name, value in option_re.findall(help_text):
        options[name] = options.get(name, False) or bool(value)
    words = set()
    for token in re.split(r"[\s\[\]()|]+", usage_section(help_text)):
        token = token.rstrip(".")
        if word_re.match(token) and token != "usage:":
            words.add(token)
    return options, words


def shape(argv, options, words):
    """(shape tokens, values) or None when docopt itself should see the argv."""
    out, values = [], []
    tokens = iter(argv)
    for token in tokens:
        if token.startswith("--"):
            name, eq, value = token.partition("=")
            if name not in options:
                return None
            if options[name]:
                if not eq:
                    value = next(tokens, None)
                    if value is None or value == "--":
                        return None
                values.append(value)
                out.append(f"{name}={_PLACEHOLDER.format(len(values) - 1)}")
            elif eq:
                return None
            else:
                out.append(name)
        elif token.startswith("-"):
            return None  # short options, `-`, `--`, negative numbers: docopt decides
        elif token in words:
            out.append(token)
        else:
            values.append(token)
            out.append(_PLACEHOLDER.format(len(values) - 1))
    return out, values


def _fill(template, values):
    def one(item):
        if isinstance(item, str) and item.startswith("@kanban-value-") and item.endswith("@"):
            return values[int(item[len("@kanban-value-"):-1])]
        return item

    return {key: ([one(v) for v in value] if isinstance(value, list) else one(value))
            for key, value in template.items()}


def cache_path(digest):
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kanban", f"argv-{digest}.marshal")


def _load(path):
    try:
        with open(path, "rb") as handle:
            data = marshal.loads(handle.read())  # marshal.load(handle) reads piece by piece: ~8x slower
        return data if isinstance(data, dict) else {}
    except (OSError, EOFError, ValueError, TypeError):
        return {}


def _store(path, cache):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "wb") as handle:
            marshal.dump(cache, handle)
        os.replace(tmp, path)  # readers see the old file or the new one, never half
    except OSError:
        pass  # a read-only home only costs speed


def parse(help_text, argv, run_docopt):
    """docopt's answer for argv; run_docopt(argv) is the real parser."""
    if os.environ.get("KANBAN_NO_ARGV_CACHE"):
        return run_docopt(argv)
    # one small cache file per usage text: a changed usage text starts afresh
    # (the text's bytes as one number modulo the prime 2**61-1: no hashing module to load;
    # binascii's crc32 cost its shared library's ~0.2 ms, more than the whole digest)
    digest = f"{int.from_bytes(help_text.encode(), 'little') % _PRIME:016x}{len(help_text):x}"
    path = cache_path(digest)
    cache = _load(path)
    known = cache.get("")
    if known is None or not isinstance(known, tuple):
        options, words = grammar(help_text)
        cache[""] = known = (options, tuple(sorted(words)))
    options, words = known[0], set(known[1])
    found = shape(argv, options, words)
    if found is None:
        if len(cache) == 1:
            _store(path, cache)
        return run_docopt(argv)
    tokens, values = found
    key = "\x1f".join(tokens)
    template = cache.get(key)
    if template is None:
        template = dict(run_docopt(tokens))
        if len(cache) >= MAX_ENTRIES:
            cache = {"": known}
        cache[key] = template
        _store(path, cache)
    return _fill(template, values)
