"""What an HTTP request carries, in the CloudEvents HTTP binding, as the events the bus takes.

- structured (`application/cloudevents+json`): the body is the event, and goes
  to Kafka byte for byte;
- batch (`application/cloudevents-batch+json`): a JSON array of events, each
  written out again as compact JSON (its signature covers the values, in RFC
  8785's canonical form, not the bytes);
- binary (a `ce-specversion` header): each `ce-<name>` header an attribute
  (percent-decoded; `sequence` the integer the envelope makes it), the
  `Content-Type` the `datacontenttype` and the JSON body the `data`; the
  agency signs that event as structured mode would carry it.

Each event must then parse as the envelope and its data say (`contracts.parse`)
and come from the calling agency; the router checks everything else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote
from uuid import UUID

import orjson

from contracts.canonical import canonical_json
from contracts.envelope import MAX_EVENT_BYTES, oin_of_source
from contracts.parse import EventRejected, parse_event, read_json
from contracts.screening import MAX_DEPTH, nesting_exceeds
from services.gateway.problems import Problem

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
MAX_BATCH_EVENTS = 100
MAX_BODY_BYTES = MAX_BATCH_EVENTS * MAX_EVENT_BYTES
"""A request's limit: a batch of the most events, each of the most bytes."""

_INTEGER_ATTRIBUTES = frozenset({"sequence"})


@dataclass(frozen=True, slots=True)
class Taken:
    """One event of a request, read and checked, as it goes to the agency's outbox."""

    event_id: UUID
    case_id: UUID
    value: bytes
    digest: str


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def values_of(headers: Mapping[str, str], body: bytes) -> list[bytes]:
    """The event values in a request, in the order sent; 415 for another media type."""
    media = media_type(headers.get("content-type"))
    if media == STRUCTURED:
        return [body]
    if media == BATCH:
        return _batch(body)
    if "ce-specversion" in headers:
        return [_binary(headers, body)]
    raise Problem(
        415,
        "unsupported-media-type",
        "Unsupported media type",
        f"{media or 'no Content-Type'} is not a CloudEvents HTTP mode; send "
        f"{STRUCTURED}, {BATCH}, or binary mode (ce-* headers, application/json body)",
    )


def _batch(body: bytes) -> list[bytes]:
    document = _array_within_depth(body)
    if document is None:
        # An event inside the array is one level less deep than the batch.
        _not_too_deep(body, MAX_DEPTH + 1, "an event of the batch")
        document = _json(body, "the batch")
        if not isinstance(document, list):
            raise _bad("the batch is not a JSON array of events")
    if len(document) > MAX_BATCH_EVENTS:
        raise Problem(
            413,
            "too-many-events",
            "Too many events",
            f"{len(document)} events in one batch; at most {MAX_BATCH_EVENTS}",
        )
    if not document:
        raise _bad("the batch holds no event")
    return [_compact(item) for item in document]


def _array_within_depth(body: bytes) -> list[Any] | None:
    """The events of a batch that orjson reads as an array, if none nests deeper than
    MAX_DEPTH (400 if one does); None for any other body, which `_batch` checks and
    reads as before.

    Checking the whole batch's nesting reads it with a regular expression: ~55 us an
    event in a batch of 50, half the gateway's CPU per event in batch mode. An event on
    its own mostly has fewer brackets than the limit, which a count answers, and the
    array nests deeper than MAX_DEPTH + 1 exactly when one of its events nests deeper
    than MAX_DEPTH. orjson reads (to a depth of 1024) and writes (to 254) in C, so no
    depth reaches a Python recursion; what it reads, `read_json` reads the same, and an
    event it cannot write is left to `_batch`'s own check.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, list):
        return None
    for item in document:
        try:
            written = orjson.dumps(item)
        except TypeError:  # deeper than orjson writes
            return None
        _not_too_deep(written, MAX_DEPTH, "an event of the batch")
    return document


def _binary(headers: Mapping[str, str], body: bytes) -> bytes:
    media = media_type(headers.get("content-type"))
    if media != "application/json":
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"binary mode carries JSON data here; Content-Type {media or '(none)'} is not "
            "application/json",
        )
    document: dict[str, Any] = {}
    for name, value in headers.items():
        if name.startswith("ce-"):
            attribute = name[3:]
            text = unquote(value)
            document[attribute] = (
                _integer(attribute, text) if attribute in _INTEGER_ATTRIBUTES else text
            )
    document["datacontenttype"] = "application/json"
    # The data is one level deeper in the event than in the body.
    _not_too_deep(body, MAX_DEPTH - 1, "the data", field="data")
    document["data"] = _json(body, "the data")
    return _compact(document)


def _compact(value: Any) -> bytes:
    """`value` as compact JSON, in UTF-8 where it can be.

    A lone surrogate (which `read_json` reads, as `json.loads` does) has no UTF-8
    form: it stays a `\\u` escape, so the event is refused for it as a structured
    one is, not failed on. The caller bounds the nesting first (`_not_too_deep`).
    """
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


def _not_too_deep(body: bytes, limit: int, what: str, *, field: str = "(event)") -> None:
    """400 for nesting the router refuses (contracts.screening), before any walk of it."""
    if nesting_exceeds(body, limit):
        raise _bad(f"{what} nests objects and arrays more than {MAX_DEPTH} deep", field=field)


def _integer(attribute: str, text: str) -> int:
    # ASCII digits only ("²" is a digit to str.isdigit, not to int), and int()
    # refuses more digits than sys.get_int_max_str_digits().
    if text.isascii() and text.isdigit():
        with contextlib.suppress(ValueError):
            return int(text)
    raise _bad(f"ce-{attribute} is {text[:40]!r}, not a whole number", field=attribute)


def _json(body: bytes, what: str) -> Any:
    try:
        return read_json(body)
    except (ValueError, RecursionError):
        raise _bad(f"{what} is not JSON") from None


def _bad(detail: str, *, field: str = "(event)", code: str = "malformed-json") -> Problem:
    return Problem(
        400,
        "invalid-event",
        "Invalid event",
        detail,
        errors=[{"index": 0, "reason_code": code, "field": field, "detail": detail}],
    )


def take(values: list[bytes], agency: str, oin: str) -> list[Taken]:
    """Each value as an event of `agency`; one problem naming every event that is not."""
    taken: list[Taken] = []
    errors: list[dict[str, Any]] = []
    foreign: list[int] = []
    for index, value in enumerate(values):
        if len(value) > MAX_EVENT_BYTES:
            raise Problem(
                413,
                "event-too-large",
                "Event too large",
                f"event {index} is {len(value)} bytes, more than 64 KB ({MAX_EVENT_BYTES} "
                "bytes); send large documents by reference (dataref)",
            )
        try:
            event = parse_event(value)
        except EventRejected as exc:
            errors.append(
                {"index": index, "reason_code": exc.code, "field": exc.field, "detail": str(exc)}
            )
            continue
        if oin_of_source(event.source) != oin:
            foreign.append(index)
            continue
        taken.append(Taken(event.id, event.subject, value, _digest(value)))
    if errors:
        detail = "; ".join(f"event {e['index']}: {e['detail']}" for e in errors)
        raise Problem(400, "invalid-event", "Invalid event", detail, errors=errors)
    if foreign:
        raise Problem(
            403,
            "foreign-source",
            "Not this agency's event",
            f"event(s) {', '.join(map(str, foreign))} name another source than agency "
            f"{agency} (urn:nld:oin:{oin}:systeem:...); a token sends for its own agency only",
        )
    return taken


def _digest(value: bytes) -> str:
    """Of the canonical form: the same event sent again in other whitespace is the same."""
    try:
        return hashlib.sha256(canonical_json(read_json(value))).hexdigest()
    except ValueError:
        return hashlib.sha256(value).hexdigest()
