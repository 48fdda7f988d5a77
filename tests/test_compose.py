"""The production-shaped stack (docker-compose.yml, Dockerfile) matches what the code reads.

There is no container engine in CI: these tests read the files and check them
against the code they start (modules, Settings fields, topics, the registry).
"""

# The tests put the expected value first; SIM300 ("Yoda condition") would flip them.

from __future__ import annotations

import importlib.util
import json
import os
import posixpath
import re
import shlex
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from contracts import topics
from services.runtime.registry_file import load_registry
from services.runtime.settings import Settings
from services.runtime.topics import bus_topics

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

BROKERS = ("kafka-1", "kafka-2", "kafka-3")
PROJECT_SERVICES = ("kafka-init", "router", "tracker", "escalation", "console")
SERVICES_WITH_OWN_HEALTH = ("router", "tracker", "escalation")
INIT_MODULE = "services.runtime.topics"
PASSWORD_VARIABLE = "KETENBUS_DB_PASSWORD"
INTERPOLATED_PASSWORD = re.compile(r"^\$\{" + PASSWORD_VARIABLE + r"(:\?[^}]+)?\}$")


@cache
def _compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _environment(service: str) -> dict[str, str]:
    raw = _services()[service].get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {key: str(value) for key, value in raw.items()}


def _command(service: str) -> list[str]:
    command = _services()[service]["command"]
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _module_of(command: list[str]) -> str:
    assert "-m" in command, f"not a `python -m` command: {command}"
    return command[command.index("-m") + 1]


def _healthcheck_url(service: str) -> str:
    test = _services()[service]["healthcheck"]["test"]
    text = test if isinstance(test, str) else " ".join(test)
    match = re.search(r"https?://[^\s'\"]+", text)
    assert match, f"{service}: the healthcheck requests no URL: {text}"
    return match.group(0)


def _registry_mount(service: str) -> dict[str, Any]:
    target = _environment(service)["KETENBUS_REGISTRY"]
    for entry in _services()[service].get("volumes", []):
        volume = entry
        if isinstance(entry, str):
            source, mounted, *mode = entry.split(":")
            volume = {"source": source, "target": mounted, "read_only": mode == ["ro"]}
        if volume["target"] == target:
            return volume
    raise AssertionError(f"{service}: nothing is mounted at KETENBUS_REGISTRY={target}")


def _listeners(value: str) -> dict[str, tuple[str | None, int | None]]:
    """`NAME://host:port,...` as {name: (host, port)}."""
    parsed = {}
    for listener in value.split(","):
        url = urlsplit(listener)
        parsed[url.scheme.upper()] = (url.hostname, url.port)
    return parsed


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [
        line
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if not line.lstrip().startswith("#")
    ]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def test_compose_file_parses_to_services_and_volumes() -> None:
    document = _compose()

    assert isinstance(document["services"], dict)
    assert isinstance(document["volumes"], dict)


def test_compose_has_exactly_the_brokers_database_init_step_and_services() -> None:
    expected = {*BROKERS, "postgres", *PROJECT_SERVICES}

    assert expected == set(_services())


def test_the_brokers_are_the_apache_kafka_3_9_0_services() -> None:
    kafka_services = {
        name
        for name, service in _services().items()
        if str(service.get("image", "")).startswith("apache/kafka")
    }

    assert set(BROKERS) == kafka_services
    assert {"apache/kafka:3.9.0"} == {_services()[name]["image"] for name in BROKERS}


@pytest.mark.parametrize("service", PROJECT_SERVICES)
def test_project_service_command_runs_a_module_that_exists(service: str) -> None:
    module = _module_of(_command(service))
    spec = importlib.util.find_spec(module)

    assert spec is not None, f"{service}: no module {module}"
    if spec.submodule_search_locations is not None:
        # `python -m package` runs package.__main__.
        assert importlib.util.find_spec(f"{module}.__main__") is not None, (
            f"{service}: {module} has no __main__"
        )


def test_project_services_run_the_image_built_from_the_dockerfile() -> None:
    builds = {name: _services()[name].get("build") for name in PROJECT_SERVICES}
    images = {_services()[name].get("image") for name in PROJECT_SERVICES}

    assert dict.fromkeys(PROJECT_SERVICES, ".") == builds
    assert 1 == len(images)


def test_every_ketenbus_variable_in_the_compose_file_is_a_settings_field() -> None:
    fields = {f"KETENBUS_{name.upper()}" for name in Settings.model_fields}
    used = {
        key for name in _services() for key in _environment(name) if key.startswith("KETENBUS_")
    }

    assert set() == used - fields
    assert used, "no KETENBUS_* variable is set at all"


@pytest.mark.parametrize("service", PROJECT_SERVICES)
def test_settings_accept_every_value_a_project_service_is_given(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [key for key in os.environ if key.startswith("KETENBUS_")]:
        monkeypatch.delenv(key)
    environment = _environment(service)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)

    settings = Settings()

    assert environment["KETENBUS_KAFKA_BOOTSTRAP"] == settings.kafka_bootstrap
    assert "json" == settings.log_format


def test_kraft_quorum_voters_name_every_broker_by_its_node_id() -> None:
    voters_by_broker = {
        name: _environment(name)["KAFKA_CONTROLLER_QUORUM_VOTERS"] for name in BROKERS
    }
    node_ids = {name: _environment(name)["KAFKA_NODE_ID"] for name in BROKERS}
    controller_port = _listeners(_environment(BROKERS[0])["KAFKA_LISTENERS"])["CONTROLLER"][1]
    expected = {f"{node_ids[name]}@{name}:{controller_port}" for name in BROKERS}

    assert len(BROKERS) == len(set(node_ids.values()))
    for voters in voters_by_broker.values():
        assert expected == set(voters.split(","))


def test_brokers_share_one_cluster_id_and_are_combined_broker_controllers() -> None:
    cluster_ids = {_environment(name)["CLUSTER_ID"] for name in BROKERS}
    roles = {_environment(name)["KAFKA_PROCESS_ROLES"] for name in BROKERS}

    assert 1 == len(cluster_ids)
    assert {"broker,controller"} == roles


def test_every_broker_advertises_itself_by_its_compose_service_name() -> None:
    for name in BROKERS:
        environment = _environment(name)
        advertised = _listeners(environment["KAFKA_ADVERTISED_LISTENERS"])
        listeners = _listeners(environment["KAFKA_LISTENERS"])

        assert {name} == {host for host, _ in advertised.values()}
        assert set(advertised) <= set(listeners)
        for listener, (_, port) in advertised.items():
            assert listeners[listener][1] == port


def test_every_advertised_listener_host_is_a_compose_service() -> None:
    hosts = {
        host
        for name in BROKERS
        for host, _ in _listeners(_environment(name)["KAFKA_ADVERTISED_LISTENERS"]).values()
    }

    assert set() == hosts - set(_services())


def test_kafka_bootstrap_lists_every_broker_advertised_listener() -> None:
    advertised = {
        f"{host}:{port}"
        for name in BROKERS
        for listener, (host, port) in _listeners(
            _environment(name)["KAFKA_ADVERTISED_LISTENERS"]
        ).items()
        if listener == _environment(name)["KAFKA_INTER_BROKER_LISTENER_NAME"]
    }

    for service in PROJECT_SERVICES:
        bootstrap = _environment(service)["KETENBUS_KAFKA_BOOTSTRAP"]
        assert advertised == set(bootstrap.split(",")), service


def test_brokers_replicate_internal_topics_three_ways_with_min_isr_two_and_no_auto_creation() -> (
    None
):
    expected = {
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "3",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "3",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "2",
        "KAFKA_DEFAULT_REPLICATION_FACTOR": "3",
        "KAFKA_MIN_INSYNC_REPLICAS": "2",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
    }

    for name in BROKERS:
        environment = _environment(name)
        assert expected == {key: environment.get(key) for key in expected}, name


def test_kafka_init_replication_does_not_exceed_the_broker_count() -> None:
    command = _command("kafka-init")
    replication = int(command[-1])
    min_isr = {int(_environment(name)["KAFKA_MIN_INSYNC_REPLICAS"]) for name in BROKERS}

    assert INIT_MODULE == _module_of(command)
    assert len(BROKERS) == replication
    assert replication <= len(BROKERS)
    # acks=all writes must keep working while one node is down.
    assert all(isr < replication for isr in min_isr)


def test_kafka_init_waits_for_every_broker_to_be_healthy() -> None:
    depends_on = _services()["kafka-init"]["depends_on"]

    assert dict.fromkeys(BROKERS, "service_healthy") == {
        name: condition["condition"] for name, condition in depends_on.items()
    }


def test_services_start_after_their_prerequisites_with_conditions() -> None:
    expected = {
        "router": {"kafka-init": "service_completed_successfully"},
        "tracker": {
            "kafka-init": "service_completed_successfully",
            "postgres": "service_healthy",
        },
        "escalation": {
            "kafka-init": "service_completed_successfully",
            "postgres": "service_healthy",
        },
        "console": {
            "kafka-init": "service_completed_successfully",
            "router": "service_started",
            "tracker": "service_started",
            "escalation": "service_started",
        },
    }

    for service, dependencies in expected.items():
        depends_on = _services()[service]["depends_on"]
        assert dependencies == {
            name: condition["condition"] for name, condition in depends_on.items()
        }, service


def test_long_running_services_have_a_healthcheck_and_a_restart_policy() -> None:
    for name, service in _services().items():
        if name == "kafka-init":
            continue
        assert "test" in service.get("healthcheck", {}), name
        assert service.get("restart") in {"always", "unless-stopped"}, name


def test_kafka_init_runs_once_and_is_not_restarted() -> None:
    service = _services()["kafka-init"]

    assert "no" == service["restart"]
    assert "healthcheck" not in service


@pytest.mark.parametrize("service", SERVICES_WITH_OWN_HEALTH)
def test_service_health_listens_on_all_interfaces_and_is_probed_on_its_port(
    service: str,
) -> None:
    environment = _environment(service)
    url = urlsplit(_healthcheck_url(service))

    assert "0.0.0.0" == environment["KETENBUS_HEALTH_HOST"]
    assert int(environment["KETENBUS_HEALTH_PORT"]) == url.port
    assert "/healthz" == url.path


def test_console_listens_on_all_interfaces_and_is_probed_on_its_port() -> None:
    environment = _environment("console")
    url = urlsplit(_healthcheck_url("console"))

    assert "0.0.0.0" == environment["KETENBUS_CONSOLE_HOST"]
    assert int(environment["KETENBUS_CONSOLE_PORT"]) == url.port
    assert "/healthz" == url.path


def test_console_health_targets_are_the_services_own_health_endpoints() -> None:
    targets = json.loads(_environment("console")["KETENBUS_HEALTH_TARGETS"])

    assert set(SERVICES_WITH_OWN_HEALTH) == set(targets)
    for name, target in targets.items():
        url = urlsplit(target)
        assert name == url.hostname
        assert int(_environment(name)["KETENBUS_HEALTH_PORT"]) == url.port
        assert "/healthz" == url.path


def test_console_publishes_the_default_console_port_on_loopback_only() -> None:
    default_port = Settings.model_fields["console_port"].default
    (mapping,) = _services()["console"]["ports"]
    host_ip, published, container = str(mapping).split(":")

    assert "127.0.0.1" == host_ip
    assert default_port == int(published)
    assert int(_environment("console")["KETENBUS_CONSOLE_PORT"]) == int(container)


def test_only_the_console_publishes_a_port() -> None:
    publishing = {name for name, service in _services().items() if service.get("ports")}

    assert {"console"} == publishing


@pytest.mark.parametrize("service", ["tracker", "escalation"])
def test_the_store_url_points_to_the_postgres_service_and_database(service: str) -> None:
    postgres = _environment("postgres")
    url = urlsplit(_environment(service)["KETENBUS_DATABASE_URL"])

    assert "postgresql+asyncpg" == url.scheme
    assert "postgres" == url.hostname
    assert "postgres" in _services()
    assert 5432 == url.port
    assert postgres["POSTGRES_DB"] == url.path.lstrip("/")
    assert postgres["POSTGRES_USER"] == url.username


def test_compose_file_holds_no_literal_password() -> None:
    postgres_password = _environment("postgres")["POSTGRES_PASSWORD"]
    url_passwords = re.findall(r"://[^:/\s@]+:([^@\s]+)@", COMPOSE_FILE.read_text("utf-8"))
    secret_values = {
        value
        for name in _services()
        for key, value in _environment(name).items()
        if re.search(r"PASSWORD|SECRET|TOKEN", key)
    }

    # `${VAR:?message}`: compose refuses to start without the password.
    assert INTERPOLATED_PASSWORD.match(postgres_password), postgres_password
    assert url_passwords, "the database URL carries no password"
    for secret in [*url_passwords, *secret_values]:
        assert INTERPOLATED_PASSWORD.match(secret), f"literal secret in compose: {secret}"


def test_registry_is_mounted_read_only_from_the_repository_where_settings_read_it() -> None:
    readers = [name for name in _services() if "KETENBUS_REGISTRY" in _environment(name)]

    assert {"kafka-init", "router"} <= set(readers)
    for name in readers:
        mount = _registry_mount(name)
        assert mount.get("read_only") is True, name
        assert (REPO / mount["source"]).is_file(), name


def test_init_step_creates_every_bus_topic_and_an_outbox_and_inbox_per_agency() -> None:
    registry = load_registry(REPO / _registry_mount("kafka-init")["source"])
    created = bus_topics(registry)

    assert INIT_MODULE == _module_of(_command("kafka-init"))
    assert set() == set(topics.BUS_TOPICS) - set(created)
    for agency in registry.agencies:
        assert topics.outbox(agency.code) in created
        assert topics.inbox(agency.code) in created
    assert len(set(created)) == len(created)


def test_dockerfile_builds_on_python_3_11_slim_and_runs_as_a_non_root_user() -> None:
    instructions = _dockerfile_instructions()
    base = [arguments for keyword, arguments in instructions if keyword == "FROM"]
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]

    assert ["python:3.11-slim"] == base
    assert users, "no USER: the image would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_dockerfile_installs_the_project() -> None:
    runs = [arguments for keyword, arguments in _dockerfile_instructions() if keyword == "RUN"]

    assert any(re.search(r"pip install(\s+-\S+)*\s+\.(\s|$)", run) for run in runs), runs


def test_dockerfile_copies_deploy_into_the_working_directory() -> None:
    workdir = PurePosixPath("/")
    deploy_targets = []
    for keyword, arguments in _dockerfile_instructions():
        if keyword == "WORKDIR":
            workdir = workdir / arguments
        elif keyword == "COPY":
            *sources, target = [part for part in arguments.split() if not part.startswith("--")]
            if any(source.rstrip("/") == "deploy" for source in sources):
                deploy_targets.append(posixpath.normpath(PurePosixPath(workdir, target)))

    # Settings and the migrations read deploy/ relative to the working directory.
    assert [str(workdir / "deploy")] == deploy_targets


def test_dockerfile_default_command_is_the_cli_help() -> None:
    commands = [arguments for keyword, arguments in _dockerfile_instructions() if keyword == "CMD"]

    assert ["ketenbus", "--help"] == json.loads(commands[-1])


def test_dockerignore_keeps_local_state_secrets_and_caches_out_of_the_image() -> None:
    ignored = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }

    assert set() == {".git", ".venv", ".ketenbus", ".env", "**/__pycache__"} - ignored
