"""The CLI fitting people's habits: files never overwritten unasked and `-` for standard output,
usage errors (exit 2) that name the option typed and suggest the command meant, `--version`,
`--home` anywhere, help that marks what is required, time zones named in listings and read from
any form of `TZ`, and listings that fit 80 columns whatever the names hold.

Commands run in-process through `p2pnode.cli.main` against temporary homes.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.cells import cell_len

from p2pnode.cli.main import main
from p2pnode.home import Home

TODAY = dt.date.today()
START = TODAY + dt.timedelta(days=9)
BASE = ["--description", "Weekly study group", "--course-title", "Python for Everybody",
        "--venue", "Central Library, Room 2", "--city", "Cape Town", "--time", "18:30",
        "--language", "en", "--timezone", "Africa/Johannesburg", "--start", START.isoformat()]


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def p2p(capsys):
    """`p2pnode ARGS...` in-process; `home=` puts `--home HOME` first."""

    def run(*args: str, home: Path | None = None) -> Run:
        capsys.readouterr()
        try:
            code = main([*(["--home", str(home)] if home else []), *args])
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


@pytest.fixture
def ana(tmp_path, p2p) -> Path:
    home = tmp_path / "ana"
    assert p2p("init", "--name", "Ana", home=home).code == 0
    return home


@pytest.fixture
def circle(ana, p2p) -> str:
    result = p2p("circle", "announce", "--name", "Python for Everybody", *BASE, home=ana)
    assert result.code == 0, result.err
    return result.out.strip()


def one_line(result: Run, code: int, *fragments: str) -> None:
    assert result.code == code, result
    assert result.err.count("\n") == 1 and result.err.startswith("p2pnode: "), result.err
    for fragment in fragments:
        assert fragment in result.err, result.err


# -- 9: files ---------------------------------------------------------------------------------
def test_export_and_ics_never_overwrite_without_force(ana, circle, p2p, tmp_path):
    """An existing file is left byte for byte as it was unless --force is given."""
    for args in (["export"], ["circle", "ics", circle, "-o"]):
        target = tmp_path / f"{args[0]}.out"
        target.write_bytes(b"my own notes")
        one_line(p2p(*args, str(target), home=ana), 1, "exists", "--force")
        assert target.read_bytes() == b"my own notes"
        assert p2p(*args, str(target), "--force", home=ana).code == 0
        assert target.read_bytes() != b"my own notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ana", "circle.out", "export.out"]


def test_dash_means_standard_output(tmp_path, capsysbinary, monkeypatch):
    """`export -` and `circle ics ID -o -` write the data to stdout and their message to
    stderr, and leave no file named '-'."""
    monkeypatch.chdir(tmp_path)
    home = str(tmp_path / "ana")
    assert main(["--home", home, "init", "--name", "Ana"]) == 0
    assert main(["--home", home, "circle", "announce", "--name", "N", *BASE]) == 0
    circle = capsysbinary.readouterr().out.decode().split()[-1]
    assert main(["--home", home, "circle", "ics", circle, "-o", "-"]) == 0
    out, err = capsysbinary.readouterr()
    assert out.startswith(b"BEGIN:VCALENDAR") and b"to standard output" in err
    assert main(["--home", home, "export", "-"]) == 0
    stick = tmp_path / "stick"
    stick.write_bytes(capsysbinary.readouterr().out)
    other = tmp_path / "other"
    assert main(["--home", str(other), "import", str(stick)]) == 0
    with Home.open(other) as opened:
        assert opened.store.entry_count() == 2
    assert not (tmp_path / "-").exists()


# -- 12: usage errors -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["circle", "announce"], ["missing --name", "--start"]),
        (["rsvp", "abcd"], ["--number", "--date"]),
        (["meeting", "add", "abcd", "--plus", "good"], ["--number", "--date"]),
        (["circles", "--serch", "x"], ["--serch", "did you mean '--search'"]),
        (["circle", "announce", "--capacity", "many"], ["--capacity", "many"]),
    ],
    ids=lambda a: " ".join(a) if isinstance(a, list) and a and a[0] != "missing --name" else "",
)
def test_usage_errors_exit_2_in_one_line(ana, p2p, args, fragments):
    """A command line that misses or mistypes an option exits 2 with one line naming it."""
    one_line(p2p(*args, home=ana), 2, *fragments)


@pytest.mark.parametrize(
    ("flag", "value", "option"),
    [("--time", "25:00", "--time"), ("--capacity", "0", "--capacity"),
     ("--duration", "5", "--duration"), ("--country", "ZZZ", "--country"),
     ("--course-url", "ftp://x.org/", "--course-url"), ("--topic", "", "--topic")],
)
def test_field_errors_name_the_option_typed(ana, p2p, flag, value, option):
    """A refused value names the option the user typed, never the record's field name."""
    result = p2p("circle", "announce", "--name", "N", *BASE, flag, value, home=ana)
    one_line(result, 1, f"{option}:")
    for field in ("meeting_time", "signup_limit", "duration_min", "venue.", "course."):
        assert field not in result.err


# -- 13: version, --home anywhere, did you mean, help ----------------------------------------
def test_version(p2p):
    """`--version` prints the installed version and exits 0."""
    from importlib.metadata import version

    result = p2p("--version")
    assert result.code == 0 and result.out.strip() == f"p2pnode {version('p2pnode')}"


def test_home_before_or_after_the_command(ana, circle, p2p, monkeypatch, tmp_path):
    """`--home DIR` works before the command, after it, and after a sub-action."""
    monkeypatch.setenv("P2PNODE_HOME", str(tmp_path / "elsewhere"))
    for args in (["--home", str(ana), "circles", "--json"],
                 ["circles", "--home", str(ana), "--json"],
                 ["circle", "show", circle, "--home", str(ana), "--json"]):
        result = p2p(*args)
        assert result.code == 0, (args, result.err)
    assert not (tmp_path / "elsewhere").exists()


def test_a_mistyped_command_gets_a_suggestion(ana, p2p):
    """`circels` and `circle anounce` suggest `circles` and `announce`, in one line, exit 2."""
    one_line(p2p("circels", home=ana), 2, "unknown command 'circels'", "did you mean 'circles'")
    one_line(p2p("circle", "anounce", home=ana), 2, "did you mean 'announce'")


def test_help_marks_required_options_and_shows_an_example(p2p):
    """`circle announce --help` marks the required options and ends with a worked example."""
    result = p2p("circle", "announce", "--help")
    assert result.code == 0
    chunks = [" ".join(chunk.split()) for chunk in re.split(r"\n  (?=-)", result.out)]
    lines = {chunk.split()[0]: chunk for chunk in chunks[1:]}
    for option in ("--name", "--description", "--course-title", "--venue", "--city", "--time",
                   "--language"):
        assert lines[option].endswith("(required)"), lines[option]
    assert lines["--start"].endswith("(required, or --meeting)")
    assert not lines["--capacity"].endswith("(required)")
    assert "example:\n  p2pnode circle announce --name" in result.out
    join = [" ".join(c.split()) for c in re.split(r"\n  (?=-)", p2p("join", "--help").out)]
    assert next(c for c in join if c.startswith("--name")).endswith("(required)")


# -- 15: time zones ---------------------------------------------------------------------------
@pytest.fixture
def tz(monkeypatch):
    """Set TZ for this process (and the C library) for one test."""

    def set_tz(value: str) -> None:
        monkeypatch.setenv("TZ", value)
        time.tzset()

    yield set_tz
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("value", [":/usr/share/zoneinfo/Europe/Paris",
                                   "/usr/share/zoneinfo/Europe/Paris", ":Europe/Paris",
                                   "Europe/Paris"])
def test_tz_as_a_zoneinfo_path_is_read_as_its_zone(ana, p2p, tz, value):
    """A circle announced without --timezone takes the zone TZ names, in any of its forms."""
    if value.startswith((":/", "/")) and not Path(value.lstrip(":")).exists():
        pytest.skip("no system zoneinfo here")
    tz(value)
    args = [a for a in BASE if a not in ("--timezone", "Africa/Johannesburg")]
    result = p2p("circle", "announce", "--name", "N", *args, "--json", home=ana)
    assert result.code == 0, result.err
    assert json.loads(result.out)["summary"]["timezone"] == "Europe/Paris"


def test_an_unknown_tz_is_reported_as_the_tz_variable(ana, p2p, tz):
    """TZ naming no zone is reported as "your TZ variable is …", not as a field."""
    tz("Nowhere/Atlantis")
    args = [a for a in BASE if a not in ("--timezone", "Africa/Johannesburg")]
    result = p2p("circle", "announce", "--name", "N", *args, home=ana)
    one_line(result, 1, "your TZ variable is 'Nowhere/Atlantis'", "--timezone")
    assert "timezone:" not in result.err


def test_listings_name_the_circles_zone_and_the_viewers_time(ana, circle, p2p, tz):
    """`circles` and `circle show` name the circle's zone; a viewer elsewhere sees their own
    time beside it, and one in the same zone does not."""
    tz("America/Sao_Paulo")  # 5 hours behind Johannesburg, no DST since 2019
    listing = p2p("circles", home=ana).out
    assert "18:30 Africa/Johannesburg (13:30 your time)" in listing
    assert "18:30 Africa/Johannesburg (13:30 your time)" in p2p("circle", "show", circle,
                                                               home=ana).out
    tz("Africa/Johannesburg")
    listing = p2p("circles", home=ana).out
    assert "18:30 Africa/Johannesburg" in listing and "your time" not in listing


# -- 16: listings -----------------------------------------------------------------------------
def test_listings_fit_80_columns_with_wide_characters(ana, p2p):
    """Long names and emoji are cut with an ellipsis so no listed line is wider than 80 cells."""
    wide = "🐍 学习小组 " * 20
    result = p2p("circle", "announce", "--name", wide[:120], *BASE, "--venue", wide[:200],
                 home=ana)
    assert result.code == 0, result.err
    lines = p2p("circles", home=ana).out.splitlines()
    assert lines and all(cell_len(line) <= 80 for line in lines), lines
    assert "…" in lines[0] and lines[0].endswith("[upcoming]") and "seats 0" in lines[2]


def test_an_ended_circle_reads_ended(ana, p2p):
    """A circle whose meetings are over reads "ended DATE" in `circles --all`, not "next"."""
    first = TODAY - dt.timedelta(days=1)
    args = [a for a in BASE if a != START.isoformat()]
    start_at = args.index("--start")
    args[start_at:start_at + 1] = []
    result = p2p("circle", "announce", "--name", "Short", *args, "--meeting",
                 first.isoformat(), home=ana)
    if result.code != 0:
        pytest.skip(f"a start in the past is refused here: {result.err}")
    lines = p2p("circles", "--all", home=ana).out
    assert f"ended {first.isoformat()}" in lines and "next" not in lines

