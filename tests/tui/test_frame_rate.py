"""The app's frame rate: 120 frames a second at most (a key's result is painted sooner), set
before Textual loads, and a TEXTUAL_FPS the user chose wins."""

from __future__ import annotations

import os
import subprocess
import sys

_PROBE = "import tui, textual.constants as c; print(c.MAX_FPS)"


def _max_fps(**env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if k != "TEXTUAL_FPS"}
    done = subprocess.run([sys.executable, "-c", _PROBE], env={**clean, **env},
                          capture_output=True, text=True, timeout=60, check=True)
    return int(done.stdout)


def test_the_app_paints_at_up_to_120_frames_a_second():
    """Importing the app's package first (as `p2pnode tui` does) sets Textual to 120 fps."""
    assert _max_fps() == 120


def test_a_frame_rate_the_user_set_wins():
    """TEXTUAL_FPS in the environment is left alone."""
    assert _max_fps(TEXTUAL_FPS="30") == 30
