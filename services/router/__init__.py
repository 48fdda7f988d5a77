"""The router: the only way into the case log, and the only writer of agencies' inboxes.

Consumes every registered agency's outbox (`agency.<code>.outbox`, group
`ketenbus-router`), in batches.

Checks, in order, each message: a registered outbox; at most 64 KB; a JSON
object signed by the source agency's registered Ed25519 key (over its RFC 8785
canonical form); a valid event; a source OIN that is the outbox's agency's; a
type the agency may emit; the case id as the key; personal data sealed, never
in clear; an event id not delivered before; and the holder rights on the
case's custody (only the holder hands off or closes, only the named receiver
answers, only past or present holders ask for escalation).

Produces:
- the event, as signed, to `ketenbus.cases` (key = case id);
- to each receiver (subscribers of the type, the parties a handoff names) its
  own copy in `agency.<code>.inbox`, cut down to the context fields its grant
  allows, with only its own sealed box of personal data;
- one audit record per inbox copy, hash-chained in the store and on
  `ketenbus.audit`;
- for anything refused: the record to `ketenbus.dlq` with the reason, origin
  topic, partition and offset in headers, and a `delivery-failed` notice to
  the sending agency's inbox. Nothing of a refused event is delivered.

Guarantees: at-least-once, fail-closed. A batch's custody changes and audit
records are written in one transaction before anything is produced, and
committed after Kafka acknowledged all it produced; the offsets are committed
after that. A store that cannot take the audit records delivers nothing, and
the batch comes again. One bad message never stops the router.

Worker processes (one per core beside the router's, at most four) verify the
signatures of a batch of 16 records or more while the router checks its
first share itself. A batch of 1,000 records or more is delivered in parts,
each a batch of its own as above, the workers verifying the parts after it;
if a part fails, the batch comes again and its delivered parts are
recognised and skipped.
"""
