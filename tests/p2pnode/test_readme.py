"""README's "Using it" examples work as written when pasted: its shell blocks run in bash, in
order, against a real `p2pnode run` (on loopback, mDNS off), with only the dates moved into the
future and the learner's `/tmp/ben` home moved into the test's temporary directory; every
command of the reference list exists."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent


def using_it() -> str:
    """The command-line part of README's "Using it" (the app's part comes before it)."""
    text = README.read_text()
    section = text.split("## Using it", 1)[1].split("\n## ", 1)[0]
    return section.split("### The command line", 1)[1]


def blocks(section: str, language: str = "sh") -> list[str]:
    return [body for lang, body in re.findall(r"```(\w*)\n(.*?)```", section, re.S)
            if lang == language]


def future_tuesday() -> dt.date:
    day = dt.date.today() + dt.timedelta(days=8)
    return day + dt.timedelta(days=(1 - day.weekday()) % 7)


async def bash(script: str, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "bash", "-e", "-x", "-o", "pipefail", "-c", script, cwd=cwd, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    return proc.returncode or 0, out.decode(errors="replace")


async def test_readme_using_it_runs_as_written(cli, tmp_path) -> None:
    """Pasted in order, README's blocks succeed and do what they say (Ben's sealed sign-up
    reaches Ana)."""
    setup, facilitator, learner = blocks(using_it())
    assert setup.split("\n")[:2] == ['p2pnode init --name "Ana"', "p2pnode run"]
    home = tmp_path / "ana"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "P2PNODE_HOME": str(home)}
    code, out = await bash(setup.split("\n")[0], tmp_path, env)
    assert code == 0, out
    await cli.start(home)  # `p2pnode run`, confined to loopback for the test

    start = future_tuesday()
    script = "\n".join([facilitator, learner])
    script = (script.replace("2027-09-07", start.isoformat())
              .replace("2027-09-21", (start + dt.timedelta(weeks=2)).isoformat())
              .replace("/tmp/ben", str(tmp_path / "ben")))
    code, out = await bash(script, tmp_path, env)
    assert code == 0, out
    assert "ben@example.org" in out and "write a program" in out
    assert (tmp_path / "circle.ics").read_bytes().startswith(b"BEGIN:VCALENDAR")


def test_every_reference_command_exists(capsys) -> None:
    """Each command in README's reference list is one `p2pnode` knows (its --help works) and
    each option shown is one it takes."""
    from p2pnode.cli.main import main

    (reference,) = blocks(using_it(), "")
    for line in reference.strip().splitlines():
        words = line.split("#", 1)[0].split()
        assert words[0] == "p2pnode", line
        command = [w for w in words[1:3] if w.islower() and not w.startswith("-")]
        try:
            main([*command, "--help"])
        except SystemExit as exc:
            assert exc.code == 0, line
        help_text = capsys.readouterr().out
        for option in re.findall(r"--[a-z-]+", line):
            assert option in help_text, (line, option)
