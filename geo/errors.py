"""The errors gridmap raises for people to read: each message says what is wrong and what to do.

They name kinds of problem, not HTTP statuses: the API maps each kind to its status in one
table (api/errors.py), the command line prints the message and exits 2.
"""


class GridmapError(Exception):
    """Base class: the message says what is wrong and what to do about it."""


class InvalidInput(GridmapError):
    """The input (a file, a geometry, a parameter) is wrong; nothing was stored."""


class NotFound(GridmapError):
    """No such unit, plan, incident or key."""


class Conflict(GridmapError):
    """The stored state changed since the caller read it (a stale edit), or forbids the change."""


class SetupError(GridmapError):
    """The database or the machine is not ready; the message says how to fix it."""


class Gone(NotFound):
    """It existed and was retired (a unit split, merged or redrawn away). `last` holds what it
    was when it was retired, and where it went, for the answer to show instead of nothing."""

    def __init__(self, message: str, last: dict[str, object] | None = None):
        super().__init__(message)
        self.last = last or {}
