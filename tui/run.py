"""Run the app on a home: attached to the node that already serves it, or on a node of its own.
Used by `p2pnode` (no command), `p2pnode tui` and `make run`.

- When a `p2pnode run` (or another app) serves the home — its lock is held and its control.json
  names the control API — the app attaches through `RemoteNode`; quitting leaves that node
  running. The node options do not apply then, except `--peer`, which is passed on.
- Otherwise a `Node` starts in this process, in the app's event loop, and stops when the app
  closes.

The app sees either through `p2pnode.api.NodeAPI` only. The log goes to the home's `node.log`,
never to the terminal the app draws on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
import time
from pathlib import Path
from typing import Any

from p2pnode import config
from p2pnode.errors import NotRunning
from p2pnode.home import Home
from p2pnode.net.remote import RemoteNode, control_endpoint
from p2pnode.node import Node, node_running

log = logging.getLogger(__name__)
#: how long a starting node may hold the home before its control.json appears
_CONTROL_FILE_WAIT = 3.0


def configure_logging(home: Path, verbose: bool) -> None:
    """Log to HOME/node.log only: the terminal belongs to the app."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for handler in list(root.handlers):
        if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler):
            root.removeHandler(handler)
    handler = logging.handlers.RotatingFileHandler(home / config.LOG_FILE, maxBytes=2_000_000,
                                                   backupCount=3)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)


async def open_node(home: Path, **node_options: Any) -> Node | RemoteNode:
    """The node serving `home`, attached when one runs already, else started here.

    Raises:
        HomeError: another process holds the home but serves no control API.
        NotRunning: the node serving the home does not answer.
    """
    if node_running(home) and await _control_endpoint_soon(home):
        remote = RemoteNode(home)
        await remote.start()
        log.info("attached to the node serving %s (control port %s)", home, remote.port)
        for address in node_options.get("peers") or []:
            remote.add_peer(address)
        return remote
    node = Node(home, **node_options)
    await node.start()  # HomeError when another process holds the home without a control API
    return node


async def _control_endpoint_soon(home: Path) -> bool:
    """Whether the node holding `home` serves a control API: a node that is starting takes the
    lock a moment before it writes control.json, so wait for that moment (bounded)."""
    deadline = time.monotonic() + _CONTROL_FILE_WAIT
    while control_endpoint(home) is None:
        if time.monotonic() > deadline or not node_running(home):
            return False
        await asyncio.sleep(0.05)
    return True


async def run_app(home: Path, **node_options: Any) -> int:
    """Open the node (see `open_node`), run the app until the learner quits, then close the
    node, or only the connection to it when attached. Returns the app's exit status.

    Raises:
        NotRunning: the node the app was attached to stopped (the app closes with it).
    """
    from tui.app import P2PApp

    node = await open_node(home, **node_options)
    app = P2PApp(node)
    watcher = None
    if isinstance(node, RemoteNode):
        remote = node

        async def close_when_lost() -> None:
            await remote.lost.wait()
            app.exit(return_code=1)

        watcher = asyncio.create_task(close_when_lost(), name="attached-node-watch")
    try:
        await app.run_async()
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await node.close()
    if isinstance(node, RemoteNode) and node.lost.is_set():
        raise NotRunning(f"the node serving {home} stopped; the app closed with it")
    return app.return_code or 0


def main(home: Path, *, verbose: bool = False, **node_options: Any) -> int:
    """Run the app on `home` (see `run_app`); returns the exit status."""
    Home.open(home, create=True).close()  # create the home before logging into it
    configure_logging(home, verbose)
    return asyncio.run(run_app(home, **node_options))
