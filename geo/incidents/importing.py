"""Reading hotline exports of incidents: CSV or GeoJSON Points, one report per row.

A row is stored once: by its external id, or, when it has none, by a digest of its contents,
so importing the same file again adds nothing (geo/usecases/incidents.py imports them).
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

from geo.errors import InvalidInput
from geo.incidents.lifecycle import Report
from geo.times import parse_time

FIELDS = ("external_id", "category", "lon", "lat", "crs", "reported_at", "description", "channel",
          "contact", "photos")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a .csv or .geojson file, each a dict of its fields (a broken feature gets `_problem`)."""
    if not path.exists():
        raise InvalidInput(f"file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return [dict(r) for r in csv.DictReader(handle)]
    if suffix in (".geojson", ".json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path.name} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("features"), list):
            raise InvalidInput(f"{path.name} is not a GeoJSON FeatureCollection")
        rows = []
        for feature in data["features"]:
            if not isinstance(feature, dict):
                rows.append({"_problem": "a feature must be a JSON object"})
                continue
            props = feature.get("properties") or {}
            props = dict(props) if isinstance(props, dict) else {"_problem": "properties must be an object"}
            geometry = feature.get("geometry")
            geom = geometry if isinstance(geometry, dict) else {}
            coords = geom.get("coordinates")
            if geom.get("type") == "Point" and isinstance(coords, list) and len(coords) >= 2:
                props["lon"], props["lat"] = coords[:2]
            rows.append(props)
        return rows
    raise InvalidInput(f"{path.name}: import reads .csv or .geojson files")


def report_of(row: dict[str, Any], default_crs: str, zone: str) -> Report:
    """The report a row stands for, or InvalidInput naming what is wrong with it."""
    if row.get("_problem"):
        raise InvalidInput(row["_problem"])

    def text(key: str) -> str:
        value = row.get(key)
        return "" if value is None else str(value).strip()

    try:
        lon, lat = float(text("lon")), float(text("lat"))
    except ValueError:
        raise InvalidInput(f"lon/lat {text('lon')!r}, {text('lat')!r} are not numbers") from None
    photos = row.get("photos") or []
    if isinstance(photos, str):
        photos = [p.strip() for p in photos.split(";") if p.strip()]
    external_id = text("external_id") or "sha1:" + hashlib.sha1(
        json.dumps({k: row.get(k) for k in FIELDS}, sort_keys=True, default=str).encode()).hexdigest()
    return Report(
        category=text("category"), lon=lon, lat=lat, crs=text("crs") or default_crs,
        reported_at=parse_time(text("reported_at"), zone) if text("reported_at") else None,
        description=text("description"), channel=text("channel") or "import",
        contact=text("contact") or None, photos=list(photos), external_id=external_id,
    )
