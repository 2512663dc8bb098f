"""Unit files in and out: GeoJSON, GeoPackage and Shapefile through pyogrio.

`read_units` turns a file into UnitInput records in WGS84 (reprojecting with pyproj);
`export_units` writes units of one level (rows read as of any time) to a file QGIS opens.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geo.coords import crs as crsmod
from geo.coords.points import Area
from geo.errors import InvalidInput
from geo.units import levels
from geo.units.geometry import check_coordinates
from geo.units.levels import CHAIN_COLUMNS
from geo.units.model import UnitInput

FORMATS = {"geojson": ("GeoJSON", ".geojson"), "gpkg": ("GPKG", ".gpkg"), "shp": ("ESRI Shapefile", ".shp")}

# Shapefile field names are limited to 10 characters.
SHAPEFILE_NAMES = {
    "street_code": "street_cd", "community_code": "commun_cd", "grid_code": "grid_cd",
    "compound_code": "cmpd_cd", "neighbourhood_code": "nbhd_cd", "attributes": "attrs",
}
_FROM_SHAPEFILE = {short: long for long, short in SHAPEFILE_NAMES.items()}
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx")
MAX_COUNT = 2**31 - 1
# Columns an export writes that a load must not take as attributes.
_BOOKKEEPING = {"unit_id", "id", "level", "version", "valid_from", "valid_to", *CHAIN_COLUMNS}


def _layer(path: Path, level: str, layer: str | None) -> str | None:
    try:
        layers: list[str] = [name for name, _ in pyogrio.list_layers(path)]
    except Exception as exc:  # pyogrio raises DataSourceError and others
        raise InvalidInput(f"cannot read {path.name}: {exc}") from None
    if layer:
        if layer not in layers:
            raise InvalidInput(f"{path.name} has no layer {layer!r}; it has {', '.join(layers)}")
        return layer
    if len(layers) == 1:
        return layers[0]
    for name in layers:
        if name.lower() in (level, level + "s"):
            return name
    raise InvalidInput(
        f"{path.name} has layers {', '.join(layers)}: name the one to load with --layer"
    )


def _shapefile_encoding(path: Path) -> str | None:
    """A Shapefile without a .cpg says nothing of its encoding: UTF-8 if its text decodes
    as UTF-8, else GB18030 (the superset of GBK that Chinese GIS software writes)."""
    if path.suffix.lower() != ".shp" or path.with_suffix(".cpg").exists():
        return None
    dbf = path.with_suffix(".dbf")
    if not dbf.exists():
        return None
    try:
        dbf.read_bytes().decode("utf-8")
        return "UTF-8"
    except UnicodeDecodeError:
        return "GB18030"


def read_frame(path: str | Path, level: str, crs_text: str | None = None,
               layer: str | None = None, encoding: str | None = None) -> tuple[gpd.GeoDataFrame, str]:
    """The file's features in WGS84, and the name of the CRS they came in."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"file not found: {path}")
    layer_name = _layer(path, level, layer)
    encoding = encoding or _shapefile_encoding(path)
    try:
        frame = pyogrio.read_dataframe(path, layer=layer_name, **({"encoding": encoding} if encoding else {}))
    except Exception as exc:
        raise InvalidInput(f"cannot read {path.name}: {exc}") from None
    frame = frame.rename(columns={c: _FROM_SHAPEFILE.get(c, c) for c in frame.columns})
    if crs_text:
        source = crsmod.parse(crs_text)
    elif frame.crs is not None:
        source = frame.crs
    else:
        raise InvalidInput(
            f"{path.name} does not say which CRS it is in: pass --crs (wgs84, cgcs2000 or EPSG:nnnn)"
        )
    geoms = frame.geometry.values
    geoms = np.asarray(shapely.force_2d(np.asarray(geoms, dtype=object)), dtype=object)
    frame = gpd.GeoDataFrame(frame.drop(columns="geometry"),
                             geometry=crsmod.to_wgs84(geoms, source), crs=4326)
    return frame, crsmod.name(source)


def _plain(value: Any) -> Any:
    """A JSON-friendly Python value from a pandas cell, or None for missing."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    return value


def _count(value: Any, field: str, label: str) -> int | None:
    value = _plain(value)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{label}: {field} {value!r} is not a number") from None
    if not math.isfinite(number) or number < 0 or number != int(number) or number > MAX_COUNT:
        raise InvalidInput(f"{label}: {field} must be a whole number from 0 to {MAX_COUNT}, not {value!r}")
    return int(number)


def _code_text(value: Any) -> str:
    """A code as text; a numeric column read as float loses its '.0'."""
    value = _plain(value)
    text = "" if value is None else str(value).strip()
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]
    return text


def read_units(
    path: str | Path,
    level: str,
    *,
    crs_text: str | None = None,
    code_field: str = "code",
    name_field: str = "name",
    households_field: str = "households",
    population_field: str = "population",
    layer: str | None = None,
    encoding: str | None = None,
) -> tuple[list[UnitInput], str]:
    """UnitInput records from a file, and the CRS the file was read in."""
    level = levels.parse_level(level)
    path = Path(path)
    frame, source = read_frame(path, level, crs_text, layer, encoding)
    if len(frame) == 0:
        raise InvalidInput(f"{path.name} has no features")
    if code_field not in frame.columns:
        raise InvalidInput(
            f"{path.name} has no field {code_field!r} for unit codes; its fields are "
            f"{', '.join(c for c in frame.columns if c != 'geometry')}: pass --code-field"
        )
    if name_field not in frame.columns:
        raise InvalidInput(
            f"{path.name} has no field {name_field!r} for names; pass --name-field"
        )
    parent_fields = {p: f"{p}_code" for p in levels.PARENTS[level] if f"{p}_code" in frame.columns}
    reserved = {code_field, name_field, households_field, population_field, "geometry",
                *parent_fields.values(), *_BOOKKEEPING, *(f"{lv}_code" for lv in levels.ancestors(level))}
    extra = [c for c in frame.columns if c not in reserved]
    # counts the file does not carry keep their stored values
    keep = {f for f, col in (("households", households_field), ("population", population_field))
            if col not in frame.columns}
    units = []
    records = frame.to_dict("records")
    geoms = frame.geometry.values
    for i, rec in enumerate(records):
        code = _code_text(rec.get(code_field))
        label = f"{path.name} feature {i + 1} ({level} {code or 'without code'})"
        attributes = {}
        if isinstance(rec.get("attributes"), str) and rec["attributes"].strip().startswith("{"):
            try:
                attributes.update(json.loads(rec["attributes"]))
            except json.JSONDecodeError:
                raise InvalidInput(f"{label}: field attributes is not valid JSON") from None
        for col in extra:
            if col == "attributes":
                continue
            value = _plain(rec.get(col))
            if value is not None:
                attributes[col] = value
        units.append(UnitInput(
            level=level,
            code=code,
            name=str(_plain(rec.get(name_field)) or ""),
            geom=geoms[i],
            households=_count(rec.get(households_field), households_field, label),
            population=_count(rec.get(population_field), population_field, label),
            attributes=attributes,
            parent_codes={p: _code_text(rec.get(f)) for p, f in parent_fields.items()
                          if _code_text(rec.get(f))},
            label=label,
            keep=keep,
        ))
    return units, source


def read_roads(path: str | Path, area: Area, *, crs_text: str | None = None,
               layer: str | None = None) -> list[dict[str, Any]]:
    """Road centre lines (LineStrings) from a file, in WGS84, checked to lie in the area."""
    frame, _ = read_frame(path, "road", crs_text, layer)
    if len(frame) == 0:
        raise InvalidInput(f"{Path(path).name} has no features")
    out = []
    for i, rec in enumerate(frame.to_dict("records")):
        geom = frame.geometry.values[i]
        label = f"{Path(path).name} feature {i + 1} (road)"
        if geom is None or geom.geom_type not in ("LineString", "MultiLineString"):
            raise InvalidInput(f"{label}: a road must be a LineString, not {getattr(geom, 'geom_type', 'nothing')}")
        if geom.geom_type == "LineString":
            geom = shapely.multilinestrings([geom])
        out.append({
            "code": str(_plain(rec.get("code")) or f"road-{i + 1}"),
            "name": str(_plain(rec.get("name")) or ""),
            "kind": str(_plain(rec.get("kind")) or "local"),
            "geom": geom,
            "attributes": {k: _plain(v) for k, v in rec.items()
                           if k not in ("code", "name", "kind", "geometry") and _plain(v) is not None},
        })
    check_coordinates(np.array([r["geom"] for r in out], dtype=object), [f"road {r['code']}" for r in out], area)
    return out


def export_frame(rows: list[dict[str, Any]], level: str) -> gpd.GeoDataFrame:
    """The rows of units of one level (geo/db/units.py units_rows) as a frame to write."""
    wanted = [f"{lv}_code" for lv in levels.ancestors(level)]
    records = []
    for r in rows:
        rec = {
            "unit_id": r["unit_id"], "level": r["level"], "code": r["code"], "name": r["name"],
            "version": r["version"], "households": r["households"], "population": r["population"],
        }
        for key in wanted:
            rec[key] = r.get(key)
        rec["valid_from"] = r["valid_from"].isoformat()
        rec["valid_to"] = r["valid_to"].isoformat() if r["valid_to"] else None
        rec["attributes"] = json.dumps(r["attributes"], ensure_ascii=False, sort_keys=True)
        records.append(rec)
    columns = ["unit_id", "level", "code", "name", "version", "households", "population", *wanted,
               "valid_from", "valid_to", "attributes"]
    frame = pd.DataFrame.from_records(records, columns=columns)
    for col in ("households", "population"):
        frame[col] = frame[col].astype("Int64")
    return gpd.GeoDataFrame(frame, geometry=[r["geom"] for r in rows], crs=4326)


def export_units(rows: list[dict[str, Any]], level: str, fmt: str, out: str | Path,
                 as_of: datetime | None = None) -> tuple[Path, int]:
    """Write the rows of units of `level` (read as of `as_of`) to `out`; return the path and count."""
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}: use geojson, gpkg or shp")
    driver, suffix = FORMATS[fmt]
    out = Path(out)
    if out.suffix.lower() != suffix:
        out = out.with_suffix(suffix)
    frame = export_frame(rows, level)
    if len(frame) == 0:
        when = f" as of {as_of.isoformat()}" if as_of else ""
        raise InvalidInput(f"no {level} units are stored{when}: nothing to export")
    out.parent.mkdir(parents=True, exist_ok=True)
    options = {}
    if fmt == "shp":
        kinds = set(frame.geometry.geom_type)
        if len(kinds) > 1 and not kinds <= {"Polygon", "MultiPolygon"}:
            raise InvalidInput(
                f"the {level} units mix {' and '.join(sorted(kinds))}, which a Shapefile cannot hold: "
                "export as gpkg or geojson"
            )
        frame = frame.rename(columns=SHAPEFILE_NAMES)
        options["encoding"] = "UTF-8"
    parts = [out.with_suffix(ext) for ext in SHAPEFILE_PARTS] if fmt == "shp" else [out]
    for part in parts:
        if part.exists():
            part.unlink()
    layer = level if fmt == "gpkg" else None
    pyogrio.write_dataframe(frame, out, driver=driver, layer=layer, **options)
    return out, len(frame)
