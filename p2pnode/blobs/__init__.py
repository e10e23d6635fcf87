"""Resources (course files) as content-addressed blobs: the store of complete blobs (`store`), a
resumable partial download with its bitmap (`partial`), sharing a file as a `resource` record
(`resources`), and the swarm transfer over peer sessions: the service facade (`service`),
downloads (`download`), serving (`serving`), per-peer request state (`peer`, `requests`) and the
loop-or-thread gate for chunk I/O (`inline`). It sees the node only through `host.py`.
"""
