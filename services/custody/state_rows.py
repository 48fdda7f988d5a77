"""A case's state as the store keeps it: the state columns, the same in every table that has them.

The tracker's `cases`, the router's `case_custody` and the escalation
service's case files each keep the handoff rules' `CaseState` in these
columns, so one pair of functions turns a state into its values and a row
back into a state.
"""

from __future__ import annotations

from typing import Any

from contracts.handoff import CaseState, PendingHandoff

STATE_COLUMNS = (
    "case_id",
    "category",
    "holder",
    "status",
    "pending_handoff_id",
    "pending_from",
    "pending_to",
    "pending_deadline",
    "bounce_count",
    "opened_at",
    "last_event_at",
)
"""The state machine's columns, in `state_values` order; the case id first (the key), and
the same in `cases` and in the router's `case_custody`."""


def state_values(state: CaseState) -> tuple[Any, ...]:
    """The values of `state`, in `STATE_COLUMNS` order."""
    pending = state.pending
    return (
        state.case_id,
        state.category,
        state.holder,
        state.status,
        pending.handoff_id if pending else None,
        pending.from_agency if pending else None,
        pending.to_agency if pending else None,
        pending.deadline if pending else None,
        state.bounce_count,
        state.opened_at,
        state.last_event_at,
    )


def state_of(row: Any, bounce_count: int | None = None) -> CaseState:
    """The handoff rules' view of a row with the state columns.

    `bounce_count`: the count where the row keeps it under another name (the
    escalation service's `rejections`)."""
    pending = None
    if row.pending_handoff_id is not None:
        pending = PendingHandoff(
            row.pending_handoff_id, row.pending_from, row.pending_to, row.pending_deadline
        )
    return CaseState(
        case_id=row.case_id,
        category=row.category,
        holder=row.holder,
        status=row.status,
        opened_at=row.opened_at,
        last_event_at=row.last_event_at,
        pending=pending,
        bounce_count=row.bounce_count if bounce_count is None else bounce_count,
    )
