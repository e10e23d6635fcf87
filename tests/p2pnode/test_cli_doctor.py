"""`p2pnode doctor` and `peers` answering "why can't I see peers?", against real `run` processes
on loopback (mDNS off): the running node's own network id and mDNS setting, the address to give
to others, no home made for a mistyped path, no FAIL from stale memories, library errors in
plain words, and exit status 1 when a check fails."""

from __future__ import annotations

import asyncio
import socket

from p2pnode import config


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_doctor_reads_the_running_nodes_network_and_mdns(cli, tmp_path) -> None:
    """The network id and mDNS state shown are the running node's, not doctor's defaults, and
    the address to give to others carries the node's real port."""
    key = tmp_path / "group.key"
    key.write_bytes(bytes(range(32)))
    home = tmp_path / "a"
    running = await cli.start(home, "--network-key", str(key))
    done = await cli.run(home, "doctor", "--no-mdns", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = done.json()
    checks = {c["check"]: c for c in report["checks"]}
    ours = config.network_id(key.read_bytes())
    assert report["network"] == ours and ours in checks["network"]["detail"]
    assert config.network_id(config.OPEN_NETWORK_KEY) not in checks["network"]["detail"]
    assert checks["discovery"]["ok"] is None and "mDNS off" in checks["discovery"]["detail"]
    assert "--peer " in checks["address"]["detail"] or "127.0.0.1" in checks["address"]["detail"]
    assert str(running.peer_port) in checks["address"]["detail"]
    assert all(a.endswith(f":{running.peer_port}") for a in report["addresses"])

    text = await cli.run(home, "doctor", "--no-mdns")
    assert "mDNS off" in text.stdout and ours in text.stdout
    mismatch = tmp_path / "other.key"
    mismatch.write_bytes(bytes(32))
    wrong = await cli.run(home, "doctor", "--no-mdns", "--network-key", str(mismatch))
    assert wrong.returncode == 1 and "[FAIL] network" in wrong.stdout


async def test_doctor_never_creates_a_home(cli, tmp_path) -> None:
    """`doctor` on a path with no home reports it and leaves the file system untouched."""
    home = tmp_path / "typo"
    done = await cli.run(home, "doctor", "--no-mdns", "--json")
    checks = {c["check"]: c for c in done.json()["checks"]}
    assert checks["identity"]["ok"] is None and "no node home" in checks["identity"]["detail"]
    assert not home.exists()


async def test_doctor_fails_with_exit_1_when_the_port_is_taken(cli, tmp_path) -> None:
    """With no node running and the port held by another program, the port check FAILs and
    doctor exits 1."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    try:
        busy = server.sockets[0].getsockname()[1]
        done = await cli.run(tmp_path / "idle", "doctor", "--no-mdns", "--port", str(busy))
    finally:
        server.close()
        await server.wait_closed()
    assert done.returncode == 1, done.stdout
    assert f"[FAIL] port: port {busy} is in use" in done.stdout


async def test_unreachable_peer_is_explained_in_plain_words(cli, tmp_path) -> None:
    """A `--peer` nobody answers on is described as such in `peers` and `doctor`, without the
    HTTP library's wording, and is not a FAIL: the other laptop may simply be off."""
    home = tmp_path / "a"
    port = _closed_port()
    await cli.start(home, "--peer", f"127.0.0.1:{port}")
    for _ in range(100):
        peers = (await cli.run(home, "peers", "--json")).json()
        if peers and peers[0]["last_error"]:
            break
        await asyncio.sleep(0.1)
    assert "ssl:default" in peers[0]["last_error"] or peers[0]["last_error"]
    shown = await cli.run(home, "peers")
    doctor = await cli.run(home, "doctor", "--no-mdns")
    for out in (shown.stdout, doctor.stdout):
        assert f"nothing accepts connections at 127.0.0.1:{port}" in out, out
        assert "ssl:default" not in out and "ClientConnectorError" not in out
    assert doctor.returncode == 0 and "FAIL" not in doctor.stdout


async def test_peers_remembered_from_an_earlier_run_are_not_failures(cli, eventually,
                                                                    tmp_path) -> None:
    """After both nodes stopped, doctor lists the peer it remembers as information, not FAIL."""
    a = await cli.start(tmp_path / "a")
    b = await cli.start(tmp_path / "b", "--peer", a.address)

    async def connected() -> bool:
        done = await cli.run(tmp_path / "b", "status", "--json")
        return done.returncode == 0 and done.json()["peers_connected"] == 1

    await eventually(connected, timeout=10)
    await b.stop()
    await a.stop()
    done = await cli.run(tmp_path / "b", "doctor", "--no-mdns", "--json")
    peers = [c for c in done.json()["checks"] if c["check"].startswith("peer")]
    assert peers and all(c["ok"] is None and "not checked" in c["detail"] for c in peers)
    assert done.returncode == 0, done.stdout
