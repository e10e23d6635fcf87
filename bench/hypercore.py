"""The Hypercore baseline, measured in the same run as the bench that asks for it.

`Hypercore` copies the peer-anchor benchmark (`shared/anchors/hypercore`, read-only) to a
temporary directory and runs `npm install` there; `rate(n)` then runs `node bench.js n` and
returns the entries/s of Hypercore replicating n entries over loopback TCP (its last line,
`replicate_tcp=…/s`). When node or npm is missing, or the anchor cannot be found or run, it
returns None and `problem` says why: the caller prints that and the rest of its figures.
`hypercore_rate(n)` does all of it once.

The anchor is looked for in $HYPERCORE_ANCHOR, then in `shared/anchors/hypercore` beside or
above this checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
_INSTALL_TIMEOUT = 300
_RUN_TIMEOUT = 900
_RATE = re.compile(r"replicate_tcp=(\d+)/s")


def _anchor() -> Path | None:
    candidates = [os.environ.get("HYPERCORE_ANCHOR")]
    candidates += [str(parent / "shared" / "anchors" / "hypercore") for parent in _REPO.parents]
    for candidate in candidates:
        if candidate and (Path(candidate) / "bench.js").is_file():
            return Path(candidate)
    return None


class Hypercore:
    """The anchor installed in a temporary directory, ready to run any number of times.

    Use as a context manager; `problem` says why nothing can run (then `rate` returns None).
    """

    def __init__(self) -> None:
        self.problem: str | None = None
        self.last_line = ""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._work: Path | None = None
        self._node = shutil.which("node")

    def __enter__(self) -> Hypercore:
        npm = shutil.which("npm")
        anchor = _anchor()
        if self._node is None or npm is None:
            self.problem = "Hypercore baseline skipped: node and npm are not both installed"
        elif anchor is None:
            self.problem = "Hypercore baseline skipped: shared/anchors/hypercore not found"
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="hypercore-")
            work = Path(self._tmp.name) / "hypercore"
            shutil.copytree(anchor, work, ignore=shutil.ignore_patterns("node_modules"))
            try:
                subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent"],
                               cwd=work, check=True, timeout=_INSTALL_TIMEOUT,
                               capture_output=True)
                self._work = work
            except (OSError, subprocess.SubprocessError) as exc:
                self.problem = f"Hypercore baseline failed: npm install: {exc}"[:200]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def rate(self, entries: int) -> float | None:
        """Entries/s of Hypercore replicating `entries` entries over loopback TCP, now."""
        if self._work is None or self._node is None:
            return None
        try:
            run = subprocess.run([self._node, "bench.js", str(entries)], cwd=self._work,
                                 check=True, timeout=_RUN_TIMEOUT, capture_output=True,
                                 text=True)
        except (OSError, subprocess.SubprocessError) as exc:
            self.problem = f"Hypercore baseline failed: {type(exc).__name__}: {exc}"[:200]
            return None
        lines = run.stdout.strip().splitlines()
        match = _RATE.search(lines[-1]) if lines else None
        if match is None:
            self.problem = "Hypercore baseline failed: no replicate_tcp figure in its output"
            return None
        self.last_line = lines[-1]
        return float(match.group(1))


def hypercore_rate(entries: int) -> tuple[float | None, str]:
    """(entries/s of Hypercore's loopback TCP replication, or None; a line saying what ran)."""
    with Hypercore() as anchor:
        rate = anchor.rate(entries)
        return rate, anchor.problem or anchor.last_line
