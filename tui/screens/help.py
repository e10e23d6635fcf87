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
| everywhere | `1` `2` `3` `4` | Circles, Resources, Peers, Me |
| | `?` | this help |
| | `ctrl+p` | command palette: go to, announce, share, search, add peer, doctor, quit |
| | `ctrl+t` | light / dark theme |
| | `q` | {quit} |
| circles | `/` | search as you type |
| | `enter` | open the circle |
| | `m` | only circles I facilitate or joined |
| | `a` | announce a circle |
| | `p` | add a peer by address |
| | `n` | notifications |
| a circle | `j` `l` `D` | join, leave, leave and delete my sign-up |
| | `r` `c` `b` | RSVP next meeting, add to calendar, feedback |
| | `e` `x` `n` `s` | facilitators: edit, cancel, meeting note, sign-ups |
| resources | `/` | search titles, people, circles (and pick a circle beside it) |
| | `enter` | download (several at once; each gets a progress bar) |
| | `x` `o` | cancel a download (what arrived is kept) · where the file is |
| | `s` | share a file |
| peers | `p` `d` | add a peer by address · check the network (doctor) |
| me | `n` | edit my display name |
| | `c` `f` | copy my node id · my fingerprint |
| | `x` `i` | export to a file for a USB stick · import one |
| forms | `ctrl+s` | publish |
| | `escape` | back |

# Finding peers

Nodes on the same Wi-Fi or LAN find each other by mDNS. Where multicast is blocked, add a
peer by its address (`p`). On the peers screen, `d` checks what this machine sees (the same
checks as `p2pnode doctor`). The log is `node.log` in this node's home.
"""


class HelpScreen(NodeModal):
    BINDINGS = [("escape", "dismiss_none", "Close"), ("question_mark", "dismiss_none", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):
            quit_text = ("quit (the node stops cleanly)" if self.node.quitting_stops_node
                         else "quit the app (the node it is attached to keeps running)")
            yield Markdown(HELP.format(quit=quit_text))
