"""A full disk (issue 12, item 4): reads keep working, the node keeps running quietly, logs once,
refuses what it cannot store without scoring the peer down, and resumes by itself.

Two ways to fill the disk:
- in-process nodes: SQLite's ``max_page_count`` pragma caps the database at its current size,
  which SQLite reports exactly as a full disk (SQLITE_FULL, "database or disk is full");
- real processes: a 3 MiB tmpfs mounted in a private mount namespace (``unshare -m``, root only;
  skipped otherwise), filled with a file until ENOSPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from builders import circle_body

from p2pnode import node as node_module
from protocol import replication


def cap_database(home, extra_pages: int = 0) -> None:
    """Let the home's database grow by at most `extra_pages` pages (0: full now)."""
    conn = home.store.conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + extra_pages}")


def circle(name: str) -> dict:
    import datetime as dt
    start = (dt.date.today() + dt.timedelta(days=14)).isoformat()
    return circle_body([], name=name, start=start, description="x" * 1900)


async def test_full_database_refuses_quietly_and_resumes(nodes, eventually, caplog,
                                                         monkeypatch) -> None:
    """Simulated with max_page_count: entries refused, no score change, one log line, resumed."""
    monkeypatch.setattr(replication, "RESEND_MEMORY", 1.0)
    monkeypatch.setattr(node_module, "_SPACE_PROBE_INTERVAL", 0.2, raising=False)
    caplog.set_level(logging.INFO)
    target = await nodes.start("target")
    author = await nodes.start("author", peers=[target])
    profile = await author.set_profile("Author")
    await eventually(lambda: target.clock_snapshot().get(author.node_id) == profile.seq)
    await target.perform(cap_database)

    last = None
    for i in range(6):  # several batches, each too big for the pages left
        last = await author.announce_circle(circle(f"Circle {i}"))
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    assert target.clock_snapshot().get(author.node_id) == profile.seq  # nothing stored
    # the node runs on: reads work, the session stays, the peer is not blamed
    assert (await target.status())["node_id"] == target.node_id
    assert await target.circles() == []
    conn = target.peers.connections[author.node_id]
    assert conn.is_open
    assert target.peers.records[author.node_id].score >= 0
    full = [r for r in caplog.records if "is full" in r.getMessage()]
    assert len(full) == 1 and f"{target.home_path}" in full[0].getMessage()
    assert "MB free" in full[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    await target.perform(cap_database, 1_000_000)  # room again
    await eventually(lambda: target.clock_snapshot().get(author.node_id) == last.seq,
                     timeout=10.0)
    assert len(await target.circles()) == 6
    assert conn.is_open
    assert len([r for r in caplog.records if "is full" in r.getMessage()]) == 1


async def test_a_local_write_on_a_full_database_names_the_disk(nodes) -> None:
    """A write of our own says "the disk holding HOME is full (N MB free)", nothing else."""
    target = await nodes.start("target")
    await target.set_profile("Me")
    await target.perform(cap_database)
    with pytest.raises(Exception) as raised:
        await target.announce_circle(circle("Too big to store"))
    assert type(raised.value).__name__ == "DiskFull"
    assert str(raised.value).startswith(f"the disk holding {target.home_path} is full (")
    assert await target.circles() == []


# -- a real full disk --------------------------------------------------------------------------

_P2PNODE = str(Path(sys.executable).with_name("p2pnode"))


def _can_mount() -> bool:
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("nsenter")):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                           capture_output=True, timeout=10)
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(not _can_mount(),
                                 reason="needs root and unshare -m to mount a small tmpfs")

_SCRIPT = """
set -u
D=$1; P=$2
mount -t tmpfs -o size=3m tmpfs "$D" || exit 99
"$P" --home "$D/home" init >/dev/null 2>&1 || exit 98
"$P" --home "$D/home" profile --name Ana >/dev/null 2>&1 || exit 97
dd if=/dev/zero of="$D/fill" bs=4k 2>/dev/null
echo "== read"; "$P" --home "$D/home" id 2>&1; echo "rc=$?"
echo "== write"; "$P" --home "$D/home" profile --name Bea 2>&1; echo "rc=$?"
rm "$D/fill"
echo "== again"; "$P" --home "$D/home" profile --name Bea 2>&1; echo "rc=$?"
"""


@needs_mount
def test_cli_on_a_full_disk_reads_and_refuses_writes_in_one_line(tmp_path) -> None:
    """Real 3 MiB tmpfs: with no node running, reads work, a write says the disk is full."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    run = subprocess.run(["unshare", "-m", "sh", "-c", _SCRIPT, "sh", str(mount_point),
                          _P2PNODE], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    read, write, again = (part.strip() for part in run.stdout.split("== ")[1:])
    assert read.startswith("read\n") and "Ana" in read and read.endswith("rc=0")
    assert write.splitlines()[1:] == [
        f"p2pnode: error: the disk holding {mount_point}/home is full (0 MB free)", "rc=1"]
    assert again.endswith("rc=0")
    assert "Traceback" not in run.stdout + run.stderr


_NODE_SCRIPT = """
mount -t tmpfs -o size=3m tmpfs "$1" || exit 99
shift
exec "$@"
"""


def fill(path: Path) -> None:
    """Write zeros to `path` until the disk is full."""
    with contextlib.suppress(OSError), path.open("wb") as filler:
        while True:
            filler.write(b"\0" * 65536)
            filler.flush()


async def circles_at(pid: int, home: Path) -> str:
    """`p2pnode circles` on `home`, in the mount namespace of process `pid`."""
    proc = await asyncio.create_subprocess_exec(
        "nsenter", "-t", str(pid), "-m", _P2PNODE, "--home", str(home), "circles",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return out.decode()


@needs_mount
async def test_running_node_on_a_full_disk_stays_quiet_and_resumes(nodes, eventually,
                                                                   tmp_path) -> None:
    """Real 3 MiB tmpfs under a running `p2pnode run`: it stores nothing while full, keeps its
    session, prints no traceback, and stores what it missed once the disk has room again."""
    honest = await nodes.start("honest")
    await honest.set_profile("Honest")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    home = mount_point / "home"
    out = tmp_path / "node.out"
    with out.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            "unshare", "-m", "sh", "-c", _NODE_SCRIPT, "sh", str(mount_point),
            _P2PNODE, "--home", str(home), "run", "--no-mdns", "--port", "0", "--listen",
            "127.0.0.1", "--peer", f"127.0.0.1:{honest.port}",
            stdin=asyncio.subprocess.DEVNULL, stdout=sink, stderr=sink)
    try:
        await eventually(lambda: honest.peers.open_connections(), timeout=15.0)
        full_node = honest.peers.open_connections()[0].peer_id
        # the tmpfs is only visible in the node's namespace: reach it through /proc
        inside = Path(f"/proc/{proc.pid}/root") / str(mount_point).lstrip("/")
        await eventually(lambda: (inside / "home").is_dir() or proc.pid is None, timeout=10.0)
        await asyncio.to_thread(fill, inside / "fill")
        entries = [await honest.announce_circle(circle(f"Circle {i}")) for i in range(4)]
        await asyncio.sleep(3.0)
        conn = honest.peers.connections.get(full_node)
        assert conn is not None and conn.is_open  # the full node kept its session
        assert proc.returncode is None
        assert "Circle 0" not in await circles_at(proc.pid, home)
        (inside / "fill").unlink()
        # resumed: it asks again for what it could not store (after the peer's 10 s memory)
        for _ in range(40):
            listing = await circles_at(proc.pid, home)
            if all(f"Circle {i}" in listing for i in range(4)):
                break
            await asyncio.sleep(0.5)
        assert all(f"Circle {i}" in listing for i in range(4)), listing + out.read_text()
        assert len(entries) == 4
    finally:
        proc.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10.0)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = out.read_text()
    assert "Traceback" not in output, output
    assert output.count("cannot write the log") <= 1
