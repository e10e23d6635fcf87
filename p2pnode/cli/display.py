"""How the CLI shows things to people: lines that fit a terminal (counted in display cells, so
emoji and CJK names align), times in the circle's zone with the viewer's own time beside them,
the viewer's time zone read from `TZ` or the system, and network errors in plain words."""

from __future__ import annotations

import contextlib
import datetime as dt
import re

from rich.cells import cell_len, get_character_cell_size

from p2pnode.calendar import local_time_note
from p2pnode.doctor import plain_error as plain_error  # the app says them in the same words
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
