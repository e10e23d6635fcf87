"""bench/app_speed.py measures what it claims: a home whose searches narrow, every typed key
timed to its result in the app and in the bare DataTable."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))

import app_speed

from p2pnode.node import Node


def test_the_bench_home_lists_every_circle_and_each_typed_word_narrows_it(tmp_path):
    """Every built circle is upcoming and listed; each word typed finds some circles but not
    all (so typing narrows the table), and its first letter alone finds at least as many."""
    app_speed.build_home(tmp_path / "home", 200, authors=10)

    async def look() -> tuple[int, dict[str, tuple[int, int]]]:
        node = Node(tmp_path / "home", port=0, host="127.0.0.1", mdns=False, control=False)
        await node.start()
        try:
            listed = len(await node.circles(limit=1000))
            found = {word: (len(await node.circles(search=word[0], limit=1000)),
                            len(await node.circles(search=word, limit=1000)))
                     for word in app_speed.TYPED}
            return listed, found
        finally:
            await node.close()

    listed, found = asyncio.run(look())
    assert listed == 200
    for word, (first_letter, whole) in found.items():
        assert 0 < whole < 200, word
        assert first_letter >= whole, word


def test_the_bench_times_every_key_in_both_apps():
    """A small run: a first paint and one latency per key typed or erased, for the app and for
    the bare DataTable, each a positive time under the bench's own timeout."""
    keys = sum(2 * len(word) for word in app_speed.TYPED)
    result = app_speed.measure(200)
    assert 0 < result["paint"] < 30 and 0 < result["bare_paint"] < 30
    assert len(result["keys"]) == len(result["bare_keys"]) == keys
    assert all(0 < t < 30 for t in result["keys"] + result["bare_keys"])
