"""The HTTP gateway: agency systems that speak HTTP take part in handoffs as Kafka clients do.

Consumes: `POST /v1/events` from agency systems, in the CloudEvents HTTP
binding: structured (`application/cloudevents+json`), binary (`ce-*` headers
around a JSON body) and batch (`application/cloudevents-batch+json`). The
caller authenticates as one agency with a bearer token (`ketenbus gateway
token new`, kept by its sha256 only), and every event's `source` must name
that agency. `POST /api/v1/notificaties` from a ZGW system (Open Zaak): a
Notificaties API 1.0 message, from an agency the registry lets emit
`zgw-notificatie` (`services.gateway.notificaties`). Webhooks: every
agency's inbox (`agency.<code>.inbox`), as consumer group
`ketenbus-gateway`, kept as deliveries in the store for the agency's
subscriptions (`services.gateway.inbox`).

Produces: each event, unchanged and with its own Ed25519 signature, to
`agency.<code>.outbox`, keyed by its case id, so the router's checks
(signature, rights, minimisation, dedupe) stay the one gate. A Notificaties
message, which comes unsigned, as one `zgw-notificatie` event (`contracts.zgw`)
to the inbox of every agency whose registry subscription names that type, with
an audit record per copy on `ketenbus.audit` (the gateway is its gate, by the
token). Webhooks: each
delivery POSTed to its receiver (`services.gateway.dispatch`); one given up
after `KETENBUS_WEBHOOK_HORIZON` goes as it was to `ketenbus.dlq` (reason
`webhook-undeliverable`, `ketenbus-rejected-by: gateway`), with a
`delivery-failed` notice, as `urn:nld:oin:<operator OIN>:systeem:ketenbus-gateway`,
to the sender's inbox, and, when the event is a handoff request to the
receiver that none of its subscriptions delivered, the same notice to
`ketenbus.cases` (key = case id): the escalation service then expires and
escalates the handoff at once instead of at its deadline.

Guarantees:
- the answer comes after Kafka acknowledged every event of the request on
  every in-sync replica (`acks=all`): a 202 names events that are on the
  outbox, and anything else means none of the request was taken;
- a repeated event id is answered as accepted and not sent twice; the same
  id with other content is a 409; the same Notificaties message again is the
  same event, answered 201 again and delivered once;
- what the gateway refuses it says at once, as an RFC 9457 problem
  (`application/problem+json`): 400 an event that is not one, 401 no valid
  token, 403 an event of another agency, 413 over 64 KB an event, 415 another
  media type, 429 beyond the agency's rate (with `Retry-After`);
- webhooks at least once, in case order per case (receivers dedupe on
  `webhook-id`); the notice's id is derived from the event, so a give-up
  repeated after a crash is the same notice on the inbox and the case log.
"""
