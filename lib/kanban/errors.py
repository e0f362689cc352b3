"""The closed list of error codes, and the one way a command fails.

Every failure is a KanbanError carrying a code from CODES.  The CLI turns it into
exit status 2 and one JSON line on stderr; the Python API raises it as is.
"""

CODES = {
    # code: retryable
    "usage": False,
    "invalid": False,
    "not_found": False,
    "conflict": False,
    "lease_lost": False,
    "forbidden": False,
    "cycle": False,
    "busy": True,
    "hook_rejected": False,
    "db_error": False,
    "internal": False,
}


class KanbanError(Exception):
    """A failure with a code from the closed list (see CODES)."""

    def __init__(self, code, message, **extra):
        if code not in CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    @property
    def retryable(self):
        return CODES[self.code]

    def to_dict(self):
        doc = {"error": self.message, "code": self.code, "retryable": self.retryable}
        for key, value in self.extra.items():
            if value is not None:
                doc[key] = value
        return doc


def usage(message, **extra):
    return KanbanError("usage", message, **extra)


def invalid(message, **extra):
    return KanbanError("invalid", message, **extra)


def not_found(message, **extra):
    return KanbanError("not_found", message, **extra)


def conflict(message, **extra):
    return KanbanError("conflict", message, **extra)
