"""Request size limit: a body over GRIDMAP_MAX_BODY_MB (default 8 MB) gets 413 before any of
it is parsed, whether the client declares its length or streams it in chunks.

8 MB holds a plan edit of a whole community's grids with room to spare; bigger uploads (a
district's boundaries) go through `gridmap load`, not the HTTP API.
"""

from __future__ import annotations

import json
from typing import Any

from api.errors import OPEN311_PREFIX

DEFAULT_MB = 8.0


def max_body_bytes(mb: float = DEFAULT_MB) -> int:
    return int(mb * 1024 * 1024)


class _TooLarge(BaseException):
    """Raised from receive(); a BaseException so that body parsers that turn any Exception
    into their own 400 let it through to this middleware."""


class BodyLimit:
    """Pure ASGI middleware (no buffering of its own): counts body bytes as they arrive."""

    def __init__(self, app: Any, limit: int | None = None):
        self.app = app
        self.limit = limit if limit is not None else max_body_bytes()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, send)
            return
        seen = 0
        started = False

        async def counted_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def watched_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _TooLarge:
            if not started:
                await self._refuse(scope, send)

    async def _refuse(self, scope: Any, send: Any) -> None:
        mb = self.limit / (1024 * 1024)
        detail = (f"the request body is over {mb:g} MB; send less at a time, or load large files "
                  "with `gridmap load`")
        if scope.get("path", "").startswith(OPEN311_PREFIX):
            body = json.dumps([{"code": 413, "description": detail}])
        else:
            body = json.dumps({"error": "TooLarge", "detail": detail})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body.encode()})
