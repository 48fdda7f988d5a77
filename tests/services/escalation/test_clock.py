"""The clock: real time, and clock time that runs faster for simulations."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from services.runtime.process.clock import Clock, ScaledClock, SystemClock


def test_the_system_clock_tells_aware_utc_time() -> None:
    clock: Clock = SystemClock()

    now = clock.now()

    assert now.tzinfo == UTC
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=1)


async def test_a_scaled_clock_runs_speed_times_faster_from_its_start() -> None:
    start = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    clock: Clock = ScaledClock(3600, start)
    began = time.monotonic()

    await clock.sleep(360)  # six clock minutes: a tenth of a real second
    real = time.monotonic() - began
    elapsed = clock.now() - start

    assert 0.09 <= real < 0.5
    assert timedelta(minutes=6) <= elapsed < timedelta(minutes=30)
    assert clock.now().tzinfo == UTC


async def test_sleeping_a_negative_time_returns_at_once() -> None:
    began = time.monotonic()

    await asyncio.wait_for(ScaledClock(10).sleep(-5), timeout=1)

    assert time.monotonic() - began < 0.1


def test_a_scaled_clock_needs_a_positive_speed_and_an_aware_start() -> None:
    with pytest.raises(ValueError, match="speed"):
        ScaledClock(0)
    with pytest.raises(ValueError, match="aware"):
        ScaledClock(2, datetime(2025, 1, 1))
