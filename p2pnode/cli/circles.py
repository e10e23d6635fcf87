"""CLI commands for circles: announce, update, cancel, show, calendar, and the listing.

Flags map one to one onto the `circle` record (PROTOCOL.md Appendix A); an update sends only
the fields given, with nested maps (course, venue) completed from the current state.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from p2pnode import actions
from p2pnode.calendar import circle_calendar
from p2pnode.calendar import local_timezone as _local_timezone
from p2pnode.cli.common import EXIT_OK, notify_node, print_json, resolve_circle, write_file
from p2pnode.errors import InvalidInput, NotFound
from p2pnode.home import Home
from p2pnode.store import queries
from p2pnode.store.models import CircleDetail, CircleSummary
from protocol.identity import fingerprint, node_id_text, parse_id
from protocol.records import meeting_dates


def _circle_record(args: argparse.Namespace, *, partial: bool) -> dict[str, Any]:
    """Build a `circle` record (or the changed fields of an update) from the flags."""
    record: dict[str, Any] = {}
    course = {
        key: value
        for key, value in (
            ("title", args.course_title),
            ("provider", args.course_provider),
            ("link", args.course_url),
            ("format", args.course_format),
            ("language", args.course_language or (None if partial else args.language)),
            ("licence", args.course_licence),
            ("caption", args.course_caption),
        )
        if value is not None
    }
    if args.topic:
        course["topics"] = args.topic
    venue = {
        key: value
        for key, value in (
            ("name", args.venue),
            ("address", args.address),
            ("details", args.venue_details),
            ("website", args.venue_website),
            ("city", args.city),
            ("region", args.region),
            ("country", args.country.upper() if args.country else None),
        )
        if value is not None
    }
    if args.online is not None:
        venue["online"] = args.online
    if not partial:
        course.setdefault("format", "course")
        course.setdefault("topics", [])
        venue.setdefault("online", False)
    if course:
        record["course"] = course
    if venue:
        record["venue"] = venue
    for key, value in (
        ("name", args.name),
        ("description", args.description),
        ("language", args.language),
        ("timezone", args.timezone),
        ("meeting_time", args.time),
        ("duration_min", args.duration),
        ("signup_limit", args.capacity),
        ("signup_question", args.question),
    ):
        if value is not None:
            record[key] = value
    if args.start is not None or args.weeks is not None or args.meeting:
        if args.meeting:
            record["meetings"] = sorted(set(args.meeting))
        else:
            if args.start is None:
                raise InvalidInput("--weeks needs --start")
            try:
                start = dt.date.fromisoformat(args.start)
            except ValueError:
                raise InvalidInput(f"--start must be YYYY-MM-DD, not {args.start!r}") from None
            weeks = 6 if args.weeks is None else args.weeks
            if not 1 <= weeks <= 52:
                raise InvalidInput(f"--weeks must be 1-52, not {weeks}")
            record["meetings"] = meeting_dates(start, weeks)
    if args.facilitator:
        record["facilitators"] = [parse_id(f, "--facilitator") for f in args.facilitator]
    if partial and args.no_capacity:
        record["signup_limit"] = None
    if not partial:
        record.setdefault("duration_min", 90)
        record.setdefault("timezone", _local_timezone())
        missing = [
            flag
            for flag, present in (
                ("--name", "name" in record),
                ("--description", "description" in record),
                ("--course-title", "title" in course),
                ("--venue", "name" in venue),
                ("--city", "city" in venue),
                ("--start", "meetings" in record),
                ("--time", "meeting_time" in record),
                ("--language", "language" in record),
            )
            if not present
        ]
        if missing:
            raise InvalidInput("missing " + ", ".join(missing))
    return record


def _merge_update(home: Home, circle_id: bytes, changes: dict[str, Any]) -> dict[str, Any]:
    """Nested maps (course, venue) are replaced whole by an update: fill in the rest."""
    state = queries.circle_state(home.store.conn, circle_id) or {}
    for key in ("course", "venue"):
        if key in changes:
            changes[key] = {**state.get(key, {}), **changes[key]}
    return changes


def _print_circles(circles: Sequence[CircleSummary]) -> None:
    if not circles:
        print("No circles found. Announce one with: p2pnode circle announce --help")
        return
    for c in circles:
        seats = f"{c.seats_taken}/{c.signup_limit}" if c.signup_limit else f"{c.seats_taken}"
        when = c.next_meeting or c.end_date
        where = "online" if c.online else f"{c.venue}, {c.city}"
        print(f"{fingerprint(c.id)}  {c.name}")
        print(
            f"          {c.status}, next {when} {c.meeting_time} ({c.weekday}s), "
            f"{where}, {c.language}, seats {seats}"
        )
        print(f"          facilitated by {', '.join(p.label for p in c.facilitators)}")


def _print_circle(detail: CircleDetail) -> None:
    s = detail.summary
    print(f"{s.name}  [{s.status}]")
    print(f"  id:          {node_id_text(s.id)}")
    print(
        f"  course:      {detail.course.get('title', '')}"
        + (f" — {detail.course['link']}" if detail.course.get("link") else "")
    )
    venue = detail.venue
    place = (
        "online"
        if venue.get("online")
        else ", ".join(
            str(venue[k]) for k in ("name", "address", "city", "country") if venue.get(k)
        )
    )
    print(f"  where:       {place}")
    print(
        f"  when:        {s.weekday}s {s.meeting_time} ({s.timezone}), {s.duration_min} min,"
        f" {s.start_date} to {s.end_date}"
    )
    seats = f"{s.seats_taken} of {s.signup_limit}" if s.signup_limit else f"{s.seats_taken}"
    print(f"  seats taken: {seats}")
    print(f"  facilitators: {', '.join(p.label for p in s.facilitators)}")
    if detail.cancel_reason or s.status == "cancelled":
        print(f"  CANCELLED: {detail.cancel_reason or 'no reason given'}")
    if detail.rescheduled:
        print("  note: the schedule has changed since the circle was announced")
    print()
    print(f"  {detail.description}")
    print()
    print("  meetings:")
    for m in detail.meetings:
        print(f"    {m.number:>2}. {m.date}  attending {m.attending}")
        for note in m.notes:
            for plus in note.get("plus", []):
                print(f"          + {plus}")
            for delta in note.get("delta", []):
                print(f"          Δ {delta}")
    if detail.participants:
        print("  learners:")
        for p in detail.participants:
            print(f"    {p.display_name} ({fingerprint(p.person.node_id)}) — {p.status}")
    if detail.resources:
        print("  resources:")
        for r in detail.resources:
            print(f"    {fingerprint(r.blob)}  {r.title} ({r.size} bytes)")


def _show_or_id(args: argparse.Namespace, home: Home, circle_id: bytes) -> int:
    if args.json:
        print_json(queries.get_circle(home.store.conn, circle_id, now_ms=actions.now_ms()))
    else:
        print(node_id_text(circle_id))
    return EXIT_OK


def cmd_circle_announce(args: argparse.Namespace, home: Home) -> int:
    entry = actions.announce_circle(home, _circle_record(args, partial=False))
    notify_node(home)
    return _show_or_id(args, home, entry.id)


def cmd_circle_update(args: argparse.Namespace, home: Home) -> int:
    circle_id = resolve_circle(home, args.circle)
    changes = _merge_update(home, circle_id, _circle_record(args, partial=True))
    actions.update_circle(home, circle_id, changes)
    notify_node(home)
    return _show_or_id(args, home, circle_id)


def cmd_circle_cancel(args: argparse.Namespace, home: Home) -> int:
    circle_id = resolve_circle(home, args.circle)
    actions.cancel_circle(home, circle_id, args.reason)
    notify_node(home)
    print(f"Cancelled {fingerprint(circle_id)}")
    return EXIT_OK


def cmd_circle_show(args: argparse.Namespace, home: Home) -> int:
    circle_id = resolve_circle(home, args.circle)
    detail = queries.get_circle(home.store.conn, circle_id, now_ms=actions.now_ms())
    if detail is None:
        raise NotFound(f"no circle {fingerprint(circle_id)} is known here")
    if args.json:
        print_json(detail)
    else:
        _print_circle(detail)
    return EXIT_OK


def cmd_circle_ics(args: argparse.Namespace, home: Home) -> int:
    circle_id = resolve_circle(home, args.circle)
    detail = queries.get_circle(home.store.conn, circle_id, now_ms=actions.now_ms())
    state = queries.circle_state(home.store.conn, circle_id)
    if detail is None or state is None:
        raise NotFound(f"no circle {fingerprint(circle_id)} is known here")
    data = circle_calendar(circle_id, state, cancelled=detail.summary.status == "cancelled")
    write_file(Path(args.output), data)
    print(f"Wrote {len(state['meetings'])} meetings to {args.output}")
    return EXIT_OK


_WEEKDAY_NAMES = {name.lower()[:3]: i for i, name in enumerate(queries.WEEKDAYS)}


def cmd_circles(args: argparse.Namespace, home: Home) -> int:
    weekday = None
    if args.weekday:
        weekday = _WEEKDAY_NAMES.get(args.weekday.lower()[:3])
        if weekday is None:
            raise InvalidInput(f"--weekday must be a day name like 'tuesday', not {args.weekday!r}")
    circles = queries.list_circles(
        home.store.conn,
        now_ms=actions.now_ms(),
        search=args.search,
        topic=args.topic,
        language=args.language,
        weekday=weekday,
        include_past=args.all,
    )
    if args.json:
        print_json(circles)
    else:
        _print_circles(circles)
    return EXIT_OK


def _add_circle_fields(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("circle")
    g.add_argument("--name", help="the circle's name (1-128 characters)")
    g.add_argument("--description", help="what the circle is about (1-2000 characters)")
    g.add_argument("--language", help="language the circle meets in, e.g. en, es, pt-BR")
    g.add_argument("--capacity", type=int, help="sign-up limit (default: no limit)")
    g.add_argument("--question", help="a question people answer when they sign up")
    g.add_argument("--facilitator", action="append", help="co-facilitator node id (repeatable)")
    g = p.add_argument_group("course")
    g.add_argument("--course-title")
    g.add_argument("--course-url", help="http(s) link to the course")
    g.add_argument("--course-provider")
    g.add_argument(
        "--course-format", choices=["course", "book", "video", "article", "group", "other"]
    )
    g.add_argument("--course-language")
    g.add_argument("--course-licence", help="CC-BY, CC-BY-SA, …, not-sure")
    g.add_argument("--course-caption")
    g.add_argument("--topic", action="append", help="a topic (repeatable, up to 10)")
    g = p.add_argument_group("venue")
    g.add_argument("--venue", help="venue name, e.g. 'Central Library, Room 2'")
    g.add_argument("--address")
    g.add_argument("--venue-details", help="how to find the room")
    g.add_argument("--venue-website")
    g.add_argument("--city")
    g.add_argument("--region")
    g.add_argument("--country", help="ISO 3166 two-letter code, e.g. ZA")
    g.add_argument("--online", action=argparse.BooleanOptionalAction, default=None)
    g = p.add_argument_group("schedule")
    g.add_argument("--start", help="first meeting, YYYY-MM-DD")
    g.add_argument("--weeks", type=int, help="number of weekly meetings (default 6)")
    g.add_argument("--meeting", action="append", help="an explicit meeting date (repeatable)")
    g.add_argument("--time", help="meeting time HH:MM, local to --timezone")
    g.add_argument("--duration", type=int, help="minutes per meeting (default 90)")
    g.add_argument(
        "--timezone", help="IANA zone, e.g. Africa/Johannesburg (default: this machine's)"
    )


def add_commands(
    sub: Any,
    command: Callable[..., argparse.ArgumentParser],
    json_flag: Callable[[argparse.ArgumentParser], None],
    usage: Callable[[argparse.Namespace], int],
) -> None:
    """Register `circle …` and `circles`."""
    circle = command("circle", lambda a, h: usage(a), "announce and manage circles")
    csub = circle.add_subparsers(dest="circle_command", metavar="ACTION")

    def circle_command(name: str, func: Callable[..., int], help_text: str):
        p = csub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    p = circle_command("announce", cmd_circle_announce, "announce a new learning circle")
    _add_circle_fields(p)
    json_flag(p)
    p = circle_command("update", cmd_circle_update, "change a circle you facilitate")
    p.add_argument("circle", help="circle id (or a unique prefix)")
    _add_circle_fields(p)
    p.add_argument("--no-capacity", action="store_true", help="remove the sign-up limit")
    json_flag(p)
    p = circle_command("cancel", cmd_circle_cancel, "cancel a circle you facilitate")
    p.add_argument("circle")
    p.add_argument("--reason")
    p = circle_command("show", cmd_circle_show, "one circle in full")
    p.add_argument("circle")
    json_flag(p)
    p = circle_command("ics", cmd_circle_ics, "write the meeting schedule as an .ics calendar")
    p.add_argument("circle")
    p.add_argument("-o", "--output", required=True, help="file to write")

    p = command("circles", cmd_circles, "list circles (upcoming and running; soonest first)")
    p.add_argument("--search", help="words to look for")
    p.add_argument("--topic")
    p.add_argument("--language")
    p.add_argument("--weekday", help="day of the week the circle meets")
    p.add_argument("--all", action="store_true", help="include ended and cancelled circles")
    json_flag(p)
