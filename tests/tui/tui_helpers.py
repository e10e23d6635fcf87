"""Helpers the app's tests share: waiting for the app to settle, what it told the learner, and
two connected real nodes with a circle."""

from __future__ import annotations

import datetime as dt
import html
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from builders import NOW_MS, circle_body
from textual.notifications import Notify
from textual.pilot import Pilot
from textual.widgets import DataTable

from p2pnode import actions
from p2pnode.node import Node
from tui.app import P2PApp
from tui.screens.circles import CirclesScreen

SMALL, LARGE = (80, 24), (160, 50)

#: workers that run as long as the app does
_LONG_LIVED = frozenset({"events"})


async def settle(pilot: Pilot, timeout: float = 10.0) -> None:
    """Let the app's short workers finish and the screen repaint (bounded)."""
    deadline = time.monotonic() + timeout
    quiet_rounds = 0
    while time.monotonic() < deadline and quiet_rounds < 3:
        await pilot.pause(0.02)
        busy = [w for w in pilot.app.workers
                if w.group not in _LONG_LIVED and not w.is_finished]
        # a DataTable sizes its columns to new rows on a later idle: under load that can come
        # after a key that opens a dialog over it (seen: a snapshot with header-wide columns)
        sizing = [t for t in pilot.app.screen_stack[-1].query(DataTable)
                  if t._require_update_dimensions]
        for screen in pilot.app.screen_stack[:-1]:
            sizing += [t for t in screen.query(DataTable) if t._require_update_dimensions]
        # a circles load posts its rows as a message: the table shows them a moment later
        loading = [s for s in pilot.app.screen_stack
                   if isinstance(s, CirclesScreen) and s.shown_query != s.query_now]
        # a worker that finished may have posted its result to a screen that has not taken it
        # yet (seen: the detail's meetings posted, the RSVP dialog captured over an unsized
        # table)
        pending = [s for s in pilot.app.screen_stack
                   if not s._message_queue.empty() or getattr(s, "showing", False)]
        quiet_rounds = 0 if busy or sizing or loading or pending else quiet_rounds + 1
    await pilot.pause()


async def wait_for(pilot: Pilot, condition: Callable[[], object], rounds: int = 300) -> None:
    """Settle until `condition()` holds (bounded: about 15 s or more, then it fails)."""
    for _ in range(rounds):
        if condition():
            return
        await settle(pilot, timeout=2)
        await pilot.pause(0.05)
    raise AssertionError(f"the app never got there: {pilot.app.screen!r}")


def notifications(app: Any) -> list[str]:
    """What the app has told the learner so far (title and text of each notification)."""
    return [f"{m.notification.title}: {m.notification.message}" for m in app.posted
            if isinstance(m, Notify)]



def days_from_today(days: int) -> str:
    return (dt.date.today() + dt.timedelta(days=days)).isoformat()


def days_ago_ms(days: int) -> int:
    """A clock `days` before now, for records written back then (a circle that began long
    ago was announced before it began: the announce window refuses it otherwise)."""
    return int((time.time() - days * 86400) * 1000)


async def two_nodes(nodes, eventually, *, start_in_days: int = 7, **circle: object):
    """Ben facilitates a circle; my node is connected to his and has it."""
    ben = await nodes.start("ben")
    await ben.perform(actions.set_profile, "Ben")
    entry = await ben.perform(actions.announce_circle, circle_body(
        [], name="Python for Everybody", start=days_from_today(start_in_days),
        signup_question="Have you programmed before?", **circle),
        at_ms=days_ago_ms(-start_in_days + 1) if start_in_days < 0 else None)
    me = await nodes.start("me", peers=[ben])
    await me.perform(actions.set_profile, "Ana")
    await eventually(lambda: me.circle(entry.id), timeout=10)
    await eventually(lambda: ben.peers.open_connections(), timeout=10)
    return ben, me, entry.id


class FixedApp(P2PApp):
    """The app owning a loopback node on `home`, started and closed in the app's own loop."""

    def __init__(self, home: Path, *, peers: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(Node(home, port=0, host="127.0.0.1", mdns=False, control=False,
                              peers=peers), clock=lambda: NOW_MS / 1000, **kwargs)

    async def on_load(self) -> None:
        await self.node.start()

    async def on_unmount(self) -> None:
        await self.node.close()


def screen_text(app: Any) -> str:
    """What the screen shows, as plain lines (from the app's own SVG screenshot)."""
    rows: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>',
                         app.export_screenshot()):
        rows.setdefault(float(m.group(2)), []).append((float(m.group(1)),
                                                        html.unescape(m.group(3))))
    lines = []
    for y in sorted(rows):
        line = ""
        for x, text in sorted(rows[y]):
            line = line.ljust(round(x / 12.2)) + text
        lines.append(line.replace("\xa0", " ").rstrip())
    return "\n".join(lines)
