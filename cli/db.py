"""gridmap db start|stop|status|url (the embedded cluster), db replica start|stop|status|url|promote
(a streaming replica of it), migrate, backup and restore."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import config, console, errors, progress

app = typer.Typer(help="Manage the embedded PostGIS cluster under .gridmap/pg.", no_args_is_help=True)
replica_app = typer.Typer(help="A streaming replica of the embedded cluster, under .gridmap/replica.",
                          no_args_is_help=True)
app.add_typer(replica_app, name="replica")


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


@replica_app.command("start")
def replica_start() -> None:
    """Make the replica the first time (pg_basebackup -R from the running embedded cluster), then
    start it. Point the app's reads that may lag at it with GRIDMAP_REPLICA_URL (`replica url`)."""
    from geo.db.embedded import default_cluster, replica_cluster

    with errors():
        primary = default_cluster(config())
        primary.start()
        replica = replica_cluster(config())
        if not replica.initialised():
            console.print(f"copying the cluster on port {primary.port} (pg_basebackup)…")
        replica.clone_from(primary)
        replica.start()
        console.print(f"replica {replica.status()}")
        console.print(f"reads that may lag go to it with: export GRIDMAP_REPLICA_URL={replica.url()}")


@replica_app.command("stop")
def replica_stop() -> None:
    """Stop the replica (the app's reads go to the primary meanwhile)."""
    from geo.db.embedded import replica_cluster

    with errors():
        replica = replica_cluster(config())
        replica.stop()
        console.print(f"replica {replica.status()}")


@replica_app.command("status")
def replica_status() -> None:
    """Say whether the replica runs (exit 1 when it does not)."""
    from geo.db.embedded import replica_cluster

    with errors():
        replica = replica_cluster(config())
        print(replica.status())
        if not replica.running():
            raise typer.Exit(1)


@replica_app.command("url")
def replica_url() -> None:
    """Print the replica's URL (for GRIDMAP_REPLICA_URL)."""
    from geo.db.embedded import replica_cluster

    with errors():
        print(replica_cluster(config()).url())


@replica_app.command("promote")
def replica_promote() -> None:
    """Failover: make the replica a primary that takes writes. Then point DATABASE_URL at it,
    unset GRIDMAP_REPLICA_URL and restart the app (docs/operations.md, Replicas)."""
    from geo.db.embedded import replica_cluster

    with errors():
        replica = replica_cluster(config())
        replica.promote()
        console.print(f"promoted: {replica.url()} takes writes now")


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
