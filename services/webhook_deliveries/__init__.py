"""Webhook deliveries for operators: what the gateway delivered, is delivering and gave up,
and replay.

The gateway writes `webhook_subscriptions`, `webhook_deliveries` and
`webhook_attempts` (see `services.runtime.store.tables`); this package is the
one reading of them for operators, so `ketenbus webhooks deliveries`,
`ketenbus webhooks replay` and the console's webhooks page tell the same story
and replay the same way:

- `queries`: the recent deliveries (`recent`), one delivery and its attempts
  (`delivery`, `attempts`), and per subscription its deliveries by status,
  those failing (pending, with a failed attempt since its retry horizon began)
  and its last error (`overviews`, `overview`);
- `replay`: what was delivered or given up made pending again, one delivery, a
  subscription's, or those made in a time range (`replay`), logged for the
  audit (logger `ketenbus.webhooks`, who replayed as `operator`).

Guarantees:
- nothing here reads a subscription's `Authorization` value or signing secret,
  nor a delivery's body (the inbox copy): they cannot be shown by mistake. A
  callback is shown without its user info, query or fragment (`shown_callback`),
  where a receiver's credential may be;
- replay changes nothing but the chosen deliveries' status and timers, and
  only those of active subscriptions: the dispatcher delivers them again, in
  their case's order, with the same `webhook-id`.

Built on `services.runtime` only: the CLI and the console use it, and neither
imports the gateway, which writes what this reads.
"""

from services.webhook_deliveries.queries import (
    Attempt,
    Delivery,
    Overview,
    Tally,
    attempts,
    counts,
    delivery,
    overview,
    overviews,
    recent,
    shown_callback,
)
from services.webhook_deliveries.replay import parse_moment, replay, replayed_message

__all__ = [
    "Attempt",
    "Delivery",
    "Overview",
    "Tally",
    "attempts",
    "counts",
    "delivery",
    "overview",
    "overviews",
    "parse_moment",
    "recent",
    "replay",
    "replayed_message",
    "shown_callback",
]
