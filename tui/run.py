"""Start a node on a home and run the app on it in the same event loop; stop the node when the
app closes. Used by `p2pnode` (no command), `p2pnode tui` and `make run`.

The log goes to the home's `node.log`, never to the terminal the app draws on.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
from pathlib import Path
from typing import Any

from p2pnode import config
from p2pnode.home import Home
from p2pnode.node import Node

log = logging.getLogger(__name__)


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


async def run_app(home: Path, **node_options: Any) -> None:
    """Start the node (raising HomeError when another process serves the home), run the app
    until the learner quits, then close the node."""
    from tui.app import P2PApp

    node = Node(home, **node_options)
    await node.start()
    try:
        await P2PApp(node).run_async()
    finally:
        await node.close()


def main(home: Path, *, verbose: bool = False, **node_options: Any) -> None:
    Home.open(home, create=True).close()  # create the home before logging into it
    configure_logging(home, verbose)
    asyncio.run(run_app(home, **node_options))
