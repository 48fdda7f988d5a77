"""The console: what operators and escalation teams open in a browser.

Serves on 127.0.0.1:8080 (`KETENBUS_CONSOLE_PORT`): `GET /healthz`, which
answers 200 only when the Kafka broker and every service in
`KETENBUS_HEALTH_TARGETS` answer, with each one's state in JSON; and, behind a
login (users file `KETENBUS_CONSOLE_USERS`), the operator pages (overview, case
tracer, dead letters, webhook deliveries, signals) and the escalation board.
Operators see everything except sealed personal data and replay dead letters
and webhook deliveries; a team member sees and acts on its own team's
escalations only. Each page module (`overview`, `tracer`, ...) exports
`routes`; `app.create_console` assembles them. Guarantees: nothing
unauthenticated but /healthz, /login, /static, /metrics and /docs/asyncapi;
the console writes to the bus only what an authenticated user asked for (a
replay, a team's acknowledgement or resolution).
"""
