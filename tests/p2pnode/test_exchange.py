"""Tests for p2pnode/exchange.py: export files (sneakernet) and importing them as strictly as
entries from the wire."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import msgpack
import pytest
from builders import (
    NOW_MS,
    Feed,
    circle_body,
    forged_chain,
    identity_from_seed,
    join_body,
    profile_body,
    rsvp_body,
)

from p2pnode.errors import InvalidInput, NodeError, StorageError
from p2pnode.store import exchange, queries
from p2pnode.store.database import Store
from p2pnode.store.exchange import FORMAT, VERSION, export_entries, import_entries
from protocol.codec import pack
from protocol.feed import authenticate_run

ANA = identity_from_seed("exchange ana")
BEN = identity_from_seed("exchange ben")
EVE = identity_from_seed("exchange eve")
FILE_HEADER = pack({"format": FORMAT, "version": VERSION})


def community() -> list:
    """Two authors: Ana announces a circle, Ben joins and RSVPs."""
    ana, ben = Feed(ANA), Feed(BEN)
    ana.add("profile", profile_body("Ana"))
    circle = ana.add("circle", circle_body([ANA.node_id], description="Short."))
    ben.add("profile", profile_body("Ben"))
    ben.add("join", join_body(circle.id, "Ben"))
    ben.add("rsvp", rsvp_body(circle.id))
    return ana.entries + ben.entries


@pytest.fixture
def source(tmp_path) -> Store:
    with Store(tmp_path / "source.sqlite3") as store:
        assert not store.ingest(community(), now_ms=NOW_MS).rejected
        yield store


@pytest.fixture
def exported(tmp_path, source) -> Path:
    path = tmp_path / "circles.p2pu"
    assert export_entries(source, path) == 5
    return path


def write_file(path: Path, *objects: bytes) -> Path:
    path.write_bytes(b"".join(objects))
    return path


def snapshot(store: Store):
    """Everything a user sees of the circles, for comparing two stores."""
    circles = queries.list_circles(store.conn, now_ms=NOW_MS, include_past=True)
    return circles, [queries.get_circle(store.conn, c.id, now_ms=NOW_MS) for c in circles]


def test_export_then_import_into_a_fresh_home_reproduces_the_circles(tmp_path, source, exported):
    """A fresh store that imports the file holds the same entries and shows the same circles."""
    with Store(tmp_path / "fresh.sqlite3") as fresh:
        report = import_entries(fresh, exported, now_ms=NOW_MS)
        assert (report.new, report.known, report.rejected, report.truncated) == (5, 0, 0, None)
        assert list(fresh.iter_all_entries()) == list(source.iter_all_entries())
        assert snapshot(fresh) == snapshot(source)
        assert snapshot(fresh)[1][0].summary.seats_taken == 1


def test_import_is_idempotent(tmp_path, exported):
    """Importing the same file twice adds nothing the second time: all entries are known."""
    with Store(tmp_path / "fresh.sqlite3") as fresh:
        import_entries(fresh, exported, now_ms=NOW_MS)
        again = import_entries(fresh, exported, now_ms=NOW_MS)
        assert (again.new, again.known, again.rejected) == (0, 5, 0)
        assert fresh.entry_count() == 5


def test_the_file_is_the_documented_stream(exported, source):
    """The file is a header map followed by each entry's wire form, author by author in seq
    order."""
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(exported.read_bytes())
    objects = list(unpacker)
    assert objects[0] == {"format": "p2pnode-export", "version": 1}
    assert objects[1:] == [e.wire() for e in source.iter_all_entries()]
    authors = [e[0] for e in objects[1:]]
    assert authors == sorted(authors)


def test_export_keeps_deleted_bodies_deleted(tmp_path):
    """Body-less entries are exported and imported without a body; the chain still verifies."""
    entries = community()
    bare = [entries[0], entries[1].without_body()]
    with Store(tmp_path / "a.sqlite3") as store, Store(tmp_path / "b.sqlite3") as other:
        store.ingest(bare, now_ms=NOW_MS)
        export_entries(store, tmp_path / "f")
        import_entries(other, tmp_path / "f", now_ms=NOW_MS)
        kept = other.feed_entries(ANA.node_id)
        assert kept[1].body_bytes is None and authenticate_run(kept) == [True, True]


def test_export_leaves_no_temporary_files_and_fails_cleanly(tmp_path, source):
    """Export writes atomically: no stray temp file; an unwritable target is a NodeError."""
    out = tmp_path / "out"
    out.mkdir()
    export_entries(source, out / "file")
    export_entries(source, out / "file")  # replacing an existing export
    assert [p.name for p in out.iterdir()] == ["file"]
    with pytest.raises(NodeError):
        export_entries(source, tmp_path / "missing-dir" / "file")


def test_import_reports_new_known_and_rejected_with_reasons(tmp_path, source):
    """A file mixing known, new, forged and malformed entries reports each count, gives a
    reason per rejection, and keeps the good entries of every author."""
    known = list(source.iter_all_entries())[:2]
    eve = Feed(EVE)
    eve.fill(2)
    forged = forged_chain(BEN.node_id, 2)
    path = write_file(
        tmp_path / "mixed",
        FILE_HEADER,
        *(e.encode() for e in known),
        *(e.encode() for e in eve.entries),
        pack([b"not a header", b"x", None]),
        pack(42),
        *(e.encode() for e in forged),
    )
    with Store(tmp_path / "target.sqlite3") as target:
        target.ingest(known, now_ms=NOW_MS)
        report = import_entries(target, path, now_ms=NOW_MS)
        assert (report.new, report.known, report.rejected) == (2, 2, 4)
        assert report.truncated is None
        text = "\n".join(report.reasons)
        assert "entry 5:" in text and "entry 6:" in text
        assert text.count("signature does not verify") == 2
        assert target.feed_entries(EVE.node_id) == eve.entries
        stored = {e.id for e in target.iter_all_entries()}
        assert stored == {e.id for e in known + eve.entries}  # nothing forged got in


def test_import_calls_back_with_each_batch_of_new_entries(tmp_path, exported):
    """on_batch receives exactly the newly accepted entries (the node pushes them to peers)."""
    seen = []
    with Store(tmp_path / "t.sqlite3") as target:
        import_entries(target, exported, now_ms=NOW_MS, on_batch=seen.append)
        import_entries(target, exported, now_ms=NOW_MS, on_batch=seen.append)
    assert [len(batch) for batch in seen] == [5]


def test_a_feed_longer_than_one_batch_imports_whole(tmp_path):
    """A feed split across import batches still links: every entry arrives."""
    feed = Feed(ANA, NOW_MS - 10_000_000)
    for n in range(2101):
        feed.add("x.test", {"n": n}, at_ms=NOW_MS - 10_000_000 + n)
    path = write_file(tmp_path / "long", FILE_HEADER, *(e.encode() for e in feed.entries))
    with Store(tmp_path / "t.sqlite3") as target:
        report = import_entries(target, path, now_ms=NOW_MS)
        assert (report.new, report.rejected) == (2101, 0)
        assert target.head(ANA.node_id).id == feed.entries[-1].id


def test_a_truncated_file_imports_what_is_whole_and_says_so(tmp_path, exported):
    """Cutting the file inside its last entry keeps the entries before it and reports the
    truncation."""
    data = exported.read_bytes()
    cut = write_file(tmp_path / "cut", data[:-10])
    with Store(tmp_path / "t.sqlite3") as target:
        report = import_entries(target, cut, now_ms=NOW_MS)
        assert report.truncated is not None and "truncated after entry 4" in report.truncated
        assert report.new == 4 and target.entry_count() == 4


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"hello, this is a text file\n",
        pack({"format": "something-else", "version": 1}),
        pack([1, 2, 3]),
        b"\xc1",
        msgpack.packb(msgpack.ExtType(1, b"x")),
    ],
    ids=["empty", "text", "other-format", "array", "invalid-msgpack", "ext"],
)
def test_a_file_that_is_not_an_export_is_refused_clearly(tmp_path, content):
    """Anything but a p2pnode export is refused with an error naming the file; nothing is
    stored."""
    path = write_file(tmp_path / "not-export", content)
    with Store(tmp_path / "t.sqlite3") as target:
        with pytest.raises(InvalidInput, match="is not a p2pnode export file"):
            import_entries(target, path, now_ms=NOW_MS)
        assert target.entry_count() == 0


def test_an_export_of_another_version_is_refused(tmp_path):
    """A future export version is named in the refusal."""
    path = write_file(tmp_path / "v2", pack({"format": FORMAT, "version": 2}))
    with Store(tmp_path / "t.sqlite3") as target, pytest.raises(InvalidInput, match="version 2"):
        import_entries(target, path, now_ms=NOW_MS)


def test_a_missing_file_is_a_clear_error(tmp_path):
    """A path that does not exist is InvalidInput, not an OSError."""
    with Store(tmp_path / "t.sqlite3") as target, pytest.raises(InvalidInput, match="cannot read"):
        import_entries(target, tmp_path / "nope", now_ms=NOW_MS)


def test_no_single_tampered_byte_imports_a_false_entry(tmp_path, exported):
    """For every other byte position of a small export (with one of several XOR masks), import
    never crashes and never stores an entry, or a body, that the original file did not hold."""
    data = exported.read_bytes()
    with Store(tmp_path / "truth.sqlite3") as reference:
        import_entries(reference, exported, now_ms=NOW_MS)
        truth = {e.id: e.body_bytes for e in reference.iter_all_entries()}
    template = tmp_path / "template.sqlite3"
    Store(template).close()
    # every other byte (~780 positions) keeps this under 3 s; the masks rotate along the file
    positions = [*range(0, len(data), 2), len(data) - 1]
    assert len(positions) >= 200
    outcomes = {"refused": 0, "partial": 0, "whole": 0}
    for position in positions:
        mutated = bytearray(data)
        mutated[position] ^= (0x01, 0x80, 0xFF, 0x10)[position // 2 % 4]
        path = write_file(tmp_path / "tampered", bytes(mutated))
        db = tmp_path / "t.sqlite3"
        shutil.copyfile(template, db)
        with Store(db) as target:
            try:
                report = import_entries(target, path, now_ms=NOW_MS)
            except InvalidInput:
                assert position < len(FILE_HEADER), position
                outcomes["refused"] += 1
                continue
            stored = list(target.iter_all_entries())
            for entry in stored:
                assert entry.id in truth, position
                assert entry.body_bytes in (None, truth[entry.id]), position
            for author in {e.author for e in stored}:
                assert all(authenticate_run(target.feed_entries(author))), position
            assert report.new == len(stored)
            outcomes["whole" if len(stored) == len(truth) else "partial"] += 1
    assert outcomes["partial"] > len(positions) // 2  # most damage costs entries: it is caught


def test_an_import_that_fails_part_way_raises_and_leaves_no_reader_behind(
    tmp_path, exported, monkeypatch
):
    """When storing fails after a batch, the import raises StorageError and its reader stops."""
    monkeypatch.setattr(exchange, "_BATCH", 1)  # five batches: the reader runs ahead
    target = Store(tmp_path / "target.sqlite3")
    stored: list[int] = []

    def close_after_first(entries) -> None:
        stored.append(len(entries))
        target.close()  # the next batch cannot be written

    with pytest.raises(StorageError):
        import_entries(target, exported, now_ms=NOW_MS, on_batch=close_after_first)
    assert stored == [1]
    assert not [t for t in threading.enumerate() if t.name == "p2pnode-import-read"]
