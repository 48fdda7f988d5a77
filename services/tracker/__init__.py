"""The tracker: keeps every case's current state and its timeline in the case store.

Consumes: `ketenbus.cases` (the validated case log), in batches, as consumer
group `ketenbus-tracker`. An `escalation-acknowledged` or `escalation-resolved`
from the console (`urn:nld:oin:<operator OIN>:systeem:ketenbus-console`) is
recorded as the act of its `data.team`'s agency (`contracts.handoff.actor_of`): the team
acted through the console.

Produces: nothing on Kafka; it writes the case store (`cases`, `case_timeline`,
see `services.runtime.store.engine.tables`), which `ketenbus case`, `ketenbus cases`,
`ketenbus signals` and the console read through `services.casefile`. Each
escalation is folded from the timeline and the policy signals are aggregated
from it, so neither needs a table of its own.

Guarantees:
- offsets are committed only after the batch's effects are committed in the
  database, so a crash replays a batch rather than losing it;
- each event id is applied at most once: a replayed or duplicated event is
  skipped (idempotent);
- the handoff rules (`contracts.handoff`) are enforced: one holder at a time, a handoff is
  requested by the holder and answered only by its receiver, a closed case
  stays closed; an escalation resolved as `handoff-forced` moves the case only
  when an agency on the escalation path or the bus operator resolves it;
- an event the rules refuse is recorded on the timeline with the
  reason, and not applied.
"""
