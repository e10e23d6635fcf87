"""`protocol/` is pure: no I/O, no clock, no event loop, none of our outer layers (DESIGN.md
"Layout and boundaries"). The direction of imports between all layers is `tests/test_layers.py`."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "protocol"

#: modules that do I/O, keep time, run event loops or start threads and processes
FORBIDDEN_MODULES = {
    "aiohttp",
    "asyncio",
    "multiprocessing",
    "os",
    "pathlib",
    "select",
    "selectors",
    "shutil",
    "signal",
    "socket",
    "sqlite3",
    "subprocess",
    "tempfile",
    "threading",
    "time",
    "urllib.request",
    "zeroconf",
    # our own outer layers
    "p2pnode",
    "textual",
    "tui",
}
#: calls that read a clock or open a file, as `name.attr` or a bare name
FORBIDDEN_CALLS = {
    "open",
    "time.time",
    "time.monotonic",
    "datetime.now",
    "datetime.utcnow",
    "datetime.today",
    "date.today",
    "datetime.datetime.now",
    "datetime.datetime.utcnow",
    "datetime.date.today",
}


def forbidden_import(name: str) -> bool:
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_MODULES)


def dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def violations(source: str, filename: str) -> list[str]:
    """Every forbidden import or call in one module's source."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if forbidden_import(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if forbidden_import(node.module):
                found.append(f"from {node.module} import ...")
            else:
                found += [
                    f"from {node.module} import {a.name}"
                    for a in node.names
                    if forbidden_import(f"{node.module}.{a.name}")
                ]
        elif isinstance(node, ast.Call):
            name = dotted(node.func)
            if name in FORBIDDEN_CALLS:
                found.append(f"call {name}() on line {node.lineno}")
    return [f"{filename}: {v}" for v in found]


PROTOCOL_FILES = sorted(PROTOCOL.glob("*.py"))


def test_the_checker_catches_what_it_forbids():
    """The AST check itself flags imports, from-imports and clock/file calls (so it can fail)."""
    bad = (
        "import asyncio\nimport os.path\nfrom time import monotonic\n"
        "from urllib import request\nimport datetime\nx = datetime.datetime.now()\n"
        "from datetime import date\ny = date.today()\nf = open('x')\nimport p2pnode.store\n"
    )
    assert len(violations(bad, "bad.py")) == 8
    good = (
        "import hashlib\nimport zoneinfo\nfrom urllib.parse import urlsplit\n"
        "from .entry import x\n"
    )
    assert violations(good, "good.py") == []


def test_protocol_has_modules_to_check():
    """The glob finds the package (a moved directory must not make the purity check vacuous)."""
    names = {p.name for p in PROTOCOL_FILES}
    assert {"entry.py", "feed.py", "codec.py", "identity.py", "sealing.py"} <= names


@pytest.mark.parametrize("path", PROTOCOL_FILES, ids=lambda p: p.name)
def test_protocol_module_does_no_io_and_reads_no_clock(path):
    """No module under protocol/ imports I/O, clock, thread or event-loop modules, or calls
    time.time / datetime.now / date.today / open."""
    assert violations(path.read_text(), f"protocol/{path.name}") == []


def loaded_after_importing(packages: list[str]) -> set[str]:
    """Top-level module names loaded by a fresh interpreter after importing every module of the
    given packages."""
    script = (
        "import importlib, json, pkgutil, sys\n"
        f"for name in {packages!r}:\n"
        "    package = importlib.import_module(name)\n"
        "    for info in pkgutil.iter_modules(package.__path__):\n"
        "        importlib.import_module(f'{name}.{info.name}')\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


def test_importing_protocol_loads_none_of_the_outer_layers():
    """Every protocol module imports without pulling in p2pnode, tui, textual, aiohttp, zeroconf,
    sqlite3 or asyncio."""
    loaded = loaded_after_importing(["protocol"])
    assert "protocol" in loaded
    assert loaded.isdisjoint({"p2pnode", "tui", "textual", "aiohttp", "zeroconf", "sqlite3",
                              "asyncio"})
