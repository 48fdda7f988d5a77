"""Settings: `KETENBUS_*` environment variables (DESIGN "Settings")."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts._types import PositiveDuration

_REPO = Path(__file__).resolve().parents[3]


def _default_registry() -> Path:
    local = Path("deploy/agencies.yaml")
    return local if local.is_file() else _REPO / "deploy" / "agencies.yaml"


class Settings(BaseSettings):
    """Every setting has a default that runs the bus on one machine."""

    model_config = SettingsConfigDict(env_prefix="KETENBUS_", extra="ignore", frozen=True)

    kafka_bootstrap: str | None = Field(
        default=None, description="Kafka bootstrap servers; unset: an embedded broker is started."
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; unset: SQLite under the data directory."
    )
    registry: Path = Field(default_factory=_default_registry, description="The agency registry.")
    broker_port: int = Field(default=9092, description="The embedded broker's port.")
    console_port: int = Field(default=8080, description="Health, console and metrics port.")
    console_host: str = Field(default="127.0.0.1", description="Where the console listens.")
    data_dir: Path = Field(default=Path(".ketenbus"), description="Local state (SQLite, keys).")
    topic_partitions: int = Field(default=3, ge=1, description="Partitions of created topics.")
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="How the Kafka clients connect: PLAINTEXT, or with SASL (SASL_SSL over TLS).",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        default="SCRAM-SHA-512", description="The SASL mechanism, when the protocol is SASL_*."
    )
    kafka_sasl_username: str | None = Field(
        default=None, description="This process's Kafka user; its ACL principal is User:<name>."
    )
    # A SecretStr prints as '**********': the password cannot end up in a log or a repr.
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="The Kafka user's password."
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        description="With SASL_SSL: the CA certificate file (PEM) the brokers' certificates "
        "are checked against, instead of the system's CA bundle (docker-compose.yml: the CA "
        "that deploy/kafka/make-certs.sh makes).",
    )
    kafka_session_timeout_ms: int = Field(
        default=10_000, description="Consumer group session timeout; the embedded broker: 2000."
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=500,
        ge=0,
        le=500,
        description=(
            "How long a service's fetch may wait for records. Kafka answers as soon as "
            "records arrive; the embedded broker holds an empty fetch this long, and "
            "events wait it, so `ketenbus up` runs its services at 20 on the embedded "
            "broker unless this is set (docs/performance.md)."
        ),
    )
    health_port: int = Field(
        default=0, description="A service process's own /healthz port (0: any free port)."
    )
    health_host: str = Field(
        default="127.0.0.1",
        description="Where a service's /healthz listens (0.0.0.0 in containers).",
    )
    health_targets: dict[str, str] = Field(
        default_factory=dict,
        description='Service health URLs the console checks, JSON: {"router": "http://..."}.',
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: readable on a terminal, JSON otherwise."
    )
    log_level: str = Field(default="INFO", description="Minimum log level.")
    max_attempts: int = Field(
        default=5,
        ge=1,
        description="Failed rounds of one record (other than an outage) before its "
        "partition's records are processed one by one and one that still fails is "
        "dead-lettered; only that record's partition waits meanwhile.",
    )
    router_signature_workers: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="Processes that verify the signatures of a router's batches of 16 or "
        "more, beside the share it checks itself; "
        "unset: one per core beside the router's, at most four (none on one core); 0: the "
        "router verifies every signature itself.",
    )
    ping_pong_limit: int = Field(
        default=3, ge=1, description="Rejections of one case before it is escalated (ping-pong)."
    )
    escalation_repeat: PositiveDuration | None = Field(
        default=None,
        description="How often an unacknowledged top level is raised again, as an ISO 8601 "
        "duration (PT1H); unset: the top level's own acknowledge_within.",
    )
    timer_lease_s: float = Field(
        default=30.0,
        gt=0,
        description="Real seconds a claimed escalation timer is reserved for one instance; "
        "after that another instance may fire it.",
    )

    # Console access (issue 6): who may log in, and what signs their session cookies.
    console_users: Path | None = Field(
        default=None,
        description="The console's users file (YAML: users with argon2 password hashes, "
        "tokens by their sha256); unset: nobody can log in (`ketenbus up --demo` makes one).",
    )
    # A SecretStr: the secret that signs sessions must not end up in a log or a repr.
    console_secret: SecretStr | None = Field(
        default=None,
        description="Signs the console's session cookies; unset: a random secret per process "
        "(everyone logs in again after a restart).",
    )

    console_login_attempts: int = Field(
        default=5,
        ge=1,
        description="Failed console logins one user name may have per "
        "`KETENBUS_CONSOLE_LOGIN_WINDOW_S` (a client address four times as many); beyond it "
        "the answer is 429 with Retry-After.",
    )
    console_login_window_s: int = Field(
        default=300, ge=1, description="The moving window the failed logins are counted in."
    )

    # The HTTP gateway: agency systems that speak HTTP instead of Kafka.
    gateway_port: int = Field(
        default=8090, description="The HTTP gateway's port (CloudEvents in, webhooks out)."
    )
    gateway_host: str = Field(default="127.0.0.1", description="Where the HTTP gateway listens.")
    gateway_rate: float = Field(
        default=50.0,
        gt=0,
        description="Events per second one agency may send through the gateway, on average; "
        "beyond it the gateway answers 429 with Retry-After.",
    )
    gateway_burst: int = Field(
        default=200,
        ge=1,
        description="Events one agency may send through the gateway at once before "
        "`KETENBUS_GATEWAY_RATE` applies.",
    )

    webhook_horizon: PositiveDuration = Field(
        default=timedelta(hours=24),
        description="How long the gateway keeps retrying a webhook delivery, as an ISO 8601 "
        "duration (PT24H); then it is a dead letter and the sender is told.",
    )
    webhook_retry_base_s: float = Field(
        default=1.0,
        gt=0,
        description="The first pause before a failed webhook delivery is tried again; each "
        "next one doubles (at most an hour), with jitter.",
    )
    webhook_timeout_s: float = Field(
        default=10.0, gt=0, description="Seconds a webhook receiver has to answer one POST."
    )

    # Escalation teams' feed (issue 6): where `ketenbus alerts` finds the console.
    console_url: str = Field(
        default="http://127.0.0.1:8080",
        description="The console `ketenbus alerts` talks to.",
    )
    console_token: SecretStr | None = Field(
        default=None,
        description="The bearer token `ketenbus alerts` sends to the console (a team's token).",
    )

    # Observability (issue 6): OpenTelemetry traces, off unless an exporter is chosen.
    otel_exporter: Literal["none", "console", "otlp"] = Field(
        default="none",
        description="Where traces go: none (no tracing), console (stdout) or otlp (OTLP/HTTP).",
    )
    otel_endpoint: str = Field(
        default="http://127.0.0.1:4318/v1/traces",
        description="The OTLP/HTTP traces endpoint, when the exporter is otlp.",
    )
    otel_service_name: str = Field(
        default="ketenbus",
        description="Prefix of each process's OpenTelemetry service.name (ketenbus-router).",
    )

    @cached_property
    def database(self) -> str:
        """The effective database URL."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'ketenbus.db').resolve()}"

    @property
    def heartbeat_interval_ms(self) -> int:
        return max(100, self.kafka_session_timeout_ms // 4)
