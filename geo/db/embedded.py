"""The embedded PostGIS cluster that gridmap runs for itself under `.gridmap/pg`.

When DATABASE_URL is unset, gridmap initialises a private PostgreSQL cluster in the
project folder, runs it on its own port (loopback only) and creates a `gridmap`
database with PostGIS in it. PostgreSQL refuses to run as root, so when gridmap runs
as root the cluster belongs to, and runs as, the `postgres` system user that
Debian's package creates.

Layout of the cluster folder (GRIDMAP_HOME, default `<project>/.gridmap`; geo/settings.py):
    pg/data         the cluster itself (initdb)
    pg/postgres.log the server log
    pg/socket       the Unix socket directory
    pg/port         the TCP port the cluster listens on
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from geo import settings as config
from geo.errors import SetupError

DEFAULT_PORT = 54329
DATABASE = "gridmap"
SUPERUSER = "gridmap"
PG_MAJOR = "15"


def project_root() -> Path:
    return Path(__file__).resolve().parents[2]


def bin_dir(wanted: Path | None = None) -> Path:
    """Directory with initdb/pg_ctl of the PostgreSQL that has PostGIS installed (GRIDMAP_PG_BIN
    when given)."""
    if wanted:
        return Path(wanted)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    for pg_ctl in candidates:
        version = Path(pg_ctl).parts[-3]
        if Path(f"/usr/share/postgresql/{version}/extension/postgis.control").exists():
            return Path(pg_ctl).parent
    if candidates:
        version = Path(candidates[0]).parts[-3]
        raise SetupError(
            f"PostgreSQL {version} is installed but PostGIS is not. Install it with:\n"
            f"  sudo apt-get update && sudo apt-get install -y postgresql-{version}-postgis-3\n"
            "or run a PostGIS elsewhere (docker compose up -d db) and set DATABASE_URL."
        )
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise SetupError(
        "PostgreSQL with PostGIS is not installed. Install it with:\n"
        f"  sudo apt-get update && sudo apt-get install -y postgresql-{PG_MAJOR}-postgis-3\n"
        "or run a PostGIS elsewhere (docker compose up -d db) and set DATABASE_URL."
    )


def _is_root() -> bool:
    return os.geteuid() == 0


def _can_reach(user: str, path: Path) -> bool:
    """True when `user` can traverse every directory down to `path`."""
    result = subprocess.run(
        ["runuser", "-u", user, "--", "test", "-x", str(path)],
        capture_output=True,
    )
    return result.returncode == 0


@dataclass
class Cluster:
    """One embedded cluster: where it lives, the port it takes when first set up, and the
    PostgreSQL whose tools run it (None: the newest with PostGIS)."""

    home: Path
    first_port: int = DEFAULT_PORT
    pg_bin: Path | None = None

    @property
    def bin(self) -> Path:
        return bin_dir(self.pg_bin)

    @property
    def root(self) -> Path:
        return self.home / "pg"

    @property
    def place(self) -> Path:
        """Where the cluster's files really are: the tools run as postgres, which may not be able
        to pass through the project's folder to follow the link to /var/lib/gridmap."""
        return self.root.resolve()

    @property
    def data(self) -> Path:
        return self.place / "data"

    @property
    def log(self) -> Path:
        return self.place / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        return self.place / "socket"

    @property
    def port_file(self) -> Path:
        return self.place / "port"

    @property
    def port(self) -> int:
        if self.port_file.exists():
            return int(self.port_file.read_text().strip())
        return self.first_port

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    # -- running tools, as postgres when we are root -------------------------
    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        tool = Path(args[0]).name
        if _is_root():
            args = ["runuser", "-u", "postgres", "--", *args]
        result = subprocess.run(args, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise SetupError(
                f"{tool} failed: {' '.join(args)}\n"
                f"{result.stdout}{result.stderr}\nServer log: {self.log}"
            )
        return result

    def _prepare_root(self) -> None:
        """Create the cluster folder, owned by postgres when we are root."""
        self.home.mkdir(parents=True, exist_ok=True)
        if not _is_root():
            self.root.mkdir(exist_ok=True)
            return
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise SetupError(
                "gridmap runs as root, and PostgreSQL refuses to: its cluster runs as the "
                "'postgres' user, which does not exist. Install PostgreSQL from Debian "
                "(apt-get install postgresql-15-postgis-3) to create it."
            ) from exc
        if not self.root.exists() and not self.root.is_symlink():
            if _can_reach("postgres", self.home):
                self.root.mkdir()
            else:
                # The project sits below a folder postgres may not enter (such as
                # /root): keep the cluster in /var/lib/gridmap, linked from here.
                digest = hashlib.sha1(str(self.home.resolve()).encode()).hexdigest()[:12]
                target = Path("/var/lib/gridmap") / digest
                target.mkdir(parents=True, exist_ok=True)
                os.chmod(target.parent, 0o755)
                self.root.symlink_to(target)
        shutil.chown(self.root.resolve(), "postgres", "postgres")

    # -- lifecycle -------------------------------------------------------------
    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def init(self) -> None:
        self._prepare_root()
        if self.initialised():
            return
        bindir = self.bin
        self._run([
            str(bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
            "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8",
        ])
        port = self.port
        if not _port_free(port):
            raise SetupError(
                f"port {port} on 127.0.0.1 is taken by another program; "
                "set GRIDMAP_PG_PORT to a free port and run `gridmap db start` again"
            )
        self._write_owned(self.port_file, f"{port}\n")

    def _write_owned(self, path: Path, text: str) -> None:
        path.write_text(text)
        if _is_root():
            shutil.chown(path, "postgres", "postgres")

    def running(self) -> bool:
        if not self.initialised():
            return False
        result = self._run([str(self.bin / "pg_ctl"), "status", "-D", str(self.data)], check=False)
        return result.returncode == 0

    def start(self) -> None:
        self.init()
        if self.running():
            return
        self.socket_dir.mkdir(exist_ok=True)
        if _is_root():
            shutil.chown(self.socket_dir, "postgres", "postgres")
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c shared_buffers=256MB -c fsync=on"
        )
        self._run([
            str(self.bin / "pg_ctl"), "start", "-D", str(self.data), "-l", str(self.log),
            "-o", options, "-w", "-t", "60",
        ])
        if not self.standby:  # a standby is read-only: it has what its primary has
            self._ensure_database()

    # -- a streaming replica of another cluster (PostgreSQL's own replication) ------------
    @property
    def standby(self) -> bool:
        """Whether this cluster replays another's WAL (pg_basebackup -R left standby.signal)."""
        return (self.data / "standby.signal").exists()

    def clone_from(self, primary: Cluster) -> None:
        """Make this cluster a streaming replica of `primary` (running): a base backup taken with
        `pg_basebackup -R`, which writes primary_conninfo and standby.signal. Once only."""
        self._prepare_root()
        if self.initialised():
            return
        port = self.port
        if not _port_free(port):
            raise SetupError(f"port {port} on 127.0.0.1 is taken by another program; set GRIDMAP_REPLICA_PORT "
                             "to a free port and run `gridmap db replica start` again")
        self._run([str(self.bin / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", SUPERUSER,
                   "-D", str(self.data), "-R", "-X", "stream", "-c", "fast"])
        self._write_owned(self.port_file, f"{port}\n")

    def promote(self) -> None:
        """Turn a standby into a primary that takes writes (failover: see docs/operations.md)."""
        if not self.standby:
            raise SetupError(f"the cluster in {self.data} is not a standby: nothing to promote")
        self._run([str(self.bin / "pg_ctl"), "promote", "-D", str(self.data), "-w", "-t", "60"])

    def stop(self) -> None:
        if not self.running():
            return
        self._run([str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"])

    def _ensure_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
                    exists = conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
                    ).fetchone()
                    if not exists:
                        conn.execute(f'CREATE DATABASE "{DATABASE}"')
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    def status(self) -> str:
        if not self.initialised():
            return f"not initialised ({self.root})"
        if self.running():
            role = ", streaming replica" if self.standby else ""
            return f"running on 127.0.0.1:{self.port}{role} ({self.data})"
        return f"stopped ({self.data})"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def default_cluster(settings: config.Settings | None = None) -> Cluster:
    """The cluster the settings name (GRIDMAP_HOME, GRIDMAP_PG_PORT, GRIDMAP_PG_BIN)."""
    settings = settings or config.get()
    return Cluster(settings.home or project_root() / ".gridmap", settings.pg_port, settings.pg_bin)


def replica_cluster(settings: config.Settings | None = None) -> Cluster:
    """The embedded cluster's streaming replica, beside it (GRIDMAP_HOME/replica, on
    GRIDMAP_REPLICA_PORT: by default the primary's port + 1)."""
    settings = settings or config.get()
    primary = default_cluster(settings)
    home = (settings.home or project_root() / ".gridmap") / "replica"
    return Cluster(home, settings.replica_port or primary.port + 1, settings.pg_bin)
