"""Simulated agencies, so a newcomer sees cases move.

Consumes every agency inbox (its own group per run); produces to the agency
outboxes exactly what real agency systems would: cases opened, handoffs
requested along a chain (tax office → municipal debt help → CJIB, ...),
accepted or rejected with a reason, and cases closed. Guarantees nothing
beyond being a well-behaved client: every event valid, keyed by its case id,
numbered per case and emitter.
"""
