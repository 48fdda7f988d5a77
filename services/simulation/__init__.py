"""The region simulation: the real services, simulated agencies and teams, a verdict.

`ketenbus simulate` runs the router, the tracker and the escalation service in
one process on one sped-up clock, lets simulated agencies open, hand off,
reject, stall and bounce cases and simulated teams acknowledge escalations
promptly, late or never, and then judges from the bus and the tracker's store
whether any case lost its holder or any escalation came late or not at all.
A bug in a service shows up as a non-zero count, because the verdict never
trusts the simulators' own bookkeeping.
"""
