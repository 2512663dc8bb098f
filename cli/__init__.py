"""The `gridmap` command, one module per group of commands:

    cli/db.py         db start|stop|status|url, db replica ..., migrate, backup, restore
    cli/deploy.py     nginx-config (nginx in front of several app instances)
    cli/index.py      index build|status (the point index's snapshots)
    cli/data.py       init, load, export, sample, validate, units recode
    cli/incidents.py  incidents import|sample
    cli/plans.py      plan split|merge|list|show|export|edit|commit|discard
    cli/keys.py       keys create|list|revoke, audit
    cli/serve.py      serve (with api/, the only thing that starts the server)
    cli/common.py     console, errors, progress bars, who the command line acts as

Commands import what they use when they run, so `gridmap db status` answers at once.
"""

from __future__ import annotations

import typer

from cli import data, db, deploy, incidents, index, keys, plans, serve

app = typer.Typer(help="gridmap: nested, versioned grid-governance units on PostGIS.", no_args_is_help=True)
app.add_typer(db.app, name="db")
app.add_typer(index.app, name="index")
app.add_typer(incidents.app, name="incidents")
app.add_typer(plans.app, name="plan")
app.add_typer(keys.app, name="keys")
app.add_typer(data.units_app, name="units")
for command in (db.migrate, data.init, data.load, data.export, data.sample):
    app.command()(command)
app.command("validate")(data.validate_units)
app.command("audit")(keys.audit_log)
app.command("nginx-config")(deploy.nginx_config)
for command in (db.backup, db.restore, serve.serve):
    app.command()(command)


def main() -> None:  # pragma: no cover
    app()
