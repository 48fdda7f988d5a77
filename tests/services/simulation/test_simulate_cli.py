"""`ketenbus simulate`: the verdict as text or JSON; the exit code says whether it failed."""

from __future__ import annotations

import json
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from services.cli.simulate_cmd import register
from services.runtime.config.settings import Settings
from services.simulation import run
from services.simulation.verdict import Cause, Verdict

CLEAN = Verdict(
    cases=10,
    events=70,
    escalations_raised=5,
    cases_without_one_holder=0,
    stalled_handoffs=1,
    stalled_not_escalated_in_time=0,
    unacknowledged_raises=2,
    unacknowledged_not_climbed_in_time=0,
    triggers_not_escalated=0,
    escalation_delay_p50_s=0.1,
    escalation_delay_p99_s=0.4,
    top_causes=[Cause(cause="ping-pong", count=2)],
)


class FakeRun:
    """Stands in for the run: records its options, returns `verdict`."""

    def __init__(self) -> None:
        self.options: list[run.Options] = []
        self.verdict = CLEAN

    async def __call__(self, settings: Settings, options: run.Options) -> Verdict:
        self.options.append(options)
        return self.verdict


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRun:
    runner = FakeRun()
    monkeypatch.setattr(run, "simulate", runner)
    # Set, so the verb leaves the logging as it is (else structlog would be bound to
    # the runner's stream, which is closed after the call).
    monkeypatch.setenv("KETENBUS_LOG_LEVEL", "WARNING")
    return runner


def _invoke(*args: str) -> Any:
    """The verb alone, without the main app's callback (which configures logging)."""
    app = typer.Typer()
    register(app)
    return CliRunner().invoke(app, args)


def test_a_clean_verdict_prints_one_figure_a_line_and_exits_zero(fake: FakeRun) -> None:
    result = _invoke("--cases", "10", "--agencies", "4", "--speed", "60")
    assert 0 == result.exit_code, result.output
    assert "cases without exactly one holder" in result.stdout
    assert "top signal causes" in result.stdout
    assert (fake.options[0].cases, fake.options[0].agencies, fake.options[0].speed) == (10, 4, 60.0)


def test_json_is_one_object(fake: FakeRun) -> None:
    result = _invoke("--cases", "10", "--json")
    assert 0 == result.exit_code, result.output
    verdict = json.loads(result.stdout)
    assert verdict["cases_without_one_holder"] == 0
    assert verdict["top_causes"] == [{"cause": "ping-pong", "count": 2}]


def test_a_failure_count_makes_the_exit_code_non_zero(fake: FakeRun) -> None:
    fake.verdict = CLEAN.model_copy(update={"stalled_not_escalated_in_time": 1})
    result = _invoke("--cases", "10")
    assert 1 == result.exit_code
    assert "1 failures in the verdict" in result.stderr


def test_cases_is_required(fake: FakeRun) -> None:
    assert 0 != _invoke().exit_code
