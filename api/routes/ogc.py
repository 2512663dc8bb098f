"""/ogc: OGC API - Features (Part 1: Core, GeoJSON) over the units and the incidents, so QGIS
and GDAL's OAPIF driver read gridmap directly.

    /ogc                                              landing page
    /ogc/conformance                                  the conformance classes claimed
    /ogc/collections                                  street ... building, and incidents
    /ogc/collections/{collectionId}                   one collection: extent, links
    /ogc/collections/{collectionId}/items             features: bbox, datetime, limit, after/before
    /ogc/collections/{collectionId}/items/{featureId} one feature

Bad parameters answer 400, as the standard asks (the rest of the API answers 422), in the
API's own error body. The queries live in geo/db/features.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute

from api.deps import time_of
from api.errors import InvalidParameterValue
from api.security import require
from geo.coords.points import BBox, parse_bbox
from geo.db import features, replica
from geo.db.features import INCIDENTS
from geo.errors import InvalidInput, NotFound
from geo.units import levels

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    # not oas30: the app's /openapi.json is OpenAPI 3.1
)
JSON, GEOJSON = "application/json", "application/geo+json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.1"
DEFAULT_LIMIT, MAX_LIMIT = 100, 10_000
MAX_ID = 2**63 - 1

TITLES = {lv.name: f"{lv.title} ({lv.zh})" for lv in levels.TABLE} | {INCIDENTS: "Incidents (事件)"}


class OGCRoute(APIRoute):
    """A route whose bad parameters answer 400: FastAPI's own validation (an integer that is
    not one, a limit out of range) and gridmap's InvalidInput (422 elsewhere) alike."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                problems = [f"{err['loc'][-1]}: {err['msg']} (got {err.get('input')!r})" for err in exc.errors()]
                raise InvalidParameterValue("; ".join(problems)) from None
            except InvalidInput as exc:
                if isinstance(exc, InvalidParameterValue):
                    raise
                raise InvalidParameterValue(str(exc)) from None

        return route


router = APIRouter(prefix="/ogc", tags=["ogc"], route_class=OGCRoute, dependencies=[require("read")])

Format = Annotated[str | None, Query(description="json (the only encoding served; features come as GeoJSON)")]


def _json(body: dict[str, Any], media_type: str = JSON) -> Response:
    return Response(orjson.dumps(body), media_type=media_type)


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _link(href: str, rel: str, media_type: str, title: str | None = None) -> dict[str, str]:
    link = {"href": href, "rel": rel, "type": media_type}
    if title:
        link["title"] = title
    return link


def _url(base: str, **params: Any) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{base}?{query}" if query else base


def _check_query(request: Request, allowed: set[str], f: str | None, formats: tuple[str, ...] = ("json",)) -> None:
    """400 for a query parameter this resource does not take (a typo would otherwise be
    ignored silently, and `as_of` would return today's map) or an encoding not served."""
    unknown = sorted(set(request.query_params) - allowed - {"f"})
    if unknown:
        takes = ", ".join(sorted(allowed | {"f"}))
        hint = " (for the map as of a time, use datetime=TIME)" if "as_of" in unknown else ""
        raise InvalidParameterValue(f"unknown query parameter {unknown[0]!r}{hint}: this resource takes {takes}")
    if f is not None and f not in formats:
        raise InvalidParameterValue(f"f={f!r} is not served: use f={formats[0]} (gridmap answers JSON only)")


def _collection_id(text: str) -> str:
    if text not in features.COLLECTIONS:
        raise NotFound(f"no collection {text!r}: the collections are {', '.join(features.COLLECTIONS)}")
    return text


def _bbox(text: str | None) -> BBox | None:
    """minlon,minlat,maxlon,maxlat in CRS84, or 400 naming what is wrong with it."""
    try:
        return parse_bbox(text)
    except InvalidInput as exc:
        raise InvalidParameterValue(str(exc)) from None


# A time whose "+01:00" arrived as " 01:00": GDAL's DATETIME option puts the + in the URL
# unescaped, and a URL's + means a space. No RFC 3339 time has a space there, so read it back.
_PLUS_AS_SPACE = re.compile(r"(T\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d(?::?\d\d)?)$")


def _instant(text: str) -> datetime | None:
    try:
        return time_of(_PLUS_AS_SPACE.sub(r"\1+\2", text.strip()))
    except InvalidInput as exc:
        raise InvalidParameterValue(f"datetime: {exc}") from None


def _as_of(collection: str, text: str | None) -> datetime | None:
    """The instant a unit collection is read at (None: now)."""
    if text is None:
        return None
    if "/" in text:
        raise InvalidParameterValue(
            f"datetime {text!r} is an interval, but the {collection} collection is versioned: give one "
            "instant, and each unit comes as the version valid then")
    return _instant(text)


def _report_window(text: str | None) -> tuple[datetime | None, datetime | None]:
    """datetime for incidents: an instant, or an interval a/b, ../b or a/.. (ends included)."""
    if text is None:
        return None, None
    parts = text.split("/")
    if len(parts) == 1:
        instant = _instant(text)
        return instant, instant
    if len(parts) != 2:
        raise InvalidParameterValue(f"datetime {text!r} is neither an instant nor an interval start/end")
    start, end = (None if p in ("", "..") else _instant(p) for p in parts)
    if start is None and end is None:
        raise InvalidParameterValue(f"datetime {text!r} is open at both ends: leave datetime out for every incident")
    if start is not None and end is not None and start > end:
        raise InvalidParameterValue(f"datetime {text!r} ends before it starts")
    return start, end


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _collection(request: Request, cid: str, extent: features.Extent | None) -> dict[str, Any]:
    base = f"{_root(request)}/ogc/collections/{cid}"
    if cid == INCIDENTS:
        description = ("Incidents reported by residents, grid workers and riders, as points in WGS84: "
                       "category, state, report time, deadline and the units they were assigned to "
                       "(never the reporter's contact). datetime filters on the report time "
                       "(an instant or an interval a/b, ../b, a/..).")
    else:
        description = (f"Every {cid} as a polygon in WGS84 with its code, name, households and chain of "
                       "parents. datetime=TIME gives the versions valid at that time (default: now).")
    body: dict[str, Any] = {
        "id": cid,
        "title": TITLES[cid],
        "description": description,
        "itemType": "feature",
        "crs": [CRS84],
        "links": [
            _link(base, "self", JSON, "this collection"),
            _link(f"{base}/items", "items", GEOJSON, f"the {cid} features"),
        ],
    }
    if extent is not None:
        body["extent"] = {
            "spatial": {"bbox": [list(extent.bbox)], "crs": CRS84},
            "temporal": {"interval": [[_time(extent.start), _time(extent.end)]], "trs": GREGORIAN},
        }
    return body


# ---------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------

@router.get("", summary="OGC API - Features landing page", response_class=Response,
            responses={200: {"content": {JSON: {}}}})
def landing(request: Request, f: Format = None) -> Response:
    _check_query(request, set(), f)
    root = _root(request)
    return _json({
        "title": "gridmap",
        "description": "Grid-governance units (street, community, grid, compound, small neighbourhood, "
                       "building), versioned, and incidents, as OGC API - Features collections.",
        "links": [
            _link(f"{root}/ogc", "self", JSON, "this document"),
            _link(f"{root}{request.app.openapi_url}", "service-desc", OPENAPI, "the API definition (OpenAPI 3.1)"),
            _link(f"{root}/docs", "service-doc", "text/html", "the API documentation"),
            _link(f"{root}/ogc/conformance", "conformance", JSON, "the conformance classes implemented"),
            _link(f"{root}/ogc/collections", "data", JSON, "the collections"),
        ],
    })


@router.get("/conformance", summary="The OGC conformance classes implemented", response_class=Response,
            responses={200: {"content": {JSON: {}}}})
def conformance(request: Request, f: Format = None) -> Response:
    _check_query(request, set(), f)
    return _json({"conformsTo": list(CONFORMANCE)})


@router.get("/collections", summary="The collections: one per unit level, and incidents", response_class=Response,
            responses={200: {"content": {JSON: {}}}})
def collections(request: Request, f: Format = None) -> Response:
    _check_query(request, set(), f)
    extents = replica.read(lambda conn: features.extents(conn, features.COLLECTIONS))
    return _json({
        "links": [_link(f"{_root(request)}/ogc/collections", "self", JSON, "the collections")],
        "collections": [_collection(request, cid, extents[cid]) for cid in features.COLLECTIONS],
    })


@router.get("/collections/{collectionId}", summary="One collection: its extent and links",
            response_class=Response, responses={200: {"content": {JSON: {}}}})
def collection(request: Request, collection_id: Annotated[str, Path(alias="collectionId")],
               f: Format = None) -> Response:
    cid = _collection_id(collection_id)
    _check_query(request, set(), f)
    extent = replica.read(lambda conn: features.extents(conn, (cid,)))[cid]
    return _json(_collection(request, cid, extent))


@router.get("/collections/{collectionId}/items", summary="Features of a collection, a page at a time in id order",
            response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
def items(
    request: Request,
    collection_id: Annotated[str, Path(alias="collectionId")],
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (CRS84: WGS84 lon/lat)")] = None,
    when: Annotated[str | None, Query(alias="datetime", description=(
        "units: one instant, the versions valid then (default now); incidents: the report time, an "
        "instant or an interval a/b, ../b, a/.. (ends included). Without a zone: Asia/Shanghai"))] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="features per page")] = DEFAULT_LIMIT,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID, description="the page after this id (next links)")] = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="the page before this id (prev links)")] = None,
    f: Format = None,
) -> Response:
    cid = _collection_id(collection_id)
    _check_query(request, {"bbox", "datetime", "limit", "after", "before"}, f, ("json", "geojson"))
    if after is not None and before is not None:
        raise InvalidParameterValue("give after or before, not both")
    sel = features.Selection(bbox=_bbox(bbox), limit=limit, after=after, before=before)
    if cid == INCIDENTS:
        sel.start, sel.end = _report_window(when)
    else:
        sel.as_of = _as_of(cid, when)
    page = replica.read(lambda conn: features.page(conn, cid, sel))  # a read that may lag
    # A walk through a unit collection reads one state of the map: pages after the first are
    # read as of the first one's time, so an edit made meanwhile neither drops nor repeats a unit.
    if when is None and cid != INCIDENTS:
        when = page.time.isoformat()
    base = f"{_root(request)}/ogc/collections/{cid}"
    same = {"bbox": None if sel.bbox is None else ",".join(repr(v) for v in sel.bbox),
            "datetime": when, "limit": limit, "f": f}
    links = [
        _link(str(request.url), "self", GEOJSON, "this page"),
        _link(base, "collection", JSON, "the collection"),
    ]
    # An empty page has no ids of its own: its links start from where it was asked for (a page
    # with more after it and none in it was asked for before an id, and the other way round).
    if page.more_after:
        if page.last_id is not None:
            anchor = page.last_id
        else:
            assert sel.before is not None
            anchor = sel.before - 1
        links.append(_link(_url(f"{base}/items", **same, after=anchor), "next", GEOJSON, "the next page"))
    if page.more_before:
        if page.first_id is not None:
            anchor = page.first_id
        else:
            assert sel.after is not None
            anchor = sel.after + 1
        links.append(_link(_url(f"{base}/items", **same, before=anchor), "prev", GEOJSON, "the page before"))
    body: dict[str, Any] = {"type": "FeatureCollection", "features": orjson.Fragment(page.features.encode())}
    if page.matched is not None:
        body["numberMatched"] = page.matched
    body.update(numberReturned=page.returned, timeStamp=page.time.isoformat(), links=links)
    return _json(body, GEOJSON)


@router.get("/collections/{collectionId}/items/{featureId}", summary="One feature",
            response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
def item(
    request: Request,
    collection_id: Annotated[str, Path(alias="collectionId")],
    feature_id: Annotated[str, Path(alias="featureId")],
    when: Annotated[str | None, Query(alias="datetime", description="units: the version valid at this instant")] = None,
    f: Format = None,
) -> Response:
    cid = _collection_id(collection_id)
    _check_query(request, set() if cid == INCIDENTS else {"datetime"}, f, ("json", "geojson"))
    as_of = _as_of(cid, when) if cid != INCIDENTS else None
    fid = int(feature_id) if feature_id.isascii() and feature_id.isdigit() and len(feature_id) < 19 else None
    if fid is None:
        raise NotFound(f"no feature {feature_id!r} in collection {cid!r}: feature ids are whole numbers")
    body = orjson.loads(replica.read(lambda conn: features.feature(conn, cid, fid, as_of)))
    base = f"{_root(request)}/ogc/collections/{cid}"
    body["links"] = [
        _link(str(request.url), "self", GEOJSON, "this feature"),
        _link(base, "collection", JSON, "the collection"),
    ]
    return _json(body, GEOJSON)
