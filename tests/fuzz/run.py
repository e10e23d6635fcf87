"""Run one fuzz target under atheris (coverage-guided, libFuzzer options pass through).

    .venv/bin/python tests/fuzz/run.py entry|frame|record|session [libFuzzer args...]

A short run (what `make test` does through test_fuzz.py): ``-runs=3000``. A long one, for a
release or after touching protocol/: ``-max_total_time=3600 -jobs=2 corpus/NAME`` (keep the
corpus directory between runs; a crash writes ``crash-<sha1>`` with the input, to be added to
`SEEDS` in test_fuzz.py once fixed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["protocol"]):
    from targets import TARGETS


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: run.py {{{'|'.join(TARGETS)}}} [libFuzzer args...]")
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
