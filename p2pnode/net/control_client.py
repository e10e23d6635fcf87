"""Client side of the local control API: how CLI commands reach a node running on the same home.

The running node writes `control.json` (port, pid) and a 0600 `control.token` into its home; the
API listens on 127.0.0.1 only and wants the token as a bearer token on every request.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from p2pnode import config
from p2pnode.errors import NodeError, NotRunning

_NOTIFY_TIMEOUT = 1.0


def _endpoint(home: Path) -> tuple[str, str] | None:
    try:
        info = json.loads((home / config.CONTROL_FILE).read_text())
        token = (home / config.TOKEN_FILE).read_text().strip()
        return f"http://127.0.0.1:{int(info['port'])}", token
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _open(home: Path, method: str, path: str, payload: Any, timeout: float) -> Any:
    """Send one authenticated request to the node of `home`; return the open response.

    Raises:
        NotRunning: no node answers for this home.
        NodeError: the node refused the request (its error message).
    """
    endpoint = _endpoint(home)
    if endpoint is None:
        raise NotRunning(f"no node is running for {home}; start one with: p2pnode run")
    base, token = endpoint
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        raise NodeError(str(message)) from None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        raise NotRunning(f"no node is running for {home}; start one with: p2pnode run") from None


def request(home: Path, method: str, path: str, payload: Any = None,
            timeout: float = 10.0) -> Any:
    """Call the control API of the node running on `home` and return its JSON answer.

    Raises:
        NotRunning: no node answers for this home.
        NodeError: the node refused the request.
    """
    with _open(home, method, path, payload, timeout) as response:
        try:
            return json.loads(response.read() or b"null")
        except (OSError, ValueError, http.client.HTTPException):
            raise NodeError("the node sent an unreadable answer") from None


def notify_new_entries(home: Path) -> bool:
    """Tell the running node (if any) to push what the CLI just wrote. Never raises."""
    try:
        request(home, "POST", "/v1/refresh", {}, timeout=_NOTIFY_TIMEOUT)
    except Exception:
        return False
    return True


def stream(home: Path, method: str, path: str, payload: Any = None,
           timeout: float = 300.0) -> Iterator[Any]:
    """Call a control API route that answers with NDJSON; yield each line's JSON as it arrives.

    Args:
        timeout: seconds to wait for each line (the node sends one at least every second
            while a download runs).

    Raises:
        NotRunning: no node answers for this home.
        NodeError: the node refused the request, or stopped answering midway.
    """
    response = _open(home, method, path, payload, timeout)
    with response:
        while True:
            try:
                line = response.readline()
            except (OSError, http.client.HTTPException):
                raise NodeError("the node stopped answering") from None
            if not line:
                return
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    raise NodeError("the node sent something that is not JSON") from None
