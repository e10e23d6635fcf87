"""The terminal app (Textual) on top of a node: see tui/app.py.

Textual paints at most 60 frames a second unless told otherwise; after a key's own frame (the
search box) the frame showing its result then waits one or two frame slots, 17-33 ms. At 120
the wait halves (bench/app_speed.py, keystroke p95: 49-54 ms at 60, 34-38 ms at 120), and an
idle app still paints nothing. This must run before textual is imported (its constants are read
then); a TEXTUAL_FPS the user set wins.
"""

import os

os.environ.setdefault("TEXTUAL_FPS", "120")
