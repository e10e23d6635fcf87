"""Tests for protocol/records.py: the record schema of every kind and its error paths."""

from __future__ import annotations

import copy
import datetime
import json
import math
import zoneinfo
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.provisional import urls

from protocol.codec import pack, unpack_strict
from protocol.entry import decode_entry
from protocol.errors import InvalidRecordError
from protocol.records import (
    FORMATS,
    KNOWN_KINDS,
    LICENCES,
    describe_kind,
    meeting_dates,
    validate_record,
)

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "entries.json").read_text())

A = bytes(range(32))
B = bytes(range(1, 33))
C = bytes(range(2, 34))
SHORT = bytes(31)
DELETE = object()

MINIMAL: dict[str, dict[str, Any]] = {
    "profile": {"name": "Ana", "enc_key": A},
    "circle": {
        "name": "Python",
        "description": "We meet.",
        "course": {"title": "Py4E", "format": "course", "topics": [], "language": "en"},
        "venue": {"name": "Library", "city": "Cape Town", "online": False},
        "language": "en",
        "timezone": "UTC",
        "meeting_time": "18:30",
        "duration_min": 90,
        "meetings": ["2027-01-12"],
        "facilitators": [A],
    },
    "circle.update": {"circle": A, "name": "New name"},
    "circle.cancel": {"circle": A},
    "join": {"circle": A, "action": "join", "display_name": "Ben"},
    "join.accept": {"circle": A, "join": B, "accepted": True},
    "rsvp": {"circle": A, "date": "2027-01-12", "attending": True},
    "meeting.note": {"circle": A, "date": "2027-01-12", "plus": [], "delta": []},
    "feedback": {"circle": A, "role": "learner"},
    "delete": {"entries": [A]},
    "resource": {
        "blob": A,
        "size": 0,
        "title": "Slides",
        "media_type": "application/pdf",
        "format": "other",
    },
}

FULL: dict[str, dict[str, Any]] = {
    "profile": {
        "name": "Ana",
        "bio": "Facilitator.\nLikes\tbooks.",
        "languages": ["en", "pt-BR", "zh-Hant-TW"],
        "enc_key": A,
    },
    "circle": {
        "name": "Python for Everybody",
        "description": "Weekly study group.\n\tBring a laptop.",
        "course": {
            "title": "Python for Everybody",
            "provider": "University of Michigan",
            "link": "https://www.py4e.com/lessons?x=1#top",
            "format": "course",
            "caption": "Free course.\nWith videos.",
            "topics": ["python", "programming"],
            "language": "en",
            "licence": "CC-BY",
        },
        "venue": {
            "name": "Central Library, Room 2",
            "address": "1 Main Road",
            "details": "Ring the bell\nat the back door",
            "website": "http://library.example.org",
            "city": "Cape Town",
            "region": "Western Cape",
            "country": "ZA",
            "geo": [-33.92, 18.42],
            "online": False,
        },
        "language": "pt-BR",
        "timezone": "Africa/Johannesburg",
        "meeting_time": "18:30",
        "duration_min": 90,
        "meetings": ["2027-01-12", "2027-01-19", "2027-01-26"],
        "signup_limit": 12,
        "signup_question": "What do you hope to learn?",
        "facilitators": [A, B],
    },
    "circle.update": {
        "circle": A,
        "meeting_time": "18:00",
        "meetings": ["2027-01-13", "2027-01-20"],
        "signup_limit": None,
        "venue": {"name": "Online", "city": "Anywhere", "online": True},
    },
    "circle.cancel": {"circle": A, "reason": "The library is closed.\nSorry!"},
    "join": {
        "circle": A,
        "action": "join",
        "display_name": "Ben",
        "sealed": [[A, b"\x01" * 80], [B, b"\x02" * 80]],
    },
    "join.accept": {"circle": A, "join": B, "accepted": False},
    "rsvp": {"circle": A, "date": "2027-01-12", "attending": False},
    "meeting.note": {
        "circle": A,
        "date": "2027-01-12",
        "attendance": 9,
        "rating": 5,
        "plus": ["good pace", "snacks"],
        "delta": ["start on time"],
        "recap": "We did chapter 1.\nNext: chapter 2.",
    },
    "feedback": {
        "circle": A,
        "role": "facilitator",
        "goal": "Learn to code",
        "goal_rating": 4,
        "course_rating": 5,
        "recommendation_rating": 3,
        "reason": "It was fun.\nReally.",
        "next_steps": "Part two.",
    },
    "delete": {"entries": [A, B], "reason": "Posted by mistake."},
    "resource": {
        "blob": A,
        "size": 1234,
        "title": "Chapter 1 slides",
        "media_type": "application/vnd.oasis.opendocument.presentation",
        "format": "article",
        "licence": "CC-BY-SA",
        "caption": "Slides for week 1.\nPrint them.",
        "circle": B,
    },
}


def changed(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `body` with the dotted `path` (digits index lists) set or deleted."""
    result = copy.deepcopy(body)
    steps: list[Any] = [int(step) if step.isdigit() else step for step in path.split(".")]
    target: Any = result
    for step in steps[:-1]:
        target = target[step]
    if value is DELETE:
        del target[steps[-1]]
    else:
        target[steps[-1]] = value
    return result


def field_of(kind: str, body: Any) -> str | None:
    with pytest.raises(InvalidRecordError) as info:
        validate_record(kind, body)
    return info.value.field


# --- the vectors and the valid bodies -----------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["entries"], ids=lambda v: v["kind"])
def test_vector_bodies_validate(vector: dict[str, Any]) -> None:
    """The bodies of the known-answer vectors, decoded from their wire bytes, are valid records."""
    entry = decode_entry(bytes.fromhex(vector["wire"]))
    assert entry.kind == vector["kind"]
    validate_record(entry.kind, entry.body())


def test_known_kinds_are_the_design_list() -> None:
    """KNOWN_KINDS is exactly the eleven kinds of DESIGN.md's schema table."""
    assert set(MINIMAL) == set(FULL) == KNOWN_KINDS
    assert isinstance(KNOWN_KINDS, frozenset)


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_minimal_body_validates(kind: str) -> None:
    """A body with only the required fields of each kind is valid."""
    validate_record(kind, MINIMAL[kind])


@pytest.mark.parametrize("kind", sorted(FULL))
def test_full_body_validates(kind: str) -> None:
    """A body using every optional field of each kind is valid."""
    validate_record(kind, FULL[kind])


@pytest.mark.parametrize("kind", sorted(FULL))
def test_full_body_survives_the_wire(kind: str) -> None:
    """A valid body is still valid after a msgpack round trip through the strict decoder."""
    validate_record(kind, unpack_strict(pack(FULL[kind]), "body", max_size=1 << 16))


@pytest.mark.parametrize("kind", sorted(FULL))
def test_validation_does_not_change_the_body(kind: str) -> None:
    """validate_record only reads the body."""
    body = copy.deepcopy(FULL[kind])
    validate_record(kind, body)
    assert body == FULL[kind]


# --- positive boundaries ------------------------------------------------------------------------

BOUNDARY_OK = [
    ("profile", "name", "x" * 80),
    ("profile", "bio", ""),
    ("profile", "bio", "é" * 500),
    ("profile", "languages", []),
    ("profile", "languages", ["en"] * 10),
    ("profile", "languages", ["sgn-BE-FR", "x" * 3 + "-abcdefgh" * 3 + "-a"]),
    ("circle", "name", "字" * 128),
    ("circle", "description", "x" * 2000),
    ("circle", "course.topics", ["t" * 64] * 10),
    ("circle", "course.link", "HTTPS://EXAMPLE.ORG"),
    ("circle", "course.link", "https://例え.テスト/パス"),
    ("circle", "course.link", "http://[::1]:8080/x"),
    ("circle", "course.link", "https://e.org/" + "p" * (2048 - 14)),
    ("circle", "venue.name", "9"),
    ("circle", "venue.name", "Café ☕"),
    ("circle", "venue.geo", [90, -180]),
    ("circle", "venue.geo", [-90.0, 180.0]),
    ("circle", "venue.geo", [0, 0]),
    ("circle", "venue.online", True),
    ("circle", "timezone", "America/Argentina/Buenos_Aires"),
    ("circle", "timezone", "Etc/GMT+5"),
    ("circle", "meeting_time", "00:00"),
    ("circle", "meeting_time", "23:59"),
    ("circle", "duration_min", 15),
    ("circle", "duration_min", 480),
    ("circle", "meetings", ["2028-02-29"]),
    ("circle", "meetings", meeting_dates(datetime.date(2027, 1, 5), 52)),
    ("circle", "meetings", ["2027-01-31", "2027-02-01", "2027-12-31", "2028-01-01"]),
    ("circle", "signup_limit", 1),
    ("circle", "signup_limit", 10_000),
    ("circle", "signup_question", ""),
    ("circle", "facilitators", [A, B, C, bytes(32), b"\xff" * 32]),
    ("join", "action", "leave"),
    ("join", "sealed", []),
    ("join", "sealed", [[A, b"x" * 4096]]),
    ("join", "display_name", "x" * 128),
    ("meeting.note", "attendance", 0),
    ("meeting.note", "attendance", 1000),
    ("meeting.note", "rating", 1),
    ("meeting.note", "plus", ["p" * 280] * 20),
    ("meeting.note", "delta", ["line\nbreak"]),
    ("meeting.note", "recap", "r" * 4000),
    ("feedback", "goal", "g" * 256),
    ("feedback", "reason", "r" * 2000),
    ("delete", "entries", [bytes([i]) * 32 for i in range(100)]),
    ("resource", "size", 4 * 2**30),
    ("resource", "media_type", "text/plain"),
    ("resource", "media_type", "application/" + "x" * 115),
    ("resource", "licence", "not-sure"),
]


@pytest.mark.parametrize(
    ("kind", "path", "value"), BOUNDARY_OK, ids=[f"{k}:{p}" for k, p, _ in BOUNDARY_OK]
)
def test_values_at_the_limits_are_valid(kind: str, path: str, value: Any) -> None:
    """Values at the edges of each limit (and unusual but legal forms) are accepted."""
    validate_record(kind, changed(FULL[kind], path, value))


@pytest.mark.parametrize("value", FORMATS)
def test_every_format_is_accepted(value: str) -> None:
    """Each listed course/resource format validates."""
    validate_record("circle", changed(FULL["circle"], "course.format", value))
    validate_record("resource", changed(FULL["resource"], "format", value))


@pytest.mark.parametrize("value", LICENCES)
def test_every_licence_is_accepted(value: str) -> None:
    """Each listed licence validates."""
    validate_record("circle", changed(FULL["circle"], "course.licence", value))
    validate_record("resource", changed(FULL["resource"], "licence", value))


# --- negative cases: (kind, path to change, new value or DELETE, expected error field) ---------

NEGATIVE = [
    # profile
    ("profile", "name", DELETE, "name"),
    ("profile", "name", "", "name"),
    ("profile", "name", "  \t ", "name"),
    ("profile", "name", "x" * 81, "name"),
    ("profile", "name", "Ana\nB", "name"),
    ("profile", "name", "Ana\u2028B", "name"),
    ("profile", "name", b"Ana", "name"),
    ("profile", "bio", "b" * 501, "bio"),
    ("profile", "bio", "\x1b[31mred", "bio"),
    ("profile", "bio", "a\rb", "bio"),
    ("profile", "bio", None, "bio"),
    ("profile", "languages", ["en"] * 11, "languages"),
    ("profile", "languages", "en", "languages"),
    ("profile", "languages", ["en", "123"], "languages[1]"),
    ("profile", "languages", ["e"], "languages[0]"),
    ("profile", "languages", ["english"], "languages[0]"),
    ("profile", "languages", ["en-"], "languages[0]"),
    ("profile", "languages", ["en_US"], "languages[0]"),
    ("profile", "languages", ["en-abcdefghi"], "languages[0]"),
    ("profile", "languages", ["en" + "-abcdefgh" * 4], "languages[0]"),
    ("profile", "enc_key", DELETE, "enc_key"),
    ("profile", "enc_key", SHORT, "enc_key"),
    ("profile", "enc_key", A.hex(), "enc_key"),
    # circle: top level
    ("circle", "name", DELETE, "name"),
    ("circle", "name", "", "name"),
    ("circle", "name", " ", "name"),
    ("circle", "name", "x" * 129, "name"),
    ("circle", "name", "a\tb", "name"),
    ("circle", "name", "a\x00b", "name"),
    ("circle", "name", "a\x85b", "name"),
    ("circle", "name", 5, "name"),
    ("circle", "description", DELETE, "description"),
    ("circle", "description", "\n\n", "description"),
    ("circle", "description", "x" * 2001, "description"),
    ("circle", "description", "a\x07b", "description"),
    ("circle", "description", "a\x7fb", "description"),
    ("circle", "language", DELETE, "language"),
    ("circle", "language", "", "language"),
    ("circle", "language", "en US", "language"),
    ("circle", "timezone", DELETE, "timezone"),
    ("circle", "timezone", "Mars/Olympus_Mons", "timezone"),
    ("circle", "timezone", "../etc/passwd", "timezone"),
    ("circle", "timezone", "/etc/localtime", "timezone"),
    ("circle", "timezone", "Europe/../UTC", "timezone"),
    ("circle", "timezone", "localtime", "timezone"),
    ("circle", "timezone", "posix/Europe/Paris", "timezone"),
    ("circle", "timezone", "Africa", "timezone"),
    ("circle", "timezone", "", "timezone"),
    ("circle", "timezone", "A" * 65, "timezone"),
    ("circle", "timezone", 2, "timezone"),
    ("circle", "meeting_time", DELETE, "meeting_time"),
    ("circle", "meeting_time", "24:00", "meeting_time"),
    ("circle", "meeting_time", "18:60", "meeting_time"),
    ("circle", "meeting_time", "6:30", "meeting_time"),
    ("circle", "meeting_time", "18:30:00", "meeting_time"),
    ("circle", "meeting_time", "18.30", "meeting_time"),
    ("circle", "meeting_time", "\uff11\uff18:\uff13\uff10", "meeting_time"),  # fullwidth
    ("circle", "meeting_time", 1830, "meeting_time"),
    ("circle", "duration_min", DELETE, "duration_min"),
    ("circle", "duration_min", 14, "duration_min"),
    ("circle", "duration_min", 481, "duration_min"),
    ("circle", "duration_min", 90.0, "duration_min"),
    ("circle", "duration_min", "90", "duration_min"),
    ("circle", "meetings", DELETE, "meetings"),
    ("circle", "meetings", [], "meetings"),
    ("circle", "meetings", "2027-01-12", "meetings"),
    (
        "circle",
        "meetings",
        [*meeting_dates(datetime.date(2027, 1, 5), 52), "2029-01-01"],
        "meetings",
    ),
    ("circle", "meetings.0", "2027-02-30", "meetings[0]"),
    ("circle", "meetings.0", "2027-1-12", "meetings[0]"),
    ("circle", "meetings.0", "20270112", "meetings[0]"),
    ("circle", "meetings.0", "2027-01-12T18:30", "meetings[0]"),
    ("circle", "meetings.0", "0000-01-01", "meetings[0]"),
    ("circle", "meetings.0", "\uff12\uff10\uff12\uff17-01-12", "meetings[0]"),
    ("circle", "meetings.2", None, "meetings[2]"),
    ("circle", "meetings.1", "2027-01-12", "meetings[1]"),
    ("circle", "meetings.2", "2027-01-01", "meetings[2]"),
    ("circle", "signup_limit", 0, "signup_limit"),
    ("circle", "signup_limit", -3, "signup_limit"),
    ("circle", "signup_limit", 10_001, "signup_limit"),
    ("circle", "signup_limit", None, "signup_limit"),
    ("circle", "signup_question", "q" * 257, "signup_question"),
    ("circle", "signup_question", "line\nbreak", "signup_question"),
    ("circle", "facilitators", DELETE, "facilitators"),
    ("circle", "facilitators", [], "facilitators"),
    ("circle", "facilitators", [A, B, C, bytes(32), b"\x01" * 32, b"\x02" * 32], "facilitators"),
    ("circle", "facilitators", [A, B, A], "facilitators[2]"),
    ("circle", "facilitators", [A, SHORT], "facilitators[1]"),
    ("circle", "facilitators", [A.hex()], "facilitators[0]"),
    ("circle", "facilitators", A, "facilitators"),
    # circle: course
    ("circle", "course", DELETE, "course"),
    ("circle", "course", "Py4E", "course"),
    ("circle", "course", [], "course"),
    ("circle", "course.title", DELETE, "course.title"),
    ("circle", "course.title", "", "course.title"),
    ("circle", "course.title", "t" * 129, "course.title"),
    ("circle", "course.provider", "p" * 257, "course.provider"),
    ("circle", "course.link", "ftp://example.org/", "course.link"),
    ("circle", "course.link", "javascript:alert(1)", "course.link"),
    ("circle", "course.link", "https://", "course.link"),
    ("circle", "course.link", "https:///path", "course.link"),
    ("circle", "course.link", "www.example.org", "course.link"),
    ("circle", "course.link", "https://exa mple.org/", "course.link"),
    ("circle", "course.link", "https://example.org/\n", "course.link"),
    ("circle", "course.link", "http://[::1/", "course.link"),
    ("circle", "course.link", "", "course.link"),
    ("circle", "course.link", "https://e.org/" + "p" * (2049 - 14), "course.link"),
    ("circle", "course.format", DELETE, "course.format"),
    ("circle", "course.format", "podcast", "course.format"),
    ("circle", "course.format", "Course", "course.format"),
    ("circle", "course.caption", "c" * 501, "course.caption"),
    ("circle", "course.topics", DELETE, "course.topics"),
    ("circle", "course.topics", ["t"] * 11, "course.topics"),
    ("circle", "course.topics", "python", "course.topics"),
    ("circle", "course.topics", ["ok", ""], "course.topics[1]"),
    ("circle", "course.topics", ["t" * 65], "course.topics[0]"),
    ("circle", "course.topics", ["a\nb"], "course.topics[0]"),
    ("circle", "course.language", DELETE, "course.language"),
    ("circle", "course.language", "english", "course.language"),
    ("circle", "course.licence", "CC0", "course.licence"),
    ("circle", "course.licence", "cc-by", "course.licence"),
    # circle: venue
    ("circle", "venue", DELETE, "venue"),
    ("circle", "venue", None, "venue"),
    ("circle", "venue.name", DELETE, "venue.name"),
    ("circle", "venue.name", "", "venue.name"),
    ("circle", "venue.name", "!!! ---", "venue.name"),
    ("circle", "venue.name", "___", "venue.name"),
    ("circle", "venue.name", "n" * 257, "venue.name"),
    ("circle", "venue.address", "a" * 257, "venue.address"),
    ("circle", "venue.address", "1 Main Rd\nCape Town", "venue.address"),
    ("circle", "venue.details", "d" * 501, "venue.details"),
    ("circle", "venue.details", "bell\x07", "venue.details"),
    ("circle", "venue.website", "mailto:a@example.org", "venue.website"),
    ("circle", "venue.city", DELETE, "venue.city"),
    ("circle", "venue.city", "", "venue.city"),
    ("circle", "venue.city", "c" * 257, "venue.city"),
    ("circle", "venue.region", "r" * 257, "venue.region"),
    ("circle", "venue.country", "za", "venue.country"),
    ("circle", "venue.country", "ZAF", "venue.country"),
    ("circle", "venue.country", "ZÄ", "venue.country"),
    ("circle", "venue.geo", [91, 0], "venue.geo[0]"),
    ("circle", "venue.geo", [-90.5, 0], "venue.geo[0]"),
    ("circle", "venue.geo", [0, 181], "venue.geo[1]"),
    ("circle", "venue.geo", [0, -180.01], "venue.geo[1]"),
    ("circle", "venue.geo", [math.nan, 0], "venue.geo[0]"),
    ("circle", "venue.geo", [0, math.inf], "venue.geo[1]"),
    ("circle", "venue.geo", [True, 0], "venue.geo[0]"),
    ("circle", "venue.geo", ["1", 0], "venue.geo[0]"),
    ("circle", "venue.geo", [1], "venue.geo"),
    ("circle", "venue.geo", [1, 2, 3], "venue.geo"),
    ("circle", "venue.geo", "1,2", "venue.geo"),
    ("circle", "venue.online", DELETE, "venue.online"),
    ("circle", "venue.online", 0, "venue.online"),
    ("circle", "venue.online", "false", "venue.online"),
    # circle.update
    ("circle.update", "circle", DELETE, "circle"),
    ("circle.update", "circle", SHORT, "circle"),
    ("circle.update", "meeting_time", "25:00", "meeting_time"),
    ("circle.update", "meetings", [], "meetings"),
    ("circle.update", "meetings.1", "2027-01-13", "meetings[1]"),
    ("circle.update", "venue.city", "", "venue.city"),
    ("circle.update", "venue.online", DELETE, "venue.online"),
    ("circle.update", "signup_limit", 0, "signup_limit"),
    ("circle.update", "signup_limit", True, "signup_limit"),
    ("circle.update", "name", None, "name"),
    ("circle.update", "name", "", "name"),
    ("circle.update", "facilitators", [], "facilitators"),
    ("circle.update", "timezone", "Nowhere/Special", "timezone"),
    ("circle.update", "duration_min", 5, "duration_min"),
    # circle.cancel
    ("circle.cancel", "circle", DELETE, "circle"),
    ("circle.cancel", "circle", None, "circle"),
    ("circle.cancel", "reason", "r" * 501, "reason"),
    ("circle.cancel", "reason", "\x00", "reason"),
    # join
    ("join", "circle", DELETE, "circle"),
    ("join", "action", DELETE, "action"),
    ("join", "action", "maybe", "action"),
    ("join", "action", "JOIN", "action"),
    ("join", "display_name", DELETE, "display_name"),
    ("join", "display_name", "", "display_name"),
    ("join", "display_name", "d" * 129, "display_name"),
    ("join", "display_name", "Ben\n", "display_name"),
    ("join", "sealed", b"ciphertext", "sealed"),
    ("join", "sealed", [[bytes([i]) * 32, b"c"] for i in range(6)], "sealed"),
    ("join", "sealed", [[A]], "sealed[0]"),
    ("join", "sealed", [A, b"c"], "sealed[0]"),
    ("join", "sealed.1", [B, b"c", b"extra"], "sealed[1]"),
    ("join", "sealed.1.0", SHORT, "sealed[1][0]"),
    ("join", "sealed.0.1", b"", "sealed[0][1]"),
    ("join", "sealed.0.1", "ciphertext", "sealed[0][1]"),
    ("join", "sealed", [[A, b"x" * 2100], [B, b"y" * 1997]], "sealed"),
    # join.accept
    ("join.accept", "circle", SHORT, "circle"),
    ("join.accept", "join", DELETE, "join"),
    ("join.accept", "join", SHORT, "join"),
    ("join.accept", "accepted", DELETE, "accepted"),
    ("join.accept", "accepted", 1, "accepted"),
    # rsvp
    ("rsvp", "circle", DELETE, "circle"),
    ("rsvp", "date", DELETE, "date"),
    ("rsvp", "date", "2027-13-01", "date"),
    ("rsvp", "date", "2027-01-12 ", "date"),
    ("rsvp", "attending", DELETE, "attending"),
    ("rsvp", "attending", "yes", "attending"),
    # meeting.note
    ("meeting.note", "circle", DELETE, "circle"),
    ("meeting.note", "date", DELETE, "date"),
    ("meeting.note", "date", "2027-02-29", "date"),
    ("meeting.note", "attendance", -1, "attendance"),
    ("meeting.note", "attendance", 1001, "attendance"),
    ("meeting.note", "rating", 0, "rating"),
    ("meeting.note", "rating", 6, "rating"),
    ("meeting.note", "rating", 4.5, "rating"),
    ("meeting.note", "plus", DELETE, "plus"),
    ("meeting.note", "plus", ["p"] * 21, "plus"),
    ("meeting.note", "plus", [""], "plus[0]"),
    ("meeting.note", "plus.1", "p" * 281, "plus[1]"),
    ("meeting.note", "delta", DELETE, "delta"),
    ("meeting.note", "delta", ["ok", 3], "delta[1]"),
    ("meeting.note", "delta", [" \n "], "delta[0]"),
    ("meeting.note", "recap", "r" * 4001, "recap"),
    # feedback
    ("feedback", "circle", DELETE, "circle"),
    ("feedback", "role", DELETE, "role"),
    ("feedback", "role", "teacher", "role"),
    ("feedback", "goal", "g" * 257, "goal"),
    ("feedback", "goal_rating", 0, "goal_rating"),
    ("feedback", "course_rating", 6, "course_rating"),
    ("feedback", "recommendation_rating", "5", "recommendation_rating"),
    ("feedback", "reason", "r" * 2001, "reason"),
    ("feedback", "next_steps", "n" * 2001, "next_steps"),
    ("feedback", "next_steps", "\x1b", "next_steps"),
    # delete
    ("delete", "entries", DELETE, "entries"),
    ("delete", "entries", [], "entries"),
    ("delete", "entries", [bytes([i % 256, i // 256]) * 16 for i in range(101)], "entries"),
    ("delete", "entries", [A, B, A], "entries[2]"),
    ("delete", "entries", [A, SHORT], "entries[1]"),
    ("delete", "entries", A, "entries"),
    ("delete", "reason", "r" * 501, "reason"),
    # resource
    ("resource", "blob", DELETE, "blob"),
    ("resource", "blob", SHORT, "blob"),
    ("resource", "size", DELETE, "size"),
    ("resource", "size", -1, "size"),
    ("resource", "size", 4 * 2**30 + 1, "size"),
    ("resource", "size", 1.0, "size"),
    ("resource", "title", DELETE, "title"),
    ("resource", "title", "", "title"),
    ("resource", "title", "t" * 129, "title"),
    ("resource", "media_type", DELETE, "media_type"),
    ("resource", "media_type", "pdf", "media_type"),
    ("resource", "media_type", "application/", "media_type"),
    ("resource", "media_type", "/pdf", "media_type"),
    ("resource", "media_type", "text/plain; charset=utf-8", "media_type"),
    ("resource", "media_type", "text/plain/x", "media_type"),
    ("resource", "media_type", "application/" + "x" * 116, "media_type"),
    ("resource", "format", DELETE, "format"),
    ("resource", "format", "zine", "format"),
    ("resource", "licence", "MIT", "licence"),
    ("resource", "caption", "c" * 501, "caption"),
    ("resource", "circle", SHORT, "circle"),
]


@pytest.mark.parametrize(
    ("kind", "path", "value", "field"),
    NEGATIVE,
    ids=[f"{kind}:{path}" for kind, path, _, _ in NEGATIVE],
)
def test_rule_breaks_name_the_field(kind: str, path: str, value: Any, field: str) -> None:
    """Each broken rule raises InvalidRecordError whose field is the offending dotted path."""
    assert field_of(kind, changed(FULL[kind], path, value)) == field


BOOLEAN_AS_INT = [
    ("circle", "duration_min"),
    ("circle", "signup_limit"),
    ("meeting.note", "attendance"),
    ("meeting.note", "rating"),
    ("feedback", "goal_rating"),
    ("feedback", "course_rating"),
    ("feedback", "recommendation_rating"),
    ("resource", "size"),
]


@pytest.mark.parametrize(("kind", "path"), BOOLEAN_AS_INT)
@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_not_integers(kind: str, path: str, value: bool) -> None:
    """True/False are rejected wherever an integer is required, even when 0/1 would fit."""
    assert field_of(kind, changed(FULL[kind], path, value)) == path


def test_messages_name_the_limit() -> None:
    """Error messages state the limit that was broken, and str() leads with the field."""
    with pytest.raises(InvalidRecordError) as info:
        validate_record("circle", changed(FULL["circle"], "name", ""))
    assert info.value.reason == "must be 1-128 characters"
    assert str(info.value) == "name: must be 1-128 characters"
    with pytest.raises(InvalidRecordError) as info:
        validate_record("circle", changed(FULL["circle"], "course.format", "x"))
    assert info.value.reason == "must be one of: course, book, video, article, group, other"
    with pytest.raises(InvalidRecordError) as info:
        validate_record("circle", changed(FULL["circle"], "duration_min", 5))
    assert info.value.reason == "must be an integer 15-480"
    with pytest.raises(InvalidRecordError) as info:
        validate_record("circle", changed(FULL["circle"], "venue.city", DELETE))
    assert info.value.reason == "is required"


def test_non_map_body_is_rejected_naming_the_kind() -> None:
    """A body that is not a map is invalid for known and unknown kinds alike."""
    assert field_of("circle", ["not", "a", "map"]) == "circle"
    assert field_of("poll", "text") == "poll"
    assert field_of("poll", {1: "int key"}) == "poll"


# --- circle.update ------------------------------------------------------------------------------

UPDATABLE = [
    "name",
    "description",
    "course",
    "venue",
    "language",
    "timezone",
    "meeting_time",
    "duration_min",
    "meetings",
    "signup_limit",
    "signup_question",
    "facilitators",
]


@pytest.mark.parametrize("name", UPDATABLE)
def test_update_may_change_any_single_circle_field(name: str) -> None:
    """circle.update with the circle id and any one valid circle field is valid."""
    validate_record("circle.update", {"circle": A, name: FULL["circle"][name]})


@pytest.mark.parametrize("name", ["signup_limit", "signup_question"])
def test_update_nil_removes_an_optional_field(name: str) -> None:
    """nil for signup_limit / signup_question in an update means 'remove it' and is valid."""
    validate_record("circle.update", {"circle": A, name: None})


@pytest.mark.parametrize(
    "name", [n for n in UPDATABLE if n not in ("signup_limit", "signup_question")]
)
def test_update_nil_is_rejected_for_required_fields(name: str) -> None:
    """A required circle field cannot be removed with nil in an update."""
    assert field_of("circle.update", {"circle": A, name: None}) == name


@pytest.mark.parametrize(
    "body",
    [{"circle": A}, {"circle": A, "colour": "blue"}, {"circle": A, "circle.update": 1}],
    ids=["nothing", "only-unknown", "odd-key"],
)
def test_update_without_a_known_change_is_invalid(body: dict[str, Any]) -> None:
    """An update that changes no known circle field is rejected as a whole."""
    with pytest.raises(InvalidRecordError) as info:
        validate_record("circle.update", body)
    assert info.value.field == "circle.update"
    assert "must change at least one of" in info.value.reason


# --- forward compatibility ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(FULL))
def test_unknown_fields_are_ignored(kind: str) -> None:
    """Extra fields a newer node may add are accepted, at the top level and inside maps."""
    body = copy.deepcopy(FULL[kind])
    body["x_future"] = {"anything": [1, b"\x00", None, 2.5]}
    body["Name"] = 12  # keys are case-sensitive: not the `name` field
    for value in body.values():
        if isinstance(value, dict):
            value["x_nested_future"] = [None]
    validate_record(kind, body)


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("poll", {}),
        ("poll", {"question": "\x00" * 5000, "options": [1, True, None, b"x" * 100]}),
        ("circle.v2", {"name": 5}),
        ("x", {"nested": {"deep": [[{"a": 1.5}]]}}),
    ],
)
def test_unknown_kinds_are_accepted(kind: str, body: dict[str, Any]) -> None:
    """Unknown kinds get only the generic map check, so they are stored and forwarded."""
    assert kind not in KNOWN_KINDS
    validate_record(kind, body)


# --- helpers ------------------------------------------------------------------------------------


def test_meeting_dates_are_weekly_iso_strings() -> None:
    """meeting_dates gives `weeks` ISO dates a week apart, crossing months and leap days."""
    assert meeting_dates(datetime.date(2028, 2, 15), 3) == [
        "2028-02-15",
        "2028-02-22",
        "2028-02-29",
    ]
    assert meeting_dates(datetime.date(2027, 12, 28), 2) == ["2027-12-28", "2028-01-04"]
    assert len(meeting_dates(datetime.date(2027, 1, 1), 52)) == 52


@pytest.mark.parametrize("weeks", [0, -1, 53, True, 2.0])
def test_meeting_dates_refuses_counts_outside_the_schema(weeks: Any) -> None:
    """meeting_dates raises ValueError for a count that would not make a valid `meetings`."""
    with pytest.raises(ValueError):
        meeting_dates(datetime.date(2027, 1, 1), weeks)


@pytest.mark.parametrize("kind", sorted(KNOWN_KINDS))
def test_describe_kind_lists_every_field(kind: str) -> None:
    """describe_kind covers every field of the full example body, with its requiredness."""
    rows = {name: (required, rule) for name, required, rule in describe_kind(kind)}
    for name in FULL[kind]:
        assert name in rows
        assert rows[name][1]
    for name in MINIMAL[kind]:
        if kind != "circle.update":
            assert rows[name][0] is True
    if kind == "circle":
        assert rows["venue.city"] == (True, "single-line text, 1-256 characters")
        assert rows["course.link"][0] is False


def test_describe_kind_refuses_unknown_kinds() -> None:
    """Only known kinds have a schema to describe."""
    with pytest.raises(KeyError):
        describe_kind("poll")


# --- property tests -----------------------------------------------------------------------------

INTERESTING = st.sampled_from(
    [A, SHORT, b"", "", " ", "\n", "\x00", "2027-01-12", "2027-02-30", "18:30", "en", "UTC",
     "https://example.org", "course", "CC-BY", "join", "learner", 0, 1, 5, 90, -1, 2**63,
     True, False, None, math.nan, math.inf, 1.5, [], {}, [A, b"c"], ["2027-01-12"]]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=30)
    | st.binary(max_size=40)
    | INTERESTING
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=12,
).map(copy.deepcopy)  # never let a test edit the shared INTERESTING values
FIELD_NAMES = st.sampled_from(sorted({name for body in FULL.values() for name in body} | {"x"}))


def _locations(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every (path to container, key or index) inside `node`."""
    found: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((*path, key))
            found.extend(_locations(value, (*path, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.append((*path, index))
            found.extend(_locations(value, (*path, index)))
    return found


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(sorted(FULL)), data=st.data())
def test_mutated_bodies_only_ever_raise_invalid_record(kind: str, data: st.DataObject) -> None:
    """Random edits of valid bodies either validate or raise InvalidRecordError, nothing else."""
    body = copy.deepcopy(data.draw(st.sampled_from([FULL[kind], MINIMAL[kind]])))
    for _ in range(data.draw(st.integers(1, 4))):
        spots = _locations(body)
        action = data.draw(st.sampled_from(["replace", "delete", "insert"]))
        if action == "insert" or not spots:
            containers = [()] + [s for s in spots if isinstance(_get(body, s), dict | list)]
            where = data.draw(st.sampled_from(containers))
            target = _get(body, where)
            if isinstance(target, dict):
                target[data.draw(FIELD_NAMES | st.text(max_size=8))] = data.draw(VALUES)
            else:
                target.append(data.draw(VALUES))
            continue
        spot = data.draw(st.sampled_from(spots))
        parent = _get(body, spot[:-1])
        if action == "delete":
            del parent[spot[-1]]
        else:
            parent[spot[-1]] = data.draw(VALUES)
    try:
        validate_record(kind, body)
    except InvalidRecordError as exc:
        assert isinstance(exc.field, str) and exc.field
        assert exc.reason


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


# A strategy for valid circles, written from the schema rather than from the validator.
_LINE_CHARS = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029")
_MULTI_CHARS = _LINE_CHARS | st.sampled_from("\n\t")


def _line(lo: int, hi: int) -> st.SearchStrategy[str]:
    text = st.text(_LINE_CHARS, min_size=lo, max_size=hi)
    return text.filter(lambda s: not s.isspace()) if lo else text


def _multi(lo: int, hi: int) -> st.SearchStrategy[str]:
    text = st.text(_MULTI_CHARS, min_size=lo, max_size=hi)
    return text.filter(lambda s: not s.isspace()) if lo else text


_LANGUAGES = st.from_regex(r"[a-zA-Z]{2,3}(-[a-zA-Z0-9]{1,8}){0,3}", fullmatch=True).filter(
    lambda s: len(s) <= 35
)
_ZONES = sorted(
    z
    for z in zoneinfo.available_timezones()
    if z not in ("localtime", "Factory") and not z.startswith(("posix/", "right/"))
) or ["UTC"]
_URLS = urls().filter(lambda u: len(u) <= 2048)
_ALNUM = st.characters(whitelist_categories=("Lu", "Ll", "Lo", "Nd"))
_COURSES = st.fixed_dictionaries(
    {
        "title": _line(1, 128),
        "format": st.sampled_from(FORMATS),
        "topics": st.lists(_line(1, 64), max_size=10),
        "language": _LANGUAGES,
    },
    optional={
        "provider": _line(0, 256),
        "link": _URLS,
        "caption": _multi(0, 500),
        "licence": st.sampled_from(LICENCES),
    },
)
_VENUES = st.fixed_dictionaries(
    {
        "name": st.tuples(_line(0, 120), _ALNUM, _line(0, 120)).map("".join),
        "city": _line(1, 256),
        "online": st.booleans(),
    },
    optional={
        "address": _line(0, 256),
        "details": _multi(0, 500),
        "website": _URLS,
        "region": _line(0, 256),
        "country": st.from_regex(r"[A-Z]{2}", fullmatch=True),
        "geo": st.tuples(
            st.floats(-90, 90) | st.integers(-90, 90), st.floats(-180, 180) | st.integers(-180, 180)
        ).map(list),
    },
)
_DATES = st.dates(datetime.date(2000, 1, 1), datetime.date(2099, 12, 31))
VALID_CIRCLES = st.fixed_dictionaries(
    {
        "name": _line(1, 128),
        "description": _multi(1, 2000),
        "course": _COURSES,
        "venue": _VENUES,
        "language": _LANGUAGES,
        "timezone": st.sampled_from(_ZONES),
        "meeting_time": st.times().map(lambda t: t.strftime("%H:%M")),
        "duration_min": st.integers(15, 480),
        "meetings": st.lists(_DATES, min_size=1, max_size=52, unique=True).map(
            lambda days: [day.isoformat() for day in sorted(days)]
        ),
        "facilitators": st.lists(
            st.binary(min_size=32, max_size=32), min_size=1, max_size=5, unique=True
        ),
    },
    optional={
        "signup_limit": st.integers(1, 10_000),
        "signup_question": _line(0, 256),
    },
)


@settings(max_examples=200, deadline=None)
@given(body=VALID_CIRCLES)
def test_generated_valid_circles_validate(body: dict[str, Any]) -> None:
    """Any circle built within the schema validates, before and after a msgpack round trip."""
    validate_record("circle", body)
    validate_record("circle", unpack_strict(pack(body), "body", max_size=1 << 20))


@settings(max_examples=100, deadline=None)
@given(body=VALID_CIRCLES, data=st.data())
def test_generated_circles_make_valid_updates(body: dict[str, Any], data: st.DataObject) -> None:
    """Any non-empty subset of a valid circle's fields, with the circle id, is a valid update."""
    names = data.draw(st.lists(st.sampled_from(sorted(body)), min_size=1, unique=True))
    validate_record("circle.update", {"circle": A} | {name: body[name] for name in names})


# -- any kind, any field, any value (issue 12, item 6) ------------------------------------------

msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=40) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_bodies(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A full valid body of any kind with one field dropped, replaced or added."""
    kind = draw(st.sampled_from(sorted(FULL)))
    body = copy.deepcopy(FULL[kind])
    field = draw(st.sampled_from([*body, "extra"]))
    action = draw(st.sampled_from(["drop", "replace"]))
    if action == "drop":
        body.pop(field, None)
    else:
        body[field] = draw(msgpack_values)
    return kind, body


@settings(max_examples=200)
@given(mutated_bodies())
def test_any_mutation_of_any_kind_is_valid_or_refused_by_name(case) -> None:
    """Every kind, any field changed to anything: valid, or InvalidRecordError naming a field."""
    kind, body = case
    try:
        validate_record(kind, body)
    except InvalidRecordError as exc:
        assert exc.field
        return
    assert unpack_strict(pack(body), "body", max_size=1 << 20) == body or _has_nan(body)


def _has_nan(value: Any) -> bool:
    """NaN anywhere inside (it never equals itself, so a round trip cannot compare equal)."""
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_nan(v) for v in value)
    return False
