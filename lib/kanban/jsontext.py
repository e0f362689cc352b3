"""Writing JSON without importing the json package on the hot path.

`import json` loads its decoder, and the decoder loads `re`: about 5 ms in every
process, a quarter of a claim.  The hot path only ever *writes* JSON, and the
stdlib's own C encoder (what json.dumps uses, `_json.make_encoder`) does that on
its own.  The same options as json.dumps(..., ensure_ascii=...) with its default
separators; reading JSON imports json, lazily, where it is needed.
tests/test_jsontext.py checks the output against json.dumps.
"""
import _json


def _refuse(value):
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_ENCODERS = {
    (ensure_ascii, compact): _json.make_encoder(
        None, _refuse, _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring,
        None, ":" if compact else ": ", "," if compact else ", ", False, False, True)
    for ensure_ascii in (True, False) for compact in (True, False)
}


def dumps(value, ensure_ascii=True, compact=False):
    """json.dumps(value, ensure_ascii=...), or with separators (",", ":") when compact."""
    if isinstance(value, str):
        return (_json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring)(value)
    return "".join(_ENCODERS[ensure_ascii, compact](value, 0))
