"""The `gridmap` command: database, loading, export, sample data and the server."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from geo.errors import GridmapError

app = typer.Typer(help="gridmap: nested, versioned grid-governance units on PostGIS.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the embedded PostGIS cluster under .gridmap/pg.", no_args_is_help=True)
app.add_typer(db_app, name="db")
incidents_app = typer.Typer(help="Incidents: bulk import of hotline exports.", no_args_is_help=True)
app.add_typer(incidents_app, name="incidents")
console = Console(stderr=True)


@contextmanager
def _errors():
    try:
        yield
    except GridmapError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None


@contextmanager
def _progress():
    """A progress bar; yields a callback (stage, done, total)."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=max(total, 1))
            bar.update(tasks[stage], completed=done, total=max(total, 1))

        yield update


# ---- db ----------------------------------------------------------------------------

@db_app.command("start")
def db_start() -> None:
    """Initialise (first time) and start the embedded cluster."""
    from geo.db.embedded import default_cluster

    with _errors():
        cluster = default_cluster()
        cluster.start()
        console.print(f"embedded PostGIS {cluster.status()}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded cluster (data is kept)."""
    from geo.db.embedded import default_cluster

    with _errors():
        cluster = default_cluster()
        cluster.stop()
        console.print(f"embedded PostGIS {cluster.status()}")


@db_app.command("status")
def db_status() -> None:
    """Say whether the embedded cluster runs (exit 1 when it does not)."""
    from geo.db.embedded import default_cluster

    with _errors():
        cluster = default_cluster()
        print(cluster.status())
        if not cluster.running():
            raise typer.Exit(1)


@db_app.command("url")
def db_url() -> None:
    """Print the URL of the database gridmap uses (DATABASE_URL, else the embedded one)."""
    from geo.db.connection import database_url

    with _errors():
        print(database_url())


# ---- schema and data ---------------------------------------------------------------

@app.command()
def migrate() -> None:
    """Apply the SQL migrations not yet applied."""
    from geo.db.connection import connect
    from geo.db.migrations import migrate as run

    with _errors(), connect() as conn:
        done = run(conn)
        console.print(f"applied {len(done)} migration(s)" + (f": {', '.join(done)}" if done else ""))


@app.command()
def init(
    sample: Path = typer.Option(None, help="District GeoPackage to load when the database is empty "
                                "(default: data/boundaries/sample-district.gpkg)"),
    no_sample: bool = typer.Option(False, "--no-sample", help="Do not load the sample district."),
) -> None:
    """Create the schema and load the sample district if the database holds no units."""
    from geo import imports, store
    from geo.db.connection import connect
    from geo.db.migrations import migrate as run

    with _errors():
        with connect() as conn:
            done = run(conn)
            counts = store.count_units(conn)
        if done:
            console.print(f"applied migrations: {', '.join(done)}")
        if counts:
            console.print("database holds units: " + ", ".join(f"{n} {lv}" for lv, n in counts.items()))
            return
        if no_sample:
            return
        from datetime import datetime, timedelta, timezone

        from geo import incident_sample, locate

        # the sample's boundaries are taken to be in force for a year, and 60 days of
        # generated incidents give the dispatch views something to show
        now = datetime.now(timezone.utc)
        with _progress() as update:
            result = imports.load_district(sample or imports.SAMPLE_PATH, progress=update,
                                           valid_from=now - timedelta(days=365))
            with connect() as conn:
                locator = locate.load(conn)
                columns = incident_sample.generate(locator, SAMPLE_INCIDENTS, now - timedelta(days=60), now)
                with conn.transaction():
                    result["incident"] = incident_sample.insert(conn, locator, columns, progress=update)
        console.print("loaded sample district: " + ", ".join(f"{n} {lv}" for lv, n in result.items()))


SAMPLE_INCIDENTS = 3000


@app.command()
def load(
    file: Path = typer.Argument(..., help="GeoJSON, GeoPackage or Shapefile"),
    level: str = typer.Option(..., "--level", "-l", help="street, community, grid, compound, "
                              "neighbourhood, building (or road)"),
    crs: Optional[str] = typer.Option(None, help="Source CRS when the file's own is missing or wrong: "
                                      "wgs84, cgcs2000 (EPSG:4490), EPSG:nnnn"),
    code_field: str = typer.Option("code", help="Field holding each unit's code"),
    name_field: str = typer.Option("name", help="Field holding each unit's name"),
    households_field: str = typer.Option("households"),
    population_field: str = typer.Option("population"),
    layer: Optional[str] = typer.Option(None, help="Layer to read from a multi-layer file"),
    encoding: Optional[str] = typer.Option(None, help="Text encoding of a Shapefile without .cpg "
                                           "(default: UTF-8 if it decodes, else GB18030)"),
    actor: str = typer.Option(os.environ.get("USER", "gridmap"), help="Who makes the change (recorded)"),
) -> None:
    """Load units from a file: all or nothing; parents are found by geometry."""
    from geo import imports

    with _errors(), _progress() as update:
        result = imports.load_file(
            file, level, crs_text=crs, code_field=code_field, name_field=name_field,
            households_field=households_field, population_field=population_field,
            layer=layer, encoding=encoding, actor=actor, progress=update,
        )
    console.print(json.dumps(result, ensure_ascii=False))


@app.command()
def export(
    level: str = typer.Option(..., "--level", "-l"),
    fmt: str = typer.Option("gpkg", "--format", "-f", help="geojson, gpkg or shp"),
    output: Path = typer.Option(None, "--output", "-o", help="File to write (default: <level>.<format>)"),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="The boundaries valid at this time "
                                        "(ISO 8601; without a zone, Asia/Shanghai)"),
) -> None:
    """Write the units of one level, now or as of a past time, to a file QGIS opens."""
    from geo import files, levels, store
    from geo.db.connection import connect

    with _errors():
        lv = levels.parse_level(level)
        when = store.parse_time(as_of)
        with connect() as conn:
            path, count = files.export_units(conn, lv, fmt, output or Path(f"{lv}.{fmt}"), when)
        console.print(f"wrote {count} {lv} units to {path}")


@app.command()
def sample(
    seed: int = typer.Option(7, help="Random seed; the same seed gives the same district"),
    scale: float = typer.Option(1.0, help="1.0 = the shipped sample (4 streets, ~50 communities, "
                                "~320 grids); 200 = a Chongqing-size city of ~65,000 grids"),
    grids: Optional[int] = typer.Option(None, help="Aim for about this many grids instead of --scale"),
    output: Path = typer.Option(Path("data/boundaries/sample-district.gpkg"), "--output", "-o"),
) -> None:
    """Generate a realistic district (roads, compounds, buildings, all unit levels)."""
    from geo import sample as gen

    if grids:
        scale = grids / gen.GRIDS_PER_SCALE
    with _errors(), _progress() as update:
        district = gen.generate(seed=seed, scale=scale, progress=update)
        update("writing", 0, 1)
        district.write(output)
        update("writing", 1, 1)
    console.print(f"wrote {output}: " + ", ".join(f"{n} {k}" for k, n in district.summary().items()))


@incidents_app.command("import")
def incidents_import(
    file: Path = typer.Argument(..., help="CSV (external_id, category, lon, lat, crs, reported_at, description, "
                                "channel, contact, photos) or GeoJSON Points with those properties"),
    crs: str = typer.Option("wgs84", help="CRS of rows that do not name one (hotline exports: often gcj02)"),
    errors: Optional[Path] = typer.Option(None, help="Where bad rows go (default: FILE.errors.csv)"),
) -> None:
    """Import incidents: valid rows kept, bad rows listed with the reason, nothing stored twice."""
    from geo.incident_import import import_file

    with _errors(), _progress() as update:
        result = import_file(file, crs=crs, errors_path=errors, progress=update)
    console.print(json.dumps(result, ensure_ascii=False))
    if result["errors"]:
        console.print(f"[yellow]{result['errors']} row(s) not imported: see {result['errors_file']}[/]")


@incidents_app.command("sample")
def incidents_sample(
    count: int = typer.Option(5000, help="How many incidents"),
    days: int = typer.Option(60, help="Spread over this many days back from now"),
    seed: int = typer.Option(1),
) -> None:
    """Generate realistic incidents (categories, daily rhythm, hot spots) for demos and load tests.
    They are assigned with the boundaries stored now, whatever their report time."""
    from datetime import datetime, timedelta, timezone

    from geo import incident_sample, locate
    from geo.db.connection import connect

    if count < 1 or days < 1:
        console.print("[bold red]error:[/] --count and --days must be at least 1")
        raise typer.Exit(2)
    with _errors(), _progress() as update, connect() as conn:
        locator = locate.load(conn)
        if not len(locator.units["grid"].ids):
            console.print("[bold red]error:[/] no grids are stored: run `gridmap init` first")
            raise typer.Exit(2)
        end = datetime.now(timezone.utc)
        columns = incident_sample.generate(locator, count, end - timedelta(days=days), end, seed=seed)
        with conn.transaction():
            n = incident_sample.insert(conn, locator, columns, progress=update)
    console.print(f"stored {n} generated incidents")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    workers: int = typer.Option(1),
) -> None:
    """Serve the API and maps (OpenAPI docs at /docs)."""
    import uvicorn

    console.print(f"gridmap serving on http://{host}:{port} (docs: http://{host}:{port}/docs)")
    uvicorn.run("api.app:app", host=host, port=port, workers=workers, log_level="info")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
