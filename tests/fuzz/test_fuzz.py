"""The fuzz targets (targets.py) over a seed corpus and hypothesis inputs, and a short
coverage-guided atheris run of each (skipped where atheris is not installed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from targets import TARGETS

from protocol.codec import pack
from protocol.entry import decode_entry
from protocol.frames import (
    BlobData,
    BlobGet,
    Clock,
    Entries,
    HaveBlobs,
    Ping,
    Want,
    WantBodies,
    encode_frame,
)

HERE = Path(__file__).resolve().parent
VECTORS = json.loads((HERE.parent / "vectors" / "entries.json").read_text())
WIRES = [bytes.fromhex(v["wire"]) for v in VECTORS["entries"]]
_ID = b"\x11" * 32


def seeds(name: str) -> list[bytes]:
    """Valid inputs to start from (the fuzzer mutates them; they must pass as they are)."""
    entries = [decode_entry(w) for w in WIRES]
    if name == "entry":
        return WIRES
    if name == "frame":
        return [encode_frame(f) for f in (
            Clock(((_ID, 3),), True), Entries(tuple(entries)), Want(((_ID, 1),)),
            WantBodies((_ID,)), HaveBlobs((_ID,)), BlobGet(1, _ID, "chunk", 0),
            BlobData(1, 0, b"abc", 3), Ping(7))]
    if name == "record":
        from protocol.records import KNOWN_KINDS
        kinds = sorted(KNOWN_KINDS)
        return [bytes([kinds.index(e.header.kind)]) + (e.body_bytes or pack({}))
                for e in entries if e.header.kind in KNOWN_KINDS]
    # session: op 0 (an encrypted frame) for each frame seed, then a timer jump
    script = b""
    for frame in seeds("frame"):
        if len(frame) < 256:
            script += bytes([0, len(frame)]) + frame
    return [script + bytes([2, 200])]


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_pass_the_targets(name: str) -> None:
    """Every seed is handled without a defect (and the seed corpus is not empty)."""
    corpus = seeds(name)
    assert corpus
    for data in corpus:
        TARGETS[name](data)


@pytest.mark.parametrize("name", sorted(TARGETS))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.binary(max_size=600))
def test_random_bytes_never_break_the_targets(name: str, data: bytes) -> None:
    """Arbitrary bytes: only the protocol's own errors, nothing invalid accepted."""
    TARGETS[name](data)


def _has_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _has_atheris(), reason="atheris is not installed")
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_short_coverage_guided_run(name: str, tmp_path: Path) -> None:
    """A few thousand atheris runs from the seed corpus find no defect (make test's short run;
    run.py's docstring says how to run a long one)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, data in enumerate(seeds(name)):
        (corpus / f"seed{i}").write_bytes(data)
    runs = 300 if name == "session" else 3000  # a session input costs a handshake (~15 ms)
    run = subprocess.run([sys.executable, str(HERE / "run.py"), name, f"-runs={runs}",
                          "-max_len=4096", f"-artifact_prefix={tmp_path}/", str(corpus)],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
