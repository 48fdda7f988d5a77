"""RFC 8785 (JSON Canonicalization Scheme) serialisation, fast for the common case.

What an event's signature covers (`contracts.signing`) and what an audit
record's hash covers (`contracts.audit`) are both RFC 8785 bytes, computed for
every event and every delivery on the bus's hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import rfc8785

EXACT_INT = 2**53 - 1
"""The largest integer RFC 8785 writes exactly (as an IEEE 754 double)."""
_MAX_NODES = 100_000


def canonical_json(value: Any) -> bytes:
    """`value` serialised by RFC 8785.

    Raises ValueError for a value RFC 8785 cannot express (an integer beyond
    ±(2**53 - 1), a non-finite number, a non-string key, a lone surrogate).
    """
    if _plain(value):
        # Without floats, with ASCII keys and exact integers, orjson writes RFC
        # 8785 byte for byte (same escapes, same key order, UTF-8 unescaped)
        # many times as fast as `rfc8785`.
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass  # a lone surrogate: `rfc8785` refuses it with its own reason
    try:
        return rfc8785.dumps(value)
    # `rfc8785` lets a UnicodeEncodeError through for a lone surrogate in a key.
    except (rfc8785.CanonicalizationError, UnicodeError) as exc:
        raise ValueError(f"no RFC 8785 canonical form: {exc}") from None


def canonical_flat(value: Mapping[str, str | int | list[str]]) -> bytes:
    """`canonical_json` of a flat object whose shape the caller vouches for, unwalked.

    For an object with ASCII keys whose values are strings, lists of strings
    and integers within ±(2**53 - 1) (an audit record, hashed once per
    delivery): checking that shape would cost as much as writing it. A lone
    surrogate still raises ValueError.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return canonical_json(value)  # refuses it, with `rfc8785`'s reason


def _plain(value: Any) -> bool:
    """Whether a sorted compact JSON encoder writes `value` exactly as RFC 8785 does.

    RFC 8785 formats numbers as ECMAScript does (floats differ from Python's
    repr, so they are left to `rfc8785`), and sorts keys by UTF-16 code units
    (the same as Python's order for ASCII keys).
    """
    stack = [value]
    for _ in range(_MAX_NODES):
        if not stack:
            return True
        node = stack.pop()
        kind = type(node)
        if kind is dict:
            if not all(type(key) is str and key.isascii() for key in node):
                return False
            stack.extend(node.values())
        elif kind is list:
            stack.extend(node)
        elif kind is int:
            if not -EXACT_INT <= node <= EXACT_INT:
                return False
        elif kind is not str and kind is not bool and node is not None:
            return False
    return False  # not an event's size, or a cycle: let `rfc8785` decide
