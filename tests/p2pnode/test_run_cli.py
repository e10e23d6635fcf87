"""`p2pnode run` end to end, as real processes on loopback (mDNS off, ports chosen by the OS).

Two headless nodes linked with `--peer`; `status`, `peers`, `circles` and `doctor` talk to them
from separate processes; signals stop them cleanly; a second `run` on a busy home and a `status`
with no node running fail with one clear line and exit code 1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import time

from p2pnode import config

STOP_WITHIN = 5.0  # seconds from a signal to the process's exit


async def status_json(cli, home) -> dict:
    done = await cli.run(home, "status", "--json")
    assert done.returncode == 0, done.stderr
    return done.json()


async def test_two_run_processes_sync_report_and_stop_cleanly(cli, eventually, tmp_path) -> None:
    """Two linked `run` processes sync, report over the CLI, and stop on SIGTERM/SIGINT cleanly."""
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    a = await cli.start(home_a)
    b = await cli.start(home_b, "--peer", a.address)
    assert a.peer_port and b.peer_port and a.peer_port != b.peer_port

    async def both_connected() -> bool:
        sa, sb = await status_json(cli, home_a), await status_json(cli, home_b)
        return sa["peers_connected"] == 1 and sb["peers_connected"] == 1

    await eventually(both_connected, timeout=10)
    status_a, status_b = await status_json(cli, home_a), await status_json(cli, home_b)
    assert status_a["port"] == a.peer_port and status_a["mdns"] is False
    assert status_a["network"] == status_b["network"] == config.network_id(
        config.OPEN_NETWORK_KEY)

    done = await cli.run(home_a, "peers", "--json")
    assert done.returncode == 0, done.stderr
    (peer,) = [p for p in done.json() if p["connected"]]
    assert peer["node_id"] == status_b["node_id"]

    assert (await cli.run(home_a, "profile", "--name", "Amina")).returncode == 0
    start = (dt.date.today() + dt.timedelta(days=7)).isoformat()
    done = await cli.run(
        home_a, "circle", "announce", "--name", "Cross-process circle", "--description",
        "Announced on a, listed on b", "--course-title", "Learning How to Learn", "--venue",
        "Community Centre", "--city", "Accra", "--start", start, "--time", "17:30",
        "--language", "en", "--timezone", "Africa/Accra",
    )
    assert done.returncode == 0, done.stderr

    async def listed_on_b() -> list:
        done = await cli.run(home_b, "circles", "--json")
        assert done.returncode == 0, done.stderr
        return [c for c in done.json() if c["name"] == "Cross-process circle"]

    (circle,) = await eventually(listed_on_b, timeout=10)
    assert circle["author"]["name"] == "Amina"
    assert circle["author"]["node_id"] == status_a["node_id"]

    for running, sig in ((a, signal.SIGTERM), (b, signal.SIGINT)):
        started = time.monotonic()
        code = await running.stop(sig)
        elapsed = time.monotonic() - started
        assert code == 0, running.output()
        assert elapsed < STOP_WITHIN
        assert not (running.home / config.CONTROL_FILE).exists()
        assert not (running.home / config.TOKEN_FILE).exists()
        assert "Traceback" not in running.output()
        print(f"\n{signal.Signals(sig).name}: stopped in {elapsed * 1000:.0f} ms")

    done = await cli.run(home_a, "status")
    assert done.returncode == 1
    assert "no node is running" in done.stderr


async def test_second_run_on_the_same_home_fails_with_one_line(cli, tmp_path) -> None:
    """A second `run` on a home in use exits 1 with a one-line error; the first keeps running."""
    home = tmp_path / "a"
    first = await cli.start(home)
    done = await cli.run(home, "run", "--no-mdns", "--port", "0", "--listen", "127.0.0.1")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "already running" in lines[0]
    assert first.proc.returncode is None
    status = await status_json(cli, home)
    assert status["port"] == first.peer_port
    assert (home / config.CONTROL_FILE).exists()


async def test_status_and_peers_without_a_running_node_exit_1(cli, tmp_path) -> None:
    """`status` and `peers` on a home with no node running say so and exit 1."""
    home = tmp_path / "idle"
    assert (await cli.run(home, "init")).returncode == 0
    for command in ("status", "peers"):
        done = await cli.run(home, command, "--json")
        assert done.returncode == 1, done.stdout
        assert "no node is running" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


async def test_doctor_reports_the_running_node_port_ok(cli, tmp_path) -> None:
    """`doctor --no-mdns --json` against a running node finds it and its peer endpoint."""
    home = tmp_path / "a"
    running = await cli.start(home)
    done = await cli.run(home, "doctor", "--no-mdns", "--json")
    assert done.returncode == 0, done.stderr
    checks = {c["check"]: c for c in done.json()["checks"]}
    assert checks["node"]["ok"] is True
    assert checks["port"]["ok"] is True
    assert str(running.peer_port) in checks["port"]["detail"]
    assert not any(name.startswith("mdns") for name in checks)


async def test_doctor_without_a_node_checks_the_port_is_free(cli, tmp_path) -> None:
    """With no node running, `doctor` says so and reports whether the given port is free."""
    home = tmp_path / "idle"
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    try:
        busy = server.sockets[0].getsockname()[1]
        done = await cli.run(home, "doctor", "--no-mdns", "--json", "--port", str(busy))
    finally:
        server.close()
        await server.wait_closed()
    assert done.returncode == 1, done.stderr  # a failed check
    checks = {c["check"]: c for c in done.json()["checks"]}
    assert checks["node"]["ok"] is None
    assert checks["port"]["ok"] is False and str(busy) in checks["port"]["detail"]
