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
import subprocess
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from contracts import topics
from services.runtime.acl import SERVICE_PRINCIPALS
from services.runtime.registry_file import load_registry
from services.runtime.settings import Settings
from services.runtime.topics import bus_topics

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

BROKERS = ("kafka-1", "kafka-2", "kafka-3")
PROJECT_SERVICES = ("kafka-init", "router", "tracker", "escalation", "console")
SECURITY_STEP = "kafka-security"
ONE_SHOT_STEPS = (SECURITY_STEP, "kafka-init")
SERVICES_WITH_OWN_HEALTH = ("router", "tracker", "escalation")
INIT_MODULE = "services.runtime.topics"
PASSWORD_VARIABLE = "KETENBUS_DB_PASSWORD"
INTERPOLATED_PASSWORD = re.compile(r"^\$\{" + PASSWORD_VARIABLE + r"(:\?[^}]+)?\}$")
# `${VAR:?message}`: compose refuses to start when VAR is unset, so no default can leak in.
REQUIRED_VARIABLE = re.compile(r"^\$\{(?P<name>[A-Z][A-Z0-9_]*):\?[^}]+\}$")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN")
KAFKA_DEPLOY = REPO / "deploy" / "kafka"
CLIENT_LISTENER = "CLIENT"
STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
ADMIN_PRINCIPAL = "User:admin"
# kafka-init is the topic set-up job; its principal is `init` in services.runtime.acl.
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


def test_every_broker_requires_sasl_on_every_listener() -> None:
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
        assert {"SASL_PLAINTEXT"} == set(protocols.values()), name
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

        assert f"--bootstrap-server localhost:{port}" in test, name
        assert "--command-config /etc/kafka/secrets/admin.properties" in test, name
        assert "/etc/kafka/secrets/admin.properties" in _script_of(name).read_text("utf-8")


@pytest.mark.parametrize("service", PROJECT_SERVICES)
def test_project_service_connects_with_scram_as_its_acl_principal(service: str) -> None:
    environment = _environment(service)

    assert "SASL_PLAINTEXT" == environment["KETENBUS_KAFKA_SECURITY_PROTOCOL"]
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


@pytest.mark.parametrize("script", ["broker.sh", "security.sh", "acls.sh"])
def test_kafka_deploy_scripts_are_valid_shell(script: str) -> None:
    shell = "sh" if script == "acls.sh" else "bash"

    result = subprocess.run(
        [shell, "-n", str(KAFKA_DEPLOY / script)], capture_output=True, text=True, check=False
    )

    assert 0 == result.returncode, result.stderr
