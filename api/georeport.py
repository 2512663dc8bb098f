"""Open311 GeoReport v2 answers in either of its formats: JSON (a list of objects) or XML (a root
element holding one element per object, each field a child element, nested objects nested).

    services            <services><service>…</service></services>
    requests            <service_requests><request>…</request></service_requests>
    a created request   <service_requests><request>…</request></service_requests>
    updates             <service_requests_updates><request_update>…</request_update></service_requests_updates>
    errors              <errors><error><code>…</code><description>…</description></error></errors>
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from xml.etree import ElementTree

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

FORMATS = ("json", "xml")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _fill(parent: ElementTree.Element, fields: Mapping[str, Any]) -> None:
    for name, value in fields.items():
        child = ElementTree.SubElement(parent, name)
        if isinstance(value, Mapping):
            _fill(child, value)
        elif value is not None:
            child.text = _text(value)


def xml(root: str, item: str, rows: Sequence[Mapping[str, Any]]) -> bytes:
    """`rows` as GeoReport XML: <root><item>fields…</item>…</root>."""
    top = ElementTree.Element(root)
    for row in rows:
        _fill(ElementTree.SubElement(top, item), row)
    body: bytes = ElementTree.tostring(top, encoding="utf-8", xml_declaration=True)
    return body


def answer(fmt: str, root: str, item: str, rows: Sequence[Mapping[str, Any]], status_code: int = 200) -> Response:
    """`rows` in the format the path asked for."""
    if fmt == "xml":
        return Response(xml(root, item, rows), status_code=status_code, media_type="text/xml; charset=utf-8")
    return JSONResponse(jsonable_encoder(list(rows)), status_code=status_code)


def error(fmt: str, code: int, description: str, headers: Mapping[str, str] | None = None) -> Response:
    """GeoReport's error answer: a list of {code, description}."""
    # (a description may quote what the client sent, which need not be valid Unicode)
    rows = [{"code": code, "description": description.encode("utf-8", "backslashreplace").decode("utf-8")}]
    if fmt == "xml":
        return Response(xml("errors", "error", rows), status_code=code, media_type="text/xml; charset=utf-8",
                        headers=dict(headers or {}))
    return JSONResponse(rows, status_code=code, headers=dict(headers or {}))


def format_of(path: str) -> str:
    """The format a GeoReport path asks for (`….xml`: XML; anything else: JSON)."""
    return "xml" if path.endswith(".xml") else "json"
