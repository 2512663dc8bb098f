"""gridmap index build|status: the point-index snapshots serving processes map at start."""

from __future__ import annotations

import time

import typer

from cli.common import config, console, errors

app = typer.Typer(help="The point index's snapshots on disk (GRIDMAP_INDEX_DIR).", no_args_is_help=True)


@app.command("build")
def index_build(quiet: bool = typer.Option(False, "--quiet", help="say nothing unless it fails")) -> None:
    """Write a snapshot of the boundaries stored now. Serving processes take it at their next
    start or commit instead of building their own; run it after a big load to start fast."""
    from geo.db.connection import connect
    from geo.usecases import locators

    with errors():
        config()
        started = time.perf_counter()
        with connect() as conn:
            where = locators.build_snapshot(conn)
        if not quiet:
            console.print(f"point index snapshot in {where} ({time.perf_counter() - started:.1f} s)")


@app.command("status")
def index_status() -> None:
    """The snapshots kept for this database, and how far behind its boundaries each is."""
    from geo.db.connection import connect
    from geo.usecases import locators

    with errors():
        config()
        with connect() as conn:
            report = locators.status(conn)
        print(f"database generation {report['generation']} (history {report['epoch']})")
        print(f"snapshots in {report['folder']}")
        for snap in report["snapshots"]:
            state = "usable" if snap["usable"] else "too old: the change log does not reach back"
            print(f"  g{snap['generation']}: {snap['behind']} generations behind, {state}")
        if not report["snapshots"]:
            print("  none yet: the first serving process (or `gridmap index build`) writes one")
