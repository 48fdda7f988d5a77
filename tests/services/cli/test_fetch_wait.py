"""The services' fetch wait: short on the embedded broker, the setting everywhere else."""

from __future__ import annotations

import pytest

from services.cli.supervisor import services_fetch_wait_ms
from services.runtime.config.settings import Settings
from services.runtime.kafka.embedded import EMBEDDED_FETCH_MAX_WAIT_MS


def test_on_the_embedded_broker_the_services_fetch_with_its_short_wait() -> None:
    assert 20 == EMBEDDED_FETCH_MAX_WAIT_MS
    assert EMBEDDED_FETCH_MAX_WAIT_MS == services_fetch_wait_ms(Settings(), embedded=True)


def test_a_fetch_wait_set_in_the_environment_wins_on_the_embedded_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KETENBUS_KAFKA_FETCH_MAX_WAIT_MS", "500")

    assert 500 == services_fetch_wait_ms(Settings(), embedded=True)


def test_on_kafka_the_services_keep_the_setting_which_kafka_never_waits_out() -> None:
    assert 500 == services_fetch_wait_ms(Settings(), embedded=False)
    assert 100 == services_fetch_wait_ms(Settings(kafka_fetch_max_wait_ms=100), embedded=False)
