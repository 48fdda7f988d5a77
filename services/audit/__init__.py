"""The audit trail in the store: who received which fields of which case, hash-chained.

Writes: `audit_records` and `audit_chain_head` (see `services.runtime.store.tables`),
only through `append`, which the router calls inside its own transaction for
every delivery to an agency's inbox, before it produces the delivery.
The router then publishes the returned records on `ketenbus.audit`.

Reads: the same two tables, for `verify` (`ketenbus audit verify`) and
`trace` (`ketenbus trace`).

Guarantees:
- one chain for the whole bus: records are numbered 1, 2, 3, ... without gaps
  and each carries its predecessor's hash (`contracts.audit`); concurrent
  appends queue on the chain's head, so the chain never forks;
- an append is part of the caller's transaction: if the caller rolls back,
  no record is left and the head does not move; if the append fails, the
  caller's transaction fails with it, so nothing is delivered unaudited;
- `verify` names the first record that was changed, removed, reordered or
  added outside `append`, including records removed at the end (the head
  still counts them);
- the records hold codes, ids and field names only, never personal data.
"""

from services.audit.chain import PAGE, ChainReport, HeadMoved, append, trace, verify

__all__ = ["PAGE", "ChainReport", "HeadMoved", "append", "trace", "verify"]
