"""Fixtures for the app's tests: real homes, real nodes on 127.0.0.1 (mDNS off, any port), the
app driven by Textual's Pilot in the same event loop as its node.

- `nodes`, `eventually` and `fast_redial` are the node tests' own (tests/p2pnode/conftest.py).
- `open_app(node)` runs `P2PApp` on a started node: ``async with open_app(node) as pilot``.
- `FixedApp` starts and closes its own node inside the app's loop, with the clock fixed to
  `builders.NOW_MS`: what `snap_compare` (which runs the app in a loop of its own) needs.
- `quiet` (autouse) removes what would make two runs differ: cursor blink, the host's time zone
  and language.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from builders import NOW_MS
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Input, TextArea
from tui_helpers import LARGE, settle

from p2pnode import node as node_module
from p2pnode.node import Node
from tui.app import P2PApp

_spec = importlib.util.spec_from_file_location(
    "p2pnode_node_fixtures", Path(__file__).parents[1] / "p2pnode" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_node_fixtures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _node_fixtures  # dataclasses look their module up there
_spec.loader.exec_module(_node_fixtures)
nodes = _node_fixtures.nodes
eventually = _node_fixtures.eventually
fast_redial = _node_fixtures.fast_redial
no_leaked_tasks = _node_fixtures.no_leaked_tasks
cli = _node_fixtures.cli
SESSION_LIMITS = _node_fixtures.SESSION_LIMITS



@pytest.fixture(autouse=True)
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """No cursor blink; the host's zone and language do not leak into forms."""
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
    monkeypatch.setattr(TextArea, "_toggle_cursor_blink_visible", lambda self: None,
                        raising=False)
    monkeypatch.setenv("TZ", "Africa/Johannesburg")
    monkeypatch.setenv("LANG", "en_ZA.UTF-8")
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> int:
    """The node's "now" (statuses, next meetings) is 2027-01-01T00:00Z."""
    monkeypatch.setattr(node_module, "_now_ms", lambda: NOW_MS)
    return NOW_MS


@pytest.fixture
def open_app() -> Callable[..., contextlib.AbstractAsyncContextManager[Pilot]]:
    """``async with open_app(node, size=(80, 24)) as pilot``: the app on a started node."""

    @contextlib.asynccontextmanager
    async def run(node: Node, size: tuple[int, int] = LARGE, **kwargs: Any
                  ) -> AsyncIterator[Pilot]:
        kwargs.setdefault("clock", lambda: NOW_MS / 1000)
        app = P2PApp(node, **kwargs)
        posted: list[Message] = []
        app.posted = posted  # type: ignore[attr-defined]
        async with app.run_test(size=size, notifications=True,
                                message_hook=posted.append) as pilot:
            await settle(pilot)
            yield pilot

    return run
