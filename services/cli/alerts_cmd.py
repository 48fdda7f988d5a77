"""`ketenbus alerts`: a team's escalations on the command line, live, and acting on them.

    ketenbus alerts --team AGENCY/TEAM            the open ones, then one line per change
    ketenbus alerts ack ESCALATION_ID [--note TEXT]
    ketenbus alerts resolve ESCALATION_ID --outcome OUTCOME [--note TEXT] [--handoff-to AGENCY]

A client of the console's API (`services.console.escalations`), so it sees and
does exactly what the token's holder may on the board: a team token sees and
acts on its own team's escalations, an operator token only looks. The console
is KETENBUS_CONSOLE_URL with the token KETENBUS_CONSOLE_TOKEN (or --console,
--token). An action is an event on the case log in the team's name; the
escalation's status changes once the escalation service has applied it.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.runtime.errors import UserError

if TYPE_CHECKING:
    from services.cli._alerts_client import ConsoleClient

app = typer.Typer(
    help="Follow a team's escalations live, and acknowledge and resolve them (via the console).",
    invoke_without_command=True,
    no_args_is_help=False,
)

ConsoleOption = Annotated[
    str | None,
    typer.Option("--console", metavar="URL", help="The console (default KETENBUS_CONSOLE_URL)."),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", metavar="TOKEN", help="Bearer token (KETENBUS_CONSOLE_TOKEN)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
NoteOption = Annotated[
    str | None, typer.Option("--note", metavar="TEXT", help="A note for the team's record.")
]
RECONNECTS = 5
"""Times the stream is opened again after the console ended it, before giving up."""


def _client(console: str | None, token: str | None) -> ConsoleClient:
    from services.cli._alerts_client import ConsoleClient
    from services.runtime.config.settings import Settings

    settings = Settings()
    secret = token or (
        settings.console_token.get_secret_value() if settings.console_token else None
    )
    if not secret:
        raise UserError("no console token: set KETENBUS_CONSOLE_TOKEN or pass --token")
    return ConsoleClient(console or settings.console_url, secret)


def _check_team(client: ConsoleClient, team: str | None) -> None:
    """A team token follows its own team only: say so rather than show nothing."""
    if team is None:
        return
    if team.count("/") != 1:
        raise UserError(f"--team {team!r} is not AGENCY/TEAM")
    me = client.call("GET", "/api/whoami")
    if me.get("role") == "team" and me.get("team") != team:
        raise UserError(f"the token is for team {me.get('team')}, not {team}")


def _show(items: list[dict[str, Any]], as_json: bool) -> None:
    from services.cli._alerts_client import listing

    if as_json:
        for item in items:
            typer.echo(json.dumps(item))
    else:
        for text in listing(items):
            typer.echo(text)


@app.callback()
def alerts(
    ctx: typer.Context,
    *,
    team: Annotated[
        str | None,
        typer.Option("--team", metavar="AGENCY/TEAM", help="Only this team's escalations."),
    ] = None,
    console: ConsoleOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
    once: Annotated[bool, typer.Option("--once", help="Print the open ones and exit.")] = False,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, metavar="N", help="Stop after N changes."),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0.1, metavar="SECONDS", help="Stop following after this."),
    ] = None,
) -> None:
    """The open escalations (highest level, oldest first), then one line per change.

    Columns: level, age, status, escalation id, case id, trigger, cause. Follows
    until Ctrl-C, --limit changes or --timeout seconds; --once only lists.
    """
    if ctx.invoked_subcommand is not None:
        return
    client = _client(console, token)
    _check_team(client, team)

    def mine(item: dict[str, Any]) -> bool:
        return team is None or item["team"] == team

    if once:
        _show([i for i in client.call("GET", "/api/escalations") if mine(i)], as_json)
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        _follow(client, mine, as_json=as_json, limit=limit, deadline=deadline)
    except KeyboardInterrupt:
        return


class _Printer:
    """What a follower has shown: the first snapshot as the list, then each change once."""

    def __init__(self, mine: Callable[[dict[str, Any]], bool], *, as_json: bool) -> None:
        self.mine = mine
        self.as_json = as_json
        self.known: dict[str, dict[str, Any]] | None = None
        self.changes = 0

    def take(self, event: str, data: Any) -> None:
        if event == "error":
            raise UserError(f"the console ended the stream: {data.get('error')}")
        if event not in ("snapshot", "escalation"):
            return
        items = data if event == "snapshot" else [data]
        if self.known is None:
            items = [item for item in items if self.mine(item)]
            self.known = {item["escalation_id"]: item for item in items}
            _show(items, self.as_json)
            return
        for item in items:
            key = item["escalation_id"]
            if not self.mine(item):
                # It climbed past --team: its last change says where it went.
                if self.known.pop(key, None) is not None:
                    self._print(item)
                continue
            # After a reconnect the snapshot repeats what was shown: only differences print.
            if not _same(self.known.get(key), item):
                self.known[key] = item
                self._print(item)

    def _print(self, item: dict[str, Any]) -> None:
        from services.cli._alerts_client import line

        typer.echo(json.dumps(item) if self.as_json else line(item, datetime.now(UTC)))
        self.changes += 1


def _follow(
    client: ConsoleClient,
    mine: Callable[[dict[str, Any]], bool],
    *,
    as_json: bool,
    limit: int | None,
    deadline: float | None,
) -> None:
    """The stream's snapshot as the list, then each change; reconnects when the console
    ends the stream (a restart, or this client fell behind)."""
    printer = _Printer(mine, as_json=as_json)
    for _ in range(RECONNECTS + 1):
        with contextlib.closing(client.stream(deadline)) as events:
            for event, data in events:
                printer.take(event, data)
                if limit is not None and printer.changes >= limit:
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    return
        if deadline is not None and time.monotonic() >= deadline:
            return
        time.sleep(1.0)
    raise UserError("the console kept ending the stream; giving up")


def _same(before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
    """The same row but for its age (a reconnect's snapshot repeats what was seen)."""
    if before is None:
        return False
    return {**before, "age_s": 0} == {**after, "age_s": 0}


@app.command("ack")
def acknowledge(
    escalation_id: Annotated[str, typer.Argument(help="The escalation (from the list).")],
    note: NoteOption = None,
    console: ConsoleOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Acknowledge an escalation alerting your team: it stops climbing."""
    reply = _client(console, token).call(
        "POST", f"/api/escalations/{escalation_id}/acknowledge", {"note": note}
    )
    _sent("acknowledgement", reply, as_json)


@app.command("resolve")
def resolve(
    escalation_id: Annotated[str, typer.Argument(help="The escalation (from the list).")],
    *,
    outcome: Annotated[
        str,
        typer.Option(
            "--outcome",
            metavar="OUTCOME",
            help="maatwerk-granted, handoff-forced, returned-to-holder, no-action-needed or other.",
        ),
    ],
    note: NoteOption = None,
    handoff_to: Annotated[
        str | None,
        typer.Option("--handoff-to", metavar="AGENCY", help="With handoff-forced: who takes it."),
    ] = None,
    console: ConsoleOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resolve an escalation alerting your team, with an outcome."""
    body = {"outcome": outcome, "note": note, "handoff_to": handoff_to}
    reply = _client(console, token).call("POST", f"/api/escalations/{escalation_id}/resolve", body)
    _sent("resolution", reply, as_json)


def _sent(what: str, reply: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(reply))
        return
    typer.echo(
        f"{what} sent as event {reply.get('event_id')}; the escalation's status changes "
        "once the escalation service has applied it"
    )
