"""Shared fixtures: the registry, and the real embedded broker, started once per session.

The shared helpers' fixtures (tests/_testutil: the stores, the event factory, a producer)
are registered here for every test, as a plugin. Nothing here imports that package: a
module imported before pytest registers it would escape assertion rewriting.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from nacl.signing import SigningKey

from contracts.agency_client import AgencyKeys
from contracts.registry import AgencyRegistry
from services.runtime.config.registry import load_registry, with_signing_keys
from services.runtime.config.settings import Settings
from services.runtime.kafka.embedded import EMBEDDED_SESSION_TIMEOUT_MS, EmbeddedBroker, free_port
from services.runtime.kafka.topics import bus_topics, ensure_topics

pytest_plugins = ["tests._testutil"]

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


TEST_KEY_SEED = b"ketenbus-test-key:"
"""Prefix of the public seed the test key pairs are derived from (see `agency_keys`)."""


def _derived_keys(code: str) -> AgencyKeys:
    """Agency `code`'s test key pair: SHA-256 of TEST_KEY_SEED + code as the Ed25519 seed."""
    return AgencyKeys(code, SigningKey(hashlib.sha256(TEST_KEY_SEED + code.encode()).digest()))


@pytest.fixture(scope="session")
def agency_keys(registry: AgencyRegistry) -> dict[str, AgencyKeys]:
    """One key pair per agency of deploy/agencies.yaml, by agency code.

    TEST KEYS, PUBLIC BY CONSTRUCTION: each private key is derived from a seed
    written in this file, so anyone can recompute it. They prove nothing outside
    the tests and must never be put in a real registry.
    """
    return {agency.code: _derived_keys(agency.code) for agency in registry.agencies}


@pytest.fixture(scope="session")
def signed_registry(registry: AgencyRegistry, agency_keys: dict[str, AgencyKeys]) -> AgencyRegistry:
    """The registry with every agency's test public key as its `signing_key`."""
    return with_signing_keys(
        registry, {code: keys.public_key for code, keys in agency_keys.items()}
    )


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """Whatever a test does to logging (a CLI verb run in-process configures it) is undone
    after it: a later test's `capture_logs` sees the loggers it expects."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
