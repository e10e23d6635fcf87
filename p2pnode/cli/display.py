"""How the CLI shows things to people: lines that fit a terminal (counted in display cells, so
emoji and CJK names align), times in the circle's zone with the viewer's own time beside them,
the viewer's time zone read from `TZ` or the system, and network errors in plain words."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import zoneinfo

from rich.cells import cell_len, get_character_cell_size

from p2pnode.errors import InvalidInput
from p2pnode.store.models import CircleSummary
from protocol.identity import fingerprint

#: Listings are laid out for the classic terminal width.
WIDTH = 80
INDENT = " " * 10


_LINE_BREAKS = re.compile(r"[\r\n\t\v\f]+")


def fit(text: str, width: int) -> str:
    """`text` on one line in at most `width` display cells, cut with an ellipsis if longer."""
    text = _LINE_BREAKS.sub(" ", text)
    if cell_len(text) <= width:
        return text
    out, used = [], 0
    for char in text:
        size = get_character_cell_size(char)
        if used + size > width - 1:
            break
        out.append(char)
        used += size
    return "".join(out) + "…"


def pad(text: str, width: int) -> str:
    """`fit` then pad with spaces to exactly `width` display cells (for aligned columns)."""
    text = fit(text, width)
    return text + " " * (width - cell_len(text))


# -- time zones ----------------------------------------------------------------------------
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


# -- circles -------------------------------------------------------------------------------
def when_text(c: CircleSummary) -> str:
    """`next Tue 2027-01-12 18:30 Africa/Johannesburg (17:30 your time)`, `ended 2026-10-01`
    or `cancelled (was …)`."""
    if c.status == "cancelled":
        return f"cancelled (was {c.start_date} to {c.end_date})"
    if c.status == "ended" or not c.next_meeting:
        return f"ended {c.end_date}"
    day = ""
    with contextlib.suppress(ValueError):
        day = f"{dt.date.fromisoformat(c.next_meeting):%a} "
    return (f"next {day}{c.next_meeting} {c.meeting_time} {c.timezone}"
            f"{local_time_note(c.next_meeting, c.meeting_time, c.timezone)}")


def circle_lines(c: CircleSummary, width: int = WIDTH) -> list[str]:
    """A circle in a listing: four lines, none wider than `width` display cells:
    id, name and status; when; where, language and seats; who facilitates."""
    body = width - len(INDENT)
    status = f"  [{c.status}]"
    seats = f"{c.seats_taken}/{c.signup_limit}" if c.signup_limit else f"{c.seats_taken}"
    tail = f", {c.language}, seats {seats}"
    where = "online" if c.online else f"{c.venue}, {c.city}"
    people = ", ".join(p.label for p in c.facilitators)
    return [
        fit(f"{fingerprint(c.id)}  {c.name}", width - len(status)) + status,
        INDENT + fit(when_text(c), body),
        INDENT + fit(where, max(10, body - cell_len(tail))) + tail,
        INDENT + fit(f"facilitated by {people}", body),
    ]


# -- network errors ------------------------------------------------------------------------
_CONNECT = re.compile(
    r"Cannot connect to host (?P<host>\S+?):(?P<port>\d+) ssl:\S+ \[(?P<why>.*)\]")


def plain_error(text: str | None) -> str:
    """A library's error message as a person would say it (aiohttp, asyncio, socket)."""
    if not text:
        return "not seen yet"
    found = _CONNECT.search(text)
    if found:
        where, why = f"{found['host']}:{found['port']}", found["why"].lower()
        if "refused" in why or "connect call failed" in why:
            return f"nothing accepts connections at {where} (is p2pnode running there?)"
        if "name or service not known" in why or "nodename nor servname" in why \
                or "temporary failure in name resolution" in why:
            return f"the name {found['host']} is not known on this network"
        if "unreachable" in why:
            return f"{where} cannot be reached from this network"
        if "timed out" in why or "timeout" in why:
            return f"{where} did not answer in time (a firewall may be dropping it)"
        return f"cannot connect to {where}"
    lowered = text.lower()
    if "timeout" in lowered or "timed out" in lowered:
        return "no answer in time (a firewall may be dropping the connection)"
    if "handshake" in lowered or "psk" in lowered or "decrypt" in lowered:
        return "the handshake failed: the other node may use a different network key"
    return " ".join(text.split())
