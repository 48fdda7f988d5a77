"""The escalation service: no case stalls unseen between two agencies.

Consumes: `ketenbus.cases` (the validated case log), in batches, as consumer
group `ketenbus-escalation`. Of the bus operator's own events it applies only
its expiries; the gateway's `delivery-failed` notices
(`urn:nld:oin:<operator OIN>:systeem:ketenbus-gateway`, reason
`webhook-undeliverable`: a webhook delivery given up after
`KETENBUS_WEBHOOK_HORIZON`); and an `escalation-acknowledged` or
`escalation-resolved` from the console
(`urn:nld:oin:<operator OIN>:systeem:ketenbus-console`, built by
`services.console`): that is the act of its `data.team`'s agency, under the same
rules as the agency's own (the team alerted last, or one above it on the path).

Produces, as `urn:nld:oin:<operator OIN>:systeem:ketenbus-escalation`:
- `escalation-raised` to `ketenbus.escalations` (key = case id), to
  `ketenbus.cases` (so the tracker shows it on the case's timeline) and to the
  inbox of the alerted team's agency;
- `handoff-expired` to `ketenbus.cases` and the inboxes of both handoff parties,
  at the handoff's deadline, or at once when its request cannot reach the
  receiver (below);
- `escalation-resolved` (outcome `no-action-needed`), as the raise went, when
  the handoff's answer is ahead of its expiry on the case log: the tracker
  keeps the answer, and the escalation raised with the expiry is withdrawn;
- one audit record per inbox delivery, hash-chained in the store and on
  `ketenbus.audit`, written before the delivery is produced (fail-closed);
- for a refused `escalation-requested` (from an agency that never held the
  case): the record to `ketenbus.dlq`, with the reason in the `ketenbus-*`
  headers and `ketenbus-rejected-by: escalation`, and `delivery-failed` to the
  sender's inbox. Nothing is raised for it.

The service follows the case log with the handoff rules (`contracts.handoff`),
including its own expiries as they come back, so the two agree on holder,
pending handoff and rejection count.

An expiry ends the handoff in the case's custody (`services.custody`)
under the lock the router takes too, while it is produced: an answer the router
let through first stops it.

Triggers: a handoff unanswered at its deadline, or whose request the
receiver's webhook never took (the gateway's notice, about the pending
handoff's own request event, from the receiver's inbox); a case with no agency event
for its category's idle limit; the `ping_pong_limit`-th rejection; a hardship
or vulnerability flag (at the level the flag asks for); a request by an agency
that holds or has held the case. One escalation per trigger and case is open
at a time. Each climbs the case's escalation path (its own, else the
category's) while unacknowledged, and the top level is alerted again every
`escalation_repeat` until acknowledged.

Guarantees:
- offsets are committed only after the batch's state change is committed and
  what it produced is acknowledged by Kafka; a replay is skipped by event id;
- timers live in the database, survive restarts and fire exactly once across
  instances (claimed under a lease); every event the service emits has an id
  derived (uuid5) from the timer or event that caused it, so a re-fire after
  a crash repeats the same ids and is deduplicated downstream;
- an expiry read back from the case log before its round has recorded it does
  not send the round's escalation a second time (the round marks the timer
  produced in the transaction that produces it, and the consumer waits for it);
- a handoff request the gateway gave up on brings the handoff's own deadline
  timer forward to now (if it is unfired and was set by that request), and the
  timer loop expires it as at the deadline: the same timer, so the same
  `handoff-expired` and `escalation-raised` ids, and a notice read again, the
  same notice from another subscription or the deadline itself raise nothing
  more. A notice about another event, another party's copy, or a handoff
  answered, expired or replaced changes nothing;
- all time comes from one `Clock`, so a simulation can run it faster.
"""

from services.escalation.service import EscalationService

__all__ = ["EscalationService"]
