"""How the app starts from the command line: `p2pnode tui` and `p2pnode` alone refuse, in one
line and with exit status 1, a home another process already serves."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("command", [["tui", "--no-mdns", "--port", "0"], []])
async def test_a_home_served_by_another_process_is_refused_in_one_line(tmp_path, cli, command):
    """With `p2pnode run` holding the home, the app does not start: one line, exit 1."""
    home = tmp_path / "home"
    await cli.start(home)
    done = await cli.run(home, *command, timeout=30)
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
