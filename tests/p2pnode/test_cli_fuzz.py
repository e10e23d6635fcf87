"""Property tests of the CLI's argument handling: whatever a person types — any text, text that
is not UTF-8 (a Latin-1 terminal: argv decoded with surrogateescape), any date — `p2pnode`
answers with exit 0, 1 or 2 and at most one line on stderr, never a traceback.

Commands run in-process (`main([...])`) against one home per test with a profile and a circle,
writing to a strict UTF-8 stdout like a real terminal's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pnode.cli.main import main

TODAY = dt.date.today()

FUZZ = settings(max_examples=int(os.environ.get("P2PNODE_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _not_utf8(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


#: What argv can hold: any text but NUL, including undecodable bytes from a Latin-1 terminal.
typed = st.one_of(
    st.text(max_size=40),
    st.binary(min_size=1, max_size=20).map(_not_utf8),
    st.sampled_from(["", " ", "-", "--", "-1", "0", "99999999999999999999", "1e9", "nan",
                     "9999-12-31", "0001-01-01", "2027-02-30", "24:00", "23:59", "é", "🐍",
                     "Café\xe9".encode("latin-1").decode("utf-8", "surrogateescape")]),
).map(lambda s: s.replace("\x00", ""))

dates = st.one_of(
    st.dates().map(dt.date.isoformat),
    st.dates(min_value=TODAY - dt.timedelta(days=30),
             max_value=TODAY + dt.timedelta(days=400)).map(dt.date.isoformat),
    typed,
)


class Terminal:
    """`p2pnode` run in-process with strict UTF-8 stdout and stderr like a UTF-8 terminal's
    (stderr with Python's usual backslashreplace)."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def __call__(self, *args: str) -> tuple[int, str, str]:
        out_bytes, err_bytes = io.BytesIO(), io.BytesIO()
        out = io.TextIOWrapper(out_bytes, encoding="utf-8", errors="strict")
        err = io.TextIOWrapper(err_bytes, encoding="utf-8", errors="backslashreplace")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(["--home", str(self.home), *args])
            except SystemExit as exc:
                code = exc.code
            out.flush()
            err.flush()
        return code, out_bytes.getvalue().decode(), err_bytes.getvalue().decode()

    def check(self, *args: str) -> tuple[int, str, str]:
        """Run and assert the property: a known exit code, one stderr line, no traceback."""
        code, out, err = self(*args)
        assert code in (0, 1, 2), (args, code, err)
        assert "Traceback" not in err and "internal error" not in err, (args, err)
        if code != 0:
            assert err.count("\n") <= 1 and err.startswith("p2pnode: "), (args, err)
        return code, out, err


@pytest.fixture(scope="module")
def terminal(tmp_path_factory) -> Terminal:
    """A home with a profile and one upcoming circle; returns the runner."""
    run = Terminal(tmp_path_factory.mktemp("fuzz") / "home")
    assert run("init", "--name", "Ana")[0] == 0
    code, out, err = run("circle", "announce", "--name", "Base", "--description", "d",
                         "--course-title", "c", "--venue", "v", "--city", "x", "--time",
                         "18:00", "--language", "en", "--timezone", "Europe/Paris", "--start",
                         (TODAY + dt.timedelta(days=3)).isoformat())
    assert code == 0, err
    run.circle = out.strip()
    return run


@FUZZ
@given(field=st.sampled_from(["--name", "--description", "--course-title", "--venue", "--city",
                              "--time", "--language", "--timezone", "--country", "--question",
                              "--course-url", "--topic", "--address", "--capacity",
                              "--duration", "--weeks", "--facilitator", "--meeting"]),
       value=typed)
def test_announce_with_any_value_in_any_field(terminal, field, value):
    """Any text in any announce option is accepted or refused in one line."""
    base = {"--name": "N", "--description": "d", "--course-title": "c", "--venue": "v",
            "--city": "x", "--time": "18:00", "--language": "en", "--timezone": "UTC",
            "--start": (TODAY + dt.timedelta(days=5)).isoformat()}
    base[field] = value
    terminal.check("circle", "announce", *[a for pair in base.items() for a in pair])


@FUZZ
@given(start=dates, weeks=st.one_of(st.integers(-3, 60).map(str), typed), meeting=dates)
def test_announce_and_update_with_any_dates(terminal, start, weeks, meeting):
    """Any start date, week count or meeting date (year 1 to 9999, or not a date at all) is
    accepted or refused in one line, on announce and on update."""
    base = ["--name", "N", "--description", "d", "--course-title", "c", "--venue", "v",
            "--city", "x", "--time", "18:00", "--language", "en", "--timezone", "UTC"]
    terminal.check("circle", "announce", *base, "--start", start, "--weeks", weeks)
    terminal.check("circle", "announce", *base, "--meeting", meeting)
    terminal.check("circle", "update", terminal.circle, "--start", start, "--weeks", weeks)
    terminal.check("circle", "update", terminal.circle, "--meeting", meeting)


@FUZZ
@given(value=typed, when=dates)
def test_every_command_with_any_text(terminal, value, when):
    """Every local command, given any text where a person types something, answers in one
    line; listings and views of what it wrote print without a traceback."""
    circle = terminal.circle
    for args in (
        ["profile", "--name", value], ["profile", "--name", "Ana", "--bio", value],
        ["circles", "--search", value], ["circles", "--weekday", value],
        ["circles", "--language", value, "--topic", value], ["circle", "show", value],
        ["join", value, "--name", "B"], ["join", circle, "--name", value, "--goal", value],
        ["rsvp", circle, "--date", when], ["rsvp", circle, "--number", value],
        ["meeting", "add", circle, "--date", when, "--plus", value],
        ["feedback", circle, "--rating", "4", "--text", value], ["accept", value],
        ["leave", value], ["delete", value], ["circle", "cancel", value, "--reason", value],
        ["resources", "--circle", value], ["joins", value], [value], ["circle", value],
        ["circle", "update", circle, "--description", value],
    ):
        terminal.check(*args)
    terminal.check("circles", "--all")
    terminal.check("circle", "show", circle)
    terminal.check("joins", circle)


@FUZZ
@given(name=typed)
def test_file_names_in_any_encoding(terminal, name, tmp_path_factory):
    """A file name in any encoding can be shared, exported to and imported from, or is refused
    in one line."""
    name = name.replace("/", "_").strip() or "x"
    if name in (".", ".."):
        name = "x"
    folder = tmp_path_factory.mktemp("files")
    path = Path(os.fsdecode(folder)) / name
    with contextlib.suppress(OSError):
        path.write_bytes(b"course notes\n")
    terminal.check("share", str(path))
    terminal.check("resources")
    target = folder / f"out-{name}"
    terminal.check("export", str(target))
    terminal.check("import", str(target))
    terminal.check("circle", "ics", terminal.circle, "-o", str(folder / f"c-{name}.ics"))


def test_a_latin1_name_is_refused_in_one_line_naming_the_option(terminal):
    """`--name` typed in a Latin-1 terminal is refused naming --name and UTF-8, not a crash."""
    latin1 = "José".encode("latin-1").decode("utf-8", "surrogateescape")
    code, _, err = terminal.check("profile", "--name", latin1)
    assert code == 1 and "--name" in err and "UTF-8" in err


def test_a_start_in_year_9999_is_one_line(terminal):
    """A start date whose weeks run past year 9999 is refused naming --start."""
    code, _, err = terminal.check("circle", "announce", "--name", "N", "--description", "d",
                                  "--course-title", "c", "--venue", "v", "--city", "x",
                                  "--time", "18:00", "--language", "en", "--start",
                                  "9999-12-30")
    assert code == 1 and "--start" in err


def test_an_unexpected_error_goes_to_the_log_not_the_screen(terminal, monkeypatch):
    """A bug shows one line pointing at node.log, and the traceback lands in node.log."""
    import p2pnode.cli.circles as circles

    def broken(*args, **kwargs):
        raise RuntimeError("a bug\nover two lines")

    monkeypatch.setattr(circles.queries, "list_circles", broken)
    code, _, err = terminal("circles")
    assert code == 1 and err.count("\n") == 1, err
    assert "internal error" in err and "node.log" in err and "Traceback" not in err
    log = (terminal.home / "node.log").read_text()
    assert "Traceback" in log and "RuntimeError: a bug" in log

