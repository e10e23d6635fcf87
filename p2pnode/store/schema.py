"""The SQLite schema: the entry log, feed heads, fork proofs, and the derived tables.

`entries` is the source of truth; every other table is derived from it on ingest (and can be
rebuilt from it). Bodies live only in `entries.body` and may be NULL: deleted, expired, or never
received. Ids are raw 32-byte blobs, as on the wire.
"""

from __future__ import annotations

#: 2: circles_by_start (a listing walks circles soonest first and stops at its limit instead
#: of sorting every circle: 25 ms -> 0.3 ms on 10 000). Every statement below is IF NOT EXISTS,
#: so running the DDL again is the upgrade.
SCHEMA_VERSION = 2

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS entries (
    rowid INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    author BLOB NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    header BLOB NOT NULL,
    signature BLOB NOT NULL,
    body BLOB,
    -- 1 when the body was dropped on purpose (a `delete`, or expiry): it must not come back
    dropped INTEGER NOT NULL DEFAULT 0,
    UNIQUE (author, seq)
);

CREATE TABLE IF NOT EXISTS feeds (
    author BLOB PRIMARY KEY,
    seq INTEGER NOT NULL,
    head BLOB NOT NULL,
    forked INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS forks (
    author BLOB NOT NULL,
    seq INTEGER NOT NULL,
    header_a BLOB NOT NULL, signature_a BLOB NOT NULL,
    header_b BLOB NOT NULL, signature_b BLOB NOT NULL,
    PRIMARY KEY (author, seq, header_b)
);

CREATE TABLE IF NOT EXISTS profiles (
    author BLOB PRIMARY KEY,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    bio TEXT,
    languages TEXT,
    enc_key BLOB
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS circle_bases (
    id BLOB PRIMARY KEY,
    author BLOB NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    body BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS circle_changes (
    entry_id BLOB PRIMARY KEY,
    circle BLOB NOT NULL,
    author BLOB NOT NULL,
    kind TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    body BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS circle_changes_by_circle ON circle_changes (circle);

CREATE TABLE IF NOT EXISTS circles (
    rowid INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    author BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    name TEXT NOT NULL,
    language TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT NOT NULL,
    weekday INTEGER NOT NULL,
    signup_limit INTEGER,
    cancelled INTEGER NOT NULL DEFAULT 0,
    cancel_reason TEXT,
    rescheduled INTEGER NOT NULL DEFAULT 0,
    state BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS circles_by_end ON circles (end_date);
CREATE INDEX IF NOT EXISTS circles_by_start ON circles (start_date);

CREATE TABLE IF NOT EXISTS circle_topics (
    circle BLOB NOT NULL, topic TEXT NOT NULL COLLATE NOCASE, PRIMARY KEY (circle, topic)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS circle_topics_by_topic ON circle_topics (topic);

CREATE TABLE IF NOT EXISTS circle_facilitators (
    circle BLOB NOT NULL, node_id BLOB NOT NULL, PRIMARY KEY (circle, node_id)
) WITHOUT ROWID;

CREATE VIRTUAL TABLE IF NOT EXISTS circles_fts USING fts5(
    name, description, course, venue, topics, tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TABLE IF NOT EXISTS joins (
    entry_id BLOB PRIMARY KEY,
    circle BLOB NOT NULL,
    author BLOB NOT NULL,
    seq INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    action TEXT NOT NULL,
    display_name TEXT NOT NULL,
    sealed BLOB
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS joins_by_circle ON joins (circle, author, seq);

CREATE TABLE IF NOT EXISTS join_accepts (
    entry_id BLOB PRIMARY KEY,
    circle BLOB NOT NULL,
    join_id BLOB NOT NULL,
    author BLOB NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    accepted INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS join_accepts_by_circle ON join_accepts (circle);

CREATE TABLE IF NOT EXISTS rsvps (
    entry_id BLOB PRIMARY KEY,
    circle BLOB NOT NULL,
    author BLOB NOT NULL,
    seq INTEGER NOT NULL,
    date TEXT NOT NULL,
    attending INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rsvps_by_circle ON rsvps (circle, date);

CREATE TABLE IF NOT EXISTS meeting_notes (
    entry_id BLOB PRIMARY KEY,
    circle BLOB NOT NULL,
    author BLOB NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    date TEXT NOT NULL,
    body BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS meeting_notes_by_circle ON meeting_notes (circle, date);

CREATE TABLE IF NOT EXISTS feedback (
    entry_id BLOB PRIMARY KEY,
    circle BLOB NOT NULL,
    author BLOB,
    role TEXT NOT NULL,
    course_rating INTEGER,
    recommendation_rating INTEGER,
    goal_rating INTEGER,
    body BLOB
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS feedback_by_circle ON feedback (circle);

CREATE TABLE IF NOT EXISTS resources (
    entry_id BLOB PRIMARY KEY,
    blob BLOB NOT NULL,
    author BLOB NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    size INTEGER NOT NULL,
    title TEXT NOT NULL,
    media_type TEXT NOT NULL,
    format TEXT NOT NULL,
    licence TEXT,
    caption TEXT,
    circle BLOB
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS resources_by_circle ON resources (circle);
CREATE INDEX IF NOT EXISTS resources_by_blob ON resources (blob);

CREATE TABLE IF NOT EXISTS peers (
    node_id BLOB PRIMARY KEY,
    address TEXT,
    how TEXT NOT NULL,
    last_seen_ms INTEGER,
    last_error TEXT,
    score REAL NOT NULL DEFAULT 0,
    banned_until_ms INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
"""
