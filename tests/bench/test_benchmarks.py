"""Smoke tests: each benchmark runs end to end at a tiny size (speed is never asserted)."""

from __future__ import annotations

import pytest


async def test_bench_timers_fires_every_timer_and_measures_the_floor() -> None:
    from bench.timers import bench_timers

    result = await bench_timers(50, 2.0)

    assert 50 == result.service.fired
    assert 50 == result.floor.fired
    assert result.service.p99_ms >= result.service.p50_ms


async def test_bench_memory_reads_every_service_at_each_size() -> None:
    from bench.memory import SERVICES, bench_memory

    result = await bench_memory([20, 40], workload=20)

    for service in SERVICES:
        assert {"0", "20", "40"} == set(result.rss[service])
        assert all(rss.peak_mib > 0 for rss in result.rss[service].values())
    assert set(SERVICES) == set(result.ratio)


async def test_bench_router_routes_every_event_and_measures_both_relays() -> None:
    from statistics import median

    from bench.router import as_dict, bench_router

    result = await bench_router(200, timeout=60.0, rounds=2)

    # One case-log record per event; per inbox copy the copy and its audit record.
    assert result.router_messages_out > 200
    assert result.router_events_per_s > 0
    assert result.baseline_events_per_s > 0
    assert result.bare_relay_events_per_s > 0
    assert result.ratio > 0
    assert 2 == len(result.round_ratios) == len(result.round_rates)
    # Each round's ratio is shown rounded to 3 places; the median is taken before rounding.
    assert median(result.round_ratios) == pytest.approx(result.ratio, abs=0.001)
    assert "target_met" in as_dict(result)


async def test_bench_tracker_applies_every_event_once_and_skips_the_replay() -> None:
    import os

    import pytest

    from bench.tracker import DEFAULT_SERVER, bench_tracker
    from services.runtime.errors import UserError

    server = os.environ.get("KETENBUS_BENCH_POSTGRES_URL", DEFAULT_SERVER)
    try:
        result = await bench_tracker(160, server, timeout=60.0)
    except UserError as exc:
        if os.environ.get("KETENBUS_REQUIRE_POSTGRES") == "1" or "not reachable" not in str(exc):
            raise
        pytest.skip(str(exc))

    assert (160, 160, 20) == (result.applied, result.timeline_rows, result.cases)
    assert (160, 160) == (result.replay_skipped, result.rows_after_replay)
    assert result.cases_unchanged
    assert result.tracker_events_per_s > 0
    assert result.raw_events_per_s > 0


async def test_bench_latency_sees_every_event_on_both_paths_and_the_floor() -> None:
    from bench.latency import as_dict, bench_latency

    result = await bench_latency(100, 2.0)

    assert (200, 0, 0, 0) == (
        result.events,
        result.floor.missing,
        result.inbox.missing,
        result.tracker.missing,
    )
    assert 0 < result.inbox.p50_ms <= result.inbox.p99_ms
    assert 0 < result.floor.p50_ms
    assert "ratio_inbox_p99_floor" in as_dict(result)
