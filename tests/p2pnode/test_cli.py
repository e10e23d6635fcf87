"""Tests for p2pnode/cli.py: the `p2pnode` command line, end to end in temporary homes.

A few journeys run the installed `p2pnode` as a real subprocess (exit codes, stdout/stderr, files
on disk); the many small cases call `p2pnode.cli.main` in-process. Dates are relative to today,
because the CLI reads the real clock.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
from builders import circle_body, identity_from_seed

from p2pnode import actions, config
from p2pnode.cli.main import main
from p2pnode.home import Home
from protocol.identity import node_id_text

P2PNODE = Path(sys.executable).parent / "p2pnode"
TODAY = dt.date.today()
START = TODAY + dt.timedelta(days=9)
WEEKDAY = START.strftime("%A").lower()
CAL_ID = identity_from_seed("cli cal").text


def every_flag(
    name: str = "Python for Everybody",
    first: dt.date = START,
    topics: tuple[str, ...] = ("python", "Programming"),
    **over: str,
) -> list[str]:
    """`circle announce` flags, every one of them given; `over` replaces some values."""
    flags = {
        "--name": name,
        "--description": "We work through the course together, one chapter a week.",
        "--language": "en",
        "--capacity": "12",
        "--question": "What do you hope to learn?",
        "--facilitator": CAL_ID,
        "--course-title": "Python for Everybody",
        "--course-url": "https://www.py4e.com/",
        "--course-provider": "University of Michigan",
        "--course-format": "course",
        "--course-language": "en",
        "--course-licence": "CC-BY",
        "--course-caption": "Programming for everyone",
        "--venue": "Central Library, Room 2",
        "--address": "1 Long Street",
        "--venue-details": "Second floor, left",
        "--venue-website": "https://library.example.org/",
        "--city": "Cape Town",
        "--region": "Western Cape",
        "--country": "za",
        "--start": first.isoformat(),
        "--weeks": "4",
        "--time": "18:30",
        "--duration": "120",
        "--timezone": "Africa/Johannesburg",
    }
    flags.update({f"--{k.replace('_', '-')}": v for k, v in over.items()})
    args = [item for pair in flags.items() for item in pair]
    return [*args, *(a for topic in topics for a in ("--topic", topic)), "--no-online"]


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def assert_one_line_error(result: Run | subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 1 with exactly one line on stderr, `p2pnode: error: ...`, naming the fragments."""
    code = result.code if isinstance(result, Run) else result.returncode
    err = result.err if isinstance(result, Run) else result.stderr
    assert code == 1, (code, err)
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("p2pnode: error: "), err
    for fragment in fragments:
        assert fragment in err, err


def spawn(home: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the installed `p2pnode --home HOME ARGS...` as a real process."""
    env = {**os.environ, "P2PNODE_HOME": str(home.parent / "unused-default-home")}
    return subprocess.run([str(P2PNODE), "--home", str(home), *args], capture_output=True,
                          text=True, timeout=60, env=env)


@pytest.fixture
def p2p(capsys):
    """Run `p2pnode --home HOME ARGS...` in-process through cli.main."""

    def run(home: Path, *args: str) -> Run:
        capsys.readouterr()
        try:
            code = main(["--home", str(home), *args])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def entry_count(home: Path) -> int:
    with Home.open(home) as opened:
        return opened.store.entry_count()


@pytest.fixture
def ana(tmp_path, p2p) -> Path:
    """Ana's home with a profile."""
    home = tmp_path / "ana"
    assert p2p(home, "init", "--name", "Ana").code == 0
    return home


@pytest.fixture
def circle(ana, p2p) -> str:
    """A circle Ana announced with every flag; its id."""
    result = p2p(ana, "circle", "announce", *every_flag())
    assert result.code == 0, result.err
    return result.out.strip()


def announce_backdated(home: Path, name: str, start: dt.date, **fields: Any) -> str:
    """Announce a circle as if on the day before `start` (the CLI only announces circles that
    start no more than a week ago); returns its id."""
    with Home.open(home) as opened:
        record = circle_body([opened.identity.node_id], name=name, start=start.isoformat(),
                             **fields)
        at = dt.datetime.combine(start - dt.timedelta(days=1), dt.time(12), dt.UTC)
        entry = actions.announce_circle(opened, record, at_ms=int(at.timestamp() * 1000))
        return node_id_text(entry.id)


def carry(p2p, source: Path, target: Path, stick: Path) -> Run:
    """Export from one home and import into another, as with a USB stick."""
    assert p2p(source, "export", str(stick), "--force").code == 0
    return p2p(target, "import", str(stick), "--json")


# -- subprocess journeys ------------------------------------------------------------------------


def test_two_homes_meet_over_a_usb_stick(tmp_path):
    """End to end in real processes: init (which never overwrites), announce with every flag,
    export/import both ways, a sealed sign-up the facilitator can read, accept, list, and an
    .ics calendar with the right events, times and timezone."""
    ana, ben = tmp_path / "ana", tmp_path / "ben"
    made = spawn(ana, "init", "--name", "Ana", "--json")
    assert made.returncode == 0, made.stderr
    ana_id = json.loads(made.stdout)["node_id"]
    key = (ana / config.IDENTITY_FILE).read_bytes()
    again = spawn(ana, "init", "--name", "Other")
    assert_one_line_error(again, "refusing to overwrite")
    assert again.stdout == "" and (ana / config.IDENTITY_FILE).read_bytes() == key
    assert json.loads(spawn(ben, "init", "--name", "Ben", "--json").stdout)["home"] == str(ben)

    announced = spawn(ana, "circle", "announce", *every_flag(), "--json")
    assert announced.returncode == 0, announced.stderr
    detail = json.loads(announced.stdout)
    circle_id = detail["summary"]["id"]
    assert [p["node_id"] for p in detail["summary"]["facilitators"]] == [ana_id, CAL_ID]

    stick = tmp_path / "stick.p2pu"
    assert spawn(ana, "export", str(stick)).stdout.startswith("Exported 2 entries")
    imported = json.loads(spawn(ben, "import", str(stick), "--json").stdout)
    assert (imported["new"], imported["known"], imported["rejected"]) == (2, 0, 0)

    joined = spawn(ben, "join", circle_id[:10], "--name", "Benedict", "--contact",
                   "ben@example.org", "--goal", "write loops", "--answer", "curiosity", "--json")
    assert joined.returncode == 0, joined.stderr
    join_id = json.loads(joined.stdout)["join_id"]
    assert_one_line_error(spawn(ben, "export", str(stick)), "exists", "--force")
    assert spawn(ben, "export", str(stick), "--force").returncode == 0
    assert spawn(ana, "import", str(stick)).stdout.startswith(
        "Imported 2 new entries; 2 already known; 0 rejected")

    joins = json.loads(spawn(ana, "joins", circle_id, "--json").stdout)
    assert [(j["join_id"], j["display_name"], j["status"]) for j in joins] == [
        (join_id, "Benedict", "pending")]
    assert joins[0]["details"] == {"contact": "ben@example.org", "goal": "write loops",
                                   "answer": "curiosity"}
    accepted = spawn(ana, "accept", join_id[:12])
    assert accepted.returncode == 0 and accepted.stdout.startswith("Accepted sign-up")

    listed = json.loads(spawn(ana, "circles", "--json").stdout)
    assert [(c["id"], c["seats_taken"], c["signup_limit"], c["status"]) for c in listed] == [
        (circle_id, 1, 12, "upcoming")]

    ics = tmp_path / "circle.ics"
    written = spawn(ana, "circle", "ics", circle_id, "-o", str(ics))
    assert written.stdout.strip() == f"Wrote 4 meetings to {ics}"
    calendar = icalendar.Calendar.from_ical(ics.read_bytes())
    events = calendar.walk("VEVENT")
    zone = ZoneInfo("Africa/Johannesburg")
    assert len(events) == 4
    for number, event in enumerate(events):
        day = START + dt.timedelta(weeks=number)
        start = event.decoded("dtstart")
        assert start == dt.datetime.combine(day, dt.time(18, 30), zone)
        assert start.astimezone(dt.UTC).time() == dt.time(16, 30)  # SAST is UTC+2
        assert event["dtstart"].params["TZID"] == "Africa/Johannesburg"
        assert event.decoded("dtend") - start == dt.timedelta(minutes=120)
        assert "Python for Everybody" in str(event["summary"])
        assert "Central Library, Room 2" in str(event["location"])
    assert len({str(e["uid"]) for e in events}) == 4
    assert [str(tz["tzid"]) for tz in calendar.walk("VTIMEZONE")] == ["Africa/Johannesburg"]


def test_errors_in_a_real_process(tmp_path):
    """Missing home and unknown circle: exit 1, one line; a usage error: exit 2; a
    world-readable key: exit 1 with a chmod hint."""
    home = tmp_path / "home"
    missing = spawn(home, "circles")
    assert_one_line_error(missing, "no identity", "p2pnode init")
    assert not (home / config.IDENTITY_FILE).exists()  # a mistyped --home creates nothing
    assert spawn(home, "init").returncode == 0
    unknown = spawn(home, "circle", "show", "zzzzzzzz")
    assert_one_line_error(unknown, "no circle", "zzzzzzzz")
    usage = spawn(home, "circle", "announce", "--no-such-flag")
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1, usage.stderr
    assert "--no-such-flag" in usage.stderr and "p2pnode circle announce --help" in usage.stderr
    key = home / config.IDENTITY_FILE
    key.chmod(0o644)
    refused = spawn(home, "id")
    assert_one_line_error(refused, f"chmod 600 {key}")


# -- identity and profile -----------------------------------------------------------------------


def test_id_shows_the_node_id_fingerprint_and_name(ana, p2p):
    """`id --json` gives the node id, its 8-character fingerprint, the name and the home."""
    with Home.open(ana) as home:
        expected = home.identity.text
    info = p2p(ana, "id", "--json").json()
    assert info == {"node_id": expected, "fingerprint": expected[:8], "name": "Ana",
                    "home": str(ana)}
    plain = p2p(ana, "id").out.splitlines()
    assert plain[0] == expected and "Ana" in plain[1] and expected[:8] in plain[1]


def test_profile_publishes_a_new_name(ana, p2p):
    """`profile` replaces the display name (latest wins) and reports the entry."""
    result = p2p(ana, "profile", "--name", "Ana Lima", "--bio", "Librarian", "--language", "pt")
    assert result.code == 0 and "Ana Lima" in result.out and "entry 2" in result.out
    assert p2p(ana, "id", "--json").json()["name"] == "Ana Lima"


def test_init_with_json_and_without_a_name(tmp_path, p2p):
    """`init` without --name writes no entry; `id` then suggests setting one."""
    home = tmp_path / "quiet"
    info = p2p(home, "init", "--json").json()
    assert set(info) == {"node_id", "home"} and entry_count(home) == 0
    assert "no name yet" in p2p(home, "id").out


# -- circles ------------------------------------------------------------------------------------


def test_announce_stores_every_flag(ana, circle, p2p):
    """Every `circle announce` flag ends up in the circle as shown by `circle show --json`."""
    detail = p2p(ana, "circle", "show", circle, "--json").json()
    summary = detail["summary"]
    assert (summary["name"], summary["language"], summary["timezone"]) == (
        "Python for Everybody", "en", "Africa/Johannesburg")
    assert (summary["meeting_time"], summary["duration_min"], summary["signup_limit"]) == (
        "18:30", 120, 12)
    assert summary["start_date"] == START.isoformat()
    assert summary["end_date"] == (START + dt.timedelta(weeks=3)).isoformat()
    assert summary["topics"] == ["python", "Programming"]
    assert detail["course"] == {
        "title": "Python for Everybody", "provider": "University of Michigan",
        "link": "https://www.py4e.com/", "format": "course", "language": "en",
        "licence": "CC-BY", "caption": "Programming for everyone",
        "topics": ["python", "Programming"]}
    assert detail["venue"] == {
        "name": "Central Library, Room 2", "address": "1 Long Street",
        "details": "Second floor, left", "website": "https://library.example.org/",
        "city": "Cape Town", "region": "Western Cape", "country": "ZA", "online": False}
    assert detail["signup_question"] == "What do you hope to learn?"
    assert [m["date"] for m in detail["meetings"]] == [
        (START + dt.timedelta(weeks=w)).isoformat() for w in range(4)]


def test_announce_with_explicit_meeting_dates(ana, p2p):
    """Repeated --meeting dates are sorted and deduplicated into the schedule."""
    days = [(START + dt.timedelta(days=d)).isoformat() for d in (10, 3, 10, 0)]
    args = [a for d in days for a in ("--meeting", d)]
    result = p2p(ana, "circle", "announce", "--name", "Book club", "--description", "Read.",
                 "--course-title", "A book", "--venue", "Cafe", "--city", "Lagos", "--time",
                 "10:00", "--language", "en", "--timezone", "Africa/Lagos", *args, "--json")
    assert result.code == 0, result.err
    assert [m["date"] for m in result.json()["meetings"]] == sorted(set(days))


def test_announce_without_required_flags_names_them(ana, p2p):
    """Missing required flags are a usage error (exit 2) listing them in one line; nothing is
    written."""
    result = p2p(ana, "circle", "announce", "--name", "Only a name")
    assert result.code == 2 and result.err.count("\n") == 1, result
    for fragment in ("missing --description", "--course-title", "--start"):
        assert fragment in result.err
    assert entry_count(ana) == 1


def test_announce_before_a_profile_is_refused(tmp_path, p2p):
    """Without a name, announcing says how to set one."""
    home = tmp_path / "nameless"
    p2p(home, "init")
    assert_one_line_error(p2p(home, "circle", "announce", *every_flag()), "profile --name")


@pytest.mark.parametrize(
    ("flag", "value", "fragment"),
    [
        ("country", "ZZZ", "--country:"),
        ("time", "25:00", "--time:"),
        ("capacity", "0", "--capacity:"),
        ("duration", "5", "--duration:"),
        ("course_url", "ftp://example.org/x", "--course-url:"),
        ("timezone", "Mars/Olympus_Mons", "--timezone:"),
        ("language", "123", "--language:"),
        ("start", "2027-13-01", "--start"),
        ("weeks", "53", "--weeks"),
        ("weeks", "0", "--weeks"),
        ("facilitator", "not-an-id", "--facilitator"),
        ("name", " ", "--name:"),
        ("course_title", "", "--course-title:"),
        ("venue", "x" * 300, "--venue:"),
    ],
)
def test_an_invalid_field_value_exits_1_and_writes_nothing(ana, p2p, flag, value, fragment):
    """A bad value is one error line naming the option typed (not the record field), and no
    entry is written."""
    before = entry_count(ana)
    result = p2p(ana, "circle", "announce", *every_flag(**{flag: value}))
    assert_one_line_error(result, fragment)
    assert result.out == ""
    assert entry_count(ana) == before


@pytest.mark.parametrize(
    "args",
    [
        ["no-such-command"],
        ["circle"],
        ["circle", "announce", "--capacity", "many"],
        ["join", "abc"],
        ["feedback", "abc"],
        ["rsvp", "abc", "--number", "one"],
        ["meeting"],
    ],
    ids=lambda a: " ".join(a),
)
def test_usage_errors_exit_2(ana, p2p, args):
    """Unknown commands, missing actions or required flags, and non-numbers exit 2."""
    result = p2p(ana, *args)
    assert result.code == 2, result
    assert result.err.startswith(("usage:", "p2pnode: ")), result.err
    assert entry_count(ana) == 1


def test_unknown_or_ambiguous_circle_ids(ana, circle, p2p):
    """An id nobody knows, and a prefix matching several circles, are one-line errors."""
    assert_one_line_error(p2p(ana, "circle", "show", "aaaaaaa"), "no circle", "aaaaaaa")
    assert_one_line_error(p2p(ana, "rsvp", "qqqq", "--number", "1"), "no circle")
    full = "a" * 52
    assert_one_line_error(p2p(ana, "circle", "show", full), "no circle")
    p2p(ana, "circle", "announce", *every_flag("Second circle"))
    assert_one_line_error(p2p(ana, "circle", "show", ""), "matches 2 circles")
    assert p2p(ana, "circle", "show", circle[:8]).code == 0


def test_circles_listing_and_filters(ana, p2p):
    """`circles` filters by search words, topic, language (prefix) and weekday; --all adds
    ended circles; --json and text agree."""
    later = START + dt.timedelta(days=2)
    p2p(ana, "circle", "announce", *every_flag())
    p2p(ana, "circle", "announce", *every_flag(
        "Introdução à Programação", later, ("programming",), language="pt-BR",
        course_language="pt-BR",
        course_title="Programação", city="São Paulo", country="BR",
        timezone="America/Sao_Paulo"))
    assert_one_line_error(
        p2p(ana, "circle", "announce", *every_flag("Old circle", TODAY - dt.timedelta(days=60))),
        "60 days in the past", "at most 7 days after it")
    announce_backdated(ana, "Old circle", TODAY - dt.timedelta(days=60))

    def names(*args: str) -> list[str]:
        result = p2p(ana, "circles", "--json", *args)
        assert result.code == 0, result.err
        return [c["name"] for c in result.json()]

    assert names() == ["Python for Everybody", "Introdução à Programação"]
    assert names("--search", "introducao") == ["Introdução à Programação"]
    assert names("--search", "sao paul") == ["Introdução à Programação"]
    assert names("--search", "pyth") == ["Python for Everybody"]
    assert names("--topic", "PROGRAMMING") == ["Python for Everybody",
                                               "Introdução à Programação"]
    assert names("--language", "pt") == ["Introdução à Programação"]
    assert names("--weekday", WEEKDAY) == ["Python for Everybody"]
    assert names("--all") == ["Python for Everybody", "Introdução à Programação", "Old circle"]
    text = p2p(ana, "circles", "--search", "pyth").out
    assert "Python for Everybody" in text and "upcoming" in text and "Ana (" in text
    assert "No circles found" in p2p(ana, "circles", "--search", "nothing").out
    assert_one_line_error(p2p(ana, "circles", "--weekday", "someday"), "--weekday")


def test_update_and_cancel(ana, circle, p2p, tmp_path):
    """`circle update` changes fields (keeping the rest of nested maps) and can remove the
    limit; `circle cancel` hides the circle unless --all; only facilitators may do either."""
    updated = p2p(ana, "circle", "update", circle[:10], "--city", "Durban", "--time", "17:00",
                  "--no-capacity", "--json")
    assert updated.code == 0, updated.err
    detail = updated.json()
    assert detail["venue"]["city"] == "Durban"
    assert detail["venue"]["name"] == "Central Library, Room 2"
    assert detail["summary"]["meeting_time"] == "17:00"
    assert detail["summary"]["signup_limit"] is None
    assert_one_line_error(p2p(ana, "circle", "update", circle), "nothing to change")

    eve = tmp_path / "eve"
    p2p(eve, "init", "--name", "Eve")
    carry(p2p, ana, eve, tmp_path / "stick")
    assert_one_line_error(p2p(eve, "circle", "update", circle, "--name", "Mine"),
                          "only the circle's facilitators")
    assert_one_line_error(p2p(eve, "circle", "cancel", circle), "only the circle's facilitators")

    cancelled = p2p(ana, "circle", "cancel", circle, "--reason", "the library is closed")
    assert cancelled.code == 0 and cancelled.out.startswith("Cancelled")
    assert p2p(ana, "circles", "--json").json() == []
    [listed] = p2p(ana, "circles", "--all", "--json").json()
    assert listed["status"] == "cancelled"
    assert "CANCELLED: the library is closed" in p2p(ana, "circle", "show", circle).out


def test_show_prints_a_readable_circle(ana, circle, p2p):
    """The text view names the circle, its id, place, time, seats and meetings."""
    out = p2p(ana, "circle", "show", circle).out
    assert out.startswith("Python for Everybody  [upcoming]")
    assert circle in out and "Cape Town" in out and "18:30 Africa/Johannesburg" in out
    assert "seats taken: 0 of 12" in out
    assert f" 1. {START.isoformat()}" in out and f" 4. {(START + dt.timedelta(weeks=3))}" in out


# -- taking part --------------------------------------------------------------------------------


@pytest.fixture
def ben(tmp_path, ana, circle, p2p) -> Path:
    """Ben's home, having received Ana's circle and joined it; Ana has his sign-up."""
    home = tmp_path / "ben"
    p2p(home, "init", "--name", "Ben")
    carry(p2p, ana, home, tmp_path / "to-ben")
    assert p2p(home, "join", circle, "--name", "Ben", "--contact", "ben@example.org").code == 0
    carry(p2p, home, ana, tmp_path / "to-ana")
    return home


def test_joins_shows_sealed_details_to_the_facilitator_only(ana, ben, circle, p2p):
    """The facilitator sees the contact; the learner is told the list is not for them."""
    out = p2p(ana, "joins", circle).out
    assert "Ben (" in out and "pending" in out and "contact: ben@example.org" in out
    assert_one_line_error(p2p(ben, "joins", circle), "only the circle's facilitators")


def test_accept_and_decline(ana, ben, circle, p2p):
    """`accept` marks a sign-up accepted; `accept --decline` frees the seat."""
    join_id = p2p(ana, "joins", circle, "--json").json()[0]["join_id"]
    assert p2p(ana, "accept", join_id[:10]).code == 0
    assert p2p(ana, "joins", circle, "--json").json()[0]["status"] == "accepted"
    assert p2p(ana, "accept", join_id, "--decline").out.startswith("Declined")
    assert p2p(ana, "circles", "--json").json()[0]["seats_taken"] == 0
    assert_one_line_error(p2p(ana, "accept", "zzzzzz"), "no entries match")
    assert_one_line_error(p2p(ben, "accept", join_id), "only the circle's facilitators")


def test_rsvp_meeting_notes_feedback_and_leave(ana, ben, circle, p2p, tmp_path):
    """RSVPs count per meeting, a facilitator's plus/delta shows under it, feedback is rated,
    and leaving frees the seat."""
    assert p2p(ben, "rsvp", circle, "--number", "1").code == 0
    assert p2p(ben, "rsvp", circle, "--date", (START + dt.timedelta(weeks=1)).isoformat(),
               "--no").code == 0
    assert_one_line_error(p2p(ben, "rsvp", circle, "--number", "9"), "--number must be 1-4")
    assert_one_line_error(p2p(ben, "meeting", "add", circle, "--number", "1", "--plus", "x"),
                          "only the circle's facilitators")
    noted = p2p(ana, "meeting", "add", circle, "--number", "1", "--plus", "good pace",
                "--delta", "more breaks", "--notes", "Chapter 1", "--attendance", "6",
                "--rating", "5")
    assert noted.code == 0, noted.err
    assert_one_line_error(p2p(ben, "feedback", circle, "--rating", "4"), "has not started yet")
    carry(p2p, ben, ana, tmp_path / "back")
    detail = p2p(ana, "circle", "show", circle, "--json").json()
    first, second = detail["meetings"][:2]
    assert (first["attending"], second["not_attending"]) == (1, 1)
    [note] = first["notes"]
    assert (note["plus"], note["delta"], note["recap"], note["attendance"], note["rating"]) == (
        ["good pace"], ["more breaks"], "Chapter 1", 6, 5)
    assert detail["feedback_count"] == 0
    assert "+ good pace" in p2p(ana, "circle", "show", circle).out
    assert p2p(ben, "leave", circle).code == 0
    carry(p2p, ben, ana, tmp_path / "leave")
    assert detail["summary"]["seats_taken"] == 1
    assert p2p(ana, "circle", "show", circle, "--json").json()["summary"]["seats_taken"] == 0


def test_delete_drops_a_body_everywhere(ana, ben, circle, p2p, tmp_path):
    """`delete` empties our entry's body (here an RSVP) locally and, once carried, at the
    facilitator's; deleting someone else's entry is refused."""
    rsvp_fp = p2p(ben, "rsvp", circle, "--number", "1").out.split("(")[1].rstrip(")\n")
    carry(p2p, ben, ana, tmp_path / "one")
    assert p2p(ana, "circle", "show", circle, "--json").json()["meetings"][0]["attending"] == 1
    assert_one_line_error(p2p(ben, "delete", circle), "not yours to delete")
    deleted = p2p(ben, "delete", rsvp_fp, "--reason", "privacy")
    assert deleted.code == 0 and "headers stay" in deleted.out
    carry(p2p, ben, ana, tmp_path / "two")
    assert p2p(ana, "circle", "show", circle, "--json").json()["meetings"][0]["attending"] == 0
    with Home.open(ana) as home:
        bodies = home.store.conn.execute(
            "SELECT count(*) FROM entries WHERE kind = 'rsvp' AND body IS NULL").fetchone()[0]
    assert bodies == 1
    assert_one_line_error(p2p(ben, "delete", "zzzzzzzz"), "no entries match")


# -- export, import, calendar -------------------------------------------------------------------


def test_export_import_json_counts_and_idempotence(ana, circle, p2p, tmp_path):
    """`export --json` counts entries; importing twice reports them known the second time."""
    stick = tmp_path / "stick"
    assert p2p(ana, "export", str(stick), "--json").json() == {"entries": 2,
                                                              "file": str(stick)}
    other = tmp_path / "other"
    p2p(other, "init")
    first = p2p(other, "import", str(stick), "--json").json()
    second = p2p(other, "import", str(stick), "--json").json()
    assert (first["new"], second["new"], second["known"]) == (2, 0, 2)
    assert first["truncated"] is None and first["reasons"] == []
    assert [c["id"] for c in p2p(other, "circles", "--json").json()] == [circle]


def test_import_refuses_other_files_and_flags_truncation(ana, circle, p2p, tmp_path):
    """A file that is not an export is one clear error; a cut-off export imports what is whole,
    warns, and exits 1."""
    text = tmp_path / "notes.txt"
    text.write_text("shopping list\n")
    assert_one_line_error(p2p(ana, "import", str(text)), "is not a p2pnode export file")
    assert_one_line_error(p2p(ana, "import", str(tmp_path / "missing")), "cannot read")
    stick = tmp_path / "stick"
    p2p(ana, "export", str(stick))
    stick.write_bytes(stick.read_bytes()[:-5])
    other = tmp_path / "other"
    p2p(other, "init")
    result = p2p(other, "import", str(stick))
    assert result.code == 1
    assert "Imported 1 new entries" in result.out and "truncated" in result.err
    assert entry_count(other) == 1


def test_ics_errors(ana, circle, p2p, tmp_path):
    """An unknown circle or an unwritable path is a one-line error, and no file is left."""
    assert_one_line_error(p2p(ana, "circle", "ics", "zzzz", "-o", str(tmp_path / "x.ics")),
                          "no circle")
    target = tmp_path / "no-such-dir" / "c.ics"
    assert_one_line_error(p2p(ana, "circle", "ics", circle, "-o", str(target)), "cannot write")
    assert not (tmp_path / "x.ics").exists() and not target.parent.exists()


def test_cancelled_circle_calendar_marks_events_cancelled(ana, circle, p2p, tmp_path):
    """The .ics of a cancelled circle marks every event CANCELLED."""
    p2p(ana, "circle", "cancel", circle)
    ics = tmp_path / "c.ics"
    assert p2p(ana, "circle", "ics", circle, "-o", str(ics)).code == 0
    events = icalendar.Calendar.from_ical(ics.read_bytes()).walk("VEVENT")
    assert [str(e["status"]) for e in events] == ["CANCELLED"] * 4


def test_recover_none_allows_appends_again(ana, p2p):
    """After losing the database, appends wait for recovery; `recover --none` settles it."""
    (ana / config.DATABASE_FILE).unlink()
    for suffix in ("-wal", "-shm"):
        (ana / (config.DATABASE_FILE + suffix)).unlink(missing_ok=True)
    assert_one_line_error(p2p(ana, "profile", "--name", "Ana"), "recover --none")
    assert p2p(ana, "recover", "--none").code == 0
    assert p2p(ana, "profile", "--name", "Ana").code == 0


def test_import_into_a_fresh_home_creates_it(ana, circle, p2p, tmp_path):
    """A newcomer's first command may be importing a USB stick: the home is created for it."""
    stick = tmp_path / "stick"
    p2p(ana, "export", str(stick))
    newcomer = tmp_path / "newcomer"
    result = p2p(newcomer, "import", str(stick))
    assert result.code == 0 and (newcomer / config.IDENTITY_FILE).exists()
    assert entry_count(newcomer) == entry_count(ana)
