"""What a circle's meeting day looks like in text: which meeting is today (in the circle's own
zone), its phases with their clock times, and the plus/delta of the meeting before ("last time
you said…") and of today's once it is written. Shared by meeting mode and the circle's detail.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from textual.markup import escape

from p2pnode.meeting import PHASES, scaled_plan
from p2pnode.store.models import CircleDetail, Meeting, zone
from tui import format as fmt


def circle_today(detail: CircleDetail, now_s: float) -> str:
    """Today's date (ISO) where the circle meets."""
    return dt.datetime.fromtimestamp(now_s, zone(detail.summary.timezone)).date().isoformat()


def meeting_on(detail: CircleDetail, date: str) -> Meeting | None:
    return next((m for m in detail.meetings if m.date == date), None)


def past_meetings_with_notes(detail: CircleDetail, before: str) -> list[Meeting]:
    """Meetings before `before` that have a plus/delta, latest first."""
    return [m for m in reversed(detail.meetings) if m.date < before and m.notes]


def note_lines(notes: tuple[dict[str, Any], ...]) -> list[str]:
    """A meeting's notes as plain lines: "+ …", "Δ …", and how many came."""
    lines: list[str] = []
    for note in notes:
        lines += [f"+ {item}" for item in note.get("plus", [])]
        lines += [f"Δ {item}" for item in note.get("delta", [])]
        if note.get("attendance") is not None:
            lines.append(f"{note['attendance']} came")
        if note.get("recap"):
            lines.append(f"Recap: {note['recap']}")
    return lines


def phase_times(plan: tuple[int, ...], meeting_time: str) -> str:
    """The phases with the clock time each starts at: "18:30 check-in · 18:40 coursework · …"
    (short enough for one line at 80 columns)."""
    start = dt.datetime.combine(dt.date(2000, 1, 1), dt.time.fromisoformat(meeting_time))
    parts = []
    for name, minutes in zip(PHASES, plan, strict=True):
        parts.append(f"{start:%H:%M} {name}")
        start += dt.timedelta(minutes=minutes)
    return " · ".join(parts)


def meeting_day_text(detail: CircleDetail, now_s: float, *, facilitating: bool) -> str:
    """The detail's meeting-day section (markup), or "" when the circle does not meet today."""
    s = detail.summary
    if s.status == "cancelled":
        return ""
    today = circle_today(detail, now_s)
    todays = meeting_on(detail, today)
    if todays is None:
        return ""
    total = len(detail.meetings)
    lines = [f"[b]Today: meeting {todays.number} of {total}[/b] at {s.meeting_time}"
             f" ({s.timezone}), {s.duration_min} min"]
    # the usual shape: a facilitator's own plan stays on their machine
    lines.append("  " + escape(phase_times(scaled_plan(s.duration_min), s.meeting_time)))
    if facilitating:
        lines.append("  [i]Press m to run it in meeting mode: timer, attendance,"
                     " plus/delta.[/i]")
    if todays.notes:
        lines.append("[b]Today's plus/delta[/b]")
        lines += ["  " + escape(line) for line in note_lines(todays.notes)]
    earlier = past_meetings_with_notes(detail, today)
    if earlier:
        last = earlier[0]
        label = fmt.meeting_label(last.date, s.meeting_time, s.timezone)
        lines.append(f"[b]Last week's plus/delta[/b] (meeting {last.number}, {escape(label)})")
        lines += ["  " + escape(line) for line in note_lines(last.notes)]
    return "\n".join(lines)
