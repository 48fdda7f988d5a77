"""An agency system writes a business change and its event in one transaction.

Run it beside a broker (`ketenbus up` or `ketenbus broker`):

    python examples/agency_outbox.py

It opens a fresh SQLite database (in a temporary directory), creates a business
table and the outbox table, updates a business row and adds a signed
`case-opened` event in ONE transaction, then runs the relay once against
KETENBUS_KAFKA_BOOTSTRAP (default 127.0.0.1:9092) and prints what it sent.

The key pair here is generated on the spot, so the router will refuse the event
as `unknown-key`: a real agency system loads its own key, whose public half is
in the registry (`AgencyKeys.load(path, "uwv")`, after `ketenbus keys new uwv`).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import uuid
from pathlib import Path

from aiokafka.errors import KafkaError
from sqlalchemy import Column, MetaData, String, Table, Uuid, insert, select, update

from contracts import CaseOpened, source_urn
from contracts.agency_client import AgencyKeys
from contracts.events import CaseOpening
from services.agency_outbox import OutboxRelay, add_event, create_outbox_table, outbox_events
from services.runtime.store.engine import make_engine

UWV_OIN = "00000099000000000013"  # uwv's OIN in deploy/agencies.yaml (an example value)

# The agency's own business table: here, its benefit files and their status.
business = MetaData()
files = Table(
    "benefit_files",
    business,
    Column("case_id", Uuid(), primary_key=True),
    Column("status", String(16), nullable=False),
)


async def main(directory: Path) -> int:
    bootstrap = os.environ.get("KETENBUS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    engine = make_engine(f"sqlite+aiosqlite:///{directory / 'uwv.db'}")
    keys = AgencyKeys.generate("uwv")
    case_id = uuid.uuid4()
    try:
        async with engine.begin() as connection:
            await connection.run_sync(business.create_all)
            await connection.execute(insert(files).values(case_id=case_id, status="new"))
        await create_outbox_table(engine)

        # The business change and its event: both commit, or neither does.
        async with engine.begin() as connection:
            await connection.execute(
                update(files).where(files.c.case_id == case_id).values(status="handed-on")
            )
            event = CaseOpened.new(
                source=source_urn(UWV_OIN, "uitkeringen"),
                case_id=case_id,
                data=CaseOpening(category="schulden", summary="Meerdere schulden"),
            )
            await add_event(connection, keys, event, oin=UWV_OIN)

        try:
            async with OutboxRelay(engine, bootstrap, request_timeout_ms=10_000) as relay:
                sent = await asyncio.wait_for(relay.run_once(), 30)
        except (KafkaError, OSError, TimeoutError) as exc:
            print(f"no Kafka broker answers on {bootstrap}: {exc}", file=sys.stderr)
            return 1

        async with engine.connect() as connection:
            rows = await connection.execute(
                select(outbox_events.c.id, outbox_events.c.topic, outbox_events.c.sent_at)
            )
            print(f"sent {sent} event(s):")
            for row in rows:
                print(f"  event {row.id} of case {case_id} to {row.topic}, sent at {row.sent_at}")
    finally:
        await engine.dispose()
    return 0


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        sys.exit(asyncio.run(main(Path(directory))))
