"""Who may do what: roles, their permissions, API keys and the identities they stand for.

ROLES below is the one table every check reads (the HTTP side is api/auth.py). A role is a
set of permissions; a route asks for one permission.

API keys look like `gm_1f3a9c0e_<43 characters>`: `gm_`, an 8-hex-digit prefix that is not
secret (it finds the key's row and tells keys apart in lists and logs), and 256 random bits.
The database keeps the prefix and the SHA-256 of the whole key, never the key.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass

import psycopg

from geo.errors import Conflict, InvalidInput, NotFound

# What each permission lets a caller do (README "Security: keys, roles, audit").
PERMISSIONS: dict[str, str] = {
    "read": "read units, history, lineage, /locate, tiles, OGC API, maps, incidents (contact masked), "
            "stats, workers (phone masked)",
    "report": "submit incident reports (POST /incidents, Open311 POST requests)",
    "contact": "see reporters' contact details and workers' phone numbers unmasked",
    "dispatch": "move incidents through their lifecycle, attach workers",
    "plan": "read, draw, edit, commit and discard plans, edit units, /validate",
    "admin": "create and revoke API keys, read the audit log",
}

# Who may do what: the one table.
ROLES: dict[str, frozenset[str]] = {
    "service": frozenset({"read", "report"}),
    "dispatcher": frozenset({"read", "report", "contact", "dispatch"}),
    "planner": frozenset({"read", "plan"}),
    "admin": frozenset(PERMISSIONS),
}


def roles_with(permission: str) -> list[str]:
    """The roles holding a permission, in the table's order."""
    return [role for role, held in ROLES.items() if permission in held]


@dataclass(frozen=True)
class Identity:
    """Who is acting: an API key, the command line, or anyone (auth off).

    `label` is what gets recorded (change sets, plans, the audit log). `role` None is the
    command line: whoever can reach the database already holds every power, so it is not
    checked. With auth off the API treats every caller as an admin."""

    label: str
    role: str | None = None
    key_id: int | None = None
    key_name: str | None = None

    def can(self, permission: str) -> bool:
        return self.role is None or permission in ROLES[self.role]

    def __str__(self) -> str:
        return self.label


ANONYMOUS = Identity("anonymous (auth off)", role="admin")


def as_identity(actor: str | Identity) -> Identity:
    """An identity for an actor given as a plain label (the command line, tests, old callers)."""
    return actor if isinstance(actor, Identity) else Identity(str(actor))


def cli_identity() -> Identity:
    """The operating-system user running the `gridmap` command."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return Identity(f"cli:{user}")


def key_identity(key_id: int, name: str, role: str) -> Identity:
    return Identity(f"key:{key_id} {name} ({role})", role=role, key_id=key_id, key_name=name)


# ---------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------

KEY_PATTERN = re.compile(r"gm_([0-9a-f]{8})_[A-Za-z0-9_-]{43}")


def digest(key: str) -> bytes:
    """SHA-256 of a presented key.

    A slow password hash (bcrypt, argon2) protects secrets people choose, which can be
    guessed. These keys are 256 random bits: no dictionary holds them and no amount of
    hashing speed makes 2^256 guesses feasible, so a leaked table of digests reveals no
    key. A fast hash keeps verification at about a microsecond, which matters because
    /locate serves thousands of requests a second (verified keys are also cached, see
    api/auth.py). No keyed hash (pepper) is needed for the same reason."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _new_key() -> tuple[str, str]:
    prefix = secrets.token_hex(4)
    return prefix, f"gm_{prefix}_{secrets.token_urlsafe(32)}"


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 100 or any(ord(c) < 32 or c == "\x7f" for c in name):
        raise InvalidInput("a key needs a name of 1 to 100 printable characters (who or what uses it)")
    return name


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


_KEY_COLUMNS = ("id", "prefix", "name", "role", "created_at", "created_by", "revoked_at", "revoked_by",
                "last_used_at")


def _key_row(row) -> dict:
    record = dict(zip(_KEY_COLUMNS, row))
    record["active"] = record["revoked_at"] is None
    return record


def create_key(conn: psycopg.Connection, role: str, name: str, actor: str | Identity) -> tuple[dict, str]:
    """Store a new key; returns its record and the key itself, which is shown only now."""
    from geo import audit

    role, name = _check_role(role), _check_name(name)
    who = as_identity(actor)
    with conn.transaction():
        for _ in range(5):  # a prefix already taken (1 in 4 billion a key): draw another
            prefix, key = _new_key()
            row = conn.execute(
                f"INSERT INTO api_key (prefix, hash, name, role, created_by) VALUES (%s, %s, %s, %s, %s) "
                f"ON CONFLICT (prefix) DO NOTHING RETURNING {', '.join(_KEY_COLUMNS)}",
                [prefix, digest(key), name, role, who.label],
            ).fetchone()
            if row is not None:
                break
        else:  # pragma: no cover
            raise Conflict("could not draw an unused key prefix: try again")
        record = _key_row(row)
        audit.record(conn, who, "key.create", "key", [record["id"]],
                     after={"role": role, "name": name, "prefix": prefix})
    return record, key


def list_keys(conn: psycopg.Connection, *, include_revoked: bool = True) -> list[dict]:
    rows = conn.execute(
        f"SELECT {', '.join(_KEY_COLUMNS)} FROM api_key "
        f"WHERE %s OR revoked_at IS NULL ORDER BY id", [include_revoked]).fetchall()
    return [_key_row(r) for r in rows]


def revoke_key(conn: psycopg.Connection, key_id: int, actor: str | Identity) -> dict:
    """Revoke a key (its row stays, so the audit log can still name it)."""
    from geo import audit

    who = as_identity(actor)
    with conn.transaction():
        row = conn.execute(f"SELECT {', '.join(_KEY_COLUMNS)} FROM api_key WHERE id = %s FOR UPDATE",
                           [key_id]).fetchone()
        if row is None:
            raise NotFound(f"no API key with id {key_id}")
        record = _key_row(row)
        if not record["active"]:
            raise Conflict(f"key {key_id} ({record['name']}) was already revoked at "
                           f"{record['revoked_at'].isoformat()} by {record['revoked_by']}")
        row = conn.execute(
            f"UPDATE api_key SET revoked_at = now(), revoked_by = %s WHERE id = %s "
            f"RETURNING {', '.join(_KEY_COLUMNS)}", [who.label, key_id]).fetchone()
        record = _key_row(row)
        audit.record(conn, who, "key.revoke", "key", [key_id], before={"active": True},
                     after={"active": False, "revoked_at": record["revoked_at"]},
                     detail={"name": record["name"], "role": record["role"], "prefix": record["prefix"]})
    return record


def verify(conn: psycopg.Connection, presented: str) -> Identity | None:
    """The identity of an active key, or None for anything else (malformed, unknown, revoked)."""
    match = KEY_PATTERN.fullmatch(presented)
    if match is None:
        return None
    row = conn.execute("SELECT id, name, role, hash FROM api_key WHERE prefix = %s AND revoked_at IS NULL",
                       [match.group(1)]).fetchone()
    # compare_digest: the time taken does not tell how many leading bytes matched
    if row is None or not hmac.compare_digest(bytes(row[3]), digest(presented)):
        conn.commit()
        return None
    # last_used_at is for people reading `gridmap keys list`: to the minute, and not worth
    # waiting for a disk flush (each worker verifies a key again once per cache TTL)
    conn.execute("SET LOCAL synchronous_commit TO OFF")
    conn.execute("UPDATE api_key SET last_used_at = now() WHERE id = %s "
                 "AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')", [row[0]])
    conn.commit()
    return key_identity(row[0], row[1], row[2])


def identity_by_id(conn: psycopg.Connection, key_id: int) -> Identity | None:
    """The identity of an active key by its id (a signed session names its key by id)."""
    row = conn.execute("SELECT id, name, role FROM api_key WHERE id = %s AND revoked_at IS NULL",
                       [key_id]).fetchone()
    conn.commit()
    return key_identity(*row) if row else None


def active_keys(conn: psycopg.Connection) -> int:
    count = conn.execute("SELECT count(*) FROM api_key WHERE revoked_at IS NULL").fetchone()[0]
    conn.commit()
    return count


def secret(conn: psycopg.Connection, name: str = "session") -> bytes:
    """A secret generated once and kept in the database (GRIDMAP_SECRET overrides it):
    the key that signs session cookies. Every worker and every restart reads the same one."""
    configured = os.environ.get("GRIDMAP_SECRET")
    if configured:
        if len(configured) < 32:
            raise InvalidInput("GRIDMAP_SECRET must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return configured.encode()
    with conn.transaction():
        conn.execute("INSERT INTO app_secret (name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
                     [name, secrets.token_bytes(32)])
        value = conn.execute("SELECT value FROM app_secret WHERE name = %s", [name]).fetchone()[0]
    return bytes(value)
