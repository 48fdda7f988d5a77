"""The shared runtime every service stands on, and a leaf: it imports no other `services` package.

- `config/`: the `KETENBUS_*` settings and the agency registry file;
- `kafka/`: clients, the embedded broker, topics, ACLs, consumer lag;
- `consumer/`: the one way to subscribe, raw headers, reading on, backoff and poison,
  and the case log read back;
- `store/`: engines and migrations, tables, bulk writes, key chunks;
- `observability/`: logs, metrics, traces;
- `process/`: the service runner with /healthz and /metrics, HTTP, the clock, the heap;
- `text/`: what a terminal shows;
- `errors`: the errors a user can act on.
"""
