"""gridmap incidents import|sample|months: hotline exports in, generated incidents for demos, the
months incidents are partitioned by."""

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


@app.command("months")
def incidents_months(
    make: str | None = typer.Option(None, "--make", metavar="YYYY-MM",
                                    help="Make this month's partition (moving its reports out of incident_default)"),
    ahead: int | None = typer.Option(None, help="Make the current month and this many after it (default: "
                                                "what the server keeps, 3)"),
) -> None:
    """The months incidents are filed under (one partition each, Beijing months), and making them.

    Without options: make the months the server keeps ahead, then list every month with its
    reports. Reports for a month without a partition wait in incident_default; --make files them."""
    from datetime import date

    from rich.table import Table

    from geo.db import incident_months
    from geo.db.connection import connect

    month = None
    if make is not None:
        try:
            month = date.fromisoformat(make + "-01")
        except ValueError:
            console.print(f"[bold red]error:[/] --make {make!r} is not a month: write it as YYYY-MM, e.g. 2024-03")
            raise typer.Exit(2) from None
    with errors(), connect(autocommit=True) as conn:
        made = incident_months.keep(conn, incident_months.KEEP_AHEAD if ahead is None else ahead)
        if month is not None:
            with conn.transaction():
                name = incident_months.make(conn, month)
            if name:
                made.append(name)
            else:
                console.print(f"{make} has its partition already")
        rows = incident_months.listing(conn)
    for name in made:
        console.print(f"made {name}")
    console.print("reports per month: the planner's estimate (exact for other months)")
    table = Table("month (Beijing)", "partition", "reports", "size")
    for r in rows:
        table.add_row(r["month"], r["name"], f"{r['reports']:,}", f"{r['bytes'] / 1e6:,.1f} MB")
    console.print(table)
    waiting = next((r["reports"] for r in rows if r["name"] == "incident_default"), 0)
    if waiting:
        console.print(f"[yellow]{waiting:,} report(s) wait in incident_default (months without a partition): "
                      "`gridmap incidents months --make YYYY-MM` files a month's[/]")
