"""The transactional outbox for agency systems: a business change and its event in one commit.

An agency system writes to its OWN database (SQLAlchemy async, SQLite or
PostgreSQL), never to the bus's store:

- it reads nothing of the bus; `add_event` writes one row to the agency's
  `outbox_events` table (`table.py`): the event signed with the agency's key
  (`AgencyKeys.sign`), its case id and its topic `agency.<code>.outbox`, in the
  caller's transaction, beside the business change;
- `OutboxRelay` reads the unsent rows, oldest first, produces each one to its
  topic with the case id as key (`acks="all"`) and, once Kafka has acknowledged
  it, marks the row sent.

Guarantee: an event is published if and only if its business transaction
committed (a rolled-back transaction leaves no row), at least once, with the
same bytes and the same event id every time; the router's dedupe on the event
id turns a republished row (a crash between producing and marking) into a
no-op. Rows of one case are produced in the order they were added: when one
fails, the later rows of that case wait for it, while other cases go on.
"""

from __future__ import annotations

from services.agency_outbox.relay import OutboxRelay
from services.agency_outbox.table import (
    create_outbox_table,
    define_outbox_table,
    metadata,
    outbox_events,
)
from services.agency_outbox.writer import add_event

__all__ = [
    "OutboxRelay",
    "add_event",
    "create_outbox_table",
    "define_outbox_table",
    "metadata",
    "outbox_events",
]
