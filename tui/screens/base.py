"""What every screen of the app shares: access to the node, and the one place where a worker's
failure becomes a notification in plain words (never a traceback on screen).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from textual import on
from textual.screen import ModalScreen, Screen
from textual.worker import Worker, WorkerState

from p2pnode.errors import NodeError
from protocol.errors import InvalidRecordError, ProtocolError

if TYPE_CHECKING:
    from p2pnode.api import NodeAPI
    from tui.app import P2PApp

log = logging.getLogger(__name__)


def plain_error(error: BaseException) -> str:
    """What went wrong, in words a learner can act on."""
    if isinstance(error, InvalidRecordError):
        return f"{error.field}: {error.reason}" if error.field else str(error.reason)
    if isinstance(error, NodeError | ProtocolError):
        return str(error)
    if isinstance(error, OSError):
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        return f"{error.strerror or error}{where}"
    return f"something went wrong ({type(error).__name__}); the details are in node.log"


def report_worker_failure(event: Worker.StateChanged, notify) -> None:
    """Turn a failed worker into a notification; log the details."""
    if event.state is not WorkerState.ERROR:
        return
    error = event.worker.error
    if error is None:
        return
    if isinstance(error, NodeError | ProtocolError | OSError):
        log.info("%s failed: %s", event.worker.name, error)
    else:
        log.error("%s failed", event.worker.name, exc_info=error)
    notify(plain_error(error), title="Could not do that", severity="error", timeout=8,
           markup=False)


class NodeScreen(Screen):
    """A full screen of the app."""

    @property
    def node(self) -> NodeAPI:
        return self.p2p.node

    @property
    def p2p(self) -> P2PApp:
        return self.app  # type: ignore[return-value]

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        report_worker_failure(event, self.notify)


class NodeModal(ModalScreen):
    """A dialog over another screen; results go back through `dismiss`."""

    BINDINGS = [("escape", "dismiss_none", "Close")]

    @property
    def node(self) -> NodeAPI:
        return self.p2p.node

    @property
    def p2p(self) -> P2PApp:
        return self.app  # type: ignore[return-value]

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        report_worker_failure(event, self.notify)
