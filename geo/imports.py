"""Loading files into the store: each load is one transaction, all or nothing."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pyogrio

from geo import audit, files, levels, store
from geo.auth import Identity
from geo.db.connection import connect
from geo.errors import Conflict, InvalidInput

SAMPLE_PATH = Path(__file__).resolve().parents[1] / "data" / "boundaries" / "sample-district.gpkg"


def load_file(
    path: str | Path,
    level: str,
    *,
    url: str | None = None,
    crs_text: str | None = None,
    code_field: str = "code",
    name_field: str = "name",
    households_field: str = "households",
    population_field: str = "population",
    layer: str | None = None,
    encoding: str | None = None,
    actor: str | Identity = "gridmap",
    progress: store.Progress = store._noop,
) -> dict:
    """Load one file of units (or roads, level 'road'); return what changed. A load that
    changes anything is recorded in the audit log, in its transaction."""
    if level.strip().lower() in ("road", "roads"):
        roads = files.read_roads(path, crs_text=crs_text, layer=layer)
        with connect(url) as conn, conn.transaction():
            change_id = conn.execute(
                "INSERT INTO change_set (kind, actor, note) VALUES ('load', %s, %s) RETURNING id",
                [str(actor), f"roads from {Path(path).name}"],
            ).fetchone()[0]
            count = store.load_roads(conn, roads, change_id)
            _audit(conn, actor, change_id, {"level": "road", "file": Path(path).name, "roads": count})
        return {"level": "road", "roads": count, "change_id": change_id}
    level = levels.parse_level(level)
    progress("reading", 0, 1)
    units, source = files.read_units(
        path, level, crs_text=crs_text, code_field=code_field, name_field=name_field,
        households_field=households_field, population_field=population_field, layer=layer,
        encoding=encoding,
    )
    progress("reading", 1, 1)
    try:
        with connect(url) as conn, conn.transaction():
            summary = store.write_units(
                conn, level, units, kind="load", actor=actor,
                note=f"{level} from {Path(path).name} ({source})", progress=progress,
            )
            if summary.change_id is not None:
                _audit(conn, actor, summary.change_id,
                       {"level": level, "file": Path(path).name, "crs": source, **summary.as_dict()})
    except (psycopg.errors.UniqueViolation, psycopg.errors.ExclusionViolation) as exc:
        raise _concurrent(exc) from None
    except psycopg.errors.DataError as exc:
        raise InvalidInput(f"{Path(path).name}: a value cannot be stored: {exc.diag.message_primary}") from None
    return {"level": level, "crs": source, "features": len(units), **summary.as_dict()}


def _audit(conn, actor: str | Identity, change_id: int, detail: dict) -> None:
    audit.record(conn, actor, "units.load", "change_set", [change_id], change_id=change_id, detail=detail)


def _concurrent(exc: Exception) -> Conflict:
    return Conflict(
        "another change to the same units was committed while this load ran "
        f"({exc.diag.message_primary}); nothing was stored: run the load again"
    )


def load_district(path: str | Path = SAMPLE_PATH, *, url: str | None = None, actor: str | Identity = "gridmap",
                  progress: store.Progress = store._noop, valid_from=None) -> dict:
    """Load every level of a district GeoPackage (layers named by level), in one transaction."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"district file not found: {path}; generate one with `gridmap sample`")
    layers = {name for name, _ in pyogrio.list_layers(path)}
    result = {}
    with connect(url) as conn, conn.transaction():
        change_id = None
        if valid_from is not None:  # the change set says when the boundaries took effect
            change_id = conn.execute(
                "INSERT INTO change_set (kind, actor, note, created_at) VALUES ('load', %s, %s, %s) RETURNING id",
                [str(actor), f"district from {path.name}, in force from {valid_from.isoformat()}", valid_from],
            ).fetchone()[0]
        for level in levels.LEVELS:
            if level not in layers:
                continue
            units, _ = files.read_units(path, level, layer=level)
            summary = store.write_units(
                conn, level, units, kind="load", actor=actor, note=f"district from {path.name}",
                progress=lambda stage, done, total, lv=level: progress(f"{lv}: {stage}", done, total),
                change_id=change_id, valid_from=valid_from,
            )
            change_id = summary.change_id or change_id
            result[level] = summary.as_dict()["created"] + summary.as_dict()["changed"]
        if "road" in layers:
            result["road"] = store.load_roads(conn, files.read_roads(path, layer="road"), change_id)
        if change_id is not None:
            _audit(conn, actor, change_id, {"file": path.name, "district": True, **result})
    return result
