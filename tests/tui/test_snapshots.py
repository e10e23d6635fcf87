"""Snapshots of every screen with fixed data (seeded keys, fixed timestamps, the node's clock
at 2027-01-01) at 80x24 and 160x50. A failing snapshot is a change to review in
`snapshot_report.html`, not to regenerate blindly (`--snapshot-update` only after reading it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from scenes import ME_SEED, meeting_day, network, seeded_home, shared_files
from textual.pilot import Pilot
from textual.widgets import Input
from tui_helpers import LARGE, SMALL, FixedApp, settle

from p2pnode import actions
from p2pnode.home import Home
from p2pnode.store import inbox
from tui.screens.circles import CirclesScreen

SIZES = pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x50"])


def home_with(tmp_path: Path, *, circles: bool = True, name: str | None = "Ana",
              notices_seen: bool = True) -> tuple[Path, dict[str, bytes]]:
    home = seeded_home(tmp_path / "me", ME_SEED)
    ids: dict[str, bytes] = {}
    if circles:
        ids = network(home, my_name=name)
    elif name:
        with Home.open(home) as opened:
            actions.set_profile(opened, name, at_ms=1_790_000_000_000)
    with Home.open(home) as opened:
        if name:
            inbox.set_preference(opened.store, "tui.welcomed", "1")
        if notices_seen:
            inbox.take_notices(opened.store, opened.identity.node_id)
    return home, ids


def steps(*keys: str, then: Callable[[Pilot], Awaitable[None] | None] | None = None):
    """Settle, press `keys` (settling after each), run `then`, settle."""

    async def run(pilot: Pilot) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        if then is not None:
            result = then(pilot)
            if result is not None:
                await result
            await settle(pilot)

    return run


def open_circle(circle_id: bytes, *keys: str):
    async def run(pilot: Pilot) -> None:
        await settle(pilot)
        pilot.app.open_circle(circle_id)
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run


@SIZES
def test_circles(snap_compare, tmp_path, fixed_clock, size):
    """The list: mine marked, the forked author flagged, soonest first."""
    home, _ = home_with(tmp_path)
    assert snap_compare(FixedApp(home), terminal_size=size, run_before=steps())


@SIZES
def test_circles_searching(snap_compare, tmp_path, fixed_clock, size):
    """Search as you type, with a filter set."""
    home, _ = home_with(tmp_path)

    async def search(pilot: Pilot) -> None:
        screen = pilot.app.screen
        assert isinstance(screen, CirclesScreen)
        screen.query_one("#status").value = "any"
        await settle(pilot)
        await pilot.press("slash", *"pyth")

    assert snap_compare(FixedApp(home), terminal_size=size, run_before=steps(then=search))


@SIZES
def test_empty_network(snap_compare, tmp_path, fixed_clock, size):
    """No circles: how peers are looked for, how to add one, how to announce."""
    home, _ = home_with(tmp_path, circles=False)
    assert snap_compare(FixedApp(home), terminal_size=size, run_before=steps())


@SIZES
def test_welcome(snap_compare, tmp_path, fixed_clock, size):
    """The first start on a new home."""
    home, _ = home_with(tmp_path, circles=False, name=None)
    assert snap_compare(FixedApp(home), terminal_size=size, run_before=steps())


@SIZES
def test_detail_as_learner(snap_compare, tmp_path, fixed_clock, size):
    """A circle I joined: schedule with the next meeting marked, my RSVP counted."""
    home, ids = home_with(tmp_path)
    assert snap_compare(FixedApp(home), terminal_size=size,
                        run_before=open_circle(ids["python"]))


@SIZES
def test_detail_as_facilitator(snap_compare, tmp_path, fixed_clock, size):
    """A circle I facilitate: names of who signed up, facilitator actions."""
    home, ids = home_with(tmp_path)
    assert snap_compare(FixedApp(home), terminal_size=size,
                        run_before=open_circle(ids["data"]))


@SIZES
def test_signups(snap_compare, tmp_path, fixed_clock, size):
    """Sign-ups with their sealed details opened for the facilitator."""
    home, ids = home_with(tmp_path)
    assert snap_compare(FixedApp(home), terminal_size=size,
                        run_before=open_circle(ids["data"], "s"))


@SIZES
def test_join_form(snap_compare, tmp_path, fixed_clock, size):
    """Joining says what is sealed and asks the circle's question."""
    home, ids = home_with(tmp_path, name="Ana")
    with Home.open(home) as opened:
        actions.leave_circle(opened, ids["python"], at_ms=1_790_000_000_000)
        inbox.take_notices(opened.store, opened.identity.node_id)
    assert snap_compare(FixedApp(home), terminal_size=size,
                        run_before=open_circle(ids["python"], "j"))


@SIZES
def test_announce_form(snap_compare, tmp_path, fixed_clock, size):
    """The empty form with its defaults."""
    home, _ = home_with(tmp_path)
    assert snap_compare(FixedApp(home), terminal_size=size, run_before=steps("a"))


@SIZES
def test_announce_form_with_errors(snap_compare, tmp_path, fixed_clock, size):
    """Publishing an incomplete form: the validator's messages under the fields."""
    home, _ = home_with(tmp_path)

    def wrong_time(pilot: Pilot) -> None:
        pilot.app.screen.query_one("#meeting-time", Input).value = "25:00"

    async def publish(pilot: Pilot) -> None:
        await pilot.press("ctrl+s")

    async def both(pilot: Pilot) -> None:
        wrong_time(pilot)
        await settle(pilot)
        await publish(pilot)

    assert snap_compare(FixedApp(home), terminal_size=size, run_before=steps("a", then=both))


@SIZES
def test_help(snap_compare, tmp_path, fixed_clock, size):
    """`?`: the keys."""
    home, _ = home_with(tmp_path)
    assert snap_compare(FixedApp(home), terminal_size=size, run_before=steps("question_mark"))


@SIZES
def test_notices_while_away(snap_compare, tmp_path, fixed_clock, size):
    """A sign-up that came while the app was closed: the toast, then the list (n)."""
    home, _ = home_with(tmp_path, notices_seen=False)
    assert snap_compare(FixedApp(home), terminal_size=size, run_before=steps("n"))


DIALOGS = {
    "rsvp": ("python", "r"), "feedback": ("stats", "b"), "note": ("data", "n"),
    "cancel": ("data", "x"), "edit": ("data", "e"),
}


@SIZES
@pytest.mark.parametrize("dialog", sorted(DIALOGS))
def test_circle_dialogs(snap_compare, tmp_path, fixed_clock, size, dialog):
    """RSVP, feedback (an ended circle), meeting note, cancel, and the edit form."""
    home, ids = home_with(tmp_path)
    circle, key = DIALOGS[dialog]
    assert snap_compare(FixedApp(home), terminal_size=size,
                        run_before=open_circle(ids[circle], key))


@SIZES
def test_add_peer(snap_compare, tmp_path, fixed_clock, size):
    """Adding a peer by address."""
    home, _ = home_with(tmp_path)
    assert snap_compare(FixedApp(home), terminal_size=size, run_before=steps("p"))


def meeting_home(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    home, _ = home_with(tmp_path)
    ids = meeting_day(home)
    with Home.open(home) as opened:
        inbox.take_notices(opened.store, opened.identity.node_id)
    return home, ids


@SIZES
def test_meeting_mode(snap_compare, tmp_path, fixed_clock, size):
    """A meeting under way, resumed: coursework 25 minutes in, the phase big, attendance
    against the RSVPs (one ticked), a plus typed."""
    home, ids = meeting_home(tmp_path)

    async def quiet(pilot: Pilot) -> None:
        pilot.app.clear_notifications()  # "resumed where you left off"

    async def run(pilot: Pilot) -> None:
        await open_circle(ids["web"], "m")(pilot)
        await quiet(pilot)
        await settle(pilot)

    assert snap_compare(FixedApp(home), terminal_size=size, run_before=run)


@SIZES
def test_detail_on_a_meeting_day(snap_compare, tmp_path, fixed_clock, size):
    """A learner's circle that meets today: the meeting's phases with their times, and what
    was said last time."""
    home, ids = meeting_home(tmp_path)
    assert snap_compare(FixedApp(home), terminal_size=size,
                        run_before=open_circle(ids["chess"]))



# -- part 2: resources, peers, me ------------------------------------------------------------
def home_with_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The network plus shared files; HOME is tmp_path, so paths show as ``~/…`` every run."""
    monkeypatch.setenv("HOME", str(tmp_path))
    home, ids = home_with(tmp_path)
    shared_files(home, ids, tmp_path / "files")
    return home


@SIZES
def test_resources(snap_compare, tmp_path, fixed_clock, size, monkeypatch):
    """Every shared file: size, held here or not, holders, format, licence, circle, who."""
    home = home_with_files(tmp_path, monkeypatch)
    assert snap_compare(FixedApp(home), terminal_size=size, run_before=steps("2"))


@SIZES
def test_resources_filtered(snap_compare, tmp_path, fixed_clock, size, monkeypatch):
    """Narrowed by text (and the circle choice offered beside it)."""
    home = home_with_files(tmp_path, monkeypatch)

    async def search(pilot: Pilot) -> None:
        await pilot.press("slash", *"week")

    assert snap_compare(FixedApp(home), terminal_size=size, run_before=steps("2", then=search))


@SIZES
def test_share_form(snap_compare, tmp_path, fixed_clock, size, monkeypatch):
    """Sharing: the path with completion, the directory tree, title, circle, licence."""
    home = home_with_files(tmp_path, monkeypatch)

    def fill(pilot: Pilot) -> None:
        pilot.app.screen.query_one("#path", Input).value = "~/files/slides.pdf"

    assert snap_compare(FixedApp(home), terminal_size=size,
                        run_before=steps("2", "s", then=fill))


@SIZES
def test_peers(snap_compare, tmp_path, fixed_clock, size):
    """No peer connected, and a manual peer nobody answers at, with why in plain words."""
    home, _ = home_with(tmp_path)

    async def failed(pilot: Pilot) -> None:
        for _ in range(100):
            if (await pilot.app.node.peers_info()):
                break
            await pilot.pause(0.05)
        pilot.app.screen.reload()

    assert snap_compare(FixedApp(home, peers=["127.0.0.1:1"]), terminal_size=size,
                        run_before=steps("3", then=failed))


@SIZES
def test_me(snap_compare, tmp_path, fixed_clock, size, monkeypatch):
    """Name, fingerprint and id in full, the network, the home, export and import."""
    monkeypatch.setenv("HOME", str(tmp_path))
    home, _ = home_with(tmp_path)
    assert snap_compare(FixedApp(home), terminal_size=size, run_before=steps("4"))
