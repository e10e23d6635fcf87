# ruff: noqa: F811 - the fixtures imported from test_cli are parameters here
"""The rules of a circle (issue 9, items 1-8 and 11) through the `p2pnode` command line: the
flags that expose them and the one-line messages a user sees. Dates are relative to today (the
CLI reads the real clock); circles that must already be running are announced through the
actions with an earlier clock (`announce_backdated`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from test_cli import (  # noqa: F401 - ana and p2p are fixtures used by name
    TODAY,
    ana,
    announce_backdated,
    assert_one_line_error,
    carry,
    every_flag,
    p2p,
)

from p2pnode import config


def make_home(p2p, tmp_path: Path, name: str, source: Path | None = None) -> Path:
    """A home with a profile; it has received everything `source` holds."""
    home = tmp_path / name.lower()
    assert p2p(home, "init", "--name", name).code == 0
    if source is not None:
        carry(p2p, source, home, tmp_path / f"to-{name}")
    return home


def node_id(p2p, home: Path) -> str:
    return p2p(home, "id", "--json").json()["node_id"]


def announce(p2p, home: Path, *extra: str, **over: str) -> str:
    result = p2p(home, "circle", "announce", *every_flag(**over), *extra)
    assert result.code == 0, result.err
    return result.out.strip()


# -- 1. co-facilitators --------------------------------------------------------------------------


def test_update_adds_and_removes_co_facilitators_by_prefix(ana, p2p, tmp_path):
    """`--add-facilitator PREFIX` appends (Ana and Cal stay), `--remove-facilitator` takes one
    out; removing Ana needs `--hand-over`; unknown or ambiguous prefixes are one line."""
    circle = announce(p2p, ana)
    eve = make_home(p2p, tmp_path, "Eve")
    carry(p2p, eve, ana, tmp_path / "eve-profile")
    ana_id, eve_id = node_id(p2p, ana), node_id(p2p, eve)
    cal_id = p2p(ana, "circle", "show", circle, "--json").json()["summary"]["facilitators"][1][
        "node_id"]

    def facilitators() -> list[str]:
        shown = p2p(ana, "circle", "show", circle, "--json").json()
        return [f["node_id"] for f in shown["summary"]["facilitators"]]

    added = p2p(ana, "circle", "update", circle, "--add-facilitator", eve_id[:8])
    assert added.code == 0, added.err
    assert facilitators() == [ana_id, cal_id, eve_id]
    assert_one_line_error(p2p(ana, "circle", "update", circle, "--add-facilitator", eve_id),
                          "already a facilitator")
    assert_one_line_error(p2p(ana, "circle", "update", circle, "--add-facilitator", "zzzz9"),
                          "--add-facilitator", "no node whose id starts with")
    assert_one_line_error(p2p(ana, "circle", "update", circle, "--remove-facilitator", ana_id),
                          "--hand-over")
    assert p2p(ana, "circle", "update", circle, "--remove-facilitator", eve_id[:8]).code == 0
    assert facilitators() == [ana_id, cal_id]
    handed = p2p(ana, "circle", "update", circle, "--remove-facilitator", ana_id, "--hand-over")
    assert handed.code == 0, handed.err
    assert facilitators() == [cal_id]


# -- 2, 3. standing and capacity -----------------------------------------------------------------


def test_join_again_keeps_standing_and_capacity_means_something(ana, p2p, tmp_path):
    """Room for 1: Ben is accepted and joining again keeps it; Eve is told she is on the
    waiting list; accepting her needs --over-capacity; capacity 1 under 2 accepted is refused."""
    circle = announce(p2p, ana, capacity="1")
    ben = make_home(p2p, tmp_path, "Ben", ana)
    eve = make_home(p2p, tmp_path, "Eve", ana)
    assert p2p(ben, "join", circle, "--name", "Ben").code == 0
    carry(p2p, ben, ana, tmp_path / "ben-1")
    ben_join = p2p(ana, "joins", circle, "--json").json()[0]["join_id"]
    assert p2p(ana, "accept", ben_join[:10]).code == 0
    carry(p2p, ana, ben, tmp_path / "accepted")
    again = p2p(ben, "join", circle, "--name", "Benjamin")
    assert again.code == 0 and "keeps its standing: accepted" in again.out, again.out
    carry(p2p, ben, ana, tmp_path / "ben-2")
    assert [(r["display_name"], r["status"]) for r in p2p(ana, "joins", circle, "--json").json()
            ] == [("Benjamin", "accepted")]

    carry(p2p, ana, eve, tmp_path / "to-eve-again")
    waiting = p2p(eve, "join", circle, "--name", "Eve")
    assert waiting.code == 0
    assert "full (1 of 1 seats taken): you are number 1 on the waiting list" in waiting.out
    carry(p2p, eve, ana, tmp_path / "from-eve")
    eve_join = next(r["join_id"] for r in p2p(ana, "joins", circle, "--json").json()
                    if r["status"] == "waiting")
    assert "1 on the waiting list" in p2p(ana, "circle", "show", circle).out
    assert_one_line_error(p2p(ana, "accept", eve_join), "full: 1 of 1 seats", "--over-capacity")
    assert p2p(ana, "accept", eve_join, "--over-capacity").code == 0
    assert_one_line_error(p2p(ana, "circle", "update", circle, "--capacity", "1"),
                          "capacity of 1 is below the 2 sign-ups already accepted")


# -- 4. reschedule -------------------------------------------------------------------------------


def test_rescheduling_a_running_circle_keeps_what_took_place(ana, p2p):
    """A circle that met 8 days ago and yesterday moves to a new start: those two meetings keep
    their numbers, dates and notes, six meetings in all, and it is still running."""
    first = TODAY - dt.timedelta(days=8)
    circle = announce_backdated(ana, "Running circle", first, timezone="UTC",
                                meeting_time="00:00")
    held = [first.isoformat(), (first + dt.timedelta(weeks=1)).isoformat()]
    assert p2p(ana, "meeting", "add", circle, "--number", "1", "--plus", "good start").code == 0
    new_start = TODAY + dt.timedelta(days=3)
    moved = p2p(ana, "circle", "update", circle, "--start", new_start.isoformat(), "--json")
    assert moved.code == 0, moved.err
    shown = moved.json()
    assert [m["date"] for m in shown["meetings"]] == [
        *held, *(str(new_start + dt.timedelta(weeks=w)) for w in range(4))]
    assert shown["meetings"][0]["notes"][0]["plus"] == ["good start"]
    assert shown["summary"]["status"] == "running" and shown["rescheduled"]
    assert_one_line_error(p2p(ana, "circle", "update", circle, "--weeks", "2"),
                          "--weeks must be 3-52")
    assert_one_line_error(p2p(ana, "circle", "update", circle, "--start", held[0]),
                          f"is not after {held[1]}")


# -- 5. cancelled circles and absurd dates -------------------------------------------------------


def test_a_cancelled_circle_refuses_what_no_longer_makes_sense(ana, p2p, tmp_path):
    """After a cancel: join, RSVP and update are one-line errors, and so is a second cancel."""
    circle = announce(p2p, ana)
    ben = make_home(p2p, tmp_path, "Ben", ana)
    assert p2p(ana, "circle", "cancel", circle, "--reason", "no room").code == 0
    carry(p2p, ana, ben, tmp_path / "cancel")
    assert_one_line_error(p2p(ben, "join", circle, "--name", "Ben"), "cancelled (no room)",
                          "cannot sign up")
    assert_one_line_error(p2p(ben, "rsvp", circle, "--number", "1"), "cannot RSVP")
    assert_one_line_error(p2p(ana, "circle", "update", circle, "--name", "Back"),
                          "cancellation is final")
    assert_one_line_error(p2p(ana, "circle", "cancel", circle), "already cancelled")


@pytest.mark.parametrize(("start", "fragment"), [
    (TODAY - dt.timedelta(days=30), "30 days in the past"),
    (dt.date(9999, 12, 20), "past the year 9999"),
    (dt.date(9000, 1, 1), "more than 2 years ahead"),
])
def test_announcing_with_absurd_dates_is_refused(ana, p2p, start, fragment):
    """A start a month back, or in a far year, is one line naming the problem; nothing is
    written."""
    assert_one_line_error(p2p(ana, "circle", "announce", *every_flag(first=start)), fragment)
    assert p2p(ana, "circles", "--all", "--json").json() == []


def test_a_start_a_few_days_back_is_accepted(ana, p2p):
    """A circle announced after its first meeting (3 days ago) is fine and already running."""
    circle = announce(p2p, ana, start=(TODAY - dt.timedelta(days=3)).isoformat(),
                      timezone="UTC")
    assert p2p(ana, "circle", "show", circle, "--json").json()["summary"]["status"] == "running"


# -- 6. honest no-ops ----------------------------------------------------------------------------


def test_leaving_unjoined_and_deleting_twice_exit_1(ana, p2p, tmp_path):
    """`leave` without a sign-up and `delete` of a deleted entry say so and exit 1."""
    circle = announce(p2p, ana)
    ben = make_home(p2p, tmp_path, "Ben", ana)
    assert_one_line_error(p2p(ben, "leave", circle), "not signed up")
    joined = p2p(ben, "join", circle, "--name", "Ben", "--json").json()
    assert p2p(ben, "leave", circle).code == 0
    assert_one_line_error(p2p(ben, "leave", circle), "not signed up")
    assert p2p(ben, "delete", joined["join_id"]).code == 0
    assert_one_line_error(p2p(ben, "delete", joined["join_id"]), "already deleted")


# -- 7. feedback ---------------------------------------------------------------------------------


def test_feedback_is_shown_in_circle_detail(ana, p2p, tmp_path):
    """A learner of a running circle rates it; `circle show` and its --json show the rating
    and the text; someone who never joined is refused."""
    circle = announce_backdated(ana, "Running circle", TODAY - dt.timedelta(days=2),
                                timezone="UTC", meeting_time="00:00")
    ben = make_home(p2p, tmp_path, "Ben", ana)
    eve = make_home(p2p, tmp_path, "Eve", ana)
    assert_one_line_error(p2p(eve, "feedback", circle, "--rating", "1"), "sign up first")
    assert p2p(ben, "join", circle, "--name", "Ben").code == 0
    given = p2p(ben, "feedback", circle, "--rating", "4", "--recommend", "5", "--text",
                "Great pace")
    assert given.code == 0, given.err
    carry(p2p, ben, ana, tmp_path / "feedback")
    text = p2p(ana, "circle", "show", circle).out
    assert "feedback (1): course 4.0/5, recommendation 5.0/5" in text
    assert "why: Great pace" in text and "Ben (" in text
    shown = p2p(ana, "circle", "show", circle, "--json").json()
    assert shown["feedback_count"] == 1 and shown["ratings"]["course"] == 4
    assert shown["feedback"][0]["reason"] == "Great pace"


# -- 8. resources --------------------------------------------------------------------------------


def test_share_twice_lists_once_and_unshare_by_the_listed_id(ana, p2p, tmp_path):
    """Sharing the same file twice leaves one row; `unshare` with the fingerprint `resources`
    prints removes it; unsharing again is a one-line error."""
    path = tmp_path / "slides.pdf"
    path.write_bytes(b"%PDF slides" * 1000)
    assert p2p(ana, "share", str(path)).code == 0
    second = p2p(ana, "share", str(path))
    assert second.code == 0 and "Already shared" in second.err
    listed = p2p(ana, "resources")
    assert listed.out.count("slides.pdf") == 1
    shown_id = listed.out.split()[0]
    assert p2p(ana, "unshare", shown_id).code == 0
    assert p2p(ana, "resources", "--json").json() == []
    assert_one_line_error(p2p(ana, "unshare", shown_id), "no resource whose id starts with")


# -- 11. an empty database -----------------------------------------------------------------------


def test_an_empty_database_file_cannot_restart_our_feed(ana, p2p):
    """With store.sqlite3 emptied, a write waits for recovery (one line) instead of signing
    seq 1 again."""
    for path in ana.glob(config.DATABASE_FILE + "*"):
        path.unlink()
    (ana / config.DATABASE_FILE).write_bytes(b"")
    assert_one_line_error(p2p(ana, "profile", "--name", "Ana"), "p2pnode recover --none")
    assert p2p(ana, "export", str(ana.parent / "stick"), "--json").json()["entries"] == 0
