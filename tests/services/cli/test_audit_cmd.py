"""`ketenbus audit verify` and `ketenbus trace` on a SQLite store, through typer's CliRunner."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Sequence

import pytest
import typer
from sqlalchemy import update
from typer.testing import CliRunner

from contracts.audit import GENESIS_HASH, AuditEntry, AuditRecord, opening_hash
from contracts.registry import AgencyRegistry
from services.audit import append
from services.cli import audit_cmd, trace_cmd
from services.runtime.errors import UserError
from services.runtime.store.engine import make_engine, migrate, write_transaction
from services.runtime.store.tables import audit_records
from services.tracker.ledger import apply_batch
from tests._testutil import EventFactory
from tests.services.audit.entries import entry

Append = Callable[[Sequence[AuditEntry]], list[AuditRecord]]


@pytest.fixture
def audited(database: str) -> Append:
    """Append entries to the store as the router would, from a synchronous test."""

    def run(entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        async def go() -> list[AuditRecord]:
            engine = make_engine(database)
            try:
                await migrate(engine)
                async with write_transaction(engine) as connection:
                    return await append(connection, entries, chain="router/test")
            finally:
                await engine.dispose()

        return asyncio.run(go())

    return run


def tamper(database: str, seq: int, **values: object) -> None:
    async def go() -> None:
        engine = make_engine(database)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    update(audit_records).where(audit_records.c.seq == seq).values(**values)
                )
        finally:
            await engine.dispose()

    asyncio.run(go())


@pytest.fixture
def cli(database: str) -> typer.Typer:
    app = typer.Typer()
    app.add_typer(audit_cmd.app, name="audit")
    trace_cmd.register(app)
    return app


def test_audit_verify_of_an_empty_store_is_intact_at_genesis(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["audit", "verify"])

    assert (0, f"audit chain intact: 0 records on 0 chain(s), openings head {GENESIS_HASH}\n") == (
        result.exit_code,
        result.output,
    )


def test_audit_verify_counts_the_records_and_names_the_head(
    cli: typer.Typer, audited: Append
) -> None:
    audited([entry(), entry(), entry()])
    openings = opening_hash(1, GENESIS_HASH, "router/test")

    result = CliRunner().invoke(cli, ["audit", "verify"])

    assert (0, f"audit chain intact: 3 records on 1 chain(s), openings head {openings}\n") == (
        result.exit_code,
        result.output,
    )


def test_audit_verify_names_a_changed_record_and_exits_1(
    cli: typer.Typer, audited: Append, database: str
) -> None:
    records = audited([entry(), entry(), entry()])
    tamper(database, 2, receiver="cjib")

    result = CliRunner().invoke(cli, ["audit", "verify"])

    assert 1 == result.exit_code
    assert isinstance(result.exception, UserError)
    assert (
        f"audit chain broken: record 2 of chain router/test (case {records[1].case_id}, "
        f"event {records[1].event_id}): "
        "contents changed since it was written (1 record(s) before it intact)"
    ) == str(result.exception)


def test_audit_verify_json_reports_the_break_and_exits_1(
    cli: typer.Typer, audited: Append, database: str
) -> None:
    audited([entry(), entry()])
    tamper(database, 1, purpose="Iets anders")

    result = CliRunner().invoke(cli, ["audit", "verify", "--json"])
    report = json.loads(result.output)

    assert (1, False, 0, 1, "contents-changed", "router/test", 1) == (
        result.exit_code,
        report["intact"],
        report["records"],
        report["broken"]["seq"],
        report["broken"]["kind"],
        report["broken"]["chain"],
        report["head_seq"],
    )


def test_audit_verify_json_of_an_intact_chain_exits_0(cli: typer.Typer, audited: Append) -> None:
    audited([entry()])

    result = CliRunner().invoke(cli, ["audit", "verify", "--json"])

    assert (0, True, None, 1, 1) == (
        result.exit_code,
        *(json.loads(result.output)[key] for key in ("intact", "broken", "records", "chains")),
    )


def test_trace_prints_one_line_per_delivery_oldest_first(cli: typer.Typer, audited: Append) -> None:
    case_id = uuid.uuid4()
    audited([entry(case_id, receiver="svb", minute=0), entry(receiver="uwv", minute=1)])
    audited([entry(case_id, receiver="cak", minute=2, event_type="case-closed", fields=())])

    result = CliRunner().invoke(cli, ["trace", str(case_id)])

    assert 0 == result.exit_code, result.output
    assert [
        "DELIVERED             RECEIVER  EVENT              FIELDS             PURPOSE"
        "                               LEGAL BASIS              RECORD",
        "2026-11-29 09:00:00Z  svb       handoff-requested  actions, personal  Beoordeling van"
        " de overgedragen zaak  Participatiewet art. 64  1",
        "2026-11-29 09:02:00Z  cak       case-closed        (no context)       Beoordeling van"
        " de overgedragen zaak  Participatiewet art. 64  3",
    ] == result.output.splitlines()


def test_trace_json_is_the_cases_audit_records(cli: typer.Typer, audited: Append) -> None:
    case_id = uuid.uuid4()
    records = audited([entry(case_id), entry(), entry(case_id)])

    result = CliRunner().invoke(cli, ["trace", str(case_id), "--json"])

    assert 0 == result.exit_code
    assert [records[0], records[2]] == [
        AuditRecord.model_validate(item) for item in json.loads(result.output)
    ]


def test_trace_of_a_case_never_delivered_fails_with_one_line(
    cli: typer.Typer, audited: Append
) -> None:
    audited([entry()])
    case_id = uuid.uuid4()

    result = CliRunner().invoke(cli, ["trace", str(case_id)])

    assert 1 == result.exit_code
    assert isinstance(result.exception, UserError)
    assert f"unknown case {case_id}: the audit trail records no delivery of it" == str(
        result.exception
    )


def test_trace_of_a_case_the_tracker_knows_but_nobody_received_says_so(
    cli: typer.Typer, database: str, registry: AgencyRegistry
) -> None:
    case_id = uuid.uuid4()

    async def opened() -> None:
        engine = make_engine(database)
        try:
            await migrate(engine)
            await apply_batch(engine, registry, [EventFactory(registry).opened(case_id, by="uwv")])
        finally:
            await engine.dispose()

    asyncio.run(opened())

    text = CliRunner().invoke(cli, ["trace", str(case_id)])
    as_json = CliRunner().invoke(cli, ["trace", str(case_id), "--json"])

    assert (0, f"case {case_id}: nothing of it delivered yet\n", 0, []) == (
        text.exit_code,
        text.output,
        as_json.exit_code,
        json.loads(as_json.output),
    )


def test_trace_of_something_not_a_case_id_fails_with_one_line(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["trace", "BSN-123"])

    assert 1 == result.exit_code
    assert "'BSN-123' is not a case id (a case id is a UUID)" == str(result.exception)
