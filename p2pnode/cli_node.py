"""CLI commands that need the network: run the node, and talk to a running one."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_commands(sub: Any, command: Callable[..., argparse.ArgumentParser],
                 json_flag: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register `run`, `status`, `peers`, `doctor`, `share`, `resources`, `fetch`."""
