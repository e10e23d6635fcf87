"""Strict msgpack decoding shared by entries, records, frames and export files.

msgpack itself accepts far more than we want from a stranger: extension types, non-string map
keys, arbitrarily deep nesting, trailing bytes. `unpack_strict` accepts only:
nil, bool, int (signed 64-bit range), float, str (valid UTF-8), bin, array and map with str keys,
nested at most `max_depth` deep, with no bytes after the object. Everything else is a
`MalformedError` naming `what`.
"""

from __future__ import annotations

from typing import Any

import msgpack

from .errors import MalformedError

MAX_DEPTH = 8
_CONTAINERS = (list, dict)


def _no_ext(code: int, data: bytes) -> Any:
    raise MalformedError(f"msgpack extension type {code} is not allowed")


def unpack_strict(data: bytes, what: str, *, max_size: int, max_depth: int = MAX_DEPTH) -> Any:
    """Decode one msgpack object from `data`, enforcing the rules in the module docstring.

    Args:
        data: the whole encoded object, nothing before or after it.
        what: field name used in error messages (``"header"``, ``"body"``, ``"frame"``).
        max_size: largest accepted len(data); also bounds every string, bin, array and map.
        max_depth: largest accepted nesting of arrays and maps (the top level counts as 1).

    Raises:
        MalformedError: naming `what` and the rule broken.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedError(f"expected bytes, got {type(data).__name__}", what)
    if len(data) > max_size:
        raise MalformedError(f"{len(data)} bytes exceeds the limit of {max_size}", what)
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_no_ext,
            timestamp=0,
            max_str_len=max_size,
            max_bin_len=max_size,
            max_array_len=max_size,
            max_map_len=max_size,
            max_ext_len=0,
        )
    except MalformedError as exc:
        raise MalformedError(exc.reason, what) from None
    except msgpack.ExtraData:
        raise MalformedError("trailing bytes after the object", what) from None
    except UnicodeDecodeError:
        raise MalformedError("a string is not valid UTF-8", what) from None
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        detail = str(exc) if isinstance(exc, ValueError) and str(exc) else type(exc).__name__
        raise MalformedError(f"not valid msgpack ({detail[:80]})", what) from None
    check_depth(obj, what, max_depth)
    return obj


def stream_unpacker(stream: Any, *, max_object: int, max_items: int) -> msgpack.Unpacker:
    """A msgpack reader over a binary stream with the rules of `unpack_strict` (depth aside:
    check each object with `check_depth`), for files of many objects read one at a time.

    Args:
        stream: an object with ``read(n)`` (the caller owns and closes it).
        max_object: largest str/bin accepted, and a quarter of the read buffer.
        max_items: largest array or map accepted.
    """
    return msgpack.Unpacker(
        stream,
        raw=False,
        strict_map_key=True,
        use_list=True,
        ext_hook=_no_ext,
        timestamp=0,
        max_buffer_size=4 * max_object,
        max_bin_len=max_object,
        max_str_len=max_object,
        max_array_len=max_items,
        max_map_len=max_items,
        max_ext_len=0,
    )


def check_depth(obj: Any, what: str, max_depth: int) -> None:
    """Raise `MalformedError` when containers nest deeper than `max_depth` or keys are not str.

    (msgpack itself only encodes integers in the signed/unsigned 64-bit range.)
    """
    if type(obj) is list:
        for item in obj:
            if type(item) in _CONTAINERS:
                break
        else:
            return  # flat arrays (headers, most frame fields): nothing nested to check
    if type(obj) in _CONTAINERS:
        _check_nested(obj, what, max_depth, 1)


def _check_nested(obj: list | dict, what: str, max_depth: int, depth: int) -> None:
    # Recursion is bounded by max_depth: deeper containers raise before they are entered.
    if depth > max_depth:
        raise MalformedError(f"nested deeper than {max_depth}", what)
    if type(obj) is dict:
        for key, value in obj.items():
            if type(key) is not str:
                raise MalformedError("map keys must be strings", what)
            if type(value) in _CONTAINERS:
                _check_nested(value, what, max_depth, depth + 1)
    else:
        for value in obj:
            if type(value) in _CONTAINERS:
                _check_nested(value, what, max_depth, depth + 1)


def pack(obj: Any) -> bytes:
    """Encode with the settings every sender uses (str as str, bytes as bin)."""
    return msgpack.packb(obj, use_bin_type=True)
