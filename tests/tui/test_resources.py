"""The resources screen (issue 11 item 1) on real nodes on loopback: a file Ben shares appears
live in my app and downloads with a moving bar into an identical file; a download is cancelled
midway and kept for a resume; a peer that lies about a chunk is a warning, not a crash; sharing
through the form (path, title, circle, licence) publishes a resource, and a bad path is a line
in the dialog that writes nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from textual.widgets import Input, Select, Static
from tui_helpers import notifications, settle, two_nodes, wait_for

from p2pnode import actions
from protocol.blobs import CHUNK_SIZE
from tui.screens.resources import ResourcesScreen
from tui.widgets.keyed_table import KeyedTable
from tui.widgets.transfer_list import TransferRow


def titles(pilot) -> list[str]:
    table = pilot.app.screen.query_one("#resources", KeyedTable)
    return [str(table.get_row(key)[0]) for key in table.keys]


def cell(pilot, column: int) -> str:
    table = pilot.app.screen.query_one("#resources", KeyedTable)
    return str(table.get_row_at(0)[column]) if table.row_count else ""


async def open_resources(pilot) -> ResourcesScreen:
    await pilot.press("2")
    await settle(pilot)
    assert isinstance(pilot.app.screen, ResourcesScreen)
    return pilot.app.screen


async def test_a_shared_file_appears_live_and_downloads_with_a_moving_bar(
        tmp_path, nodes, open_app, eventually):
    """Ben shares a file while my app shows Resources: it appears without a key press, with
    one holder; enter downloads it, the bar's progress rises to the total, the saved file is
    identical and the app says where it is."""
    ben = await nodes.start("ben", upload_rate=500_000)
    await ben.perform(actions.set_profile, "Ben")
    me = await nodes.start("me", peers=[ben])
    await eventually(lambda: ben.peers.open_connections(), timeout=10)
    data = os.urandom(8 * CHUNK_SIZE)
    (tmp_path / "week1.pdf").write_bytes(data)
    async with open_app(me, welcome=False) as pilot:
        await open_resources(pilot)
        await ben.share(tmp_path / "week1.pdf", title="Week 1 notes", licence="CC-BY")
        await wait_for(pilot, lambda: titles(pilot) == ["Week 1 notes"]
                       and cell(pilot, 3) == "1")
        row = [str(c) for c in pilot.app.screen.query_one(KeyedTable).get_row_at(0)]
        assert row[:6] == ["Week 1 notes", "2.0 MiB", "-", "1", "book", "CC-BY"]
        assert row[7] == f"Ben ({ben.identity.fingerprint})"
        await pilot.press("enter")
        seen: list[float] = []

        def finished() -> bool:
            rows = list(pilot.app.screen.query(TransferRow))
            if rows:
                seen.append(rows[0].query_one("ProgressBar").progress)
            transfer = pilot.app.transfers.items.get(ben_blob(pilot))
            return transfer is not None and transfer.path is not None

        await wait_for(pilot, finished)
        transfer = next(iter(pilot.app.transfers.items.values()))
        assert Path(transfer.path).read_bytes() == data
        assert Path(transfer.path).name == "Week 1 notes.pdf"
        assert Path(transfer.path).parent == me.home_path / "downloads"
        assert any(0 < p < len(data) for p in seen), seen  # the bar moved through the middle
        await wait_for(pilot, lambda: pilot.app.screen.query_one(TransferRow).query_one(
            "ProgressBar").progress == len(data))
        await wait_for(pilot, lambda: cell(pilot, 2) == "held")
        assert any("Downloaded" in n and transfer.path in n for n in notifications(pilot.app))


def ben_blob(pilot) -> bytes | None:
    return next(iter(pilot.app.transfers.items), None)


async def test_cancel_midway_keeps_what_arrived(tmp_path, nodes, open_app, eventually):
    """x stops a slow download: the app says it stopped, the node lists it paused with the
    bytes kept, and enter resumes it to an identical file."""
    ben = await nodes.start("ben", upload_rate=400_000)
    await ben.perform(actions.set_profile, "Ben")
    me = await nodes.start("me", peers=[ben])
    data = os.urandom(12 * CHUNK_SIZE)
    (tmp_path / "lecture.mp4").write_bytes(data)
    shared = await ben.share(tmp_path / "lecture.mp4", title="Lecture")
    async with open_app(me, welcome=False) as pilot:
        await open_resources(pilot)
        await wait_for(pilot, lambda: titles(pilot) == ["Lecture"]
                       and cell(pilot, 3) == "1")
        await pilot.press("enter")
        await wait_for(pilot, lambda: (pilot.app.transfers.items[shared.blob_id].done_bytes
                                       >= CHUNK_SIZE))
        await pilot.press("x")
        await wait_for(pilot, lambda: pilot.app.transfers.items[shared.blob_id].error)
        assert pilot.app.transfers.items[shared.blob_id].error.startswith("cancelled")
        assert any("Download stopped" in n for n in notifications(pilot.app))
        (paused,) = await me.transfers()
        assert paused["state"] == "paused" and 0 < paused["done_bytes"] < len(data)
        await pilot.press("enter")
        await wait_for(pilot, lambda: pilot.app.transfers.items[shared.blob_id].path)
        assert Path(pilot.app.transfers.items[shared.blob_id].path).read_bytes() == data


async def test_a_lying_peer_is_a_warning_and_the_file_still_arrives(
        tmp_path, nodes, open_app, eventually):
    """Two holders, one sends garbage for every chunk: the download completes from the honest
    one, verified, and the app warns that a peer sent bad data (no crash)."""
    data = os.urandom(8 * CHUNK_SIZE)
    (tmp_path / "book.pdf").write_bytes(data)
    ben = await nodes.start("ben")
    liar = await nodes.start("liar")
    await ben.perform(actions.set_profile, "Ben")
    shared = await ben.share(tmp_path / "book.pdf", title="Book")
    await liar.share(tmp_path / "book.pdf", title="Book")
    load, honest_load = liar.blobs._load_chunk, ben.blobs._load_chunk

    def corrupt(blob_id: bytes, index: int) -> list[bytes]:
        pieces = [bytearray(piece) for piece in load(blob_id, index)]
        pieces[0][0] ^= 0xFF
        return [bytes(piece) for piece in pieces]

    def slowly(blob_id: bytes, index: int) -> list[bytes]:
        time.sleep(0.01)  # the liar's answers arrive first
        return honest_load(blob_id, index)

    liar.blobs._load_chunk = corrupt
    ben.blobs._load_chunk = slowly
    me = await nodes.start("me", peers=[ben, liar])
    async with open_app(me, welcome=False) as pilot:
        await open_resources(pilot)
        await wait_for(pilot, lambda: titles(pilot) == ["Book", "Book"]  # each shared it
                       and cell(pilot, 3) == "2")
        await pilot.press("enter")
        await wait_for(pilot, lambda: pilot.app.transfers.items[shared.blob_id].path)
        assert Path(pilot.app.transfers.items[shared.blob_id].path).read_bytes() == data
        assert any("A peer sent bad data" in n for n in notifications(pilot.app))
        assert pilot.app.is_running


async def test_sharing_through_the_form(tmp_path, nodes, open_app, eventually):
    """s opens the form; a missing file is refused in the dialog and nothing is published;
    the real path with a title, a circle and a licence is published and listed as held, and
    reaches Ben."""
    ben, me, circle_id = await two_nodes(nodes, eventually)
    (tmp_path / "slides.pdf").write_bytes(os.urandom(40_000))
    async with open_app(me, welcome=False) as pilot:
        screen = await open_resources(pilot)
        assert screen.query_one("#resource-empty", Static).display
        await pilot.press("s")
        await settle(pilot)
        form = pilot.app.screen
        form.query_one("#path", Input).value = str(tmp_path / "nothing.pdf")
        form.query_one("#title", Input).value = "Slides"
        form.query_one("#title", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        assert "is not a file" in str(form.query_one("#error", Static).render())
        assert (await me.status())["entries_by_kind"].get("resource") is None
        form.query_one("#path", Input).value = str(tmp_path / "slides.pdf")
        form.query_one("#circle", Select).value = circle_id
        form.query_one("#licence", Select).value = "CC-BY-SA"
        await pilot.click("#ok")
        await wait_for(pilot, lambda: titles(pilot) == ["Slides"])
        row = [str(c) for c in pilot.app.screen.query_one(KeyedTable).get_row_at(0)]
        assert row[2] == "held" and row[5] == "CC-BY-SA" and row[6] == "Python for Everybody"
    (resource,) = await eventually(ben.resources, timeout=10)
    assert resource.title == "Slides" and resource.circle == circle_id


async def test_path_completion_offers_what_is_on_disk(tmp_path, nodes, open_app):
    """Typing the start of a file name suggests the rest (directories first)."""
    from tui.screens.share import PathSuggester

    (tmp_path / "notes-week1.pdf").write_bytes(b"x")
    (tmp_path / "notes").mkdir()
    suggester = PathSuggester()
    assert await suggester.get_suggestion(f"{tmp_path}/not") == f"{tmp_path}/notes/"
    assert await suggester.get_suggestion(f"{tmp_path}/notes-") == f"{tmp_path}/notes-week1.pdf"
    assert await suggester.get_suggestion(f"{tmp_path}/zzz") is None
