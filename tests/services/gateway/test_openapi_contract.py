"""The gateway against its own OpenAPI document, by schemathesis (issue 19).

Schemathesis reads the document the gateway serves at `/openapi.json` and
generates requests from it, valid and invalid; each answer must be one the
document names (its status, content type, required headers and body schema),
none a 5xx, and a request the document calls invalid must be refused.

The gateway runs under uvicorn on a loopback port in the test's event loop,
where its broker and store live; schemathesis's calls block, so they go out from
a worker thread and the loop stays free to answer them. A subscription's
handshake calls the generated callback URL: the gateway's outgoing client here is
a stand-in for every receiver that answers the handshake and nothing else, so no
call leaves the machine.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckFunction, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.agency_client import AgencyKeys
from contracts.parse import read_json
from contracts.registry import AgencyRegistry
from services.gateway import tokens
from services.gateway.app import create_gateway
from services.gateway.intake import BATCH, STRUCTURED
from services.gateway.openapi import DOCUMENT
from services.runtime.config.settings import Settings
from services.runtime.kafka.clients import make_broker
from services.runtime.kafka.embedded import free_port
from services.runtime.process.http import http_server
from tests._testutil import EventFactory

pytestmark = pytest.mark.broker

OPERATIONS = [(path, method.upper()) for path, item in DOCUMENT["paths"].items() for method in item]
REFUSALS = sorted(
    {
        code
        for item in DOCUMENT["paths"].values()
        for operation in item.values()
        for code in operation["responses"]
        if code.startswith("4")
    }
)
"""Every refusal the document names: an invalid request must get one of these."""

CONFIG = schemathesis.Config.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}}}
)
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _bounded(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


@pytest.fixture
async def served(
    kafka: str, settings: Settings, signed_registry: AgencyRegistry, store: AsyncEngine
) -> AsyncIterator[str]:
    """The gateway's base URL on 127.0.0.1, at a rate no generated request reaches: each
    request gets as far into the gateway as its content lets it."""
    roomy = settings.model_copy(update={"gateway_rate": 1e6, "gateway_burst": 10**6})
    broker = make_broker(roomy, kafka, client_id="ketenbus-gateway-contract")
    await broker.start()
    port = free_port()
    receivers = httpx.AsyncClient(transport=httpx.MockTransport(_every_receiver))
    app = create_gateway(roomy, signed_registry, store, broker, client=receivers)
    server = http_server(app, "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    try:
        deadline = time.monotonic() + 10
        # uvicorn sets a flag, not an event, once it listens: poll it, bounded.
        while not server.started and time.monotonic() < deadline:
            assert not serving.done(), "the gateway did not start"
            await asyncio.sleep(0.05)
        assert server.started, "the gateway did not listen within 10 s"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        await receivers.aclose()
        await broker.stop()


def _every_receiver(request: httpx.Request) -> httpx.Response:
    """Any callback, as a receiver that allows the bus in the handshake (and is sent nothing
    else: no dispatcher runs here)."""
    assert "OPTIONS" == request.method, f"{request.method} {request.url} was not expected"
    return httpx.Response(200, headers={"WebHook-Allowed-Origin": "ketenbus"})


@pytest.fixture
async def schema(served: str) -> OpenApiSchema:
    """The document as the gateway serves it, loaded by schemathesis."""
    url = f"{served}/openapi.json"
    return await asyncio.to_thread(lambda: schemathesis.openapi.from_url(url, config=CONFIG))


def _fuzz(
    schema: OpenApiSchema,
    mode: GenerationMode,
    examples: int,
    base_url: str,
    headers: dict[str, str],
    path: str = "/v1/events",
    method: str = "POST",
) -> Callable[[], None]:
    """`examples` requests to the operation generated in `mode`, each checked."""
    operation = schema[path][method]

    @_bounded(examples)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

    return run


async def test_the_gateway_serves_the_document_in_the_source(served: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{served}/openapi.json")

    assert 200 == response.status_code
    assert "application/json" == response.headers["content-type"]
    assert DOCUMENT == response.json()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
async def test_any_event_request_with_a_valid_token_is_answered_as_documented_never_5xx(
    schema: OpenApiSchema, served: str, uwv_token: str, mode: GenerationMode
) -> None:
    """POST /v1/events as uwv: whatever is generated is answered as the document says."""
    authorised = {"Authorization": f"Bearer {uwv_token}"}

    await asyncio.to_thread(_fuzz(schema, mode, 60, served, authorised))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
async def test_notificaties_and_subscriptions_of_a_zgw_system_are_answered_as_documented(
    schema: OpenApiSchema, served: str, store: AsyncEngine, mode: GenerationMode
) -> None:
    """Every operation but /v1/events, as gm0363 (which may send Notificaties messages): a
    generated message is 201 or a documented refusal, a subscription 201 or 400, never 5xx."""
    authorised = {"Authorization": f"Bearer {await tokens.issue(store, 'gm0363', 'zgw')}"}
    others = [(path, method) for path, method in OPERATIONS if path != "/v1/events"]

    for path, method in others:
        await asyncio.to_thread(_fuzz(schema, mode, 25, served, authorised, path, method))


async def test_any_request_without_a_valid_token_is_a_documented_401_never_5xx(
    schema: OpenApiSchema, served: str
) -> None:
    """Every operation, both modes, no token: 401 as documented."""
    for path, method in OPERATIONS:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            await asyncio.to_thread(_fuzz(schema, mode, 15, served, {}, path, method))


def _signed_case(schema: OpenApiSchema, mode: str, events: list[dict[str, Any]]) -> Case:
    """The case that sends `events` in `mode`: structured (one), batch, or binary (one)."""
    operation = schema["/v1/events"]["POST"]
    if mode == "batch":
        return operation.Case(media_type=BATCH, body=events)
    (event,) = events
    if mode == "structured":
        return operation.Case(media_type=STRUCTURED, body=event)
    # Binary mode as the CloudEvents HTTP binding has it: each attribute a percent-encoded
    # header, the data the body.
    attributes = {
        f"ce-{name}": quote(str(value), safe="")
        for name, value in event.items()
        if name not in {"data", "datacontenttype"}
    }
    return operation.Case(media_type="application/json", body=event["data"], headers=attributes)


async def test_events_the_agency_signed_are_answered_202_as_documented_and_again_as_repeated(
    schema: OpenApiSchema,
    served: str,
    uwv_token: str,
    make: EventFactory,
    agency_keys: dict[str, AgencyKeys],
) -> None:
    authorised = {"Authorization": f"Bearer {uwv_token}"}
    keys = agency_keys["uwv"]

    def signed() -> dict[str, Any]:
        document: dict[str, Any] = read_json(
            keys.sign(make.opened(uuid.uuid4(), by="uwv").to_json())
        )
        return document

    @_bounded(15)
    @given(
        mode=st.sampled_from(["structured", "batch", "binary"]),
        count=st.integers(1, 3),
        again=st.booleans(),
    )
    def one(mode: str, count: int, again: bool) -> None:
        events = [signed() for _ in range(count if mode == "batch" else 1)]
        ids = [event["id"] for event in events]
        for repeated in [[], ids] if again else [[]]:
            case = _signed_case(schema, mode, events)
            response = case.call_and_validate(
                base_url=served, headers=authorised, checks=[*CHECKS, ignored_auth]
            )
            assert 202 == response.status_code, response.text
            assert {"accepted": ids, "repeated": repeated} == response.json()

    await asyncio.to_thread(one)


BINARY = {"ce-specversion": "1.0", "ce-id": str(uuid.UUID(int=1))}
DEEP = 1000
"""Deeper than the standard library's JSON encoder recurses, within what orjson reads."""
REVIEWED: dict[str, tuple[str, dict[str, str], bytes]] = {
    # Each once a 500: what read_json takes and json.dumps then could not write.
    "a lone surrogate in a batch": (BATCH, {}, b'[{"specversion": "1.0", "id": "\\ud800"}]'),
    "a lone surrogate in binary data": ("application/json", BINARY, b'{"note": "\\ud800"}'),
    "a batch nested 1000 deep": (BATCH, {}, b"[" + b"[" * DEEP + b"]" * DEEP + b"]"),
    "binary data nested 1000 deep": ("application/json", BINARY, b"[" * DEEP + b"]" * DEEP),
    # Each once a 500: digits to str.isdigit that int() does not read.
    "a superscript two as ce-sequence": ("application/json", {**BINARY, "ce-sequence": "²"}, b"{}"),
    "a superscript two, percent-encoded": (
        "application/json",
        {**BINARY, "ce-sequence": "%C2%B2"},
        b"{}",
    ),
    "5000 digits as ce-sequence": (
        "application/json",
        {**BINARY, "ce-sequence": "1" * 5000},
        b"{}",
    ),
}


@pytest.mark.parametrize("found", list(REVIEWED))
async def test_inputs_beyond_the_generated_ones_are_refused_400_as_documented(
    schema: OpenApiSchema, served: str, uwv_token: str, found: str
) -> None:
    media, headers, body = REVIEWED[found]
    case = schema["/v1/events"]["POST"].Case(media_type=media, headers=headers, body=body)

    def call() -> Any:
        authorised = {"Authorization": f"Bearer {uwv_token}"}
        return case.call_and_validate(base_url=served, headers=authorised, checks=CHECKS)

    response = await asyncio.to_thread(call)

    assert 400 == response.status_code, response.text
    assert "invalid-event" in response.json()["type"]
