"""The node's durable state: the SQLite entry log in WAL mode (`database`), its DDL (`schema`),
the derived tables kept up to date on ingest (`derive`), the read views and their queries
(`models`, `queries`), and sneakernet export/import files (`exchange`). It knows entries and
records (from `protocol`), never sockets, peers or the event loop.
"""
