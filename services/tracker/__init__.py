"""The tracker: keeps every case's current state and its timeline in the case store.

Consumes: `ketenbus.cases` (the validated case log), in batches, as consumer
group `ketenbus-tracker`.

Produces: nothing on Kafka; it writes the case store (`cases`, `case_timeline`,
see `services.runtime.tables`), which `ketenbus case`, `ketenbus cases` and the
console read.

Guarantees:
- offsets are committed only after the batch's effects are committed in the
  database, so a crash replays a batch rather than losing it;
- each event id is applied at most once: a replayed or duplicated event is
  skipped (idempotent);
- the handoff state machine is enforced: one holder at a time, a handoff is
  requested by the holder and answered only by its receiver, a closed case
  stays closed;
- an event the state machine refuses is recorded on the timeline with the
  reason, and not applied.
"""
