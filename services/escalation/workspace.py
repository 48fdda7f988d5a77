"""The unit of work: the cases one step touches, what it changes, and what it will publish.

Both ways in (a batch from the case log, a batch of due timers) load a
workspace, let the pure rules change it, then write it in one transaction.
The rules change nothing in memory that an event does not announce: each
change is made only if `emit` accepted the event that announces it.

`published` is how a timer firing stays honest across the gap between
producing and committing. The timer loop first works out the events on a
throw-away workspace, produces them, and then replays the same rules on the
locked, current state with `published` set to what Kafka acknowledged: a
change is recorded only together with an event that really went out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from services.escalation.model import CaseFile, Escalation, Timer, TimerKind, Trigger
from services.runtime.kafka.clients import Outgoing
from services.runtime.observability.logging import get_logger

log = get_logger("ketenbus.escalation")


@dataclass(frozen=True, slots=True)
class Cancel:
    """Delete the timers of one case, or of one `ref`, optionally only of some kinds."""

    case_id: UUID | None = None
    ref: UUID | None = None
    kinds: tuple[TimerKind, ...] = ()
    fired_too: bool = False
    """Also delete fired ones (an escalation resolved, a case closed: nothing is left to do)."""

    def matches(self, timer: Timer) -> bool:
        if self.case_id is not None and timer.case_id != self.case_id:
            return False
        if self.ref is not None and timer.ref != self.ref:
            return False
        return not self.kinds or timer.kind in self.kinds


@dataclass(frozen=True, slots=True)
class Hasten:
    """Bring a timer forward to `due_at`: if it is not fired, falls due later, and was set by
    `causation_id` (a handoff's deadline, by its request, when the request cannot reach the
    receiver). Its id stays, so what it fires has the ids it would have had."""

    timer_id: UUID
    causation_id: UUID
    due_at: datetime


class Workspace:
    def __init__(
        self,
        files: dict[UUID, CaseFile],
        escalations: dict[UUID, Escalation],
        *,
        published: set[UUID] | None = None,
    ) -> None:
        self.files = files
        self.escalations = escalations
        """The open escalations of the loaded cases, and those this work changed."""
        self._of_case: dict[UUID, dict[UUID, None]] = {}
        """Escalation ids by case, in order: a round raises on hundreds of cases at once."""
        for escalation in escalations.values():
            self._of_case.setdefault(escalation.case_id, {})[escalation.escalation_id] = None
        self.known_escalations: set[UUID] = set(escalations)
        """The ids of every escalation of the loaded cases, open or not."""
        self.existing_files = set(files)
        self.existing_escalations = set(escalations)
        self.changed_files: set[UUID] = set()
        self.changed_escalations: set[UUID] = set()
        self.timers: dict[UUID, Timer] = {}
        """Timers to set, by id."""
        self._timers_of: dict[UUID, set[UUID]] = {}
        """Timer ids by case id and by ref, so a cancel does not scan them all."""
        self.cancels: list[Cancel] = []
        self.hastened: list[Hasten] = []
        """Timers to bring forward: those set in this work at once, stored ones at write."""
        self.outbox: list[Outgoing] = []
        self.emitted: list[UUID] = []
        self.notes: list[tuple[str, str, dict[str, Any]]] = []
        """What to log once the work is committed."""
        self._published = published
        self.already_out: set[UUID] = set()
        """Events another unit of work produced and has not recorded yet: recorded here
        with their changes, not produced again."""

    def emit(self, event_id: UUID, messages: Iterable[Outgoing]) -> bool:
        """Queue an event's messages; False if it may not go out (see the module doc)."""
        if self._published is not None and event_id not in self._published:
            return False
        if event_id not in self.already_out:
            self.outbox.extend(messages)
        self.emitted.append(event_id)
        return True

    def send(self, messages: Iterable[Outgoing]) -> None:
        """Queue messages that announce no state change (dead letters, notices)."""
        self.outbox.extend(messages)

    def touch(self, file: CaseFile) -> None:
        self.files[file.case_id] = file
        self.changed_files.add(file.case_id)

    def touch_escalation(self, escalation: Escalation) -> None:
        self.escalations[escalation.escalation_id] = escalation
        self._of_case.setdefault(escalation.case_id, {})[escalation.escalation_id] = None
        self.known_escalations.add(escalation.escalation_id)
        self.changed_escalations.add(escalation.escalation_id)

    def open_escalation(self, case_id: UUID, trigger: Trigger) -> Escalation | None:
        return next((e for e in self.open_escalations(case_id) if e.trigger == trigger), None)

    def open_escalations(self, case_id: UUID) -> list[Escalation]:
        found = (self.escalations[key] for key in self._of_case.get(case_id, ()))
        return [e for e in found if e.open]

    def schedule(self, timer: Timer) -> None:
        self.timers[timer.id] = timer
        for key in (timer.case_id, timer.ref):
            self._timers_of.setdefault(key, set()).add(timer.id)

    def cancel(self, cancel: Cancel) -> None:
        """Cancel matching timers: those set in this work at once, stored ones at write."""
        key = cancel.ref if cancel.ref is not None else cancel.case_id
        for timer_id in list(self._timers_of.get(key, ())) if key is not None else []:
            timer = self.timers.get(timer_id)
            if timer is not None and cancel.matches(timer):
                del self.timers[timer_id]
        self.cancels.append(cancel)

    def hasten(self, hasten: Hasten) -> None:
        """Bring a timer forward (see `Hasten`): one set in this work at once, a stored one
        at write, after the cancels (a cancelled timer stays cancelled)."""
        timer = self.timers.get(hasten.timer_id)
        if (
            timer is not None
            and timer.causation_id == hasten.causation_id
            and timer.due_at > hasten.due_at
        ):
            self.timers[timer.id] = replace(timer, due_at=hasten.due_at)
        self.hastened.append(hasten)

    def note(self, severity: str, message: str, **fields: Any) -> None:
        """Log `message` at `severity` once the work is committed (not if it is rolled back)."""
        self.notes.append((severity, message, fields))


def log_notes(ws: Workspace) -> None:
    """Log what a unit of work did, once it is committed."""
    for severity, message, fields in ws.notes:
        getattr(log, severity)(message, **fields)
