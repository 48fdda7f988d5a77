"""Shared fixtures: the registry, and the real embedded broker, started once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.registry import AgencyRegistry
from services.runtime.embedded import EMBEDDED_SESSION_TIMEOUT_MS, EmbeddedBroker, free_port
from services.runtime.registry_file import load_registry
from services.runtime.settings import Settings
from services.runtime.topics import bus_topics, ensure_topics

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def registry() -> AgencyRegistry:
    return load_registry(REPO / "deploy" / "agencies.yaml")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(
        registry=REPO / "deploy" / "agencies.yaml",
        kafka_session_timeout_ms=EMBEDDED_SESSION_TIMEOUT_MS,
    )


@pytest.fixture(scope="session")
def embedded_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(free_port()) as broker:
        yield broker


@pytest.fixture(scope="session")
async def kafka(embedded_broker: EmbeddedBroker, registry: AgencyRegistry) -> str:
    """The bootstrap address of a running broker with every bus topic created."""
    await ensure_topics(embedded_broker.bootstrap, bus_topics(registry), partitions=3)
    return embedded_broker.bootstrap
