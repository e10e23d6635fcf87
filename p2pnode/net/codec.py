"""The control API's binary bodies: msgpack that gives back exactly the Python values it was given.

JSON (`to_jsonable`) is for people and the CLI's `--json`: it turns ids into base32 text and
tuples into lists, so a client cannot tell `bytes` from `str` any more. An attached app needs
the very values an in-process node returns, so these bodies are msgpack with a few extension
types:

- `bytes` stay msgpack binaries, `str` strings, `dict` maps (keys may be bytes), `list` arrays;
- ext 1: a dataclass of a fixed registry (the views in `store.models`, `inbox.Notice`, every
  event in `events`, meeting mode's `MeetingDraft`, what `share` and an import return),
  as ``[class name, [field values in order]]``; a name outside the registry is refused, so a
  body can never make the other side build an arbitrary object;
- ext 2: a `tuple` (the views' fields are tuples; arrays come back as lists);
- ext 3: a signed `Entry` in its wire form (what most actions return);
- ext 4: a `pathlib.Path`.

Errors travel as a map (`error_to_wire` / `error_from_wire`): the class name, its ancestors'
names, the message and the protocol error's field and reason. The receiver raises the most
specific class of `p2pnode.errors` / `protocol.errors` (or a few builtins) that it knows, with
the same message, so an attached app's notifications read as an in-process app's do.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import msgpack

from p2pnode import errors as node_errors
from p2pnode import events, meeting
from p2pnode.store import exchange, inbox, models
from protocol import errors as protocol_errors
from protocol.entry import Entry, entry_from_parts

MEDIA_TYPE = "application/msgpack"

_EXT_DATACLASS, _EXT_TUPLE, _EXT_ENTRY, _EXT_PATH = 1, 2, 3, 4


def _classes_of(module: Any, base: type) -> dict[str, type]:
    return {name: value for name, value in vars(module).items()
            if isinstance(value, type) and issubclass(value, base)}


_DATACLASSES: dict[str, type] = {
    **{name: cls for name, cls in vars(models).items()
       if isinstance(cls, type) and dataclasses.is_dataclass(cls)},
    "Notice": inbox.Notice,
    "MeetingDraft": meeting.MeetingDraft,
    "ImportReport": exchange.ImportReport,
    **_classes_of(events, events.NodeEvent),
}
_ERRORS: dict[str, type[BaseException]] = {
    **_classes_of(node_errors, node_errors.NodeError),
    **_classes_of(protocol_errors, protocol_errors.ProtocolError),
    **{cls.__name__: cls for cls in (ValueError, TypeError, OSError)},
}


class WireError(node_errors.NodeError):
    """A control API body that does not decode (not ours, or damaged)."""


def _default(value: Any) -> Any:
    if isinstance(value, tuple):
        return msgpack.ExtType(_EXT_TUPLE, encode(list(value)))
    if isinstance(value, Entry):
        return msgpack.ExtType(_EXT_ENTRY, msgpack.packb(value.wire()))
    if isinstance(value, Path):
        return msgpack.ExtType(_EXT_PATH, str(value).encode())
    cls = type(value)
    if dataclasses.is_dataclass(value) and _DATACLASSES.get(cls.__name__) is cls:
        fields = [getattr(value, f.name) for f in dataclasses.fields(value)]
        return msgpack.ExtType(_EXT_DATACLASS, encode([cls.__name__, fields]))
    raise TypeError(f"cannot send a {cls.__name__} over the control API")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _EXT_TUPLE:
        return tuple(decode(data))
    if code == _EXT_ENTRY:
        return entry_from_parts(msgpack.unpackb(data))
    if code == _EXT_PATH:
        return Path(data.decode())
    if code == _EXT_DATACLASS:
        name, fields = decode(data)
        cls = _DATACLASSES.get(name)
        if cls is None:
            raise WireError(f"{name!r} is not a type the control API carries")
        return cls(*fields)
    raise WireError(f"unknown msgpack extension {code}")


def encode(value: Any) -> bytes:
    """msgpack of `value`, with the extension types above.

    Raises:
        TypeError: `value` holds something outside them (e.g. an arbitrary object).
    """
    # tuples go through `default` (as ext 2) only when msgpack does not pack them as arrays
    return msgpack.packb(value, default=_default, use_bin_type=True, strict_types=True)


def decode(data: bytes) -> Any:
    """The value `encode` was given.

    Raises:
        WireError: not msgpack of the types above.
    """
    try:
        return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except WireError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException, protocol_errors.ProtocolError
            ) as exc:
        raise WireError(f"the control API body does not decode: {exc}") from None


def unpacker() -> msgpack.Unpacker:
    """A streaming decoder of `encode`d values sent back to back (a streamed answer)."""
    return msgpack.Unpacker(ext_hook=_ext_hook, raw=False, strict_map_key=False)


def error_to_wire(error: BaseException) -> dict[str, Any]:
    """What the client needs to raise `error` again: its type, ancestors, message and fields."""
    wire: dict[str, Any] = {
        "type": type(error).__name__,
        "bases": [cls.__name__ for cls in type(error).__mro__[1:]],
        "message": str(error),
    }
    if isinstance(error, protocol_errors.ProtocolError):
        wire["field"], wire["reason"] = error.field, error.reason
    if isinstance(error, OSError):
        wire["errno"], wire["strerror"], wire["filename"] = (
            error.errno, error.strerror, error.filename)
    return wire


def error_from_wire(wire: Any) -> BaseException:
    """The exception `error_to_wire` described: its own class when known here, else its nearest
    known ancestor, with the same message (and field/reason, errno/strerror/filename)."""
    if not isinstance(wire, dict):
        return WireError("the node sent an unreadable error")
    message = str(wire.get("message", ""))
    for name in [wire.get("type"), *wire.get("bases", [])]:
        cls = _ERRORS.get(name) if isinstance(name, str) else None
        if cls is None:
            continue
        if issubclass(cls, protocol_errors.ProtocolError):
            if wire.get("type") == name:
                return cls(str(wire.get("reason", message)), wire.get("field"))
            return cls(message)
        if issubclass(cls, OSError) and wire.get("strerror") is not None:
            # OSError(errno, ...) builds the subclass the errno names (FileNotFoundError...)
            return OSError(wire.get("errno"), wire["strerror"], wire.get("filename"))
        return cls(message)
    return node_errors.NodeError(
        f"something went wrong on the node ({wire.get('type')}); the details are in node.log")
