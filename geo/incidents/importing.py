"""Reading hotline exports of incidents: CSV or GeoJSON Points, one report per row.

Columns (CSV header or GeoJSON properties), in English or as Chinese hotline exports name them
(COLUMNS): external_id, category (a code, the Chinese name or an alias), lon, lat (a GeoJSON
Point gives them), crs, reported_at, description, channel, contact, photos (URLs separated by
`;`). category, lon and lat are needed; other columns are ignored. A CSV is read as UTF-8 (with
or without a BOM) or, failing that, as GB18030 (what Excel saves in China).

A row is stored once: by its external id, or, when it has none, by a digest of its contents,
so importing the same file again adds nothing (geo/usecases/incidents.py imports them). Rows
that cannot be stored are written whole to an errors file beside their reason, in the file's
own form: fixed there, that file imports as it is.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geo.errors import InvalidInput
from geo.incidents.lifecycle import Report
from geo.times import parse_time

FIELDS = ("external_id", "category", "lon", "lat", "crs", "reported_at", "description", "channel",
          "contact", "photos")
NEEDED = ("category", "lon", "lat")
# what Chinese hotline exports call each column (a header is matched trimmed, English ones in any case)
COLUMNS: dict[str, tuple[str, ...]] = {
    "external_id": ("工单号", "工单编号", "事件编号", "编号"),
    "category": ("类别", "事件类型", "问题类型", "事件类别"),
    "lon": ("经度",),
    "lat": ("纬度",),
    "crs": ("坐标系",),
    "reported_at": ("上报时间", "受理时间", "时间"),
    "description": ("描述", "问题描述", "事件描述", "内容"),
    "channel": ("渠道", "来源"),
    "contact": ("联系方式", "联系电话", "电话"),
    "photos": ("照片", "图片"),
}
_FIELD_OF = {alias: name for name, aliases in COLUMNS.items() for alias in (name, *aliases)}


@dataclass
class Source:
    """A file's rows: each as the report's fields, and as it was in the file (for the errors file)."""

    path: Path
    kind: str  # "csv" or "geojson"
    rows: list[dict[str, Any]]
    originals: list[Any]  # CSV: the row's columns as read; GeoJSON: the feature
    columns: list[str] = field(default_factory=list)  # a CSV's header, in its order

    def errors_path(self) -> Path:
        return self.path.with_name(f"{self.path.stem}.errors.{'csv' if self.kind == 'csv' else 'geojson'}")

    def write_errors(self, problems: list[tuple[int, str]], path: Path) -> None:
        """The rows refused (`problems`: row number from 1, reason), whole, each beside its reason."""
        if self.kind == "csv":
            # with a BOM: Excel then reads the Chinese right
            with path.open("w", newline="", encoding="utf-8-sig") as handle:
                writer = csv.writer(handle)
                writer.writerow(["row", "error", *self.columns])
                for n, reason in problems:
                    original = self.originals[n - 1]
                    writer.writerow([n, reason, *(original.get(c, "") for c in self.columns)])
            return
        features = []
        for n, reason in problems:
            feature = self.originals[n - 1]
            feature = dict(feature) if isinstance(feature, dict) else {"type": "Feature", "geometry": None,
                                                                        "original": feature}
            props = feature.get("properties")
            feature["properties"] = {**(props if isinstance(props, dict) else {}), "row": n, "error": reason}
            features.append(feature)
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False,
                                   indent=1), encoding="utf-8")


def _field(header: str) -> str | None:
    name = header.strip()
    return _FIELD_OF.get(name) or _FIELD_OF.get(name.lower())


def _text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return raw.decode("gb18030")
        except UnicodeDecodeError:
            raise InvalidInput(f"{path.name} is neither UTF-8 nor GB18030 text: save it as UTF-8 CSV") from None


def read_rows(path: Path) -> Source:
    """The rows of a .csv or .geojson file (a broken feature gets `_problem`); InvalidInput when
    the file cannot be read or lacks a needed column."""
    if not path.exists():
        raise InvalidInput(f"file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        reader = csv.DictReader(_text(path).splitlines())
        columns = list(reader.fieldnames or [])
        fields = {c: f for c in columns if (f := _field(c))}
        missing = [f for f in NEEDED if f not in fields.values()]
        if missing:
            raise InvalidInput(
                f"{path.name} has no column for {', '.join(missing)} (" +
                "; ".join(f"{f}: {' or '.join((f, *COLUMNS[f]))}" for f in missing) +
                f"); its columns: {', '.join(columns) or 'none'}")
        originals = [dict(r) for r in reader]
        rows: list[dict[str, Any]] = [{fields[c]: v for c, v in r.items() if c in fields} for r in originals]
        return Source(path, "csv", rows, originals, columns)
    if suffix in (".geojson", ".json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{path.name} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("features"), list):
            raise InvalidInput(f"{path.name} is not a GeoJSON FeatureCollection")
        rows = []
        for feature in data["features"]:
            if not isinstance(feature, dict):
                rows.append({"_problem": "a feature must be a JSON object"})
                continue
            props = feature.get("properties") or {}
            if isinstance(props, dict):
                props = {f: v for k, v in props.items() if (f := _field(str(k)))}
            else:
                props = {"_problem": "properties must be an object"}
            geometry = feature.get("geometry")
            geom = geometry if isinstance(geometry, dict) else {}
            coords = geom.get("coordinates")
            if geom.get("type") == "Point" and isinstance(coords, list) and len(coords) >= 2:
                props["lon"], props["lat"] = coords[:2]
            rows.append(props)
        return Source(path, "geojson", rows, list(data["features"]))
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
