"""An incident's lifecycle: reported → assigned → in_progress → resolved → closed, plus
rejected, duplicate and reopening. Every change of state is an event; every write checks
the incident's version, so two people updating one incident never lose an update
(geo/usecases/incidents.py applies these rules; this module only states them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlparse

from geo.errors import Conflict, InvalidInput

STATES = ("reported", "assigned", "in_progress", "resolved", "closed", "rejected", "duplicate")
OPEN_STATES = ("reported", "assigned", "in_progress")
CLOSED_STATES = ("resolved", "closed", "rejected", "duplicate")
RESOLVED_STATES = ("resolved", "closed")
DROPPED_STATES = ("rejected", "duplicate")
# Which state may follow which. "assigned" after resolved/closed is a reopening; after
# assigned or in_progress it is a hand-over to another worker.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "reported": ("assigned", "rejected", "duplicate"),
    "assigned": ("assigned", "in_progress", "rejected", "duplicate"),
    "in_progress": ("assigned", "resolved", "rejected", "duplicate"),
    "resolved": ("closed", "assigned"),
    "closed": ("assigned",),
    "rejected": ("reported",),
    "duplicate": ("reported",),
}
# a reporter's rating of the result (回访/民评), and what it is called
RATINGS = {"satisfied": "满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意"}
PLEASED = ("satisfied", "basically_satisfied")


def check_rating(rating: str, comment: str | None) -> str:
    """The rating, or InvalidInput naming the ones there are."""
    if rating not in RATINGS:
        raise InvalidInput(f"unknown rating {rating!r}: use " + ", ".join(f"{k} ({v})" for k, v in RATINGS.items()))
    check_text(comment or "", "comment")
    if len(comment or "") > MAX_DESCRIPTION:
        raise InvalidInput(f"comment is longer than {MAX_DESCRIPTION} characters")
    return rating


# what each state is called on the maps and in Open311 updates
STATE_ZH = {"reported": "待派单", "assigned": "已派单", "in_progress": "处置中", "resolved": "已办结",
            "closed": "已关闭", "rejected": "已驳回", "duplicate": "重复件"}
CHANNELS = ("hotline", "wechat", "app", "patrol", "rider", "web", "open311", "import")
MAX_PHOTOS = 20
MAX_DESCRIPTION = 5000
MAX_SHORT_TEXT = 200  # external_id, contact
MAX_ADDRESS = 500
FUTURE_SLACK = timedelta(minutes=10)  # clocks of phones and hotline systems drift
OLDEST_REPORT = timedelta(days=3653)


class IllegalTransition(Conflict):
    """A state change the lifecycle does not allow."""


def check_text(text: str, what: str) -> None:
    """Text PostgreSQL can store: no NUL, and valid Unicode (no lone surrogates)."""
    if "\x00" in text:
        raise InvalidInput(f"{what} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid Unicode text") from None


@dataclass
class Report:
    """One incoming report, as the reporter sent it."""

    category: str
    lon: float
    lat: float
    crs: str = "wgs84"
    reported_at: datetime | None = None
    description: str = ""
    channel: str = "app"
    contact: str | None = None
    photos: list[str] = field(default_factory=list)
    external_id: str | None = None
    address: str | None = None  # as the reporter wrote it


def check_report(report: Report, now: datetime) -> datetime:
    """Refuse what a report cannot be (InvalidInput naming it); returns when it was reported."""
    if report.channel not in CHANNELS:
        raise InvalidInput(f"unknown channel {report.channel!r}: use one of {', '.join(CHANNELS)}")
    if len(report.description) > MAX_DESCRIPTION:
        raise InvalidInput(f"description is longer than {MAX_DESCRIPTION} characters")
    for text, what in ((report.description, "description"), (report.contact or "", "contact"),
                       (report.address or "", "address"),
                       (report.external_id or "", "external_id"), (report.category, "category")):
        check_text(text, what)
    if len(report.external_id or "") > MAX_SHORT_TEXT or len(report.contact or "") > MAX_SHORT_TEXT:
        raise InvalidInput(f"external_id and contact are at most {MAX_SHORT_TEXT} characters")
    if len(report.address or "") > MAX_ADDRESS:
        raise InvalidInput(f"address is at most {MAX_ADDRESS} characters")
    if len(report.photos) > MAX_PHOTOS:
        raise InvalidInput(f"at most {MAX_PHOTOS} photos a report, not {len(report.photos)}")
    for url in report.photos:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidInput(f"photo {url!r} is not an http(s) URL")
    when = report.reported_at or now
    if when.tzinfo is None:
        raise InvalidInput("reported_at needs a time zone (e.g. 2026-11-25T08:00:00+08:00)")
    if when > now + FUTURE_SLACK:
        raise InvalidInput(f"reported_at {when.isoformat()} is in the future")
    if when < now - OLDEST_REPORT:
        raise InvalidInput(f"reported_at {when.isoformat()} is more than 10 years ago: check the date")
    return when


def check_move(incident_id: int, state: str, version: int, to_state: str, expected_version: int) -> None:
    """Refuse a stale change (Conflict) and one the lifecycle does not allow (IllegalTransition)."""
    if version != expected_version:
        raise Conflict(
            f"incident {incident_id} is at version {version}, but the change was made on version "
            f"{expected_version}: reload it and try again"
        )
    if to_state not in TRANSITIONS[state]:
        allowed = ", ".join(TRANSITIONS[state]) or "nothing"
        raise IllegalTransition(f"incident {incident_id} is {state}: it can go to {allowed}, not to {to_state}")


def check_state(state: str) -> str:
    if state not in STATES:
        raise InvalidInput(f"unknown state {state!r}: use one of {', '.join(STATES)}")
    return state


def overdue(state: str, now: datetime, deadline: datetime, finished: datetime | None) -> bool:
    """Open past its deadline, or finished after it."""
    return (state in OPEN_STATES and now > deadline) or (finished is not None and finished > deadline)
