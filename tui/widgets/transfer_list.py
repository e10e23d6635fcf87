"""The downloads in progress (and those just ended), one line each: the title, a progress bar
and ``45%  3.2/7.0 MiB · 1.2 MB/s · ETA 0:04 · 2 peers`` (or how it ended). Follows the app's
`Transfers`; `refresh_from` updates rows in place, so bars move smoothly.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import ProgressBar, Static

from tui.transfers import Transfer


class TransferRow(Horizontal):
    DEFAULT_CSS = """
    TransferRow {
        height: 1;
    }
    TransferRow .transfer-title {
        width: 20;
        padding: 0 1 0 0;
    }
    TransferRow ProgressBar {
        width: 20;
    }
    TransferRow .transfer-summary {
        width: 1fr;
        color: $text-muted;
    }
    """

    def __init__(self, transfer: Transfer) -> None:
        super().__init__()
        self.transfer = transfer

    def compose(self) -> ComposeResult:
        yield Static(classes="transfer-title")
        yield ProgressBar(show_eta=False, show_percentage=False)
        yield Static(classes="transfer-summary")

    def on_mount(self) -> None:
        self.show()

    def show(self) -> None:
        t = self.transfer
        title = t.title if len(t.title) <= 19 else t.title[:18] + "…"
        self.query_one(".transfer-title", Static).update(Text(title))
        bar = self.query_one(ProgressBar)
        if t.total_bytes:
            bar.update(total=t.total_bytes, progress=t.done_bytes)
        elif t.path is not None:
            bar.update(total=1, progress=1)
        self.query_one(".transfer-summary", Static).update(Text(t.summary()))


class TransferList(Vertical):
    """Every download of this app session, newest last; hidden while there is none."""

    DEFAULT_CSS = """
    TransferList {
        height: auto;
        max-height: 8;
        padding: 0 1;
        border-top: solid $primary;
    }
    """

    def on_mount(self) -> None:
        self.display = False

    def refresh_from(self, transfers: list[Transfer]) -> None:
        rows = {row.transfer.blob: row for row in self.query(TransferRow)}
        for transfer in transfers:
            row = rows.get(transfer.blob)
            if row is None:
                self.mount(TransferRow(transfer))
            else:
                row.transfer = transfer  # downloaded again: the same line follows it
                row.show()
        self.display = bool(transfers)
