"""gridmap init, load, export, sample and validate: the units in and out of the store."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

import typer

from cli.common import config, console, errors, me, progress


def _wait_for_database(seconds: float) -> None:
    """Try to connect until the database answers or `seconds` have passed (then the last error stands)."""
    import time

    import psycopg

    from geo.db.connection import database_url, redact

    if seconds <= 0:
        return  # no wait asked: the command's own connection reports a database that is down
    url = database_url()
    deadline = time.monotonic() + seconds
    while True:
        try:
            with psycopg.connect(url, connect_timeout=3):
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() >= deadline:
                console.print(f"[bold red]error:[/] the database at {redact(url)} did not answer within "
                              f"{seconds:g} s: {str(exc).strip()}")
                raise typer.Exit(2) from None
            console.print("waiting for the database…")
            time.sleep(2)


def init(
    sample: Path | None = typer.Option(None, help="District GeoPackage to load when the database is empty "
                                       "(default: data/boundaries/sample-district.gpkg)"),
    no_sample: bool = typer.Option(False, "--no-sample", help="Do not load the sample district."),
    wait: float = typer.Option(0, help="seconds to wait for the database to answer (a container starting "
                                       "beside it)"),
) -> None:
    """Create the schema and load the sample district if the database holds no units."""
    from geo.db import units
    from geo.db.connection import connect
    from geo.db.migrations import migrate as run
    from geo.usecases import units as unit_work

    with errors():
        _wait_for_database(wait)
        with connect() as conn:
            done = run(conn)
            counts = units.count_units(conn)
        if done:
            console.print(f"applied migrations: {', '.join(done)}")
        if counts:
            console.print("database holds units: " + ", ".join(f"{n} {lv}" for lv, n in counts.items()))
            return
        if no_sample:
            return
        from datetime import datetime, timedelta

        from geo.usecases import incidents
        from geo.usecases import workers as staff

        # the sample's boundaries are taken to be in force for a year; a worker for every grid and
        # community, and 60 days of generated incidents, give the dispatch views something to show
        now = datetime.now(UTC)
        with progress() as update:
            result = unit_work.load_district(sample or unit_work.SAMPLE_PATH, progress=update,
                                             valid_from=now - timedelta(days=365), actor=me())
            with connect() as conn:
                result["worker"] = staff.staff_sample(conn, me())
                result["incident"] = incidents.generate_sample(conn, SAMPLE_INCIDENTS, now - timedelta(days=60), now,
                                                               me(), progress=update)
        console.print("loaded sample district: " + ", ".join(f"{n} {lv}" for lv, n in result.items()))


SAMPLE_INCIDENTS = 3000


def load(
    file: Path = typer.Argument(..., help="GeoJSON, GeoPackage or Shapefile"),
    level: str = typer.Option(..., "--level", "-l", help="street, community, grid, compound, "
                              "neighbourhood, building (or road)"),
    crs: str | None = typer.Option(None, help="Source CRS when the file's own is missing or wrong: "
                                      "wgs84, cgcs2000 (EPSG:4490), EPSG:nnnn"),
    code_field: str = typer.Option("code", help="Field holding each unit's code"),
    name_field: str = typer.Option("name", help="Field holding each unit's name"),
    households_field: str = typer.Option("households"),
    population_field: str = typer.Option("population"),
    layer: str | None = typer.Option(None, help="Layer to read from a multi-layer file"),
    encoding: str | None = typer.Option(None, help="Text encoding of a Shapefile without .cpg "
                                           "(default: UTF-8 if it decodes, else GB18030)"),
    actor: str | None = typer.Option(None, help="On whose behalf (recorded as cli:<os user> as ACTOR)"),
) -> None:
    """Load units from a file: all or nothing; parents are found by geometry."""
    from geo.security.identity import Identity
    from geo.usecases import units as unit_work

    who = me() if actor is None else Identity(f"{me().label} as {actor}")

    with errors(), progress() as update:
        result = unit_work.load_file(
            file, level, crs_text=crs, code_field=code_field, name_field=name_field,
            households_field=households_field, population_field=population_field,
            layer=layer, encoding=encoding, actor=who, progress=update,
        )
    console.print(json.dumps(result, ensure_ascii=False))


def export(
    level: str = typer.Option(..., "--level", "-l"),
    fmt: str = typer.Option("gpkg", "--format", "-f", help="geojson, gpkg or shp"),
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default: <level>.<format>)"),
    as_of: str | None = typer.Option(None, "--as-of", help="The boundaries valid at this time "
                                        "(ISO 8601; without a zone, Asia/Shanghai)"),
) -> None:
    """Write the units of one level, now or as of a past time, to a file QGIS opens."""
    from geo.db.connection import connect
    from geo.times import parse_time
    from geo.units import levels
    from geo.usecases import units as unit_work

    with errors():
        lv = levels.parse_level(level)
        when = parse_time(as_of, config().tz)
        with connect() as conn:
            path, count = unit_work.export(conn, lv, fmt, output or Path(f"{lv}.{fmt}"), when)
        console.print(f"wrote {count} {lv} units to {path}")


def sample(
    seed: int = typer.Option(7, help="Random seed; the same seed gives the same district"),
    scale: float = typer.Option(1.0, help="1.0 = the shipped sample (4 streets, ~50 communities, "
                                "~320 grids); 200 = a Chongqing-size city of ~65,000 grids"),
    grids: int | None = typer.Option(None, help="Aim for about this many grids instead of --scale"),
    output: Path = typer.Option(Path("data/boundaries/sample-district.gpkg"), "--output", "-o"),
) -> None:
    """Generate a realistic district (roads, compounds, buildings, all unit levels)."""
    from geo.sample import district as gen

    if grids:
        scale = grids / gen.GRIDS_PER_SCALE
    with errors(), progress() as update:
        district = gen.generate(seed=seed, scale=scale, progress=update)
        update("writing", 0, 1)
        district.write(output)
        update("writing", 1, 1)
    console.print(f"wrote {output}: " + ", ".join(f"{n} {k}" for k, n in district.summary().items()))


def validate_units(
    level: str | None = typer.Option(None, "--level", "-l", help="one level (default: all)"),
    output: Path | None = typer.Option(None, "--output", "-o", help="write the problems as GeoJSON"),
) -> None:
    """Report gaps, overlaps, units outside their parent or band, and non-contiguous units."""
    from geo.db.connection import connect
    from geo.units import levels
    from geo.usecases import validation

    with errors(), connect() as conn:
        report = validation.validate(conn, levels.parse_level(level) if level else None)
    if output:
        output.write_text(validation.to_text(report), encoding="utf-8")
        console.print(f"wrote {len(report['features'])} problem(s) to {output}")
    for f in report["features"][:50]:
        console.print(f"{f['properties']['problem']:<15} {f['properties']['message']}")
    if len(report["features"]) > 50:
        console.print(f"... and {len(report['features']) - 50} more")
    console.print(f"counts: {report['counts'] or 'no problems'}")
    if any(k in report["counts"] for k in ("gap", "overlap", "outside_parent")):
        raise typer.Exit(1)


units_app = typer.Typer(help="Correct stored units.", no_args_is_help=True)


@units_app.command("recode")
def recode(
    unit: str = typer.Argument(..., help="the unit's id or current code"),
    code: str = typer.Argument(..., help="its corrected code (it must name the parents the unit lies in)"),
    note: str | None = typer.Option(None, help="why (kept with the change and in the audit log)"),
) -> None:
    """Correct a unit's code; the codes of everything under it follow. The old code stays
    readable as of before, and is never given to other land."""
    from geo.db import units
    from geo.db.connection import connect
    from geo.usecases import units as unit_work

    with errors(), connect() as conn:
        with conn.transaction():
            result = unit_work.recode_unit(conn, units.resolve(conn, unit), code, actor=me(), note=note)
    for r in result["recoded"]:
        console.print(f"{r['level']} {r['from']} -> {r['to']}")
    if not result["recoded"]:
        console.print(f"{result['level']} {result['code']} already has that code: nothing changed")


@units_app.command("repair-codes")
def repair_codes() -> None:
    """Recode every unit whose code names another parent than the one it lies in (databases
    written before codes followed the chain can hold such codes); everything beneath follows,
    in one transaction, with an audit row per unit. `gridmap validate` lists them first."""
    from geo.db.connection import connect
    from geo.usecases import units as unit_work

    with errors(), connect() as conn, progress() as update:
        with conn.transaction():
            changed = unit_work.repair_codes(conn, actor=me(), progress=update)
    for r in changed:
        console.print(f"{r['level']} {r['from']} -> {r['to']}")
    console.print(f"{len(changed)} code(s) changed" if changed else "every code agrees with its chain: nothing to do")
