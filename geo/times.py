"""Times as users type them: ISO 8601, read in the configured zone when they give none."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from geo.errors import InvalidInput, SetupError


def parse_time(text: str | None, zone: str) -> datetime | None:
    """An ISO 8601 time (None for nothing); without a zone it is read in `zone` (GRIDMAP_TZ)."""
    if text is None or str(text).strip() == "":
        return None
    raw = str(text).strip()
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"time {raw!r} is not ISO 8601 (e.g. 2026-01-31 or 2026-01-31T08:00:00+08:00)"
        ) from None
    if value.tzinfo is None:
        try:
            value = value.replace(tzinfo=ZoneInfo(zone))
        except (KeyError, ValueError):
            raise SetupError(f"GRIDMAP_TZ={zone!r} is not a time zone; use e.g. Asia/Shanghai") from None
    return value
