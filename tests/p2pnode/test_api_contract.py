"""`p2pnode.api.NodeAPI`'s contract, the same assertions against both implementations: a `Node`
in this process, and a `RemoteNode` attached to a `p2pnode run` subprocess through the control
API (real processes and sockets on 127.0.0.1, mDNS off).

What the app relies on: views come back as the same dataclasses with raw bytes ids (tuples stay
tuples), actions write signed entries, refusals are the same exception types with the same
messages, and the event feed delivers entries written by a CLI process or by a peer, peers
coming up, and `Lagged` when a burst overflows a subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from builders import DAY_MS, Feed, circle_body, identity_from_seed

from p2pnode import actions, meeting
from p2pnode.api import NodeAPI
from p2pnode.errors import InvalidInput, NotAllowed, NotFound
from p2pnode.events import EntryArrived, Lagged, NodeEvent, PeerUp, TransferFinished
from p2pnode.net.remote import RemoteNode
from p2pnode.store.exchange import FORMAT, VERSION
from p2pnode.store.inbox import Notice
from p2pnode.store.models import CircleDetail, CircleSummary, Person, Resource
from protocol.codec import pack
from protocol.errors import InvalidRecordError
from protocol.identity import fingerprint, node_id_text

#: more than an event subscriber's queue holds (events._QUEUE_SIZE = 1000)
_BURST = 1200


@dataclass
class Subject:
    """The node under test, however it is reached, and the address peers dial it at."""

    api: NodeAPI
    home: Path
    peer_address: str


@pytest.fixture(params=["in-process", "attached"])
async def subject(request, nodes, cli, tmp_path) -> AsyncIterator[Subject]:
    """A node serving tmp_path/subject: a `Node` here, or `p2pnode run` reached by RemoteNode."""
    home = tmp_path / "subject"
    if request.param == "in-process":
        node = await nodes.start("subject", control=True)  # CLI writes notify it, as `run`
        yield Subject(node, home, f"127.0.0.1:{node.port}")
        return
    running = await cli.start(home)
    remote = RemoteNode(home)
    await remote.start()
    try:
        yield Subject(remote, home, running.address)
    finally:
        await remote.close()


@pytest.fixture
async def record(eventually) -> AsyncIterator[Any]:
    """``seen = await record(api)``: events from now on, appended as they come."""
    tasks: list[asyncio.Task[None]] = []

    async def start(api: NodeAPI) -> list[NodeEvent]:
        seen: list[NodeEvent] = []

        async def consume() -> None:
            async for event in api.events():
                seen.append(event)

        tasks.append(asyncio.get_running_loop().create_task(consume(), name="test-recorder"))
        await asyncio.sleep(0)  # an in-process subscription exists after the first step
        if isinstance(api, RemoteNode):
            await eventually(lambda: api.feeds_open, timeout=10)
        return seen

    yield start
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(BaseException):
            await task


def soon(days: int = 7) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() + days * 86400))


async def test_queries_return_the_views_with_bytes_ids(subject):
    """circles (with filters), circle, my_circles, status, resources, peers, preferences:
    the same dataclasses and types whichever implementation answers."""
    api = subject.api
    assert isinstance(api, NodeAPI)  # every member of the interface is there
    await api.perform(actions.set_profile, "Ana")
    entry = await api.perform(actions.announce_circle, circle_body(
        [], name="Python for Everybody", start=soon(), topics=["python"]))
    await api.perform(actions.announce_circle, circle_body(
        [], name="Guitar", start=soon(9), topics=["music"], language="fr"))

    listed = await api.circles()
    assert [c.name for c in listed] == ["Python for Everybody", "Guitar"]
    first = listed[0]
    assert isinstance(first, CircleSummary) and first.id == entry.id
    assert isinstance(first.id, bytes) and first.topics == ("python",)
    assert first.author == Person(api.node_id, "Ana") and first.facilitators == (first.author,)
    assert [c.name for c in await api.circles(search="pyth")] == ["Python for Everybody"]
    assert [c.name for c in await api.circles(topic="music", language="fr")] == ["Guitar"]
    assert await api.circles(search="nothing like it") == []

    detail = await api.circle(entry.id)
    assert isinstance(detail, CircleDetail) and detail.summary == first
    assert isinstance(detail.meetings, tuple) and len(detail.meetings) == 6
    assert await api.circle(b"\x00" * 32) is None

    assert await api.my_circles() == {c.id: "facilitating" for c in listed}
    status = await api.status()
    assert status["node_id"] == api.node_id and status["name"] == "Ana"
    assert status["entries_by_kind"] == {"profile": 1, "circle": 2}
    assert await api.resources() == [] and await api.resources(entry.id) == []
    assert await api.peers_info() == []
    assert await api.take_notices() == []
    assert await api.preference("welcomed") is None
    await api.set_preference("welcomed", "1")
    assert await api.preference("welcomed") == "1"
    assert api.home_path == subject.home


async def test_an_action_writes_a_signed_entry(subject):
    """perform(actions.X) returns the Entry it appended: signed by this node, verifiable."""
    entry = await subject.api.perform(actions.set_profile, "Bea")  # the first entry of the feed
    assert entry.author == subject.api.node_id and entry.kind == "profile" and entry.seq == 1
    entry.verify()
    assert entry.body()["name"] == "Bea"
    assert (await subject.api.status())["name"] == "Bea"
    ics = await subject.api.perform(actions.circle_calendar_file, (await subject.api.perform(
        actions.announce_circle, circle_body([], start=soon()))).id)
    assert isinstance(ics, bytes) and ics.startswith(b"BEGIN:VCALENDAR")


async def test_refusals_keep_their_type_and_message(subject):
    """An action's refusal is raised as the node raised it: same class, same words, and a
    schema error keeps its field."""
    api = subject.api
    unknown = b"\x07" * 32
    with pytest.raises(InvalidInput) as caught:
        await api.perform(actions.announce_circle, circle_body([], start=soon()))
    assert str(caught.value) == "set your name first: p2pnode profile --name NAME"
    await api.perform(actions.set_profile, "Ana")
    with pytest.raises(NotFound) as caught:
        await api.perform(actions.rsvp, unknown, date=soon())
    assert str(caught.value) == f"no circle {fingerprint(unknown)} is known here (yet)"
    circle = await api.perform(actions.announce_circle, circle_body([], start=soon()))
    with pytest.raises(InvalidInput) as caught:
        await api.perform(actions.leave_circle, circle.id)
    assert str(caught.value) == (f"you are not signed up for {fingerprint(circle.id)};"
                                 " nothing to leave")
    with pytest.raises(InvalidRecordError) as caught:
        await api.perform(actions.announce_circle, circle_body([], name="", start=soon()))
    assert caught.value.field == "name" and str(caught.value).startswith("name: ")
    with pytest.raises(InvalidInput, match="HOST:PORT"):
        api.add_peer("not an address")
    # nothing else was written
    assert (await api.status())["entries_by_kind"] == {"profile": 1, "circle": 1}


async def test_the_event_feed_delivers_a_cli_write(subject, record, cli, eventually):
    """An entry written by a `p2pnode profile` process on the same home arrives as an own
    EntryArrived, with its bytes ids."""
    seen = await record(subject.api)
    done = await cli.run(subject.home, "profile", "--name", "Cleo")
    assert done.returncode == 0, done.stderr
    arrived = await eventually(lambda: [e for e in seen if isinstance(e, EntryArrived)],
                               timeout=10)
    assert arrived[0].kind == "profile" and arrived[0].own is True
    assert arrived[0].author == subject.api.node_id and arrived[0].seq == 1


async def test_the_event_feed_delivers_a_peer_and_its_entries(subject, record, nodes,
                                                               eventually):
    """A peer connecting is a PeerUp; its sign-up to my circle an EntryArrived not our own,
    then a Notice taken once."""
    api = subject.api
    await api.perform(actions.set_profile, "Ana")
    mine = await api.perform(actions.announce_circle, circle_body([], name="Mine",
                                                                 start=soon()))
    seen = await record(api)
    ben = await nodes.start("ben", peers=[subject.peer_address])
    await eventually(lambda: ben.circle(mine.id), timeout=10)
    join = await ben.perform(actions.join_circle, mine.id, "Ben", contact="ben@example.org")
    await eventually(lambda: any(isinstance(e, EntryArrived) and e.entry_id == join.id
                                 for e in seen), timeout=10)
    (arrived,) = [e for e in seen if isinstance(e, EntryArrived) and e.entry_id == join.id]
    assert arrived == EntryArrived(join.id, ben.node_id, join.seq, "join", False)
    assert any(isinstance(e, PeerUp) and e.node_id == ben.node_id for e in seen)
    (notice,) = await api.take_notices()
    assert isinstance(notice, Notice) and notice.kind == "signed-up" and notice.circle == mine.id
    assert await api.take_notices() == []
    (peer,) = await api.peers_info()
    assert peer["node_id"] == ben.node_id and peer["connected"] is True
    (signup,) = await api.perform(actions.list_joins, mine.id)  # the sign-ups screen's data
    assert signup["join_id"] == join.id and signup["node_id"] == ben.node_id
    assert signup["details"]["contact"] == "ben@example.org"
    accept = await api.perform(actions.decide_join, join.id, True)
    assert accept.kind == "join.accept" and accept.author == api.node_id


async def test_a_burst_larger_than_the_queue_arrives_as_lagged(subject, record, cli,
                                                               eventually, tmp_path):
    """Importing more entries at once than a subscriber's queue holds: the feed says Lagged
    with the count dropped, and dropped plus delivered is every entry."""
    bulk = Feed(identity_from_seed("bulk author"), start_ms=int(time.time() * 1000) - DAY_MS)
    bulk.fill(_BURST)
    path = tmp_path / "bulk.p2pu"
    path.write_bytes(pack({"format": FORMAT, "version": VERSION})
                     + b"".join(pack(e.wire()) for e in bulk.entries))
    seen = await record(subject.api)
    done = await cli.run(subject.home, "import", str(path))
    assert done.returncode == 0, done.stderr

    def accounted() -> int:
        delivered = sum(1 for e in seen if isinstance(e, EntryArrived)
                        and e.author == bulk.node_id)
        return delivered + sum(e.missed for e in seen if isinstance(e, Lagged))

    await eventually(lambda: accounted() >= _BURST, timeout=20,
                     message=lambda: f"{accounted()} of {_BURST} accounted for")
    lagged = [e for e in seen if isinstance(e, Lagged)]
    assert lagged and all(e.missed > 0 for e in lagged)
    assert accounted() == _BURST


async def test_a_download_reports_progress_and_lands_where_asked(subject, record, nodes,
                                                                 eventually, tmp_path):
    """A resource a peer shares is listed with its holder, downloaded with progress dicts
    ending in `done` at the path asked for (identical bytes), announced by TransferFinished,
    and then listed as held here."""
    api = subject.api
    ben = await nodes.start("ben", peers=[subject.peer_address])
    await ben.perform(actions.set_profile, "Ben")
    data = os.urandom(600_000)  # three chunks
    (tmp_path / "notes.pdf").write_bytes(data)
    shared = await ben.blobs.share(tmp_path / "notes.pdf", title="Week 1 notes")

    async def listed() -> list[Resource]:
        return [r for r in await api.resources() if r.holders]

    (resource,) = await eventually(listed, timeout=10)
    assert resource.blob == shared.blob_id and resource.holders == (ben.node_id,)
    assert resource.title == "Week 1 notes" and resource.held is False
    seen = await record(api)
    output = tmp_path / "downloads" / "notes.pdf"
    output.parent.mkdir()
    updates = [u async for u in api.fetch_progress(shared.blob_id, str(output))]
    assert updates[-1]["done"] is True and updates[-1]["size"] == len(data)
    assert all(u["blob"] == shared.blob_id for u in updates)
    assert output.read_bytes() == data
    await eventually(lambda: any(isinstance(e, TransferFinished) and e.ok
                                 and e.blob_id == shared.blob_id for e in seen), timeout=10)
    (resource,) = await api.resources()
    assert resource.held is True


async def test_meeting_mode_runs_through_perform(subject, nodes, eventually):
    """Meeting mode's functions (p2pnode.meeting) are actions of the registry: the roster with
    a peer's RSVP, the remembered plan, a draft saved and resumed as the same MeetingDraft, and
    one signed note at the end; a finished meeting refuses changes with the same words."""
    api = subject.api
    await api.perform(actions.set_profile, "Ana")
    circle = (await api.perform(actions.announce_circle, circle_body([], start=soon()))).id
    date = (await api.circle(circle)).meetings[0].date
    ben = await nodes.start("ben", peers=[subject.peer_address])
    await eventually(lambda: ben.circle(circle), timeout=10)
    await ben.perform(actions.join_circle, circle, "Ben")
    await ben.perform(actions.rsvp, circle, date=date, attending=True)

    async def roster() -> list[dict[str, Any]]:
        found = await api.perform(meeting.meeting_roster, circle, date)
        return found if found and found[0]["rsvp"] else []

    (person,) = await eventually(roster, timeout=10)
    assert person["node_id"] == ben.node_id and person["name"] == "Ben"
    assert person["status"] == "pending" and person["key"] == node_id_text(ben.node_id)

    await api.perform(meeting.save_plan, circle, [5, 60, 15, 10])
    assert await api.perform(meeting.saved_plan, circle) == (5, 60, 15, 10)
    draft = await api.perform(meeting.open_meeting, circle, date, now=1000.0)
    assert isinstance(draft, meeting.MeetingDraft) and draft.plan == (5, 60, 15, 10)
    changed = meeting.add_item(meeting.start(meeting.set_present(draft, person["key"]), 1000.0),
                               "plus", "pair programming")
    assert await api.perform(meeting.update_meeting, changed) == changed
    assert await api.perform(meeting.open_meeting, circle, date, now=2000.0) == changed

    done = await api.perform(meeting.finish_meeting, circle, date, now=1100.0)
    assert done.finished and done.paused
    assert await api.perform(meeting.finish_meeting, circle, date, now=1200.0) == done
    (note,) = [n for m in (await api.circle(circle)).meetings for n in m.notes]
    assert note["attendance"] == 1 and note["plus"] == ["pair programming"]
    assert (await api.status())["entries_by_kind"]["meeting.note"] == 1
    with pytest.raises(NotAllowed) as caught:
        await api.perform(meeting.update_meeting, changed)
    assert str(caught.value) == "this meeting's note is already written"

    rehearsal = await api.perform(meeting.open_meeting, circle, None, now=3000.0)
    assert rehearsal.dry_run
    assert await api.perform(meeting.discard_meeting, circle, rehearsal.date) is True
