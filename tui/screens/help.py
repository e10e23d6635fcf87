"""`?`: what the keys do, and where to look when no peers show up."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Markdown

from tui.screens.base import NodeModal

HELP = """\
# Keys

| Where | Key | Does |
|---|---|---|
| everywhere | `?` | this help |
| | `ctrl+p` | command palette: announce, search, filter, add peer, theme, quit |
| | `ctrl+t` | light / dark theme |
| | `q` | quit (the node stops cleanly) |
| circles | `/` | search as you type |
| | `enter` | open the circle |
| | `m` | only circles I facilitate or joined |
| | `a` | announce a circle |
| | `p` | add a peer by address |
| | `n` | notifications |
| a circle | `j` `l` `D` | join, leave, leave and delete my sign-up |
| | `r` `c` `b` | RSVP next meeting, add to calendar, feedback |
| | `e` `x` `n` `s` | facilitators: edit, cancel, meeting note, sign-ups |
| forms | `ctrl+s` | publish |
| | `escape` | back |

# Finding peers

Nodes on the same Wi-Fi or LAN find each other by mDNS. Where multicast is blocked, add a
peer by its address (`p`). `p2pnode doctor` explains in plain words what it sees. The log is
`node.log` in this node's home.
"""


class HelpScreen(NodeModal):
    BINDINGS = [("escape", "dismiss_none", "Close"), ("question_mark", "dismiss_none", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):
            yield Markdown(HELP)
