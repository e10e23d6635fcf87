"""Messages the node side of the app posts to its screens (node-to-UI).

Workers that call the node post these; frequent ones do not bubble and can replace an unhandled
predecessor, so a burst of entries from a peer costs one table refresh, not hundreds.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message

from p2pnode.store.inbox import Notice


class NodeChanged(Message, bubble=False):
    """Entries were stored (from a peer, an import or this app): views may be stale."""

    def __init__(self, kinds: frozenset[str], foreign: int) -> None:
        super().__init__()
        self.kinds = kinds
        #: how many of them came from someone else
        self.foreign = foreign

    def can_replace(self, message: Message) -> bool:
        """A newer NodeChanged supersedes this one: it takes over our kinds and count."""
        if not isinstance(message, NodeChanged):
            return False
        message.kinds = message.kinds | self.kinds
        message.foreign += self.foreign
        return True


class StatusUpdated(Message, bubble=False):
    """The node's status (peers, network, sync activity) for the status bar."""

    def __init__(self, status: dict[str, Any], syncing: int) -> None:
        super().__init__()
        self.status = status
        #: entries received from peers in the last few seconds
        self.syncing = syncing

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatusUpdated)


class NoticesTaken(Message):
    """Notices about my circles; `away` when they happened while the app was closed."""

    def __init__(self, notices: list[Notice], away: bool) -> None:
        super().__init__()
        self.notices = notices
        self.away = away


class CircleAnnounced(Message):
    """A circle arrived from a peer (shown as a notification)."""

    def __init__(self, name: str, who: str) -> None:
        super().__init__()
        self.name = name
        self.who = who
