"""Unit codes: each code tells its whole chain of parents.

- street:      12-digit statistical division code ending in 000
               (6-digit county code GB/T 2260 + 3-digit street code + 000), e.g. 420106011000
- community:   12-digit statistical division code, e.g. 420106011003
- grid:        15 digits = community code + 3-digit sequence (Beijing DB11/T 2157-2023),
               numbered west to east, then north to south inside the community;
               sequences from 601 are grids formed by merging (CJ/T 349)
- compound:    community code + "C" + 3 digits, e.g. 420106011003C012
- neighbourhood: compound code + "N" + 3 digits, e.g. 420106011003C012N004
- building:    compound code + "B" + 3 digits, e.g. 420106011003C012B007

Street, community and grid codes follow the national schemes and are checked
strictly. Compound, neighbourhood and building codes have no national scheme:
gridmap's own form above is recommended and checked against the parent when a
code has that form; any other non-empty code is accepted as the city's own.
"""

from __future__ import annotations

import re

from geo.errors import InvalidInput

_PATTERNS = {
    "street": re.compile(r"^\d{9}000$"),
    "community": re.compile(r"^\d{12}$"),
    "grid": re.compile(r"^\d{15}$"),
}
_OWN_FORM = {
    "compound": re.compile(r"^(\d{12})C\d{3}$"),
    "neighbourhood": re.compile(r"^(\d{12}C\d{3})N\d{3}$"),
    "building": re.compile(r"^(\d{12}C\d{3})B\d{3,4}$"),
}
MAX_LENGTH = 64


def check(level: str, code: str, label: str = "") -> str:
    """Return the code, stripped, or raise InvalidInput naming what is wrong."""
    code = str(code or "").strip()
    where = f"{label}: " if label else ""
    if not code:
        raise InvalidInput(f"{where}{level} has no code")
    if "\x00" in code:
        raise InvalidInput(f"{where}{level} code contains a NUL character")
    if len(code) > MAX_LENGTH:
        raise InvalidInput(f"{where}{level} code {code[:20]}... is longer than {MAX_LENGTH} characters")
    pattern = _PATTERNS.get(level)
    if pattern and not pattern.match(code):
        expected = {
            "street": "12 digits ending in 000 (e.g. 420106011000)",
            "community": "12 digits (e.g. 420106011003)",
            "grid": "15 digits: community code + 3-digit sequence (e.g. 420106011003002)",
        }[level]
        raise InvalidInput(f"{where}{level} code {code!r} is not {expected}")
    if level == "community" and code.endswith("000"):
        raise InvalidInput(f"{where}community code {code!r} ends in 000, which is a street's code")
    return code


def implied_parent(level: str, code: str, parent_level: str) -> str | None:
    """The code of the parent at `parent_level` that `code` says it lies in, if it says."""
    if level == "community" and parent_level == "street":
        return code[:9] + "000"
    if level in ("grid", "compound") and parent_level == "community":
        if level == "grid" or _OWN_FORM["compound"].match(code):
            return code[:12]
        return None
    if level in ("neighbourhood", "building") and parent_level == "compound":
        match = _OWN_FORM[level].match(code)
        return match.group(1) if match else None
    return None


def street_code(county: str, seq: int) -> str:
    return f"{county}{seq:03d}000"


def community_code(street: str, seq: int) -> str:
    return f"{street[:9]}{seq:03d}"


def grid_code(community: str, seq: int) -> str:
    return f"{community}{seq:03d}"


def compound_code(community: str, seq: int) -> str:
    return f"{community}C{seq:03d}"


def neighbourhood_code(compound: str, seq: int) -> str:
    return f"{compound}N{seq:03d}"


def building_code(compound: str, seq: int) -> str:
    return f"{compound}B{seq:03d}"
