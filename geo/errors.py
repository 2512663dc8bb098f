"""Errors that carry a message meant for the user, and the HTTP status they map to."""


class GridmapError(Exception):
    """Base class: the message says what is wrong and what to do about it."""

    status = 400


class InvalidInput(GridmapError):
    """The input (a file, a geometry, a parameter) is wrong; nothing was stored."""

    status = 422


class NotFound(GridmapError):
    status = 404


class Conflict(GridmapError):
    """The stored state changed since the caller read it (a stale edit)."""

    status = 409


class SetupError(GridmapError):
    """The database or the machine is not ready; the message says how to fix it."""

    status = 503
