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


def test_gone_is_410():
    from geo.errors import Gone

    assert errors.status_of(Gone("x", {"code": "1"})) == 410


def test_a_geos_error_that_reaches_the_edge_answers_422_naming_what_to_look_for():
    """The last safety net (found by the 500-step redraw walk: a raw overlay in plan naming
    answered 500): the real app's handler, over a route that raises what GEOS raises."""
    from fastapi.testclient import TestClient
    from shapely.errors import GEOSException

    from api.app import create_app
    from geo import settings

    app = create_app(settings.load(auth=False))

    @app.get("/__geos", include_in_schema=False)
    def fail() -> None:
        raise GEOSException("TopologyException: side location conflict at 1 2")

    answer = TestClient(app, raise_server_exceptions=False).get("/__geos")
    assert answer.status_code == 422
    assert answer.json()["error"] == "InvalidInput"
    assert "side location conflict" in answer.json()["detail"] and "spikes" in answer.json()["detail"]
