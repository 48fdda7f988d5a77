"""The audit trail in the store: who received which fields of which case, hash-chained.

Writes: `audit_records`, `audit_chains` and `audit_chain_head` (see
`services.runtime.store.tables`), only through `append`, which every writer of
deliveries (the router, the escalation service, the gateway's Notificaties
relay) calls inside its own transaction for every delivery to an agency's
inbox, before it produces the delivery. The writer then publishes the returned
records on `ketenbus.audit`.

Reads: the same tables, for `verify` (`ketenbus audit verify`) and `trace`
(`ketenbus trace`).

Guarantees:
- one chain per writer process (`new_chain`): its records are numbered 1, 2,
  3, ... without gaps and each carries its predecessor's hash
  (`contracts.audit`); appends to one chain queue on its head row, so it
  never forks, and writers on other chains never wait for it;
- each chain is opened once, as the next link of the chain of openings, whose
  head (`audit_chain_head`) counts them: a chain removed whole shows;
- an append is part of the caller's transaction: if the caller rolls back,
  no record is left and no head moves; if the append fails, the caller's
  transaction fails with it, so nothing is delivered unaudited;
- `verify` names the first opening or record that was changed, removed,
  reordered or added outside `append`, including records removed at the end
  of a chain (its head still counts them) and a chain removed whole;
- the records hold codes, ids and field names only, never personal data.
"""

from services.audit.chain import (
    PAGE,
    ChainReport,
    HeadMoved,
    append,
    new_chain,
    trace,
    verify,
)

__all__ = ["PAGE", "ChainReport", "HeadMoved", "append", "new_chain", "trace", "verify"]
