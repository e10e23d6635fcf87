"""A node home: the identity and sealing keys, the database and the blob folder.

Key files hold the raw 32-byte private key, mode 0600; a key file that others can read is refused
(an identity anyone on the machine can copy is no identity). The home itself is 0700.

Losing the database but keeping the key must not fork our feed: a database created beside an
existing key is marked `recovery pending`, and our own appends are refused until the node has
fetched our old entries from a peer (`Home.finish_recovery`), or the user says there are none.
An empty database file counts as a lost one, and so does a damaged one (truncated, overwritten):
it is moved aside as `store.sqlite3.damaged-<UTC time>` (never deleted) and a new one started.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
from pathlib import Path

from p2pnode import config
from p2pnode.errors import DamagedDatabase, HomeError, RecoveryPending
from p2pnode.files import fsync_directory
from p2pnode.store.database import Store
from protocol.identity import Identity, SealingKey

_RECOVERY_KEY = "own_feed_recovery_pending"
_DAMAGED_KEY = "damaged_database_kept_as"
log = logging.getLogger(__name__)


def _move_aside(db_path: Path) -> Path:
    """Rename a damaged database (and its WAL and shared-memory files) out of the way."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = db_path.with_name(f"{db_path.name}.damaged-{stamp}")
    try:
        for suffix in ("-wal", "-shm", ""):
            part = db_path.with_name(db_path.name + suffix)
            if part.exists():
                os.replace(part, target.with_name(target.name + suffix))
        fsync_directory(db_path.parent)
    except OSError as exc:
        raise HomeError(f"{db_path} is damaged and could not be moved aside:"
                        f" {exc.strerror or exc}") from None
    return target


def _write_secret(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 holding `data`; never overwrite an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_directory(path.parent)


def _read_secret(path: Path) -> bytes:
    info = path.stat()
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise HomeError(
            f"{path} is readable by other users (mode {stat.S_IMODE(info.st_mode):o});"
            f" run: chmod 600 {path}"
        )
    data = path.read_bytes()
    if len(data) != 32:
        raise HomeError(f"{path} is damaged: expected 32 bytes, found {len(data)}")
    return data


class Home:
    """An opened node home. Use `Home.open` (or `Home.create`), then `close()`."""

    def __init__(self, path: Path, identity: Identity, sealing_key: SealingKey, store: Store):
        self.path = path
        self.identity = identity
        self.sealing_key = sealing_key
        self.store = store

    @staticmethod
    def exists(path: Path) -> bool:
        return (Path(path) / config.IDENTITY_FILE).exists()

    @classmethod
    def create(cls, path: Path) -> Home:
        """Make a new home with fresh keys.

        Raises:
            HomeError: an identity already exists there (it is never overwritten).
        """
        path = Path(path)
        if cls.exists(path):
            raise HomeError(f"{path} already holds an identity; refusing to overwrite it")
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            if (path / config.DATABASE_FILE).exists():
                raise HomeError(f"{path} holds a database but no identity; use another home")
            _write_secret(path / config.SEALING_KEY_FILE, SealingKey.generate().private_bytes())
            _write_secret(path / config.IDENTITY_FILE, Identity.generate().private_bytes())
        except OSError as exc:
            raise HomeError(f"cannot create the home {path}: {exc.strerror or exc}") from None
        return cls._open(path, new_identity=True)

    @classmethod
    def open(cls, path: Path, *, create: bool = False) -> Home:
        """Open an existing home (or create one when `create` and there is none).

        Raises:
            HomeError: no identity there (and not `create`), or unsafe / damaged key files.
        """
        path = Path(path)
        if not cls.exists(path):
            if create:
                return cls.create(path)
            raise HomeError(f"no identity in {path}; run: p2pnode init")
        return cls._open(path, new_identity=False)

    @classmethod
    def _open(cls, path: Path, *, new_identity: bool) -> Home:
        try:
            identity = Identity.from_private_bytes(_read_secret(path / config.IDENTITY_FILE))
            sealing_path = path / config.SEALING_KEY_FILE
            if not sealing_path.exists():
                _write_secret(sealing_path, SealingKey.generate().private_bytes())
            sealing_key = SealingKey.from_private_bytes(_read_secret(sealing_path))
        except OSError as exc:
            raise HomeError(f"cannot read the keys in {path}: {exc.strerror or exc}") from None
        db_path = path / config.DATABASE_FILE
        moved_to = None
        try:
            store = Store(db_path)
        except DamagedDatabase as exc:
            moved_to = _move_aside(db_path)
            log.warning("%s; kept it as %s and started a new one", exc, moved_to.name)
            store = Store(db_path)
        if store.created and not new_identity:
            # Missing, empty or damaged: our own entries may exist elsewhere; fetch them first.
            store.set_meta(_RECOVERY_KEY, "1")
            if moved_to is not None:
                store.set_meta(_DAMAGED_KEY, moved_to.name)
        (path / config.BLOBS_DIR).mkdir(exist_ok=True)
        return cls(path, identity, sealing_key, store)

    @property
    def recovery_pending(self) -> bool:
        """True until a peer holding our old feed has given it all back (or the user said there
        is none): the flag alone decides, so a partly recovered feed is still guarded."""
        return self.store.get_meta(_RECOVERY_KEY) == "1"

    def check_can_append(self) -> None:
        """Raise RecoveryPending while our older entries may still be out there."""
        if self.recovery_pending:
            damaged = self.store.get_meta(_DAMAGED_KEY)
            why = (f"the database was damaged (kept as {damaged}), so this one is new"
                   if damaged else "this identity is older than this database")
            raise RecoveryPending(
                f"{why}: start the node (p2pnode run) near a"
                " peer so your earlier entries are fetched first, or run"
                " `p2pnode recover --none` if you never wrote any"
            )

    def finish_recovery(self) -> None:
        self.store.set_meta(_RECOVERY_KEY, None)

    @property
    def blobs_path(self) -> Path:
        return self.path / config.BLOBS_DIR

    def close(self) -> None:
        """Close the database; safe to call twice."""
        self.store.close()

    def __enter__(self) -> Home:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
