"""gridmap plan split|merge|list|show|export|edit|commit|discard: planning from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from cli.common import console, errors, me, progress

app = typer.Typer(help="Planning: split oversized units, merge undersized ones, commit plans.", no_args_is_help=True)


def _show_plan(plan: dict[str, Any]) -> None:
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


@app.command("split")
def plan_split(
    unit: str = typer.Argument(..., help="id or code of the community or grid"),
    into: str = typer.Option("grids", "--into", help="grids, communities or neighbourhoods"),
    households: str | None = typer.Option(None, "--households", help="band LOW-HIGH, e.g. 300-500"),
    parts: int | None = typer.Option(None, "--parts", help="number of parts (default: chosen)"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Draw a plan splitting a unit into balanced, contiguous, compact parts (stored as a draft)."""
    from geo.db import units
    from geo.db.connection import connect
    from geo.units import levels
    from geo.usecases import plans

    with errors(), connect() as conn, progress() as update:
        lv = levels.parse_level(into)
        band = levels.parse_band(households, lv) if households else None
        plan = plans.draw_split(conn, units.resolve(conn, unit), lv, band=band, parts=parts,
                                seed=seed, progress=update, actor=me())
    _show_plan(plan)
    console.print(f"preview: gridmap plan export {plan['id']}; apply: gridmap plan commit {plan['id']}")


@app.command("merge")
def plan_merge(
    level: str = typer.Option("community", "--level"),
    floor: int | None = typer.Option(None, "--floor", help="merge units below this many households "
                                        "(default: 1,000 communities, 200 grids)"),
    ceiling: int | None = typer.Option(None, "--ceiling", help="no merged unit above this"),
) -> None:
    """Draw a plan merging each undersized unit into the neighbour it shares most boundary with."""
    from geo.db.connection import connect
    from geo.usecases import plans

    with errors(), connect() as conn:
        plan = plans.draw_merge(conn, level, floor=floor, ceiling=ceiling, actor=me())
    for m in plan["metrics"]["merges"]:
        console.print(f"merge {m['small']} into {m['into']}: {m['households']} households, "
                      f"shared boundary {m['shared_boundary_m']} m")
    _show_plan(plan)


@app.command("list")
def plan_list(status: str | None = typer.Option(None, "--status")) -> None:
    """Plans, newest first."""
    from geo.db.connection import connect
    from geo.usecases import plans

    with errors(), connect() as conn:
        for p in plans.list_plans(conn, status):
            console.print(f"{p['id']:>5}  {p['kind']:<7} {p['status']:<9} {p['level']:<13} "
                          f"{p['parts'] or 0:>3} unit(s)  {p['created_at']:%Y-%m-%d %H:%M}")


@app.command("show")
def plan_show(plan_id: int) -> None:
    """One plan with its metrics and how it compares with the current boundaries."""
    from geo.db.connection import connect
    from geo.usecases import plans

    with errors(), connect() as conn:
        plan = plans.get_plan(conn, plan_id)
        compared = plans.compare(conn, plan_id)
    _show_plan(plan)
    done = compared.get("as_committed")
    console.print(f"households that {'changed' if done else 'would change'} unit: {compared['households_moved']}")
    if compared.get("problem"):
        console.print(f"[red]commit would fail:[/red] {compared['problem']}")
    changes = compared.get("code_changes") or []
    console.print(f"codes that {'changed' if done else 'will change'}: {len(changes)}")
    for c in changes:
        console.print(f"  {c['level']} {c['from']} -> {c['to']}")
    workers = compared.get("workers") or {}
    for w in workers.get("moved") or []:
        console.print(f"  worker {w['name']} (#{w['worker_id']}) {'moved' if done else 'moves'} "
                      f"from unit {w['from_unit']} to unit {w['to_unit']}")
    for w in workers.get("unplaced") or []:
        console.print(f"  [yellow]worker {w['name']} (#{w['worker_id']}) left without a unit:[/yellow] "
                      f"{w.get('reason')}")


@app.command("export")
def plan_export(plan_id: int, output: Path | None = typer.Option(None, "--output", "-o")) -> None:
    """Write the plan's proposed units as GeoJSON (to edit in QGIS and upload again)."""
    from geo.db.connection import connect
    from geo.usecases import plans

    with errors(), connect() as conn:
        text = plans.plan_geojson(conn, plan_id)
    path = output or Path(f"plan-{plan_id}.geojson")
    path.write_text(text, encoding="utf-8")
    console.print(f"wrote {path}")


@app.command("edit")
def plan_edit(plan_id: int, geojson: Path, revision: int = typer.Option(..., "--revision"),
              crs_name: str | None = typer.Option(None, "--crs")) -> None:
    """Upload changed polygons (only those: features matched by code) as a new revision of the plan."""
    from geo.db.connection import connect
    from geo.errors import InvalidInput
    from geo.usecases import plan_edits

    with errors():
        try:
            features = json.loads(geojson.read_text(encoding="utf-8")).get("features")
        except (OSError, ValueError, AttributeError) as exc:
            raise InvalidInput(f"{geojson}: not a GeoJSON FeatureCollection ({exc})") from None
        with connect() as conn:
            plan = plan_edits.edit_plan(conn, plan_id, features, expected_revision=revision, crs_text=crs_name,
                                        actor=me())
    _show_plan(plan)


@app.command("commit")
def plan_commit(plan_id: int, revision: int | None = typer.Option(None, "--revision")) -> None:
    """Re-validate and apply a draft plan in one transaction (refused if the units changed since)."""
    from geo.db.connection import connect
    from geo.usecases import plans

    with errors(), connect() as conn:
        plan = plans.commit_plan(conn, plan_id, expected_revision=revision, actor=me())
    console.print(f"committed plan {plan_id}: change set(s) {plan['change_ids']}")


@app.command("discard")
def plan_discard(plan_id: int) -> None:
    """Discard a draft plan (it stays on record)."""
    from geo.db.connection import connect
    from geo.usecases import plans

    with errors(), connect() as conn:
        plans.discard_plan(conn, plan_id, actor=me())
    console.print(f"discarded plan {plan_id}")
