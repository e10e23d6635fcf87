"""Dates and zones for people: a circle's meeting schedule as an iCalendar (RFC 5545) file (via
the `icalendar` library), the viewer's own time zone (from `TZ` in any of its forms, or the
system), and a meeting's time on the viewer's clock."""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo
from typing import Any
from zoneinfo import ZoneInfo

import icalendar

from p2pnode.errors import InvalidInput
from protocol.identity import node_id_text


def circle_calendar(circle_id: bytes, state: dict[str, Any], *, cancelled: bool) -> bytes:
    """Build the .ics bytes: one event per meeting, in the circle's own timezone."""
    zone = ZoneInfo(state["timezone"])
    hour, minute = (int(p) for p in state["meeting_time"].split(":"))
    duration = dt.timedelta(minutes=state.get("duration_min", 90))
    venue = state.get("venue", {})
    location = ", ".join(
        str(venue[k]) for k in ("name", "address", "city", "country") if venue.get(k)
    )
    course = state.get("course", {})
    cal = icalendar.Calendar()
    cal.add("prodid", "-//P2PU//p2pnode//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", state["name"])
    uid_base = node_id_text(circle_id)
    for number, date in enumerate(state["meetings"], start=1):
        start = dt.datetime.combine(dt.date.fromisoformat(date), dt.time(hour, minute), zone)
        event = icalendar.Event()
        event.add("uid", f"{uid_base}-{number}@p2pnode")
        event.add("summary", f"{state['name']} — meeting {number}")
        event.add("dtstart", start)
        event.add("dtend", start + duration)
        event.add("dtstamp", dt.datetime.now(dt.UTC))
        if location:
            event.add("location", location)
        description = state.get("description", "")
        if course.get("link"):
            description += f"\n\nCourse: {course.get('title', '')} {course['link']}"
        event.add("description", description)
        if cancelled:
            event.add("status", "CANCELLED")
        cal.add_component(event)
    cal.add_missing_timezones()
    return cal.to_ical()


def _known_zone(name: str) -> bool:
    if not name or name.startswith("/") or ".." in name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _zone_from_path(path: str) -> str | None:
    """`/usr/share/zoneinfo/Europe/Paris` (or a link to it) -> `Europe/Paris`."""
    for candidate in (path, os.path.realpath(path)):
        if "zoneinfo/" in candidate:
            name = candidate.rsplit("zoneinfo/", 1)[1]
            if name.startswith(("posix/", "right/")):
                name = name.split("/", 1)[1]
            if _known_zone(name):
                return name
    return None


def local_timezone() -> str:
    """The viewer's IANA zone name, from `TZ` (a name, `:name` or a zoneinfo path) or the system.

    Raises:
        InvalidInput: `TZ` is set to something that names no zone (said as such: the user did
            not type a time zone on this command line).
    """
    tz = os.environ.get("TZ")
    if tz:
        value = tz[1:] if tz.startswith(":") else tz
        name = _zone_from_path(value) if "zoneinfo/" in value or value.startswith("/") \
            else (value if _known_zone(value) else None)
        if name is None:
            raise InvalidInput(
                f"your TZ variable is {tz!r}, which names no time zone known here; fix it or"
                " give --timezone, e.g. --timezone Africa/Johannesburg")
        return name
    for link in ("/etc/localtime",):
        name = _zone_from_path(link) if os.path.exists(link) else None
        if name:
            return name
    try:
        with open("/etc/timezone", encoding="utf-8") as file:
            name = file.read().strip()
        if _known_zone(name):
            return name
    except (OSError, UnicodeDecodeError):
        pass
    return "UTC"


def local_time_note(date: str | None, time: str, zone: str) -> str:
    """` (17:30 your time)` when the viewer's clock differs from the circle's zone at that
    meeting, with the weekday if the day differs too; empty when they agree or cannot be told."""
    try:
        at = dt.datetime.combine(dt.date.fromisoformat(date or ""),
                                 dt.time.fromisoformat(time), zoneinfo.ZoneInfo(zone))
        mine = at.astimezone()  # the C library's local zone: honours TZ in every form
    except (ValueError, OverflowError, OSError, zoneinfo.ZoneInfoNotFoundError):
        return ""
    if mine.utcoffset() == at.utcoffset():
        return ""
    day = "" if mine.date() == at.date() else f"{mine:%a} "
    return f" ({day}{mine:%H:%M} your time)"
