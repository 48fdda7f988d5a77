"""`ketenbus bench`: benchmarks, each against a baseline measured in the same run."""

from __future__ import annotations

import asyncio
import json

import typer

bench_app = typer.Typer(
    help="Benchmarks with their baselines, measured in one run.", no_args_is_help=True
)


@bench_app.command("router")
def router(
    *,
    events: int = typer.Option(20_000, "--events", min=100, help="Events per measured phase."),
    rounds: int = typer.Option(
        3, "--rounds", min=1, max=15, help="Relay and router pairs, in alternating order."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of text."),
    instances: str | None = typer.Option(
        None,
        "--instances",
        help="Instead: router process counts to compare, comma-separated (1,2): the same "
        "events through each, in one consumer group sharing one store, in --rounds rounds.",
    ),
    store: str | None = typer.Option(
        None,
        "--store",
        help="The router's store: sqlite (default; with --instances postgres) or postgres (a "
        "database made and dropped per router). With --instances, sqlite has one write lock "
        "per file: a second router cannot add throughput.",
    ),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        help="With --store postgres: the PostgreSQL server the runs' databases are made on; "
        "unset: KETENBUS_TEST_POSTGRES_URL, else postgresql+asyncpg://postgres@127.0.0.1:5432/test.",
    ),
) -> None:
    """The router against a minimal raw aiokafka relay that parses and verifies each event.

    The relay produces each event, as signed, to the case log and its receivers' inboxes;
    a bare relay (outbox to one topic, no processing) is printed for information. The
    router does all it does in production: verifies each signature, checks the case's
    custody in its store (SQLite; PostgreSQL with --store postgres), minimises each
    receiver's copy and appends the audit chain; half the events open a case, half hand
    it on with sealed personal data. Both are measured `--rounds` times, one after the
    other; the figures are medians, the ratio the median of the rounds' own ratios.

    With --instances: 1 router process, then 2 (or the counts given), on the same events,
    one consumer group on a 6-partition outbox, sharing one PostgreSQL store."""
    from bench._router_store import DEFAULT_POSTGRES, STORES

    if store not in (None, *STORES):
        raise typer.BadParameter(" or ".join(STORES), param_hint="--store")
    if instances is not None:
        from bench import router_instances as scale

        try:
            counts = scale.parse_counts(instances)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--instances") from None
        scaled = asyncio.run(
            scale.bench_router_instances(
                events,
                counts,
                rounds=rounds,
                store=store or "postgres",
                database_url=database_url or DEFAULT_POSTGRES,
            )
        )
        print(
            json.dumps(scale.as_dict(scaled)) if as_json else "\n".join(scale.report_lines(scaled))
        )
        return
    if database_url is not None and store != "postgres":
        raise typer.BadParameter("only with --store postgres", param_hint="--database-url")
    from bench.router import TARGET_EVENTS_PER_S, TARGET_RATIO, as_dict, bench_router, met

    result = asyncio.run(
        bench_router(
            events,
            rounds=rounds,
            store=store or "sqlite",
            database_url=database_url or DEFAULT_POSTGRES,
        )
    )
    if as_json:
        print(json.dumps(as_dict(result)))
        return
    print(
        f"events              {result.events}, {result.rounds} round(s), medians; "
        f"store {result.store}"
    )
    print(f"bare relay          {result.bare_relay_events_per_s:,.0f} events/s (informative)")
    print(f"verifying relay     {result.baseline_events_per_s:,.0f} events/s (baseline)")
    print(f"router              {result.router_events_per_s:,.0f} events/s")
    print(f"router messages out {result.router_messages_out} (case log, inboxes, audit)")
    print(f"ratio router/relay  {result.ratio:.3f} (median of the rounds)")
    for number, (ratio, (relay, routed)) in enumerate(
        zip(result.round_ratios, result.round_rates, strict=True), start=1
    ):
        rates = f"relay {relay:,.0f}/s, router {routed:,.0f}/s"
        print(f"  round {number}           {rates}, ratio {ratio:.3f}")
    print(
        f"CPU per event       relay {result.baseline_cpu_us_per_event:,.0f} us, "
        f"router {result.router_cpu_us_per_event:,.0f} us (ratio {result.cpu_ratio:.3f})"
    )
    verdict = "met" if met(result) else "NOT met"
    print(
        f"target              >= {TARGET_RATIO}x relay and >= {TARGET_EVENTS_PER_S:,} events/s: "
        f"{verdict}"
    )


@bench_app.command("tracker")
def tracker(
    events: int = typer.Option(40_000, "--events", min=16, help="Events in the case log."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of text."),
    database: str = typer.Option(
        "postgresql+asyncpg://postgres@127.0.0.1:5432",
        "--database",
        help="The PostgreSQL server; the benchmark creates and drops a database of its own.",
    ),
    rounds: int = typer.Option(
        3, "--rounds", min=1, help="Floor/tracker pairs, alternating which goes first."
    ),
) -> None:
    """The tracker against a raw floor (parse each event, executemany one row per event).

    Both read the same signed case log from a private broker into PostgreSQL; the
    tracker also runs the handoff state machine and keeps each case's state. They
    run in pairs, alternating which goes first; the figures are medians. A
    further consumer group then replays the log: every event must be skipped."""
    from bench.tracker import as_dict, bench_tracker

    result = asyncio.run(bench_tracker(events, database, rounds=rounds))
    if as_json:
        print(json.dumps(as_dict(result)))
        return
    verdict = "met" if result.tracker_events_per_s >= result.target_events_per_s else "NOT met"
    print(f"events              {result.events} ({result.cases} cases)")
    print(f"raw floor           {result.raw_events_per_s:,.0f} events/s")
    print(f"tracker             {result.tracker_events_per_s:,.0f} events/s")
    pairs = ", ".join(
        f"{ratio:.3f} = {rate:,.0f}/{raw:,.0f}"
        for ratio, (raw, rate) in zip(result.round_ratios, result.round_rates, strict=True)
    )
    print(f"ratio tracker/raw   {result.ratio:.3f} (median of {result.rounds} pairs: {pairs})")
    print(f"target              >= {result.target_events_per_s:,.0f} events/s: {verdict}")
    print(f"applied             {result.applied}, timeline rows {result.timeline_rows}")
    print(
        f"replay              {result.replay_skipped} skipped at "
        f"{result.replay_events_per_s:,.0f} events/s; rows after {result.rows_after_replay}, "
        f"cases {'unchanged' if result.cases_unchanged else 'CHANGED'}"
    )


@bench_app.command("timers")
def timers(
    count: int = typer.Option(100_000, "--timers", min=10, help="Open escalation timers."),
    window: float = typer.Option(
        120.0, "--window", min=1.0, help="Seconds over which the timers fall due."
    ),
    database: str = typer.Option(
        "sqlite", "--database", help="sqlite, or postgresql (a database made and dropped)."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of text."),
) -> None:
    """How late the escalation service fires alerts with N open timers, against a floor.

    N open idle cases and their timers are bulk-inserted as the service stores
    them, due over the window; the real service claims, raises, audits and
    produces each alert. The floor selects due rows and produces one message
    each on the same kind of store and broker. Lateness: the alert's Kafka
    timestamp minus its timer's due time."""
    from bench.timers import as_dict, bench_timers

    if database not in ("sqlite", "postgresql"):
        raise typer.BadParameter("sqlite or postgresql", param_hint="--database")
    result = asyncio.run(bench_timers(count, window, database))
    if as_json:
        print(json.dumps(as_dict(result)))
        return
    floor, service = result.floor, result.service
    verdict = "met" if result.meets_target else "NOT met"
    print(
        f"timers              {result.timers} due over {result.window_s:.0f} s ({result.database})"
    )
    print(f"bulk insert         {result.insert_s:.1f} s (cases and timers, not through Kafka)")
    print(f"floor late          p50 {floor.p50_ms:,.0f} ms, p99 {floor.p99_ms:,.0f} ms")
    print(
        f"service late        p50 {service.p50_ms:,.0f} ms, p99 {service.p99_ms:,.0f} ms, "
        f"max {service.max_ms:,.0f} ms ({service.fired} alerts)"
    )
    ratio = service.p99_ms / floor.p99_ms if floor.p99_ms > 0 else float("inf")
    print(f"ratio p99 svc/floor {ratio:.1f}")
    print(f"target              p99 <= {result.target_p99_ms:,.0f} ms late: {verdict}")


@bench_app.command("memory")
def memory(
    cases: str = typer.Option(
        "100000,1000000", "--cases", help="Case counts to load, comma-separated."
    ),
    workload: int = typer.Option(20_000, "--events", min=10, help="Events driven at each size."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of text."),
) -> None:
    """Resident memory of the router, tracker and escalation processes at each case count.

    The cases are bulk-loaded into the services' tables (feeding 1M cases through
    Kafka would take hours); a fixed workload of signed handoff requests on random
    existing cases then runs through the three service processes. The baseline is
    each service on an empty store, in the same run."""
    from bench.memory import TARGET, as_dict, bench_memory

    try:
        sizes = sorted({int(part) for part in cases.split(",") if part.strip()})
    except ValueError:
        raise typer.BadParameter("comma-separated case counts", param_hint="--cases") from None
    if not sizes or min(sizes) < 1:
        raise typer.BadParameter("at least one count above 0", param_hint="--cases")
    result = asyncio.run(bench_memory(sizes, workload))
    if as_json:
        print(json.dumps(as_dict(result)))
        return
    print(f"workload            {result.workload} events per size, through all three services")
    loads = ", ".join(f"{size}: {s:.0f} s" for size, s in result.load_s.items())
    print(f"bulk load           {loads} (rows written into the tables, not through Kafka)")
    for service, by_size in result.rss.items():
        figures = ", ".join(
            f"{size}: {rss.end_mib:.0f} MiB (warm {rss.warm_mib:.0f}, peak {rss.peak_mib:.0f})"
            for size, rss in by_size.items()
        )
        print(f"{service:<19} {figures}")
    if result.ratio:
        small, large = min(sizes), max(sizes)
        for service, ratio in result.ratio.items():
            print(f"ratio {service:<13} peak {large}/{small}: {ratio:.3f}")
        verdict = "met" if result.meets_target else "NOT met"
        print(f"target              each within {TARGET - 1:.0%} between sizes: {verdict}")


@bench_app.command("latency")
def latency(
    rate: int = typer.Option(1_000, "--rate", min=1, help="Offered load, events per second."),
    seconds: float = typer.Option(60.0, "--seconds", min=1.0, help="Seconds of load per phase."),
    database: str | None = typer.Option(
        None,
        "--database",
        help="A store URL of the benchmark's own (migrated, never dropped); unset: temporary "
        "SQLite.",
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of text."),
) -> None:
    """Emit-to-inbox and emit-to-tracker latency at a fixed offered load, against the floor.

    An open-loop generator hands signed events to the outbox on a fixed schedule; the
    router and the tracker run as their own processes. The floor: the same events at the
    same rate to a plain topic, read by a plain consumer (emit-to-consume)."""
    from bench.latency import as_dict, bench_latency, met

    result = asyncio.run(bench_latency(rate, seconds, database))
    if as_json:
        print(json.dumps(as_dict(result)))
        return
    print(
        f"offered load        {result.rate:,} events/s for {result.seconds:.0f} s "
        f"({result.events} events, store {result.database}, load avg {result.load})"
    )
    print(
        f"schedule            {result.behind_schedule} events handed > 5 ms late "
        f"(max {result.max_schedule_lag_ms:,.1f} ms)"
    )
    for name, path in (
        ("floor (consume)", result.floor),
        ("emit-to-inbox", result.inbox),
        ("emit-to-tracker", result.tracker),
    ):
        print(
            f"{name:<19} p50 {path.p50_ms:,.1f} ms, p99 {path.p99_ms:,.1f} ms, "
            f"max {path.max_ms:,.1f} ms; p50 first/last tenth {path.p50_first_tenth_ms:,.1f}/"
            f"{path.p50_last_tenth_ms:,.1f} ms; missing {path.missing}"
        )
    cpu = ", ".join(
        f"{name} {us:,.0f} us ({us * result.rate / 1e4:.0f}% of a core)"
        for name, us in result.cpu_us_per_event.items()
    )
    print(f"CPU per event       {cpu}")
    print(
        f"resolution          tracker polled every {result.poll_resolution_ms:.0f} ms; "
        f"probes fetch_max_wait {result.probe_fetch_wait_ms} ms, "
        f"services {result.service_fetch_wait_ms} ms"
    )
    print(
        f"ratio inbox/floor   p50 {result.ratio_inbox_p50_floor:.1f}, "
        f"p99 {result.ratio_inbox_p99_floor:.1f}"
    )
    verdicts = {k: "met" if v else "NOT met" for k, v in met(result).items()}
    offered = "" if result.rate == 1_000 else f" (this run offered {result.rate:,}/s)"
    print(
        f"target              emit-to-inbox p99 <= {result.target_inbox_p99_floor_ratio:.0f}x "
        f"the floor's p99: {verdicts['inbox_p99_floor_ratio']}"
    )
    print(
        f"                    emit-to-inbox p99 < {result.target_inbox_p99_ms:.0f} ms "
        f"at 1,000/s: {verdicts['inbox_p99_ms']}{offered}"
    )


@bench_app.command("gateway")
def gateway(
    *,
    events: int = typer.Option(5_000, "--events", min=100, help="Events per side per round."),
    rounds: int = typer.Option(
        3, "--rounds", min=1, max=15, help="Relay and gateway pairs, in alternating order."
    ),
    concurrency: int = typer.Option(
        64, "--concurrency", min=1, max=512, help="Requests in flight, each on its own connection."
    ),
    batch: int = typer.Option(
        1, "--batch", min=1, max=100, help="Events per request: 1 structured mode, more batch."
    ),
    client: str = typer.Option(
        "raw", "--client", help="The load generator: raw (HTTP/1.1 on asyncio) or httpx."
    ),
    database: str = typer.Option(
        "sqlite", "--database", help="sqlite, or postgresql (a database made and dropped)."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of text."),
) -> None:
    """The gateway's ingress (POST /v1/events) against a minimal Starlette-to-aiokafka relay.

    Both are HTTP servers on 127.0.0.1, each its own process, on one private embedded
    broker, sent the same signed events by the same client: the gateway as it runs in
    production (token, rate, checks, repeats, acks=all, record), the relay reading each
    body and producing it with acks=all before its 202. Measured `--rounds` times, one
    after the other; the figures are medians, the ratio the median of the rounds' own."""
    from bench._gateway_load import CLIENTS
    from bench._gateway_store import DATABASES
    from bench.gateway import TARGET_RATIO, as_dict, bench_gateway, met

    if client not in CLIENTS:
        raise typer.BadParameter(" or ".join(CLIENTS), param_hint="--client")
    if database not in DATABASES:
        raise typer.BadParameter(" or ".join(DATABASES), param_hint="--database")
    result = asyncio.run(
        bench_gateway(
            events,
            rounds=rounds,
            concurrency=concurrency,
            batch=batch,
            client=client,
            database=database,
        )
    )
    if as_json:
        print(json.dumps(as_dict(result)))
        return
    mode = "structured" if result.batch == 1 else f"batches of {result.batch}"
    print(
        f"events              {result.events} per side, {result.rounds} round(s), medians; "
        f"{mode}, {result.concurrency} in flight, {result.client} client, {result.database}"
    )
    print(f"relay               {result.relay_events_per_s:,.0f} events/s (baseline)")
    print(f"gateway             {result.gateway_events_per_s:,.0f} events/s")
    print(f"ratio gateway/relay {result.ratio:.3f} (median of the rounds)")
    for number, (ratio, (relayed, taken)) in enumerate(
        zip(result.round_ratios, result.round_rates, strict=True), start=1
    ):
        rates = f"relay {relayed:,.0f}/s, gateway {taken:,.0f}/s"
        print(f"  round {number}           {rates}, ratio {ratio:.3f}")
    print(
        f"CPU per event       relay {result.relay_cpu_us_per_event:,.0f} us, "
        f"gateway {result.gateway_cpu_us_per_event:,.0f} us (ratio {result.cpu_ratio:.3f}); "
        f"client {result.client_cpu_us_per_event:,.0f} us"
    )
    print(
        f"moved               relay {result.relay_accepted}, gateway {result.gateway_accepted} "
        f"({result.gateway_repeated} repeated); on the outbox {result.on_outbox} of "
        f"{result.expected_on_outbox} (warm-ups included); load {result.load}"
    )
    print(f"target              >= {TARGET_RATIO}x relay: {'met' if met(result) else 'NOT met'}")


@bench_app.command("webhooks")
def webhooks(
    events: int = typer.Option(5_000, "--events", min=100, help="Deliveries per side per round."),
    rounds: int = typer.Option(
        3, "--rounds", min=1, max=15, help="Sender and dispatcher pairs, in alternating order."
    ),
    database: str = typer.Option(
        "sqlite", "--database", help="sqlite, or postgresql (a database made and dropped)."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of text."),
) -> None:
    """The gateway's webhook delivery against a bare httpx sender, to one loopback receiver.

    Inbox records of a private embedded broker are taken into deliveries in a store of
    the run's own; the gateway's dispatcher then delivers them (rounds, leases, case
    order, signatures, every attempt recorded), and a bare sender POSTs the same bodies
    with the same client and as many in flight. Measured `--rounds` times, one after the
    other, each on a new store; the figures are medians."""
    from bench._gateway_store import DATABASES
    from bench.webhooks import TARGET_RATIO, as_dict, bench_webhooks, met

    if database not in DATABASES:
        raise typer.BadParameter(" or ".join(DATABASES), param_hint="--database")
    result = asyncio.run(bench_webhooks(events, rounds=rounds, database=database))
    if as_json:
        print(json.dumps(as_dict(result)))
        return
    print(
        f"deliveries          {result.events} per side, {result.rounds} round(s), medians; "
        f"{result.concurrency} in flight, {result.database}"
    )
    print(f"bare sender         {result.sender_deliveries_per_s:,.0f} deliveries/s (baseline)")
    print(f"dispatcher          {result.dispatcher_deliveries_per_s:,.0f} deliveries/s")
    print(f"ratio disp./sender  {result.ratio:.3f} (median of the rounds)")
    for number, (ratio, (sent, dispatched)) in enumerate(
        zip(result.round_ratios, result.round_rates, strict=True), start=1
    ):
        rates = f"sender {sent:,.0f}/s, dispatcher {dispatched:,.0f}/s"
        print(f"  round {number}           {rates}, ratio {ratio:.3f}")
    print(
        f"CPU per delivery    sender {result.sender_cpu_us_per_delivery:,.0f} us, "
        f"dispatcher {result.dispatcher_cpu_us_per_delivery:,.0f} us "
        f"(ratio {result.cpu_ratio:.3f})"
    )
    print(
        f"moved               receiver counted sender {result.sender_received}, dispatcher "
        f"{result.dispatcher_received}; store: {result.delivered} delivered, "
        f"{result.attempts} attempts; load {result.load}"
    )
    print(f"intake              {result.intake_events_per_s:,.0f} inbox records/s (informative)")
    print(f"target              >= {TARGET_RATIO}x sender: {'met' if met(result) else 'NOT met'}")


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
