"""/evaluate/{token}: the reporter rates the result (回访/民评) through the link they got with their
report. No API key: the token is the credential (only its digest is stored), and it opens one
incident, as a service key would see it. GET is the page (maps/evaluate.py); POST takes the
rating as a form (the page's) or JSON (an app's)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api.deps import Conn
from geo import settings
from geo.errors import Conflict, InvalidInput, NotFound
from geo.usecases import incidents as intake
from maps import evaluate as page

router = APIRouter(tags=["incidents"])


@router.get("/evaluate/{token}", summary="The reporter's page: how the report stands, and the rating once resolved",
            response_class=HTMLResponse,
            responses={404: {"description": "no report has this link (a page saying so)",
                             "content": {"text/html": {}}}})
def evaluation_page(token: str, conn: Conn) -> HTMLResponse:
    try:
        incident = intake.evaluation_page(conn, token)
    except NotFound as exc:  # a resident with a mistyped link gets a page saying so, not JSON
        return HTMLResponse(page.not_found(str(exc)), status_code=404)
    return HTMLResponse(page.render(incident, settings.get().tz))


@router.post("/evaluate/{token}", summary="The reporter rates a resolved incident: satisfied, basically_satisfied "
                                          "or unsatisfied (reopens it), with a comment")
async def rate(token: str, request: Request, conn: Conn) -> Response:
    as_form = not request.headers.get("content-type", "").startswith("application/json")
    body: Any = dict(await request.form()) if as_form else await request.json()
    if not isinstance(body, dict):
        raise InvalidInput("send {\"rating\": ..., \"comment\": ...}")
    rating, comment = str(body.get("rating") or ""), body.get("comment")
    comment = None if comment is None else str(comment)
    try:
        with conn.transaction():
            incident = intake.evaluate(conn, token, rating, comment)
    except (InvalidInput, Conflict) as exc:
        if not as_form:
            raise
        shown = intake.evaluation_page(conn, token)
        status = 409 if isinstance(exc, Conflict) else 422
        return HTMLResponse(page.render(shown, settings.get().tz, str(exc), problem=True), status_code=status)
    if as_form:
        return HTMLResponse(page.render(incident, settings.get().tz, "感谢您的评价！Thank you."))
    return JSONResponse(jsonable_encoder(incident))
