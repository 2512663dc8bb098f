"""Each kind of problem to its HTTP status, in one table at the edge (api/errors.py)."""

from __future__ import annotations

import pytest

from api import errors
from geo.errors import Conflict, GridmapError, InvalidInput, NotFound, SetupError
from geo.incidents.lifecycle import IllegalTransition


@pytest.mark.parametrize("exc, status", [
    (GridmapError("x"), 400), (InvalidInput("x"), 422), (NotFound("x"), 404), (Conflict("x"), 409),
    (IllegalTransition("x"), 409), (SetupError("x"), 503), (errors.Unauthorized("x"), 401),
    (errors.Forbidden("x"), 403), (errors.TooLarge("x"), 413), (errors.InvalidParameterValue("x"), 400),
])
def test_each_kind_has_its_status(exc, status):
    assert errors.status_of(exc) == status


def test_geo_errors_carry_no_status():
    for cls in (GridmapError, InvalidInput, NotFound, Conflict, SetupError):
        assert not hasattr(cls, "status")
