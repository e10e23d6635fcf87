"""Where a node keeps its files, and the defaults a user never has to set.

The home defaults to the platform's user data dir (`platformdirs`), or `$P2PNODE_HOME`.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from protocol.session import OPEN_NETWORK_KEY, network_id

__all__ = ["DEFAULT_PORT", "OPEN_NETWORK_KEY", "default_home", "load_network_key", "network_id"]

from p2pnode.errors import HomeError

DEFAULT_PORT = 7654

IDENTITY_FILE = "identity.key"
SEALING_KEY_FILE = "enc.key"
DATABASE_FILE = "store.sqlite3"
BLOBS_DIR = "blobs"
LOG_FILE = "node.log"
CONTROL_FILE = "control.json"
TOKEN_FILE = "control.token"


def default_home() -> Path:
    env = os.environ.get("P2PNODE_HOME")
    return Path(env) if env else Path(platformdirs.user_data_dir("p2pnode", appauthor=False))


def load_network_key(path: Path | None) -> bytes:
    """The network key from a file (32 raw bytes or 64 hex digits), or the open network's.

    Raises:
        HomeError: the file is unreadable or holds something else.
    """
    if path is None:
        return OPEN_NETWORK_KEY
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise HomeError(f"cannot read the network key {path}: {exc.strerror}") from None
    text = data.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    if len(data) == 32:
        return data
    raise HomeError(f"{path} must hold a 32-byte key (raw, or 64 hex digits)")
