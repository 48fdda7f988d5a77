"""Record headers left as they were sent, for consumers of topics that anyone may write.

FastStream's Kafka parsers decode every header value as UTF-8 before the
handler runs. One value that is not UTF-8 (or a null value) makes the parser
raise, and the whole fetched batch, every agency's records in it, is dropped
before the service sees it: never handled, never dead-lettered, and committed
past by the next batch. `lenient_batch` gives the subscriber a parser that
cannot fail on headers: FastStream parses a copy whose undecodable values are
emptied, while the message keeps the records as they came, so the service
reads the real bytes and refuses the one bad record itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

RawHeaders = Sequence[tuple[str, bytes | None]]


def is_text(value: bytes | None) -> bool:
    """Whether a header value reads as UTF-8 text (a null value is no text, but harmless)."""
    if value is None or value.isascii():
        return True
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


def readable(headers: RawHeaders) -> bool:
    """Whether FastStream can decode every value of `headers`."""
    return all(value is not None and is_text(value) for _, value in headers)


async def lenient_batch(
    records: tuple[Any, ...], original: Callable[[tuple[Any, ...]], Awaitable[Any]]
) -> Any:
    """FastStream's batch parser (`original`) over records it cannot fail on; pass as `parser=`.

    The parsed message's `raw_message` is the records as they came.
    """
    if all(readable(record.headers) for record in records):
        return await original(records)
    safe = tuple(
        record if readable(record.headers) else replace(record, headers=_emptied(record.headers))
        for record in records
    )
    message = await original(safe)
    message.raw_message = records
    return message


def _emptied(headers: RawHeaders) -> tuple[tuple[str, bytes], ...]:
    return tuple(
        (name, value if value is not None and is_text(value) else b"") for name, value in headers
    )
