"""CLI commands for resources: `share` a file, list `resources`, `fetch` one from peers.

`share` and `resources` work on the home directly (a running node is told about a new share, and
asked which of its peers hold what); `fetch` needs the running node, which does the download and
streams its progress back over the control API.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from p2pnode import actions
from p2pnode.blobs.resources import default_title, share_file, unshare_resource
from p2pnode.blobs.store import BlobStore
from p2pnode.errors import InvalidInput, NodeError, NotRunning
from p2pnode.files import human_size
from p2pnode.home import Home
from p2pnode.net import control_client as control
from p2pnode.store import queries
from p2pnode.store.models import to_jsonable
from protocol.identity import fingerprint, node_id_text, parse_id
from protocol.records import LICENCES

EXIT_OK, EXIT_ERROR = 0, 1

#: Files above this size get a progress bar even when stderr is not a terminal.
BAR_THRESHOLD = 16 * 1024 * 1024
#: What `fetch` shows while no connected peer holds the resource (instead of a frozen bar).
WAITING = "waiting for a peer that holds it…"
#: the download states (`p2pnode.blobs.download`) in which no holder is serving us
_WAITING_STATES = ("finding peers", "waiting for peers")


class CommandError(NodeError):
    """One line for the user; exit status 1."""




class ProgressBar:
    """Progress on stderr: ``label [#####-----]  45%  12.3/27.0 MiB  34.5 MB/s``.

    On a terminal one line is redrawn up to 10 times a second; elsewhere (a log file) a line is
    added every few seconds. `finish` shows the final state.
    """

    def __init__(self, label: str, *, enabled: bool, stream: TextIO | None = None) -> None:
        self.label = label
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._interval = 0.1 if self.tty else 2.0
        self._start: tuple[float, int] | None = None
        self._last: tuple[int, int | None] | None = None
        self._note: str | None = None
        self._drawn = 0.0
        self._shown = False

    def update(self, done: int, total: int | None, *, note: str | None = None,
               force: bool = False) -> None:
        """Report progress; `note` (e.g. "waiting for a peer that holds it…") replaces the rate
        while it lasts, and a change of note is drawn at once."""
        if not self.enabled:
            return
        now = time.monotonic()
        if self._start is None or (self._note and not note):
            self._start = (now, done)  # rate from here: a resumed fetch starts part-way
        changed = note != self._note
        self._last = (done, total)
        self._note = note
        if force or changed or now - self._drawn >= self._interval:
            self._draw(now)

    def _draw(self, now: float) -> None:
        assert self._start is not None and self._last is not None
        done, total = self._last
        elapsed = now - self._start[0]
        rate = f"  {(done - self._start[1]) / elapsed / 1e6:.1f} MB/s" if elapsed > 0.05 else ""
        if self._note:
            rate = f"  {self._note}"
        if total:
            filled = int(30 * min(done, total) / total)
            bar = "#" * filled + "-" * (30 - filled)
            text = (f"{self.label} [{bar}] {100 * done // total:3d}%  "
                    f"{human_size(done)}/{human_size(total)}{rate}")
        else:
            text = f"{self.label} {human_size(done)}{rate}"
        self.stream.write(f"\r{text}\x1b[K" if self.tty else text + "\n")
        self.stream.flush()
        self._drawn = now
        self._shown = True

    def finish(self) -> None:
        """Draw the last state (if anything was ever reported) and end the line."""
        if self.enabled and self._last is not None:
            self._draw(time.monotonic())
        if self._shown and self.tty:
            self.stream.write("\n")
            self.stream.flush()
        self._shown = False


def _wants_bar(size: int | None) -> bool:
    return sys.stderr.isatty() or (size or 0) > BAR_THRESHOLD


def _print_json(value: Any) -> None:
    print(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))


def _circle(home: Home, text: str | None) -> bytes | None:
    if text is None:
        return None
    from p2pnode.cli.common import resolve_circle as _resolve_circle

    return _resolve_circle(home, text)


# -- share ---------------------------------------------------------------------------------------
def cmd_share(args: argparse.Namespace, home: Home) -> int:
    path: Path = args.file
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None
    bar = ProgressBar("hashing", enabled=_wants_bar(size))
    try:
        shared = share_file(
            home, path, title=args.title or _readable_name(path), circle=_circle(home, args.circle),
            licence=args.licence, caption=args.caption, at_ms=actions.now_ms(),
            progress=bar.update,
        )
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        bar.finish()
    control.notify_new_entries(home.path)
    if args.json:
        _print_json({"blob": shared.blob_id, "entry": shared.entry.id,
                     "already_shared": shared.already, **{
            k: v for k, v in shared.body.items() if k != "blob"}})
    elif shared.already:
        print(node_id_text(shared.blob_id))
        print(f"Already shared {shared.body['title']!r} with these details; nothing new to"
              " publish", file=sys.stderr)
    else:
        print(node_id_text(shared.blob_id))
        print(f"Shared {shared.body['title']!r} ({human_size(shared.body['size'])}); peers can"
              f" fetch it with: p2pnode fetch {fingerprint(shared.blob_id)}", file=sys.stderr)
    return EXIT_OK


def _readable_name(path: Path) -> str:
    """The file's name as text, even when it is not UTF-8 (a name from a Latin-1 system)."""
    return default_title(Path(os.fsencode(path.name).decode("utf-8", errors="replace")))


# -- resources -----------------------------------------------------------------------------------
def _node_view(home: Home, circle: bytes | None) -> dict[str, dict[str, Any]] | None:
    """What the running node knows (held, holders) by blob id text; None when none runs."""
    query = f"?circle={urllib.parse.quote(node_id_text(circle))}" if circle else ""
    try:
        rows = control.request(home.path, "GET", "/v1/resources" + query, timeout=5.0)
    except NotRunning:
        return None
    except NodeError:
        return None  # an older node without the route: local facts only
    return {row["blob"]: row for row in rows if isinstance(row, dict) and "blob" in row}


def cmd_resources(args: argparse.Namespace, home: Home) -> int:
    circle = _circle(home, args.circle)
    found = queries.list_resources(home.store.conn, circle=circle)
    store = BlobStore(home.blobs_path)
    view = _node_view(home, circle)
    rows = []
    for r in found:
        entry = {**to_jsonable(r), "held": store.has(r.blob), "holders": None}
        if view is not None:
            seen = view.get(entry["blob"], {})
            entry["holders"] = list(seen.get("holders", []))
            entry["held"] = entry["held"] or bool(seen.get("held"))
        rows.append(entry)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print("No resources yet. Share a file with: p2pnode share FILE")
        return EXIT_OK
    for r, entry in zip(found, rows, strict=True):
        here = "held here" if entry["held"] else "not here"
        print(f"{fingerprint(r.blob)}  {r.title}  ({human_size(r.size)}, {r.media_type}, "
              f"{here})")
        print(f"          shared by {r.author.label}"
              + (f", licence {r.licence}" if r.licence else "")
              + (f", circle {fingerprint(r.circle)}" if r.circle else ""))
        if r.caption:
            print(f"          {r.caption.splitlines()[0]}")
        holders = entry["holders"]
        if holders is None:
            continue
        if holders:
            names = ", ".join(_label(home, text) for text in holders)
            print(f"          held by {len(holders)} connected peer"
                  f"{'s' if len(holders) != 1 else ''}: {names}")
        elif not entry["held"]:
            print("          no connected peer holds it right now")
    if view is None:
        print("(no node is running: start one with `p2pnode run` to see which peers hold what)")
    return EXIT_OK


def _label(home: Home, node_text: str) -> str:
    try:
        node_id = parse_id(node_text, "peer")
    except ValueError:
        return node_text
    profile = queries.profile(home.store.conn, node_id) or {}
    return f"{profile.get('name') or 'unknown'} ({fingerprint(node_id)})"


# -- unshare -------------------------------------------------------------------------------------
def cmd_unshare(args: argparse.Namespace, home: Home) -> int:
    blob_id = _match_blob(home, args.resource)
    entry = unshare_resource(home, blob_id, at_ms=actions.now_ms())
    control.notify_new_entries(home.path)
    if args.json:
        _print_json({"blob": blob_id, "delete": entry.id})
    else:
        print(f"Unshared {fingerprint(blob_id)}: it leaves every listing as peers get the news"
              " (copies already fetched stay with whoever holds them)")
    return EXIT_OK


# -- fetch ---------------------------------------------------------------------------------------
def _resolve_blob(home_path: Path, text: str) -> bytes:
    """A blob id from its full form, or from a unique prefix of a resource known here."""
    if len(text.strip()) >= 52:
        return parse_id(text.strip().lower(), "resource")
    if not Home.exists(home_path):
        raise InvalidInput(f"give the full resource id ({text!r} is only a prefix)")
    with Home.open(home_path) as home:
        return _match_blob(home, text)


def _match_blob(home: Home, text: str) -> bytes:
    text = text.strip().lower()
    if len(text) >= 52:
        return parse_id(text, "resource")
    blobs = {row[0] for row in home.store.conn.execute("SELECT blob FROM resources")}
    matches = [b for b in blobs if node_id_text(b).startswith(text)]
    if not matches:
        raise InvalidInput(f"no resource whose id starts with {text!r} is known here")
    if len(matches) > 1:
        raise InvalidInput(f"{text!r} matches {len(matches)} resources; give more characters")
    return matches[0]


def cmd_fetch(args: argparse.Namespace) -> int:
    blob_id = _resolve_blob(args.home, args.resource)
    output = os.path.abspath(args.output) if args.output else None
    if output and (os.path.lexists(output)):
        raise CommandError(f"{output} exists; not overwriting it")
    payload = {"blob": node_id_text(blob_id), "output": output}
    bar: ProgressBar | None = None
    final: dict[str, Any] | None = None
    try:
        for update in control.stream(args.home, "POST", "/v1/fetch", payload):
            if not isinstance(update, dict):
                continue
            if "error" in update or update.get("done"):
                final = update
                break
            total = update.get("total_bytes")
            note = WAITING if update.get("state") in _WAITING_STATES else None
            if bar is None and (total is not None or note):
                bar = ProgressBar("fetching", enabled=note is not None or _wants_bar(total))
            if bar is not None:
                bar.update(int(update.get("done_bytes") or 0), total, note=note)
    finally:
        if bar is not None:
            if final is not None and final.get("done"):
                bar.update(final.get("size") or 0, final.get("size") or 0)
            bar.finish()
    if final is None:
        raise CommandError("the node stopped answering before the download finished")
    if "error" in final or not final.get("done"):
        raise CommandError(str(final.get("error") or "the download failed"))
    if args.json:
        print(json.dumps(final, indent=2, ensure_ascii=False))
    else:
        print(final["path"])
    return EXIT_OK


# -- registration --------------------------------------------------------------------------------
def add_commands(sub: Any, command: Callable[..., argparse.ArgumentParser],
                 json_flag: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register `share`, `resources` and `fetch`."""
    p = command("share", cmd_share, "share a file with peers as a resource (prints its id)")
    p.add_argument("file", type=Path, help="the file to share (copied into the node home)")
    p.add_argument("--title", help="title (1-128 characters; default: the file name)")
    p.add_argument("--circle", help="the circle it belongs to (id or unique prefix)")
    p.add_argument("--licence", choices=LICENCES, metavar="LICENCE",
                   help=f"one of {', '.join(LICENCES)}")
    p.add_argument("--caption", help="a few words about it (up to 500 characters)")
    json_flag(p)

    p = command("resources", cmd_resources,
                "shared resources: who shared them, whether held here, which peers hold them")
    p.add_argument("--circle", help="only this circle's resources (id or unique prefix)")
    json_flag(p)

    p = command("unshare", cmd_unshare, "withdraw a resource you shared")
    p.add_argument("resource", help="resource id (or a unique prefix, as `resources` shows)")
    json_flag(p)

    p = command("fetch", cmd_fetch,
                "download a resource from peers through the running node (verified)")
    p.add_argument("resource", help="resource id (or a unique prefix, as `resources` shows)")
    p.add_argument("-o", "--output", type=Path,
                   help="also save the file here (never overwrites an existing file)")
    json_flag(p)
    p.set_defaults(needs_home=False)


__all__ = ["ProgressBar", "add_commands", "human_size"]
