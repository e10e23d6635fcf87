"""The node as a user interface sees it: one interface, two implementations.

- `p2pnode.node.Node` runs the node in this process;
- `p2pnode.net.remote.RemoteNode` attaches to a `p2pnode run` serving the same home, through its
  local control API (127.0.0.1, the home's token).

Both satisfy `NodeAPI`, return the same values (the views of `p2pnode.store.models`, with raw
bytes ids; `Entry` objects; `Notice`s) and raise the same exceptions with the same messages, so
no screen of the app knows which one it has. A test runs the same assertions against both
(tests/p2pnode/test_api_contract.py).

`ACTIONS` is the fixed registry of what `perform` may run across the control API, by name: the
user actions of `p2pnode.actions`, `p2pnode.blobs.resources` and meeting mode's
(`p2pnode.meeting`). The control API looks a name up here and refuses any other; an in-process
`Node.perform` also runs other functions (tests and the node's own services use that), an
attached one never does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from p2pnode import actions, meeting
from p2pnode.blobs import resources
from p2pnode.events import NodeEvent
from p2pnode.store.inbox import Notice
from p2pnode.store.models import CircleDetail, CircleSummary, Resource, Shared

T = TypeVar("T")

ACTIONS: dict[str, Callable[..., Any]] = {
    function.__name__: function
    for function in (
        actions.set_profile,
        actions.my_profile,
        actions.announce_circle,
        actions.update_circle,
        actions.change_facilitators,
        actions.reschedule,
        actions.cancel_circle,
        actions.join_circle,
        actions.my_signup,
        actions.leave_circle,
        actions.leave_and_delete_signup,
        actions.decide_join,
        actions.list_joins,
        actions.delete_entries,
        actions.add_meeting_note,
        actions.rsvp,
        actions.give_feedback,
        actions.circle_author,
        actions.circle_calendar_file,
        resources.unshare_resource,
        meeting.open_meeting,
        meeting.update_meeting,
        meeting.finish_meeting,
        meeting.discard_meeting,
        meeting.meeting_roster,
        meeting.saved_plan,
        meeting.save_plan,
    )
}


@runtime_checkable
class NodeAPI(Protocol):
    """What the app (and anything else above the node) may use of a running node."""

    #: the node's home directory (the app writes calendar files beside it)
    home_path: Path

    @property
    def node_id(self) -> bytes:
        """This node's id (its Ed25519 public key)."""

    def events(self) -> AsyncIterator[NodeEvent]:
        """Events from now on (entries, peers, transfers); `Lagged` says how many a slow
        consumer lost."""

    async def status(self) -> dict[str, Any]: ...

    async def peers_info(self) -> list[dict[str, Any]]: ...

    async def circles(self, **filters: Any) -> list[CircleSummary]:
        """See `p2pnode.store.queries.list_circles` for the filters."""

    async def circle(self, circle_id: bytes) -> CircleDetail | None: ...

    async def resources(self, circle: bytes | None = None) -> list[Resource]: ...

    async def my_circles(self) -> dict[bytes, str]: ...

    async def take_notices(self) -> list[Notice]: ...

    async def preference(self, key: str) -> str | None: ...

    async def set_preference(self, key: str, value: str | None) -> None: ...

    def add_peer(self, address: str) -> None:
        """Keep a session with the peer at "host:port".

        Raises:
            InvalidInput: not HOST:PORT.
        """

    def fetch_progress(self, blob_id: bytes, output: str | None
                       ) -> AsyncIterator[dict[str, Any]]:
        """Download a resource from the peers that hold it; yields progress dicts, the last
        with `done` (and `path`) or `error`. Closing the iterator early cancels it."""

    #: whether quitting the app stops the node (an in-process node) or leaves it running (an
    #: attached one): the app says which, without knowing which implementation it has
    quitting_stops_node: bool

    async def share(self, path: str | Path, *, title: str | None = None,
                    circle: bytes | None = None, licence: str | None = None,
                    caption: str | None = None) -> Shared:
        """Copy a file (a path of the node's machine) into the node's blob store and publish
        it as a resource.

        Raises:
            InvalidInput: a bad field, or not a readable regular file (nothing is copied).
            NotFound: `circle` is not known here.
        """

    async def transfers(self) -> list[dict[str, Any]]:
        """Downloads running now, then those paused part-way (state ``paused``) on disk."""

    async def cancel_fetch(self, blob_id: bytes) -> bool:
        """Stop a running download for every follower (what arrived is kept)."""

    def export_progress(self, path: str | Path) -> AsyncIterator[dict[str, Any]]:
        """Write every entry to a new sneakernet file; progress dicts, the last with `done`.

        Raises:
            InvalidInput: `path` exists (never replaced).
        """

    def import_progress(self, path: str | Path) -> AsyncIterator[dict[str, Any]]:
        """Import a sneakernet file; progress dicts, the last ``{"done": True, "report":
        ImportReport}``.

        Raises:
            InvalidInput: not a readable export file.
        """

    async def doctor(self) -> dict[str, Any]:
        """`p2pnode doctor`'s checks for the running node (`p2pnode.doctor.diagnose`)."""

    async def perform(self, action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one of `ACTIONS` (e.g. ``actions.announce_circle``) against the node's home;
        its errors are raised as it raises them."""
