"""Faults against the real bus: a private embedded broker, a fresh PostgreSQL database, and
the router, tracker and escalation service as separate processes, checked by counting what
the store holds against what was emitted.

Size: KETENBUS_FAULT_EVENTS events per test (default 1000; `make faults` runs 10000).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from contracts import topics
from contracts.agency_client import AgencyKeys
from contracts.registry import AgencyRegistry
from services.runtime.store.tables import case_timeline, escalation_seen_events, router_seen_events
from tests.faults.harness import (
    HOLDER,
    RECEIVER,
    SERVICES,
    Bus,
    Emitted,
    Script,
    bad_messages,
    case_scripts,
    emit,
    event_ids_of,
    fault_events,
    group_positions,
    notices,
    read_topic,
    reason_codes,
    scaled,
)
from tests.faults.proxy import TcpProxy

# `alone`: each starts a whole bus of processes and waits on their health and recovery in
# seconds; beside a second test worker, a restarted service was once not healthy in time.
pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.alone]

Results = Callable[[dict[str, Any]], None]

OUTAGE_STOP_GRACE_S = 5.0
"""After the store's outage, how long a service has to exit after SIGTERM: a clean stop
takes a second or two; one whose pool hangs is killed after this, not after 15 s."""


def _uuid(text: str) -> uuid.UUID:
    return uuid.UUID(text)


def _refusals(
    refused: list[dict[str, Any]], before: list[Script], after: list[Script]
) -> dict[str, Counter[str]]:
    """The tracker's refusals, by part of the stream (before or after), by type and reason."""
    part = {s.case_id: "before" for s in before} | {s.case_id: "after" for s in after}
    found: dict[str, Counter[str]] = {"before": Counter(), "after": Counter()}
    for row in refused:
        found[part.get(row["case_id"], "other")][f"{row['event_type']}: {row['refusal']}"] += 1
    return found


async def _unread_on_the_broker(bus: Bus) -> dict[str, int]:
    """Per service: events on the (new) broker's topics it reads that it has not applied.

    What was only on the old broker is gone with it; what is on this one must be applied."""
    outboxes = set()
    for code in (HOLDER, RECEIVER):
        outboxes |= set(
            event_ids_of(await read_topic(bus.bootstrap, topics.outbox(code), to_end=True))
        )
    case_log = set(event_ids_of(await read_topic(bus.bootstrap, topics.CASES, to_end=True)))
    done = {
        "router": await bus.ids(router_seen_events),
        "tracker": await bus.ids(case_timeline),
        "escalation": await bus.ids(escalation_seen_events),
    }
    read = {"router": outboxes, "tracker": case_log, "escalation": case_log}
    return {name: len({_uuid(i) for i in read[name]} - set(done[name])) for name in SERVICES}


async def _groups(bus: Bus) -> str:
    """Each service group's committed offsets against the ends of the topics it reads."""
    outboxes = [topics.outbox(agency.code) for agency in bus.registry.agencies]
    reads = {
        "ketenbus-router": outboxes,
        "ketenbus-tracker": [topics.CASES],
        "ketenbus-escalation": [topics.CASES],
    }
    shown = [
        f"{group} committed/end: {await group_positions(bus.bootstrap, group, names)}"
        for group, names in reads.items()
    ]
    return "\n".join(shown)


def _paced(scripts: list[Script]) -> int:
    """Cases per emitter chunk that spread the stream over at least 50 chunks (2.5 s), at
    most 25 at a time: a service reaches half of it while the rest is still being emitted,
    not after a burst it takes in one or two batches."""
    return max(1, min(25, len(scripts) // 50))


async def _warmed_up(bus: Bus, scripts: list[Script], emitted: Emitted) -> list[Script]:
    """Emit the first few cases and wait until every service applied them: each consumer
    has joined its group and reads as the stream comes, rather than taking what piled up
    while it started in one batch. The cases left to emit."""
    first, rest = scripts[: max(1, len(scripts) // 20)], scripts[max(1, len(scripts) // 20) :]
    await emit(bus.bootstrap, first, bus.routed, emitted=emitted)
    emitted.done = False
    await bus.wait_until(
        lambda counts: min(counts.values()) >= 4 * len(first),
        scaled(45),
        what="the first cases applied by every service",
    )
    return rest


async def _finish(emitter: asyncio.Task[Emitted], timeout: float) -> Emitted:
    try:
        return await asyncio.wait_for(emitter, timeout)
    finally:
        emitter.cancel()


@pytest.mark.parametrize("victim", SERVICES)
async def test_a_service_killed_mid_stream_and_restarted_loses_no_event_and_applies_none_twice(
    victim: str,
    tmp_path: Path,
    signed_registry: AgencyRegistry,
    agency_keys: dict[str, AgencyKeys],
    database_url: str,
    fault_results: Results,
) -> None:
    """SIGKILL of one service while part of the stream is still to be applied by it (checked
    after the kill), then a restart: every event applied by every service, none twice."""
    scripts = case_scripts(fault_events() // 4, signed_registry, agency_keys)
    total = 4 * len(scripts)
    jitter = random.uniform(0.0, 0.3)
    bus = Bus(tmp_path, signed_registry, database_url)
    try:
        await bus.start()
        started = time.monotonic()
        emitted = Emitted()
        rest = await _warmed_up(bus, scripts, emitted)
        emitter = asyncio.create_task(
            emit(bus.bootstrap, rest, bus.routed, chunk=_paced(scripts), emitted=emitted)
        )
        try:
            at_kill = await bus.wait_until(
                lambda counts: counts[victim] >= total // 2,
                scaled(45),
                what=f"half the stream applied by the {victim}",
            )
            await asyncio.sleep(jitter)
            bus.services[victim].kill()
            # What the victim had committed when it died: the rest was still to come.
            left_at_kill = total - await bus.applied(victim)
            bus.services[victim].start()
            restarted = time.monotonic()
            await bus.wait_until(
                lambda counts: counts[victim] >= total,
                scaled(45),
                what=f"the whole stream applied by the restarted {victim}",
            )
            recovery = time.monotonic() - restarted
            await bus.wait_until(
                lambda counts: min(counts.values()) >= total,
                scaled(45),
                what="the whole stream applied by every service",
            )
            recovery_all = time.monotonic() - restarted
            emitted = await _finish(emitter, scaled(30))
        finally:
            emitter.cancel()
        elapsed = time.monotonic() - started
        await asyncio.sleep(1.0)  # a late redelivery would show in the counts now
        final = await bus.progress()
        timeline = await bus.timeline()
        router_ids = await bus.ids(router_seen_events)
        escalation_ids = await bus.ids(escalation_seen_events)
        states = await bus.case_states(script.case_id for script in scripts)
        chain, audit_rows, deliveries = await bus.audit()
        # Every service has applied the whole stream and had a second for a late copy.
        case_log = await read_topic(bus.bootstrap, topics.CASES, to_end=True)
        dead_letters = await read_topic(bus.bootstrap, topics.DLQ, to_end=True)
        alive = [name for name in SERVICES if await bus.services[name].healthy()]
    finally:
        exit_codes = await bus.close()

    emitted_ids = set(emitted.event_ids)
    log_ids = event_ids_of(case_log)
    timeline_ids = Counter(event_id for event_id, _ in timeline)
    fault_results(
        {
            "victim": victim,
            "emitted": len(emitted.event_ids),
            "applied": final,
            "applied_at_kill": at_kill,
            "kill_delay_s": round(jitter, 3),
            "left_to_the_victim_at_kill": left_at_kill,
            "recovery_s": round(recovery, 2),
            "recovery_all_services_s": round(recovery_all, 2),
            "elapsed_s": round(elapsed, 2),
            "case_log_records": len(case_log),
            "case_log_copies_twice": len(log_ids) - len(set(log_ids)),
            "lost": len(emitted_ids - set(timeline_ids)),
            "dead_letters": dict(reason_codes(dead_letters)),
            "audit_records": audit_rows,
        }
    )
    assert total == len(emitted.event_ids) == len(emitted_ids)
    assert left_at_kill > 0, f"the {victim} had applied the whole stream before the kill"
    assert dict.fromkeys(SERVICES, total) == final
    assert emitted_ids == set(timeline_ids)
    assert [] == [event_id for event_id, times in timeline_ids.items() if times > 1]
    assert [] == [event_id for event_id, applied in timeline if not applied]
    assert emitted_ids == set(router_ids)
    assert emitted_ids == set(escalation_ids)
    assert emitted_ids == set(map(_uuid, log_ids))
    assert Counter({("closed", RECEIVER): len(scripts)}) == states
    assert Counter() == reason_codes(dead_letters)
    assert chain.intact, chain
    assert chain.records == audit_rows == deliveries
    assert sorted(SERVICES) == sorted(alive)
    assert dict.fromkeys(SERVICES, 0) == exit_codes


async def test_bad_messages_mixed_into_valid_traffic_are_dead_lettered_with_their_reason(
    tmp_path: Path,
    signed_registry: AgencyRegistry,
    agency_keys: dict[str, AgencyKeys],
    database_url: str,
    fault_results: Results,
) -> None:
    per_kind = max(5, fault_events() // 14)  # 14 kinds: as many bad messages as valid events
    scripts = case_scripts(fault_events() // 4, signed_registry, agency_keys)
    bad = bad_messages(per_kind, signed_registry, agency_keys, scripts)
    total = 4 * len(scripts)
    bus = Bus(tmp_path, signed_registry, database_url)
    try:
        await bus.start()
        started = time.monotonic()
        emitter = asyncio.create_task(emit(bus.bootstrap, scripts, bus.routed, bad=bad))
        try:
            final = await bus.wait_until(
                lambda counts: min(counts.values()) >= total,
                scaled(50),
                what="the valid stream applied by every service",
            )
            emitted = await _finish(emitter, scaled(30))
        finally:
            emitter.cancel()
        elapsed = time.monotonic() - started
        dead_letters = await read_topic(
            bus.bootstrap,
            topics.DLQ,
            enough=lambda found: sum(reason_codes(found).values()) >= len(bad),
            timeout=scaled(30),
        )
        # The router sends each notice with its dead letter: all are on the inboxes now.
        told: list[Any] = []
        for sender in sorted({topics.agency_of_outbox(item.topic) or "" for item in bad}):
            told += await read_topic(
                bus.bootstrap, topics.inbox(sender), timeout=scaled(30), to_end=True
            )
        await asyncio.sleep(1.0)
        final = await bus.progress()
        timeline = await bus.timeline()
        states = await bus.case_states(script.case_id for script in scripts)
        chain, audit_rows, deliveries = await bus.audit()
        alive = [name for name in SERVICES if await bus.services[name].healthy()]
    finally:
        exit_codes = await bus.close()

    expected = Counter(item.code for item in bad)
    refused = reason_codes(dead_letters)
    emitted_ids = set(emitted.event_ids)
    timeline_ids = Counter(event_id for event_id, _ in timeline)
    fault_results(
        {
            "emitted_valid": len(emitted.event_ids),
            "emitted_bad": len(emitted.bad),
            "applied": final,
            "dead_letters": dict(refused),
            "dead_letter_records": len(dead_letters),
            "lost": len(emitted_ids - set(timeline_ids)),
            "elapsed_s": round(elapsed, 2),
        }
    )
    assert len(bad) == len(emitted.bad)
    assert expected == refused
    # Every sender is told, in its own inbox, of each of its refused records.
    assert Counter(
        (topics.inbox(topics.agency_of_outbox(b.topic) or ""), b.code) for b in bad
    ) == notices(told)
    assert dict.fromkeys(SERVICES, total) == final
    assert emitted_ids == set(timeline_ids)
    assert [] == [event_id for event_id, applied in timeline if not applied]
    assert Counter({("closed", RECEIVER): len(scripts)}) == states
    assert chain.intact, chain
    assert chain.records == audit_rows == deliveries
    assert sorted(SERVICES) == sorted(alive)
    assert dict.fromkeys(SERVICES, 0) == exit_codes


async def test_after_the_broker_restarts_mid_stream_the_bus_recovers_as_ketenbus_up_does_it(
    tmp_path: Path,
    signed_registry: AgencyRegistry,
    agency_keys: dict[str, AgencyKeys],
    database_url: str,
    fault_results: Results,
) -> None:
    scripts = case_scripts(fault_events() // 4, signed_registry, agency_keys)
    before, after = scripts[: len(scripts) // 2], scripts[len(scripts) // 2 :]
    bus = Bus(tmp_path, signed_registry, database_url)
    try:
        await bus.start()
        emitter = asyncio.create_task(emit(bus.bootstrap, before, bus.routed))
        at_kill = await bus.wait_until(
            lambda counts: counts["tracker"] >= 2 * len(before),
            scaled(45),
            what="half the first part of the stream applied by the tracker",
        )
        async with bus.stalled() as in_flight:
            # Batches are in flight in the services (held at their store writes) when the
            # broker dies; they go on while it is away and finish on the new broker.
            emitter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await emitter
            bus.broker.kill()
            await asyncio.sleep(1.0)  # the services lose their connections
        # What `ketenbus up` does when its embedded broker dies: the services stopped, the
        # broker started on the same port with every topic, the services started. Services
        # left running would carry their fetch positions over from the old broker and
        # commit them to the new one's empty groups, above the new logs' ends, and never
        # read what lands below them.
        bus.stop_services()
        await bus.start_broker()
        for service in bus.services.values():
            service.start()
        restarted = time.monotonic()
        emitter = asyncio.create_task(emit(bus.bootstrap, after, bus.routed))
        try:
            try:
                await bus.wait_applied(
                    [event_id for script in after for event_id in script.event_ids],
                    scaled(25),
                    what="the events produced after the broker restart",
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{await _groups(bus)}") from None
            recovery = time.monotonic() - restarted
            emitted = await _finish(emitter, scaled(30))
        finally:
            emitter.cancel()
        lost_before = await bus.missing(
            event_id for script in before for event_id in script.event_ids
        )
        final = await bus.progress()
        on_new_broker = await _unread_on_the_broker(bus)
        states = await bus.case_states(script.case_id for script in after)
        refused = await bus.refused()
        dead_letters = await read_topic(bus.bootstrap, topics.DLQ, quiet=0.5)
        chain, audit_rows, deliveries = await bus.audit()
        alive = [name for name in SERVICES if await bus.services[name].healthy()]
    finally:
        exit_codes = await bus.close()

    fault_results(
        {
            "emitted_after_restart": len(emitted.event_ids),
            "applied_at_kill": at_kill,
            "batches_in_flight": in_flight,
            "applied": final,
            "recovery_s": round(recovery, 2),
            "not_applied_from_before_the_restart": lost_before,
            "refused_by_tracker": _refusals(refused, before, after),
            "on_new_broker_not_applied": on_new_broker,
            "dead_letters": dict(reason_codes(dead_letters)),
        }
    )
    assert 4 * len(after) == len(emitted.event_ids)
    assert dict.fromkeys(SERVICES, 0) == on_new_broker
    assert Counter({("closed", RECEIVER): len(after)}) == states
    # What was only on the old broker is gone (it kept it in memory): a case of the first
    # part can have lost an event the router had passed on, and the tracker refuse the
    # next. The cases of the second part, all on the new broker, must all be whole.
    assert Counter() == _refusals(refused, before, after)["after"]
    assert chain.intact, chain
    assert chain.records == audit_rows == deliveries
    assert sorted(SERVICES) == sorted(alive)
    assert dict.fromkeys(SERVICES, 0) == exit_codes


async def test_the_store_unreachable_for_ten_seconds_mid_stream_loses_nothing(
    tmp_path: Path,
    signed_registry: AgencyRegistry,
    agency_keys: dict[str, AgencyKeys],
    database_url: str,
    fault_results: Results,
) -> None:
    """The services reach PostgreSQL through a proxy that refuses connections and drops the
    open ones for 10 s while the stream runs: they retry, and nothing is lost or doubled."""
    scripts = case_scripts(fault_events() // 4, signed_registry, agency_keys)
    total = 4 * len(scripts)
    target = make_url(database_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    port = await proxy.start()
    bus = Bus(tmp_path, signed_registry, database_url)  # the test counts on a direct line
    through_proxy = target.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    for service in bus.services.values():
        service.env["KETENBUS_DATABASE_URL"] = through_proxy
    try:
        await bus.start()
        emitted = Emitted()
        rest = await _warmed_up(bus, scripts, emitted)
        emitter = asyncio.create_task(
            emit(bus.bootstrap, rest, bus.routed, chunk=_paced(scripts), emitted=emitted)
        )
        try:
            await bus.wait_until(
                lambda counts: counts["tracker"] >= total // 4,
                scaled(45),
                what="a quarter of the stream applied by the tracker",
            )
            await proxy.cut()
            at_cut = await bus.progress()  # what each had committed when the store went
            await asyncio.sleep(10.0)
            during = await bus.progress()
            await proxy.restore()
            restored = time.monotonic()
            final = await bus.wait_until(
                lambda counts: min(counts.values()) >= total,
                scaled(60),
                what="the whole stream applied by every service after the store came back",
            )
            recovery = time.monotonic() - restored
            emitted = await _finish(emitter, scaled(30))
        finally:
            emitter.cancel()
        timeline = await bus.timeline()
        states = await bus.case_states(script.case_id for script in scripts)
        chain, audit_rows, deliveries = await bus.audit()
        alive = [name for name in SERVICES if await bus.services[name].healthy()]
    finally:
        # The exit codes are not what this test checks (see below): no need to wait the
        # full grace for a pool that hangs on its way out.
        exit_codes = await bus.close(grace=OUTAGE_STOP_GRACE_S)
        await proxy.stop()

    emitted_ids = set(emitted.event_ids)
    applied = Counter(event_id for event_id, _ in timeline)
    fault_results(
        {
            "emitted": len(emitted_ids),
            "applied_at_cut": at_cut,
            "applied_while_cut": during,
            "applied": final,
            "lost": len(emitted_ids - set(applied)),
            "applied_twice": sum(1 for n in applied.values() if n > 1),
            "recovery_s": round(recovery, 2),
            "exit_codes": exit_codes,
        }
    )
    assert total == len(emitted_ids)
    # Mid-stream for each: every service had events still to apply when the store went.
    assert [] == [name for name, n in at_cut.items() if n >= total], at_cut
    assert emitted_ids == set(applied)
    assert [] == [event_id for event_id, n in applied.items() if n > 1]
    assert Counter({("closed", RECEIVER): len(scripts)}) == states
    assert chain.intact, chain
    assert chain.records == audit_rows == deliveries
    assert sorted(SERVICES) == sorted(alive)
    # Not 0 for each: after the outage, closing the database pool can hang past the
    # grace and end in SIGKILL; what matters here is that all was applied once.
    assert None not in exit_codes.values()
