"""Bulk import of incidents (hotline exports): CSV or GeoJSON, one savepoint per row.

Valid rows are kept and bad ones are written to an errors file with the reason. A row is
stored once: by its external id, or, when it has none, by a digest of its contents, so running
the same file again adds nothing.
"""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Callable

import psycopg

from geo import incidents, locate, store
from geo.auth import Identity
from geo.db.connection import connect
from geo.errors import GridmapError, InvalidInput
from geo.locate import Locator

FIELDS = ("external_id", "category", "lon", "lat", "crs", "reported_at", "description", "channel",
          "contact", "photos")


def _rows(path: Path) -> list[dict]:
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
            geom = feature.get("geometry") if isinstance(feature.get("geometry"), dict) else {}
            coords = geom.get("coordinates")
            if geom.get("type") == "Point" and isinstance(coords, list) and len(coords) >= 2:
                props["lon"], props["lat"] = coords[:2]
            rows.append(props)
        return rows
    raise InvalidInput(f"{path.name}: import reads .csv or .geojson files")


def _report(row: dict, default_crs: str) -> incidents.Report:
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
    return incidents.Report(
        category=text("category"), lon=lon, lat=lat, crs=text("crs") or default_crs,
        reported_at=store.parse_time(text("reported_at")) if text("reported_at") else None,
        description=text("description"), channel=text("channel") or "import",
        contact=text("contact") or None, photos=list(photos), external_id=external_id,
    )


def import_file(path: str | Path, *, crs: str = "wgs84", errors_path: str | Path | None = None,
                url: str | None = None, actor: str = "import", who: str | Identity | None = None,
                progress: Callable[[str, int, int], None] = lambda *a: None) -> dict:
    """Import a file of incidents; returns counts and where the errors went. Each row taken
    in is audited as an intake by `who` (default: `actor`)."""
    path = Path(path)
    rows = _rows(path)
    errors_path = Path(errors_path) if errors_path else path.with_name(path.stem + ".errors.csv")
    created = existing = 0
    problems: list[tuple[int, str, str]] = []
    states: dict[tuple, Locator] = {}
    with connect(url) as conn:
        changes = [(r[0], r[1]) for r in conn.execute("SELECT id, created_at FROM change_set ORDER BY id")]
        conn.commit()

        def locator_for(when: datetime) -> Locator:
            key = max((cid for cid, at in changes if at <= when), default=0)
            if key not in states:
                if len(states) >= 2:
                    states.pop(next(iter(states)))
                states[key] = locate.load(conn, as_of=when)
            return states[key]

        for n, row in enumerate(rows, start=1):
            try:
                with conn.transaction():
                    report = _report(row, crs)
                    _, was_new = incidents.report_incident(conn, report, locator_for, actor=actor, who=who)
                created += was_new
                existing += not was_new
            except GridmapError as exc:
                problems.append((n, str(row.get("external_id") or ""), str(exc)))
            except psycopg.Error as exc:  # one row the database refuses does not stop the others
                problems.append((n, str(row.get("external_id") or ""),
                                 f"refused by the database: {exc.diag.message_primary or exc}"))
            if n % 200 == 0:
                progress("importing", n, len(rows))
        progress("importing", len(rows), len(rows))
    if problems:
        with errors_path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["row", "external_id", "error"])
            writer.writerows(problems)
    elif errors_path.exists():
        errors_path.unlink()
    return {"rows": len(rows), "created": created, "already_stored": existing, "errors": len(problems),
            "errors_file": str(errors_path) if problems else None}
