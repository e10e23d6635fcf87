"""bench/idle.py measures what it claims: an idle node next to a polling one and the floor."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))

import idle


def test_idle_bench_compares_an_idle_node_with_a_polling_one() -> None:
    """Over a short run the polling baseline wakes at least 10 times a second (it is the old
    watch), the shipped node about once, the bare loop hardly at all; CLI writes still arrive."""
    result = idle.measure(3.0)
    assert result["polling"]["wakeups_per_s"] >= 10
    assert result["shipped"]["wakeups_per_s"] <= 3
    assert result["floor"]["wakeups_per_s"] <= 1
    assert max(result["cli_write_ms"]) < 1000
