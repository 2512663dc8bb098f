"""Masking residents' contact details for callers who may not see them.

Only dispatchers and admins (permission `contact`, geo/security/identity.py) see a reporter's
contact and a worker's phone whole. Everyone else gets them masked, and phone numbers, e-mail
addresses and ID numbers that residents write into free text (descriptions, notes) are
masked there too:

    13812345678            -> 138****5678
    027-87654321           -> 027-****4321
    zhang.san@example.cn   -> z***@example.cn
    张三 (a name)           -> 张*

The readers of incidents and workers (geo/db/incidents.py, geo/db/workers.py) take the viewer
and call `incident_for` and `worker_for` on every row they return: masking is decided there,
once, and not route by route.
"""

from __future__ import annotations

import re
from typing import Any

from geo.security.identity import Identity

# 7 or more digits, maybe grouped by single spaces or hyphens, maybe after a +
_NUMBER = re.compile(r"(?<!\d)\+?\d(?:[ -]?\d){6,}(?!\d)")
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}(?!\d)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _number(text: str) -> str:
    """Digits masked but the first 3 (of 11 or more) and the last 4 (of 8 or more, else 2)."""
    n = sum(c.isdigit() for c in text)
    first = 3 if n >= 11 else 0
    last = 4 if n >= 8 else 2
    out, seen = [], 0
    for c in text:
        if c.isdigit():
            seen += 1
            out.append(c if seen <= first or seen > n - last else "*")
        else:
            out.append(c)
    return "".join(out)


def _email(text: str) -> str:
    local, _, domain = text.rpartition("@")
    return f"{local[:1]}***@{domain}"


def _number_or_date(match: re.Match[str]) -> str:
    text = match.group(0)
    date = _DATE.match(text)
    if date:  # 2026-11-25 is a date, not a phone number; mask what may follow it
        rest = text[date.end():]
        return date.group(0) + (_NUMBER.sub(_number_or_date, rest) if rest else "")
    return _number(text)


def mask_text(text: str | None) -> str | None:
    """Free text with the phone numbers, ID numbers and e-mail addresses in it masked."""
    if not text:
        return text
    return _masked(text)


def _masked(text: str) -> str:
    """`mask_text` of a text that is there."""
    return _NUMBER.sub(_number_or_date, _EMAIL.sub(lambda m: _email(m.group(0)), text))


def mask_contact(text: str | None) -> str | None:
    """A contact field masked whole: numbers and addresses as in `mask_text`, and every
    other word (a name) down to its first character."""
    if not text:
        return text
    out = []
    for token in re.split(r"(\s+)", _masked(text)):
        if not token or token.isspace() or "@" in token or any(c.isdigit() for c in token):
            out.append(token)  # masked by mask_text already, or a short number
        else:
            out.append(token[:1] + "*" * max(len(token) - 1, 1))
    return "".join(out)


def incident_for(item: dict[str, Any], viewer: Identity) -> dict[str, Any]:
    """An incident as `viewer` may see it: contact, description, address and event notes masked
    unless the viewer holds `contact`."""
    if viewer.can("contact"):
        return item
    masked = dict(item)
    masked["contact"] = mask_contact(item.get("contact"))
    masked["description"] = mask_text(item.get("description"))
    masked["address"] = mask_text(item.get("address"))
    if item.get("evaluation"):
        masked["evaluation"] = item["evaluation"] | {"comment": mask_text(item["evaluation"].get("comment"))}
    if item.get("events"):
        masked["events"] = [event | {"note": mask_text(event.get("note"))} for event in item["events"]]
    return masked


def worker_for(worker: dict[str, Any], viewer: Identity) -> dict[str, Any]:
    """A worker as `viewer` may see them: the phone masked unless the viewer holds `contact`."""
    return worker if viewer.can("contact") else worker | {"phone": mask_contact(worker.get("phone"))}


def text_for(text: str | None, viewer: Identity) -> str | None:
    """Free text a resident wrote (a description), as `viewer` may see it."""
    return text if viewer.can("contact") else mask_text(text)
