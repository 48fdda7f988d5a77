"""One dead letter as `ketenbus dlq show` prints it: headers, key, value, and its replays.

Only here is a dead letter's value printed, for the one an operator asked for:
pretty-printed when it is JSON, else its length and a hex preview. Everything
taken from the record is printed with its control characters escaped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from contracts import topics
from services.dead_letters._text import NOT_JSON, json_value
from services.dead_letters.letters import DeadLetter
from services.dead_letters.render import summary
from services.dead_letters.replay import NotReplayable, ReplayEntry, plan_replay
from services.runtime.text.terminal import clean, format_time

PREVIEW_BYTES = 64
"""How much of a value that is not JSON `show` prints, in hex."""


def _key_text(key: bytes | None) -> str:
    if key is None:
        return "(none)"
    try:
        return clean(key.decode())
    except UnicodeDecodeError:
        return f"{len(key)} bytes, not text: {key[:PREVIEW_BYTES].hex(' ')}"


def hex_preview(value: bytes) -> list[str]:
    """The first PREVIEW_BYTES of `value` in hex, 16 bytes a line, each with its offset."""
    head = value[:PREVIEW_BYTES]
    return [
        f"{start:04x}  {head[start : start + 16].hex(' ')}" for start in range(0, len(head), 16)
    ]


def render_show(
    letter: DeadLetter, history: Sequence[ReplayEntry] | None, replay_of: str | None = None
) -> str:
    """The dead letter's headers, key and value, and its replays (None: history not read)."""
    lines = [
        f"dead letter {letter.id} on {topics.DLQ}, written {format_time(letter.time)}",
    ]
    if replay_of:
        lines.append(f"the refusal of a replay of dead letter {clean(replay_of)}")
    lines += ["", "headers"]
    lines += [
        f"  {clean(name)}: {clean(value.decode(errors='replace'))}"
        for name, value in letter.record.headers
    ] or ["  (none)"]
    lines += ["", f"key: {_key_text(letter.record.key)}", ""]
    document = json_value(letter.record.value)
    if document is not NOT_JSON:
        pretty = json.dumps(document, indent=2, ensure_ascii=False)
        lines += ["value (JSON):", *(clean(line) for line in pretty.splitlines())]
    else:
        size = len(letter.record.value)
        shown = min(size, PREVIEW_BYTES)
        lines.append(f"value: {size} bytes, not JSON; the first {shown} in hex:")
        lines += [f"  {line}" for line in hex_preview(letter.record.value)]
    lines += ["", *render_history(letter, history)]
    return "\n".join(lines)


def render_history(letter: DeadLetter, history: Sequence[ReplayEntry] | None) -> list[str]:
    try:
        plan_replay(letter)
    except NotReplayable as exc:
        return [f"replays: none ({exc.why})"]
    if history is None:
        return ["replays: unknown (the origin topic could not be read)"]
    if not history:
        return ["replays: none"]
    lines = [f"replays: {len(history)}"]
    for entry in history:
        record = entry.record
        when = format_time(datetime.fromtimestamp(record.timestamp_ms / 1000, UTC))
        outcome = (
            f"refused again: {clean(entry.refused_as.reason_code)} "
            f"(dead letter {entry.refused_as.id})"
            if entry.refused_as
            else "not refused (delivered, or not routed yet)"
        )
        lines.append(
            f"  {when}  to {clean(record.topic)} partition {record.partition} "
            f"offset {record.offset}: {outcome}"
        )
    return lines


def show_json(
    letter: DeadLetter, history: Sequence[ReplayEntry] | None, replay_of: str | None = None
) -> dict[str, Any]:
    """A dead letter as `dlq show --json` prints it: the summary, headers, key, value, replays."""
    shown: dict[str, Any] = {
        **summary(letter),
        "headers": [
            {"name": name, "value": value.decode(errors="replace")}
            for name, value in letter.record.headers
        ],
        "key": None if letter.record.key is None else letter.record.key.decode(errors="replace"),
        "replay_of": replay_of,
    }
    document = json_value(letter.record.value)
    if document is not NOT_JSON:
        shown["value"] = document
    else:
        shown["value_bytes"] = len(letter.record.value)
        shown["value_hex_preview"] = letter.record.value[:PREVIEW_BYTES].hex()
    shown["replays"] = (
        None
        if history is None
        else [
            {
                "topic": entry.record.topic,
                "partition": entry.record.partition,
                "offset": entry.record.offset,
                "time": datetime.fromtimestamp(entry.record.timestamp_ms / 1000, UTC).isoformat(),
                "refused_as": entry.refused_as.id if entry.refused_as else None,
                "refused_reason_code": entry.refused_as.reason_code if entry.refused_as else None,
            }
            for entry in history
        ]
    )
    return shown
