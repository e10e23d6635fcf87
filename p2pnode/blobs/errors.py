"""The blob store's errors: one family under `NodeError`, each message one line for a person."""

from __future__ import annotations

from p2pnode.errors import NodeError
from p2pnode.files import human_size
from protocol.blobs import BLOB_ID_SIZE


class BlobStoreError(NodeError):
    """Base of every error the blob store raises; the message is one line for a person."""


class BlobNotFound(BlobStoreError):
    """No complete blob (or no such chunk) with this id in the store."""


class InsufficientSpace(BlobStoreError):
    """Not enough free disk space for a blob.

    Attributes:
        needed: bytes the operation needs free (the blob plus `SPACE_MARGIN`).
        available: bytes free on the store's file system.
    """

    def __init__(self, needed: int, available: int, what: str) -> None:
        super().__init__(
            f"not enough disk space for {what}: need {human_size(needed)}, "
            f"only {human_size(available)} free"
        )
        self.needed = needed
        self.available = available


class CorruptBlob(BlobStoreError):
    """A stored blob or manifest no longer matches its content id (damaged on disk)."""


class BlobTooLarge(BlobStoreError):
    """A file larger than the store accepts.

    Attributes:
        size: the file's size in bytes (as far as it was read).
        limit: the store's `max_blob_size`.
    """

    def __init__(self, size: int, limit: int, what: str) -> None:
        super().__init__(f"{what} is {human_size(size)}, larger than the {human_size(limit)} limit")
        self.size = size
        self.limit = limit


class DestinationExists(BlobStoreError):
    """`export_to` would overwrite an existing file and `overwrite` was not given."""




def blob_hex(blob_id: bytes) -> str:
    """The file name of a blob: its id in lowercase hex.

    Raises:
        ValueError: `blob_id` is not exactly 32 bytes.
    """
    if not isinstance(blob_id, bytes) or len(blob_id) != BLOB_ID_SIZE:
        raise ValueError(f"a blob id is {BLOB_ID_SIZE} bytes, got {blob_id!r:.80}")
    return blob_id.hex()
