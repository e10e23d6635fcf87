"""A circle's meeting schedule as an iCalendar (RFC 5545) file, via the `icalendar` library."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any
from zoneinfo import ZoneInfo

import icalendar

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


def local_timezone() -> str:
    """This machine's IANA zone name ($TZ or /etc/localtime), or UTC when it cannot be told."""
    if os.environ.get("TZ") and "/" in os.environ["TZ"]:
        return os.environ["TZ"].lstrip(":")
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    return "UTC"
