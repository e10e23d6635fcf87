"""The circle listing walks circles soonest first and stops at its limit (circles_by_start),
on new databases and on ones written before the index existed."""

from __future__ import annotations

import sqlite3

from builders import NOW_MS, circle_body, identity_from_seed

from p2pnode.store import queries
from p2pnode.store.database import Store
from p2pnode.store.schema import SCHEMA_VERSION

ANA = identity_from_seed("listing ana")


def _plan(conn: sqlite3.Connection) -> str:
    sql = ("SELECT c.id FROM circles c WHERE c.end_date >= ? AND c.cancelled = 0"
           " ORDER BY c.start_date LIMIT 100")
    return " ".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql, ("",)))


def test_a_listing_uses_the_start_date_index_instead_of_sorting_every_circle(tmp_path):
    """The soonest-first listing scans circles_by_start (no temporary sort of all circles)."""
    with Store(tmp_path / "s.sqlite3") as store:
        plan = _plan(store.conn)
    assert "circles_by_start" in plan and "TEMP B-TREE" not in plan


def test_a_database_from_before_the_index_gains_it_and_keeps_its_circles(tmp_path):
    """Opening a schema-1 database (no circles_by_start) adds the index and lists the same."""
    path = tmp_path / "s.sqlite3"
    with Store(path) as store:
        entry = store.append(ANA, "circle", circle_body([ANA.node_id], start="2027-03-01"),
                             now_ms=NOW_MS)
    old = sqlite3.connect(path)
    old.execute("DROP INDEX circles_by_start")
    old.execute("PRAGMA user_version = 1")
    old.close()
    with Store(path) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert "circles_by_start" in _plan(store.conn)
        listed = queries.list_circles(store.conn, now_ms=NOW_MS)
    assert [c.id for c in listed] == [entry.id]
