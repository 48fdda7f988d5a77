"""The gateway's OpenAPI document: what a client generator, schemathesis and a reader see."""

from __future__ import annotations

from typing import Any

from contracts.envelope import MAX_EVENT_BYTES
from contracts.schemas import Envelope
from contracts.zgw import NotificatieMessage
from services.gateway.intake import BATCH, MAX_BATCH_EVENTS, STRUCTURED
from services.gateway.problems import MEDIA_TYPE as PROBLEM
from services.gateway.subscriptions_api import NewSubscription


def _event() -> tuple[dict[str, Any], dict[str, Any]]:
    """The envelope as the gateway parses it, and the schemas it refers to.

    Made from the contract's own model (`contracts/schemas/envelope.json` is the
    same), so the document cannot drift from what `POST /v1/events` takes: every
    attribute the envelope requires, no others. What `data` holds is up to each
    event type's schema (`contracts/schemas/<type>.json`).
    """
    schema = Envelope.model_json_schema(ref_template="#/components/schemas/{model}")
    referred: dict[str, Any] = schema.pop("$defs", {})
    schema["description"] = (
        "A CloudEvents 1.0 event in the NL GOV profile, signed by its agency "
        "(`signingkey`, `signature`); `data` as its type's schema in contracts/schemas/ "
        "says. See docs/contracts.md."
    )
    return schema, referred


_EVENT, _EVENT_REFERRED = _event()

_NOT_IN_HEADERS = frozenset({"data", "datacontenttype"})
"""In binary mode the body is the data, and its Content-Type the datacontenttype."""


def _binary_headers() -> list[dict[str, Any]]:
    """Binary mode's `ce-*` headers, one per attribute: the value percent-encoded."""
    headers = []
    for name, attribute in _EVENT["properties"].items():
        if name in _NOT_IN_HEADERS:
            continue
        # A nullable attribute is an absent header; a header is never JSON null.
        schema = next(
            (s for s in attribute.get("anyOf", [attribute]) if s.get("type") != "null"),
            attribute,
        )
        headers.append(
            {
                "name": f"ce-{name}",
                "in": "header",
                "required": False,
                "description": f"binary mode (Content-Type application/json): the event's "
                f"`{name}`, percent-encoded, required as the Event schema says; not read in "
                "the other modes",
                "schema": {k: v for k, v in schema.items() if k not in {"title", "default"}},
            }
        )
    return headers


def _model(model: Any, *, by_alias: bool = True) -> dict[str, Any]:
    """A request model's JSON Schema, as the endpoint validates with it (no $defs in these)."""
    schema: dict[str, Any] = model.model_json_schema(by_alias=by_alias)
    schema.pop("title", None)
    return schema


_NOTIFICATIE = _model(NotificatieMessage)
_NOTIFICATIE["description"] = (
    "A Notificaties API 1.0 `Notificatie`, as Open Zaak and other ZGW systems send it to a "
    "Notificaties component."
)
_NEW_SUBSCRIPTION = _model(NewSubscription)
_SUBSCRIPTION: dict[str, Any] = {
    "type": "object",
    "required": ["id", "agency", "callbackUrl", "types", "channels", "format", "status"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "agency": {"type": "string"},
        "callbackUrl": {"type": "string"},
        "types": {"type": "array", "items": {"type": "string"}},
        "channels": {"type": "array", "items": {"type": "string"}},
        "format": {"enum": ["cloudevents", "notificaties"]},
        "purpose": {"type": ["string", "null"]},
        "legalBasis": {"type": ["string", "null"]},
        "status": {"enum": ["active", "ended"]},
        "createdAt": {"type": "string", "format": "date-time"},
        "endedAt": {"type": ["string", "null"], "format": "date-time"},
        "endReason": {"type": ["string", "null"]},
        "signingSecret": {
            "type": "string",
            "description": "The Standard Webhooks secret: in the answer to POST only, once.",
        },
    },
}

_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "reason_code": {"type": "string"},
                    "field": {"type": "string"},
                    "detail": {"type": "string"},
                },
            },
        },
        "invalidParams": {
            "type": "array",
            "description": "Notificaties: each field that is wrong, as ZGW APIs name them.",
            "items": {
                "type": "object",
                "required": ["name", "code", "reason"],
                "properties": {
                    "name": {"type": "string"},
                    "code": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
        },
    },
}


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if headers:
        answer["headers"] = headers
    return answer


_UNAUTHENTICATED = _problem(
    "No valid token.", {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}}
)
_RATE = _problem(
    "Beyond the agency's rate.",
    {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}},
)


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Ketenbus HTTP gateway",
        "version": "1.0.0",
        "description": "CloudEvents in over HTTP for agency systems that do not speak Kafka. "
        "Every event goes, unchanged, to the agency's outbox topic and is checked there by "
        "the router like any other.",
    },
    "components": {
        "securitySchemes": {"agencyToken": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Event": _EVENT,
            **_EVENT_REFERRED,
            "Problem": _PROBLEM_SCHEMA,
            "Notificatie": _NOTIFICATIE,
            "NewSubscription": _NEW_SUBSCRIPTION,
            "Subscription": _SUBSCRIPTION,
        },
    },
    "security": [{"agencyToken": []}],
    "paths": {
        "/v1/events": {
            "post": {
                "operationId": "sendEvents",
                "summary": "Send one event (structured or binary mode) or a batch",
                "description": f"At most {MAX_EVENT_BYTES} bytes an event and "
                f"{MAX_BATCH_EVENTS} events a batch. Answered once Kafka acknowledged every "
                "event on every in-sync replica.",
                "parameters": _binary_headers(),
                "requestBody": {
                    "required": True,
                    "content": {
                        STRUCTURED: {"schema": {"$ref": "#/components/schemas/Event"}},
                        BATCH: {
                            "schema": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Event"},
                                "maxItems": MAX_BATCH_EVENTS,
                            }
                        },
                        "application/json": {
                            "schema": {"type": "object"},
                            "description": "binary mode: the data, with the attributes in "
                            "ce-* headers",
                        },
                    },
                },
                "responses": {
                    "202": {
                        "description": "Every event is on the agency's outbox.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["accepted", "repeated"],
                                    "properties": {
                                        "accepted": {
                                            "type": "array",
                                            "items": {"type": "string", "format": "uuid"},
                                        },
                                        "repeated": {
                                            "type": "array",
                                            "items": {"type": "string", "format": "uuid"},
                                            "description": "taken before; not sent again",
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "400": _problem("An event that is not one; `errors` names each."),
                    "401": _UNAUTHENTICATED,
                    "403": _problem("An event of another agency than the token's."),
                    "409": _problem("An event id taken before with other content."),
                    "413": _problem("An event over 64 KB, or a request over its limit."),
                    "415": _problem("Not a CloudEvents HTTP mode."),
                    "429": _RATE,
                },
            }
        },
        "/api/v1/notificaties": {
            "post": {
                "operationId": "notificatieCreate",
                "summary": "Notify the bus as a Notificaties component (NRC) is notified",
                "description": "From a ZGW system of an agency the registry lets emit "
                "zgw-notificatie. Delivered as that event to every subscribing agency's inbox "
                "before the answer; the same message again is answered again, delivered once.",
                "requestBody": {
                    "required": True,
                    "content": _json({"$ref": "#/components/schemas/Notificatie"}),
                },
                "responses": {
                    "201": {
                        "description": "On the bus: the message, as a Notificaties component "
                        "answers.",
                        "headers": {
                            "Ketenbus-Event-Id": {
                                "required": True,
                                "schema": {"type": "string", "format": "uuid"},
                            }
                        },
                        "content": _json({"$ref": "#/components/schemas/Notificatie"}),
                    },
                    "400": _problem("Not a Notificaties message; `invalidParams` names why."),
                    "401": _UNAUTHENTICATED,
                    "403": _problem("The token's agency may not send Notificaties messages."),
                    "413": _problem("A message over 64 KB."),
                    "415": _problem("Not application/json."),
                    "429": _RATE,
                },
            }
        },
        "/v1/subscriptions": {
            "post": {
                "operationId": "subscribe",
                "summary": "Have the agency's inbox POSTed to a callback",
                "description": "The callback must pass the abuse-protection handshake "
                "(OPTIONS with WebHook-Request-Origin) first.",
                "requestBody": {
                    "required": True,
                    "content": _json({"$ref": "#/components/schemas/NewSubscription"}),
                },
                "responses": {
                    "201": {
                        "description": "Made; `signingSecret` is shown this once.",
                        "content": _json({"$ref": "#/components/schemas/Subscription"}),
                    },
                    "400": _problem("An invalid subscription, or a refused handshake."),
                    "401": _UNAUTHENTICATED,
                },
            },
            "get": {
                "operationId": "listSubscriptions",
                "summary": "The agency's own subscriptions",
                "responses": {
                    "200": {
                        "description": "Oldest first; no credentials.",
                        "content": _json(
                            {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Subscription"},
                            }
                        ),
                    },
                    "401": _UNAUTHENTICATED,
                },
            },
        },
        "/v1/subscriptions/{id}": {
            "delete": {
                "operationId": "endSubscription",
                "summary": "End one of the agency's subscriptions",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "204": {"description": "Ended; what it still had to deliver is dropped."},
                    "401": _UNAUTHENTICATED,
                    "404": _problem("No subscription of this agency by that id."),
                },
            }
        },
    },
}
