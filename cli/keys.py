"""gridmap keys create|list|revoke, and gridmap audit: API keys and the audit log."""

from __future__ import annotations

import json
from datetime import datetime

import typer
from rich.console import Console

from cli.common import config, console, errors, me

app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)


@app.command("create")
def keys_create(
    role: str = typer.Option(..., "--role", help="service, dispatcher, planner or admin (docs/security.md)"),
    name: str = typer.Option(..., "--name", help="Who or what uses the key, e.g. wechat-intake or 王科长"),
) -> None:
    """Create an API key. The key is printed once, on standard output; only its hash is kept."""
    from geo.db.connection import connect
    from geo.usecases import keys

    with errors(), connect() as conn:
        record, key = keys.create_key(conn, role, name, me())
    console.print(f"key {record['id']} ({record['prefix']}) for {record['name']}, role {record['role']}: "
                  "[bold]copy it now, it is not shown again[/]")
    print(key)


@app.command("list")
def keys_list(active: bool = typer.Option(False, "--active", help="Only keys not revoked")) -> None:
    """The API keys: id, prefix, name, role, when made, last used, revoked (never the keys)."""
    from rich.table import Table

    from geo.db import keys as stored
    from geo.db.connection import connect

    with errors(), connect() as conn:
        keys = stored.all_keys(conn, include_revoked=not active)
    table = Table("id", "prefix", "name", "role", "created", "by", "last used", "revoked")

    def when(value: datetime | None) -> str:
        return f"{value:%Y-%m-%d %H:%M}" if value else ""

    for k in keys:
        table.add_row(str(k["id"]), k["prefix"], k["name"], k["role"], when(k["created_at"]), k["created_by"],
                      when(k["last_used_at"]), f"{when(k['revoked_at'])} {k['revoked_by'] or ''}".strip())
    Console().print(table)


@app.command("revoke")
def keys_revoke(key_id: int = typer.Argument(..., help="The key's id (gridmap keys list)")) -> None:
    """Revoke a key: refused by running servers within their key cache's TTL (30 s by default)."""
    from geo.db.connection import connect
    from geo.usecases import keys

    with errors(), connect() as conn:
        record = keys.revoke_key(conn, key_id, me())
    console.print(f"revoked key {key_id} ({record['prefix']}, {record['name']}, {record['role']}); "
                  "servers refuse it within GRIDMAP_AUTH_CACHE_SECONDS (30 s by default)")


def audit_log(
    action: str | None = typer.Option(None, help="e.g. plan.commit, or a prefix: plan."),
    subject: str | None = typer.Option(None, help="unit, plan, incident, key, worker, change_set"),
    subject_id: int | None = typer.Option(None, "--id", help="rows about this subject id"),
    actor: str | None = typer.Option(None, help="part of the actor's label (a key's name, cli:)"),
    since: str | None = typer.Option(None, help="ISO 8601"),
    until: str | None = typer.Option(None, help="ISO 8601"),
    limit: int = typer.Option(50, help="rows, newest first"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object a line"),
) -> None:
    """The audit log: who changed what, when, from which version or state to which."""
    from geo.db import audit
    from geo.db.connection import connect
    from geo.times import parse_time

    zone = config().tz
    with errors(), connect() as conn:
        rows = audit.query(conn, action=action, subject=subject, subject_id=subject_id, actor=actor,
                           since=parse_time(since, zone), until=parse_time(until, zone), limit=limit)
    if as_json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False, default=str))
        return
    from rich.table import Table

    table = Table("id", "at", "actor", "action", "subject", "before → after")

    def short(value: object) -> str:
        return "" if value is None else json.dumps(value, ensure_ascii=False, default=str)[:80]

    for r in rows:
        ids = ",".join(str(i) for i in r["subject_ids"][:5]) + ("…" if len(r["subject_ids"]) > 5 else "")
        table.add_row(str(r["id"]), f"{r['at']:%Y-%m-%d %H:%M:%S}", r["actor"], r["action"],
                      f"{r['subject']} {ids}".strip(), f"{short(r['before'])} → {short(r['after'])}")
    Console(width=200).print(table)
