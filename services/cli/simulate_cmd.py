"""`ketenbus simulate`: a region of simulated agencies against the real services, judged."""

from __future__ import annotations

import asyncio
import os
import sys

import typer

from services.runtime.config.settings import Settings

DEFAULT_SPEED = 5.0
"""Equal to `services.simulation.run.DEFAULT_SPEED` (not imported: CLI start-up stays fast)."""


def simulate(
    *,
    cases: int = typer.Option(..., "--cases", min=1, help="How many cases to simulate."),
    agencies: int = typer.Option(
        8, "--agencies", min=2, help="How many of the registry's agencies take part (first N)."
    ),
    speed: float = typer.Option(
        DEFAULT_SPEED,
        "--speed",
        min=0.1,
        help="Clock seconds per real second (3600: an hour a second). The stories keep their "
        "real pace; the verdict allows 1 clock second of delay, so a speed beyond what the "
        "services keep up with shows as late escalations.",
    ),
    rate: float = typer.Option(
        25.0, "--rate", min=0.1, help="Cases opened per real second (the load on the services)."
    ),
    seed: int = typer.Option(1, "--seed", help="The same seed tells the same stories."),
    time_limit: float | None = typer.Option(
        None, "--time-limit", min=1, help="Real seconds before the run is cut off (default: ample)."
    ),
    as_json: bool = typer.Option(False, "--json", help="The verdict as one JSON object."),
) -> None:
    """Run router, tracker and escalation service on one sped-up clock with simulated
    agencies and teams, on KETENBUS_KAFKA_BOOTSTRAP or a private embedded broker and a
    fresh store; print the verdict; exit 1 if a failure count is not zero."""
    from services.runtime.observability.logging import configure
    from services.simulation.run import Options
    from services.simulation.run import simulate as run_simulation
    from services.simulation.verdict import render

    settings = Settings()
    if "KETENBUS_LOG_LEVEL" not in os.environ:
        # Every escalation is an INFO line: thousands of them would bury the verdict.
        configure("WARNING", settings.log_format)
    options = Options(
        cases=cases,
        agencies=agencies,
        speed=speed,
        rate=rate,
        seed=seed,
        time_limit=time_limit,
        progress=_progress,
    )
    verdict = asyncio.run(run_simulation(settings, options))
    print(verdict.model_dump_json() if as_json else render(verdict))
    if verdict.failures or not verdict.finished:
        problem = (
            f"{verdict.failures} failures in the verdict"
            if verdict.failures
            else "the run hit its time limit before every case was done"
        )
        print(f"ketenbus: {problem}", file=sys.stderr)
        raise typer.Exit(1)


def _progress(done: int, cases: int) -> None:
    print(f"ketenbus: simulating, {done} of {cases} cases done", file=sys.stderr, flush=True)


def register(app: typer.Typer) -> None:
    app.command()(simulate)
