"""Share a file: a path (typed, with completion, or picked in a directory tree), a title, the
circle it belongs to and its licence. The node checks everything before copying a byte
(`NodeAPI.share`); a refusal stays in the dialog as one line, and the dialog closes with what
was shared.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.suggester import Suggester
from textual.widgets import DirectoryTree, Input, Label, Select, Static

from p2pnode.errors import InvalidInput
from protocol.records import LICENCES
from tui.screens.forms import Dialog

_TITLE_LIMIT = 128


class PathSuggester(Suggester):
    """Completes a path from what is on disk: the first entry (directories first, no hidden
    ones unless a dot was typed) whose name starts with the last part typed."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        expanded = os.path.expanduser(value)
        directory, prefix = os.path.split(expanded)
        try:
            names = sorted(os.listdir(directory or "."))
        except OSError:
            return None
        names = [n for n in names if n.startswith(prefix) and n != prefix
                 and (prefix.startswith(".") or not n.startswith("."))]
        if not names:
            return None
        dirs = [n for n in names if os.path.isdir(os.path.join(directory or ".", n))]
        name = (dirs or names)[0]
        completed = name + ("/" if name in dirs else "")
        return value[: len(value) - len(prefix)] + completed


class VisibleFiles(DirectoryTree):
    """The directory tree without hidden files and folders (type a path for those)."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [path for path in paths if not path.name.startswith(".")]


class ShareForm(Dialog):
    """Returns the `Shared` record once the node has copied and published the file."""

    TITLE_TEXT = "Share a file"
    OK = "Share"
    DEFAULT_CSS = """
    ShareForm #tree {
        height: 6;
        margin-bottom: 1;
    }
    """

    def __init__(self, circles: list[tuple[str, bytes]], start: Path | None = None) -> None:
        super().__init__()
        self.circles = circles
        self.start = start or Path.home()

    def body(self) -> ComposeResult:
        yield Label("File (type a path; → completes it; or pick below)")
        yield Input(placeholder=str(self.start / "notes.pdf"), id="path",
                    suggester=PathSuggester())
        yield VisibleFiles(self.start, id="tree")
        yield Label("Title (default: the file's name)")
        yield Input(id="title", max_length=_TITLE_LIMIT)
        yield Select(self.circles, prompt="Circle (optional)", id="circle")
        yield Select([(licence, licence) for licence in LICENCES],
                     prompt="Licence (optional)", id="licence")
        yield Static("The file is copied into this node's home and offered to every peer;"
                     " they download it from you and from each other, verified.",
                     classes="hint")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#path", Input).focus()
        self.query_one(".dialog").add_class("wide")

    @on(DirectoryTree.FileSelected)
    def _picked(self, event: DirectoryTree.FileSelected) -> None:
        self.query_one("#path", Input).value = str(event.path)
        self.query_one("#title", Input).focus()

    def submit(self) -> None:
        if self.focused is self.query_one("#path", Input):
            self.query_one("#title", Input).focus()  # Enter in the path box moves on
            return
        path = self.text("path")
        if not path:
            self.show_error("give the file to share")
            return
        self.show_error("")
        self.share(Path(path).expanduser(), self.text("title") or None, self.chosen("circle"),
                   self.chosen("licence"))

    @work(exclusive=True, group="share", exit_on_error=False)
    async def share(self, path: Path, title: str | None, circle: bytes | None,
                    licence: str | None) -> None:
        self.query_one("#error", Static).update("copying and publishing…")
        try:
            shared = await self.node.share(path, title=title, circle=circle, licence=licence)
        except (InvalidInput, OSError) as exc:
            self.show_error(str(exc) if isinstance(exc, InvalidInput)
                            else f"cannot read {path}: {exc.strerror or exc}")
            return
        except Exception as exc:  # NotFound, BlobStoreError: still one line in the dialog
            self.show_error(str(exc))
            return
        self.dismiss(shared)
