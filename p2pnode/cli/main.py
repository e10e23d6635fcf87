"""`p2pnode`: the command line.

Every command runs against one node home (`--home`, `$P2PNODE_HOME`, or the platform data dir).
Local writes go straight into the home's database (durably) and the running node, if any, is
told at once so it pushes them to peers. Every listing takes `--json`. Exit codes: 0 ok,
1 error (one line on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from p2pnode import actions
from p2pnode.cli import circles as cli_circles
from p2pnode.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    UsageError,
    attach_log,
    detach_log,
    notify_node,
    print_json,
    resolve_circle,
    resolve_entry,
    write_output,
)
from p2pnode.cli.parser import CliParser, add_everywhere, mark_required
from p2pnode.config import default_home
from p2pnode.errors import InvalidInput, NodeError
from p2pnode.home import Home
from p2pnode.store import queries
from p2pnode.store.exchange import export_entries, import_entries
from protocol.entry import decode_body
from protocol.errors import InvalidRecordError, ProtocolError
from protocol.identity import fingerprint


# -- commands ------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    with Home.create(args.home) as home:
        if args.name:
            actions.set_profile(home, args.name)
        if args.json:
            print_json({"node_id": home.identity.node_id, "home": str(home.path)})
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
        print_json(info)
    else:
        print(home.identity.text)
        print(f"  {profile.get('name') or '(no name yet: p2pnode profile --name NAME)'}"
              f" ({home.identity.fingerprint})")
    return EXIT_OK


def cmd_profile(args: argparse.Namespace, home: Home) -> int:
    entry = actions.set_profile(home, args.name, bio=args.bio, languages=args.language or None)
    notify_node(home)
    print(f"Profile published as {args.name} ({home.identity.fingerprint}), entry {entry.seq}")
    return EXIT_OK


def cmd_join(args: argparse.Namespace, home: Home) -> int:
    circle_id = resolve_circle(home, args.circle)
    before = actions.my_signup(home, circle_id)
    entry = actions.join_circle(
        home, circle_id, args.name, contact=args.contact, goal=args.goal, answer=args.answer
    )
    notify_node(home)
    signup = actions.my_signup(home, circle_id) or {}
    status = signup.get("status", "pending")
    if args.json:
        print_json({"join_id": entry.id, "circle": circle_id, "status": status,
                    "waiting_position": signup.get("waiting_position")})
        return EXIT_OK
    verb = "Updated your sign-up for" if before else "Signed up for"
    print(f"{verb} {fingerprint(circle_id)} as {args.name} (sign-up {fingerprint(entry.id)})")
    if status == "waiting":
        print(f"The circle is full ({signup['seats_taken']} of {signup['signup_limit']} seats"
              f" taken): you are number {signup['waiting_position']} on the waiting list."
              " A seat is yours if one frees up or a facilitator accepts you.")
    elif before:
        print(f"Your sign-up keeps its standing: {status}")
    return EXIT_OK


def cmd_leave(args: argparse.Namespace, home: Home) -> int:
    circle_id = resolve_circle(home, args.circle)
    signup = actions.my_signup(home, circle_id)
    actions.leave_circle(home, circle_id)
    notify_node(home)
    seated = signup is not None and signup["status"] in ("accepted", "pending")
    print(f"Left {fingerprint(circle_id)}" + ("; your seat is free for someone else" if seated
                                               else ""))
    return EXIT_OK


def cmd_accept(args: argparse.Namespace, home: Home) -> int:
    join_id = resolve_entry(home, args.join, "joins", "entry_id")
    entry = actions.decide_join(home, join_id, accepted=not args.decline,
                                over_capacity=args.over_capacity)
    notify_node(home)
    print(f"{'Declined' if args.decline else 'Accepted'} sign-up {fingerprint(join_id)}")
    circle_id = decode_body(entry.body_bytes)["circle"]
    detail = queries.get_circle(home.store.conn, circle_id, now_ms=actions.now_ms())
    for hint in detail.health_hints(actions.now_ms()) if detail else ():
        print(f"hint: {hint}")
    return EXIT_OK


def cmd_joins(args: argparse.Namespace, home: Home) -> int:
    circle_id = resolve_circle(home, args.circle)
    rows = actions.list_joins(home, circle_id)
    if args.json:
        print_json(rows)
        return EXIT_OK
    if not rows:
        print("No sign-ups yet.")
    for row in rows:
        print(f"{fingerprint(row['join_id'])}  {row['display_name']} "
              f"({fingerprint(row['node_id'])})  {row['status']}")
        for key, value in row["details"].items():
            print(f"          {key}: {value}")
    return EXIT_OK


def _need_meeting(args: argparse.Namespace) -> None:
    if args.number is None and args.date is None:
        raise UsageError(f"{args.command} needs --number N or --date YYYY-MM-DD")


def cmd_rsvp(args: argparse.Namespace, home: Home) -> int:
    _need_meeting(args)
    circle_id = resolve_circle(home, args.circle)
    entry = actions.rsvp(home, circle_id, number=args.number, date=args.date,
                         attending=not args.no)
    notify_node(home)
    print(f"RSVP recorded ({fingerprint(entry.id)})")
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, home: Home) -> int:
    ids = [resolve_entry(home, text) for text in args.entries]
    actions.delete_entries(home, ids, args.reason)
    notify_node(home)
    print(f"Deleted the bodies of {len(ids)} entries; their headers stay so feeds still verify")
    return EXIT_OK


def cmd_meeting_add(args: argparse.Namespace, home: Home) -> int:
    _need_meeting(args)
    circle_id = resolve_circle(home, args.circle)
    entry = actions.add_meeting_note(
        home, circle_id, number=args.number, date=args.date, attendance=args.attendance,
        rating=args.rating, plus=args.plus, delta=args.delta, recap=args.notes,
    )
    notify_node(home)
    print(f"Meeting notes recorded ({fingerprint(entry.id)})")
    return EXIT_OK


def cmd_feedback(args: argparse.Namespace, home: Home) -> int:
    circle_id = resolve_circle(home, args.circle)
    actions.give_feedback(
        home, circle_id, course_rating=args.rating, recommendation_rating=args.recommend,
        goal=args.goal, goal_rating=args.goal_rating, reason=args.text,
        next_steps=args.next_steps,
    )
    notify_node(home)
    print("Thank you: feedback recorded")
    return EXIT_OK


def cmd_export(args: argparse.Namespace, home: Home) -> int:
    count = write_output(args.file, lambda path: export_entries(home.store, path),
                         force=args.force)
    if args.json:
        print_json({"entries": count, "file": args.file},
                   file=sys.stderr if args.file == "-" else sys.stdout)
    else:
        print(f"Exported {count} entries to "
              f"{'standard output' if args.file == '-' else args.file}",
              file=sys.stderr if args.file == "-" else sys.stdout)
    return EXIT_OK


def cmd_import(args: argparse.Namespace, home: Home) -> int:
    report = import_entries(home.store, Path(args.file), now_ms=actions.now_ms())
    if report.new:
        notify_node(home)
    if args.json:
        print_json(report.__dict__)
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
def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="p2pnode",
        description="A peer-to-peer node for P2PU learning circles.",
        epilog="Options --home and -v may also follow the command. "
               "Exit status: 0 ok, 1 error, 2 usage.",
    )
    parser.add_argument("--version", action="version", version=f"p2pnode {_version()}")
    home_help = "node home (default: $P2PNODE_HOME or the platform data dir)"
    parser.add_argument("--home", type=Path, default=None, help=home_help)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log to stderr as well as to HOME/node.log")
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

    cli_circles.add_commands(sub, command, json_flag, _usage)

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
    p.add_argument("--over-capacity", action="store_true",
                   help="accept even though every seat is already accepted")
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
    p.set_defaults(field_options={"reason": "--text"})
    p.add_argument("circle")
    p.add_argument("--rating", type=int, required=True, help="course rating 1-5")
    p.add_argument("--text", help="why")
    p.add_argument("--recommend", type=int, help="would you recommend it, 1-5")
    p.add_argument("--goal")
    p.add_argument("--goal-rating", type=int, help="how well you reached your goal, 1-5")
    p.add_argument("--next-steps")

    p = command("export", cmd_export, "write every entry to a file (for a USB stick)")
    p.add_argument("file", help="the file to write; - for standard output")
    p.add_argument("--force", action="store_true", help="overwrite the file if it exists")
    json_flag(p)
    p = command("import", cmd_import, "read entries from an export file")
    p.set_defaults(creates_home=True)  # a newcomer's first step may be a USB stick
    p.add_argument("file")
    json_flag(p)
    p = command("recover", cmd_recover, "settle a pending feed recovery")
    p.add_argument("--none", action="store_true", help="this identity never wrote entries")

    from p2pnode.cli import node as cli_node

    cli_node.add_commands(sub, command, json_flag)
    add_everywhere(parser, "--home", type=Path, help=home_help)
    add_everywhere(parser, "-v", "--verbose", action="store_true", help="log to stderr too")
    for each in parser.all_parsers():
        mark_required(each)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("p2pnode")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "(not installed)"


def _usage(args: argparse.Namespace) -> int:
    raise UsageError(f"{args.command} needs an action; see p2pnode {args.command} --help")


#: Record fields (as validators name them) -> the option a user types. Dotted paths first.
FIELD_OPTIONS = {
    "course.title": "--course-title", "course.provider": "--course-provider",
    "course.link": "--course-url", "course.format": "--course-format",
    "course.caption": "--course-caption", "course.topics": "--topic",
    "course.language": "--course-language", "course.licence": "--course-licence",
    "venue.name": "--venue", "venue.address": "--address", "venue.details": "--venue-details",
    "venue.website": "--venue-website", "venue.city": "--city", "venue.region": "--region",
    "venue.country": "--country", "venue.online": "--online",
    "name": "--name", "description": "--description", "language": "--language",
    "timezone": "--timezone", "meeting_time": "--time", "duration_min": "--duration",
    "meetings": "--start/--meeting", "signup_limit": "--capacity",
    "signup_question": "--question", "facilitators": "--facilitator",
    "bio": "--bio", "languages": "--language", "display_name": "--name",
    "date": "--date", "attendance": "--attendance", "rating": "--rating", "plus": "--plus",
    "delta": "--delta", "recap": "--notes", "goal": "--goal", "goal_rating": "--goal-rating",
    "course_rating": "--rating", "recommendation_rating": "--recommend",
    "next_steps": "--next-steps", "reason": "--reason", "title": "--title",
    "caption": "--caption", "licence": "--licence",
}


def _option_for(args: argparse.Namespace, field: str) -> str | None:
    """The option that set a record field (`venue.country` -> `--country`), if any."""
    options = {**FIELD_OPTIONS, **getattr(args, "field_options", {})}
    path = field.removeprefix("body.")
    while path:
        plain = path.split("[", 1)[0]
        if plain in options:
            return options[plain]
        path = path.partition(".")[2]
    return None


#: Options whose values are file names: any bytes the file system allows, not only UTF-8 text.
_FILE_NAME_OPTIONS = {"home", "file", "output", "network_key"}


def _check_text(args: argparse.Namespace) -> None:
    """Text that is not UTF-8 (argv decoded with surrogateescape) cannot go into a record."""
    for dest, value in vars(args).items():
        if dest in _FILE_NAME_OPTIONS:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    name = "--" + dest.replace("_", "-") if dest not in (
                        "circle", "join", "resource", "entries") else dest.upper()
                    raise InvalidInput(f"{name} is not UTF-8 text; set your terminal to UTF-8 "
                                       "(e.g. LANG=C.UTF-8) and type it again") from None


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `p2pnode` command; return its exit status (usage errors raise SystemExit(2))."""
    with _readable_output():
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.home is None:
            args.home = default_home()
        if args.command is None:  # `p2pnode` alone opens the app on the (default) home
            home, verbose = args.home, args.verbose
            args = parser.parse_args(["tui"])
            args.home, args.verbose = home, verbose
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_OK
        attach_log(args.home, args.verbose)
        try:
            return _run(args)
        finally:
            detach_log()


def _run(args: argparse.Namespace) -> int:
    try:
        _check_text(args)
        if args.func is cmd_init:
            return cmd_init(args)
        if getattr(args, "needs_home", True) is False:
            return args.func(args)
        with Home.open(args.home, create=getattr(args, "creates_home", False)) as home:
            return args.func(args, home)
    except UsageError as exc:
        print(f"p2pnode: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except InvalidRecordError as exc:
        option = _option_for(args, exc.field or "")
        message = f"{option}: {exc.reason}" if option else str(exc)
        print(f"p2pnode: error: {_one_line(message)}", file=sys.stderr)
        return EXIT_ERROR
    except (NodeError, ProtocolError, CliError) as exc:
        print(f"p2pnode: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("p2pnode: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:  # a file or socket the command needed: say which, in one line
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"p2pnode: error: {_one_line(exc.strerror or exc)}{where}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug: one line for the user, the traceback in the log
        logged = attach_log(args.home, args.verbose)  # the command may have made the home
        logging.getLogger("p2pnode").exception("unexpected error in %s", args.command)
        where = f"details in {args.home / 'node.log'}" if logged else "run with -v for details"
        print(f"p2pnode: internal error: {_one_line(f'{type(exc).__name__}: {exc}', 200)}"
              f" (please report it; {where})", file=sys.stderr)
        return EXIT_ERROR


class _readable_output:
    """Print what cannot be encoded (a file name in another encoding) as escapes, not a crash."""

    def __enter__(self) -> None:
        self._saved = []
        for stream in (sys.stdout, sys.stderr):
            errors = getattr(stream, "errors", None)
            if errors == "strict" and hasattr(stream, "reconfigure"):
                try:
                    stream.reconfigure(errors="backslashreplace")
                except (ValueError, OSError):
                    continue
                self._saved.append(stream)

    def __exit__(self, *exc: object) -> None:
        for stream in self._saved:
            with contextlib.suppress(ValueError, OSError):
                stream.reconfigure(errors="strict")


if __name__ == "__main__":
    sys.exit(main())
