"""Fixtures for node tests on loopback: real `Node`s and `p2pnode run` processes, all bound to
127.0.0.1 with mDNS off, short session timers, and closed (or killed) in teardown.

- `no_leaked_tasks` (autouse) fails a test that leaves asyncio tasks or threads behind after a
  short grace period (zeroconf's conftest does the same).
- `eventually(condition, timeout=5)` polls a condition (sync or async) until it holds; tests use
  it instead of fixed sleeps.
- `nodes.start(name, peers=[...])` starts an in-process node under tmp_path; `nodes.record(node)`
  records the events it publishes from now on.
- `cli.run(home, *args)` runs one `p2pnode` command as a subprocess; `cli.start(home, ...)` starts
  `p2pnode run` and waits for its control.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from p2pnode import config
from p2pnode.events import NodeEvent
from p2pnode.net import peers
from p2pnode.node import Node

#: How long a test's tasks and threads may take to wind down after it ends.
_LEAK_GRACE = 2.0
#: Session timers short enough for tests to wait on (defaults: 15 s, 45 s, 10 s).
SESSION_LIMITS: dict[str, Any] = {"ping_interval": 1.0, "idle_timeout": 4.0,
                                  "handshake_timeout": 2.0}
LOOPBACK = "127.0.0.1"
_LOOP_PROBE = 0.05
_MAX_LOOP_STALL = 1.5
_PROCESS_START_TIMEOUT = 15.0
_PROCESS_STOP_TIMEOUT = 8.0
_CLI_TIMEOUT = 30.0


# -- leaks -----------------------------------------------------------------------------------


def _thread_is_ours(thread: threading.Thread) -> bool:
    # the loop's default executor lives until pytest-asyncio closes the loop, after this check
    return thread.is_alive() and not thread.name.startswith("asyncio_")


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail the test if it leaves asyncio tasks or threads running after a grace period."""
    tasks_before = asyncio.all_tasks()
    threads_before = set(threading.enumerate())
    yield
    me = asyncio.current_task()
    deadline = time.monotonic() + _LEAK_GRACE
    while True:
        tasks = [t for t in asyncio.all_tasks() - tasks_before if t is not me and not t.done()]
        threads = [t for t in set(threading.enumerate()) - threads_before if _thread_is_ours(t)]
        if (not tasks and not threads) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    for task in tasks:  # do not let one test's leftovers spoil the next
        task.cancel()
    if tasks or threads:
        names = [t.get_name() for t in tasks] + [f"thread {t.name}" for t in threads]
        pytest.fail(f"leaked after the test: {', '.join(sorted(names))}")


@pytest.fixture(autouse=True)
async def loop_not_blocked(no_leaked_tasks: None) -> AsyncIterator[None]:
    """Fail the test if the event loop was blocked for longer than `_MAX_LOOP_STALL` (SQLite,
    hashing and signature checks belong in worker threads). Generous, for loaded CI machines."""
    worst = 0.0

    async def watch() -> None:
        nonlocal worst
        while True:
            start = time.monotonic()
            await asyncio.sleep(_LOOP_PROBE)
            worst = max(worst, time.monotonic() - start - _LOOP_PROBE)

    watcher = asyncio.get_running_loop().create_task(watch(), name="loop-stall-watch")
    yield
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    if worst > _MAX_LOOP_STALL:
        pytest.fail(f"the event loop was blocked for {worst:.2f} s")


@pytest.fixture(autouse=True)
def fast_redial(monkeypatch: pytest.MonkeyPatch) -> None:
    """Redial lost peers within half a second (production backs off up to a minute)."""
    monkeypatch.setattr(peers, "_RETRY_MIN", 0.05)
    monkeypatch.setattr(peers, "_RETRY_MAX", 0.5)


# -- polling ---------------------------------------------------------------------------------


async def _eventually(
    condition: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02,
    message: str | Callable[[], str] = "",
) -> Any:
    """Poll `condition` (a function, sync or async) until it returns something truthy.

    Returns:
        What the condition returned.

    Raises:
        AssertionError: it did not hold within `timeout` seconds (with `message`).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"condition not met within {timeout} s" +
                                 (f": {text}" if text else ""))
        await asyncio.sleep(interval)


@pytest.fixture
def eventually() -> Callable[..., Awaitable[Any]]:
    """`await eventually(condition, timeout=5)`: bounded polling instead of fixed sleeps."""
    return _eventually


# -- in-process nodes ------------------------------------------------------------------------


def address(node: Node) -> str:
    return f"{LOOPBACK}:{node.port}"


class Nodes:
    """Starts nodes under one directory and closes them all (latest first) at teardown."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[Node] = []
        self._recorders: list[asyncio.Task[None]] = []

    def home(self, name: str) -> Path:
        return self.root / name

    async def start(self, name: str, *, peers: Sequence[Node | str] = (), port: int = 0,
                    **kwargs: Any) -> Node:
        """Start a node on 127.0.0.1 (mDNS off, short timers) with home ``root/name``."""
        kwargs.setdefault("control", False)
        kwargs.setdefault("session_limits", SESSION_LIMITS)
        node = Node(
            self.home(name),
            port=port,
            host=LOOPBACK,
            mdns=False,
            peers=[address(p) if isinstance(p, Node) else p for p in peers],
            **kwargs,
        )
        await node.start()
        self.started.append(node)
        return node

    async def record(self, node: Node) -> list[NodeEvent]:
        """Events the node publishes from now on, appended as they come (until teardown)."""
        seen: list[NodeEvent] = []

        async def consume() -> None:
            async for event in node.events():
                seen.append(event)

        task = asyncio.get_running_loop().create_task(consume(), name="test-event-recorder")
        self._recorders.append(task)
        # The task's first step subscribes; the ready queue is FIFO, so it runs before we resume.
        await asyncio.sleep(0)
        return seen

    async def close_all(self) -> None:
        for task in self._recorders:
            task.cancel()
        for task in self._recorders:
            with contextlib.suppress(BaseException):
                await task
        for node in reversed(self.started):
            await node.close()


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[Nodes]:
    """A factory of loopback nodes under tmp_path, all closed at the end of the test."""
    made = Nodes(tmp_path)
    try:
        yield made
    finally:
        await made.close_all()


# -- `p2pnode` processes ---------------------------------------------------------------------


def _p2pnode_argv() -> list[str]:
    script = Path(sys.executable).with_name("p2pnode")
    return [str(script)] if script.exists() else [sys.executable, "-m", "p2pnode.cli"]


@dataclass
class Finished:
    """A `p2pnode` command that ran to its end."""

    returncode: int
    stdout: str
    stderr: str
    exited_at: float  # time.monotonic() when we saw it exit

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Running:
    """A `p2pnode run` process and what its control.json says."""

    proc: asyncio.subprocess.Process
    home: Path
    log: Path
    control_port: int = 0
    peer_port: int = 0

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.peer_port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def stop(self, sig: int = signal.SIGTERM,
                   timeout: float = _PROCESS_STOP_TIMEOUT) -> int:
        """Send `sig` and wait for the exit code (kill after `timeout`: the test then fails)."""
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"p2pnode run did not stop within {timeout} s after {sig!r}:"
                                 f"\n{self.output()}") from None


class Cli:
    """Runs `p2pnode` commands as subprocesses; kills whatever still runs at teardown."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.running: list[Running] = []
        self._env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._env.pop("P2PNODE_HOME", None)

    async def run(self, home: Path, *args: str, timeout: float = _CLI_TIMEOUT) -> Finished:
        """Run ``p2pnode --home HOME ARGS...`` to its end (without blocking the event loop)."""
        proc = await asyncio.create_subprocess_exec(
            *_p2pnode_argv(), "--home", str(home), *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.communicate()
            raise AssertionError(
                f"p2pnode {' '.join(args)} did not finish in {timeout} s") from None
        return Finished(proc.returncode or 0, out.decode(), err.decode(), time.monotonic())

    async def start(self, home: Path, *args: str, wait: bool = True) -> Running:
        """Start ``p2pnode --home HOME run --no-mdns --port 0 --listen 127.0.0.1 ARGS...``.

        With `wait`, return once the node's control.json names its ports.
        """
        home.mkdir(parents=True, exist_ok=True)
        log = self.root / f"{home.name}-run-{len(self.running)}.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *_p2pnode_argv(), "--home", str(home), "run", "--no-mdns", "--port", "0",
                "--listen", LOOPBACK, *args,
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, env=self._env,
            )
        running = Running(proc, home, log)
        self.running.append(running)
        if wait:
            await self._wait_ready(running)
        return running

    async def _wait_ready(self, running: Running) -> None:
        control = running.home / config.CONTROL_FILE
        deadline = time.monotonic() + _PROCESS_START_TIMEOUT
        while time.monotonic() < deadline:
            if running.proc.returncode is not None:
                raise AssertionError(f"p2pnode run exited {running.proc.returncode}:\n"
                                     f"{running.output()}")
            with contextlib.suppress(OSError, ValueError, KeyError):
                info = json.loads(control.read_text())
                if info["pid"] == running.proc.pid:
                    running.control_port, running.peer_port = info["port"], info["peer_port"]
                    return
            await asyncio.sleep(0.05)
        raise AssertionError(f"p2pnode run wrote no control.json in time:\n{running.output()}")

    async def close(self) -> None:
        for running in reversed(self.running):
            if running.proc.returncode is None:
                with contextlib.suppress(AssertionError, ProcessLookupError):
                    await running.stop(signal.SIGTERM, timeout=5.0)


@pytest.fixture
async def cli(tmp_path: Path) -> AsyncIterator[Cli]:
    """Run `p2pnode` subprocesses against homes under tmp_path; stop them all at teardown."""
    made = Cli(tmp_path)
    try:
        yield made
    finally:
        await made.close()
