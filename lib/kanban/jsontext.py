"""Writing JSON without importing the json package on the hot path.

`import json` loads its decoder, and the decoder loads `re`: about 5 ms in every
process, a quarter of a claim.  The hot path only ever *writes* JSON, and the
stdlib's own C encoder (what json.dumps uses, `_json.make_encoder`) does that on
its own.  The same options as json.dumps(..., ensure_ascii=...) with its default
separators; reading JSON imports json, lazily, where it is needed.

Even _json is a shared library whose loading costs ~0.2 ms, more than a CLI call's
whole answer takes to write: so the first few small documents a process writes (a
claim's answer, an error line, an event's data) are written by `_write` below, in
Python, and everything else (the ninth document on, or one of more than BUDGET items)
by the C encoder.  tests/test_jsontext.py checks both against json.dumps.
"""
PYTHON_DOCUMENTS = 8  # documents a process writes in Python before it loads the C encoder
BUDGET = 200  # values in one document beyond which it goes to the C encoder
_written = 0
_ENCODERS = None

_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
# what json.dumps escapes: quote, backslash and the C0 controls; with ensure_ascii also DEL
_ESCAPE = {**{n: _SHORT.get(chr(n), f"\\u{n:04x}") for n in range(0x20)}, ord('"'): '\\"', ord("\\"): "\\\\"}
_ESCAPE_ASCII = {**_ESCAPE, 0x7F: "\\u007f"}


def _refuse(value):
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _c_encoders():
    import _json

    global _ENCODERS
    _ENCODERS = {
        (ensure_ascii, compact): _json.make_encoder(
            None, _refuse, _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring,
            None, ":" if compact else ": ", "," if compact else ", ", False, False, True)
        for ensure_ascii in (True, False) for compact in (True, False)
    }
    return _ENCODERS


def dumps(value, ensure_ascii=True, compact=False):
    """json.dumps(value, ensure_ascii=...), or with separators (",", ":") when compact."""
    global _written
    encoders = _ENCODERS
    if encoders is None:
        if _written < PYTHON_DOCUMENTS:
            _written += 1
            out = []
            try:
                _write(value, out, ensure_ascii, (",", ":") if compact else (", ", ": "), [BUDGET])
                return "".join(out)
            except _TooBig:
                pass
        encoders = _c_encoders()
    if isinstance(value, str):
        return _string(value, ensure_ascii)
    return "".join(encoders[ensure_ascii, compact](value, 0))


class _TooBig(Exception):
    pass


def _string(text, ensure_ascii):
    if text.isascii():
        return '"' + text.translate(_ESCAPE_ASCII if ensure_ascii else _ESCAPE) + '"'
    if not ensure_ascii:
        return '"' + text.translate(_ESCAPE) + '"'
    out = []
    for char in text:
        code = ord(char)
        if code < 0x80:
            out.append(_ESCAPE_ASCII.get(code, char))
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:  # a surrogate pair, as json.dumps writes one
            code -= 0x10000
            out.append(f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}")
    return '"' + "".join(out) + '"'


def _float(value):
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _write(value, out, ensure_ascii, separators, budget):
    """json.dumps's text for value, appended to out, in the C encoder's order of checks."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooBig
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(value, ensure_ascii))
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        out.append("[")
        first = True
        for item in value:
            if not first:
                out.append(separators[0])
            first = False
            _write(item, out, ensure_ascii, separators, budget)
        out.append("]")
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        out.append("{")
        first = True
        for key, item in value.items():
            if isinstance(key, str):
                pass
            elif isinstance(key, float):
                key = _float(key)
            elif key is True or key is False or key is None:
                key = {True: "true", False: "false", None: "null"}[key]
            elif isinstance(key, int):
                key = int.__repr__(key)
            else:
                raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
            if not first:
                out.append(separators[0])
            first = False
            out.append(_string(key, ensure_ascii))
            out.append(separators[1])
            _write(item, out, ensure_ascii, separators, budget)
        out.append("}")
    else:
        _refuse(value)
