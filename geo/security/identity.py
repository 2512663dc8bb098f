"""Who may do what: roles, their permissions, and the identities callers act as.

ROLES below is the one table every check reads (the HTTP side is api/security.py). A role
is a set of permissions; a route asks for one permission. API keys are geo/security/keys.py's.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass

# What each permission lets a caller do (docs/security.md).
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
