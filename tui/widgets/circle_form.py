"""The form for a circle's every schema field, used to announce one and to edit one.

Validation is the protocol's own: the record the form would sign is checked with
`protocol.records.validate_record`; each error is shown under the field it names, and the field
is then swapped for a valid stand-in so the next error surfaces too. What the form accepts, a
peer accepts; what it refuses, it says why, in the validator's words.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Checkbox, Input, Label, Select, Static, TextArea

from p2pnode.calendar import local_timezone
from p2pnode.errors import InvalidInput
from p2pnode.store.models import HEALTH_MAX_PEOPLE, HEALTH_MIN_PEOPLE, CircleDetail
from protocol.errors import InvalidRecordError
from protocol.identity import node_id_text, parse_id
from protocol.records import FORMATS, LICENCES, MAX_MEETINGS, meeting_dates, validate_record

DEFAULT_DURATION, DEFAULT_WEEKS, DEFAULT_TIME = 90, 6, "18:00"
#: P2PU's experience: learning circles work best with 4-15 participants
DEFAULT_CAPACITY = HEALTH_MAX_PEOPLE
#: a line under a field, saying why its default is what it is
FIELD_HINTS = {
    "capacity": f"{DEFAULT_CAPACITY} suggested: P2PU finds circles work best with"
                f" {HEALTH_MIN_PEOPLE}-{HEALTH_MAX_PEOPLE} people. A hint, not a rule.",
}
_STAND_IN_ID = b"\x00" * 32
#: a valid circle: errors are replaced field by field from here to find the next one
_STAND_IN: dict[str, Any] = {
    "name": "x", "description": "x",
    "course": {"title": "x", "format": "course", "topics": [], "language": "en"},
    "venue": {"name": "x", "city": "x", "online": False},
    "language": "en", "timezone": "UTC", "meeting_time": "00:00", "duration_min": 90,
    "meetings": ["2000-01-01"], "facilitators": [_STAND_IN_ID],
}

# (widget id, record path, label, kind); kind: text, area, int, select:<choices>, bool, list
FIELDS: list[tuple[str, str, str, str] | str] = [
    "Circle",
    ("name", "name", "Name of the circle", "text"),
    ("description", "description", "What it is about (Markdown)", "area"),
    ("language", "language", "Language the group speaks (e.g. en, es, pt-BR)", "text"),
    "Course",
    ("course-title", "course.title", "Course title", "text"),
    ("course-provider", "course.provider", "Provider (optional)", "text"),
    ("course-link", "course.link", "Link (http…, optional)", "text"),
    ("course-format", "course.format", "Format", "format"),
    ("course-language", "course.language", "Course language", "text"),
    ("course-licence", "course.licence", "Licence (optional)", "licence"),
    ("course-caption", "course.caption", "Caption (optional)", "text"),
    ("course-topics", "course.topics", "Topics, comma-separated (optional)", "list"),
    "Venue",
    ("venue-name", "venue.name", "Venue name", "text"),
    ("venue-online", "venue.online", "Meets online", "bool"),
    ("venue-address", "venue.address", "Address (optional)", "text"),
    ("venue-details", "venue.details", "How to find the room (optional)", "text"),
    ("venue-website", "venue.website", "Venue website (optional)", "text"),
    ("venue-city", "venue.city", "City", "text"),
    ("venue-region", "venue.region", "Region (optional)", "text"),
    ("venue-country", "venue.country", "Country code, e.g. ZA (optional)", "text"),
    ("venue-geo", "venue.geo", "Latitude, longitude (optional)", "geo"),
    "Schedule",
    ("start", "meetings", "First meeting (YYYY-MM-DD)", "text"),
    ("weeks", "meetings", "Weekly meetings", "int"),
    ("meetings", "meetings", "Meeting dates, comma-separated", "list"),
    ("meeting-time", "meeting_time", "Time (HH:MM, the circle's zone)", "text"),
    ("duration", "duration_min", "Minutes per meeting", "int"),
    ("timezone", "timezone", "Time zone (IANA, e.g. Africa/Johannesburg)", "text"),
    "Sign-up",
    ("capacity", "signup_limit", "Seats (empty: no limit)", "int"),
    ("question", "signup_question", "A question for people signing up (optional)", "text"),
    ("facilitators", "facilitators", "Co-facilitator ids, comma-separated (optional)",
     "list"),
]
_WIDGET_FOR_PATH = {}
for _field in FIELDS:
    if isinstance(_field, tuple):
        _WIDGET_FOR_PATH.setdefault(_field[1], _field[0])


def local_language() -> str:
    """This machine's language as a BCP 47 primary tag (from $LANG), or en."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        tag = os.environ.get(name, "").split(".")[0].split("_")[0]
        if tag and tag.isalpha() and 2 <= len(tag) <= 3:
            return tag.lower()
    return "en"


def _default_zone() -> str:
    """This machine's zone for a new circle; UTC when `TZ` names none (the form shows it)."""
    try:
        return local_timezone()
    except InvalidInput:
        return "UTC"


def _int_or_text(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text


def _set_path(record: dict[str, Any], path: str, value: Any) -> None:
    head, _, rest = path.partition(".")
    if rest:
        _set_path(record.setdefault(head, {}), rest, value)
    elif value is None:
        record.pop(head, None)
    else:
        record[head] = value


def _get_path(record: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        if not isinstance(record, dict) or part not in record:
            return None
        record = record[part]
    return record


def protocol_errors(record: dict[str, Any], kind: str = "circle") -> dict[str, str]:
    """Every field the validator refuses: path (indexes dropped) -> its message."""
    record = copy.deepcopy(record)
    errors: dict[str, str] = {}
    for _ in range(64):  # each round fixes one field; there are fewer fields than this
        try:
            validate_record(kind, record)
            return errors
        except InvalidRecordError as exc:
            path = (exc.field or kind).split("[")[0]
            if path in errors or path == kind:
                errors.setdefault(path, exc.reason)
                return errors
            errors[path] = exc.reason
            _set_path(record, path, copy.deepcopy(_get_path(_STAND_IN, path)))
    return errors


class CircleForm(VerticalScroll):
    """Every field of a circle. `record()` is what would be signed; `errors()` what is wrong."""

    DEFAULT_CSS = """
    CircleForm { height: 1fr; padding: 0 1; }
    CircleForm .form-section { text-style: bold; color: $accent; margin-top: 1; }
    CircleForm Label { margin-top: 1; color: $text-muted; }
    CircleForm Input, CircleForm Select { background: $boost; }
    CircleForm .field-error { color: $error; height: auto; }
    CircleForm .field-hint { color: $text-muted; text-style: italic; height: auto; }
    CircleForm .field-error.-empty { display: none; }
    CircleForm TextArea { height: 5; }
    """

    def __init__(self, me: bytes, *, today: dt.date, detail: CircleDetail | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.me, self.today, self.detail = me, today, detail
        self.touched: set[str] = set()
        self.show_all = False
        #: widgets by id, filled once mounted (CSS queries per keystroke are slow)
        self._by_id: dict[str, Any] = {}

    # -- building ----------------------------------------------------------------------------
    def initial(self) -> dict[str, Any]:
        """What each widget starts with: defaults, or the circle being edited."""
        language = local_language()
        if self.detail is None:
            return {"language": language, "course-language": language,
                    "course-format": "course", "start": (self.today + dt.timedelta(days=7))
                    .isoformat(), "weeks": str(DEFAULT_WEEKS), "meeting-time": DEFAULT_TIME,
                    "duration": str(DEFAULT_DURATION), "timezone": _default_zone(),
                    "capacity": str(DEFAULT_CAPACITY)}
        d, s = self.detail, self.detail.summary
        values = {"name": s.name, "description": d.description, "language": s.language,
                  "meetings": ", ".join(m.date for m in d.meetings),
                  "meeting-time": s.meeting_time, "duration": str(s.duration_min),
                  "timezone": s.timezone,
                  "capacity": str(s.signup_limit) if s.signup_limit else "",
                  "question": d.signup_question or "",
                  "facilitators": ", ".join(node_id_text(p.node_id) for p in s.facilitators
                                            if p.node_id != self.me)}
        for widget_id, path, _, kind in (f for f in FIELDS if isinstance(f, tuple)):
            if path.startswith(("course.", "venue.")):
                value = _get_path({"course": d.course, "venue": d.venue}, path)
                if kind == "list":
                    value = ", ".join(value or [])
                elif kind == "geo" and value:
                    value = f"{value[0]}, {value[1]}"
                values[widget_id] = value if kind in ("bool", "format", "licence") else (
                    "" if value is None else str(value))
        return values

    def compose(self) -> ComposeResult:
        values = self.initial()
        for field in FIELDS:
            if isinstance(field, str):
                yield Static(field, classes="form-section")
                continue
            widget_id, _, label, kind = field
            if self.detail is None and widget_id == "meetings":
                continue
            if self.detail is not None and widget_id in ("start", "weeks"):
                continue
            value = values.get(widget_id)
            if kind == "bool":
                yield Checkbox(label, bool(value), id=widget_id)
            else:
                yield Label(label)
                if kind == "area":
                    yield TextArea(value or "", id=widget_id)
                elif kind in ("format", "licence"):
                    choices = FORMATS if kind == "format" else LICENCES
                    yield Select([(c, c) for c in choices], value=value or Select.NULL,
                                 allow_blank=kind == "licence", id=widget_id, compact=True)
                else:
                    yield Input(value or "", id=widget_id, compact=True)
            if widget_id in FIELD_HINTS:
                yield Static(FIELD_HINTS[widget_id], classes="field-hint")
            yield Static(id=f"{widget_id}-error", classes="field-error -empty")

    def on_mount(self) -> None:
        self._by_id = {w.id: w for w in self.query("*") if w.id}

    def _widget(self, widget_id: str) -> Any:
        if not self._by_id:
            self.on_mount()
        return self._by_id.get(widget_id)

    # -- reading -----------------------------------------------------------------------------
    def _value(self, widget_id: str) -> Any:
        widget = self._widget(widget_id)
        if isinstance(widget, Checkbox):
            return widget.value
        if isinstance(widget, Select):
            return None if widget.value is Select.NULL else widget.value
        return (widget.text if isinstance(widget, TextArea) else widget.value).strip()

    def _meetings(self, form_errors: dict[str, str]) -> Any:
        if self.detail is not None:
            return sorted({d.strip() for d in self._value("meetings").split(",") if d.strip()})
        start, weeks = self._value("start"), _int_or_text(self._value("weeks"))
        if not isinstance(weeks, int) or not 1 <= weeks <= MAX_MEETINGS:
            form_errors["weeks"] = f"must be a whole number 1-{MAX_MEETINGS}"
            weeks = 1
        try:
            return meeting_dates(dt.date.fromisoformat(start), weeks)
        except ValueError:
            return [start]  # the validator names what is wrong with it

    def read(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The circle record and the errors of conversions the validator cannot see."""
        form_errors: dict[str, str] = {}
        record: dict[str, Any] = {"course": {}, "venue": {}}
        for field in FIELDS:
            if not isinstance(field, tuple):
                continue
            widget_id, path, _, kind = field
            if path in ("meetings", "facilitators") or self._widget(widget_id) is None:
                continue
            value = self._value(widget_id)
            if kind == "int":
                value = _int_or_text(value) if value != "" else None
            elif kind == "list":
                value = [t.strip() for t in value.split(",") if t.strip()]
            elif kind == "geo" and value:
                parts = [p.strip() for p in value.split(",")]
                try:
                    value = [float(p) for p in parts]
                except ValueError:
                    value = parts
            if value == "" and path not in ("name", "description", "language",
                                            "meeting_time", "timezone", "course.title",
                                            "course.language", "venue.name", "venue.city"):
                value = None
            _set_path(record, path, value)
        record["meetings"] = self._meetings(form_errors)
        others = []
        for text in [t.strip() for t in self._value("facilitators").split(",") if t.strip()]:
            try:
                others.append(parse_id(text, "co-facilitator"))
            except Exception as exc:
                form_errors["facilitators"] = str(exc)
        record["facilitators"] = [self.me, *[o for o in others if o != self.me]]
        return record, form_errors

    def errors(self) -> dict[str, str]:
        """widget id -> message, for every field that is wrong."""
        record, form_errors = self.read()
        by_widget = dict(form_errors)
        for path, message in protocol_errors(record).items():
            widget_id = _WIDGET_FOR_PATH.get(path, "name")
            if path == "meetings":
                widget_id = "meetings" if self.detail is not None else "start"
            by_widget.setdefault(widget_id, message)
        return by_widget

    def changes(self, original: dict[str, Any]) -> dict[str, Any]:
        """For an edit: the fields that differ from `original` (nil removes limit/question)."""
        record, _ = self.read()
        changed: dict[str, Any] = {}
        for key in set(record) | set(original):
            if key in ("signup_limit", "signup_question") and key not in record:
                if original.get(key):
                    changed[key] = None
            elif record.get(key) != original.get(key) and key in record:
                changed[key] = record[key]
        return changed

    # -- showing errors ----------------------------------------------------------------------
    def show_errors(self) -> dict[str, str]:
        errors = self.errors()
        for field in FIELDS:
            if not isinstance(field, tuple) or self._widget(f"{field[0]}-error") is None:
                continue
            widget_id = field[0]
            shown = errors.get(widget_id) if (self.show_all or widget_id in self.touched) \
                else None
            box = self._widget(f"{widget_id}-error")
            text = f"↳ {shown}" if shown else ""
            if getattr(box, "shown_text", "") != text:  # repaint only what changed
                box.shown_text = text
                box.update(text)
                box.set_class(not shown, "-empty")
        return errors

    @on(Input.Changed)
    @on(TextArea.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _edited(self, event: Any) -> None:
        widget = getattr(event, "control", None) or getattr(event, "text_area", None)
        if widget is not None and widget.id and widget.has_focus:
            self.touched.add(widget.id)
        if self.touched or self.show_all:
            self.show_errors()
