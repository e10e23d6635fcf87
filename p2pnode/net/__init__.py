"""Everything that talks to other processes over sockets: the peer endpoint and the local control
API (`server`), one Noise-secured WebSocket session per peer (`connection`), the set of sessions
with scores and bans (`peers`), mDNS/DNS-SD discovery (`discovery`), and the CLI's client of the
control API (`control_client`). It sees the node only through the narrow interfaces in
`host.py`, never `p2pnode.node` itself.
"""
