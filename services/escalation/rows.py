"""Rows and back: the escalation service's dataclasses as the store keeps them.

Nothing stored is free text written by a case worker: causes are built from
codes, a flag is kept by its kind, the path by its structure.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Row

from contracts.case import EscalationPath
from contracts.events import TeamRef
from services.custody.state_rows import STATE_COLUMNS, state_of, state_values
from services.escalation.model import CaseFile, Escalation


def file_of(row: Row[Any]) -> CaseFile:
    state = state_of(row, bounce_count=row.rejections)
    path = row.escalation_path
    return CaseFile(
        state=state,
        holders=list(row.holders),
        correlation_id=row.correlation_id,
        # Through JSON, so durations read as the wire format defines them.
        path=EscalationPath.model_validate_json(json.dumps(path)) if path is not None else None,
        rejections_escalated=row.rejections_escalated,
        sequence=row.sequence,
    )


def file_row(file: CaseFile) -> dict[str, Any]:
    row = dict(zip(STATE_COLUMNS, state_values(file.state), strict=True))
    row["rejections"] = row.pop("bounce_count")
    return {
        **row,
        "holders": file.holders,
        "rejections_escalated": file.rejections_escalated,
        "escalation_path": file.path.model_dump(mode="json") if file.path else None,
        "correlation_id": file.correlation_id,
        "sequence": file.sequence,
    }


def escalation_of(row: Row[Any]) -> Escalation:
    pair = tuple(row.agency_pair.split(">")) if row.agency_pair else ()
    return Escalation(
        escalation_id=row.escalation_id,
        case_id=row.case_id,
        trigger=row.trigger,
        cause=row.cause,
        rule_reference=row.rule_reference,
        agency_pair=pair,
        flag_kind=row.flag_kind,
        level=row.level,
        team=TeamRef(agency=row.team_agency, team=row.team),
        status=row.status,
        raised_at=row.raised_at,
        alerted_at=row.alerted_at,
        acknowledge_by=row.acknowledge_by,
        raises=row.raises,
        last_raised_id=row.last_raised_id,
        acknowledged_at=row.acknowledged_at,
        resolved_at=row.resolved_at,
        outcome=row.outcome,
    )


def escalation_row(e: Escalation) -> dict[str, Any]:
    return {
        "escalation_id": e.escalation_id,
        "case_id": e.case_id,
        "trigger": e.trigger,
        "cause": e.cause[:300],
        "rule_reference": e.rule_reference,
        "agency_pair": ">".join(e.agency_pair) or None,
        "flag_kind": e.flag_kind,
        "level": e.level,
        "team_agency": e.team.agency,
        "team": e.team.team,
        "status": e.status,
        "raised_at": e.raised_at,
        "alerted_at": e.alerted_at,
        "acknowledge_by": e.acknowledge_by,
        "raises": e.raises,
        "last_raised_id": e.last_raised_id,
        "acknowledged_at": e.acknowledged_at,
        "resolved_at": e.resolved_at,
        "outcome": e.outcome,
    }
