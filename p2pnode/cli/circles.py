"""CLI commands for circles: announce, update, cancel, show, calendar, and the listing.

Flags map one to one onto the `circle` record (PROTOCOL.md Appendix A); an update sends only
the fields given, with nested maps (course, venue) completed from the current state.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable, Sequence
from typing import Any

from p2pnode import actions
from p2pnode.calendar import circle_calendar, local_time_note, local_timezone
from p2pnode.cli.common import (
    EXIT_OK,
    UsageError,
    notify_node,
    print_json,
    resolve_circle,
    resolve_node,
    write_bytes,
    write_output,
)
from p2pnode.cli.display import circle_lines
from p2pnode.cli.parser import mark_required
from p2pnode.errors import InvalidInput, NotFound
from p2pnode.home import Home
from p2pnode.store import queries
from p2pnode.store.models import CircleDetail, CircleSummary, to_jsonable
from protocol.identity import fingerprint, node_id_text
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
    if not partial and (args.start is not None or args.weeks is not None or args.meeting):
        if args.meeting:
            record["meetings"] = sorted(set(args.meeting))
        else:
            if args.start is None:
                raise InvalidInput("--weeks needs --start")
            start = _start_date(args.start)
            weeks = 6 if args.weeks is None else args.weeks
            if not 1 <= weeks <= 52:
                raise InvalidInput(f"--weeks must be 1-52, not {weeks}")
            try:
                record["meetings"] = meeting_dates(start, weeks)
            except OverflowError:
                raise InvalidInput(f"--start {args.start} plus {weeks} weeks is past the year 9999"
                                   ) from None
    if partial and args.no_capacity:
        record["signup_limit"] = None
    if not partial:
        record.setdefault("duration_min", 90)
        if "timezone" not in record:
            record["timezone"] = local_timezone()
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
            raise UsageError("missing " + ", ".join(missing))
    return record


def _start_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--start must be YYYY-MM-DD, not {text!r}") from None


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
        for line in circle_lines(c):
            print(line)


def _print_circle(detail: CircleDetail, hints: Sequence[str] = ()) -> None:
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
        f"  when:        {s.weekday}s {s.meeting_time} {s.timezone}"
        f"{local_time_note(s.next_meeting or s.start_date, s.meeting_time, s.timezone)},"
        f" {s.duration_min} min, {s.start_date} to {s.end_date}"
    )
    seats = f"{s.seats_taken} of {s.signup_limit}" if s.signup_limit else f"{s.seats_taken}"
    waiting = sum(1 for p in detail.participants if p.status == "waiting")
    print(f"  seats taken: {seats}" + (f", {waiting} on the waiting list" if waiting else ""))
    print(f"  facilitators: {', '.join(p.label for p in s.facilitators)}")
    for hint in hints:
        print(f"  hint:        {hint}")
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
    if detail.feedback_count:
        rated = ", ".join(f"{key} {value:.1f}/5" for key, value in detail.ratings.items()
                          if value is not None)
        print(f"  feedback ({detail.feedback_count}): {rated or 'no ratings'}")
        for f in detail.feedback:
            who = f.author.label if f.author else "anonymous"
            stars = "".join(f" {k} {v}/5" for k, v in f.ratings.items() if v is not None)
            print(f"    {who}, {f.role}:{stars}")
            for label, text in (("goal", f.goal), ("why", f.reason), ("next", f.next_steps)):
                if text:
                    print(f"          {label}: {text.splitlines()[0]}")
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
    record = _circle_record(args, partial=False)
    if args.facilitator:
        record["facilitators"] = [resolve_node(home, f, "--facilitator")
                                  for f in args.facilitator]
    entry = actions.announce_circle(home, record)
    notify_node(home)
    return _show_or_id(args, home, entry.id)


def cmd_circle_update(args: argparse.Namespace, home: Home) -> int:
    circle_id = resolve_circle(home, args.circle)
    changes = _merge_update(home, circle_id, _circle_record(args, partial=True))
    if args.start is not None or args.weeks is not None or args.meeting:
        changes["meetings"] = actions.reschedule(
            home, circle_id, start=None if args.start is None else _start_date(args.start),
            weeks=args.weeks, dates=args.meeting or None,
        )
    if args.add_facilitator or args.remove_facilitator:
        changes["facilitators"] = actions.change_facilitators(
            home, circle_id,
            add=[resolve_node(home, f, "--add-facilitator") for f in args.add_facilitator or ()],
            remove=[resolve_node(home, f, "--remove-facilitator")
                    for f in args.remove_facilitator or ()],
            hand_over=args.hand_over,
        )
    actions.update_circle(home, circle_id, changes, hand_over=args.hand_over)
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
    hints = detail.health_hints(actions.now_ms())
    if args.json:
        print_json({**to_jsonable(detail), "hints": list(hints)})
    else:
        _print_circle(detail, hints)
    return EXIT_OK


def cmd_circle_ics(args: argparse.Namespace, home: Home) -> int:
    circle_id = resolve_circle(home, args.circle)
    detail = queries.get_circle(home.store.conn, circle_id, now_ms=actions.now_ms())
    state = queries.circle_state(home.store.conn, circle_id)
    if detail is None or state is None:
        raise NotFound(f"no circle {fingerprint(circle_id)} is known here")
    data = circle_calendar(circle_id, state, cancelled=detail.summary.status == "cancelled")
    write_output(args.output, lambda path: write_bytes(path, data), force=args.force)
    to_stdout = args.output == "-"
    print(f"Wrote {len(state['meetings'])} meetings to "
          f"{'standard output' if to_stdout else args.output}",
          file=sys.stderr if to_stdout else sys.stdout)
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
    g.add_argument("--start", help="first meeting, YYYY-MM-DD (update: the first meeting still"
                                   " to come)")
    g.add_argument("--weeks", type=int, help="number of weekly meetings (default 6; update: the"
                                             " number in all, those held included)")
    g.add_argument("--meeting", action="append", help="an explicit meeting date (repeatable;"
                                                      " update: the meetings still to come)")
    g.add_argument("--time", help="meeting time HH:MM, local to --timezone")
    g.add_argument("--duration", type=int, help="minutes per meeting (default 90)")
    g.add_argument(
        "--timezone", help="IANA zone, e.g. Africa/Johannesburg (default: this machine's)"
    )


ANNOUNCE_EXAMPLE = """\
example:
  p2pnode circle announce --name "Python for Everybody" \\
      --description "Weekly study group" --course-title "Python for Everybody" \\
      --venue "Central Library, Room 2" --city "Cape Town" --country ZA \\
      --start 2027-01-12 --weeks 6 --time 18:30 --timezone Africa/Johannesburg \\
      --language en --capacity 12

It prints the new circle's id; `p2pnode circles` lists it.
"""


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
    p.epilog = ANNOUNCE_EXAMPLE
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    _add_circle_fields(p)
    p.add_argument("--facilitator", action="append", metavar="ID",
                   help="a co-facilitator's node id or unique prefix (repeatable); you are"
                        " always the first facilitator")
    mark_required(p, "--name", "--description", "--course-title", "--venue", "--city",
                  "--time", "--language")
    for action in p._actions:
        if "--start" in action.option_strings:
            action.help += " (required, or --meeting)"
    json_flag(p)
    p = circle_command(
        "update", cmd_circle_update,
        "change a circle you facilitate. A new --start/--weeks/--meeting moves only the"
        " meetings still to come: those that took place keep their dates, numbers, RSVPs and"
        " notes. A cancelled circle cannot be changed.")
    p.add_argument("circle", help="circle id (or a unique prefix)")
    _add_circle_fields(p)
    p.add_argument("--no-capacity", action="store_true", help="remove the sign-up limit")
    g = p.add_argument_group("facilitators")
    g.add_argument("--add-facilitator", action="append", metavar="ID",
                   help="add a co-facilitator: node id or unique prefix (repeatable)")
    g.add_argument("--remove-facilitator", action="append", metavar="ID",
                   help="remove a co-facilitator (repeatable)")
    g.add_argument("--hand-over", action="store_true",
                   help="allow removing the circle's author from the facilitators (they stop"
                        " receiving sign-up details)")
    json_flag(p)
    p = circle_command("cancel", cmd_circle_cancel, "cancel a circle you facilitate")
    p.add_argument("circle")
    p.add_argument("--reason")
    p = circle_command("show", cmd_circle_show, "one circle in full")
    p.add_argument("circle")
    json_flag(p)
    p = circle_command("ics", cmd_circle_ics, "write the meeting schedule as an .ics calendar")
    p.add_argument("circle")
    p.add_argument("-o", "--output", required=True, help="file to write; - for standard output")
    p.add_argument("--force", action="store_true", help="overwrite the file if it exists")

    p = command("circles", cmd_circles, "list circles (upcoming and running; soonest first)")
    p.add_argument("--search", help="words to look for")
    p.add_argument("--topic")
    p.add_argument("--language")
    p.add_argument("--weekday", help="day of the week the circle meets")
    p.add_argument("--all", action="store_true", help="include ended and cancelled circles")
    json_flag(p)
