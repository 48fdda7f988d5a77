"""The gateway's OpenAPI document: what a client generator, schemathesis and a reader see."""

from __future__ import annotations

from typing import Any

from contracts.envelope import MAX_EVENT_BYTES
from services.gateway.intake import BATCH, MAX_BATCH_EVENTS, STRUCTURED
from services.gateway.problems import MEDIA_TYPE as PROBLEM

_EVENT: dict[str, Any] = {
    "type": "object",
    "description": "A CloudEvents 1.0 event in the NL GOV profile, signed by its agency "
    "(`signingkey`, `signature`); see docs/contracts.md.",
    "required": ["specversion", "id", "source", "type", "subject", "time", "data"],
    "properties": {
        "specversion": {"const": "1.0"},
        "id": {"type": "string", "format": "uuid"},
        "source": {"type": "string", "pattern": "^urn:nld:oin:[0-9]{20}:systeem:"},
        "type": {"type": "string", "pattern": "^nl\\.overheid\\.ketenzaken\\."},
        "subject": {"type": "string", "format": "uuid"},
        "time": {"type": "string", "format": "date-time"},
        "data": {"type": "object"},
        "signingkey": {"type": "string"},
        "signature": {"type": "string"},
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
        "schemas": {"Event": _EVENT, "Problem": _PROBLEM_SCHEMA},
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
                        {"WWW-Authenticate": {"schema": {"type": "string"}}},
                    ),
                    "403": _problem("An event of another agency than the token's."),
                    "409": _problem("An event id taken before with other content."),
                    "413": _problem("An event over 64 KB, or a request over its limit."),
                    "415": _problem("Not a CloudEvents HTTP mode."),
                    "429": _problem(
                        "Beyond the agency's rate.",
                        {"Retry-After": {"schema": {"type": "integer"}}},
                    ),
                },
            }
        },
    },
}
