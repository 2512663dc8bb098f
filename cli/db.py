"""gridmap db start|stop|status|url (the embedded cluster), migrate, backup and restore."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import config, console, errors, progress

app = typer.Typer(help="Manage the embedded PostGIS cluster under .gridmap/pg.", no_args_is_help=True)


@app.command("start")
def db_start() -> None:
    """Initialise (first time) and start the embedded cluster."""
    from geo.db.embedded import default_cluster

    with errors():
        cluster = default_cluster(config())
        cluster.start()
        console.print(f"embedded PostGIS {cluster.status()}")


@app.command("stop")
def db_stop() -> None:
    """Stop the embedded cluster (data is kept)."""
    from geo.db.embedded import default_cluster

    with errors():
        cluster = default_cluster(config())
        cluster.stop()
        console.print(f"embedded PostGIS {cluster.status()}")


@app.command("status")
def db_status() -> None:
    """Say whether the embedded cluster runs (exit 1 when it does not)."""
    from geo.db.embedded import default_cluster

    with errors():
        cluster = default_cluster(config())
        print(cluster.status())
        if not cluster.running():
            raise typer.Exit(1)


@app.command("url")
def db_url() -> None:
    """Print the URL of the database gridmap uses (DATABASE_URL, else the embedded one)."""
    from geo.db.connection import database_url

    with errors():
        print(database_url())


def migrate() -> None:
    """Apply the SQL migrations not yet applied."""
    from geo.db.connection import connect
    from geo.db.migrations import migrate as run

    with errors(), connect() as conn:
        done = run(conn)
        console.print(f"applied {len(done)} migration(s)" + (f": {', '.join(done)}" if done else ""))


def backup(
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write, or an existing folder "
                                          "to write it in (default: gridmap-<database>-<time>.dump here)"),
) -> None:
    """Back up the whole database to one file (pg_dump custom format, one consistent snapshot)."""
    from geo.db import backup as backups
    from geo.db.connection import database_url

    with errors():
        url = database_url()
        with progress() as update:
            result = backups.backup(url, output, progress=update, pg_bin=config().pg_bin)
    console.print(f"wrote {result['file']} ({result['bytes'] / 1e6:,.1f} MB) from database {result['database']}: "
                  f"{backups.describe(result)}")


def restore(
    file: Path = typer.Argument(..., help="A file written by `gridmap backup`"),
    into: str | None = typer.Option(None, "--into", help="Restore into this database on the same server "
                                       "(created if missing) instead of gridmap's own"),
    force: bool = typer.Option(False, "--force", help="Replace the database even though it holds data"),
) -> None:
    """Restore a backup: exactly the units (every version), lineage, incidents, plans and migrations
    it holds. A database that is not empty is replaced only with --force."""
    from geo.db import backup as backups
    from geo.db.connection import database_url
    from geo.db.migrations import available

    with errors():
        url = database_url()
        with progress() as update:
            result = backups.restore(file, url, into=into, force=force, progress=update, pg_bin=config().pg_bin)
    replaced = " (replacing what it held)" if result["replaced"] else ""
    console.print(f"restored {file} into database {result['database']}{replaced}: {backups.describe(result)}")
    pending = [name for name, _ in available() if name not in result.get("migrations", [])]
    if pending:
        console.print(f"[yellow]the backup predates migration(s) {', '.join(pending)}: run `gridmap migrate`[/]")
