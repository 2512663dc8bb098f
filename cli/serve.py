"""gridmap serve: the API and the maps, under uvicorn.

The command resolves the settings the server needs from where it is asked to listen (auth
is off by default only on a loopback address), refuses an unsafe combination, brings the
schema up to date, and then becomes the server: uvicorn, with the resolved settings in its
environment, so every worker process reads the same ones.
"""

from __future__ import annotations

import os
import sys

import typer

from cli.common import config, console, errors


def serve(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    workers: int = typer.Option(1),
) -> None:
    """Serve the API and maps (OpenAPI docs at /docs).

    Auth (API keys) is on unless GRIDMAP_AUTH=off; unset, it is off only on a loopback
    address, for development. Any other address refuses to serve with auth off."""
    from api.security import is_loopback, resolve_mode

    on = resolve_mode(config().auth, host)
    if not on and not is_loopback(host):
        console.print(
            f"[bold red]error:[/] refusing to serve on {host} with auth off: anyone who can reach it could "
            "redraw boundaries and read residents' contacts. Turn auth on (unset GRIDMAP_AUTH or set "
            "GRIDMAP_AUTH=on) and create a key first: gridmap keys create --role admin --name NAME")
        raise typer.Exit(2)
    if not on:
        console.print("[bold yellow]WARNING: auth is off[/] (loopback only): every request is an admin's. "
                      "Set GRIDMAP_AUTH=on to require API keys.")
    _bring_schema_up_to_date()
    console.print(f"gridmap serving on http://{host}:{port} (docs: http://{host}:{port}/docs), auth "
                  f"{'on' if on else 'off'}")
    sys.stdout.flush()
    sys.stderr.flush()
    server_env = {**os.environ, "GRIDMAP_AUTH": "on" if on else "off"}
    os.execve(sys.executable, [sys.executable, "-m", "uvicorn", "api.app:app", "--host", host, "--port", str(port),
                               "--workers", str(workers), "--log-level", "info"], server_env)


def _bring_schema_up_to_date() -> None:
    """Apply migrations a newer gridmap brings before serving: an app whose writes need a table
    an older database lacks would answer them with errors. A database that is down is not fatal
    here: the app answers 503 until it is back (docs/operations.md)."""
    import psycopg

    from geo.db.connection import connect
    from geo.db.migrations import migrate as run

    with errors():
        try:
            with connect() as conn:
                done = run(conn)
        except psycopg.OperationalError as exc:
            console.print(f"[yellow]database not reachable, migrations not checked:[/] {exc}".strip())
            return
    if done:
        console.print(f"applied migrations: {', '.join(done)}")
