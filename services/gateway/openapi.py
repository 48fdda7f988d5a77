"""The gateway's OpenAPI document: what a client generator, schemathesis and a reader see."""

from __future__ import annotations

from typing import Any

from contracts.envelope import MAX_EVENT_BYTES
from contracts.schemas import Envelope
from services.gateway.intake import BATCH, MAX_BATCH_EVENTS, STRUCTURED
from services.gateway.problems import MEDIA_TYPE as PROBLEM


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
        "schemas": {"Event": _EVENT, **_EVENT_REFERRED, "Problem": _PROBLEM_SCHEMA},
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
                    "401": _problem(
                        "No valid token.",
                        {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
                    ),
                    "403": _problem("An event of another agency than the token's."),
                    "409": _problem("An event id taken before with other content."),
                    "413": _problem("An event over 64 KB, or a request over its limit."),
                    "415": _problem("Not a CloudEvents HTTP mode."),
                    "429": _problem(
                        "Beyond the agency's rate.",
                        {
                            "Retry-After": {
                                "required": True,
                                "schema": {"type": "integer", "minimum": 1},
                            }
                        },
                    ),
                },
            }
        },
    },
}
