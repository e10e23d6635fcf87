"""`p2pnode`: the command line.

Every command runs against one node home (`--home`, `$P2PNODE_HOME`, or the platform data dir).
Local writes go straight into the home's database (durably) and the running node, if any, is
told at once so it pushes them to peers. Every listing takes `--json`. Exit codes: 0 ok,
1 error (one line on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
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
    notify_node,
    print_json,
    resolve_circle,
    resolve_entry,
)
from p2pnode.config import default_home
from p2pnode.errors import InvalidInput, NodeError
from p2pnode.home import Home
from p2pnode.store.exchange import export_entries, import_entries
from protocol.errors import ProtocolError
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
    entry = actions.join_circle(
        home, circle_id, args.name, contact=args.contact, goal=args.goal, answer=args.answer
    )
    notify_node(home)
    if args.json:
        print_json({"join_id": entry.id, "circle": circle_id})
    else:
        print(f"Signed up for {fingerprint(circle_id)} as {args.name}"
              f" (sign-up {fingerprint(entry.id)})")
    return EXIT_OK


def cmd_leave(args: argparse.Namespace, home: Home) -> int:
    circle_id = resolve_circle(home, args.circle)
    actions.leave_circle(home, circle_id)
    notify_node(home)
    print(f"Left {fingerprint(circle_id)}")
    return EXIT_OK


def cmd_accept(args: argparse.Namespace, home: Home) -> int:
    join_id = resolve_entry(home, args.join, "joins", "entry_id")
    actions.decide_join(home, join_id, accepted=not args.decline)
    notify_node(home)
    print(f"{'Declined' if args.decline else 'Accepted'} sign-up {fingerprint(join_id)}")
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


def cmd_rsvp(args: argparse.Namespace, home: Home) -> int:
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
    count = export_entries(home.store, Path(args.file))
    if args.json:
        print_json({"entries": count, "file": args.file})
    else:
        print(f"Exported {count} entries to {args.file}")
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

    from p2pnode.cli import node as cli_node

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
    if args.command is None:  # `p2pnode` alone opens the app on the (default) home
        home, verbose = args.home, args.verbose
        args = parser.parse_args(["tui"])
        args.home, args.verbose = home, verbose
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
