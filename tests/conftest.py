"""Shared fixtures: the known-answer vectors, fresh identities, and node homes in tmp_path.

Reusable builders (record bodies, hand-signed feeds) live in `builders.py` beside this file.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import identity_from_seed

from p2pnode.home import Home
from p2pnode.store.database import Store
from protocol.identity import Identity

VECTORS_PATH = Path(__file__).parent / "vectors" / "entries.json"
_SHARED_VECTORS = Path("/work/shared/vectors/entries.json")


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    """DESIGN.md's known-answer vectors (tests/vectors/entries.json; a clone carries its copy)."""
    if not VECTORS_PATH.exists() and _SHARED_VECTORS.exists():
        VECTORS_PATH.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_SHARED_VECTORS, VECTORS_PATH)
    return json.loads(VECTORS_PATH.read_text())


@pytest.fixture
def identity_factory() -> Callable[[], Identity]:
    """Make distinct identities from fixed seeds (deterministic, so failures reproduce)."""
    counter = itertools.count(1)

    def make(label: str | None = None) -> Identity:
        return identity_from_seed(label or f"test identity {next(counter)}")

    return make


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """An empty store in a real SQLite file."""
    with Store(tmp_path / "store.sqlite3") as opened:
        yield opened


@pytest.fixture
def home_factory(tmp_path: Path) -> Iterator[Callable[[str], Home]]:
    """Create node homes under tmp_path by name; all are closed at the end of the test."""
    made: list[Home] = []

    def make(name: str = "home") -> Home:
        home = Home.create(tmp_path / name)
        made.append(home)
        return home

    yield make
    for home in made:
        home.close()


@pytest.fixture
def home(home_factory: Callable[[str], Home]) -> Home:
    """A fresh node home (new keys, empty store) in tmp_path."""
    return home_factory("home")
