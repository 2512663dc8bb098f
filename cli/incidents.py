"""gridmap incidents import|sample: hotline exports in, generated incidents for demos."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

import typer

from cli.common import console, errors, me, progress

app = typer.Typer(help="Incidents: bulk import of hotline exports.", no_args_is_help=True)


@app.command("import")
def incidents_import(
    file: Path = typer.Argument(..., help="CSV (external_id, category, lon, lat, crs, reported_at, description, "
                                "channel, contact, photos) or GeoJSON Points with those properties"),
    crs: str = typer.Option("wgs84", help="CRS of rows that do not name one (hotline exports: often gcj02)"),
    errors_file: Path | None = typer.Option(None, "--errors", help="Where bad rows go (default: FILE.errors.csv)"),
) -> None:
    """Import incidents: valid rows kept, bad rows listed with the reason, nothing stored twice."""
    from geo.usecases.incidents import import_file

    with errors(), progress() as update:
        result = import_file(file, crs=crs, errors_path=errors_file, progress=update, who=me())
    console.print(json.dumps(result, ensure_ascii=False))
    if result["errors"]:
        console.print(f"[yellow]{result['errors']} row(s) not imported: see {result['errors_file']}[/]")


@app.command("sample")
def incidents_sample(
    count: int = typer.Option(5000, help="How many incidents"),
    days: int = typer.Option(60, help="Spread over this many days back from now"),
    seed: int = typer.Option(1),
) -> None:
    """Generate realistic incidents (categories, daily rhythm, hot spots) for demos and load tests.
    They are assigned with the boundaries stored now, whatever their report time."""
    from datetime import datetime, timedelta

    from geo.db import units
    from geo.db.connection import connect
    from geo.usecases import incidents

    if count < 1 or days < 1:
        console.print("[bold red]error:[/] --count and --days must be at least 1")
        raise typer.Exit(2)
    with errors(), progress() as update, connect() as conn:
        if not units.count_units(conn).get("grid"):
            console.print("[bold red]error:[/] no grids are stored: run `gridmap init` first")
            raise typer.Exit(2)
        end = datetime.now(UTC)
        n = incidents.generate_sample(conn, count, end - timedelta(days=days), end, me(), seed=seed,
                                      progress=update)
    console.print(f"stored {n} generated incidents")
