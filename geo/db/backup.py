"""Backup and restore of a gridmap database with PostgreSQL's own pg_dump and pg_restore.

A backup is one file in pg_dump's custom format, taken from one snapshot of the database
(pg_dump reads in a single repeatable-read transaction), so it is consistent while the app
keeps writing. It holds everything: every version of every unit, lineage, change sets, roads,
incidents with their events, plans, workers, the boundary generation and the migrations
applied. The file is written under a temporary name and renamed when pg_dump has finished
and pg_restore can read it back, so a failed backup never leaves a truncated file behind.

A restore goes into a new database beside the target (`<target>_restoring_<pid>`), in one
transaction, and only when that has succeeded replaces the target (dropping it, WITH FORCE,
when it exists) by renaming. A failed restore leaves the target as it was. A target that
already holds tables is replaced only when asked to (force). After restoring over a database
a running app serves, the boundary generation is moved past both the old and the restored
value, so every API worker rebuilds what it keeps in memory (the /locate index, extents, tile
states) instead of trusting a counter that went backwards.

The tools must be able to talk to the server: pg_dump refuses a server newer than itself.
They are looked for in GRIDMAP_PG_BIN, then in Debian's /usr/lib/postgresql/<major>/bin for the
server's major version or a newer one, then on PATH.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from geo.db import generation
from geo.db.connection import connect, redact
from geo.db.rows import one, value
from geo.errors import Conflict, GridmapError, InvalidInput, SetupError

Progress = Callable[[str, int, int], None]
MAINTENANCE_DBS = ("postgres", "template1")


def _noop(stage: str, done: int, total: int) -> None:
    pass


# ---- the tools ---------------------------------------------------------------------------

def _major(version_num: int) -> int:
    return version_num // 10000


def _tool_major(path: Path) -> int | None:
    """The major version of a pg_dump or pg_restore (`pg_dump (PostgreSQL) 15.18 (Debian ...)`)."""
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return None
    match = re.search(r"\)\s+(\d+)", out)
    return int(match.group(1)) if match else None


def find_tool(name: str, server_major: int, wanted: Path | None = None) -> Path:
    """pg_dump or pg_restore of the server's major version, or a newer one (in `wanted`,
    GRIDMAP_PG_BIN, when given)."""
    if wanted:
        candidates = [Path(wanted) / name]
    else:
        debian = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
        candidates = [Path(p) for p in debian if Path(p).parts[-3].isdigit()
                      and int(Path(p).parts[-3]) >= server_major]
        on_path = shutil.which(name)
        if on_path:
            candidates.append(Path(on_path))
    for path in candidates:
        major = _tool_major(path) if path.is_file() else None
        if major is not None and major >= server_major:
            return path
    where = f" in GRIDMAP_PG_BIN={wanted}" if wanted else ""
    raise SetupError(
        f"{name} for PostgreSQL {server_major} (or newer) is not installed{where}. Install it with:\n"
        f"  sudo apt-get update && sudo apt-get install -y postgresql-client-{server_major}\n"
        "(the PostgreSQL apt repository has every version), or set GRIDMAP_PG_BIN to the folder "
        f"holding {name}."
    )


def _server_major(conn: psycopg.Connection) -> int:
    return _major(int(value(conn, "SHOW server_version_num")))


def _libpq(url: str, dbname: str | None = None) -> tuple[str, dict[str, str]]:
    """A conninfo for the tools' --dbname, and the environment with the password in it (so it
    is not on the command line for `ps` to show)."""
    params = conninfo_to_dict(url)
    if dbname is not None:
        params["dbname"] = dbname
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env


def _url(url: str, dbname: str) -> str:
    """The same server and role, another database."""
    return make_conninfo(url, dbname=dbname)


def _run(args: list[str], env: dict[str, str], progress: Progress, stage: str, total: int,
         marker: re.Pattern[str]) -> None:
    """Run a tool with --verbose, counting the lines that mark progress; raise with its last
    messages when it fails."""
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            errors="replace")
    done, tail = 0, []
    progress(stage, 0, total)
    assert proc.stderr is not None
    for line in proc.stderr:
        if marker.search(line):
            done += 1
            progress(stage, min(done, total), total)
        elif "error" in line.lower() or "fatal" in line.lower() or "warning" in line.lower():
            tail.append(line.rstrip())
    if proc.wait() != 0:
        tool = Path(args[0]).name
        messages = "\n".join(tail[-8:]) or f"{tool} exited with status {proc.returncode}"
        raise GridmapError(f"{tool} failed:\n{messages}")
    progress(stage, total, total)


# ---- what a database holds ---------------------------------------------------------------

def user_tables(conn: psycopg.Connection) -> list[str]:
    """Tables of the database's own (not the system's, not an extension's), schema-qualified."""
    rows = conn.execute(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg\\_toast%%' AND NOT EXISTS "
        "(SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e') "
        "ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def summary(conn: psycopg.Connection) -> dict[str, Any]:
    """What a gridmap database holds, in a few numbers."""
    tables = user_tables(conn)
    if "public.unit_version" not in tables or "public.schema_migration" not in tables:
        return {"tables": len(tables)}
    counts = one(
        conn,
        "SELECT (SELECT count(*) FROM unit) AS units, (SELECT count(*) FROM unit_version) AS unit_versions, "
        "(SELECT count(*) FROM unit_lineage) AS lineage, (SELECT count(*) FROM incident) AS incidents, "
        "(SELECT count(*) FROM incident_event) AS incident_events, (SELECT count(*) FROM plan) AS plans"
    )
    assert counts is not None  # a SELECT without FROM returns one row
    migrations = [r[0] for r in conn.execute("SELECT name FROM schema_migration ORDER BY name")]
    return {"tables": len(tables), **counts, "generation": generation.current(conn), "migrations": migrations}


def describe(counts: dict[str, Any]) -> str:
    if "units" not in counts:
        return f"{counts['tables']} table(s)"
    return (f"{counts['units']:,} units ({counts['unit_versions']:,} versions), {counts['lineage']:,} lineage links, "
            f"{counts['incidents']:,} incidents ({counts['incident_events']:,} events), {counts['plans']:,} plans, "
            f"migrations {', '.join(counts['migrations']) or 'none'}")


# ---- backup ------------------------------------------------------------------------------

def default_name(dbname: str, when: datetime | None = None) -> Path:
    return Path(f"gridmap-{dbname}-{(when or datetime.now()):%Y%m%d-%H%M%S}.dump")


def backup(url: str, output: Path | None = None, progress: Progress = _noop,
           pg_bin: Path | None = None) -> dict[str, Any]:
    """Write the whole database at `url` to one pg_dump custom-format file; what it holds."""
    with connect(url) as conn:
        major = _server_major(conn)
        counts = summary(conn)
        dbname = conn.info.dbname
        tables = len(user_tables(conn)) + 1  # and PostGIS's spatial_ref_sys (the rows users added)
    if "units" not in counts:
        raise InvalidInput(f"{redact(url)} is not a gridmap database (no unit_version or schema_migration "
                           "table): run `gridmap init` first, or point DATABASE_URL at gridmap's database")
    pg_dump, pg_restore = find_tool("pg_dump", major, pg_bin), find_tool("pg_restore", major, pg_bin)
    output = Path(output) if output else default_name(dbname)
    if output.is_dir():  # an existing folder: the default name in it
        output = output / default_name(dbname)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    conninfo, env = _libpq(url)
    try:
        _run([str(pg_dump), "--format=custom", "--verbose", "--no-password", f"--file={partial}",
              f"--dbname={conninfo}"], env, progress, "dumping tables", tables,
             re.compile(r"dumping contents of table"))
        _check_backup(toc(pg_restore, partial), partial)  # it reads back as what restore expects
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    return {"file": str(output), "bytes": output.stat().st_size, "database": dbname, **counts}


# ---- restore -----------------------------------------------------------------------------

def toc(pg_restore: Path, file: Path) -> list[str]:
    """The entries of a backup's table of contents (`pg_restore --list`)."""
    result = subprocess.run([str(pg_restore), "--list", str(file)], capture_output=True, text=True,
                            errors="replace")
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "unreadable"
        reason = reason.removeprefix("pg_restore: error: ")
        raise InvalidInput(f"{file} is not a backup pg_restore can read ({reason}); "
                           "make one with `gridmap backup`")
    return [line.split(";", 1)[1].strip() if ";" in line else line.strip()
            for line in result.stdout.splitlines() if line.strip() and not line.startswith(";")]


def _check_backup(entries: list[str], file: Path) -> int:
    """The number of tables whose rows the backup holds; refuse a file that is no gridmap backup."""
    names = {e.rsplit(" ", 2)[-2] for e in entries if " TABLE DATA " in f" {e} " and len(e.split()) >= 4}
    missing = {"unit_version", "schema_migration", "unit"} - names
    if missing:
        raise InvalidInput(f"{file} is a PostgreSQL backup, but not of a gridmap database "
                           f"(it has no {', '.join(sorted(missing))} table)")
    return sum(1 for e in entries if " TABLE DATA " in f" {e} ")


def _admin(url: str) -> psycopg.Connection:
    """A connection to a maintenance database of the same server, to create and drop databases."""
    last: Exception | None = None
    for name in MAINTENANCE_DBS:
        try:
            return psycopg.connect(_url(url, name), autocommit=True)
        except psycopg.OperationalError as exc:
            last = exc
    raise SetupError(f"cannot connect to the server of {redact(url)}: {str(last).strip()}")


def _holds(url: str, dbname: str) -> dict[str, Any]:
    with psycopg.connect(_url(url, dbname)) as conn:
        return summary(conn)


def restore(file: Path, url: str, *, into: str | None = None, force: bool = False,
            progress: Progress = _noop, pg_bin: Path | None = None) -> dict[str, Any]:
    """Restore a backup into the database at `url` (or into the database `into` on the same
    server); refuse to replace a database that holds tables unless `force`."""
    file = Path(file)
    if not file.is_file():
        raise InvalidInput(f"no backup file {file}")
    target = into or str(conninfo_to_dict(url).get("dbname") or "")
    if not target:
        raise InvalidInput("no database to restore into: give --into NAME or a DATABASE_URL naming one")
    staging = f"{target[:40]}_restoring_{os.getpid()}"
    with _admin(url) as admin:
        major = _server_major(admin)
        pg_restore = find_tool("pg_restore", major, pg_bin)
        entries = toc(pg_restore, file)
        tables = _check_backup(entries, file)
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [target]).fetchone() is not None
        before = _holds(url, target) if exists else None
        if before and before["tables"] and not force:
            raise Conflict(f"database {target} is not empty: it holds {describe(before)}. Restoring would "
                           f"replace all of it: add --force to do that, or restore beside it with --into NEW_NAME")
        try:
            admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(staging)))
        except psycopg.errors.InsufficientPrivilege as exc:
            raise SetupError(f"restoring needs a role that may create databases (CREATEDB): {exc}") from None
        try:
            conninfo, env = _libpq(url, staging)
            _run([str(pg_restore), "--verbose", "--no-password", "--no-owner", "--no-privileges",
                  "--single-transaction", "--exit-on-error", f"--dbname={conninfo}", str(file)],
                 env, progress, "restoring tables", tables, re.compile(r"processing data for table"))
            restored = _holds(url, staging)
            if restored.get("generation") is not None:
                # workers of an app that served the old database keep indexes keyed by this
                # counter: set it past both, and start a new history, before anyone can connect
                with psycopg.connect(_url(url, staging)) as conn:
                    past = (before or {}).get("generation") or 0
                    restored["generation"] = generation.move_on(conn, past)
        except BaseException:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(staging)))
            raise
        if exists:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(target)))
        admin.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(staging),
                                                                       sql.Identifier(target)))
    return {"file": str(file), "database": target, "replaced": bool(before and before["tables"]), **restored}
