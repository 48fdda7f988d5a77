"""Dead letters and replays as `ketenbus dlq list|counts|replay` print them, as text or JSON.

What is printed about many dead letters at once never includes the value (it
can hold personal data): only the headers the bus wrote and the event's id and
type. Everything taken from a record is printed with its control characters
escaped, so a crafted message cannot drive the terminal. One dead letter with
its value is printed by `services.dead_letters.show`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from contracts.envelope import EVENT_TYPE_PREFIX
from services.dead_letters.letters import DeadLetter
from services.dead_letters.replay import NeedsConfirmation, NotReplayable, Replayed
from services.runtime.text.terminal import clean, format_time, table


def _short_type(event_type: str | None) -> str:
    if event_type is None:
        return "-"
    return clean(event_type.removeprefix(EVENT_TYPE_PREFIX))


def render_list(letters: Sequence[DeadLetter]) -> str:
    """One line per dead letter, in the order given: never anything of the value but its
    event id and type."""
    if not letters:
        return "no dead letters"
    rows = [
        (
            letter.id,
            format_time(letter.time),
            clean(letter.reason_code),
            clean(letter.rejected_by or "-"),
            clean(letter.origin),
            str(letter.case_id) if letter.case_id else "-",
            clean(letter.event_id or "-"),
            _short_type(letter.event_type),
        )
        for letter in letters
    ]
    headers = ("ID", "TIME", "REASON", "BY", "ORIGIN", "CASE", "EVENT", "TYPE")
    return "\n".join(table(headers, rows))


def summary(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as `dlq list --json` prints it: the headers' facts, not the value."""
    return {
        "id": letter.id,
        "partition": letter.record.partition,
        "offset": letter.record.offset,
        "time": letter.time.isoformat(),
        "reason_code": letter.reason_code,
        "reason": letter.reason,
        "rejected_by": letter.rejected_by,
        "origin_topic": letter.origin_topic,
        "origin_partition": letter.origin_partition,
        "origin_offset": letter.origin_offset,
        "case_id": str(letter.case_id) if letter.case_id else None,
        "event_id": letter.event_id,
        "event_type": letter.event_type,
        "redacted": letter.redacted,
    }


def render_counts(tally: Sequence[tuple[str, int]]) -> str:
    if not tally:
        return "no dead letters"
    rows = [(clean(code), str(count)) for code, count in tally]
    rows.append(("total", str(sum(count for _, count in tally))))
    return "\n".join(table(("REASON", "COUNT"), rows))


def render_replayed(done: Replayed) -> str:
    letter = done.replay.letter
    what = ", ".join(
        part
        for part in (
            f"reason {clean(letter.reason_code)}",
            f"case {letter.case_id}" if letter.case_id else "",
            f"event {letter.event_id}" if letter.event_id else "",
        )
        if part
    )
    return (
        f"replayed {letter.id} ({what}) to {clean(done.replay.topic)} "
        f"partition {done.partition} offset {done.offset}"
    )


def why_not(refusals: Sequence[NotReplayable]) -> str:
    """Why dead letters were not replayed, each reason with how many, most first."""
    why = Counter(refusal.why for refusal in refusals)
    return "; ".join(f"{count} because {reason}" for reason, count in why.most_common())


def render_refused(refusals: Sequence[NotReplayable]) -> str:
    """The dead letters `--all-of` did not replay: a line for those that cannot be replayed,
    one for those held back (the refusals of earlier replays, replayed with --force)."""
    cannot = [r for r in refusals if not isinstance(r, NeedsConfirmation)]
    held = [r for r in refusals if isinstance(r, NeedsConfirmation)]
    lines = []
    if cannot:
        lines.append(f"not replayed: {len(cannot)} that cannot be replayed ({why_not(cannot)})")
    if held:
        lines.append(
            f"not replayed: {len(held)} held back ({why_not(held)}); "
            "--force replays the refusals of earlier replays too"
        )
    return "\n".join(lines)
