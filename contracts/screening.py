"""What no event may carry anywhere in it, whatever its type: the bus's text rules.

- Nesting deeper than MAX_DEPTH. Canonical JSON (the signature's input) and
  every reader after the bus walk an event recursively; a document nested
  thousands deep would stop them. `nesting_exceeds` answers from the raw bytes,
  before anything is parsed.
- A NUL character (U+0000) in any text or name: PostgreSQL's text cannot hold
  it, so an event carrying one could be routed but never stored.
- A citizen service number (BSN, a number of nine digits that passes the
  eleven test) in clear in any text. Personal data travels only in the sealed
  section (`contracts.sealing`); a BSN typed into a summary or a note would
  otherwise reach the case log and every inbox. The envelope's own identifiers
  (`id`, `subject`, `correlationid`, `causationid`), the signature and the
  sealed boxes are not text and are not screened.

An agency system can run `screen` on an event before it signs and sends it,
to know whether the bus would refuse it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, NamedTuple

MAX_DEPTH = 64
"""Objects and arrays nested in one another, at most (an event's own schema needs about 6)."""

_BRACKETS = re.compile(rb"[\[\]{}]")
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
# Nine digits standing alone: not inside a longer number, nor inside an identifier such as
# a UUID's hex or a base64 text, whose digits are no number at all.
_NINE_DIGITS = re.compile(r"(?<![0-9A-Za-z])[0-9]{9}(?![0-9A-Za-z])")
_RAW_NINE_DIGITS = re.compile(rb"(?<![0-9A-Za-z])[0-9]{9}(?![0-9A-Za-z])")
_BYTE_CLASSES = bytes(
    ord("0") if 48 <= b <= 57 else ord("a") if 65 <= b <= 90 or 97 <= b <= 122 else ord(" ")
    for b in range(256)
)
"""Each byte as its class for `_RAW_NINE_DIGITS`: an ASCII digit, an ASCII letter, or neither."""
_STANDALONE_NINE = b" 000000000 "

NOT_TEXT = frozenset({"id", "subject", "correlationid", "causationid", "signature", "signingkey"})
"""Top-level attributes that are identifiers or signatures, never free text."""

SEALED = ("data", "context", "personal")
"""Where the sealed boxes are: ciphertext, not text."""


class Finding(NamedTuple):
    """Why the bus refuses an event: the reason code, the field, and the rule broken."""

    code: str
    field: str
    reason: str


def nesting_exceeds(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON text `raw` nests objects and arrays deeper than `limit`.

    Read from the bytes, before parsing: brackets inside strings do not count.
    Most events have fewer brackets than `limit` in all and are answered at once.
    """
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return False
    depth = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub(b"", raw)):
        if bracket in (b"{", b"["):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def is_bsn(digits: str) -> bool:
    """Whether nine digits pass the eleven test of a citizen service number (BSN).

    9·d1 + 8·d2 + ... + 2·d8 - d9 must be a multiple of 11, and not all digits zero.
    """
    if len(digits) != 9 or not digits.isascii() or not digits.isdigit():
        return False
    total = sum((9 - i) * int(d) for i, d in enumerate(digits[:8])) - int(digits[8])
    return total % 11 == 0 and digits != "000000000"


def screen(document: dict[str, Any], raw: bytes | None = None) -> Finding | None:
    """The first text rule `document` (a parsed event) breaks, or None.

    Pass the bytes it was read from as `raw` to answer most events without a
    walk: no `\\u` escape and no candidate number in them means neither a NUL
    nor a BSN can be in the text.
    """
    if raw is not None and b"\\u" not in raw and not _maybe_bsn(raw):
        return None
    for field, text in _texts(document):
        if "\x00" in text:
            return Finding(
                "nul-character",
                field,
                "contains a NUL character (U+0000), which no store of the bus can keep",
            )
        if any(is_bsn(m) for m in _NINE_DIGITS.findall(text)):
            return Finding(
                "unsealed-personal-data",
                field,
                "contains what is a citizen service number (BSN); personal data must be "
                "sealed for its receivers (contracts.sealing), never written in a text",
            )
    return None


def redact_bsns(text: str) -> str:
    """`text` with every BSN in it replaced by `[BSN removed]`."""
    return _NINE_DIGITS.sub(lambda m: "[BSN removed]" if is_bsn(m[0]) else m[0], text)


def redacted(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of `document` without its BSNs in clear, for quarantine."""
    return {k: v if k in NOT_TEXT else _redact(v) for k, v in document.items()}


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_bsns(value)
    if isinstance(value, dict):
        return {redact_bsns(k): _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


def _maybe_bsn(raw: bytes) -> bool:
    # Most events hold no nine digits standing alone at all, which the byte classes
    # answer in C at ~1 ns a byte; the regular expression, trying its lookbehind at
    # every byte, takes ~12 us for an event of 1 KB.
    if _STANDALONE_NINE not in (b" " + raw + b" ").translate(_BYTE_CLASSES):
        return False
    return any(is_bsn(m.decode()) for m in _RAW_NINE_DIGITS.findall(raw))


def _texts(document: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Every text and name in `document` with its dotted path, but identifiers and sealed boxes.

    Walked with a stack, not recursively: the depth is bounded, but need not be trusted.
    """
    stack: list[tuple[str, Any]] = [
        (key, value) for key, value in reversed(document.items()) if key not in NOT_TEXT
    ]
    for key in document:
        if key not in NOT_TEXT:
            yield key, key
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            yield path, value
        elif isinstance(value, dict):
            if path == ".".join(SEALED):
                continue
            for key in value:
                yield f"{path}.{key}", key
            stack.extend((f"{path}.{k}", v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}", v) for i, v in reversed(list(enumerate(value))))
