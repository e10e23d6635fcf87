"""`p2pnode tui` end to end in a pseudo-terminal: it starts a node on the home (the log goes to
node.log, not the screen), and quitting the app stops the node cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import sys
import termios
import time
from pathlib import Path

from p2pnode import config


def _p2pnode() -> list[str]:
    script = Path(sys.executable).with_name("p2pnode")
    return [str(script)] if script.exists() else [sys.executable, "-m", "p2pnode.cli"]


async def test_quitting_the_app_stops_its_node_cleanly(tmp_path, eventually):
    """The app's node serves the home while it runs; `q` exits 0, removes control.json and
    frees the home; the node's log lines are in node.log and never on the terminal."""
    home = tmp_path / "home"
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color"}
    env.pop("P2PNODE_HOME", None)
    proc = await asyncio.create_subprocess_exec(
        *_p2pnode(), "--home", str(home), "tui", "--no-mdns", "--port", "0",
        "--listen", "127.0.0.1", stdin=slave, stdout=slave, stderr=slave, env=env,
        start_new_session=True)
    os.close(slave)
    screen = bytearray()
    loop = asyncio.get_running_loop()

    def drain() -> None:
        with contextlib.suppress(OSError):
            screen.extend(os.read(master, 65536))

    loop.add_reader(master, drain)
    try:
        await eventually(lambda: (home / config.CONTROL_FILE).exists(), timeout=30)
        await eventually(lambda: b"Welcome" in screen, timeout=30)
        os.write(master, b"Ana\r")  # the welcome's name (a lone ESC would wait for a sequence)
        await eventually(lambda: b"Ana (" in screen, timeout=30)
        os.write(master, b"q")
        deadline = time.monotonic() + 20
        while proc.returncode is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert proc.returncode == 0, screen.decode(errors="replace")[-2000:]
    finally:
        loop.remove_reader(master)
        os.close(master)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert not (home / config.CONTROL_FILE).exists()
    log = (home / config.LOG_FILE).read_text()
    assert "listening on port" in log
    assert b"listening on port" not in screen and b"Traceback" not in screen
    lock = os.open(home / "node.lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the home is free again
    finally:
        os.close(lock)
