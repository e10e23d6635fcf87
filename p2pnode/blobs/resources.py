"""Sharing a file as a resource: copy it into the blob store, then publish a `resource` record.

Synchronous, like `p2pnode.actions`: the CLI calls `share_file` with an opened `Home`, the node
runs the same steps from its blob executor (`transfer.BlobService.share`). Rules it keeps:

- Everything the user typed is checked before a single byte is copied (a 3 GiB copy that ends
  in "title too long" wastes minutes), and our feed must accept appends (`check_can_append`).
- The record describes the bytes that were copied, not the file as it is now: `size` is the
  manifest's, so a file changing while it is shared still yields a self-consistent blob.
- The title defaults to the file name, made a valid single line of at most 128 characters.
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path
from typing import Any

from p2pnode.blobs.store import BlobStore, ProgressCallback
from p2pnode.errors import InvalidInput, NotAllowed, NotFound
from p2pnode.home import Home
from p2pnode.store import queries
from p2pnode.store.models import Shared as Shared  # what share_file returns
from protocol.blobs import Manifest
from protocol.entry import Entry, decode_body
from protocol.errors import ProtocolError
from protocol.identity import fingerprint
from protocol.records import LICENCES, validate_record

MAX_TITLE = 128
DEFAULT_MEDIA_TYPE = "application/octet-stream"
_BOOK_TYPES = frozenset({"application/pdf", "application/epub+zip"})
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def guess_media_type(name: str) -> str:
    """The media type a file name suggests (`mimetypes`), or ``application/octet-stream``."""
    guessed, _ = mimetypes.guess_type(name, strict=False)
    if guessed is None:
        return DEFAULT_MEDIA_TYPE
    probe = {"blob": bytes(32), "size": 0, "title": "t", "media_type": guessed, "format": "other"}
    try:
        validate_record("resource", probe)  # the schema's own media-type rule decides
    except ProtocolError:
        return DEFAULT_MEDIA_TYPE
    return guessed


def guess_format(media_type: str) -> str:
    """The record's `format` for a media type: video, book (PDF, EPUB) or other."""
    if media_type.startswith("video/"):
        return "video"
    if media_type in _BOOK_TYPES:
        return "book"
    return "other"


def default_title(path: Path) -> str:
    """The file name as a record title: one line, control characters replaced, ≤ 128."""
    title = _UNPRINTABLE.sub("?", path.name).strip() or "untitled"
    return title[:MAX_TITLE]


def resource_body(
    manifest: Manifest | None,
    *,
    title: str,
    media_type: str,
    licence: str | None = None,
    caption: str | None = None,
    circle: bytes | None = None,
) -> dict[str, Any]:
    """The `resource` record for a blob, checked against the schema.

    With `manifest` None the blob id and size are placeholders: that checks the user's fields
    before anything is copied.

    Raises:
        InvalidInput: a field breaks the schema (the message names it).
    """
    body: dict[str, Any] = {
        "blob": manifest.blob_id if manifest else bytes(32),
        "size": manifest.size if manifest else 0,
        "title": title,
        "media_type": media_type,
        "format": guess_format(media_type),
    }
    for key, value in (("licence", licence), ("caption", caption), ("circle", circle)):
        if value is not None:
            body[key] = value
    try:
        validate_record("resource", body)
    except ProtocolError as exc:
        raise InvalidInput(f"cannot share this: {exc}") from None
    return body


def check_share(
    home: Home,
    path: Path,
    *,
    title: str | None = None,
    circle: bytes | None = None,
    licence: str | None = None,
    caption: str | None = None,
) -> dict[str, Any]:
    """Everything `share_file` checks before copying; returns the placeholder body.

    Raises:
        InvalidInput: a bad field, or `path` is not a readable regular file.
        NotFound: `circle` is not known here.
        RecoveryPending: our feed cannot take appends yet.
    """
    home.check_can_append()
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file")
    if licence is not None and licence not in LICENCES:
        raise InvalidInput(f"--licence must be one of {', '.join(LICENCES)}; not {licence!r}")
    if circle is not None and queries.circle_state(home.store.conn, circle) is None:
        raise NotFound(f"no circle {fingerprint(circle)} is known here")
    return resource_body(
        None,
        title=title if title is not None else default_title(path),
        media_type=guess_media_type(path.name),
        licence=licence,
        caption=caption,
        circle=circle,
    )


def existing_share(home: Home, body: dict[str, Any]) -> Entry | None:
    """Our live `resource` record for `body`'s blob when it says exactly what `body` says."""
    row = home.store.conn.execute(
        "SELECT r.entry_id FROM resources r JOIN entries e ON e.id = r.entry_id"
        " WHERE r.blob = ? AND r.author = ? ORDER BY e.seq DESC LIMIT 1",
        (body["blob"], home.identity.node_id),
    ).fetchone()
    if row is None:
        return None
    entry = home.store.get_entry(row[0])
    if entry is None or entry.body_bytes is None or decode_body(entry.body_bytes) != body:
        return None
    return entry


def publish_resource(home: Home, body: dict[str, Any], *, at_ms: int) -> Entry:
    """Append a checked `resource` body (blob and size filled in) to our feed, unless we already
    shared the same blob with the same details: then that record is returned and nothing is
    written (sharing a file twice does not list it twice)."""
    home.check_can_append()
    existing = existing_share(home, body)
    if existing is not None:
        return existing
    return home.store.append(home.identity, "resource", body, now_ms=at_ms)


def share_file(
    home: Home,
    path: Path,
    *,
    title: str | None = None,
    circle: bytes | None = None,
    licence: str | None = None,
    caption: str | None = None,
    at_ms: int,
    store: BlobStore | None = None,
    progress: ProgressCallback | None = None,
) -> Shared:
    """Copy `path` into the home's blob store and publish a `resource` record for it.

    Args:
        store: the blob store to add to (default: one on ``home.blobs_path``).
        progress: called as ``progress(bytes_done, total)`` while copying.

    Raises:
        InvalidInput, NotFound, RecoveryPending: see `check_share` (nothing is copied).
        BlobStoreError: the file is too large, the disk is full, or it is not a regular file.
        OSError: reading the file failed.
    """
    path = Path(path)
    placeholder = check_share(
        home, path, title=title, circle=circle, licence=licence, caption=caption
    )
    store = store or BlobStore(home.blobs_path)
    manifest = store.add_file(path, progress=progress)
    body = {**placeholder, "blob": manifest.blob_id, "size": manifest.size}
    existing = existing_share(home, body)
    entry = existing or publish_resource(home, body, at_ms=at_ms)
    return Shared(manifest.blob_id, entry, body, already=existing is not None)


def unshare_resource(home: Home, blob_id: bytes, *, at_ms: int | None = None) -> Entry:
    """Withdraw our `resource` records of a blob: a `delete` drops their bodies everywhere, so
    it leaves every listing. The file stays in the blob stores that hold it.

    Raises:
        NotAllowed: only someone else shared it.
        NotFound: nobody's live record names this blob here.
    """
    from p2pnode import actions  # actions is the layer above records; keep the import local

    rows = home.store.conn.execute(
        "SELECT entry_id, author FROM resources WHERE blob = ?", (blob_id,)
    ).fetchall()
    ours = [entry_id for entry_id, author in rows if author == home.identity.node_id]
    if not ours:
        if rows:
            raise NotAllowed(f"resource {fingerprint(blob_id)} was shared by someone else;"
                             " only they can unshare it")
        raise NotFound(f"no shared resource {fingerprint(blob_id)} is known here")
    return actions.delete_entries(home, ours, "unshared", at_ms=at_ms)
