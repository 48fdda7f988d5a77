"""The dead-letter topic for operators: read it, describe what it holds, and replay from it.

`ketenbus dlq` stands on this package.

Reads: `ketenbus.dlq` and, for a dead letter's replay history, its origin
agency outbox; each from the beginning of every partition to its end as of now,
with no consumer group and nothing committed, so reading changes nothing on
the bus (`kafka`).

Writes: only `ketenbus dlq replay` writes, a dead letter's original key and
value back on its origin agency outbox, with the header `ketenbus-replay-of:
<dead letter ID>` (`replay`, published by `kafka`). The router checks a replay
like any other message. Each replay, and each refusal to replay, is logged
for the audit (logger `ketenbus.dlq`).

A replay cannot loop: a dead letter that a replay cannot cure (its refusal is
decided by the bytes a replay sends unchanged, `FUTILE`) and the refusal of an
earlier replay (`replay_marks`: the dead letter's own `ketenbus-replay-of`,
kept by the router, else that header of the refused record on its outbox) are
replayed only when an operator confirms one by ID (`replay_caution`), and a
replay by reason skips them (`plan_replays`).

A dead letter is named by its position on `ketenbus.dlq`, `<partition>:<offset>`,
which stays valid as long as Kafka keeps the record (`letters`). Parsing,
formatting and replay planning are pure functions over `Record`s; `kafka` is
the only module that talks to Kafka.

Guarantees:
- dead letters can hold personal data (a malformed event is kept as it was
  sent), so what is printed about many of them at once (`render`) and what is
  logged never includes the value: only the headers the bus wrote and the
  event's id and type. The value is shown only by `show`, for one dead letter
  an operator asked for;
- everything taken from a record is printed with its control characters
  escaped, so a crafted message cannot drive the terminal;
- only what an agency sent, complete, is replayed, and only to an agency outbox;
  a replay is awaited before the next is sent, so a failure leaves nothing
  after it sent.
"""

from services.dead_letters.kafka import (
    publish_replays,
    read_at,
    read_dead_letters,
    read_topic,
    read_with_history,
    replay_marks,
)
from services.dead_letters.letters import (
    NO_REASON,
    REPLAY_OF,
    DeadLetter,
    NoSuchDeadLetter,
    Record,
    counts,
    find,
    parse_dead_letter,
    parse_id,
    with_reason,
)
from services.dead_letters.render import (
    render_counts,
    render_list,
    render_refused,
    render_replayed,
    summary,
    why_not,
)
from services.dead_letters.replay import (
    FUTILE,
    NeedsConfirmation,
    NotReplayable,
    Replay,
    Replayed,
    ReplayEntry,
    futile,
    log_refused,
    plan_replay,
    plan_replays,
    replay_caution,
    replay_history,
    replayed_from,
)
from services.dead_letters.show import render_show, show_json
from services.runtime.text.terminal import clean

__all__ = [
    "FUTILE",
    "NO_REASON",
    "REPLAY_OF",
    "DeadLetter",
    "NeedsConfirmation",
    "NoSuchDeadLetter",
    "NotReplayable",
    "Record",
    "Replay",
    "ReplayEntry",
    "Replayed",
    "clean",
    "counts",
    "find",
    "futile",
    "log_refused",
    "parse_dead_letter",
    "parse_id",
    "plan_replay",
    "plan_replays",
    "publish_replays",
    "read_at",
    "read_dead_letters",
    "read_topic",
    "read_with_history",
    "render_counts",
    "render_list",
    "render_refused",
    "render_replayed",
    "render_show",
    "replay_caution",
    "replay_history",
    "replay_marks",
    "replayed_from",
    "show_json",
    "summary",
    "why_not",
    "with_reason",
]
