"""Every raw aiokafka client the bus creates connects as the configured SASL user.

No SASL broker is available (the embedded broker speaks PLAINTEXT), so the
client classes are replaced by recorders of the keyword arguments they are
built with.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from aiokafka import TopicPartition

from services.console import health as console_health
from services.console import state as console_state
from services.console.app import create_console
from services.console.health import BusHealth
from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from services.runtime.kafka import clients as kafka
from services.runtime.kafka import topics
from services.runtime.kafka.clients import broker_security, client_security
from services.runtime.process import service
from services.simulation import bus as simulation_bus
from services.simulation import buslog
from services.simulation.bus import Bus, position_groups, run_bus
from services.simulation.buslog import end_offsets, read_topics

PASSWORD = "s3cret-not-for-logs"
BOOTSTRAP = "kafka-1:9092"
SECURITY_KEYS = ("security_protocol", "sasl_mechanism", "sasl_plain_username")
SASL_ENVIRONMENT = {
    "KETENBUS_KAFKA_BOOTSTRAP": BOOTSTRAP,
    "KETENBUS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "KETENBUS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KETENBUS_KAFKA_SASL_USERNAME": "ketenbus-init",
    "KETENBUS_KAFKA_SASL_PASSWORD": PASSWORD,
}


def _sasl(**overrides: Any) -> Settings:
    values = {
        "kafka_bootstrap": BOOTSTRAP,
        "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_username": "ketenbus-console",
        "kafka_sasl_password": PASSWORD,
        **overrides,
    }
    return Settings.model_validate(values)


def _security_of(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The security options among a client's keyword arguments."""
    return {key: value for key, value in kwargs.items() if key.startswith(("security", "sasl"))}


class Recorded:
    """The keyword arguments of every client built while a test runs."""

    def __init__(self) -> None:
        self.kwargs: list[dict[str, Any]] = []
        self.topics = {"ketenbus.cases"}

    def client(self) -> type[Any]:
        recorded = self

        class Client:
            def __init__(self, *_: Any, **kwargs: Any) -> None:
                recorded.kwargs.append(kwargs)

            async def start(self) -> None:
                pass

            async def stop(self) -> None:
                pass

            async def close(self) -> None:
                pass

            async def bootstrap(self) -> None:
                pass

            async def list_topics(self) -> list[str]:
                return sorted(recorded.topics)

            async def create_topics(self, new: list[Any]) -> None:
                recorded.topics |= {topic.name for topic in new}

            async def describe_cluster(self) -> dict[str, Any]:
                return {}

            async def topics(self) -> set[str]:
                return set()

            def partitions_for_topic(self, _: str) -> set[int]:
                return set()

            def assign(self, _: list[TopicPartition]) -> None:
                pass

            async def seek_to_beginning(self, *_: TopicPartition) -> None:
                pass

            async def getmany(self, **_: Any) -> dict[TopicPartition, list[Any]]:
                return {}

            async def commit(self, _: dict[TopicPartition, int]) -> None:
                pass

        return Client


@pytest.fixture
def recorded() -> Recorded:
    return Recorded()


@pytest.fixture
def sasl_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SASL_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)


# ensure_topics and `python -m services.runtime.kafka.topics`


async def test_ensure_topics_starts_its_admin_client_as_the_sasl_user(
    monkeypatch: pytest.MonkeyPatch, recorded: Recorded
) -> None:
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", recorded.client())
    settings = _sasl()

    await topics.ensure_topics(BOOTSTRAP, ["ketenbus.cases"], partitions=3, settings=settings)

    assert [client_security(settings)] == [_security_of(kwargs) for kwargs in recorded.kwargs]


async def test_ensure_topics_over_sasl_ssl_passes_a_tls_context(
    monkeypatch: pytest.MonkeyPatch, recorded: Recorded
) -> None:
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", recorded.client())

    await topics.ensure_topics(
        BOOTSTRAP,
        ["ketenbus.cases"],
        partitions=3,
        settings=_sasl(kafka_security_protocol="SASL_SSL"),
    )

    assert "SASL_SSL" == recorded.kwargs[0]["security_protocol"]
    assert "ssl_context" in recorded.kwargs[0]


async def test_ensure_topics_without_settings_connects_plaintext(
    monkeypatch: pytest.MonkeyPatch, recorded: Recorded
) -> None:
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", recorded.client())

    await topics.ensure_topics(BOOTSTRAP, ["ketenbus.cases"], partitions=3)

    assert [{}] == [_security_of(kwargs) for kwargs in recorded.kwargs]


async def test_ensure_topics_with_sasl_but_no_password_is_a_user_error_before_connecting(
    monkeypatch: pytest.MonkeyPatch, recorded: Recorded
) -> None:
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", recorded.client())

    with pytest.raises(UserError, match="KETENBUS_KAFKA_SASL_PASSWORD"):
        await topics.ensure_topics(
            BOOTSTRAP, ["ketenbus.cases"], partitions=3, settings=_sasl(kafka_sasl_password=None)
        )
    assert [] == recorded.kwargs


@pytest.mark.usefixtures("sasl_environment")
def test_the_topics_entry_point_connects_as_the_user_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, recorded: Recorded
) -> None:
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", recorded.client())
    monkeypatch.setattr("services.runtime.observability.logging.configure", lambda *_: None)
    monkeypatch.setattr("sys.argv", ["topics"])

    topics.main()

    assert 1 == len(recorded.kwargs)
    assert ("SASL_PLAINTEXT", "SCRAM-SHA-512", "ketenbus-init", PASSWORD) == (
        recorded.kwargs[0]["security_protocol"],
        recorded.kwargs[0]["sasl_mechanism"],
        recorded.kwargs[0]["sasl_plain_username"],
        recorded.kwargs[0]["sasl_plain_password"],
    )


@pytest.mark.usefixtures("sasl_environment")
def test_the_topics_entry_point_without_a_password_ends_with_one_line(
    monkeypatch: pytest.MonkeyPatch, recorded: Recorded
) -> None:
    monkeypatch.delenv("KETENBUS_KAFKA_SASL_PASSWORD")
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", recorded.client())
    monkeypatch.setattr("services.runtime.observability.logging.configure", lambda *_: None)
    monkeypatch.setattr("sys.argv", ["topics"])

    with pytest.raises(SystemExit) as exited:
        topics.main()

    assert "KETENBUS_KAFKA_SASL_PASSWORD" in str(exited.value.code)
    assert [] == recorded.kwargs


# The console's health check


async def test_the_health_check_admin_client_connects_as_the_sasl_user(
    monkeypatch: pytest.MonkeyPatch, recorded: Recorded
) -> None:
    monkeypatch.setattr(console_health, "AIOKafkaAdminClient", recorded.client())
    settings = _sasl()
    health = BusHealth(BOOTSTRAP, {}, settings=settings)

    try:
        state = await health.broker_state()
    finally:
        await health.close()

    assert "up" == state["state"]
    assert [client_security(settings)] == [_security_of(kwargs) for kwargs in recorded.kwargs]


async def test_the_health_check_without_settings_connects_plaintext(
    monkeypatch: pytest.MonkeyPatch, recorded: Recorded
) -> None:
    monkeypatch.setattr(console_health, "AIOKafkaAdminClient", recorded.client())
    health = BusHealth(BOOTSTRAP, {})

    try:
        await health.broker_state()
    finally:
        await health.close()

    assert [{}] == [_security_of(kwargs) for kwargs in recorded.kwargs]


async def test_the_console_producer_and_healthz_connect_as_the_sasl_user(
    monkeypatch: pytest.MonkeyPatch, recorded: Recorded, tmp_path: Path
) -> None:
    monkeypatch.setattr(console_health, "AIOKafkaAdminClient", recorded.client())
    monkeypatch.setattr(console_state, "AIOKafkaProducer", recorded.client())
    settings = _sasl(data_dir=tmp_path)
    app = create_console(settings, bootstrap=BOOTSTRAP, health_targets={})

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://console"
        ) as client,
    ):
        await app.state.console.started_producer()
        response = await client.get("/healthz")

    assert 200 == response.status_code
    assert [client_security(settings)] * 2 == [_security_of(kw) for kw in recorded.kwargs]


def test_a_console_with_sasl_but_no_username_is_a_user_error() -> None:
    with pytest.raises(UserError, match="KETENBUS_KAFKA_SASL_USERNAME"):
        create_console(_sasl(kafka_sasl_username=None), bootstrap=BOOTSTRAP, health_targets={})


# A service's start-up reachability check


class _Broker:
    started = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        pass


async def test_a_service_checks_kafka_as_the_sasl_user_before_starting_its_broker(
    monkeypatch: pytest.MonkeyPatch, recorded: Recorded
) -> None:
    monkeypatch.setattr(kafka, "AIOKafkaClient", recorded.client())
    settings = _sasl(kafka_sasl_username="ketenbus-router")
    broker = _Broker()

    await service._start_with_retry("router", broker, settings, asyncio.Event())  # type: ignore[arg-type]

    assert broker.started
    assert [client_security(settings)] == [_security_of(kwargs) for kwargs in recorded.kwargs]


# The simulation's own clients on a configured cluster


async def test_the_simulation_reads_the_bus_as_the_sasl_user(
    monkeypatch: pytest.MonkeyPatch, recorded: Recorded
) -> None:
    monkeypatch.setattr(buslog, "AIOKafkaConsumer", recorded.client())
    settings = _sasl(kafka_sasl_username="ketenbus-simulation")

    await end_offsets(BOOTSTRAP, [], settings=settings)
    await read_topics(BOOTSTRAP, [], settings=settings)

    assert 2 * [client_security(settings)] == [_security_of(k) for k in recorded.kwargs]


async def test_the_simulation_positions_its_groups_as_the_sasl_user(
    monkeypatch: pytest.MonkeyPatch, recorded: Recorded
) -> None:
    monkeypatch.setattr(simulation_bus, "AIOKafkaConsumer", recorded.client())
    settings = _sasl(kafka_sasl_username="ketenbus-simulation")
    start = {TopicPartition("ketenbus.cases", 0): 7}
    bus = Bus(BOOTSTRAP, settings, private=False, start=start)

    await position_groups(bus, {"ketenbus-simulation-1-tracker": ["ketenbus.cases"]})

    assert [client_security(settings)] == [_security_of(k) for k in recorded.kwargs]


async def test_the_simulation_on_a_configured_cluster_passes_its_settings_to_every_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    given: dict[str, Settings | None] = {}

    async def unreachable(_: str, *, settings: Settings | None = None) -> None:
        given["kafka_unreachable"] = settings

    async def ensure(*_: Any, settings: Settings | None = None, **__: Any) -> None:
        given["ensure_topics"] = settings

    async def offsets(*_: Any, settings: Settings | None = None, **__: Any) -> dict[Any, int]:
        given["end_offsets"] = settings
        return {}

    monkeypatch.setattr(simulation_bus, "kafka_unreachable", unreachable)
    monkeypatch.setattr(simulation_bus, "ensure_topics", ensure)
    monkeypatch.setattr(simulation_bus, "end_offsets", offsets)
    monkeypatch.setattr(simulation_bus, "bus_topics", lambda _: ["ketenbus.cases"])
    settings = _sasl()

    async with run_bus(settings, None) as bus:  # type: ignore[arg-type]
        assert settings == bus.settings

    assert {
        "kafka_unreachable": settings,
        "ensure_topics": settings,
        "end_offsets": settings,
    } == given


# A private CA (KETENBUS_KAFKA_SSL_CAFILE), as docker-compose.yml's brokers have

PRIVATE_CA = "Ketenbus test CA"


@pytest.fixture
def private_ca(tmp_path: Path) -> Path:
    """A self-signed CA certificate (PEM) whose subject names it."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cafile = tmp_path / "ca.crt"
    command = (
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1"
        f" -keyout {shlex.quote(str(tmp_path / 'ca.key'))} -out {shlex.quote(str(cafile))}"
        f" -subj '/CN={PRIVATE_CA}'"
        " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign"
    )
    subprocess.run(shlex.split(command), check=True, capture_output=True)
    return cafile


def _trusted(context: ssl.SSLContext) -> list[str]:
    """The common names of the CA certificates a context trusts."""
    subjects = [
        cast("tuple[tuple[tuple[str, str], ...], ...]", certificate["subject"])
        for certificate in context.get_ca_certs()
    ]
    return [
        value
        for subject in subjects
        for rdn in subject
        for key, value in rdn
        if key == "commonName"
    ]


def test_the_cafile_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, private_ca: Path
) -> None:
    monkeypatch.setenv("KETENBUS_KAFKA_SSL_CAFILE", str(private_ca))

    assert private_ca == Settings().kafka_ssl_cafile


def test_sasl_ssl_with_a_cafile_trusts_that_ca_alone_and_checks_the_host_name(
    private_ca: Path,
) -> None:
    settings = _sasl(kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=private_ca)

    context = client_security(settings)["ssl_context"]

    assert [PRIVATE_CA] == _trusted(context)
    assert ssl.CERT_REQUIRED == context.verify_mode
    assert context.check_hostname


def test_the_faststream_broker_trusts_the_same_cafile(private_ca: Path) -> None:
    settings = _sasl(kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=private_ca)

    security = broker_security(settings)

    assert security is not None
    assert security.use_ssl
    assert security.ssl_context is not None
    assert [PRIVATE_CA] == _trusted(security.ssl_context)
    assert security.ssl_context.check_hostname


def test_sasl_ssl_without_a_cafile_uses_the_system_ca_bundle() -> None:
    context = client_security(_sasl(kafka_security_protocol="SASL_SSL"))["ssl_context"]

    assert PRIVATE_CA not in _trusted(context)
    assert ssl.CERT_REQUIRED == context.verify_mode


def test_the_cafile_is_unused_without_tls(private_ca: Path) -> None:
    settings = _sasl(kafka_security_protocol="SASL_PLAINTEXT", kafka_ssl_cafile=private_ca)

    assert "ssl_context" not in client_security(settings)
    security = broker_security(settings)
    assert security is not None
    assert not security.use_ssl


async def test_ensure_topics_over_sasl_ssl_checks_the_brokers_against_the_cafile(
    monkeypatch: pytest.MonkeyPatch, recorded: Recorded, private_ca: Path
) -> None:
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", recorded.client())
    settings = _sasl(kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=private_ca)

    await topics.ensure_topics(BOOTSTRAP, ["ketenbus.cases"], partitions=3, settings=settings)

    assert [PRIVATE_CA] == _trusted(recorded.kwargs[0]["ssl_context"])


@pytest.mark.parametrize("problem", ["missing", "not a certificate"])
async def test_an_unusable_cafile_is_a_user_error_before_connecting(
    monkeypatch: pytest.MonkeyPatch, recorded: Recorded, tmp_path: Path, problem: str
) -> None:
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", recorded.client())
    cafile = tmp_path / "ca.crt"
    if problem == "not a certificate":
        cafile.write_text("not a certificate\n", encoding="utf-8")
    settings = _sasl(kafka_security_protocol="SASL_SSL", kafka_ssl_cafile=cafile)

    with pytest.raises(UserError, match=f"KETENBUS_KAFKA_SSL_CAFILE={cafile}"):
        await topics.ensure_topics(BOOTSTRAP, ["ketenbus.cases"], partitions=3, settings=settings)
    with pytest.raises(UserError, match="KETENBUS_KAFKA_SSL_CAFILE"):
        broker_security(settings)
    assert [] == recorded.kwargs
