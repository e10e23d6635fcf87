"""The Hypercore baseline, measured in the same run as the bench that asks for it.

`hypercore_rate(n)` copies the peer-anchor benchmark (`shared/anchors/hypercore`, read-only) to a
temporary directory, runs `npm install` there, then `node bench.js n`, and returns the entries/s
of Hypercore replicating n entries over loopback TCP (its last line, `replicate_tcp=…/s`). When
node or npm is missing, or the anchor cannot be found or run, it returns None and says why: the
caller prints that and the rest of its figures.

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


def hypercore_rate(entries: int) -> tuple[float | None, str]:
    """(entries/s of Hypercore's loopback TCP replication, or None; a line saying what ran)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None, "Hypercore baseline skipped: node and npm are not both installed"
    anchor = _anchor()
    if anchor is None:
        return None, "Hypercore baseline skipped: shared/anchors/hypercore not found"
    with tempfile.TemporaryDirectory(prefix="hypercore-") as tmp:
        work = Path(tmp) / "hypercore"
        shutil.copytree(anchor, work, ignore=shutil.ignore_patterns("node_modules"))
        try:
            subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent"], cwd=work,
                           check=True, timeout=_INSTALL_TIMEOUT, capture_output=True)
            run = subprocess.run([node, "bench.js", str(entries)], cwd=work, check=True,
                                 timeout=_RUN_TIMEOUT, capture_output=True, text=True)
        except (OSError, subprocess.SubprocessError) as exc:
            return None, f"Hypercore baseline failed: {type(exc).__name__}: {exc}"[:200]
    lines = run.stdout.strip().splitlines()
    match = _RATE.search(lines[-1]) if lines else None
    if match is None:
        return None, "Hypercore baseline failed: no replicate_tcp figure in its output"
    return float(match.group(1)), lines[-1]
