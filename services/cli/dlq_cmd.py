"""`ketenbus dlq`: list, show, count and replay the dead letters on `ketenbus.dlq`.

Every verb reads the topic from the beginning to its end as of now, without a
consumer group, so looking changes nothing. A dead letter is named by its
position on the topic, `PARTITION:OFFSET`. The reading, formatting and replay
rules live in `services.dead_letters`; this module is the Typer surface.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from services.runtime.errors import UserError

if TYPE_CHECKING:
    from services.dead_letters import DeadLetter, Replay
    from services.runtime.config.settings import Settings

app = typer.Typer(
    help="Dead letters: what the bus refused to `ketenbus.dlq`, why, and replaying it.",
    no_args_is_help=True,
)


def _known_reason(code: str) -> None:
    """Refuse a reason code that no refusal gives: a typo must not read as "none found"."""
    from contracts.reasons import REASON_CODES
    from services.dead_letters import NO_REASON, clean

    if code not in REASON_CODES and code != NO_REASON:
        raise UserError(
            f"{clean(code)!r} is no reason code; the codes are: {', '.join(REASON_CODES)}"
        )


@app.command("list")
def list_dead_letters(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the dead letters as a JSON list.")
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option("--reason", metavar="CODE", help="Only dead letters with this reason code."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, metavar="N", help="Show the N most recent.")
    ] = 50,
) -> None:
    """List dead letters, oldest first: one line each, never the event's data.

    Each line: ID, time written (UTC), reason code, the service that refused it,
    origin (topic@partition:offset), case id, and the event's id and type.
    """
    from services import dead_letters as dl
    from services.runtime.config.settings import Settings

    letters = dl.with_reason(asyncio.run(dl.read_dead_letters(Settings())), reason)
    if not letters and reason is not None:
        _known_reason(reason)
    shown = letters[-limit:]
    if as_json:
        typer.echo(json.dumps([dl.summary(letter) for letter in shown], indent=2))
    elif not letters and reason is not None:
        typer.echo(f"no dead letters with reason {dl.clean(reason)}")
    else:
        typer.echo(dl.render_list(shown))
    if len(shown) < len(letters):
        typer.echo(
            f"(the {len(shown)} most recent of {len(letters)} dead letters; --limit shows more)",
            err=True,
        )


@app.command()
def show(
    dlq_id: Annotated[
        str, typer.Argument(metavar="ID", help="The dead letter's PARTITION:OFFSET.")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the dead letter as one JSON object.")
    ] = False,
) -> None:
    """Show one dead letter: headers, key, value, and its replays.

    The value is pretty-printed JSON, or else its length and its first 64 bytes
    in hex. Each replay says where it went and whether the router refused it again.
    """
    from services import dead_letters as dl
    from services.runtime.config.settings import Settings

    letter, history, replay_of = asyncio.run(dl.read_with_history(Settings(), dlq_id))
    if as_json:
        typer.echo(json.dumps(dl.show_json(letter, history, replay_of), indent=2))
    else:
        typer.echo(dl.render_show(letter, history, replay_of))


@app.command()
def replay(
    dlq_id: Annotated[
        str | None,
        typer.Argument(metavar="ID", help="The dead letter's PARTITION:OFFSET."),
    ] = None,
    all_of: Annotated[
        str | None,
        typer.Option(
            "--all-of", metavar="REASON", help="Replay every dead letter with this reason code."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replay without asking: a refusal of an earlier replay, or (one ID) a dead "
            "letter a replay cannot cure.",
        ),
    ] = False,
) -> None:
    """Replay dead letters: their original events back on their agencies' outboxes.

    Name one dead letter ID, or --all-of REASON. The router checks a replay like
    any other message; it carries the header `ketenbus-replay-of: ID`. Safe to
    repeat: an event the router already delivered is refused again as
    `duplicate-event-id`, a new dead letter. A dead letter from anything but an
    agency outbox, or with personal data removed (`ketenbus-redacted`), is not
    replayed: its sender must send it again.

    A replay cannot loop. A replay sends the same bytes, so a refusal those bytes
    decide (malformed-json, oversize, tombstone, nul-character, unsigned,
    bad-signature, foreign-key, forged-source, wrong-key, quoted-key,
    duplicate-event-id) would only come back: --all-of such a reason is refused,
    and one such ID is replayed only once confirmed. The refusal of an earlier
    replay is replayed only once confirmed; --all-of skips it. Confirm at the
    prompt, or with --force.
    """
    from services import dead_letters as dl
    from services.runtime.config.settings import Settings

    if (dlq_id is None) == (all_of is None):
        raise UserError("name one dead letter ID, or --all-of REASON (not both)")
    if dlq_id is not None:
        dl.parse_id(dlq_id)  # a malformed ID fails before the topic is read
    settings = Settings()
    letters = asyncio.run(dl.read_dead_letters(settings))
    if dlq_id is not None:
        plans = [_confirmed_plan(settings, dl.find(letters, dlq_id), force=force)]
        refused: list[dl.NotReplayable] = []
    else:
        assert all_of is not None
        matching = dl.with_reason(letters, all_of)
        if not matching:
            _known_reason(all_of)
            raise UserError(f"no dead letters with reason {dl.clean(all_of)}")
        futile = dl.futile(all_of)
        if futile is not None:
            for letter in matching:
                dl.log_refused(dl.NeedsConfirmation(letter, futile))
            raise UserError(
                f"not replaying the {len(matching)} dead letter(s) with reason "
                f"{dl.clean(all_of)}: {futile}; replay one by ID, confirmed, if it must go again"
            )
        marks = asyncio.run(dl.replay_marks(settings, matching))
        plans, refused = dl.plan_replays(matching, marks, force=force)
        for refusal in refused:
            dl.log_refused(refusal)
        if not plans:
            raise UserError(
                f"none of the {len(matching)} dead letter(s) with reason {dl.clean(all_of)} "
                f"replayed: {dl.why_not(refused)}"
                + (
                    " (--force replays the refusals of earlier replays)"
                    if any(isinstance(r, dl.NeedsConfirmation) for r in refused)
                    else ""
                )
            )

    asyncio.run(
        dl.publish_replays(settings, plans, lambda done: typer.echo(dl.render_replayed(done)))
    )
    if all_of is not None:
        typer.echo(f"replayed {len(plans)} dead letter(s) with reason {dl.clean(all_of)}")
        if refused:
            typer.echo(dl.render_refused(refused))


def _confirmed_plan(settings: Settings, letter: DeadLetter, *, force: bool) -> Replay:
    """The replay of one dead letter, confirmed if it needs to be: at the prompt when stdin is
    a terminal, else by --force; otherwise NeedsConfirmation. Every refusal is audited."""
    from services import dead_letters as dl

    try:
        plan = dl.plan_replay(letter)
    except dl.NotReplayable as exc:
        dl.log_refused(exc)
        raise
    marks = asyncio.run(dl.replay_marks(settings, [letter]))
    caution = dl.replay_caution(letter, marks.get(letter.id))
    if caution is None:
        return plan
    if not force and not (
        _interactive()
        and typer.confirm(
            f"dead letter {letter.id}: {caution}. Replay it anyway?", default=False, err=True
        )
    ):
        refusal = dl.NeedsConfirmation(letter, caution, "confirm at the prompt, or pass --force")
        dl.log_refused(refusal)
        raise refusal
    return plan.confirmed(caution)


def _interactive() -> bool:
    """Whether the operator can answer a prompt (stdin is a terminal)."""
    return sys.stdin.isatty()


@app.command()
def counts(
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print a JSON list of {reason_code, count}."),
    ] = False,
) -> None:
    """Dead letters by reason code, most first."""
    from services import dead_letters as dl
    from services.runtime.config.settings import Settings

    tally = dl.counts(asyncio.run(dl.read_dead_letters(Settings())))
    if as_json:
        rows = [{"reason_code": code, "count": count} for code, count in tally]
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(dl.render_counts(tally))
