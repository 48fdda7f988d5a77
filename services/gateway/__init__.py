"""The HTTP gateway: agency systems that speak HTTP take part in handoffs as Kafka clients do.

Consumes: `POST /v1/events` from agency systems, in the CloudEvents HTTP
binding: structured (`application/cloudevents+json`), binary (`ce-*` headers
around a JSON body) and batch (`application/cloudevents-batch+json`). The
caller authenticates as one agency with a bearer token (`ketenbus gateway
token new`, kept by its sha256 only), and every event's `source` must name
that agency.

Produces: each event, unchanged and with its own Ed25519 signature, to
`agency.<code>.outbox`, keyed by its case id, so the router's checks
(signature, rights, minimisation, dedupe) stay the one gate.

Guarantees:
- the answer comes after Kafka acknowledged every event of the request on
  every in-sync replica (`acks=all`): a 202 names events that are on the
  outbox, and anything else means none of the request was taken;
- a repeated event id is answered as accepted and not sent twice; the same
  id with other content is a 409;
- what the gateway refuses it says at once, as an RFC 9457 problem
  (`application/problem+json`): 400 an event that is not one, 401 no valid
  token, 403 an event of another agency, 413 over 64 KB an event, 415 another
  media type, 429 beyond the agency's rate (with `Retry-After`).
"""
