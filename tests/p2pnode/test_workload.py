"""Tests for bench/workload.py: the benchmark traffic has the mix it declares, and every entry of
it is valid and changes the derived tables as real traffic would (so a benchmark can never again
silently measure a degenerate workload)."""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))

from workload import _BASE_MS, KIND_WEIGHTS, make_feeds

from p2pnode.store import queries
from p2pnode.store.database import Store
from protocol.records import validate_record

_AUTHORS = 40
_TOTAL = 6000
#: largest allowed gap between a kind's share and its declared share (percentage points)
_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def feeds():
    return make_feeds(_AUTHORS, _TOTAL)


@pytest.fixture(scope="module")
def flat(feeds):
    return [entry for feed in feeds for entry in feed]


def test_kind_mix_matches_the_declared_weights(flat):
    """Each kind's share of the workload is within two points of its declared weight."""
    assert len(flat) == _TOTAL
    counts = collections.Counter(entry.kind for entry in flat)
    weight_sum = sum(KIND_WEIGHTS.values())
    assert set(counts) == set(KIND_WEIGHTS)
    for kind, weight in KIND_WEIGHTS.items():
        share = counts[kind] / _TOTAL
        assert abs(share - weight / weight_sum) <= _TOLERANCE, (kind, share, weight / weight_sum)


def test_every_entry_validates(flat):
    """Every generated body passes the record schema of its kind."""
    for entry in flat:
        validate_record(entry.kind, entry.body())


def test_a_store_accepts_everything_and_derives_it(flat, tmp_path: Path):
    """A real store ingests the whole workload and every kind lands in its derived table."""
    counts = collections.Counter(entry.kind for entry in flat)
    now_ms = _BASE_MS + (_TOTAL + 3600) * 1000
    with Store(tmp_path / "store.sqlite3") as store:
        report = store.ingest(flat, now_ms=now_ms)
        assert report.rejected == []
        assert len(report.accepted) == _TOTAL
        conn = store.conn

        def rows(table: str) -> int:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

        assert rows("profiles") == _AUTHORS
        assert rows("circles") == counts["circle"]
        assert rows("circle_changes") == counts["circle.update"]
        assert rows("joins") == counts["join"]
        assert rows("join_accepts") == counts["join.accept"]
        assert rows("rsvps") == counts["rsvp"]
        assert rows("meeting_notes") == counts["meeting.note"]
        assert rows("feedback") == counts["feedback"]
        assert rows("resources") == counts["resource"]
        # updates are by the circle's author, so they take effect
        changed = conn.execute(
            "SELECT count(DISTINCT circle) FROM circle_changes c JOIN circles k"
            " ON k.id = c.circle WHERE k.updated_ms > k.created_ms"
        ).fetchone()[0]
        assert changed == conn.execute(
            "SELECT count(DISTINCT circle) FROM circle_changes").fetchone()[0] > 0
        # notes are by a facilitator and accepts name real joins, so both show in the views
        noted = conn.execute("SELECT circle FROM meeting_notes LIMIT 1").fetchone()[0]
        detail = queries.get_circle(conn, noted, now_ms=now_ms)
        assert detail is not None and any(m.notes for m in detail.meetings)
        accepted = conn.execute(
            "SELECT circle FROM join_accepts WHERE accepted = 1 LIMIT 1").fetchone()[0]
        detail = queries.get_circle(conn, accepted, now_ms=now_ms)
        assert detail is not None
        assert any(p.status == "accepted" for p in detail.participants)
