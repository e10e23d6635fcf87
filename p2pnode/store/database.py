"""The node's SQLite store: the entry log, feed heads, forks, and derived tables.

Rules it keeps:
- WAL mode, `synchronous=FULL`: a call that returns has committed durably (a killed process or a
  power cut after `append` returns loses nothing).
- `ingest` accepts only entries that decode, authenticate (chain-anchored, see `protocol.feed`),
  extend their author's feed, carry no future timestamp and whose body validates; it is
  idempotent, and it never half-applies a batch: all accepted entries of a call commit together.
- `append` signs the next entry of our own feed under the write lock (`BEGIN IMMEDIATE`), so two
  processes on one home can never give two entries the same seq.
- Bodies may be absent (deleted, expired, or received without one); headers never are, so the
  chains stay verifiable.
- A full disk is `DiskFull` ("the disk holding HOME is full (N MB free)"), never SQLite's
  follow-up errors; a home that cannot even be opened for writing on a full disk is opened
  read-only (SQLite's `immutable`, safe since no node can be writing it then), so reads work.

The store is synchronous and not thread-safe by itself; the node drives it from one worker thread.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2pnode.errors import DamagedDatabase, DiskFull, StorageError
from p2pnode.store import derive
from p2pnode.store.schema import DDL, SCHEMA_VERSION
from p2pnode.store.space import disk_full_error
from protocol.entry import Entry, create_entry, decode_body, stored_entry
from protocol.errors import ProtocolError
from protocol.feed import FeedHead, Verdict, authenticate_run, classify
from protocol.identity import Identity, fingerprint
from protocol.records import validate_authored, validate_record

#: joins, RSVPs and feedback of circles that ended longer ago than this lose their bodies
RETENTION_DAYS = 90
_PERSONAL_KINDS = ("join", "rsvp", "feedback")
_ID_QUERY_CHUNK = 500


@dataclass
class IngestReport:
    """What one `ingest` call did with its entries."""

    #: entries newly stored, in the order they were accepted
    accepted: list[Entry] = field(default_factory=list)
    #: entries already held (dropped before any verification)
    duplicates: int = 0
    #: (entry, reason) for entries refused
    rejected: list[tuple[Entry, str]] = field(default_factory=list)
    #: authors newly flagged as forked
    forked: list[bytes] = field(default_factory=list)
    #: author -> first missing seq, for entries that arrived ahead of their predecessors
    gaps: dict[bytes, int] = field(default_factory=dict)
    #: author -> seq of the entry that blocked its feed here (bad signature, fork, future
    #: timestamp or invalid body): asking for it again would only bring it back
    blocked: dict[bytes, int] = field(default_factory=dict)
    #: refusals that say something about the sender (a peer's score is lowered for them)
    bad_signatures: int = 0
    invalid: int = 0
    #: held entries whose missing body arrived and was filled in
    bodies_filled: int = 0
    #: those entries (with their bodies), to pass on to peers that may lack them too
    filled: list[Entry] = field(default_factory=list)


class Store:
    """One SQLite database file holding a node's view of every feed it has seen."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        #: set when the home could only be opened read-only, the disk being full
        self._read_only_because: DiskFull | None = None
        #: True when this open laid down the schema: the file was missing or empty
        self.created = False
        try:
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            # Only a new database needs the write lock here: read-only commands of a CLI must
            # not queue behind a busy node.
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            self.created = version == 0
            if version != SCHEMA_VERSION:
                if version > SCHEMA_VERSION:
                    raise StorageError(
                        f"{self.path} was written by a newer p2pnode (schema {version});"
                        " upgrade p2pnode to use it"
                    )
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.executescript(DDL)
                self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            full = self._disk_full(exc)
            self._close_quietly()
            if full is not None and self.path.exists():
                # the disk is full: SQLite could not even create its WAL index; reads still work
                self._conn = self._open_read_only(full)
            elif isinstance(exc, sqlite3.OperationalError) or not isinstance(
                    exc, sqlite3.DatabaseError):  # locked, unreadable: not damage
                raise StorageError(f"cannot open the database {self.path}: {exc}") from exc
            else:  # malformed, not a database
                raise DamagedDatabase(f"the database {self.path} is damaged: {exc}") from exc
        self._closed = False

    def _open_read_only(self, full: DiskFull) -> sqlite3.Connection:
        """Open for reading only: SQLite could not create its WAL index on the full disk."""
        try:
            conn = sqlite3.connect(f"file:{self.path}?immutable=1", uri=True,
                                   isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA user_version").fetchone()
        except sqlite3.Error as exc:
            raise full from exc
        self._read_only_because = full
        return conn

    def _disk_full(self, exc: sqlite3.Error) -> DiskFull | None:
        return disk_full_error(exc, self.path.parent)

    def _storage_error(self, exc: sqlite3.Error, what: str) -> StorageError:
        if self._read_only_because is not None:
            return self._read_only_because
        return self._disk_full(exc) or StorageError(f"could not {what}: {exc}")

    def probe_space(self) -> None:
        """Write (and take back) a few pages, to learn whether the disk has room again.

        Raises:
            DiskFull / StorageError: it has not.
        """
        with self._transaction("probe for free space"):
            self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                               ("space_probe", "x" * 16384))
            self._conn.execute("DELETE FROM meta WHERE key = 'space_probe'")

    # -- lifecycle -------------------------------------------------------------------------
    def _close_quietly(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close the database; safe to call twice."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection, for the query helpers in `p2pnode.queries` (read-only use)."""
        return self._conn

    def data_version(self) -> int:
        """Changes when another connection (e.g. a CLI process) commits to this database."""
        with self._lock:
            return self._conn.execute("PRAGMA data_version").fetchone()[0]

    # -- meta ------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    @contextlib.contextmanager
    def _storage_errors(self, what: str) -> Iterator[None]:
        """A single-statement write outside `_transaction`: SQLite errors as `StorageError`."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self._storage_error(exc, what) from exc

    def set_meta(self, key: str, value: str | None) -> None:
        with self._lock, self._storage_errors("write settings"):
            if value is None:
                self._conn.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                self._conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    # -- feeds -----------------------------------------------------------------------------
    def head(self, author: bytes) -> FeedHead | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT seq, head FROM feeds WHERE author = ?", (author,)
            ).fetchone()
        return FeedHead(row[0], row[1]) if row else None

    def clock(self) -> dict[bytes, int]:
        """author -> latest seq held, for every feed."""
        with self._lock:
            return dict(self._conn.execute("SELECT author, seq FROM feeds"))

    def forked_authors(self) -> set[bytes]:
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT author FROM feeds WHERE forked")}

    def entry_count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM entries").fetchone()[0]

    def counts_by_kind(self) -> dict[str, int]:
        with self._lock:
            return dict(self._conn.execute("SELECT kind, count(*) FROM entries GROUP BY kind"))

    def max_rowid(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT coalesce(max(rowid), 0) FROM entries").fetchone()[0]

    def rows_after(self, rowid: int, limit: int = 5000) -> list[tuple[int, bytes, bytes, int, str]]:
        """(rowid, id, author, seq, kind) of entries stored after `rowid`, oldest first.

        This is how the node learns of every new entry, whoever wrote it (itself or a CLI).
        """
        with self._lock:
            return self._conn.execute(
                "SELECT rowid, id, author, seq, kind FROM entries WHERE rowid > ?"
                " ORDER BY rowid LIMIT ?",
                (rowid, limit),
            ).fetchall()

    def get_entry(self, entry_id: bytes) -> Entry | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT header, signature, body, id FROM entries WHERE id = ?", (entry_id,)
            ).fetchone()
        return _entry_from_row(row) if row else None

    def feed_entries(
        self, author: bytes, from_seq: int = 1, limit: int | None = None
    ) -> list[Entry]:
        """One author's entries from `from_seq` on, in seq order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT header, signature, body, id FROM entries WHERE author = ? AND seq >= ?"
                " ORDER BY seq LIMIT ?",
                (author, from_seq, -1 if limit is None else limit),
            ).fetchall()
        return [_entry_from_row(r) for r in rows]

    def iter_all_entries(self, page: int = 2000) -> Iterator[Entry]:
        """Every entry, author by author in seq order (the order `import` authenticates best)."""
        last: tuple[bytes, int] = (b"", 0)
        while True:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT author, seq, header, signature, body, id FROM entries"
                    " WHERE (author, seq) > (?, ?) ORDER BY author, seq LIMIT ?",
                    (*last, page),
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _entry_from_row(row[2:])
            last = (rows[-1][0], rows[-1][1])

    # -- writing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[derive.Writes]:
        """One write transaction under the write lock; yields its buffered writes.

        Everything in it commits together, durably, or nothing does.
        """
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    out = derive.Writes(self._conn)
                    yield out
                    out.finish()
                    self._conn.execute("COMMIT")
                except BaseException:
                    # SQLite may have rolled back by itself (a full disk): keep the real error
                    if self._conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._storage_error(exc, what) from exc

    def append(
        self, identity: Identity, kind: str, body: dict[str, Any], *, now_ms: int
    ) -> Entry:
        """Validate, sign and durably store the next entry of our own feed.

        Raises:
            InvalidRecordError / MalformedError: the record breaks the schema or a size limit.
            StorageError: the database could not be written.
        """
        validate_record(kind, body)
        validate_authored(kind, body, identity.node_id)
        with self._transaction("write the entry") as out:
            row = self._conn.execute(
                "SELECT seq, head FROM feeds WHERE author = ?", (identity.node_id,)
            ).fetchone()
            seq, prev = (row[0] + 1, row[1]) if row else (1, None)
            entry = create_entry(
                identity, seq=seq, prev=prev, timestamp_ms=now_ms, kind=kind, body=body
            )
            self._insert(entry, body, out)
        return entry

    def ingest(self, entries: Iterable[Entry], *, now_ms: int) -> IngestReport:
        """Take foreign (or exported) entries; see the module docstring for the rules.

        Entries may come in any order and mix authors; each author's entries are authenticated
        as one run. Nothing raises for bad entries: they are reported in `IngestReport.rejected`.

        Raises:
            StorageError: the database could not be written (nothing of this call is kept).
        """
        report = IngestReport()
        batch = list(entries)
        if not batch:
            return report
        # The duplicate check runs inside the write transaction: another process on this home
        # (a CLI import) may have stored some of these entries a moment ago.
        with self._transaction("store received entries") as out:
            held = self._held_ids([e.id for e in batch])
            if held:
                self._fill_bodies([e for e in batch if e.id in held and e.body_bytes],
                                  now_ms, report, out)
            by_author: dict[bytes, dict[int, Entry]] = {}
            rivals: list[Entry] = []
            seen: set[bytes] = set()
            for entry in batch:
                if entry.id in held or entry.id in seen:
                    report.duplicates += 1
                    continue
                seen.add(entry.id)
                run = by_author.setdefault(entry.header.author, {})
                if entry.header.seq in run:
                    # two different entries for one seq in one batch: the second is fork proof,
                    # recorded once the first has been taken (if it is authentic)
                    rivals.append(entry)
                    continue
                run[entry.header.seq] = entry
            for author, run in by_author.items():
                self._ingest_run(author, [run[seq] for seq in sorted(run)], now_ms, report, out)
            if rivals:
                out.flush()  # a rival's seq may have been taken by this very batch
            for rival in rivals:
                self._take_rival(rival, report, out)
        return report

    def _fill_bodies(self, entries: list[Entry], now_ms: int, report: IngestReport,
                     out: derive.Writes) -> None:
        """Held entries that arrived body-less get their body when it comes (a relay may have
        stripped it); bodies dropped on purpose (deleted, expired) never come back."""
        for entry in entries:
            row = self._conn.execute(
                "SELECT 1 FROM entries WHERE id = ? AND body IS NULL AND dropped = 0",
                (entry.id,),
            ).fetchone()
            if row is None:
                continue
            try:  # the body already matches the signed body_hash (checked when decoded)
                body = decode_body(entry.body_bytes or b"")
                validate_record(entry.header.kind, body)
                validate_authored(entry.header.kind, body, entry.header.author)
            except ProtocolError:
                report.invalid += 1
                self._give_up_body(entry.id)
                continue
            if entry.header.kind in _PERSONAL_KINDS and self._circle_expired(body, now_ms, out):
                self._give_up_body(entry.id)
                continue
            self._conn.execute("UPDATE entries SET body = ? WHERE id = ?",
                               (entry.body_bytes, entry.id))
            derive.apply_entry(out, entry, body)
            report.bodies_filled += 1
            report.filled.append(entry)

    def _give_up_body(self, entry_id: bytes) -> None:
        """A body we will never keep (invalid, or expired): stop asking peers for it."""
        self._conn.execute("UPDATE entries SET dropped = 1 WHERE id = ?", (entry_id,))

    def entries_missing_body(self, limit: int = 1024) -> list[tuple[bytes, bytes, int]]:
        """(id, author, seq) of entries held without a body that was not dropped on purpose
        (a relay stripped it, PROTOCOL.md 5): peers may still send it. Oldest first."""
        with self._lock:
            return [tuple(row) for row in self._conn.execute(  # type: ignore[misc]
                "SELECT id, author, seq FROM entries WHERE body IS NULL AND dropped = 0"
                " ORDER BY rowid LIMIT ?", (limit,))]

    def entries_with_bodies(self, ids: Sequence[bytes]) -> list[Entry]:
        """Those of `ids` held here with their body (to answer a peer's `want_bodies`)."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        with self._lock:
            rows = self._conn.execute(
                f"SELECT header, signature, body, id FROM entries WHERE id IN ({marks})"
                " AND body IS NOT NULL", list(ids)).fetchall()
        return [_entry_from_row(r) for r in rows]

    def _take_rival(self, rival: Entry, report: IngestReport, out: derive.Writes) -> None:
        """A second entry for a seq in the same batch: fork proof if authentic and the seq held."""
        held = self._conn.execute(
            "SELECT 1 FROM entries WHERE author = ? AND seq = ?",
            (rival.header.author, rival.header.seq),
        ).fetchone()
        if not rival.signature_valid():
            report.bad_signatures += 1
            self._reject(report, rival, "signature does not verify")
        elif held:
            self._record_fork(rival, report, out)
        else:
            self._reject(report, rival, "another entry for this seq came first")

    def _ingest_run(
        self,
        author: bytes,
        run: Sequence[Entry],
        now_ms: int,
        report: IngestReport,
        out: derive.Writes,
    ) -> None:
        row = self._conn.execute(
            "SELECT seq, head FROM feeds WHERE author = ?", (author,)
        ).fetchone()
        head = FeedHead(row[0], row[1]) if row else None
        held_seq = head.seq if head else 0
        old = [e for e in run if e.header.seq <= held_seq]
        new = [e for e in run if e.header.seq > held_seq]
        for entry in old:  # not held by id (duplicates went earlier): a fork, if authentic
            if not entry.signature_valid():
                report.bad_signatures += 1
                self._reject(report, entry, "signature does not verify")
                continue
            self._record_fork(entry, report, out)
        if not new:
            return
        flags = authenticate_run(new)
        for index, (entry, authentic) in enumerate(zip(new, flags, strict=True)):
            refusal = self._take_one(entry, authentic, head, now_ms, report, out)
            if refusal is not None:
                for later in new[index + 1 :]:
                    self._reject(report, later, f"cannot link: an earlier entry {refusal}")
                return
            head = FeedHead(entry.header.seq, entry.id)

    def _take_one(
        self,
        entry: Entry,
        authentic: bool,
        head: FeedHead | None,
        now_ms: int,
        report: IngestReport,
        out: derive.Writes,
    ) -> str | None:
        """Store one authenticated-or-not next entry; return why the run stops, or None."""
        author, seq = entry.header.author, entry.header.seq
        if not authentic:
            report.bad_signatures += 1
            report.blocked.setdefault(author, seq)
            self._reject(report, entry, "signature does not verify")
            return "was refused"
        verdict = classify(head, entry, now_ms=now_ms)
        if verdict is Verdict.GAP:
            first_missing = (head.seq if head else 0) + 1
            report.gaps.setdefault(entry.header.author, first_missing)
            self._reject(report, entry, f"entries from seq {first_missing} are missing")
            return "is missing"
        if verdict is Verdict.FUTURE:
            report.blocked.setdefault(author, seq)
            self._reject(report, entry, "timestamp is more than 10 minutes in the future")
            return "was refused"
        if verdict is Verdict.FORK:
            report.blocked.setdefault(author, seq)
            self._record_fork(entry, report, out)
            return "was refused"
        body = None
        if entry.body_bytes is not None:
            try:
                body = decode_body(entry.body_bytes)
                validate_record(entry.header.kind, body)
                validate_authored(entry.header.kind, body, author)
            except ProtocolError as exc:
                report.invalid += 1
                report.blocked.setdefault(author, seq)
                self._reject(report, entry, str(exc))
                return "was refused"
            if entry.header.kind in _PERSONAL_KINDS and self._circle_expired(body, now_ms, out):
                entry, body = entry.without_body(), None
                self._insert(entry, None, out, dropped=True)
                report.accepted.append(entry)
                return None
        self._insert(entry, body, out)
        report.accepted.append(entry)
        return None

    def _insert(self, entry: Entry, body: dict[str, Any] | None, out: derive.Writes, *,
                dropped: bool = False) -> None:
        h = entry.header
        out.add(
            "INSERT INTO entries (id, author, seq, kind, timestamp_ms, header, signature, body,"
            " dropped) VALUES (?,?,?,?,?,?,?,?,?)",
            (entry.id, h.author, h.seq, h.kind, h.timestamp_ms, entry.header_bytes,
             entry.signature, entry.body_bytes, int(dropped)),
        )
        out.set_head(h.author, h.seq, entry.id)
        if body is not None:
            derive.apply_entry(out, entry, body)

    def _record_fork(self, entry: Entry, report: IngestReport, out: derive.Writes) -> None:
        out.flush()  # the proof may be an entry of this very batch
        h = entry.header
        row = self._conn.execute(
            "SELECT header, signature FROM entries WHERE author = ? AND seq = ?",
            (h.author, h.seq),
        ).fetchone()
        if row is None:  # a next entry whose prev is not our head: the proof is our head
            row = self._conn.execute(
                "SELECT header, signature FROM entries WHERE author = ? AND seq = ?",
                (h.author, h.seq - 1),
            ).fetchone()
        if row is None:
            return
        self._conn.execute(
            "INSERT OR IGNORE INTO forks"
            " (author, seq, header_a, signature_a, header_b, signature_b) VALUES (?,?,?,?,?,?)",
            (h.author, h.seq, row[0], row[1], entry.header_bytes, entry.signature),
        )
        flagged = self._conn.execute(
            "UPDATE feeds SET forked = 1 WHERE author = ? AND forked = 0", (h.author,)
        ).rowcount
        if flagged:
            report.forked.append(h.author)
        self._reject(report, entry, f"fork: a second entry for seq {h.seq} of "
                     f"{fingerprint(h.author)}")

    @staticmethod
    def _reject(report: IngestReport, entry: Entry, reason: str) -> None:
        report.rejected.append((entry, reason))

    def _held_ids(self, ids: list[bytes]) -> set[bytes]:
        held: set[bytes] = set()
        for start in range(0, len(ids), _ID_QUERY_CHUNK):
            chunk = ids[start : start + _ID_QUERY_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(f"SELECT id FROM entries WHERE id IN ({marks})", chunk)
            held.update(r[0] for r in rows)
        return held

    def _circle_expired(self, body: dict[str, Any], now_ms: int, out: derive.Writes) -> bool:
        # circles rows change only when the transaction ends: one read per transaction
        if out.expired is None:
            out.expired = {row[0] for row in self._conn.execute(
                "SELECT id FROM circles WHERE end_date < ?", (_cutoff_date(now_ms),))}
        return body.get("circle") in out.expired

    # -- retention -------------------------------------------------------------------------
    def prune_expired(self, *, now_ms: int) -> int:
        """Drop the bodies of joins, RSVPs and feedback of circles that ended > 90 days ago.

        Returns:
            How many bodies were dropped.
        """
        cutoff = _cutoff_date(now_ms)
        dropped = 0
        with self._transaction("drop expired personal records"):
            old = [r[0] for r in self._conn.execute(
                "SELECT id FROM circles WHERE end_date < ?", (cutoff,))]
            for circle_id in old:
                for table in ("joins", "rsvps", "feedback"):
                    ids = [r[0] for r in self._conn.execute(
                        f"SELECT entry_id FROM {table} WHERE circle = ?", (circle_id,))]
                    for entry_id in ids:
                        dropped += self._conn.execute(
                            "UPDATE entries SET body = NULL, dropped = 1"
                            " WHERE id = ? AND body IS NOT NULL",
                            (entry_id,),
                        ).rowcount
                self._conn.execute("DELETE FROM joins WHERE circle = ?", (circle_id,))
                self._conn.execute("DELETE FROM rsvps WHERE circle = ?", (circle_id,))
                # ratings stay (course ratings are aggregated); who gave them and why do not
                self._conn.execute(
                    "UPDATE feedback SET author = NULL, body = NULL WHERE circle = ?",
                    (circle_id,),
                )
        return dropped

    # -- peers -----------------------------------------------------------------------------
    def record_peer(self, node_id: bytes, *, address: str | None, how: str, now_ms: int,
                    error: str | None = None) -> None:
        with self._lock, self._storage_errors("remember a peer"):
            self._conn.execute(
                "INSERT INTO peers (node_id, address, how, last_seen_ms, last_error)"
                " VALUES (?,?,?,?,?) ON CONFLICT (node_id) DO UPDATE SET"
                " address = coalesce(excluded.address, address), how = excluded.how,"
                " last_seen_ms = coalesce(excluded.last_seen_ms, last_seen_ms),"
                " last_error = excluded.last_error",
                (node_id, address, how, now_ms if error is None else None, error),
            )

    def known_peers(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT node_id, address, how, last_seen_ms, last_error, score FROM peers"
            ).fetchall()
        keys = ("node_id", "address", "how", "last_seen_ms", "last_error", "score")
        return [dict(zip(keys, r, strict=True)) for r in rows]


def _entry_from_row(row: Sequence[Any]) -> Entry:
    """(header, signature, body, id) as stored: checked when it arrived, not again."""
    return stored_entry(row[0], row[1], row[2], row[3])


def _cutoff_date(now_ms: int) -> str:
    today = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).date()
    return (today - dt.timedelta(days=RETENTION_DAYS)).isoformat()
