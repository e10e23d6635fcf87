"""How circles and people are written on screen: short, plain, in the circle's own time zone.

Pure functions over the node's views (`p2pnode.store.models`), shared by every screen.
"""

from __future__ import annotations

import datetime as dt
import functools

from p2pnode.store.models import CircleSummary, Person, zone

STATUSES = ("upcoming", "running", "ended", "cancelled")




def zone_abbreviation(timezone: str, date: str, time: str) -> str:
    """The zone's short name on that date (SAST, CET/CEST), or the IANA name if it has none."""
    try:
        when = dt.datetime.combine(dt.date.fromisoformat(date), dt.time.fromisoformat(time),
                                   zone(timezone))
    except ValueError:
        return timezone
    name = when.tzname() or timezone
    return timezone if name.startswith(("+", "-")) else name


def meeting_label(date: str, time: str, timezone: str) -> str:
    """``Tue 12 Jan 18:30 SAST``: a meeting as the circle's own clocks read it."""
    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        return date
    return f"{day:%a %d %b} {time} {zone_abbreviation(timezone, date, time)}"


def when(circle: CircleSummary) -> str:
    """The next meeting (or the last one for a circle with none ahead)."""
    date = circle.next_meeting or circle.end_date
    return meeting_label(date, circle.meeting_time, circle.timezone)


def where(circle: CircleSummary) -> str:
    if circle.online:
        return "online"
    return ", ".join(part for part in (circle.venue, circle.city) if part)


def seats(circle: CircleSummary) -> str:
    if circle.signup_limit:
        return f"{circle.seats_taken}/{circle.signup_limit}"
    return f"{circle.seats_taken}"


@functools.lru_cache(maxsize=4096)
def person(p: Person) -> str:
    """``Ana (k3x9ab2c)``, with the CLI's forked-feed mark when the author forked. Cached: a
    table of 100 circles would otherwise encode as many fingerprints per keystroke."""
    return p.label


def facilitators(circle: CircleSummary) -> str:
    if not circle.facilitators:
        return person(circle.author)
    first = person(circle.facilitators[0])
    more = len(circle.facilitators) - 1
    return f"{first} +{more}" if more else first


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def rating(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}/5"
