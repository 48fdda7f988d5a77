"""The AsyncAPI document of the services' channels: built without Kafka, served, and written."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from contracts import topics
from contracts.events import EVENT_CLASSES
from contracts.registry import AgencyRegistry
from services.cli import contracts_cmd
from services.console.asyncapi import asyncapi_document
from tests.services.console.conftest import ConsoleHarness

ID = re.compile(r"^[A-Za-z0-9_\-]+$")
"""AsyncAPI 3's pattern for channel, operation and component ids."""

BUS_CHANNELS = [*topics.BUS_TOPICS, topics.outbox("{code}"), topics.inbox("{code}")]
"""Every topic of DESIGN "Topics"; an agency's inbox and outbox as one parameterised channel."""


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _refs_resolve(document: dict[str, Any]) -> list[str]:
    """The `$ref`s that point nowhere in `document`."""
    dangling = []
    for key, value in _walk(document):
        if key != "$ref":
            continue
        node: Any = document
        for part in value.removeprefix("#/").split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            dangling.append(value)
    return dangling


def test_the_document_is_asyncapi_3_with_every_bus_topic_and_event_type(
    registry: AgencyRegistry,
) -> None:
    document = asyncapi_document(registry)

    assert "3.0.0" == document["asyncapi"]
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert set(BUS_CHANNELS) == addresses
    types = {value for key, value in _walk(document) if key == "const"}
    assert {f"nl.overheid.ketenzaken.{name}" for name in EVENT_CLASSES} <= types
    assert [] == _refs_resolve(document)
    for section in (
        document["channels"],
        document["operations"],
        document["components"]["messages"],
        document["components"]["schemas"],
    ):
        assert [] == [key for key in section if not ID.match(key)]


def test_each_service_receives_and_sends_on_its_channels_and_agency_channels_are_parameterised(
    registry: AgencyRegistry,
) -> None:
    document = asyncapi_document(registry)

    address = {name: channel["address"] for name, channel in document["channels"].items()}
    operations = {
        (name.split("-")[0], op["action"], address[op["channel"]["$ref"].split("/")[-1]])
        for name, op in document["operations"].items()
    }
    assert {
        ("router", "receive", "agency.{code}.outbox"),
        ("router", "send", topics.CASES),
        ("router", "send", "agency.{code}.inbox"),
        ("tracker", "receive", topics.CASES),
        ("escalation", "receive", topics.CASES),
        ("escalation", "send", topics.ESCALATIONS),
    } <= operations
    outbox = next(
        c for c in document["channels"].values() if c["address"] == "agency.{code}.outbox"
    )
    assert [a.code for a in registry.agencies] == outbox["parameters"]["code"]["enum"]


@pytest.mark.parametrize("output_format", ["json", "yaml"])
def test_the_cli_writes_the_document(
    tmp_path: Path, registry: AgencyRegistry, output_format: str
) -> None:
    out = tmp_path / f"asyncapi.{output_format}"

    # The verb's own typer app: the root callback would point the logs at the runner's stderr.
    result = CliRunner().invoke(
        contracts_cmd.app, ["asyncapi", "--out", str(out), "--format", output_format]
    )

    assert 0 == result.exit_code, result.output
    text = out.read_text(encoding="utf-8")
    written = json.loads(text) if output_format == "json" else yaml.safe_load(text)
    assert asyncapi_document(registry) == written


@pytest.mark.broker
async def test_the_console_serves_the_document_and_a_page_that_loads_nothing_from_elsewhere(
    console: ConsoleHarness,
) -> None:
    anonymous = console.client()

    document = await anonymous.get("/docs/asyncapi.json")
    page = await anonymous.get("/docs/asyncapi")

    assert 200 == document.status_code
    assert "3.0.0" == document.json()["asyncapi"]
    assert 200 == page.status_code
    assert page.headers["content-type"].startswith("text/html")
    for channel in BUS_CHANNELS:
        assert f'data-address="{channel}"' in page.text
    assert [] == re.findall(r"https?://[^\s\"'<>]+", page.text)
    assert [] == re.findall(r"(?:src|href)=\"//", page.text)
