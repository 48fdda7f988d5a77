"""The production-shaped stack (docker-compose.yml, Dockerfile) matches what the code reads.

There is no container engine in CI: these tests read the files and check them
against the code they start (modules, Settings fields, topics, the registry). The
certificate script (deploy/kafka/make-certs.sh) runs for real, and what it makes is
checked with openssl and Python's ssl for the host names compose connects to.
"""

# The tests put the expected value first; SIM300 ("Yoda condition") would flip them.

from __future__ import annotations

import importlib.util
import json
import os
import posixpath
import re
import shlex
import shutil
import ssl
import subprocess
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from contracts import topics
from services.runtime.config.production import external_broker, unsafe_defaults
from services.runtime.config.registry import load_registry
from services.runtime.config.settings import Settings
from services.runtime.kafka.acl import SERVICE_PRINCIPALS
from services.runtime.kafka.clients import client_security
from services.runtime.kafka.topics import bus_topics

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

BROKERS = ("kafka-1", "kafka-2", "kafka-3")
PROJECT_SERVICES = ("kafka-init", "router", "tracker", "escalation", "gateway", "console")
SECURITY_STEP = "kafka-security"
ONE_SHOT_STEPS = (SECURITY_STEP, "kafka-init")
SERVICES_WITH_OWN_HEALTH = ("router", "tracker", "escalation", "gateway")
INIT_MODULE = "services.runtime.kafka.topics"
PASSWORD_VARIABLE = "KETENBUS_DB_PASSWORD"
INTERPOLATED_PASSWORD = re.compile(r"^\$\{" + PASSWORD_VARIABLE + r"(:\?[^}]+)?\}$")
# `${VAR:?message}`: compose refuses to start when VAR is unset, so no default can leak in.
REQUIRED_VARIABLE = re.compile(r"^\$\{(?P<name>[A-Z][A-Z0-9_]*):\?[^}]+\}$")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN")
KAFKA_DEPLOY = REPO / "deploy" / "kafka"
CLIENT_LISTENER = "CLIENT"
STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
ADMIN_PRINCIPAL = "User:admin"
MAKE_CERTS = KAFKA_DEPLOY / "make-certs.sh"
# Where compose finds the TLS material: ${KETENBUS_KAFKA_TLS_DIR:-./tls}.
TLS_VARIABLE = "KETENBUS_KAFKA_TLS_DIR"
DEFAULTED_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z][A-Z0-9_]*):-(?P<default>[^}]*)\}")
# Where each broker mounts its own directory of make-certs.sh's output.
BROKER_TLS_DIR = PurePosixPath("/etc/kafka/tls")
BROKER_TLS_FILES = ("broker.key", "broker.crt", "ca.crt")
# kafka-init is the topic set-up job; its principal is `init` in services.runtime.kafka.acl.
PRINCIPAL_OF_SERVICE = {
    name: SERVICE_PRINCIPALS[name.removeprefix("kafka-")] for name in PROJECT_SERVICES
}


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


def _required_variable(value: str) -> str:
    match = REQUIRED_VARIABLE.match(value)
    assert match, f"not a required `${{VAR:?message}}` interpolation: {value}"
    return match.group("name")


def _bind_mounts(service: str) -> dict[str, dict[str, Any]]:
    """The service's bind mounts by target."""
    return {
        volume["target"]: volume
        for volume in _services()[service].get("volumes", [])
        if isinstance(volume, dict) and volume.get("type") == "bind"
    }


def _script_of(service: str) -> Path:
    """The repository file a service's `bash SCRIPT` entrypoint runs, through its bind mounts."""
    entrypoint = _services()[service]["entrypoint"]
    assert ["/bin/bash"] == entrypoint[:1], entrypoint
    script = PurePosixPath(entrypoint[1])
    for target, volume in _bind_mounts(service).items():
        if script == PurePosixPath(target) or PurePosixPath(target) in script.parents:
            assert volume.get("read_only") is True, (service, target)
            source = REPO / str(volume["source"]) / script.relative_to(target)
            assert source.is_file(), source
            return source
    raise AssertionError(f"{service}: {script} is not mounted from the repository")


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


def test_compose_has_exactly_the_brokers_database_init_steps_and_services() -> None:
    expected = {*BROKERS, "postgres", SECURITY_STEP, *PROJECT_SERVICES}

    assert expected == set(_services())


def test_the_brokers_and_the_security_step_are_the_apache_kafka_3_9_0_services() -> None:
    kafka_services = {
        name
        for name, service in _services().items()
        if str(service.get("image", "")).startswith("apache/kafka")
    }

    # The security step needs the Kafka admin tools (a JVM), which the project image lacks.
    assert {*BROKERS, SECURITY_STEP} == kafka_services
    assert {"apache/kafka:3.9.0"} == {_services()[name]["image"] for name in kafka_services}


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
    assert Path(environment["KETENBUS_KAFKA_SSL_CAFILE"]) == settings.kafka_ssl_cafile


@pytest.mark.parametrize("service", [s for s in PROJECT_SERVICES if s != "kafka-init"])
def test_no_project_service_is_left_with_a_one_machine_default(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beside the cluster every service would refuse SQLite, the console a random secret: the
    compose file sets both, so each starts (kafka-init only makes topics: it has no store)."""
    for key in [key for key in os.environ if key.startswith("KETENBUS_")]:
        monkeypatch.delenv(key)
    for key, value in _environment(service).items():
        monkeypatch.setenv(key, value)

    settings = Settings()

    assert external_broker(settings)
    assert [] == unsafe_defaults(
        settings, console=_module_of(_command(service)) == "services.console"
    )


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
        if listener == CLIENT_LISTENER
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


def test_kafka_init_waits_for_every_broker_and_for_the_users_and_acls() -> None:
    depends_on = _services()["kafka-init"]["depends_on"]

    assert {
        **dict.fromkeys(BROKERS, "service_healthy"),
        SECURITY_STEP: "service_completed_successfully",
    } == {name: condition["condition"] for name, condition in depends_on.items()}


def test_the_security_step_waits_for_every_broker_to_be_healthy() -> None:
    depends_on = _services()[SECURITY_STEP]["depends_on"]

    assert dict.fromkeys(BROKERS, "service_healthy") == {
        name: condition["condition"] for name, condition in depends_on.items()
    }


def test_services_start_after_their_prerequisites_with_conditions() -> None:
    expected = {
        "router": {
            "kafka-init": "service_completed_successfully",
            "postgres": "service_healthy",
        },
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
            "postgres": "service_healthy",
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
        if name in ONE_SHOT_STEPS:
            continue
        assert "test" in service.get("healthcheck", {}), name
        assert service.get("restart") in {"always", "unless-stopped"}, name


@pytest.mark.parametrize("step", ONE_SHOT_STEPS)
def test_one_shot_step_runs_once_and_is_not_restarted(step: str) -> None:
    service = _services()[step]

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


def test_only_the_console_and_the_gateway_publish_a_port_and_only_on_loopback() -> None:
    services = _services().items()
    ports = {name: service["ports"] for name, service in services if service.get("ports")}

    assert {"console": ["127.0.0.1:8080:8080"], "gateway": ["127.0.0.1:8090:8090"]} == ports


@pytest.mark.parametrize("service", ["tracker", "escalation", "gateway"])
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
        if SECRET_KEY.search(key) and key != "POSTGRES_PASSWORD"
    }

    # `${VAR:?message}`: compose refuses to start without the password.
    assert INTERPOLATED_PASSWORD.match(postgres_password), postgres_password
    assert url_passwords, "the database URL carries no password"
    for secret in url_passwords:
        assert INTERPOLATED_PASSWORD.match(secret), f"literal secret in compose: {secret}"
    assert secret_values, "no Kafka password is passed at all"
    for secret in secret_values:
        assert REQUIRED_VARIABLE.match(secret), f"literal or optional secret in compose: {secret}"


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


def test_every_broker_requires_sasl_over_tls_on_every_listener() -> None:
    for name in BROKERS:
        environment = _environment(name)
        protocols = dict(
            entry.split(":")
            for entry in environment["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
        )
        listeners = set(_listeners(environment["KAFKA_LISTENERS"]))
        inter_broker = environment["KAFKA_INTER_BROKER_LISTENER_NAME"]
        (controller,) = environment["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")

        assert listeners == set(protocols), name
        assert {"SASL_SSL"} == set(protocols.values()), name
        assert {CLIENT_LISTENER, inter_broker, controller} == listeners, name
        assert "SCRAM-SHA-512" == environment["KAFKA_LISTENER_NAME_CLIENT_SASL_ENABLED_MECHANISMS"]
        for listener, mechanism_key in (
            (inter_broker, "KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL"),
            (controller, "KAFKA_SASL_MECHANISM_CONTROLLER_PROTOCOL"),
        ):
            enabled = environment[f"KAFKA_LISTENER_NAME_{listener}_SASL_ENABLED_MECHANISMS"]
            assert environment[mechanism_key] in enabled.split(","), (name, listener)


def test_every_broker_denies_whatever_no_acl_allows() -> None:
    for name in BROKERS:
        environment = _environment(name)

        assert STANDARD_AUTHORIZER == environment["KAFKA_AUTHORIZER_CLASS_NAME"], name
        assert "false" == environment["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"], name
        assert ADMIN_PRINCIPAL == environment["KAFKA_SUPER_USERS"], name


def test_every_broker_starts_through_the_script_that_writes_its_admin_credentials() -> None:
    for name in BROKERS:
        script = _script_of(name)
        text = script.read_text(encoding="utf-8")

        assert KAFKA_DEPLOY / "broker.sh" == script, name
        assert _required_variable(_environment(name)["ADMIN_PASSWORD"]), name
        assert 'username="admin"' in text
        assert "exec /etc/kafka/docker/run" in text
        # The image turns every KAFKA_* variable into a server.properties line.
        assert not any(
            key.startswith("KAFKA_") and SECRET_KEY.search(key) for key in _environment(name)
        )


def test_broker_healthcheck_authenticates_as_admin_on_the_inter_broker_listener() -> None:
    for name in BROKERS:
        environment = _environment(name)
        test = " ".join(_services()[name]["healthcheck"]["test"])
        inter_broker = environment["KAFKA_INTER_BROKER_LISTENER_NAME"]
        port = _listeners(environment["KAFKA_LISTENERS"])[inter_broker][1]

        # By the node's host name (`$$` is compose's `$`): the name its certificate holds.
        assert "CMD-SHELL" == _services()[name]["healthcheck"]["test"][0], name
        assert f"--bootstrap-server $$(hostname):{port}" in test, name
        assert name == _services()[name]["hostname"], name
        assert "--command-config /etc/kafka/secrets/admin.properties" in test, name
        assert "/etc/kafka/secrets/admin.properties" in _script_of(name).read_text("utf-8")


@pytest.mark.parametrize("service", PROJECT_SERVICES)
def test_project_service_connects_with_scram_as_its_acl_principal(service: str) -> None:
    environment = _environment(service)

    assert "SASL_SSL" == environment["KETENBUS_KAFKA_SECURITY_PROTOCOL"]
    assert "SCRAM-SHA-512" == environment["KETENBUS_KAFKA_SASL_MECHANISM"]
    assert PRINCIPAL_OF_SERVICE[service] == f"User:{environment['KETENBUS_KAFKA_SASL_USERNAME']}"
    assert _required_variable(environment["KETENBUS_KAFKA_SASL_PASSWORD"])


def test_each_project_service_has_its_own_kafka_user_and_password_variable() -> None:
    users = [_environment(name)["KETENBUS_KAFKA_SASL_USERNAME"] for name in PROJECT_SERVICES]
    variables = [
        _required_variable(_environment(name)["KETENBUS_KAFKA_SASL_PASSWORD"])
        for name in PROJECT_SERVICES
    ]
    admin = _required_variable(_environment(SECURITY_STEP)["ADMIN_PASSWORD"])

    assert len(PROJECT_SERVICES) == len(set(users))
    assert len(PROJECT_SERVICES) == len(set(variables))
    assert admin not in variables


def test_security_step_creates_each_services_scram_user_with_that_services_password() -> None:
    environment = _environment(SECURITY_STEP)
    created = environment["SCRAM_USERS"].split()
    expected = {
        _environment(name)["KETENBUS_KAFKA_SASL_USERNAME"]: _required_variable(
            _environment(name)["KETENBUS_KAFKA_SASL_PASSWORD"]
        )
        for name in PROJECT_SERVICES
    }

    assert set(expected) == set(created)
    for user, variable in expected.items():
        key = "SCRAM_PASSWORD_" + user.upper().replace("-", "_")
        assert variable == _required_variable(environment[key]), user
    assert "SCRAM-SHA-512=[password=" in _script_of(SECURITY_STEP).read_text("utf-8")


def test_security_step_and_the_brokers_share_one_admin_password() -> None:
    variables = {
        _required_variable(_environment(name)["ADMIN_PASSWORD"])
        for name in (*BROKERS, SECURITY_STEP)
    }

    assert 1 == len(variables)


def test_security_step_applies_the_generated_acls_script() -> None:
    script = _script_of(SECURITY_STEP)
    mounted = {volume["source"] for volume in _bind_mounts(SECURITY_STEP).values()}

    assert KAFKA_DEPLOY / "security.sh" == script
    assert any((REPO / source).resolve() == KAFKA_DEPLOY for source in mounted)
    assert (KAFKA_DEPLOY / "acls.sh").is_file()
    assert re.search(r'^sh "\$here/acls\.sh"$', script.read_text("utf-8"), re.MULTILINE)


def test_security_step_reaches_every_broker_on_its_inter_broker_listener() -> None:
    expected = set()
    for name in BROKERS:
        environment = _environment(name)
        advertised = _listeners(environment["KAFKA_ADVERTISED_LISTENERS"])
        host, port = advertised[environment["KAFKA_INTER_BROKER_LISTENER_NAME"]]
        expected.add(f"{host}:{port}")

    assert expected == set(_environment(SECURITY_STEP)["BOOTSTRAP"].split(","))


@pytest.mark.parametrize("script", ["broker.sh", "security.sh", "acls.sh", "make-certs.sh"])
def test_kafka_deploy_scripts_are_valid_shell(script: str) -> None:
    shell = "sh" if script == "acls.sh" else "bash"

    result = subprocess.run(
        [shell, "-n", str(KAFKA_DEPLOY / script)], capture_output=True, text=True, check=False
    )

    assert 0 == result.returncode, result.stderr


# TLS: every listener SASL_SSL, the certificates from deploy/kafka/make-certs.sh


def _tls_source(source: str) -> Path:
    """A bind mount's source as compose resolves it, `${KETENBUS_KAFKA_TLS_DIR:-...}` unset."""
    names = {match.group("name") for match in DEFAULTED_VARIABLE.finditer(source)}
    assert names <= {TLS_VARIABLE}, source
    resolved = DEFAULTED_VARIABLE.sub(lambda match: match.group("default"), source)
    return (REPO / resolved).resolve()


def _tls_sources_root() -> Path:
    """The TLS directory every TLS mount of the compose file reads from (one for all)."""
    roots = set()
    for name in (*BROKERS, SECURITY_STEP, *PROJECT_SERVICES):
        for volume in _bind_mounts(name).values():
            if TLS_VARIABLE in str(volume["source"]):
                source = str(volume["source"])
                assert source.startswith(f"${{{TLS_VARIABLE}:-"), source
                roots.add(_tls_source(source.split("}", 1)[0] + "}"))
    assert 1 == len(roots), roots
    return roots.pop()


def _mount_at(service: str, target: str | PurePosixPath) -> dict[str, Any]:
    mounts = _bind_mounts(service)
    assert str(target) in mounts, f"{service}: nothing is mounted at {target}"
    mount = mounts[str(target)]
    assert mount.get("read_only") is True, (service, target)
    return mount


def _run_make_certs(
    *arguments: str | Path, script: Path = MAKE_CERTS, check: bool = True
) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != TLS_VARIABLE}
    # The broker keys stay with this user (as root, the script would give them to uid 1000).
    environment["KAFKA_UID"] = str(os.getuid())
    result = subprocess.run(
        ["bash", str(script), *map(str, arguments)],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
        timeout=60,
    )
    if check:
        assert 0 == result.returncode, result.stderr
    return result


needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What deploy/kafka/make-certs.sh makes for the compose brokers, in a fresh directory."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    directory = tmp_path_factory.mktemp("certs") / "tls"
    _run_make_certs(directory)
    return directory


def _pem_certificates(path: Path) -> list[str]:
    return re.findall(
        r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n", path.read_text(), re.DOTALL
    )


def _keystore(certs: Path, broker: str, tmp_path: Path) -> Path:
    """The PEM keystore deploy/kafka/broker.sh writes: the key, then the certificate chain."""
    keystore = tmp_path / f"{broker}-keystore.pem"
    keystore.write_text(
        (certs / broker / "broker.key").read_text() + (certs / broker / "broker.crt").read_text()
    )
    return keystore


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, host: str) -> str | None:
    """A TLS handshake in memory, the client connecting to `host`; the protocol version."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_side = server.wrap_bio(to_server, to_client, server_side=True)
    client_in, client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_side = client.wrap_bio(client_in, client_out, server_hostname=host)
    for _ in range(10):
        done = True
        for side, outgoing, incoming in (
            (client_side, client_out, to_server),
            (server_side, to_client, client_in),
        ):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                done = False
            incoming.write(outgoing.read())
        if done:
            return client_side.version()
    raise AssertionError("the handshake did not finish")


def _sasl_ssl_client(cafile: Path) -> ssl.SSLContext:
    """The TLS context the router builds from its compose settings, the CA file here."""
    settings = Settings.model_validate(
        {
            key.removeprefix("KETENBUS_").lower(): value
            for key, value in _environment("router").items()
            if key.startswith("KETENBUS_")
        }
        | {"kafka_sasl_password": "not-a-real-password", "kafka_ssl_cafile": cafile}
    )
    context = client_security(settings)["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    return context


def test_every_broker_serves_tls_with_its_own_pem_key_and_trusts_the_ca() -> None:
    sources = set()
    for name in BROKERS:
        environment = _environment(name)
        mount = _mount_at(name, BROKER_TLS_DIR)
        keystore = PurePosixPath(environment["KAFKA_SSL_KEYSTORE_LOCATION"])

        assert "PEM" == environment["KAFKA_SSL_KEYSTORE_TYPE"], name
        assert "PEM" == environment["KAFKA_SSL_TRUSTSTORE_TYPE"], name
        assert str(BROKER_TLS_DIR / "ca.crt") == environment["KAFKA_SSL_TRUSTSTORE_LOCATION"], name
        # Host names are checked when a node connects to another (inter-broker, controller).
        assert "https" == environment["KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM"], name
        # SASL authenticates the clients; TLS only encrypts and proves the broker.
        assert "none" == environment["KAFKA_SSL_CLIENT_AUTH"], name
        # The image's start script takes `SSL://` in the advertised listeners for JKS
        # files of its own (KAFKA_SSL_KEYSTORE_FILENAME ...) and refuses to start without.
        assert "SSL://" not in environment["KAFKA_ADVERTISED_LISTENERS"], name
        # broker.sh writes the keystore at start: on the image's writable secrets volume.
        assert PurePosixPath("/etc/kafka/secrets") in keystore.parents, name
        # Each node mounts its own directory of the script's output, named after its host.
        assert _tls_sources_root() / name == _tls_source(str(mount["source"])), name
        sources.add(str(mount["source"]))
        # PEM keys are unencrypted: no key or keystore password reaches server.properties.
        assert not [key for key in environment if key.startswith("KAFKA_SSL") and "PASS" in key]

    assert len(BROKERS) == len(sources)


def test_the_broker_script_builds_the_keystore_from_the_mounted_key_and_chain() -> None:
    text = (KAFKA_DEPLOY / "broker.sh").read_text(encoding="utf-8")

    assert f"tls_dir={BROKER_TLS_DIR}" in text
    assert 'keystore="${KAFKA_SSL_KEYSTORE_LOCATION:?' in text
    assert 'truststore="${KAFKA_SSL_TRUSTSTORE_LOCATION:?' in text
    assert 'cat "$tls_dir/broker.key" "$tls_dir/broker.crt" > "$keystore"' in text
    # The healthcheck's admin client connects over TLS too, checking the node's certificate.
    admin = text.split('cat > "$admin_config" <<PROPERTIES', 1)[1].split("PROPERTIES", 1)[0]
    assert "security.protocol=SASL_SSL" in admin
    assert "ssl.truststore.type=PEM" in admin
    assert "ssl.truststore.location=$truststore" in admin


@pytest.mark.parametrize("service", PROJECT_SERVICES)
def test_project_service_checks_the_brokers_against_the_compose_ca(service: str) -> None:
    cafile = _environment(service)["KETENBUS_KAFKA_SSL_CAFILE"]
    mount = _mount_at(service, cafile)

    assert _tls_sources_root() / "ca.crt" == _tls_source(str(mount["source"]))


def test_security_step_connects_over_tls_checking_the_brokers_against_the_ca() -> None:
    environment = _environment(SECURITY_STEP)
    mount = _mount_at(SECURITY_STEP, environment["CA_FILE"])
    text = _script_of(SECURITY_STEP).read_text(encoding="utf-8")

    assert _tls_sources_root() / "ca.crt" == _tls_source(str(mount["source"]))
    assert ': "${CA_FILE:?' in text
    assert "security.protocol=SASL_SSL" in text
    assert "ssl.truststore.location=$CA_FILE" in text
    assert "SASL_PLAINTEXT" not in text


def test_no_service_mounts_the_ca_key_or_another_brokers_key() -> None:
    root = _tls_sources_root()
    for name in _services():
        sources = {_tls_source(str(volume["source"])) for volume in _bind_mounts(name).values()}
        allowed = {root / "ca.crt", *([root / name] if name in BROKERS else [])}

        # Not the directory (it holds ca.key), not the CA key, no other broker's directory.
        assert set() == {source for source in sources if root in (source, *source.parents)} - (
            allowed
        ), name


def test_the_tls_directory_stays_out_of_the_image_and_the_mounted_scripts() -> None:
    root = _tls_sources_root()
    ignored = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()

    # The image copies deploy/; kafka-security mounts deploy/kafka: neither holds the keys.
    assert REPO / "deploy" not in root.parents
    assert REPO == root.parent
    assert "**/*.key" in ignored


def test_every_host_a_tls_client_connects_to_gets_a_certificate_from_the_script(
    tmp_path: Path,
) -> None:
    hosts = set()
    for name in BROKERS:
        environment = _environment(name)
        hosts |= {
            host for host, _ in _listeners(environment["KAFKA_ADVERTISED_LISTENERS"]).values()
        }
        hosts |= {
            voter.split("@")[1].rsplit(":", 1)[0]
            for voter in environment["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
        }
        hosts.add(_services()[name]["hostname"])
    hosts |= {
        host.rsplit(":", 1)[0] for host in _environment(SECURITY_STEP)["BOOTSTRAP"].split(",")
    }
    for service in PROJECT_SERVICES:
        bootstrap = _environment(service)["KETENBUS_KAFKA_BOOTSTRAP"]
        hosts |= {host.rsplit(":", 1)[0] for host in bootstrap.split(",")}
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")

    _run_make_certs(tmp_path / "tls")  # the default host names
    made = {path.name for path in (tmp_path / "tls").iterdir() if path.is_dir()}

    assert set(BROKERS) == hosts
    assert hosts == made


@needs_openssl
def test_make_certs_writes_the_layout_compose_mounts(certs: Path) -> None:
    assert "*\n" == (certs / ".gitignore").read_text()
    assert 0o600 == (certs / "ca.key").stat().st_mode & 0o777
    assert 0o644 == (certs / "ca.crt").stat().st_mode & 0o777
    for name in BROKERS:
        for file in BROKER_TLS_FILES:
            assert (certs / name / file).is_file(), (name, file)
        assert 0o600 == (certs / name / "broker.key").stat().st_mode & 0o777, name
        assert 0o644 == (certs / name / "broker.crt").stat().st_mode & 0o777, name
        assert (certs / "ca.crt").read_text() == (certs / name / "ca.crt").read_text(), name
        # What Kafka's PEM keystore reads: one unencrypted PKCS#8 key, then leaf and CA.
        key = (certs / name / "broker.key").read_text()
        assert key.startswith("-----BEGIN PRIVATE KEY-----\n"), name
        assert 1 == key.count("-----BEGIN"), name
        chain = _pem_certificates(certs / name / "broker.crt")
        assert 2 == len(chain), name
        assert _pem_certificates(certs / "ca.crt") == chain[1:], name


@needs_openssl
@pytest.mark.parametrize("broker", BROKERS)
def test_each_broker_certificate_verifies_with_openssl_for_its_host_name_only(
    certs: Path, broker: str, tmp_path: Path
) -> None:
    leaf = tmp_path / "leaf.crt"
    leaf.write_text(_pem_certificates(certs / broker / "broker.crt")[0])

    def verify(host: str) -> subprocess.CompletedProcess[str]:
        command = ["openssl", "verify", "-x509_strict", "-purpose", "sslserver"]
        command += ["-verify_hostname", host, "-CAfile", str(certs / "ca.crt"), str(leaf)]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    assert 0 == verify(broker).returncode, verify(broker).stdout + verify(broker).stderr
    for other in set(BROKERS) - {broker}:
        assert 0 != verify(other).returncode, other


@needs_openssl
@pytest.mark.parametrize("broker", BROKERS)
def test_a_service_with_the_compose_cafile_accepts_each_broker_by_its_name_only(
    certs: Path, broker: str, tmp_path: Path
) -> None:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(_keystore(certs, broker, tmp_path))
    client = _sasl_ssl_client(certs / "ca.crt")

    assert _handshake(server, client, broker) in {"TLSv1.2", "TLSv1.3"}
    for other in set(BROKERS) - {broker}:
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            _handshake(server, _sasl_ssl_client(certs / "ca.crt"), other)


@needs_openssl
def test_a_broker_certificate_from_another_ca_is_refused(certs: Path, tmp_path: Path) -> None:
    _run_make_certs(tmp_path / "other", "kafka-1")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(_keystore(tmp_path / "other", "kafka-1", tmp_path))

    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        _handshake(server, _sasl_ssl_client(certs / "ca.crt"), "kafka-1")


@needs_openssl
def test_running_make_certs_again_keeps_the_ca_and_renews_the_broker_certificates(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "tls"
    _run_make_certs(directory, "kafka-1")
    ca, first = (
        (directory / "ca.crt").read_text(),
        (directory / "kafka-1" / "broker.crt").read_text(),
    )

    again = _run_make_certs(directory, "kafka-1")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(_keystore(directory, "kafka-1", tmp_path))

    assert "keeping" in again.stdout
    assert ca == (directory / "ca.crt").read_text()
    assert first != (directory / "kafka-1" / "broker.crt").read_text()
    assert _handshake(server, _sasl_ssl_client(directory / "ca.crt"), "kafka-1")


@needs_openssl
def test_make_certs_defaults_to_the_compose_tls_directory_and_broker_names(
    tmp_path: Path,
) -> None:
    # A copy of the repository's layout, so that the default directory is the copy's.
    script = tmp_path / "repo" / "deploy" / "kafka" / "make-certs.sh"
    script.parent.mkdir(parents=True)
    shutil.copy(MAKE_CERTS, script)

    _run_make_certs(script=script)
    made = tmp_path / "repo" / _tls_sources_root().relative_to(REPO)

    assert set(BROKERS) == {path.name for path in made.iterdir() if path.is_dir()}
    assert (made / "ca.crt").is_file()


@needs_openssl
def test_make_certs_refuses_half_a_ca_and_a_bad_host_name(tmp_path: Path) -> None:
    directory = tmp_path / "tls"
    _run_make_certs(directory, "kafka-1")
    (directory / "ca.key").unlink()

    half = _run_make_certs(directory, "kafka-1", check=False)
    bad_host = _run_make_certs(tmp_path / "other", "kafka_1;rm", check=False)

    assert 0 != half.returncode
    assert "ca.key" in half.stderr
    assert 0 != bad_host.returncode
    assert "not a host name" in bad_host.stderr
    assert not (tmp_path / "other").exists()
