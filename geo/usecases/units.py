"""Units as people change them: load a file or a whole district (one transaction each, all
or nothing), edit one unit, export a level. Each change writes its audit row in its transaction.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pyogrio

from geo import settings
from geo.db import audit, roads, unit_writes, units
from geo.db.connection import connect
from geo.errors import Conflict, Gone, InvalidInput, NotFound
from geo.files import units as files
from geo.security.identity import Identity
from geo.units import codes, levels
from geo.units.model import Progress, UnitInput, no_progress
from geo.usecases.boundaries import write_units

SAMPLE_PATH = Path(__file__).resolve().parents[2] / "data" / "boundaries" / "sample-district.gpkg"


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
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Load one file of units (or roads, level 'road'); return what changed. A load that
    changes anything is recorded in the audit log, in its transaction."""
    if level.strip().lower() in ("road", "roads"):
        lines = files.read_roads(path, settings.get().bounds, crs_text=crs_text, layer=layer)
        with connect(url) as conn, conn.transaction():
            change_id = unit_writes.open_change_set(conn, "load", actor, f"roads from {Path(path).name}")
            count = roads.load_roads(conn, lines, change_id)
            _audit(conn, actor, change_id, {"level": "road", "file": Path(path).name, "roads": count})
        return {"level": "road", "roads": count, "change_id": change_id}
    level = levels.parse_level(level)
    progress("reading", 0, 1)
    found, source = files.read_units(
        path, level, crs_text=crs_text, code_field=code_field, name_field=name_field,
        households_field=households_field, population_field=population_field, layer=layer,
        encoding=encoding,
    )
    progress("reading", 1, 1)
    try:
        with connect(url) as conn, conn.transaction():
            summary = write_units(
                conn, level, found, kind="load", actor=actor,
                note=f"{level} from {Path(path).name} ({source})", progress=progress,
            )
            if summary.change_id is not None:
                _audit(conn, actor, summary.change_id,
                       {"level": level, "file": Path(path).name, "crs": source, **summary.as_dict()})
    except (psycopg.errors.UniqueViolation, psycopg.errors.ExclusionViolation) as exc:
        raise _concurrent(exc) from None
    except psycopg.errors.DataError as exc:
        raise InvalidInput(f"{Path(path).name}: a value cannot be stored: {exc.diag.message_primary}") from None
    return {"level": level, "crs": source, "features": len(found), **summary.as_dict()}


def _audit(conn: psycopg.Connection, actor: str | Identity, change_id: int, detail: dict[str, Any]) -> None:
    audit.record(conn, actor, "units.load", "change_set", [change_id], change_id=change_id, detail=detail)


def _concurrent(exc: psycopg.Error) -> Conflict:
    return Conflict(
        "another change to the same units was committed while this load ran "
        f"({exc.diag.message_primary}); nothing was stored: run the load again"
    )


def load_district(path: str | Path = SAMPLE_PATH, *, url: str | None = None, actor: str | Identity = "gridmap",
                  progress: Progress = no_progress, valid_from: datetime | None = None) -> dict[str, Any]:
    """Load every level of a district GeoPackage (layers named by level), in one transaction."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"district file not found: {path}; generate one with `gridmap sample`")
    layers = {name for name, _ in pyogrio.list_layers(path)}
    result: dict[str, int] = {}
    with connect(url) as conn, conn.transaction():
        change_id = None
        if valid_from is not None:  # the change set says when the boundaries took effect
            change_id = unit_writes.open_change_set(
                conn, "load", actor, f"district from {path.name}, in force from {valid_from.isoformat()}", valid_from)
        for level in levels.LEVELS:
            if level not in layers:
                continue
            found, _ = files.read_units(path, level, layer=level)
            summary = write_units(
                conn, level, found, kind="load", actor=actor, note=f"district from {path.name}",
                progress=_of_level(progress, level),
                change_id=change_id, valid_from=valid_from,
            )
            change_id = summary.change_id or change_id
            result[level] = len(summary.created) + len(summary.changed)
        if "road" in layers:
            result["road"] = roads.load_roads(conn, files.read_roads(path, settings.get().bounds, layer="road"),
                                              change_id)
        if change_id is not None:
            _audit(conn, actor, change_id, {"file": path.name, "district": True, **result})
    return result


def _of_level(progress: Progress, level: str) -> Progress:
    """`progress` with each stage named after the level it is at."""
    def report(stage: str, done: int, total: int) -> None:
        progress(f"{level}: {stage}", done, total)

    return report


def _lock_current(conn: psycopg.Connection, unit_id: int) -> dict[str, Any]:
    """The current version of a unit, locked; Gone (with where it went) for a retired unit,
    NotFound for one that never existed."""
    row = unit_writes.lock_one(conn, unit_id)
    if row is not None:
        return row
    last = units.retired(conn, unit_id)
    if last is None:
        raise NotFound(f"no current unit with id {unit_id}")
    became = ", ".join(f"{u['code']} (unit {u['unit_id']})" for u in last["successors"]) or "no current unit"
    raise Gone(f"{last['level']} {last['code']} (unit {unit_id}) was retired at {last['retired_at'].isoformat()} "
               f"and can no longer change; it became {became}", last)


def edit_unit(
    conn: psycopg.Connection,
    unit_id: int,
    *,
    expected_version: int,
    geom: Any = None,
    name: str | None = None,
    households: int | None = None,
    population: int | None = None,
    attributes: dict[str, Any] | None = None,
    actor: str | Identity = "gridmap",
    note: str | None = None,
) -> dict[str, Any]:
    """Open a new version of one unit; refuse (Conflict) if it changed since `expected_version`.
    The edit is recorded in the audit log, in the same transaction."""
    row = _lock_current(conn, unit_id)
    level, code, version = row["level"], row["code"], row["version"]
    if version != expected_version:
        raise Conflict(
            f"{level} {code} is at version {version}, but the edit was made on version "
            f"{expected_version}: reload the unit and make the edit again"
        )
    unit = UnitInput(
        level=level, code=code,
        name=row["name"] if name is None else name,
        geom=row["geom"] if geom is None else geom,
        households=row["households"] if households is None else households,
        population=row["population"] if population is None else population,
        attributes=row["attributes"] if attributes is None else attributes,
        label=f"{level} {code}",
    )
    summary = write_units(conn, level, [unit], kind="edit", actor=actor, note=note)
    result = units.get_unit(conn, unit_id)
    if summary.change_id is not None:  # an edit that changes nothing opens no version
        given = {"geometry": geom, "name": name, "households": households, "population": population,
                 "attributes": attributes}
        audit.record(conn, actor, "unit.edit", "unit", [unit_id], change_id=summary.change_id,
                     before={"version": version}, after={"version": result["version"]},
                     detail={"level": level, "code": code, "fields": [k for k, v in given.items() if v is not None],
                             "note": note})
    return result | {"change_id": summary.change_id}


def recode_unit(conn: psycopg.Connection, unit_id: int, code: str, *, expected_version: int | None = None,
                actor: str | Identity = "gridmap", note: str | None = None) -> dict[str, Any]:
    """Correct one unit's code: a new version with the new code (the old one stays readable as
    of before), its descendants' codes following it, and an audit row, in the caller's
    transaction. The code must name the parents the unit lies in and must never have been
    given to another unit of its level."""
    row = _lock_current(conn, unit_id)
    level, old, version = row["level"], row["code"], row["version"]
    if expected_version is not None and version != expected_version:
        raise Conflict(f"{level} {old} is at version {version}, but the recode was asked for version "
                       f"{expected_version}: reload the unit and try again")
    new = codes.check(level, code, f"{level} {old}")
    if new == old:
        return units.get_unit(conn, unit_id) | {"change_id": None, "recoded": []}
    if others := unit_writes.holders_of_code(conn, level, new) - {unit_id}:
        raise Conflict(f"{level} code {new} belongs to unit {min(others)} (current or retired): a code once "
                       "given is never given to other land; choose another")
    unit = UnitInput(level=level, code=new, name=row["name"], geom=row["geom"], households=row["households"],
                     population=row["population"], attributes=row["attributes"], label=f"{level} {old}",
                     unit_id=unit_id)
    summary = write_units(conn, level, [unit], kind="edit", actor=actor, note=note or f"recode {old} -> {new}")
    recoded = summary.recoded  # this unit first, then its descendants
    result = units.get_unit(conn, unit_id)
    audit.record(conn, actor, "unit.recode", "unit", [unit_id], change_id=summary.change_id,
                 before={"code": old, "version": version}, after={"code": new, "version": result["version"]},
                 detail={"level": level, "note": note, "descendants": len(recoded) - 1})
    return result | {"change_id": summary.change_id, "recoded": recoded}


def repair_codes(conn: psycopg.Connection, *, actor: str | Identity = "gridmap",
                 progress: Progress = no_progress) -> list[dict[str, Any]]:
    """Recode every unit whose code contradicts its chain (as databases written before codes
    followed the chain can hold), outermost level first, each to the code under the parent it
    lies in (geo/units/codes.py `rehome`), its descendants following; in the caller's
    transaction, one audit row per unit. Returns every code changed."""
    changed: list[dict[str, Any]] = []
    for level in levels.LEVELS:
        p_level = codes.code_parent_level(level)
        if p_level is None:
            continue
        wrong = [r for r in units.code_chains(conn, level, p_level)
                 if r["parent_code"] and codes.against_chain(level, r["code"], r["parent_code"])]
        if not wrong:
            continue
        prefixes = sorted({codes.parent_part(level, r["parent_code"]) for r in wrong})
        taken = unit_writes.codes_taken(conn, level, prefixes)
        for k, r in enumerate(wrong):
            progress(f"recoding {level} units", k, len(wrong))
            new = codes.rehome(level, r["code"], r["parent_code"], taken, r["unit_id"])
            changed += recode_unit(conn, r["unit_id"], new, actor=actor,
                                   note="code repaired to follow its chain")["recoded"]
        progress(f"recoding {level} units", len(wrong), len(wrong))
    return changed


def export(conn: psycopg.Connection, level: str, fmt: str, out: str | Path,
           as_of: datetime | None = None) -> tuple[Path, int]:
    """Write the units of `level` (as of a time) to a file QGIS opens; the path and count."""
    level = levels.parse_level(level)
    return files.export_units(units.units_rows(conn, level, as_of=as_of), level, fmt, out, as_of)
