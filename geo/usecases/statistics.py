"""Incident statistics month by month: the window cut at the first of each month (GRIDMAP_TZ), each
month counted as /stats counts a window (geo/db/stats.py): with incidents partitioned by month,
each month reads its own partition."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from geo import settings
from geo.db import stats
from geo.errors import InvalidInput
from geo.incidents.stats import months

MAX_MONTHS = 36


def by_month(conn: psycopg.Connection, level: str, start: datetime, end: datetime,
             retired: str = "rollup") -> dict[str, Any]:
    """Per month of [start, end): that month's /stats answer (the first and last months cut to
    the window)."""
    slices = months(start, end, settings.get().tz)
    if len(slices) > MAX_MONTHS:
        raise InvalidInput(f"{len(slices)} months from {start:%Y-%m} to {end:%Y-%m}: at most {MAX_MONTHS} at once")
    answers = [{"month": label, **stats.incident_stats(conn, level, lo, hi, retired=retired)}
               for label, lo, hi in slices]
    return {"level": level, "from": start, "to": end, "retired": retired, "by": "month", "months": answers}
