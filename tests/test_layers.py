"""The layers run one way, and a test says so (harlequin checks its non-UI code the same way).

    protocol  <-  p2pnode base (errors, config, files, events)  <-  p2pnode.store
              <-  p2pnode home, actions, calendar, meeting  <-  p2pnode.net, p2pnode.blobs
                  (siblings that never import each other)  <-  p2pnode.api  <-  p2pnode.node
              <-  p2pnode.cli, tui

An arrow points from a layer to one it may import. Every import counts: at module level, inside a
function, or under `TYPE_CHECKING` (a type-only upward import is still an upward dependency: give
the lower layer a `typing.Protocol` of what it needs instead, as `net/host.py` and
`blobs/host.py` do). The one import from `p2pnode` into `tui` is the launcher: `p2pnode.cli`
starts the app. Nothing outside `tui/` imports `textual`.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("protocol", "p2pnode", "tui")

#: layer name -> the layers it may import (itself included)
ALLOWED: dict[str, set[str]] = {
    "protocol": {"protocol"},
    "base": {"protocol", "base"},
    "store": {"protocol", "base", "store"},
    "core": {"protocol", "base", "store", "core"},
    "net": {"protocol", "base", "store", "core", "net"},
    "blobs": {"protocol", "base", "store", "core", "blobs"},
    "api": {"protocol", "base", "store", "core", "net", "blobs", "api"},
    "node": {"protocol", "base", "store", "core", "net", "blobs", "api", "node"},
    "cli": {"protocol", "base", "store", "core", "net", "blobs", "api", "node", "cli", "tui"},
    "tui": {"protocol", "base", "store", "core", "net", "blobs", "api", "node", "tui"},
}
_BASE = {"errors", "config", "files", "events"}
_CORE = {"home", "actions", "calendar", "meeting"}


def layer_of(module: str) -> str:
    """The layer of a dotted module name of ours (`p2pnode.net.peers` -> "net")."""
    parts = module.split(".")
    if parts[0] in ("protocol", "tui"):
        return parts[0]
    if len(parts) == 1:
        return "base"  # the package itself (its __init__ holds nothing)
    name = parts[1]
    if name in _BASE:
        return "base"
    if name in _CORE:
        return "core"
    if name in ("store", "net", "blobs", "cli", "node", "api"):
        return name
    if name in ("node_files", "doctor"):
        return "node"  # the node's own API beside node.py, and doctor's checks (reach net/)
    raise AssertionError(f"{module} is in no layer: add it to tests/test_layers.py")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(target: str, name: str) -> str:
    """`from target import name`: the module `target.name` when that is a module of ours (`from
    p2pnode import actions`), else `target` (`from p2pnode.node import Node`)."""
    candidate = ROOT.joinpath(*f"{target}.{name}".split("."))
    if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
        return f"{target}.{name}"
    return target


def imports_of(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, imported module) for every import of one of our packages in `source`."""
    found = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            found += [(node.lineno, resolve(target, a.name)) for a in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] in OURS]


def upward_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    mine = layer_of(module)
    bad = []
    for line, target in imports_of(source, module, is_package):
        theirs = layer_of(target)
        if theirs not in ALLOWED[mine]:
            bad.append(f"{module}:{line} ({mine}) imports {target} ({theirs})")
    return bad


SOURCES = sorted(
    p for package in OURS for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts
)


def test_every_package_has_modules_to_check():
    """The glob finds all three packages and the subpackages (a move cannot empty the check)."""
    layers = {layer_of(module_name(p)) for p in SOURCES}
    assert {"protocol", "base", "store", "core", "net", "blobs", "api", "node", "cli"} <= layers


def test_the_checker_catches_an_upward_import():
    """An upward import, a type-only one and a relative one are each caught (so the test can
    fail), and downward ones are not."""
    bad = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from p2pnode.node import Node\n"
        "from p2pnode import blobs\n"
        "def f():\n    from ..cli import main\n"
    )
    assert len(upward_imports(bad, "p2pnode.net.peers")) == 3
    good = "from p2pnode.store import queries\nfrom protocol.entry import Entry\nimport asyncio\n"
    assert upward_imports(good, "p2pnode.net.peers") == []
    assert upward_imports("from p2pnode.node import Node\n", "protocol.entry") != []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_imports_only_layers_below_it(path: Path):
    """Each module imports only its own layer and those below it (see the module docstring)."""
    module = module_name(path)
    assert upward_imports(path.read_text(), module, path.name == "__init__.py") == []


@pytest.mark.parametrize(
    "path", [p for p in SOURCES if p.parts[len(ROOT.parts)] != "tui"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_nothing_outside_tui_imports_textual(path: Path):
    """Only tui/ imports textual (the CLI starts the app through `tui`, never textual itself)."""
    tree = ast.parse(path.read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [n for n in names if n == "textual" or n.startswith("textual.")]


def test_importing_every_p2pnode_module_loads_no_ui():
    """A fresh interpreter importing every module of p2pnode (subpackages included) loads
    neither tui nor textual: the launcher imports the app only when asked to run it."""
    script = (
        "import importlib, json, pkgutil, sys\n"
        "import p2pnode\n"
        "for info in pkgutil.walk_packages(p2pnode.__path__, 'p2pnode.'):\n"
        "    if not info.name.endswith('__main__'):\n"
        "        importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert {"p2pnode.net.peers", "p2pnode.blobs.service", "p2pnode.store.derive"} <= loaded
    assert not {m for m in loaded if m.split(".")[0] in ("tui", "textual")}
