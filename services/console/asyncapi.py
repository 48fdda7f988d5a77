"""The AsyncAPI 3.0.0 document of every service's channels, as JSON and as a local HTML page.

`GET /docs/asyncapi.json` is the document; `GET /docs/asyncapi` renders it
with the console's own template (FastStream's page loads its viewer from a
CDN; this one loads nothing from elsewhere). `ketenbus contracts asyncapi`
writes the same document. It is built by FastStream from never-started
brokers (`_asyncapi_spec`), so it needs no Kafka; then channel, operation,
message and schema ids are made what AsyncAPI 3 allows (`[A-Za-z0-9_-]`) and
the `{code}` of the agency channels is declared as a parameter whose values
are the registry's agency codes. Open without login: it holds no case data.
"""

from __future__ import annotations

import json
import re
from typing import Any

from faststream.specification import AsyncAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from contracts.channels import SERVICES
from contracts.registry import AgencyRegistry
from services.console._asyncapi_spec import service_broker
from services.console._templates import render
from services.console.state import console_of

TITLE = "Ketenbus"
VERSION = "1.0.0"
_SECTIONS = {"channels", "operations", "messages", "schemas"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


def _safe(key: str) -> str:
    return _UNSAFE.sub("_", key)


def _rename(node: Any, parent: str | None = None) -> Any:
    """Every id key under a section, and every `$ref` to one, with only allowed characters."""
    if isinstance(node, list):
        return [_rename(item) for item in node]
    if not isinstance(node, dict):
        return node
    renamed: dict[str, Any] = {}
    for key, value in node.items():
        new_key = _safe(key) if parent in _SECTIONS else key
        if key == "$ref" and isinstance(value, str):
            parts = value.split("/")
            renamed[key] = "/".join(
                _safe(part) if i and parts[i - 1] in _SECTIONS else part
                for i, part in enumerate(parts)
            )
        else:
            renamed[new_key] = _rename(value, key)
    return renamed


def asyncapi_document(
    registry: AgencyRegistry, bootstrap: str = "127.0.0.1:9092"
) -> dict[str, Any]:
    """The document of the router's, tracker's, escalation service's and console's channels."""
    brokers = [service_broker(service, bootstrap) for service in SERVICES]
    spec = AsyncAPI(
        *brokers,
        title=TITLE,
        version=VERSION,
        description=(
            "The channels of the Ketenbus services. Every message is one NL GOV CloudEvent "
            "(application/cloudevents+json), keyed by its case id."
        ),
        schema_version="3.0.0",
    )
    document: dict[str, Any] = _rename(json.loads(spec.to_specification().to_json()))
    codes = [agency.code for agency in registry.agencies]
    for channel in document.get("channels", {}).values():
        if "{code}" in channel.get("address", ""):
            channel["parameters"] = {
                "code": {"description": "The agency's code in the registry.", "enum": codes}
            }
    return document


def _document(request: Request) -> dict[str, Any]:
    cached: dict[str, Any] | None = getattr(request.app.state, "asyncapi", None)
    if cached is None:
        console = console_of(request)
        cached = request.app.state.asyncapi = asyncapi_document(console.registry, console.bootstrap)
    return cached


def channel_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per channel for the page: address, who sends or receives, payload schemas."""
    schemas = document.get("components", {}).get("schemas", {})
    messages = document.get("components", {}).get("messages", {})
    actions = {
        op["channel"]["$ref"].rsplit("/", 1)[-1]: op["action"]
        for op in document.get("operations", {}).values()
    }
    rows = []
    for name, channel in sorted(document.get("channels", {}).items()):
        payloads = []
        for ref in channel.get("messages", {}).values():
            message = messages.get(ref["$ref"].rsplit("/", 1)[-1], {})
            payload = message.get("payload", {})
            payloads.append(_payload_names(payload, schemas))
        rows.append(
            {
                "name": name,
                "address": channel.get("address", ""),
                "action": actions.get(name, ""),
                "description": channel.get("description", ""),
                "payloads": [n for names in payloads for n in names],
            }
        )
    return rows


def _payload_names(payload: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    """The component schema names a payload refers to (following one `anyOf` level)."""
    if "$ref" in payload:
        name = payload["$ref"].rsplit("/", 1)[-1]
        target = schemas.get(name, {})
        if target.get("anyOf") or target.get("oneOf") or "properties" not in target:
            return _payload_names(target, schemas)
        return [name]
    options = payload.get("anyOf") or payload.get("oneOf") or []
    names = [o["$ref"].rsplit("/", 1)[-1] for o in options if "$ref" in o]
    return names or [payload.get("format") or payload.get("type") or "any"]


async def asyncapi_json(request: Request) -> Response:
    return JSONResponse(_document(request))


async def asyncapi_page(request: Request) -> Response:
    document = _document(request)
    schemas = document.get("components", {}).get("schemas", {})
    return render(
        request,
        "asyncapi.html",
        {
            "info": document.get("info", {}),
            "version": document.get("asyncapi"),
            "servers": document.get("servers", {}),
            "channels": channel_rows(document),
            "schemas": {name: json.dumps(s, indent=2) for name, s in sorted(schemas.items())},
        },
    )


routes: list[BaseRoute] = [
    Route("/docs/asyncapi.json", asyncapi_json, methods=["GET"]),
    Route("/docs/asyncapi", asyncapi_page, methods=["GET"]),
]
