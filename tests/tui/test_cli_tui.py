"""How the app starts from the command line: `p2pnode tui` and `p2pnode` alone attach to the
`p2pnode run` serving the home (in a real terminal, a pty) and leave it running on `q`; a home
held by a process that serves no control API is refused in one line with exit status 1."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import struct
import sys
import termios

import pytest
from builders import circle_body
from tui_helpers import days_from_today

from p2pnode import actions

_APP_TIMEOUT = 20.0


@pytest.mark.parametrize("command", [["tui", "--no-mdns", "--port", "0"], []])
async def test_a_home_held_without_a_control_api_is_refused_in_one_line(tmp_path, cli, command):
    """With another process holding the home's lock and no control API to attach to, the app
    does not start: one line, exit 1."""
    home = tmp_path / "home"
    home.mkdir()
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(home / 'node.lock')!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n",
        stdout=asyncio.subprocess.PIPE)
    try:
        assert await asyncio.wait_for(holder.stdout.readline(), 10) == b"held\n"
        done = await cli.run(home, *command, timeout=30)
    finally:
        holder.kill()
        await holder.wait()
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"p2pnode: error: another node is already running for {home}"]
    assert "Traceback" not in done.stdout + done.stderr


async def test_tui_takes_the_node_options_of_run(tmp_path, cli):
    """`p2pnode tui --help` lists exactly the options of `p2pnode run`."""
    run = await cli.run(tmp_path, "run", "--help")
    tui = await cli.run(tmp_path, "tui", "--help")

    def options(text: str) -> list[str]:
        return sorted({word.rstrip(",") for word in text.split() if word.startswith("--")})

    assert options(tui.stdout) == options(run.stdout)


async def test_p2pnode_tui_in_a_terminal_attaches_to_run_and_q_leaves_it_running(
        tmp_path, cli, nodes, eventually):
    """`p2pnode tui` in a pseudo-terminal, with `p2pnode run` serving the home: the app draws the
    circle a peer announced, `q` ends it with status 0, and `run` still answers."""
    home = tmp_path / "home"
    running = await cli.start(home)
    assert (await cli.run(home, "profile", "--name", "Ana")).returncode == 0
    ben = await nodes.start("ben", peers=[running.address])
    await ben.perform(actions.set_profile, "Ben")
    await ben.perform(actions.announce_circle, circle_body(
        [], name="Attached Guitar Circle", start=days_from_today(5)))

    async def listed() -> bool:
        return "Attached Guitar" in (await cli.run(home, "circles")).stdout

    await eventually(listed, timeout=10)

    async with terminal_app(home) as (app, screen, keyboard):
        await eventually(lambda: b"Attached Guitar" in screen, timeout=_APP_TIMEOUT,
                         message=lambda: screen[-2000:].decode(errors="replace"))
        os.write(keyboard, b"q")
        assert await asyncio.wait_for(app.wait(), _APP_TIMEOUT) == 0
    assert running.proc.returncode is None
    done = await cli.run(home, "status", "--json")
    assert done.returncode == 0 and done.json()["peers_connected"] == 1


async def test_an_attached_app_closes_in_one_line_when_its_node_stops(tmp_path, cli,
                                                                      eventually):
    """When the `p2pnode run` it is attached to stops, the app closes and says why in one line,
    exit status 1 (rather than failing every second on screen)."""
    home = tmp_path / "home"
    running = await cli.start(home)
    assert (await cli.run(home, "profile", "--name", "Ana")).returncode == 0
    async with terminal_app(home) as (app, screen, _):
        await eventually(lambda: len(screen) > 1000, timeout=_APP_TIMEOUT)  # it drew
        await running.stop()
        assert await asyncio.wait_for(app.wait(), _APP_TIMEOUT) == 1
        await eventually(lambda: b"closed with it" in screen, timeout=5)
        assert (f"p2pnode: error: the node serving {home} stopped; the app closed with it"
                in screen.decode(errors="replace"))
        assert "Traceback" not in screen.decode(errors="replace")


@contextlib.asynccontextmanager
async def terminal_app(home):
    """`p2pnode --home HOME tui` in a 140x40 pseudo-terminal: yields the process, what it drew
    so far (growing) and the terminal's input side; killed at the end if still running."""
    keyboard, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    screen = bytearray()
    loop = asyncio.get_running_loop()
    loop.add_reader(keyboard, lambda: screen.extend(_read_some(keyboard)))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "140", "LINES": "40"}
    env.pop("P2PNODE_HOME", None)
    app = await asyncio.create_subprocess_exec(
        *_p2pnode(), "--home", str(home), "tui", stdin=terminal, stdout=terminal,
        stderr=terminal, env=env, start_new_session=True)
    os.close(terminal)
    try:
        yield app, screen, keyboard
    finally:
        loop.remove_reader(keyboard)
        if app.returncode is None:
            app.kill()
            await app.wait()
        os.close(keyboard)


def _read_some(fd: int) -> bytes:
    with contextlib.suppress(OSError):  # EIO once the app closed the terminal
        return os.read(fd, 65536)
    return b""


def _p2pnode() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "p2pnode")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "p2pnode.cli"]
