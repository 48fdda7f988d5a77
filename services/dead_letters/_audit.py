"""What the audit log says of a dead letter an operator replayed or tried to: never its value."""

from __future__ import annotations

import getpass
from typing import Any

from services.dead_letters.letters import DeadLetter


def _operator() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "unknown"


def audit_fields(letter: DeadLetter, actor: str | None = None) -> dict[str, Any]:
    """What the audit log says of a dead letter: where it came from and why, never its value.

    `actor`: who acted (the console's logged-in operator); None: the login running the CLI.
    """
    return {
        "dlq_id": letter.id,
        "origin_topic": letter.origin_topic,
        "reason_code": letter.reason_code,
        "case_id": str(letter.case_id) if letter.case_id else None,
        "event_id": letter.event_id,
        "operator": actor or _operator(),
    }
