"""The console: what operators open first.

Consumes nothing yet; serves `GET /healthz` on 127.0.0.1:8080
(`KETENBUS_CONSOLE_PORT`), which answers 200 only when the Kafka broker and
every service in `KETENBUS_HEALTH_TARGETS` answer, with each one's state in
JSON. Guarantees: read-only; it never writes to the bus.
"""
