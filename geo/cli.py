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
plan_app = typer.Typer(help="Planning: split oversized units, merge undersized ones, commit plans.",
                       no_args_is_help=True)
app.add_typer(plan_app, name="plan")
keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console(stderr=True)


def _me():
    """Who the command line acts as in change sets, plans and the audit log: cli:<os user>."""
    from geo.auth import cli_identity

    return cli_identity()


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
                                           valid_from=now - timedelta(days=365), actor=_me())
            with connect() as conn:
                locator = locate.load(conn)
                columns = incident_sample.generate(locator, SAMPLE_INCIDENTS, now - timedelta(days=60), now)
                with conn.transaction():
                    result["incident"] = incident_sample.insert(conn, locator, columns, progress=update)
                    _audit_sample(conn, result["incident"])
        console.print("loaded sample district: " + ", ".join(f"{n} {lv}" for lv, n in result.items()))


SAMPLE_INCIDENTS = 3000


def _audit_sample(conn, count: int) -> None:
    from geo import audit

    audit.record(conn, _me(), "incidents.sample", "incident", [], detail={"count": count, "generated": True})


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
    actor: Optional[str] = typer.Option(None, help="On whose behalf (recorded as cli:<os user> as ACTOR)"),
) -> None:
    """Load units from a file: all or nothing; parents are found by geometry."""
    from geo import imports
    from geo.auth import Identity

    who = _me() if actor is None else Identity(f"{_me().label} as {actor}")

    with _errors(), _progress() as update:
        result = imports.load_file(
            file, level, crs_text=crs, code_field=code_field, name_field=name_field,
            households_field=households_field, population_field=population_field,
            layer=layer, encoding=encoding, actor=who, progress=update,
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
        result = import_file(file, crs=crs, errors_path=errors, progress=update, who=_me())
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
            _audit_sample(conn, n)
    console.print(f"stored {n} generated incidents")


# ---- planning ----------------------------------------------------------------------

def _show_plan(plan: dict) -> None:
    from rich.table import Table

    m = plan["metrics"]
    console.print(f"plan [bold]{plan['id']}[/] ({plan['kind']}, {plan['status']}, revision {plan['revision']}): "
                  f"{len(plan['units'])} {plan['level']} unit(s) replacing {len(plan['replaces'])}")
    table = Table("code", "name", "households", "Polsby-Popper")
    pp = m.get("polsby_popper") or []
    for k, u in enumerate(plan["units"]):
        table.add_row(u["code"], u["name"], str(u["households"]), f"{pp[k]:.2f}" if k < len(pp) else "")
    console.print(table)
    if "road_or_wall_share" in m:
        console.print(
            f"in band {m['in_band']}/{m['parts']} (max deviation {m['max_deviation']}), contiguous "
            f"{m['contiguous']}/{m['parts']}, compounds split {len(m['compounds_split'])}, buildings split "
            f"{len(m['buildings_split'])}, new boundary on roads or walls {m['road_or_wall_share']:.0%}, "
            f"Polsby-Popper mean {m['polsby_popper_mean']:.2f} min {m['polsby_popper_min']:.2f}"
        )
    if "households_moved" in m:
        console.print(f"households changing unit: {m['households_moved']}")
    for note in plan["notes"]:
        console.print(f"[yellow]note:[/] {note}")
    missed = m.get("targets_missed") or []
    console.print("[green]every quality target met[/]" if not missed else
                  "[red]targets missed:[/] " + "; ".join(missed))


@plan_app.command("split")
def plan_split(
    unit: str = typer.Argument(..., help="id or code of the community or grid"),
    into: str = typer.Option("grids", "--into", help="grids, communities or neighbourhoods"),
    households: Optional[str] = typer.Option(None, "--households", help="band LOW-HIGH, e.g. 300-500"),
    parts: Optional[int] = typer.Option(None, "--parts", help="number of parts (default: chosen)"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Draw a plan splitting a unit into balanced, contiguous, compact parts (stored as a draft)."""
    from geo import levels, plans
    from geo.db.connection import connect

    with _errors(), connect() as conn, _progress() as progress:
        lv = levels.parse_level(into)
        band = plans.parse_band(households, lv) if households else None
        plan = plans.draw_split(conn, plans.resolve_unit(conn, unit), lv, band=band, parts=parts,
                                seed=seed, progress=progress, actor=_me())
    _show_plan(plan)
    console.print(f"preview: gridmap plan export {plan['id']}; apply: gridmap plan commit {plan['id']}")


@plan_app.command("merge")
def plan_merge(
    level: str = typer.Option("community", "--level"),
    floor: Optional[int] = typer.Option(None, "--floor", help="merge units below this many households "
                                        "(default: 1,000 communities, 200 grids)"),
    ceiling: Optional[int] = typer.Option(None, "--ceiling", help="no merged unit above this"),
) -> None:
    """Draw a plan merging each undersized unit into the neighbour it shares most boundary with."""
    from geo import plans
    from geo.db.connection import connect

    with _errors(), connect() as conn:
        plan = plans.draw_merge(conn, level, floor=floor, ceiling=ceiling, actor=_me())
    for m in plan["metrics"]["merges"]:
        console.print(f"merge {m['small']} into {m['into']}: {m['households']} households, "
                      f"shared boundary {m['shared_boundary_m']} m")
    _show_plan(plan)


@plan_app.command("list")
def plan_list(status: Optional[str] = typer.Option(None, "--status")) -> None:
    """Plans, newest first."""
    from geo import plans
    from geo.db.connection import connect

    with _errors(), connect() as conn:
        for p in plans.list_plans(conn, status):
            console.print(f"{p['id']:>5}  {p['kind']:<7} {p['status']:<9} {p['level']:<13} "
                          f"{p['parts'] or 0:>3} unit(s)  {p['created_at']:%Y-%m-%d %H:%M}")


@plan_app.command("show")
def plan_show(plan_id: int) -> None:
    """One plan with its metrics and how it compares with the current boundaries."""
    from geo import plans
    from geo.db.connection import connect

    with _errors(), connect() as conn:
        plan = plans.get_plan(conn, plan_id)
        compared = plans.compare(conn, plan_id)
    _show_plan(plan)
    console.print(f"households that would change unit: {compared['households_moved']}")


@plan_app.command("export")
def plan_export(plan_id: int, output: Path = typer.Option(None, "--output", "-o")) -> None:
    """Write the plan's proposed units as GeoJSON (to edit in QGIS and upload again)."""
    from geo import plans
    from geo.db.connection import connect

    with _errors(), connect() as conn:
        text = plans.plan_geojson(conn, plan_id)
    path = output or Path(f"plan-{plan_id}.geojson")
    path.write_text(text, encoding="utf-8")
    console.print(f"wrote {path}")


@plan_app.command("edit")
def plan_edit(plan_id: int, geojson: Path, revision: int = typer.Option(..., "--revision"),
              crs_name: Optional[str] = typer.Option(None, "--crs")) -> None:
    """Upload changed polygons (features matched by code) as a new revision of the plan."""
    from geo import plans
    from geo.db.connection import connect
    from geo.errors import InvalidInput

    with _errors():
        try:
            features = json.loads(geojson.read_text(encoding="utf-8")).get("features")
        except (OSError, ValueError, AttributeError) as exc:
            raise InvalidInput(f"{geojson}: not a GeoJSON FeatureCollection ({exc})") from None
        with connect() as conn:
            plan = plans.edit_plan(conn, plan_id, features, expected_revision=revision, crs_text=crs_name,
                                   actor=_me())
    _show_plan(plan)


@plan_app.command("commit")
def plan_commit(plan_id: int, revision: Optional[int] = typer.Option(None, "--revision")) -> None:
    """Re-validate and apply a draft plan in one transaction (refused if the units changed since)."""
    from geo import plans
    from geo.db.connection import connect

    with _errors(), connect() as conn:
        plan = plans.commit_plan(conn, plan_id, expected_revision=revision, actor=_me())
    console.print(f"committed plan {plan_id}: change set(s) {plan['change_ids']}")


@plan_app.command("discard")
def plan_discard(plan_id: int) -> None:
    """Discard a draft plan (it stays on record)."""
    from geo import plans
    from geo.db.connection import connect

    with _errors(), connect() as conn:
        plans.discard_plan(conn, plan_id, actor=_me())
    console.print(f"discarded plan {plan_id}")


@app.command("validate")
def validate_units(
    level: Optional[str] = typer.Option(None, "--level", "-l", help="one level (default: all)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write the problems as GeoJSON"),
) -> None:
    """Report gaps, overlaps, units outside their parent or band, and non-contiguous units."""
    from geo import levels, validate
    from geo.db.connection import connect

    with _errors(), connect() as conn:
        report = validate.validate(conn, levels.parse_level(level) if level else None)
    if output:
        output.write_text(validate.to_text(report), encoding="utf-8")
        console.print(f"wrote {len(report['features'])} problem(s) to {output}")
    for f in report["features"][:50]:
        console.print(f"{f['properties']['problem']:<15} {f['properties']['message']}")
    if len(report["features"]) > 50:
        console.print(f"... and {len(report['features']) - 50} more")
    console.print(f"counts: {report['counts'] or 'no problems'}")
    if any(k in report["counts"] for k in ("gap", "overlap", "outside_parent")):
        raise typer.Exit(1)


# ---- keys and audit -----------------------------------------------------------------

@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., "--role", help="service, dispatcher, planner or admin (README: Security)"),
    name: str = typer.Option(..., "--name", help="Who or what uses the key, e.g. wechat-intake or 王科长"),
) -> None:
    """Create an API key. The key is printed once, on standard output; only its hash is kept."""
    from geo import auth
    from geo.db.connection import connect

    with _errors(), connect() as conn:
        record, key = auth.create_key(conn, role, name, _me())
    console.print(f"key {record['id']} ({record['prefix']}) for {record['name']}, role {record['role']}: "
                  "[bold]copy it now, it is not shown again[/]")
    print(key)


@keys_app.command("list")
def keys_list(active: bool = typer.Option(False, "--active", help="Only keys not revoked")) -> None:
    """The API keys: id, prefix, name, role, when made, last used, revoked (never the keys)."""
    from rich.table import Table

    from geo import auth
    from geo.db.connection import connect

    with _errors(), connect() as conn:
        keys = auth.list_keys(conn, include_revoked=not active)
    table = Table("id", "prefix", "name", "role", "created", "by", "last used", "revoked")

    def when(value) -> str:
        return f"{value:%Y-%m-%d %H:%M}" if value else ""

    for k in keys:
        table.add_row(str(k["id"]), k["prefix"], k["name"], k["role"], when(k["created_at"]), k["created_by"],
                      when(k["last_used_at"]), f"{when(k['revoked_at'])} {k['revoked_by'] or ''}".strip())
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: int = typer.Argument(..., help="The key's id (gridmap keys list)")) -> None:
    """Revoke a key: refused by running servers within their key cache's TTL (30 s by default)."""
    from geo import auth
    from geo.db.connection import connect

    with _errors(), connect() as conn:
        record = auth.revoke_key(conn, key_id, _me())
    console.print(f"revoked key {key_id} ({record['prefix']}, {record['name']}, {record['role']}); "
                  "servers refuse it within GRIDMAP_AUTH_CACHE_SECONDS (30 s by default)")


@app.command("audit")
def audit_log(
    action: Optional[str] = typer.Option(None, help="e.g. plan.commit, or a prefix: plan."),
    subject: Optional[str] = typer.Option(None, help="unit, plan, incident, key, worker, change_set"),
    subject_id: Optional[int] = typer.Option(None, "--id", help="rows about this subject id"),
    actor: Optional[str] = typer.Option(None, help="part of the actor's label (a key's name, cli:)"),
    since: Optional[str] = typer.Option(None, help="ISO 8601"),
    until: Optional[str] = typer.Option(None, help="ISO 8601"),
    limit: int = typer.Option(50, help="rows, newest first"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object a line"),
) -> None:
    """The audit log: who changed what, when, from which version or state to which."""
    from geo import audit, store
    from geo.db.connection import connect

    with _errors(), connect() as conn:
        rows = audit.query(conn, action=action, subject=subject, subject_id=subject_id, actor=actor,
                           since=store.parse_time(since), until=store.parse_time(until), limit=limit)
    if as_json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False, default=str))
        return
    from rich.table import Table

    table = Table("id", "at", "actor", "action", "subject", "before → after")

    def short(value) -> str:
        return "" if value is None else json.dumps(value, ensure_ascii=False, default=str)[:80]

    for r in rows:
        ids = ",".join(str(i) for i in r["subject_ids"][:5]) + ("…" if len(r["subject_ids"]) > 5 else "")
        table.add_row(str(r["id"]), f"{r['at']:%Y-%m-%d %H:%M:%S}", r["actor"], r["action"],
                      f"{r['subject']} {ids}".strip(), f"{short(r['before'])} → {short(r['after'])}")
    Console(width=200).print(table)

# ---- backup and restore ------------------------------------------------------------

@app.command()
def backup(
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write, or an existing folder "
                                          "to write it in (default: gridmap-<database>-<time>.dump here)"),
) -> None:
    """Back up the whole database to one file (pg_dump custom format, one consistent snapshot)."""
    from geo import backup as backups
    from geo.db.connection import database_url

    with _errors():
        url = database_url()
        with _progress() as update:
            result = backups.backup(url, output, progress=update)
    console.print(f"wrote {result['file']} ({result['bytes'] / 1e6:,.1f} MB) from database {result['database']}: "
                  f"{backups.describe(result)}")


@app.command()
def restore(
    file: Path = typer.Argument(..., help="A file written by `gridmap backup`"),
    into: Optional[str] = typer.Option(None, "--into", help="Restore into this database on the same server "
                                       "(created if missing) instead of gridmap's own"),
    force: bool = typer.Option(False, "--force", help="Replace the database even though it holds data"),
) -> None:
    """Restore a backup: exactly the units (every version), lineage, incidents, plans and migrations
    it holds. A database that is not empty is replaced only with --force."""
    from geo import backup as backups
    from geo.db.connection import database_url
    from geo.db.migrations import available

    with _errors():
        url = database_url()
        with _progress() as update:
            result = backups.restore(file, url, into=into, force=force, progress=update)
    replaced = " (replacing what it held)" if result["replaced"] else ""
    console.print(f"restored {file} into database {result['database']}{replaced}: {backups.describe(result)}")
    pending = [name for name, _ in available() if name not in result.get("migrations", [])]
    if pending:
        console.print(f"[yellow]the backup predates migration(s) {', '.join(pending)}: run `gridmap migrate`[/]")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    workers: int = typer.Option(1),
) -> None:
    """Serve the API and maps (OpenAPI docs at /docs).

    Auth (API keys) is on unless GRIDMAP_AUTH=off; unset, it is off only on a loopback
    address, for development. Any other address refuses to serve with auth off."""
    import uvicorn

    from api.auth import is_loopback, resolve_mode

    with _errors():
        on = resolve_mode(os.environ.get("GRIDMAP_AUTH"), host)
    if not on and not is_loopback(host):
        console.print(
            f"[bold red]error:[/] refusing to serve on {host} with auth off: anyone who can reach it could "
            "redraw boundaries and read residents' contacts. Turn auth on (unset GRIDMAP_AUTH or set "
            "GRIDMAP_AUTH=on) and create a key first: gridmap keys create --role admin --name NAME")
        raise typer.Exit(2)
    os.environ["GRIDMAP_AUTH"] = "on" if on else "off"  # the workers read it
    if not on:
        console.print("[bold yellow]WARNING: auth is off[/] (loopback only): every request is an admin's. "
                      "Set GRIDMAP_AUTH=on to require API keys.")
    _bring_schema_up_to_date()
    console.print(f"gridmap serving on http://{host}:{port} (docs: http://{host}:{port}/docs), auth "
                  f"{'on' if on else 'off'}")
    uvicorn.run("api.app:app", host=host, port=port, workers=workers, log_level="info")


def _bring_schema_up_to_date() -> None:
    """Apply migrations a newer gridmap brings before serving: an app whose writes need a table
    an older database lacks would answer them with errors. A database that is down is not fatal
    here: the app answers 503 until it is back (README: Reliability)."""
    import psycopg

    from geo.db.connection import connect
    from geo.db.migrations import migrate as run

    try:
        with connect() as conn:
            done = run(conn)
    except psycopg.OperationalError as exc:
        console.print(f"[yellow]database not reachable, migrations not checked:[/] {exc}".strip())
        return
    if done:
        console.print(f"applied migrations: {', '.join(done)}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
