"""Smoke tests: each benchmark runs end to end at a tiny size (speed is never asserted)."""

from __future__ import annotations

import pytest


async def test_bench_timers_fires_every_timer_and_measures_the_floor() -> None:
    from bench.timers import bench_timers

    # 50 timers due over one second: the service's and the floor's alike.
    result = await bench_timers(50, 1.0)

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


@pytest.mark.postgres
async def test_bench_router_on_postgresql_routes_every_event_and_drops_its_databases() -> None:
    """With `store="postgres"` each router runs on a database made for it: every event is
    routed and audited, and no database of the run is left on the server afterwards."""
    from sqlalchemy import text

    from bench.router import bench_router
    from services.runtime.store.engine import make_engine
    from tests._testutil.store import POSTGRES_URL, require_postgres

    await require_postgres(POSTGRES_URL)

    result = await bench_router(
        200, timeout=60.0, rounds=2, store="postgres", database_url=POSTGRES_URL
    )

    assert "postgres" == result.store
    assert result.router_messages_out > 200
    assert 2 == len(result.round_ratios)
    assert all(relay > 0 and routed > 0 for relay, routed in result.round_rates)
    engine = make_engine(POSTGRES_URL)
    try:
        async with engine.connect() as connection:
            query = "SELECT count(*) FROM pg_database WHERE datname LIKE 'ketenbus_bench_router_%'"
            left = await connection.scalar(text(query))
    finally:
        await engine.dispose()
    assert 0 == left


@pytest.mark.postgres
async def test_bench_router_instances_routes_every_event_once_with_one_and_two_routers() -> None:
    """1 router process, then 2 in one group sharing one PostgreSQL database: in each,
    every event in `router_seen_events` and on the case log exactly once, each router on
    a chain of its own, and the report carries rates, the ratio and CPU per process."""
    from bench.router_instances import as_dict, bench_router_instances, report_lines
    from tests._testutil.store import POSTGRES_URL, require_postgres

    await require_postgres(POSTGRES_URL)

    result = await bench_router_instances(300, [1, 2], rounds=1, database_url=POSTGRES_URL)

    assert [1, 2] == [run.instances for run in result.configurations]
    for run in result.configurations:
        assert (300, 300, 300) == (run.routed, run.on_case_log, run.distinct_on_case_log)
        assert run.instances == run.chains == len(run.cpu.routers)
        assert all(seconds > 0 for seconds in run.cpu.routers)
        assert run.cpu.postgres is not None
    assert {"1", "2"} == set(result.events_per_s) == set(result.ratio) == set(result.busy_share)
    assert 1.0 == result.ratio["1"]
    assert result.ratio["2"] > 0
    assert {"routers", "broker", "postgres", "bench", "busy"} <= set(result.cpu_us_per_event["2"])
    assert "lock_wait_share" in as_dict(result)
    assert any("2 router(s)" in line for line in report_lines(result))


async def test_bench_tracker_applies_every_event_once_and_skips_the_replay() -> None:
    import os

    import pytest

    from bench.tracker import DEFAULT_SERVER, bench_tracker
    from services.runtime.errors import UserError

    server = os.environ.get("KETENBUS_BENCH_POSTGRES_URL", DEFAULT_SERVER)
    try:
        result = await bench_tracker(160, server, timeout=60.0, rounds=2)
    except UserError as exc:
        if os.environ.get("KETENBUS_REQUIRE_POSTGRES") == "1" or "not reachable" not in str(exc):
            raise
        pytest.skip(str(exc))

    assert (160, 160, 20) == (result.applied, result.timeline_rows, result.cases)
    assert (160, 160) == (result.replay_skipped, result.rows_after_replay)
    assert result.cases_unchanged
    assert 2 == len(result.round_rates) == len(result.round_ratios)
    assert all(raw > 0 and rate > 0 for raw, rate in result.round_rates)


async def test_bench_latency_sees_every_event_on_both_paths_and_the_floor() -> None:
    from bench.latency import as_dict, bench_latency

    # 200 events per path, as at 100 a second for two seconds, in one second each.
    result = await bench_latency(200, 1.0)

    assert (200, 0, 0, 0) == (
        result.events,
        result.floor.missing,
        result.inbox.missing,
        result.tracker.missing,
    )
    assert 0 < result.inbox.p50_ms <= result.inbox.p99_ms
    assert 0 < result.floor.p50_ms
    report = as_dict(result)
    assert "ratio_inbox_p99_floor" in report
    # The ratio's verdict is judged against the floor measured in the same run.
    expected = result.inbox.p99_ms <= 3.0 * result.floor.p99_ms
    assert expected == report["target_met"]["inbox_p99_floor_ratio"]


async def test_bench_gateway_moves_every_event_through_both_servers_and_reports_the_ratio() -> None:
    """At a tiny size the relay and the real gateway each answer every request 202 (the
    gateway naming every event accepted, none repeated), the outbox then holds every event
    both took, and the report carries each side's rate, CPU and the ratio of each round."""
    from statistics import median

    from bench.gateway import as_dict, bench_gateway

    result = await bench_gateway(60, rounds=2, concurrency=8, timeout=60.0)

    assert (120, 120, 0) == (
        result.relay_accepted,
        result.gateway_accepted,
        result.gateway_repeated,
    )
    assert result.expected_on_outbox == result.on_outbox
    assert 2 == len(result.round_ratios) == len(result.round_rates)
    assert median(result.round_ratios) == pytest.approx(result.ratio, abs=0.001)
    assert result.relay_events_per_s > 0
    assert result.gateway_events_per_s > 0
    assert result.gateway_cpu_us_per_event > 0
    assert "target_met" in as_dict(result)


async def test_bench_gateway_in_batch_mode_with_httpx_moves_every_event() -> None:
    """Batch mode (events in arrays of up to `batch`, the last one short) through httpx
    clients: both sides take every event of every request, and the outbox holds them."""
    from bench.gateway import bench_gateway

    result = await bench_gateway(
        45, rounds=1, concurrency=3, batch=10, client="httpx", timeout=60.0
    )

    assert (10, "httpx") == (result.batch, result.client)
    assert (45, 45, 0) == (result.relay_accepted, result.gateway_accepted, result.gateway_repeated)
    assert result.expected_on_outbox == result.on_outbox


async def test_bench_webhooks_delivers_every_event_from_both_sides_and_records_each_attempt() -> (
    None
):
    """At a tiny size the receiver counts every POST of the bare sender and of the
    gateway's dispatcher in each round, the stores hold every delivery as delivered after
    one attempt each, and the report carries both rates and the ratio of each round."""
    from statistics import median

    from bench.webhooks import as_dict, bench_webhooks

    result = await bench_webhooks(40, rounds=2, timeout=60.0)

    assert (80, 80) == (result.sender_received, result.dispatcher_received)
    assert (80, 80) == (result.delivered, result.attempts)
    assert 2 == len(result.round_ratios) == len(result.round_rates)
    assert median(result.round_ratios) == pytest.approx(result.ratio, abs=0.001)
    assert result.sender_deliveries_per_s > 0
    assert result.dispatcher_deliveries_per_s > 0
    assert result.intake_events_per_s > 0
    assert "target_met" in as_dict(result)
