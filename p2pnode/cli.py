"""`p2pnode`: the command line.

Every command runs against one node home (`--home`, `$P2PNODE_HOME`, or the platform data dir).
Local writes go straight into the home's database (durably) and the running node, if any, is
told at once so it pushes them to peers. Every listing takes `--json`. Exit codes: 0 ok,
1 error (one line on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from protocol.errors import ProtocolError
from protocol.identity import fingerprint, node_id_text, parse_id
from protocol.records import meeting_dates

from . import actions, queries
from .calendar import circle_calendar
from .config import default_home
from .errors import InvalidInput, NodeError, NotFound
from .exchange import export_entries, import_entries
from .files import write_file_atomically
from .home import Home
from .models import CircleDetail, CircleSummary, to_jsonable

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A one-line message for the user; exit status 1."""


# -- helpers -------------------------------------------------------------------------------
def _print_json(value: Any) -> None:
    print(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))


def _local_timezone() -> str:
    """The machine's IANA zone name, or UTC when it cannot be told."""
    if os.environ.get("TZ") and "/" in os.environ["TZ"]:
        return os.environ["TZ"].lstrip(":")
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    return "UTC"


def _resolve_circle(home: Home, text: str) -> bytes:
    """A circle id from full base32/hex, or from a unique prefix of its base32 form."""
    text = text.strip().lower()
    if len(text) >= 52:
        return parse_id(text, "circle")
    matches = [
        row[0]
        for row in home.store.conn.execute("SELECT id FROM circles")
        if node_id_text(row[0]).startswith(text)
    ]
    if not matches:
        raise NotFound(f"no circle whose id starts with {text!r} is known here")
    if len(matches) > 1:
        raise InvalidInput(f"{text!r} matches {len(matches)} circles; give more characters")
    return matches[0]


def _resolve_entry(home: Home, text: str, table: str = "entries", column: str = "id") -> bytes:
    text = text.strip().lower()
    if len(text) >= 52:
        return parse_id(text, "entry")
    matches = [
        row[0]
        for row in home.store.conn.execute(f"SELECT {column} FROM {table}")
        if node_id_text(row[0]).startswith(text)
    ]
    if len(matches) != 1:
        what = "no" if not matches else f"{len(matches)}"
        raise InvalidInput(f"{what} entries match {text!r}; give the full id")
    return matches[0]


def _notify_node(home: Home) -> None:
    """Tell a node running on this home that new entries are waiting (best effort)."""
    from .control import notify_new_entries

    notify_new_entries(home.path)


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
        print(f"          {c.status}, next {when} {c.meeting_time} ({c.weekday}s), "
              f"{where}, {c.language}, seats {seats}")
        print(f"          facilitated by {', '.join(p.label for p in c.facilitators)}")


def _print_circle(detail: CircleDetail) -> None:
    s = detail.summary
    print(f"{s.name}  [{s.status}]")
    print(f"  id:          {node_id_text(s.id)}")
    print(f"  course:      {detail.course.get('title', '')}"
          + (f" — {detail.course['link']}" if detail.course.get("link") else ""))
    venue = detail.venue
    place = "online" if venue.get("online") else ", ".join(
        str(venue[k]) for k in ("name", "address", "city", "country") if venue.get(k))
    print(f"  where:       {place}")
    print(f"  when:        {s.weekday}s {s.meeting_time} ({s.timezone}), {s.duration_min} min,"
          f" {s.start_date} to {s.end_date}")
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


# -- commands ------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    with Home.create(args.home) as home:
        if args.name:
            actions.set_profile(home, args.name)
        if args.json:
            _print_json({"node_id": home.identity.node_id, "home": str(home.path)})
        else:
            print(f"Created identity {home.identity.text}")
            print(f"  fingerprint {home.identity.fingerprint}, home {home.path}")
    return EXIT_OK


def cmd_id(args: argparse.Namespace, home: Home) -> int:
    profile = actions.my_profile(home) or {}
    info = {
        "node_id": home.identity.node_id,
        "fingerprint": home.identity.fingerprint,
        "name": profile.get("name"),
        "home": str(home.path),
    }
    if args.json:
        _print_json(info)
    else:
        print(home.identity.text)
        print(f"  {profile.get('name') or '(no name yet: p2pnode profile --name NAME)'}"
              f" ({home.identity.fingerprint})")
    return EXIT_OK


def cmd_profile(args: argparse.Namespace, home: Home) -> int:
    entry = actions.set_profile(home, args.name, bio=args.bio, languages=args.language or None)
    _notify_node(home)
    print(f"Profile published as {args.name} ({home.identity.fingerprint}), entry {entry.seq}")
    return EXIT_OK


def _show_or_id(args: argparse.Namespace, home: Home, circle_id: bytes) -> int:
    if args.json:
        _print_json(queries.get_circle(home.store.conn, circle_id, now_ms=actions.now_ms()))
    else:
        print(node_id_text(circle_id))
    return EXIT_OK


def cmd_circle_announce(args: argparse.Namespace, home: Home) -> int:
    entry = actions.announce_circle(home, _circle_record(args, partial=False))
    _notify_node(home)
    return _show_or_id(args, home, entry.id)


def cmd_circle_update(args: argparse.Namespace, home: Home) -> int:
    circle_id = _resolve_circle(home, args.circle)
    changes = _merge_update(home, circle_id, _circle_record(args, partial=True))
    actions.update_circle(home, circle_id, changes)
    _notify_node(home)
    return _show_or_id(args, home, circle_id)


def cmd_circle_cancel(args: argparse.Namespace, home: Home) -> int:
    circle_id = _resolve_circle(home, args.circle)
    actions.cancel_circle(home, circle_id, args.reason)
    _notify_node(home)
    print(f"Cancelled {fingerprint(circle_id)}")
    return EXIT_OK


def cmd_circle_show(args: argparse.Namespace, home: Home) -> int:
    circle_id = _resolve_circle(home, args.circle)
    detail = queries.get_circle(home.store.conn, circle_id, now_ms=actions.now_ms())
    if detail is None:
        raise NotFound(f"no circle {fingerprint(circle_id)} is known here")
    if args.json:
        _print_json(detail)
    else:
        _print_circle(detail)
    return EXIT_OK


def cmd_circle_ics(args: argparse.Namespace, home: Home) -> int:
    circle_id = _resolve_circle(home, args.circle)
    detail = queries.get_circle(home.store.conn, circle_id, now_ms=actions.now_ms())
    state = queries.circle_state(home.store.conn, circle_id)
    if detail is None or state is None:
        raise NotFound(f"no circle {fingerprint(circle_id)} is known here")
    data = circle_calendar(circle_id, state, cancelled=detail.summary.status == "cancelled")
    _write_file_atomically(Path(args.output), data)
    print(f"Wrote {len(state['meetings'])} meetings to {args.output}")
    return EXIT_OK


def _write_file_atomically(path: Path, data: bytes) -> None:
    try:
        write_file_atomically(path, data)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None


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
        _print_json(circles)
    else:
        _print_circles(circles)
    return EXIT_OK


def cmd_join(args: argparse.Namespace, home: Home) -> int:
    circle_id = _resolve_circle(home, args.circle)
    entry = actions.join_circle(
        home, circle_id, args.name, contact=args.contact, goal=args.goal, answer=args.answer
    )
    _notify_node(home)
    if args.json:
        _print_json({"join_id": entry.id, "circle": circle_id})
    else:
        print(f"Signed up for {fingerprint(circle_id)} as {args.name}"
              f" (sign-up {fingerprint(entry.id)})")
    return EXIT_OK


def cmd_leave(args: argparse.Namespace, home: Home) -> int:
    circle_id = _resolve_circle(home, args.circle)
    actions.leave_circle(home, circle_id)
    _notify_node(home)
    print(f"Left {fingerprint(circle_id)}")
    return EXIT_OK


def cmd_accept(args: argparse.Namespace, home: Home) -> int:
    join_id = _resolve_entry(home, args.join, "joins", "entry_id")
    actions.decide_join(home, join_id, accepted=not args.decline)
    _notify_node(home)
    print(f"{'Declined' if args.decline else 'Accepted'} sign-up {fingerprint(join_id)}")
    return EXIT_OK


def cmd_joins(args: argparse.Namespace, home: Home) -> int:
    circle_id = _resolve_circle(home, args.circle)
    rows = actions.list_joins(home, circle_id)
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        print("No sign-ups yet.")
    for row in rows:
        print(f"{fingerprint(row['join_id'])}  {row['display_name']} "
              f"({fingerprint(row['node_id'])})  {row['status']}")
        for key, value in row["details"].items():
            print(f"          {key}: {value}")
    return EXIT_OK


def cmd_rsvp(args: argparse.Namespace, home: Home) -> int:
    circle_id = _resolve_circle(home, args.circle)
    entry = actions.rsvp(home, circle_id, number=args.number, date=args.date,
                         attending=not args.no)
    _notify_node(home)
    print(f"RSVP recorded ({fingerprint(entry.id)})")
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, home: Home) -> int:
    ids = [_resolve_entry(home, text) for text in args.entries]
    actions.delete_entries(home, ids, args.reason)
    _notify_node(home)
    print(f"Deleted the bodies of {len(ids)} entries; their headers stay so feeds still verify")
    return EXIT_OK


def cmd_meeting_add(args: argparse.Namespace, home: Home) -> int:
    circle_id = _resolve_circle(home, args.circle)
    entry = actions.add_meeting_note(
        home, circle_id, number=args.number, date=args.date, attendance=args.attendance,
        rating=args.rating, plus=args.plus, delta=args.delta, recap=args.notes,
    )
    _notify_node(home)
    print(f"Meeting notes recorded ({fingerprint(entry.id)})")
    return EXIT_OK


def cmd_feedback(args: argparse.Namespace, home: Home) -> int:
    circle_id = _resolve_circle(home, args.circle)
    actions.give_feedback(
        home, circle_id, course_rating=args.rating, recommendation_rating=args.recommend,
        goal=args.goal, goal_rating=args.goal_rating, reason=args.text,
        next_steps=args.next_steps,
    )
    _notify_node(home)
    print("Thank you: feedback recorded")
    return EXIT_OK


def cmd_export(args: argparse.Namespace, home: Home) -> int:
    count = export_entries(home.store, Path(args.file))
    if args.json:
        _print_json({"entries": count, "file": args.file})
    else:
        print(f"Exported {count} entries to {args.file}")
    return EXIT_OK


def cmd_import(args: argparse.Namespace, home: Home) -> int:
    report = import_entries(home.store, Path(args.file), now_ms=actions.now_ms())
    if report.new:
        _notify_node(home)
    if args.json:
        _print_json(report.__dict__)
    else:
        print(f"Imported {report.new} new entries; {report.known} already known;"
              f" {report.rejected} rejected")
        for reason in report.reasons[:10]:
            print(f"  rejected {reason}")
        if report.rejected > 10:
            print(f"  … and {report.rejected - 10} more")
        if report.truncated:
            print(f"p2pnode: error: {report.truncated}", file=sys.stderr)
    return EXIT_OK if not report.truncated else EXIT_ERROR


def cmd_recover(args: argparse.Namespace, home: Home) -> int:
    if not args.none:
        raise InvalidInput("use `p2pnode run` to fetch your entries from peers, or --none")
    home.finish_recovery()
    print("OK: new entries will start a fresh history for this identity")
    return EXIT_OK


# -- parser --------------------------------------------------------------------------------
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
    g.add_argument("--course-format", choices=["course", "book", "video", "article", "group",
                                               "other"])
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
    g.add_argument("--timezone", help="IANA zone, e.g. Africa/Johannesburg (default: this "
                                      "machine's)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="p2pnode",
        description="A peer-to-peer node for P2PU learning circles.",
    )
    parser.add_argument("--home", type=Path, default=None,
                        help="node home (default: $P2PNODE_HOME or the platform data dir)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr as well")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, func: Callable[..., int], help_text: str, **kw: Any):
        p = sub.add_parser(name, help=help_text, description=help_text, **kw)
        p.set_defaults(func=func)
        return p

    def json_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="machine-readable output")

    p = command("init", cmd_init, "create this node's identity (never overwrites one)")
    p.add_argument("--name", help="your display name (publishes a profile)")
    json_flag(p)
    json_flag(command("id", cmd_id, "show this node's id and fingerprint"))
    p = command("profile", cmd_profile, "publish your display name")
    p.set_defaults(creates_home=True)
    p.add_argument("--name", required=True)
    p.add_argument("--bio")
    p.add_argument("--language", action="append", help="a language you speak (repeatable)")

    circle = command("circle", lambda a, h: _usage(a), "announce and manage circles")
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

    p = command("join", cmd_join, "sign up for a circle (details sealed to the facilitators)")
    p.add_argument("circle")
    p.add_argument("--name", required=True, help="the name the group will know you by")
    p.add_argument("--contact", help="how the facilitators can reach you (sealed)")
    p.add_argument("--goal", help="what you hope to learn (sealed)")
    p.add_argument("--answer", help="your answer to the sign-up question (sealed)")
    json_flag(p)
    p = command("leave", cmd_leave, "withdraw from a circle")
    p.add_argument("circle")
    p = command("accept", cmd_accept, "accept a sign-up (facilitators)")
    p.add_argument("join", help="sign-up id (or a unique prefix)")
    p.add_argument("--decline", action="store_true", help="decline instead")
    p = command("joins", cmd_joins, "sign-ups of a circle with their sealed details "
                                    "(facilitators)")
    p.add_argument("circle")
    json_flag(p)
    p = command("rsvp", cmd_rsvp, "say whether you will attend a meeting")
    p.add_argument("circle")
    p.add_argument("--number", type=int, help="meeting number (1 = first)")
    p.add_argument("--date", help="meeting date YYYY-MM-DD")
    p.add_argument("--no", action="store_true", help="you will not attend")
    p = command("delete", cmd_delete, "drop the bodies of some of your entries everywhere")
    p.add_argument("entries", nargs="+", help="entry ids")
    p.add_argument("--reason")

    meeting = command("meeting", lambda a, h: _usage(a), "meeting notes (plus/delta)")
    msub = meeting.add_subparsers(dest="meeting_command", metavar="ACTION")
    p = msub.add_parser("add", help="record a meeting's plus/delta (facilitators)")
    p.set_defaults(func=cmd_meeting_add)
    p.add_argument("circle")
    p.add_argument("--number", type=int, help="meeting number (1 = first)")
    p.add_argument("--date", help="meeting date YYYY-MM-DD")
    p.add_argument("--plus", action="append", help="what went well (repeatable)")
    p.add_argument("--delta", action="append", help="what to change (repeatable)")
    p.add_argument("--notes", help="a recap of the meeting")
    p.add_argument("--attendance", type=int)
    p.add_argument("--rating", type=int, help="1-5")

    p = command("feedback", cmd_feedback, "rate a circle's course when it ends")
    p.add_argument("circle")
    p.add_argument("--rating", type=int, required=True, help="course rating 1-5")
    p.add_argument("--text", help="why")
    p.add_argument("--recommend", type=int, help="would you recommend it, 1-5")
    p.add_argument("--goal")
    p.add_argument("--goal-rating", type=int, help="how well you reached your goal, 1-5")
    p.add_argument("--next-steps")

    p = command("export", cmd_export, "write every entry to a file (for a USB stick)")
    p.add_argument("file")
    json_flag(p)
    p = command("import", cmd_import, "read entries from an export file")
    p.set_defaults(creates_home=True)  # a newcomer's first step may be a USB stick
    p.add_argument("file")
    json_flag(p)
    p = command("recover", cmd_recover, "settle a pending feed recovery")
    p.add_argument("--none", action="store_true", help="this identity never wrote entries")

    from . import cli_node

    cli_node.add_commands(sub, command, json_flag)
    return parser


def _usage(args: argparse.Namespace) -> int:
    raise _UsageError(f"{args.command} needs an action; see p2pnode {args.command} --help")


class _UsageError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.home is None:
        args.home = default_home()
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_OK
    try:
        if args.func is cmd_init:
            return cmd_init(args)
        if getattr(args, "needs_home", True) is False:
            return args.func(args)
        with Home.open(args.home, create=getattr(args, "creates_home", False)) as home:
            return args.func(args, home)
    except _UsageError as exc:
        print(f"p2pnode: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (NodeError, ProtocolError, CliError) as exc:
        print(f"p2pnode: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("p2pnode: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:  # a file or socket the command needed: say which, in one line
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"p2pnode: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug: one line for the user, details in the log
        import logging

        logging.getLogger("p2pnode").exception("unexpected error")
        print(f"p2pnode: internal error: {type(exc).__name__}: {exc} (please report it; "
              "the node log has details)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
