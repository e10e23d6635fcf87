"""Fixed data for the app's tests and snapshots: homes with seeded keys, and a small network of
circles written with fixed timestamps, so ids, fingerprints and dates are the same every run.

"Now" is `builders.NOW_MS` (2027-01-01T00:00Z); tests that show this data fix the node's clock
to it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from builders import (
    DAY_MS,
    NOW_MS,
    Feed,
    circle_body,
    identity_from_seed,
    ms,
    sealing_key_from_seed,
)

from p2pnode import actions, config
from p2pnode.home import Home
from protocol.identity import node_id_text
from protocol.sealing import seal

ME_SEED, BEN_SEED, CHLOE_SEED, DMITRI_SEED = "tui me", "tui ben", "tui chloe", "tui dmitri"


def seeded_home(path: Path, seed: str) -> Path:
    """A home whose identity and sealing keys derive from `seed` (so its fingerprint is fixed)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, key in ((config.IDENTITY_FILE, identity_from_seed(seed).private_bytes()),
                      (config.SEALING_KEY_FILE, hashlib.sha256(seed.encode()).digest())):
        fd = os.open(path / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, key)
        os.close(fd)
    with Home.open(path) as home:
        home.finish_recovery()  # a new identity: there is no older feed to recover
    return path


def _person(seed: str, name: str) -> Feed:
    feed = Feed(identity_from_seed(seed), start_ms=NOW_MS - 60 * DAY_MS)
    feed.add("profile", {"name": name,
                         "enc_key": sealing_key_from_seed(seed).public_bytes})
    return feed


def network(path: Path, *, my_name: str | None = "Ana", joined: bool = True) -> dict[str, bytes]:
    """Fill the seeded home at `path` with circles by Ben, Chloé, a forked Dmitri and me.

    Returns:
        circle ids by short name: python, french, data (mine), stats (ended), forked.
    """
    ben, chloe, dmitri = (_person(BEN_SEED, "Ben"), _person(CHLOE_SEED, "Chloé"),
                          _person(DMITRI_SEED, "Dmitri"))
    python = ben.add("circle", circle_body(
        [ben.node_id], name="Python for Everybody", start="2027-01-12", topics=["python"],
        description="We work through **Python for Everybody** together, one chapter a week.",
        signup_limit=15, signup_question="Have you programmed before?",
        course={"title": "Python for Everybody", "provider": "Dr Chuck", "format": "course",
                "link": "https://www.py4e.com", "topics": ["python"], "language": "en"}))
    stats = ben.add("circle", circle_body(
        [ben.node_id], name="Intro to Statistics", start="2026-10-06", topics=["statistics"]))
    french_body = circle_body(
        [chloe.node_id], name="Écrire en français", start="2027-01-05", language="fr",
        timezone="Europe/Paris", meeting_time="19:00", topics=["writing"],
        description="Atelier d'écriture en ligne.")
    french_body["venue"] = {"name": "Zoom", "city": "Paris", "online": True}
    french = chloe.add("circle", french_body)
    forked = dmitri.add("circle", circle_body(
        [dmitri.node_id], name="Linux Command Line", start="2027-01-14", city="Durban",
        venue="Makerspace", topics=["linux"]))
    rival = Feed(dmitri.identity, start_ms=NOW_MS - 59 * DAY_MS)
    rival.add("profile", {"name": "Dmitri (laptop 2)",
                          "enc_key": sealing_key_from_seed(DMITRI_SEED).public_bytes})
    ids = {"python": python.id, "stats": stats.id, "french": french.id, "forked": forked.id}
    with Home.open(path) as home:
        home.store.ingest([*ben.entries, *chloe.entries, *dmitri.entries], now_ms=NOW_MS)
        home.store.ingest(rival.entries, now_ms=NOW_MS)
        at = NOW_MS - 10 * DAY_MS
        if my_name:
            actions.set_profile(home, my_name, at_ms=at)
            mine = actions.announce_circle(home, circle_body(
                [], name="Data Science Basics", start="2027-01-09", topics=["data", "python"],
                city="Nairobi", venue="iHub, 4th floor", timezone="Africa/Nairobi",
                meeting_time="10:00", signup_limit=10,
                description="Pandas, plots and questions worth asking of data."),
                at_ms=at + 1000)
            ids["data"] = mine.id
            eve = _person("tui eve", "Eve")
            me = home.identity.node_id
            sealed = seal({"contact": "eve@example.org", "goal": "learn pandas"},
                          [(me, home.sealing_key.public_bytes)])
            eve.add("join", {"circle": mine.id, "action": "join", "display_name": "Eve",
                             "sealed": sealed})
            home.store.ingest(eve.entries, now_ms=NOW_MS)
            if joined:
                actions.join_circle(home, python.id, my_name, at_ms=at + 2000)
                actions.rsvp(home, python.id, number=1, at_ms=at + 3000)
                # while it ran (it has ended by "now": an ended circle takes no sign-ups)
                actions.join_circle(home, stats.id, my_name, at_ms=ms("2026-10-20"))
    return ids


#: the meeting day of `meeting_day`: "now" (2027-01-01T00:00Z) is 02:00 that day in its zone
MEETING_DAY, LAST_MEETING = "2027-01-01", "2026-12-25"


def meeting_day(path: Path) -> dict[str, bytes]:
    """Add to the home at `path` (filled by `network`) two circles that meet today, each with
    last week's plus/delta: "web", which I facilitate (Finn and Grace accepted, Grace and a
    pending Hugo said they would come, Finn not), with a meeting under way — 25 minutes in, in
    coursework, Grace ticked, one plus — and "chess", Olga's, where I am accepted.

    Returns:
        circle ids by short name: web, chess.
    """
    from p2pnode import meeting

    olga = _person("tui olga", "Olga")
    chess = olga.add("circle", circle_body(
        [olga.node_id], name="Chess Openings", start=LAST_MEETING, topics=["chess"],
        meeting_time="17:00", description="One opening a week, played out together."),
        at_ms=NOW_MS - 20 * DAY_MS)
    learners = {name: _person(f"tui {name.lower()}", name) for name in ("Finn", "Grace", "Hugo")}
    with Home.open(path) as home:
        home.store.ingest(olga.entries, now_ms=NOW_MS)
        at = NOW_MS - 20 * DAY_MS
        web = actions.announce_circle(home, circle_body(
            [], name="Web Basics", start=LAST_MEETING, topics=["html"], meeting_time="10:00",
            description="HTML and CSS from scratch, a page a week."), at_ms=at)
        joins = {name: feed.add("join", {"circle": web.id, "action": "join",
                                         "display_name": name}, at_ms=NOW_MS - 15 * DAY_MS)
                 for name, feed in learners.items()}
        home.store.ingest([e for f in learners.values() for e in f.entries], now_ms=NOW_MS)
        for name in ("Finn", "Grace"):
            actions.decide_join(home, joins[name].id, True, at_ms=at + 1000)
        for name, attending in (("Finn", False), ("Grace", True), ("Hugo", True)):
            learners[name].add("rsvp", {"circle": web.id, "date": MEETING_DAY,
                                        "attending": attending})
        mine = actions.join_circle(home, chess.id, "Ana", at_ms=at + 2000)
        actions.add_meeting_note(home, web.id, date=LAST_MEETING, attendance=3,
                                 plus=["live coding", "small groups"],
                                 delta=["fewer slides"], at_ms=NOW_MS - 6 * DAY_MS)
        olga.add("join.accept", {"circle": chess.id, "join": mine.id, "accepted": True},
                at_ms=NOW_MS - 10 * DAY_MS)
        olga.add("meeting.note", {"circle": chess.id, "date": LAST_MEETING, "attendance": 7,
                                 "plus": ["the puzzles"], "delta": ["a clock per board"]},
                at_ms=NOW_MS - 6 * DAY_MS)
        home.store.ingest([*olga.entries, *[e for f in learners.values() for e in f.entries]],
                          now_ms=NOW_MS)
        now = NOW_MS / 1000
        draft = meeting.open_meeting(home, web.id, MEETING_DAY, now=now - 25 * 60)
        draft = meeting.start(draft, now - 25 * 60)
        draft = meeting.set_present(draft, node_id_text(learners["Grace"].node_id))
        draft = meeting.next_phase(draft, now - 14 * 60)
        draft = meeting.add_item(draft, "plus", "pairing on the layout exercise")
        meeting.update_meeting(home, draft)
    return {"web": web.id, "chess": chess.id}


def shared_files(path: Path, ids: dict[str, bytes], files: Path) -> None:
    """Resources in the seeded home at `path` (after `network`): three of Farah's (two for the
    python circle) and one I shared (held here), all with fixed bytes and timestamps."""
    from p2pnode.blobs.resources import share_file

    def blob(seed: str, size: int) -> bytes:
        return hashlib.sha256(f"{seed}:{size}".encode()).digest()

    farah = _person("tui farah", "Farah")
    farah.add("resource", {"blob": blob("py4e", 4_812_000), "size": 4_812_000,
                           "title": "Python for Everybody (book)",
                           "media_type": "application/pdf", "format": "book",
                           "licence": "CC-BY-NC-SA", "circle": ids["python"]})
    farah.add("resource", {"blob": blob("week1", 183_400_000), "size": 183_400_000,
                           "title": "Week 1 lecture recording", "media_type": "video/mp4",
                           "format": "video", "licence": "CC-BY", "circle": ids["python"]})
    farah.add("resource", {"blob": blob("ecrire", 96_000), "size": 96_000,
                           "title": "Consignes d'écriture", "media_type": "text/plain",
                           "format": "other"})
    files.mkdir(parents=True, exist_ok=True)
    slides = files / "slides.pdf"
    slides.write_bytes(hashlib.sha256(b"slides").digest() * 4096)
    with Home.open(path) as home:
        home.store.ingest(farah.entries, now_ms=NOW_MS)
        share_file(home, slides, title="Pandas cheat sheet", circle=ids.get("data"),
                   licence="CC-BY-SA", at_ms=NOW_MS - DAY_MS)
