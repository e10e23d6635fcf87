"""The record kinds and their validation (DESIGN.md "Records" and "Record schema").

`validate_record(kind, body)` is run for every ingested entry that has a body, and by the CLI
before it signs one. It is pure and cheap (under 10 microseconds for a typical circle). The one
brush with the outside world is the timezone check: the list of zone names is read once, and a
name missing from it is looked up in the tz database (once per name) before it is refused.

Rules it keeps:

- **Unknown kinds** get only the generic check (the body is a map with string keys) so that old
  nodes store and forward the records of newer ones.
- **Unknown fields** of a known kind are allowed and ignored (a newer node may add some); every
  *known* field must have the right type and sit within its limits, and required fields must be
  present. Optional fields are omitted, never nil -- except in `circle.update`, where nil for
  `signup_limit` / `signup_question` means "remove it".
- **Types** are the msgpack ones: node ids and entry ids are 32-byte binaries; integers are
  integers (a boolean is not one, nor is 90.0); booleans are booleans; lists are arrays.
- **Strings** are counted in characters (code points). Single-line fields (names, titles, city,
  ...) contain no control characters (Unicode Cc) and no U+2028/U+2029; multi-line fields
  (description, bio, recap, reason, caption, details, next_steps, plus/delta items) may also
  contain ``\\n`` and ``\\t`` and nothing else of Cc. A string with a minimum length of 1 must not
  be blank (whitespace only).
- **Formats**: dates are ``YYYY-MM-DD`` calendar dates; times ``HH:MM`` (00:00-23:59); timezones
  IANA names; languages BCP 47-style tags (a 2-3 letter primary subtag, then ``-`` subtags of 1-8
  letters or digits, at most 35 characters); countries ISO 3166 alpha-2 (two uppercase ASCII
  letters); URLs http(s) with a host, at most 2048 characters; media types ``type/subtype``.
- Cross-entry rules are **not** checked here, because they need the store: that ``facilitators``
  starts with the circle's author, that only the author or facilitators update or cancel a circle,
  that ``delete`` names entries of its own author, that ``join.accept`` names a join of the circle.

Errors are `InvalidRecordError` whose ``field`` is the dotted path inside the body
(``"venue.city"``, ``"meetings[3]"``, ``"sealed[0][1]"``); an error about the body as a whole
names the kind (``"circle.update"``). The schema lives in one table, `_SCHEMAS`, built from small
checkers; `describe_kind` renders it as rows for PROTOCOL.md.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Callable
from datetime import date, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from .errors import InvalidRecordError

__all__ = [
    "FORMATS",
    "KNOWN_KINDS",
    "LICENCES",
    "MAX_MEETINGS",
    "describe_kind",
    "meeting_dates",
    "validate_record",
]

Checker = Callable[[Any], None]

ID_SIZE = 32
MAX_MEETINGS = 52
MAX_FACILITATORS = 5
MAX_SIGNUP_LIMIT = 10_000
MAX_SEALED_BYTES = 4096
MAX_RESOURCE_SIZE = 4 * 2**30
MAX_URL_LENGTH = 2048
MAX_LANGUAGE_LENGTH = 35
MAX_TIMEZONE_LENGTH = 64
MAX_MEDIA_TYPE_LENGTH = 127

FORMATS = ("course", "book", "video", "article", "group", "other")
LICENCES = (
    "CC-BY",
    "CC-BY-SA",
    "CC-BY-NC",
    "CC-BY-NC-SA",
    "public-domain",
    "all-rights-reserved",
    "other",
    "not-sure",
)

_MISSING = object()

# Cc is U+0000-001F and U+007F-009F. Single-line text also refuses the Unicode line separators.
_SINGLE_LINE_BAD = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]").search
_MULTI_LINE_BAD = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]").search  # all Cc but \t \n
_HAS_ALNUM = re.compile(r"[^\W_]").search
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}").fullmatch
_TIME = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]").fullmatch
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*").fullmatch
_COUNTRY = re.compile(r"[A-Z]{2}").fullmatch
_TIMEZONE = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*").fullmatch
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]{0,126}"
).fullmatch
_URL_BAD = re.compile(r"[\s\x00-\x1f\x7f-\x9f]").search
# Files in a zoneinfo directory that are not zones a circle can meet in.
_NOT_ZONES = frozenset({"localtime", "posixrules", "posix", "right", "Factory"})


def _fail(message: str) -> InvalidRecordError:
    """A leaf error; the containers above it fill in the field path as it propagates."""
    return InvalidRecordError(message, None)


def _under(exc: InvalidRecordError, step: str) -> InvalidRecordError:
    """Re-raise `exc` one level up: prefix its field with a map key or a ``[index]``."""
    inner = exc.field
    if inner is None:
        path = step
    elif inner.startswith("["):
        path = step + inner
    else:
        path = f"{step}.{inner}"
    return InvalidRecordError(exc.reason, path)


def _rule(check: Checker, text: str, **parts: Any) -> Checker:
    """Attach a human description (and structure, for `describe_kind`) to a checker."""
    check.rule = text  # type: ignore[attr-defined]
    for name, value in parts.items():
        setattr(check, name, value)
    return check


def _range_text(lo: int, hi: int, unit: str) -> str:
    return f"{lo}-{hi} {unit}" if lo else f"at most {hi} {unit}"


# --- leaf checkers ------------------------------------------------------------------------------


def _text(lo: int, hi: int, *, multiline: bool = False, alnum: bool = False) -> Checker:
    """A string of `lo`-`hi` characters; single-line unless `multiline`."""
    bad = _MULTI_LINE_BAD if multiline else _SINGLE_LINE_BAD
    length_msg = f"must be {_range_text(lo, hi, 'characters')}"
    control_msg = (
        "must not contain control characters other than newline and tab"
        if multiline
        else "must be a single line without control characters"
    )

    def check(value: Any) -> None:
        if type(value) is not str:
            raise _fail("must be a string")
        if not lo <= len(value) <= hi:
            raise _fail(length_msg)
        if bad(value) is not None:
            raise _fail(control_msg)
        if lo and value.isspace():
            raise _fail("must not be blank")
        if alnum and _HAS_ALNUM(value) is None:
            raise _fail("must contain at least one letter or digit")

    kind = "multi-line text" if multiline else "single-line text"
    extra = ", with a letter or digit" if alnum else ""
    return _rule(check, f"{kind}, {_range_text(lo, hi, 'characters')}{extra}")


def _integer(lo: int, hi: int) -> Checker:
    message = f"must be an integer {lo}-{hi}"

    def check(value: Any) -> None:
        if type(value) is not int or not lo <= value <= hi:
            raise _fail(message)

    return _rule(check, f"integer {lo}-{hi}")


def _boolean(value: Any) -> None:
    if type(value) is not bool:
        raise _fail("must be true or false")


def _id(value: Any) -> None:
    if type(value) is not bytes or len(value) != ID_SIZE:
        raise _fail(f"must be {ID_SIZE} bytes")


def _one_of(*choices: str) -> Checker:
    allowed = frozenset(choices)
    message = "must be one of: " + ", ".join(choices)

    def check(value: Any) -> None:
        if type(value) is not str or value not in allowed:
            raise _fail(message)

    return _rule(check, "one of " + ", ".join(f"`{c}`" for c in choices))


def _date(value: Any) -> None:
    if type(value) is not str or _DATE(value) is None:
        raise _fail("must be a date YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise _fail("is not a calendar date") from None


def _time(value: Any) -> None:
    if type(value) is not str or _TIME(value) is None:
        raise _fail("must be a time HH:MM, 00:00-23:59")


def _language(value: Any) -> None:
    if type(value) is not str or len(value) > MAX_LANGUAGE_LENGTH or _LANGUAGE(value) is None:
        raise _fail("must be a BCP 47 language tag such as en or pt-BR")


def _country(value: Any) -> None:
    if type(value) is not str or _COUNTRY(value) is None:
        raise _fail("must be an ISO 3166 alpha-2 code (two uppercase letters)")


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    try:
        names = zoneinfo.available_timezones()
    except Exception:  # pragma: no cover - a broken tz installation; fall back per name
        return frozenset()
    # Some systems list "localtime" and "Factory" too; neither is a place a circle meets in.
    return frozenset(
        name for name in names if _TIMEZONE(name) and name.split("/", 1)[0] not in _NOT_ZONES
    )


@lru_cache(maxsize=512)
def _zone_loads(name: str) -> bool:
    """For zones missing from the cached list (tzdata absent): ask zoneinfo directly, once."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _timezone(value: Any) -> None:
    if type(value) is str and value in _zone_names():
        return
    if (
        type(value) is not str
        or len(value) > MAX_TIMEZONE_LENGTH
        or _TIMEZONE(value) is None  # also excludes "..", a leading "/" and empty parts
        or value.split("/", 1)[0] in _NOT_ZONES
        or not _zone_loads(value)
    ):
        raise _fail("must be an IANA timezone such as Africa/Johannesburg")


def _url(value: Any) -> None:
    if type(value) is not str or not 1 <= len(value) <= MAX_URL_LENGTH:
        raise _fail(f"must be an http(s) URL of at most {MAX_URL_LENGTH} characters")
    if _URL_BAD(value) is not None:
        raise _fail("must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise _fail("is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise _fail("must be an http or https URL with a host")


def _media_type(value: Any) -> None:
    if type(value) is not str or len(value) > MAX_MEDIA_TYPE_LENGTH or _MEDIA_TYPE(value) is None:
        raise _fail(
            f"must be a media type type/subtype of at most {MAX_MEDIA_TYPE_LENGTH} characters"
        )


def _geo(value: Any) -> None:
    if type(value) is not list or len(value) != 2:
        raise _fail("must be [latitude, longitude]")
    for index, (number, limit) in enumerate(zip(value, (90, 180), strict=True)):
        number_type = type(number)
        if (
            (number_type is not int and number_type is not float)
            or (number_type is float and not math.isfinite(number))
            or not -limit <= number <= limit
        ):
            raise InvalidRecordError(f"must be a number from -{limit} to {limit}", f"[{index}]")


def _sealed_pair(value: Any) -> None:
    if type(value) is not list or len(value) != 2:
        raise _fail("must be [facilitator node id, ciphertext]")
    if type(value[0]) is not bytes or len(value[0]) != ID_SIZE:
        raise InvalidRecordError(f"must be {ID_SIZE} bytes", "[0]")
    if type(value[1]) is not bytes or not value[1]:
        raise InvalidRecordError("must be non-empty bytes", "[1]")


def _sealed_total(pairs: list[Any]) -> None:
    if sum(len(pair[1]) for pair in pairs) > MAX_SEALED_BYTES:
        raise _fail(f"ciphertexts must total at most {MAX_SEALED_BYTES} bytes")


_rule(_boolean, "boolean")
_rule(_id, f"{ID_SIZE}-byte id")
_rule(_date, "date `YYYY-MM-DD`")
_rule(_time, "time `HH:MM`, 00:00-23:59")
_rule(_language, f"BCP 47 language tag, at most {MAX_LANGUAGE_LENGTH} characters")
_rule(_country, "ISO 3166 alpha-2 code, two uppercase ASCII letters")
_rule(_timezone, "IANA timezone name")
_rule(_url, f"http(s) URL with a host, at most {MAX_URL_LENGTH} characters")
_rule(_media_type, f"media type `type/subtype`, at most {MAX_MEDIA_TYPE_LENGTH} characters")
_rule(_geo, "[latitude -90..90, longitude -180..180], finite numbers")
_rule(_sealed_pair, f"[facilitator node id ({ID_SIZE} bytes), ciphertext (non-empty bytes)]")


# --- containers ---------------------------------------------------------------------------------


def _list(
    item: Checker,
    lo: int,
    hi: int,
    *,
    distinct: bool = False,
    increasing: bool = False,
    then: Checker | None = None,
) -> Checker:
    """A list of `lo`-`hi` items, each passing `item`; optionally distinct or strictly increasing.

    `then` runs on the whole list after the items pass (limits spanning the items).
    """
    length_msg = f"must have {_range_text(lo, hi, 'items')}"

    def check(value: Any) -> None:
        if type(value) is not list:
            raise _fail("must be a list")
        if not lo <= len(value) <= hi:
            raise _fail(length_msg)
        index = 0
        try:
            for index, element in enumerate(value):  # noqa: B007 - used by the handler
                item(element)
        except InvalidRecordError as exc:
            raise _under(exc, f"[{index}]") from None
        if increasing:
            for index in range(1, len(value)):
                if not value[index - 1] < value[index]:
                    raise InvalidRecordError(
                        "must be later than the item before it (strictly increasing)",
                        f"[{index}]",
                    )
        elif distinct and len(set(value)) != len(value):
            seen = set()
            for index, element in enumerate(value):
                if element in seen:
                    raise InvalidRecordError("is a duplicate", f"[{index}]")
                seen.add(element)
        if then is not None:
            then(value)

    order = ", strictly increasing" if increasing else ", distinct" if distinct else ""
    return _rule(
        check, f"list of {_range_text(lo, hi, 'items')}{order}; each: {item.rule}", item=item
    )


def _nil_or(inner: Checker) -> Checker:
    def check(value: Any) -> None:
        if value is not None:
            inner(value)

    structure = {k: v for k, v in vars(inner).items() if k != "rule"}
    return _rule(check, f"nil (remove) or {inner.rule}", **structure)  # type: ignore[attr-defined]


def _map(fields: dict[str, Checker]) -> Checker:
    """A map with the given fields; a name ending in ``?`` is optional. Other keys are ignored."""
    spec = tuple(
        (name.removesuffix("?"), check, not name.endswith("?")) for name, check in fields.items()
    )

    def check(value: Any) -> None:
        if type(value) is not dict:
            raise _fail("must be a map")
        get = value.get
        name = ""
        try:
            for name, field_check, required in spec:
                field_value = get(name, _MISSING)
                if field_value is _MISSING:
                    if required:
                        raise _fail("is required")
                    continue
                field_check(field_value)
        except InvalidRecordError as exc:
            raise _under(exc, name) from None

    return _rule(check, "map", fields=spec)


# --- the schema ---------------------------------------------------------------------------------

_FORMAT = _one_of(*FORMATS)
_LICENCE = _one_of(*LICENCES)
_MEETINGS = _list(_date, 1, MAX_MEETINGS, increasing=True)

_COURSE = _map(
    {
        "title": _text(1, 128),
        "provider?": _text(0, 256),
        "link?": _url,
        "format": _FORMAT,
        "caption?": _text(0, 500, multiline=True),
        "topics": _list(_text(1, 64), 0, 10),
        "language": _language,
        "licence?": _LICENCE,
    }
)

_VENUE = _map(
    {
        "name": _text(1, 256, alnum=True),
        "address?": _text(0, 256),
        "details?": _text(0, 500, multiline=True),
        "website?": _url,
        "city": _text(1, 256),
        "region?": _text(0, 256),
        "country?": _country,
        "geo?": _geo,
        "online": _boolean,
    }
)

#: The fields of a circle; `circle.update` may carry any of them (all optional there).
_CIRCLE_FIELDS: dict[str, Checker] = {
    "name": _text(1, 128),
    "description": _text(1, 2000, multiline=True),
    "course": _COURSE,
    "venue": _VENUE,
    "language": _language,
    "timezone": _timezone,
    "meeting_time": _time,
    "duration_min": _integer(15, 480),
    "meetings": _MEETINGS,
    "signup_limit?": _integer(1, MAX_SIGNUP_LIMIT),
    "signup_question?": _text(0, 256),
    "facilitators": _list(_id, 1, MAX_FACILITATORS, distinct=True),
}
#: In an update, nil for these means "remove": the circle no longer has a limit / a question.
_REMOVABLE = ("signup_limit", "signup_question")
_UPDATABLE = tuple(name.removesuffix("?") for name in _CIRCLE_FIELDS)
#: The circle fields a `circle.update` may change (public: views apply updates field by field).
UPDATABLE_CIRCLE_FIELDS: tuple[str, ...] = _UPDATABLE

_CIRCLE_UPDATE_FIELDS: dict[str, Checker] = {"circle": _id} | {
    name.removesuffix("?") + "?": (
        _nil_or(check) if name.removesuffix("?") in _REMOVABLE else check
    )
    for name, check in _CIRCLE_FIELDS.items()
}
_circle_update_fields = _map(_CIRCLE_UPDATE_FIELDS)


def _circle_update(body: Any) -> None:
    _circle_update_fields(body)
    for name in _UPDATABLE:
        if name in body:
            return
    raise InvalidRecordError(
        "must change at least one of: " + ", ".join(_UPDATABLE), "circle.update"
    )


_rule(_circle_update, "map", fields=_circle_update_fields.fields)  # type: ignore[attr-defined]


def _enc_key(value: Any) -> None:
    _id(value)


_rule(_enc_key, f"{ID_SIZE}-byte X25519 public key (for HPKE; not an id)")

_SCHEMAS: dict[str, Checker] = {
    "profile": _map(
        {
            "name": _text(1, 80),
            "bio?": _text(0, 500, multiline=True),
            "languages?": _list(_language, 0, 10),
            "enc_key": _enc_key,
        }
    ),
    "circle": _map(_CIRCLE_FIELDS),
    "circle.update": _circle_update,
    "circle.cancel": _map({"circle": _id, "reason?": _text(0, 500, multiline=True)}),
    "join": _map(
        {
            "circle": _id,
            "action": _one_of("join", "leave"),
            "display_name": _text(1, 128),
            "sealed?": _list(_sealed_pair, 0, MAX_FACILITATORS, then=_sealed_total),
        }
    ),
    "join.accept": _map({"circle": _id, "join": _id, "accepted": _boolean}),
    "rsvp": _map({"circle": _id, "date": _date, "attending": _boolean}),
    "meeting.note": _map(
        {
            "circle": _id,
            "date": _date,
            "attendance?": _integer(0, 1000),
            "rating?": _integer(1, 5),
            "plus": _list(_text(1, 280, multiline=True), 0, 20),
            "delta": _list(_text(1, 280, multiline=True), 0, 20),
            "recap?": _text(0, 4000, multiline=True),
        }
    ),
    "feedback": _map(
        {
            "circle": _id,
            "role": _one_of("learner", "facilitator"),
            "goal?": _text(0, 256),
            "goal_rating?": _integer(1, 5),
            "course_rating?": _integer(1, 5),
            "recommendation_rating?": _integer(1, 5),
            "reason?": _text(0, 2000, multiline=True),
            "next_steps?": _text(0, 2000, multiline=True),
        }
    ),
    "delete": _map(
        {
            "entries": _list(_id, 1, 100, distinct=True),
            "reason?": _text(0, 500, multiline=True),
        }
    ),
    "resource": _map(
        {
            "blob": _id,
            "size": _integer(0, MAX_RESOURCE_SIZE),
            "title": _text(1, 128),
            "media_type": _media_type,
            "format": _FORMAT,
            "licence?": _LICENCE,
            "caption?": _text(0, 500, multiline=True),
            "circle?": _id,
        }
    ),
}

KNOWN_KINDS: frozenset[str] = frozenset(_SCHEMAS)


# --- public API ---------------------------------------------------------------------------------


def validate_record(kind: str, body: dict[str, Any]) -> None:
    """Check a record body against the schema of its kind (rules in the module docstring).

    Args:
        kind: the entry's kind; unknown kinds only get the generic check.
        body: the decoded body map.

    Raises:
        InvalidRecordError: ``field`` is the dotted path of the first offending field, or the
            kind when the body as a whole is wrong.
    """
    check = _SCHEMAS.get(kind)
    if check is None:
        if type(body) is not dict or any(type(key) is not str for key in body):
            raise InvalidRecordError("must be a map with string keys", kind)
        return
    if type(body) is not dict:
        raise InvalidRecordError("must be a map", kind)
    check(body)


def validate_authored(kind: str, body: dict[str, Any], author: bytes) -> None:
    """The rules that tie a valid body to the author of its entry.

    A circle names its author as its first facilitator: nobody can make a node facilitate (and
    receive sealed sign-up details for) a circle it did not announce.

    Raises:
        InvalidRecordError: naming the field.
    """
    if kind == "circle" and body["facilitators"][0] != author:
        raise InvalidRecordError("must be the circle's author", "facilitators[0]")


def describe_kind(kind: str) -> list[tuple[str, bool, str]]:
    """The schema of a known kind as rows ``(dotted field, required, rule)``, for PROTOCOL.md.

    Raises:
        KeyError: `kind` is not one of `KNOWN_KINDS`.
    """
    rows: list[tuple[str, bool, str]] = []

    def walk(spec: tuple[tuple[str, Checker, bool], ...], prefix: str) -> None:
        for name, check, required in spec:
            rows.append((prefix + name, required, check.rule))  # type: ignore[attr-defined]
            inner = getattr(check, "fields", None)
            if inner is not None:
                walk(inner, f"{prefix}{name}.")

    walk(_SCHEMAS[kind].fields, "")  # type: ignore[attr-defined]
    return rows


def meeting_dates(start: date, weeks: int) -> list[str]:
    """The default meeting list: `weeks` dates, one week apart, from `start`, as ISO strings.

    Raises:
        ValueError: `weeks` is not 1-52 (the result would not be a valid ``meetings``).
    """
    if type(weeks) is not int or not 1 <= weeks <= MAX_MEETINGS:
        raise ValueError(f"weeks must be 1-{MAX_MEETINGS}, got {weeks!r}")
    return [(start + timedelta(weeks=week)).isoformat() for week in range(weeks)]
