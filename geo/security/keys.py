"""API keys: their form, drawing a new one, and the digest the database keeps.

Keys look like `gm_1f3a9c0e_<43 characters>`: `gm_`, an 8-hex-digit prefix that is not
secret (it finds the key's row and tells keys apart in lists and logs), and 256 random bits.
The database keeps the prefix and the SHA-256 of the whole key, never the key.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from geo.errors import InvalidInput
from geo.security.identity import ROLES

KEY_PATTERN = re.compile(r"gm_([0-9a-f]{8})_[A-Za-z0-9_-]{43}")


def digest(key: str) -> bytes:
    """SHA-256 of a presented key.

    A slow password hash (bcrypt, argon2) protects secrets people choose, which can be
    guessed. These keys are 256 random bits: no dictionary holds them and no amount of
    hashing speed makes 2^256 guesses feasible, so a leaked table of digests reveals no
    key. A fast hash keeps verification at about a microsecond, which matters because
    /locate serves thousands of requests a second (verified keys are also cached, see
    api/security.py). No keyed hash (pepper) is needed for the same reason."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def prefix_of(key: str) -> str | None:
    """The prefix of a well-formed key (None for anything else)."""
    match = KEY_PATTERN.fullmatch(key)
    return match.group(1) if match else None


def new_key() -> tuple[str, str]:
    """(prefix, key) of a freshly drawn key."""
    prefix = secrets.token_hex(4)
    return prefix, f"gm_{prefix}_{secrets.token_urlsafe(32)}"


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 100 or any(ord(c) < 32 or c == "\x7f" for c in name):
        raise InvalidInput("a key needs a name of 1 to 100 printable characters (who or what uses it)")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role
