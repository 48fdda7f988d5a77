"""The Kafka security settings reach every client the bus makes, and the password is never shown."""

from __future__ import annotations

import logging
import ssl

import pytest
from faststream.security import SASLScram256, SASLScram512

from services.runtime.config.settings import Settings
from services.runtime.errors import UserError
from services.runtime.kafka.clients import broker_security, client_security, make_broker

PASSWORD = "s3cret-not-for-logs"


def _sasl(**overrides: str) -> Settings:
    values = {
        "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_username": "ketenbus-router",
        "kafka_sasl_password": PASSWORD,
        **overrides,
    }
    return Settings.model_validate(values)


def test_plaintext_is_the_default_and_adds_no_client_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "KETENBUS_KAFKA_SECURITY_PROTOCOL",
        "KETENBUS_KAFKA_SASL_MECHANISM",
        "KETENBUS_KAFKA_SASL_USERNAME",
        "KETENBUS_KAFKA_SASL_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()

    assert ("PLAINTEXT", "SCRAM-SHA-512") == (
        settings.kafka_security_protocol,
        settings.kafka_sasl_mechanism,
    )
    assert {} == client_security(settings)
    assert broker_security(settings) is None


def test_the_four_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KETENBUS_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KETENBUS_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("KETENBUS_KAFKA_SASL_USERNAME", "ketenbus-tracker")
    monkeypatch.setenv("KETENBUS_KAFKA_SASL_PASSWORD", PASSWORD)

    settings = Settings()

    assert "SASL_PLAINTEXT" == settings.kafka_security_protocol
    assert "SCRAM-SHA-256" == settings.kafka_sasl_mechanism
    assert "ketenbus-tracker" == settings.kafka_sasl_username
    assert settings.kafka_sasl_password is not None
    assert PASSWORD == settings.kafka_sasl_password.get_secret_value()


def test_an_unknown_security_protocol_is_refused() -> None:
    with pytest.raises(ValueError, match="kafka_security_protocol"):
        Settings.model_validate({"kafka_security_protocol": "SSL_PLAINTEXT"})


def test_sasl_plaintext_gives_aiokafka_the_scram_512_user_and_password() -> None:
    assert {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "ketenbus-router",
        "sasl_plain_password": PASSWORD,
    } == client_security(_sasl())


def test_sasl_ssl_adds_a_verifying_tls_context() -> None:
    options = client_security(_sasl(kafka_security_protocol="SASL_SSL"))

    assert "SASL_SSL" == options["security_protocol"]
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert ssl.CERT_REQUIRED == options["ssl_context"].verify_mode
    assert options["ssl_context"].check_hostname


def test_the_faststream_broker_gets_the_same_mechanism_and_credentials() -> None:
    security = broker_security(_sasl())
    sha256 = broker_security(_sasl(kafka_sasl_mechanism="SCRAM-SHA-256"))
    over_tls = broker_security(_sasl(kafka_security_protocol="SASL_SSL"))

    assert isinstance(security, SASLScram512)
    assert ("ketenbus-router", PASSWORD, False) == (
        security.username,
        security.password,
        security.use_ssl,
    )
    assert isinstance(sha256, SASLScram256)
    assert over_tls is not None
    assert over_tls.use_ssl


def test_make_broker_connects_with_the_sasl_settings() -> None:
    broker = make_broker(_sasl(), "127.0.0.1:1", client_id="ketenbus-router")
    expected = client_security(_sasl())
    # What FastStream gives the producer and admin client, and what it builds consumers with.
    producer_options = broker._connection_kwargs
    consumer_options = broker.config.builder.keywords

    for options in (producer_options, consumer_options):
        assert expected == {key: options.get(key) for key in expected}


@pytest.mark.parametrize("missing", ["kafka_sasl_username", "kafka_sasl_password"])
def test_sasl_without_a_username_or_password_is_a_user_error(missing: str) -> None:
    values = {
        "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_username": "ketenbus-router",
        "kafka_sasl_password": PASSWORD,
    }
    del values[missing]
    settings = Settings.model_validate(values)

    with pytest.raises(UserError, match="KETENBUS_KAFKA_SASL_USERNAME"):
        client_security(settings)
    with pytest.raises(UserError, match="KETENBUS_KAFKA_SASL_PASSWORD"):
        broker_security(settings)


def test_the_password_is_not_in_the_settings_repr_or_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = _sasl()

    logging.getLogger("test").warning("settings: %s %r", settings, settings)

    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)
    assert PASSWORD not in settings.model_dump_json()
    assert PASSWORD not in caplog.text
