"""`ketenbus signals` on a SQLite store: the text report, --json, --since and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from services.cli import cases_cmd
from services.cli.signals_cmd import register
from services.runtime.errors import UserError
from services.runtime.text.terminal import format_duration
from tests._testutil import START, EventFactory, Record

KETENBUS = [sys.executable, "-c", "from services.cli import main; main()"]


@pytest.fixture
def cli(database: str) -> typer.Typer:
    app = typer.Typer()
    register(app)
    cases_cmd.register(app)  # with more than one verb, `signals` is invoked by its name
    return app


@pytest.fixture
def stuck_case(record: Record, make: EventFactory) -> uuid.UUID:
    """Two ping-pong escalations (uwv>svb, Awir art. 26), one resolved after 2 h, one open."""
    resolved_case, open_case = uuid.uuid4(), uuid.uuid4()
    resolved, still_open = uuid.uuid4(), uuid.uuid4()
    raised = START + timedelta(days=1)
    record(
        [
            make.opened(resolved_case),
            make.opened(open_case),
            make.at(raised).escalation_raised(
                resolved_case, resolved, rule_reference="Awir art. 26", agency_pair=("uwv", "svb")
            ),
            make.at(raised + timedelta(hours=2)).escalation_resolved(resolved_case, resolved),
            make.at(raised + timedelta(days=1)).escalation_raised(
                open_case, still_open, rule_reference="Awir art. 26", agency_pair=("uwv", "svb")
            ),
        ]
    )
    return open_case


def test_signals_text_report_has_aligned_sections_for_counts_levels_and_stuck_cases(
    cli: typer.Typer, stuck_case: uuid.UUID
) -> None:
    result = CliRunner().invoke(cli, ["signals"])

    assert 0 == result.exit_code, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("policy signals, escalations all time (as of ")
    assert (
        "  escalations         2: 1 resolved, 0 withdrawn (answered before the expiry), 1 open"
        in (lines)
    )
    assert "  time to resolution  1 resolved, median 2h 00m, p90 2h 00m" in lines
    by_cause = lines[lines.index("by cause") + 1 : lines.index("by cause") + 3]
    assert [
        ["CAUSE", "ESCALATIONS", "RESOLVED", "MEDIAN", "P90"],
        ["ping-pong", "2", "1", "2h", "00m", "2h", "00m"],
    ] == [line.split() for line in by_cause]
    assert by_cause[0].index("ESCALATIONS") == by_cause[1].index("2")
    assert "  uwv>svb      2" in lines
    assert "  Awir art. 26  2" in lines
    assert "  2      1" in lines  # one open escalation, at level 2
    stuck = lines[lines.index("stuck longest") + 2]
    assert stuck.split()[:2] == [str(stuck_case), "uwv"]
    assert stuck.endswith("escalation (ping-pong) unresolved at level 2")


def test_signals_json_is_one_object_with_the_same_content(
    cli: typer.Typer, stuck_case: uuid.UUID
) -> None:
    result = CliRunner().invoke(cli, ["signals", "--json"])

    assert 0 == result.exit_code, result.output
    signals = json.loads(result.output)
    assert (None, 2) == (signals["since"], signals["escalations"])
    assert {"resolved": 1, "median_seconds": 7200.0, "p90_seconds": 7200.0} == (
        signals["resolution"]
    )
    assert [("ping-pong", 2)] == [(c["cause"], c["escalations"]) for c in signals["by_cause"]]
    assert [{"key": "uwv>svb", "escalations": 2}] == signals["by_agency_pair"]
    assert [{"key": "Awir art. 26", "escalations": 2}] == signals["by_rule"]
    assert [{"level": 2, "open": 1}] == signals["open_by_level"]
    assert [str(stuck_case)] == [case["case_id"] for case in signals["stuck_longest"]]


def test_signals_since_leaves_out_escalations_first_raised_before_that_day(
    cli: typer.Typer, stuck_case: uuid.UUID
) -> None:
    result = CliRunner().invoke(cli, ["signals", "--since", "2025-03-05", "--json"])

    assert 0 == result.exit_code, result.output
    signals = json.loads(result.output)
    assert ("2025-03-05", 1, 0) == (
        signals["since"],
        signals["escalations"],
        signals["resolution"]["resolved"],
    )


def test_signals_on_an_empty_store_says_there_is_nothing(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["signals", "--since", "2025-03-05"])

    assert 0 == result.exit_code, result.output
    assert [
        "  no escalations",
        "open escalations by level",
        "  none open",
        "stuck longest",
        "  no case is stuck",
    ] == [line for line in result.output.splitlines()[1:] if line]
    assert result.output.startswith("policy signals, escalations first raised since 2025-03-05")


def test_signals_with_a_bad_date_is_a_user_error(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["signals", "--since", "last week"])

    assert 1 == result.exit_code
    assert isinstance(result.exception, UserError)
    assert "--since 'last week' is not a date; give it as YYYY-MM-DD" == str(result.exception)


def test_signals_with_a_bad_date_prints_one_line_and_exits_1(tmp_path: Path) -> None:
    env = {**os.environ, "KETENBUS_DATA_DIR": str(tmp_path)}
    env.pop("KETENBUS_DATABASE_URL", None)

    done = subprocess.run(
        [*KETENBUS, "signals", "--since", "2025-13-01"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )

    assert (1, "ketenbus: --since '2025-13-01' is not a date; give it as YYYY-MM-DD\n") == (
        done.returncode,
        done.stderr,
    )


def test_signals_has_help() -> None:
    done = subprocess.run(
        [*KETENBUS, "signals", "--help"], capture_output=True, text=True, timeout=60, check=False
    )

    assert 0 == done.returncode, done.stderr
    assert "--since" in done.stdout
    assert "--json" in done.stdout


@pytest.mark.parametrize(
    ("expected", "seconds"),
    [
        ("-", None),
        ("42s", 42.9),
        ("12m", 12 * 60 + 5),
        ("3h 05m", 3 * 3600 + 5 * 60),
        ("2d 04h", 2 * 86_400 + 4 * 3600 + 59),
    ],
)
def test_durations_are_printed_in_the_two_largest_units(
    expected: str, seconds: float | None
) -> None:
    assert expected == format_duration(seconds)
