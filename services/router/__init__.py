"""The router: the only way into the case log.

Consumes every registered agency's outbox (`agency.<code>.outbox`, group
`ketenbus-router`). For each message it parses and validates the event, checks
that the source OIN is that of the agency whose outbox it came from, that the
message key is the case id and that the agency may emit the event type.

Produces a valid event, unchanged, to `ketenbus.cases` (key = case id) and to
the inbox of every agency that subscribes to its type and of the other party of
a handoff. Anything invalid goes to `ketenbus.dlq` with the reason, origin
topic, partition and offset in headers, and a `delivery-failed` notice goes to
the sending agency's inbox.

Guarantees: at-least-once. Offsets are committed only after every message the
batch produced is acknowledged by Kafka; a failure before that redelivers the
batch, and consumers dedupe on the event id. One bad message never stops the
router: it is dead-lettered and the partition moves on.
"""
