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

A code is an identity that follows the chain: when a unit comes to lie under another
parent (a split or merge of its parent, an edit), `rehome` gives it the code under the new
parent, keeping its own sequence where that was never used there, else the lowest sequence
never used (a code once used, even by a retired unit, is never given to other land).
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


def _tail(level: str, code: str) -> tuple[str, int, int] | None:
    """What follows the parent's part of a code in gridmap's forms: (separator, sequence,
    width); None for a code in the city's own form, which names no parent."""
    if level == "grid":
        return "", int(code[12:]), 3
    if level == "compound" and _OWN_FORM["compound"].match(code):
        return "C", int(code[13:]), 3
    if level in ("neighbourhood", "building") and _OWN_FORM[level].match(code):
        digits = code[17:]
        return code[16], int(digits), len(digits)
    if level == "community":
        return "", int(code[9:]), 3
    return None


def parent_part(level: str, parent_code: str) -> str:
    """The part of a child's code its parent gives it (a community's 9-digit street prefix)."""
    return parent_code[:9] if level == "community" else parent_code


def rehome(level: str, code: str, parent_code: str, taken: dict[str, set[int]], unit_id: int = 0) -> str:
    """The code of a `level` unit coded `code` once it lies under the parent coded
    `parent_code` (the parent its code names: a grid's community, a building's compound):
    the code itself when it already names that parent or names none, else the parent's part
    plus its own sequence when no other unit ever had that code, else the lowest sequence no
    other unit ever had. `taken` maps every code of the level ever used to the units that
    had it; the new code is added to it for `unit_id` (a unit may take back its own old code)."""
    tail = _tail(level, code)
    if tail is None:
        return code
    p_level = code_parent_level(level) or ""
    if implied_parent(level, code, p_level) == parent_code:
        return code
    sep, seq, width = tail
    prefix = parent_part(level, parent_code) + sep
    new = f"{prefix}{seq:0{width}d}"
    seq = 1
    while (taken.get(new, set()) - {unit_id}) or (level == "community" and new.endswith("000")):
        if seq >= 10**width:
            raise InvalidInput(f"no free {level} codes left under {parent_code}")
        new = f"{prefix}{seq:0{width}d}"
        seq += 1
    taken.setdefault(new, set()).add(unit_id)
    return new


def code_parent_level(level: str) -> str | None:
    """The parent level a code of `level` names (None: a street's code names no parent)."""
    return {"community": "street", "grid": "community", "compound": "community",
            "neighbourhood": "compound", "building": "compound"}.get(level)


def against_chain(level: str, code: str, parent_code: str | None) -> str | None:
    """What is wrong when a `level` unit's code names another parent than the one it lies in
    (None when nothing is)."""
    p_level = code_parent_level(level)
    if p_level is None:
        return None
    implied = implied_parent(level, code, p_level)
    if implied is None or implied == parent_code:
        return None
    where = f"{p_level} {parent_code}" if parent_code else f"no {p_level}"
    return (f"{level} {code} lies in {where}, but its code says {p_level} {implied}: "
            f"recode it (gridmap units recode, or POST /units/{{id}}/recode)")


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


NO_DISTRICT = "000000"  # the district of a report outside every street, community and grid
_DISTRICT = re.compile(r"^(\d{6})")


def district_of(codes: dict[str, str | None]) -> str:
    """The 6-digit district (county) code of a place, from the codes of the street, community
    or grid it lies in (each starts with it); NO_DISTRICT when it lies in none."""
    for level in ("street", "community", "grid"):
        found = _DISTRICT.match(codes.get(level) or "")
        if found:
            return found.group(1)
    return NO_DISTRICT
