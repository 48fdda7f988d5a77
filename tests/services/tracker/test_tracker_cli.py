"""`ketenbus case` and `ketenbus cases` on a SQLite store, through typer's CliRunner."""

from __future__ import annotations

import json
import uuid

import pytest
import typer
from typer.testing import CliRunner

from services.cli.cases_cmd import register
from services.runtime.errors import UserError
from tests._testutil import EventFactory, Record


@pytest.fixture
def cli(database: str) -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_cases_on_a_store_nobody_wrote_says_no_cases_yet(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["cases"])
    assert (0, "no cases yet\n") == (result.exit_code, result.output)


def test_cases_json_on_an_empty_store_is_an_empty_list(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["cases", "--json"])
    assert (0, []) == (result.exit_code, json.loads(result.output))


def test_case_with_an_id_that_is_not_a_uuid_fails_with_one_line(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["case", "BSN-123"])

    assert result.exit_code == 1
    assert isinstance(result.exception, UserError)
    assert str(result.exception) == "'BSN-123' is not a case id (a case id is a UUID)"


def test_case_that_the_tracker_never_saw_fails_with_one_line(cli: typer.Typer) -> None:
    case_id = uuid.uuid4()

    result = CliRunner().invoke(cli, ["case", str(case_id)])

    assert result.exit_code == 1
    assert isinstance(result.exception, UserError)
    assert str(result.exception) == (
        f"unknown case {case_id}: the tracker has recorded no event for it"
    )


def test_case_never_opened_fails_with_one_line_that_counts_its_refused_events(
    cli: typer.Typer, record: Record, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    record([make.closed(case_id, by="uwv")])

    result = CliRunner().invoke(cli, ["case", str(case_id)])

    assert result.exit_code == 1
    assert (
        str(result.exception) == f"unknown case {case_id}: never opened; 1 event(s) for it refused"
    )


def test_case_json_parses_and_shows_holder_pending_handoff_and_refusals(
    cli: typer.Typer, record: Record, make: EventFactory
) -> None:
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    record(
        [
            make.opened(case_id, by="uwv"),
            make.requested(case_id, handoff_id, "uwv", "svb"),
            make.accepted(case_id, handoff_id, by="cak"),
        ]
    )

    result = CliRunner().invoke(cli, ["case", str(case_id), "--json"])

    assert result.exit_code == 0, result.output
    view = json.loads(result.output)
    assert ("uwv", "open", "svb") == (
        view["holder"],
        view["status"],
        view["pending_handoff"]["to_agency"],
    )
    assert [
        ("case-opened", True, None),
        ("handoff-requested", True, None),
        ("handoff-accepted", False, f"only svb may accept handoff {handoff_id}, not cak"),
    ] == [(entry["type"], entry["applied"], entry["refusal"]) for entry in view["timeline"]]


def test_case_table_lists_each_event_with_its_agency_and_result(
    cli: typer.Typer, record: Record, make: EventFactory
) -> None:
    case_id, handoff_id = uuid.uuid4(), uuid.uuid4()
    record(
        [
            make.opened(case_id, by="uwv"),
            make.requested(case_id, handoff_id, "uwv", "svb"),
            make.accepted(case_id, uuid.uuid4(), by="svb"),
        ]
    )

    result = CliRunner().invoke(cli, ["case", str(case_id)])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"case {case_id}"
    assert "  holder      uwv" in lines
    assert any(line.startswith(f"  pending     handoff {handoff_id} uwv -> svb") for line in lines)
    table = lines[lines.index("") + 1 :]
    assert table[0].split() == ["TIME", "EVENT", "AGENCY", "RESULT", "DETAIL"]
    assert [row.split()[2:5] for row in table[1:]] == [
        ["case-opened", "uwv", "applied"],
        ["handoff-requested", "uwv", "applied"],
        ["handoff-accepted", "svb", "refused"],
    ]
    assert "is not pending" in table[3]


def test_cases_lists_the_most_recent_cases_with_holder_and_status(
    cli: typer.Typer, record: Record, make: EventFactory
) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    record(
        [make.opened(first, by="uwv"), make.opened(second, by="svb"), make.closed(second, "svb")]
    )

    table = CliRunner().invoke(cli, ["cases"])
    listed = CliRunner().invoke(cli, ["cases", "--json", "--limit", "1"])

    assert table.exit_code == 0, table.output
    rows = [line.split() for line in table.output.splitlines()]
    assert [(str(second), "svb", "closed"), (str(first), "uwv", "open")] == [
        (row[0], row[2], row[3]) for row in rows[1:]
    ]
    assert [str(second)] == [case["case_id"] for case in json.loads(listed.output)]


def test_cases_with_a_limit_below_one_is_a_usage_error(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["cases", "--limit", "0"])
    assert result.exit_code == 2


def test_case_lists_its_escalations_with_trigger_levels_team_status_and_outcome(
    cli: typer.Typer, record: Record, make: EventFactory
) -> None:
    case_id, resolved, waiting = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    record(
        [
            make.opened(case_id, by="uwv"),
            make.escalation_raised(case_id, resolved, level=1, trigger="handoff-expired"),
            make.escalation_raised(case_id, resolved, level=2, trigger="handoff-expired"),
            make.escalation_resolved(case_id, resolved, "maatwerk-granted"),
            make.escalation_raised(case_id, waiting, level=1, trigger="hardship"),
        ]
    )

    result = CliRunner().invoke(cli, ["case", str(case_id)])

    assert 0 == result.exit_code, result.output
    lines = result.output.splitlines()
    header, *rows = lines[lines.index("escalations") + 1 : lines.index("escalations") + 4]
    team = "gm0363/regionaal-escalatieteam"
    assert ["ID", "TRIGGER", "LEVEL", "HIGHEST", "TEAM", "STATUS", "OUTCOME", "RAISED"] == (
        header.split()
    )
    assert [
        [str(resolved)[:8], "handoff-expired", "2", "2", team, "resolved", "maatwerk-granted"],
        [str(waiting)[:8], "hardship", "1", "1", team, "raised", "-"],
    ] == [row.split()[:7] for row in rows]
    assert header.index("STATUS") == rows[0].index("resolved")


def test_case_json_lists_its_escalations_beside_the_timeline(
    cli: typer.Typer, record: Record, make: EventFactory
) -> None:
    case_id, escalation_id = uuid.uuid4(), uuid.uuid4()
    record(
        [
            make.opened(case_id, by="uwv"),
            make.escalation_raised(case_id, escalation_id, agency_pair=("uwv", "svb")),
            make.escalation_acknowledged(case_id, escalation_id),
        ]
    )

    result = CliRunner().invoke(cli, ["case", str(case_id), "--json"])

    assert 0 == result.exit_code, result.output
    view = json.loads(result.output)
    assert [(str(escalation_id), "ping-pong", 2, "acknowledged", None, "uwv>svb")] == [
        (e["escalation_id"], e["trigger"], e["level"], e["status"], e["outcome"], e["agency_pair"])
        for e in view["escalations"]
    ]
    assert ["case-opened", "escalation-raised", "escalation-acknowledged"] == [
        entry["type"] for entry in view["timeline"]
    ]
    assert (None, "uwv>svb") == (
        view["timeline"][1]["rule_reference"],
        view["timeline"][1]["agency_pair"],
    )
