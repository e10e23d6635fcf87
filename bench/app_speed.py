"""The app on a home holding 10 000 circles: time from launch to the first painted table, and
per-keystroke search latency (median, p95), each next to a bare Textual `DataTable` holding the
same rows in the same run.

Targets: first paint < 1 s; keystroke p95 < 50 ms. The machine's load moves every figure; the
ratio to the bare DataTable of the same run is what compares across runs.

- launch: `P2PApp` on a started node (the node's start is shown apart), until the circle table
  holds its rows and the screen has been painted; the baseline is an app whose only widget is a
  `DataTable` given the same rows at mount.
- keystroke: a key handed to the app's driver (as a terminal would deliver it, 20 keys a second)
  until the first paint showing that query's result: the search box's own repaint, the node's
  full-text search in its store thread, the table's `show()`, the screen's next frame. Nothing
  is debounced or skipped; a key whose result equals the rows already shown (typing "pyt" after
  "py" on this home) counts until the moment the screen has that result, since there is
  nothing left to paint. The baseline filters the 10 000 rows in memory by substring and
  refills a bare `DataTable` (clear + add_row) with as many rows as the app shows at most.
- "painted" is the moment the app hands a screen update to its driver (headless here, so the
  terminal's own drawing is left out, for both).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tui  # noqa: F401, I001  (first, as on a user's launch: it sets the app's frame rate)
from textual import constants, events
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Input

from p2pnode import actions
from p2pnode.home import Home
from p2pnode.node import Node
from protocol.entry import create_entry
from protocol.identity import Identity
from protocol.records import meeting_dates
from tui.app import P2PApp
from tui.screens.circles import ROW_LIMIT, CirclesScreen
from tui.widgets.circle_table import COLUMNS, circle_row

TOPICS = ("python", "data", "writing", "music", "mathematics", "biology", "history", "spanish",
          "design", "finance", "cooking", "gardening", "chemistry", "poetry", "robotics",
          "statistics", "marketing", "photography", "philosophy", "economics")
CITIES = ("Cape Town", "Nairobi", "Lagos", "Accra", "Kampala", "Durban", "Kigali", "Lusaka")
WORDS = ("Intro to", "Advanced", "Practical", "Weekend", "Evening", "Beginners'", "Community")
#: what is typed, letter by letter (then erased), for the keystroke figures
TYPED = ("python", "garden", "nairobi", "phil")


def build_home(path: Path, circles: int, authors: int = 100) -> None:
    """A home whose store holds `circles` upcoming circles from `authors` authors."""
    rng = random.Random(7)
    today = dt.date.today()
    now_ms = int(time.time() * 1000)
    with Home.open(path, create=True) as home:
        actions.set_profile(home, "Bench")
        entries = []
        per_author = circles // authors
        for a in range(authors):
            identity = Identity.from_private_bytes(hashlib.sha256(f"tui bench {a}".encode())
                                                   .digest())
            prev = None
            for n in range(per_author):
                topic = rng.choice(TOPICS)
                start = today + dt.timedelta(days=rng.randrange(1, 300))
                body = {
                    "name": f"{rng.choice(WORDS)} {topic} {a}-{n}",
                    "description": f"We meet weekly to study {topic} together.",
                    "course": {"title": f"{topic.title()} course", "format": "course",
                               "topics": [topic], "language": "en"},
                    "venue": {"name": "Public library", "city": rng.choice(CITIES),
                              "online": False},
                    "language": "en", "timezone": "Africa/Johannesburg",
                    "meeting_time": "18:00", "duration_min": 90,
                    "meetings": meeting_dates(start, 6), "signup_limit": 15,
                    "facilitators": [identity.node_id],
                }
                entry = create_entry(identity, seq=n + 1, prev=prev,
                                     timestamp_ms=now_ms - 3600_000 + n, kind="circle", body=body)
                prev = entry.id
                entries.append(entry)
        report = home.store.ingest(entries, now_ms=now_ms)
        assert len(report.accepted) == len(entries), report.rejected[:3]


class BareTable(App[None]):
    """The baseline: one DataTable and a search box, nothing else."""

    def __init__(self, rows: list[tuple[str, ...]]) -> None:
        super().__init__()
        self.all_rows = rows
        self.shown_search: str | None = None

    def compose(self) -> ComposeResult:
        yield Input(id="search")
        yield DataTable(id="table")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        self.fill("")

    def fill(self, text: str) -> None:
        table = self.query_one(DataTable)
        table.clear()
        needle = text.lower()
        shown = 0
        for row in self.all_rows:
            if needle in " ".join(row).lower():
                table.add_row(*row)
                shown += 1
                if shown >= ROW_LIMIT:
                    break
        self.shown_search = text

    def on_input_changed(self, event: Input.Changed) -> None:
        self.fill(event.value)


async def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("the app did not get there in time")
        await asyncio.sleep(0.0005)


def count_frames(app: App) -> list[float]:
    """Times at which the app hands a screen update to its driver (a paint)."""
    frames: list[float] = []
    display = app._display

    def timed(screen, renderable) -> None:
        display(screen, renderable)
        if renderable is not None:
            frames.append(time.perf_counter())

    app._display = timed  # type: ignore[method-assign]
    return frames


async def painted_after(frames: list[float], moment: float) -> float:
    """The time of the first paint after `moment`."""
    await wait_until(lambda: frames and frames[-1] >= moment)
    return next(t for t in frames if t >= moment)


def refresh_pending(app: App) -> bool:
    """Whether the screen still has something to paint (a widget marked for repaint or
    layout, or a message on its way to the screen)."""
    screen = app.screen
    if (screen._dirty_widgets or screen._layout_required or screen._repaint_required
            or screen._scroll_required or not screen._message_queue.empty()):
        return True
    return any(w._repaint_required or w._layout_required for w in screen.walk_children())


async def result_on_screen(app: App, frames: list[float], moment: float) -> float:
    """When what the app decided at `moment` is on screen: the first paint after it, or
    `moment` itself when nothing needed painting (a result equal to the one shown)."""
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        if frames and frames[-1] >= moment:
            return next(t for t in frames if t >= moment)
        if not refresh_pending(app):
            return moment
        await asyncio.sleep(0.0005)
    raise TimeoutError("the app did not paint in time")


async def type_and_time(app: App, frames: list[float], shown) -> list[float]:
    """Type each word of TYPED and erase it, one key at a time as a terminal delivers them;
    seconds from each key to the first paint showing its result."""
    latencies = []
    text = ""
    keys = []
    for word in TYPED:
        keys += list(word) + ["backspace"] * len(word)
    for key in keys:
        text = text[:-1] if key == "backspace" else text + key
        event = events.Key(key, None if key == "backspace" else key)
        event.set_sender(app)
        start = time.perf_counter()
        app._driver.send_message(event)
        await wait_until(lambda t=text: shown() == t)
        latencies.append(await result_on_screen(app, frames, time.perf_counter()) - start)
        await asyncio.sleep(0.05)  # a fast typist: 20 keys a second
    return latencies


async def run_app(home: Path) -> tuple[float, float, list[float]]:
    start = time.perf_counter()
    node = Node(home, port=0, host="127.0.0.1", mdns=False, control=False)
    await node.start()
    node_start = time.perf_counter() - start
    try:
        app = P2PApp(node, welcome=False)
        frames = count_frames(app)
        launched = time.perf_counter()
        async with app.run_test(size=(160, 50)) as pilot:
            await wait_until(lambda: isinstance(app.screen, CirclesScreen)
                             and app.screen.shown_query is not None)
            first_paint = await painted_after(frames, time.perf_counter()) - launched
            screen = app.screen
            await pilot.press("slash")

            def shown() -> str | None:
                query = screen.shown_query
                return None if query is None else query.search
            latencies = await type_and_time(app, frames, shown)
    finally:
        await node.close()
    return node_start, first_paint, latencies


async def run_bare(all_rows: list[tuple[str, ...]]) -> tuple[float, list[float]]:
    app = BareTable(all_rows)
    frames = count_frames(app)
    launched = time.perf_counter()
    async with app.run_test(size=(160, 50)):
        await wait_until(lambda: app.shown_search is not None)
        first_paint = await painted_after(frames, time.perf_counter()) - launched
        app.query_one(Input).focus()
        latencies = await type_and_time(app, frames, lambda: app.shown_search)
    return first_paint, latencies


def figures(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p95 * 1000


def measure(circles: int) -> dict[str, Any]:
    """Both apps on one home of `circles` circles: seconds to the first painted table and
    per key, for the app and for the bare DataTable."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        build_home(home, circles)
        node_start, paint, keys = asyncio.run(run_app(home))
        node = Node(home, port=0, host="127.0.0.1", mdns=False, control=False)

        async def every_row() -> list[tuple[str, ...]]:
            await node.start()
            try:
                found = await node.circles(limit=circles)
                mine = await node.my_circles()
                return [circle_row(c, mine.get(c.id)) for c in found]
            finally:
                await node.close()
        all_rows = asyncio.run(every_row())
        bare_paint, bare_keys = asyncio.run(run_bare(all_rows))
    return {"node_start": node_start, "paint": paint, "keys": keys,
            "bare_paint": bare_paint, "bare_keys": bare_keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--circles", type=int, default=10_000)
    args = parser.parse_args()
    print(f"a home with {args.circles} circles, the app, then the bare DataTable…", flush=True)
    result = measure(args.circles)
    paint, bare_paint = result["paint"], result["bare_paint"]
    median, p95 = figures(result["keys"])
    bare_median, bare_p95 = figures(result["bare_keys"])
    print(f"node start: {result['node_start'] * 1000:.0f} ms (before the app launches); both apps"
          f" paint at most {constants.MAX_FPS} frames a second (TEXTUAL_FPS, set by tui)")
    print(f"first painted table: app {paint * 1000:.0f} ms, bare DataTable {bare_paint * 1000:.0f}"
          f" ms ({paint / bare_paint:.1f}x)   target < 1000 ms: "
          f"{'ok' if paint < 1 else 'MISSED'}")
    print(f"keystroke to result ({len(result['keys'])} keys): app median {median:.1f} ms, p95"
          f" {p95:.1f} ms; bare DataTable median {bare_median:.1f} ms, p95 {bare_p95:.1f} ms"
          f" (app/bare p95 {p95 / bare_p95:.2f})   target p95 < 50 ms:"
          f" {'ok' if p95 < 50 else 'MISSED'}")


if __name__ == "__main__":
    main()
