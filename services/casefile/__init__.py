"""The case file: what the case store says of each case, for whoever reads it.

The tracker writes the store (`cases`, `case_timeline`, see
`services.runtime.store.tables`); this package is the store's one reading of it,
so `ketenbus case`, `ketenbus cases`, `ketenbus signals` and the console tell
the same story:

- `timeline`: what a timeline row says of an event (its summary and the ids
  worth indexing), built from codes, ids, counts and dates only, never from
  free text a case worker wrote; the tracker writes with it;
- `queries`: one case's view and timeline, and the recent cases;
- `escalations`: each escalation of a case, folded from its timeline;
- `signals`, `signals_sql`: the policy signals (what keeps causing
  escalations, how long resolving takes, what is still open), aggregated in
  SQL from the timeline.

Built on `contracts` and `services.runtime` only. It reads and never writes
Kafka; nothing here writes the store but the tracker's own `timeline` facts.
"""
