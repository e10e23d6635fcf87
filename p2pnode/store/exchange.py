"""Sneakernet: all entries to a file and back, for places without a network.

File format: a stream of msgpack objects — first the map
``{"format": "p2pnode-export", "version": 1}``, then each entry in its wire form
``[header_bytes, signature, body_bytes or nil]``, author by author in seq order.

Import reads the stream object by object in a thread that decodes up to `_READ_AHEAD` batches of
`_BATCH` entries ahead (memory stays bounded by those), while the caller feeds batches through
`Store.ingest`: the same decoding, chain authentication and validation as entries
from the wire, so a file with a tampered byte imports nothing false, and one bad entry does not
spoil the entries of other authors. Export writes to a temporary file and renames it into place:
an interrupted export leaves nothing half-written.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgpack

from p2pnode.errors import InvalidInput, NodeError
from p2pnode.files import fsync_directory
from p2pnode.store.database import Store
from protocol.codec import check_depth, pack, stream_unpacker
from protocol.entry import MAX_WIRE_SIZE, Entry, entry_from_parts
from protocol.errors import MalformedError, ProtocolError

FORMAT = "p2pnode-export"
VERSION = 1
_BATCH = 2000
#: batches decoded ahead of the one being stored (memory stays bounded by a few batches)
_READ_AHEAD = 2
_HANDOFF_POLL = 0.1
T = TypeVar("T")
_MAX_REASONS = 50


@dataclass
class ImportReport:
    new: int = 0
    known: int = 0
    rejected: int = 0
    #: up to _MAX_REASONS (position or entry id, reason) samples
    reasons: list[str] = field(default_factory=list)
    #: set when the file's framing broke and the rest could not be read
    truncated: str | None = None

    def note(self, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < _MAX_REASONS:
            self.reasons.append(reason)


def export_entries(store: Store, path: Path, *, replace: bool = True,
                   progress: Callable[[int], None] | None = None) -> int:
    """Write every entry in `store` to `path` (atomically). Returns the number written.

    Args:
        replace: whether an existing `path` may be replaced (False: it never is, even when
            it appears while the export runs).
        progress: called with the number of entries written so far, every `_BATCH` entries.

    Raises:
        NodeError: the file cannot be written (or exists, with `replace` False); nothing is
            left behind.
    """
    if not replace and os.path.lexists(path):
        raise InvalidInput(f"{path} already exists; choose another name")
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise NodeError(f"cannot write in {directory}: {exc.strerror}") from None
    count = 0
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pack({"format": FORMAT, "version": VERSION}))
            for entry in store.iter_all_entries():
                out.write(entry.encode())
                count += 1
                if progress is not None and count % _BATCH == 0:
                    progress(count)
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(tmp_name, path)
        else:
            os.link(tmp_name, path)  # fails, changing nothing, when the file exists by now
            os.unlink(tmp_name)
        fsync_directory(directory)
    except BaseException as exc:
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(exc, FileExistsError):
            raise InvalidInput(f"{path} already exists; choose another name") from None
        if isinstance(exc, OSError):
            raise NodeError(f"cannot write {path}: {exc.strerror}") from None
        raise
    return count


def import_entries(
    store: Store,
    path: Path,
    *,
    now_ms: int,
    on_batch: Callable[[list[Entry]], None] | None = None,
    progress: Callable[[int, int, ImportReport], None] | None = None,
) -> ImportReport:
    """Read an export file and ingest every valid entry in it.

    Args:
        on_batch: called with the entries newly accepted from each batch (the node pushes them).
        progress: called after each batch as ``progress(bytes_read, file_size, report_so_far)``.

    Raises:
        InvalidInput: the file cannot be opened or is not a p2pnode export at all.
    """
    report = ImportReport()
    try:
        handle = Path(path).open("rb")  # noqa: SIM115 - closed by the `with` below
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        unpacker = stream_unpacker(handle, max_object=MAX_WIRE_SIZE, max_items=1024)
        try:
            first = next(unpacker)
        except (StopIteration, ValueError, msgpack.UnpackException, MalformedError):
            raise InvalidInput(f"{path} is not a p2pnode export file") from None
        if not isinstance(first, dict) or first.get("format") != FORMAT:
            raise InvalidInput(f"{path} is not a p2pnode export file")
        if first.get("version") != VERSION:
            raise InvalidInput(f"{path} is export version {first.get('version')!r}; "
                               f"this node reads version {VERSION}")
        size = os.fstat(handle.fileno()).st_size
        for notes, batch, broken, position in _in_background(_read_batches(unpacker, handle)):
            for note in notes:
                report.note(note)
            if broken is not None:
                report.truncated = broken
            if batch:
                _ingest_batch(store, batch, now_ms, report, on_batch)
            if progress is not None:
                progress(min(position, size), size, report)
    return report


def _read_batches(
    unpacker: msgpack.Unpacker, handle: Any
) -> Iterator[tuple[list[str], list[Entry], str | None, int]]:
    """(notes on entries that did not decode, the next batch of decoded entries, why the rest
    of the file cannot be read or None, bytes of the file read so far), up to `_BATCH`
    entries at a time."""
    notes: list[str] = []
    batch: list[Entry] = []
    position = 0
    while True:
        try:
            obj = next(unpacker)
        except StopIteration:
            # msgpack stops quietly at the end of the data, even in the middle of an object
            leftover = os.fstat(handle.fileno()).st_size - unpacker.tell()
            broken = None
            if leftover > 0:
                broken = (f"the file is truncated after entry {position}: it ends with"
                          f" {leftover} bytes of an incomplete entry")
            yield notes, batch, broken, unpacker.tell()
            return
        except (ValueError, TypeError, msgpack.UnpackException, MalformedError) as exc:
            yield notes, batch, (f"the file is damaged after entry {position}; the rest cannot"
                                 f" be read ({type(exc).__name__})"), unpacker.tell()
            return
        position += 1
        try:
            check_depth(obj, "entry", 2)
            batch.append(entry_from_parts(obj))
        except ProtocolError as exc:
            notes.append(f"entry {position}: {exc}")
            continue
        if len(batch) >= _BATCH:
            yield notes, batch, None, unpacker.tell()
            notes, batch = [], []


def _in_background(items: Iterator[T]) -> Iterator[T]:
    """`items`, produced by a thread up to `_READ_AHEAD` ahead of the consumer: reading and
    decoding the next batch overlaps storing this one (SQLite releases the GIL as it works).
    The thread is stopped and joined when the consumer stops, however it stops."""
    handoff: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(_READ_AHEAD)
    stop = threading.Event()
    end = object()

    def put(item: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=_HANDOFF_POLL)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            put((end, exc))
            return
        put((end, None))

    thread = threading.Thread(target=produce, name="p2pnode-import-read")
    thread.start()
    try:
        while True:
            item, error = handoff.get()
            if item is end:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join()


def _ingest_batch(store, batch, now_ms, report, on_batch) -> None:
    result = store.ingest(batch, now_ms=now_ms)
    report.new += len(result.accepted)
    report.known += result.duplicates
    for entry, reason in result.rejected:
        report.note(f"entry {entry.id.hex()[:16]} (seq {entry.seq}): {reason}")
    if on_batch is not None and result.accepted:
        on_batch(result.accepted)
