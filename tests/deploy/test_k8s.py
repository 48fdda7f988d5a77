"""deploy/k8s renders to valid Kubernetes, Strimzi and KEDA objects that match the code.

The base and the production overlay are rendered with `kubectl kustomize` (offline);
every object is validated, the core ones against the Kubernetes schemas that
`kubernetes-validate` bundles and the custom resources against the operators' schemas
in deploy/k8s/schemas, unknown fields rejected as the API server's strict field
validation does. Then what they say is checked against the code and the registry:
the topics, the Kafka users and their ACLs (the same as deploy/kafka/acls.sh), the
consumer groups KEDA scales on, the settings each service reads, the probes, the
network flows and that no secret is written anywhere.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from contracts import topics
from contracts.registry import AgencyRegistry
from services.cli import app as cli_app
from services.runtime.config.settings import Settings
from services.runtime.kafka.acl import (
    ROUTER_GROUP,
    SERVICE_PRINCIPALS,
    TRACKER_GROUP,
    Acl,
    Operation,
    PatternType,
    ResourceType,
    agency_principal,
    as_strimzi,
    kafka_acls,
)
from services.runtime.kafka.lag import bus_groups
from services.runtime.kafka.topics import bus_topics

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
BASE = K8S / "base"
PRODUCTION = K8S / "overlays" / "production"
SCHEMAS = K8S / "schemas"
STRIMZI_FILE = BASE / "kafka" / "strimzi.yaml"
REGISTRY_COPY = BASE / "agencies.yaml"
REGISTRY = REPO / "deploy" / "agencies.yaml"
ACLS_SCRIPT = REPO / "deploy" / "kafka" / "acls.sh"
COMPOSE_FILE = REPO / "docker-compose.yml"
ALEMBIC_INI = REPO / "deploy" / "migrations" / "alembic.ini"
DOCKERFILE = REPO / "Dockerfile"

KUBERNETES_VERSION = "1.32"
"""The Kubernetes release the core objects are validated against (kubectl here is 1.32)."""

OVERLAYS = {"base": BASE, "production": PRODUCTION}
SERVICES = ("router", "tracker", "escalation", "gateway", "console")
"""The long-running services, each a Deployment `ketenbus-<name>` of component <name>."""
KEDA_SCALED = {"router": ROUTER_GROUP, "tracker": TRACKER_GROUP}
"""The services KEDA scales, with the consumer group whose lag it scales them on."""
MIGRATION_COMMAND = ["alembic", "-c", "deploy/migrations/alembic.ini", "upgrade", "head"]
IMAGE_WORKDIR = "/app"
KAFKA_PORT = 9093
POSTGRES_PORT = 5432
WEBHOOK_PORT = 443
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|DATABASE_URL")
"""Settings whose value is, or holds, a credential: only ever read from a Secret."""
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
PRIVATE_RANGES = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}
"""What the gateway's webhooks never reach: private networks and the metadata service."""

CRD_SCHEMAS = {
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): "kafkatopic-kafka.strimzi.io-v1beta2.yaml",
    ("kafka.strimzi.io/v1beta2", "KafkaUser"): "kafkauser-kafka.strimzi.io-v1beta2.yaml",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-keda.sh-v1alpha1.yaml",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentication-keda.sh-v1alpha1.yaml",
}

Object = dict[str, Any]


# Rendering and validation.


@cache
def _kubectl() -> str | None:
    return shutil.which("kubectl")


@cache
def _render(overlay: str) -> tuple[Object, ...]:
    kubectl = _kubectl()
    if kubectl is None:
        pytest.skip(
            "kubectl is not installed: the kustomizations cannot be rendered "
            "(`kubectl kustomize` needs no cluster)"
        )
    result = subprocess.run(
        [kubectl, "kustomize", str(OVERLAYS[overlay])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 == result.returncode, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@cache
def _rendered_text(overlay: str) -> str:
    return yaml.safe_dump_all(_render(overlay), sort_keys=False)


def _strict(schema: Any) -> Any:
    """The schema with unknown fields rejected wherever it lists the known ones."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


@cache
def _crd_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    schema = yaml.safe_load((SCHEMAS / CRD_SCHEMAS[api_version, kind]).read_text("utf-8"))
    return jsonschema.Draft7Validator(_strict(schema))


def _problems(obj: Object) -> list[str]:
    """Why `obj` is not a valid object of its kind; empty when it is."""
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in CRD_SCHEMAS:
        problems = [
            f"{name}: {'.'.join(map(str, error.path))}: {error.message}"
            for error in _crd_validator(*key).iter_errors(obj)
        ]
        # The custom resources' metadata is an ObjectMeta like any other object's.
        meta: Object = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata")}
        problems += [f"{name}: metadata: {p}" for p in _core_problems(meta)]
    else:
        problems = [f"{name}: {p}" for p in _core_problems(obj)]
    metadata_name = obj.get("metadata", {}).get("name", "")
    if len(metadata_name) > 253 or not DNS_1123.match(metadata_name):
        problems.append(f"{name}: metadata.name is not a DNS-1123 name")
    return problems


def _core_problems(obj: Object) -> list[str]:
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{'.'.join(map(str, error.path))}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [error.message]
    return []


# What the rendered objects say.


def _objects(overlay: str, kind: str) -> list[Object]:
    return [obj for obj in _render(overlay) if obj["kind"] == kind]


def _named(overlay: str, kind: str, name: str) -> Object:
    (found,) = [obj for obj in _objects(overlay, kind) if obj["metadata"]["name"] == name]
    return found


def _workloads(overlay: str) -> list[Object]:
    """The Deployments and the Job: everything that runs a pod of the bus."""
    return _objects(overlay, "Deployment") + _objects(overlay, "Job")


def _pod(workload: Object) -> Object:
    spec: Object = workload["spec"]["template"]["spec"]
    return spec


def _container(overlay: str, service: str) -> Object:
    (container,) = _pod(_named(overlay, "Deployment", f"ketenbus-{service}"))["containers"]
    return container


def _config_map(overlay: str, name: str) -> Object:
    """A generated ConfigMap by the name it was generated under (without its hash)."""
    (found,) = [
        obj
        for obj in _objects(overlay, "ConfigMap")
        if re.fullmatch(rf"{name}-[a-z0-9]{{10}}", obj["metadata"]["name"])
    ]
    return found


def _environment(overlay: str, container: Object) -> dict[str, str | Object]:
    """A container's settings: from its ConfigMaps (envFrom), then its own `env`."""
    env: dict[str, str | Object] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, f"envFrom other than a ConfigMap: {source}"
        (config_map,) = [
            obj
            for obj in _objects(overlay, "ConfigMap")
            if obj["metadata"]["name"] == source["configMapRef"]["name"]
        ]
        env |= config_map["data"]
    for entry in container.get("env", []):
        env[entry["name"]] = entry["value"] if "value" in entry else entry["valueFrom"]
    return env


def _text_env(overlay: str, service: str) -> dict[str, str]:
    return {
        name: value
        for name, value in _environment(overlay, _container(overlay, service)).items()
        if isinstance(value, str)
    }


def _secret_ref(value: str | Object) -> tuple[str, str]:
    assert isinstance(value, dict), f"not read from a Secret: {value!r}"
    assert set(value) == {"secretKeyRef"}, value
    return value["secretKeyRef"]["name"], value["secretKeyRef"]["key"]


def _port(container: Object, port: int | str) -> int:
    """A probe's port as a number: a named port is looked up in the container."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


def _cluster(overlay: str) -> str:
    (name,) = {
        obj["metadata"]["labels"]["strimzi.io/cluster"]
        for kind in ("KafkaTopic", "KafkaUser")
        for obj in _objects(overlay, kind)
    }
    return str(name)


def _strimzi_acls(user: Object) -> set[tuple[str, str, str, str, str, str]]:
    """A KafkaUser's ACLs, one tuple per operation:
    (principal, resource type, name, pattern, operation, host), in kafka-acls.sh's terms."""
    principal = f"User:{user['metadata']['name']}"
    found = set()
    for rule in user["spec"]["authorization"]["acls"]:
        assert "allow" == rule.get("type", "allow")
        resource = rule["resource"]
        pattern = {"literal": "LITERAL", "prefix": "PREFIXED"}[
            resource.get("patternType", "literal")
        ]
        for operation in rule["operations"]:
            found.add(
                (
                    principal,
                    resource["type"].upper(),
                    resource.get("name", "kafka-cluster"),
                    pattern,
                    operation.upper(),
                    rule.get("host", "*"),
                )
            )
    return found


def _script_acls() -> set[tuple[str, str, str, str, str, str]]:
    """Every ACL deploy/kafka/acls.sh adds, in the same terms as `_strimzi_acls`."""
    found = set()
    for line in ACLS_SCRIPT.read_text(encoding="utf-8").splitlines():
        if not line.startswith("kafka-acls.sh"):
            continue
        words = shlex.split(line)
        if "--cluster" in words:
            resource, name = "CLUSTER", "kafka-cluster"
        else:
            flag = next(w for w in words if w in ("--topic", "--group", "--transactional-id"))
            resource, name = flag.removeprefix("--").upper(), words[words.index(flag) + 1]
        prefixed = "--resource-pattern-type" in words
        host = words[words.index("--allow-host") + 1] if "--allow-host" in words else "*"
        found.add(
            (
                words[words.index("--allow-principal") + 1],
                resource,
                name,
                "PREFIXED" if prefixed else "LITERAL",
                words[words.index("--operation") + 1].upper(),
                host,
            )
        )
    return found


def _code_acls(acls: list[Acl]) -> set[tuple[str, str, str, str, str, str]]:
    return {
        (a.principal, a.resource_type, a.resource_name, a.pattern_type, a.operation, "*")
        for a in acls
    }


@cache
def _compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]
    return services


def _compose_environment(service: str) -> dict[str, str]:
    environment = _compose_services()[service]["environment"]
    return {key: str(value) for key, value in environment.items()}


def _compose_command(service: str) -> list[str]:
    return [str(part) for part in _compose_services()[service]["command"]]


# NetworkPolicy: which flows a pod is allowed, as the policies selecting it say.


def _selects(selector: Object, labels: dict[str, str]) -> bool:
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _peer(peer: Object) -> str:
    """What a NetworkPolicy peer is, by the labels or range it names."""
    namespace = peer.get("namespaceSelector", {}).get("matchLabels", {})
    pods = peer.get("podSelector", {})
    labels = pods.get("matchLabels", {})
    if "ipBlock" in peer:
        version = ipaddress.ip_network(peer["ipBlock"]["cidr"]).version
        return f"internet-v{version}"
    if namespace.get("kubernetes.io/metadata.name") == "kube-system":
        return "dns" if labels == {"k8s-app": "kube-dns"} else f"kube-system {labels}"
    if namespace.get("kubernetes.io/metadata.name") == "ingress-nginx" and not pods:
        return "ingress-controller"
    if labels.get("strimzi.io/kind") == "Kafka":
        return "kafka"
    if labels.get("app.kubernetes.io/name") == "postgresql":
        return "postgres"
    if labels == {"app.kubernetes.io/name": "ketenbus", "app.kubernetes.io/component": "console"}:
        return "console"
    expressions = pods.get("matchExpressions", [])
    if expressions == [
        {
            "key": "app.kubernetes.io/component",
            "operator": "In",
            "values": ["router", "tracker", "escalation", "gateway"],
        }
    ]:
        return "services"
    return json.dumps(peer, sort_keys=True)


def _flows(overlay: str, labels: dict[str, str], direction: str) -> set[str]:
    """`peer port/protocol` for every flow the namespace's policies allow a pod."""
    key, peers = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    flows = set()
    for policy in _objects(overlay, "NetworkPolicy"):
        spec = policy["spec"]
        if direction not in spec["policyTypes"] or not _selects(spec["podSelector"], labels):
            continue
        for rule in spec.get(key, []):
            for peer in rule.get(peers, [{"everything": True}]):
                for port in rule.get("ports", [{"port": "any", "protocol": "any"}]):
                    flows.add(f"{_peer(peer)} {port['port']}/{port.get('protocol', 'TCP')}")
    return flows


def _pod_labels(overlay: str, component: str) -> dict[str, str]:
    (workload,) = [
        w
        for w in _workloads(overlay)
        if w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


# The tests: validity.


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_validates_against_its_schema(overlay: str) -> None:
    """Core objects against Kubernetes 1.32's schemas, Strimzi's and KEDA's against
    theirs; unknown fields are errors, and every name is a DNS-1123 name."""
    objects = _render(overlay)

    assert [] == [problem for obj in objects for problem in _problems(obj)]
    assert {kind for _, kind in CRD_SCHEMAS} <= {obj["kind"] for obj in objects}


def _broken(path: Path, kind: str, breaks: str) -> Object:
    """The first `kind` in a committed manifest, broken as `breaks` says."""
    obj = copy.deepcopy(
        next(doc for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc["kind"] == kind)
    )
    obj["metadata"]["namespace"] = "ketenbus"
    if breaks == "unknown field":
        obj["spec"]["partitons"] = 6
    elif breaks == "wrong type":
        obj["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    elif breaks == "unknown operation":
        obj["spec"]["authorization"]["acls"][0]["operations"] = ["Reed"]
    elif breaks == "missing required field":
        del obj["spec"]["triggers"]
    elif breaks == "missing secret key":
        del obj["spec"]["secretTargetRef"][0]["key"]
    elif breaks == "bad metadata":
        obj["metadata"]["labels"] = {"strimzi.io/cluster": 7}
    elif breaks == "bad name":
        obj["metadata"]["name"] = "ketenbus.cases_topic"
    return obj


@pytest.mark.parametrize(
    ("path", "kind", "breaks"),
    [
        (BASE / "router.yaml", "Deployment", "wrong type"),
        (BASE / "router.yaml", "Deployment", "unknown field"),
        (STRIMZI_FILE, "KafkaTopic", "unknown field"),
        (STRIMZI_FILE, "KafkaTopic", "bad metadata"),
        (STRIMZI_FILE, "KafkaTopic", "bad name"),
        (STRIMZI_FILE, "KafkaUser", "unknown operation"),
        (BASE / "keda.yaml", "ScaledObject", "missing required field"),
        (BASE / "keda.yaml", "TriggerAuthentication", "missing secret key"),
    ],
)
def test_a_broken_object_fails_validation(path: Path, kind: str, breaks: str) -> None:
    """The validation is not vacuous: each kind's committed object passes, and the same
    object with one mistake fails."""
    intact = _broken(path, kind, "nothing")
    broken = _broken(path, kind, breaks)

    assert [] == _problems(intact)
    assert [] != _problems(broken)


# The Strimzi resources: the registry's topics and users, the ACLs of acls.sh.


def test_the_committed_strimzi_resources_are_the_ones_generated_from_the_registry(
    registry: AgencyRegistry,
) -> None:
    """deploy/k8s/base/kafka/strimzi.yaml is what `ketenbus acl --format strimzi` prints
    for deploy/agencies.yaml."""
    expected = as_strimzi(
        kafka_acls(registry), bus_topics(registry), partitions=Settings().topic_partitions
    )
    result = CliRunner().invoke(
        cli_app, ["acl", "--format", "strimzi"], env={"KETENBUS_REGISTRY": str(REGISTRY)}
    )

    assert 0 == result.exit_code, result.output
    assert expected == result.stdout
    assert expected == STRIMZI_FILE.read_text(encoding="utf-8"), (
        "deploy/k8s/base/kafka/strimzi.yaml is stale: run "
        "`ketenbus acl --format strimzi > deploy/k8s/base/kafka/strimzi.yaml`"
    )


def test_the_strimzi_users_carry_exactly_the_acls_of_the_acls_script(
    registry: AgencyRegistry,
) -> None:
    """Per user, the same (resource type, name, pattern, operation, host) set as
    deploy/kafka/acls.sh adds for that principal, and as the code computes."""
    users = [doc for doc in yaml.safe_load_all(STRIMZI_FILE.read_text("utf-8")) if doc]
    strimzi = set().union(*(_strimzi_acls(u) for u in users if u["kind"] == "KafkaUser"))
    script = _script_acls()
    principals = {acl[0] for acl in script}

    assert principals == {
        f"User:{u['metadata']['name']}" for u in users if u["kind"] == "KafkaUser"
    }
    for principal in sorted(principals):
        assert {a for a in script if a[0] == principal} == {
            a for a in strimzi if a[0] == principal
        }, principal
    assert _code_acls(kafka_acls(registry)) == strimzi


def test_the_strimzi_output_renders_every_resource_type_and_pattern_it_may_meet() -> None:
    """A cluster ACL has no name, a prefixed one the `prefix` pattern; operations on one
    resource share one rule, in the order granted."""
    acls = [
        Acl("User:x", ResourceType.CLUSTER, "kafka-cluster", PatternType.LITERAL, Operation.CREATE),
        Acl("User:x", ResourceType.GROUP, "x-", PatternType.PREFIXED, Operation.READ),
        Acl("User:x", ResourceType.TOPIC, "a.b", PatternType.LITERAL, Operation.WRITE),
        Acl("User:x", ResourceType.TOPIC, "a.b", PatternType.LITERAL, Operation.DESCRIBE),
    ]

    (topic, user) = list(yaml.safe_load_all(as_strimzi(acls, ["a.b"], partitions=2)))

    assert {"name": "a-b", "labels": {"strimzi.io/cluster": "ketenbus"}} == topic["metadata"]
    assert {"topicName": "a.b", "partitions": 2, "replicas": 3} == {
        k: v for k, v in topic["spec"].items() if k != "config"
    }
    assert [
        {"type": "allow", "resource": {"type": "cluster"}, "operations": ["Create"], "host": "*"},
        {
            "type": "allow",
            "resource": {"type": "group", "name": "x-", "patternType": "prefix"},
            "operations": ["Read"],
            "host": "*",
        },
        {
            "type": "allow",
            "resource": {"type": "topic", "name": "a.b", "patternType": "literal"},
            "operations": ["Write", "Describe"],
            "host": "*",
        },
    ] == user["spec"]["authorization"]["acls"]
    assert [] == _problems(topic) + _problems(user)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_bus_topic_has_one_kafka_topic_and_there_is_no_other(
    overlay: str, registry: AgencyRegistry
) -> None:
    """One KafkaTopic per topic of `bus_topics(registry)`, replicated three times with
    two in sync, named as its topic with `-` for `.`."""
    kafka_topics = _objects(overlay, "KafkaTopic")

    assert sorted(bus_topics(registry)) == sorted(t["spec"]["topicName"] for t in kafka_topics)
    for topic in kafka_topics:
        assert topic["spec"]["topicName"].replace(".", "-") == topic["metadata"]["name"]
        assert 3 == topic["spec"]["replicas"]
        assert {"min.insync.replicas": 2} == topic["spec"]["config"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_and_agency_has_a_kafka_user_with_exactly_its_acls(
    overlay: str, registry: AgencyRegistry
) -> None:
    """A SCRAM-SHA-512 KafkaUser, simple authorization, per agency and per service
    principal (the topic set-up's `init` included), its ACLs those of `kafka_acls`."""
    users = _objects(overlay, "KafkaUser")
    acls = kafka_acls(registry)
    principals = {agency_principal(a.code) for a in registry.agencies} | set(
        SERVICE_PRINCIPALS.values()
    )

    assert sorted(principals) == sorted(f"User:{u['metadata']['name']}" for u in users)
    for user in users:
        principal = f"User:{user['metadata']['name']}"
        assert {"type": "scram-sha-512"} == user["spec"]["authentication"]
        assert "simple" == user["spec"]["authorization"]["type"]
        assert _code_acls([a for a in acls if a.principal == principal]) == _strimzi_acls(user)


def test_the_registry_config_map_is_deploy_agencies_yaml() -> None:
    """Kustomize reads no file outside its directory, so the base keeps a copy of the
    registry: it must be deploy/agencies.yaml as it is."""
    assert REGISTRY.read_text(encoding="utf-8") == REGISTRY_COPY.read_text(encoding="utf-8"), (
        "deploy/k8s/base/agencies.yaml is stale: cp deploy/agencies.yaml deploy/k8s/base/"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_reads_the_registry_config_map_at_its_registry_path(overlay: str) -> None:
    """KETENBUS_REGISTRY names the file the registry ConfigMap is mounted as."""
    registry_map = _config_map(overlay, "ketenbus-registry")

    assert {"agencies.yaml": REGISTRY.read_text(encoding="utf-8")} == registry_map["data"]
    for service in SERVICES:
        container = _container(overlay, service)
        pod = _pod(_named(overlay, "Deployment", f"ketenbus-{service}"))
        (mount,) = [
            m
            for m in container["volumeMounts"]
            if m["mountPath"] == _text_env(overlay, service)["KETENBUS_REGISTRY"]
        ]
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        assert {"name": registry_map["metadata"]["name"]} == volume["configMap"]
        assert ("agencies.yaml", True) == (mount["subPath"], mount["readOnly"])


# The workloads.


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_probes_healthz_on_its_services_health_port(overlay: str) -> None:
    """Startup, readiness and liveness: GET /healthz on the port the service serves it on
    (KETENBUS_HEALTH_PORT; the console's on KETENBUS_CONSOLE_PORT)."""
    for service in SERVICES:
        container = _container(overlay, service)
        env = _text_env(overlay, service)
        port = env["KETENBUS_CONSOLE_PORT" if service == "console" else "KETENBUS_HEALTH_PORT"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            check = container[probe]["httpGet"]
            assert ("/healthz", int(port)) == (check["path"], _port(container, check["port"])), (
                service,
                probe,
            )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_runs_its_module_with_the_settings_compose_gives_it(overlay: str) -> None:
    """The command of docker-compose.yml, and every setting it sets (the topic set-up's
    partitions aside: Strimzi makes the topics), the non-secret ones with the same value;
    and no setting the code does not have."""
    same_value = {
        "KETENBUS_KAFKA_SECURITY_PROTOCOL",
        "KETENBUS_KAFKA_SASL_MECHANISM",
        "KETENBUS_KAFKA_SSL_CAFILE",
        "KETENBUS_KAFKA_SASL_USERNAME",
        "KETENBUS_LOG_FORMAT",
        "KETENBUS_REGISTRY",
        "KETENBUS_HEALTH_HOST",
        "KETENBUS_HEALTH_PORT",
        "KETENBUS_GATEWAY_HOST",
        "KETENBUS_GATEWAY_PORT",
        "KETENBUS_CONSOLE_HOST",
        "KETENBUS_CONSOLE_PORT",
    }
    known = {f"KETENBUS_{name.upper()}" for name in Settings.model_fields}
    for service in SERVICES:
        container = _container(overlay, service)
        env = _environment(overlay, container)
        compose = _compose_environment(service)
        assert _compose_command(service) == container["command"]
        assert set() == set(compose) - {"KETENBUS_TOPIC_PARTITIONS"} - set(env), service
        assert set() == set(env) - known, service
        for name in same_value & set(compose):
            assert compose[name] == env[name], (service, name)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_console_checks_every_services_healthz_through_its_service(overlay: str) -> None:
    """KETENBUS_HEALTH_TARGETS names each service's /healthz by the Service in front of
    that service's pods, on the port that reaches their health port."""
    targets = json.loads(_text_env(overlay, "console")["KETENBUS_HEALTH_TARGETS"])

    assert {"router", "tracker", "escalation", "gateway"} == set(targets)
    for service, url in targets.items():
        parts = urlsplit(url)
        front = _named(overlay, "Service", parts.hostname or "")
        (port,) = [p for p in front["spec"]["ports"] if p["port"] == parts.port]
        container = _container(overlay, service)
        assert "/healthz" == parts.path
        assert service == front["spec"]["selector"]["app.kubernetes.io/component"]
        assert int(_text_env(overlay, service)["KETENBUS_HEALTH_PORT"]) == _port(
            container, port["targetPort"]
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_cpu_and_memory_requests_and_limits(overlay: str) -> None:
    """Requests to schedule by, limits to stay within."""
    for workload in _workloads(overlay):
        for container in _pod(workload)["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} == set(resources["requests"]), workload["metadata"]["name"]
            assert {"cpu", "memory"} == set(resources["limits"]), workload["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_as_a_non_root_user_without_privileges_or_api_token(overlay: str) -> None:
    """The image's user 10001, no privilege escalation, no capabilities, a read-only root
    file system, no service account token, and no service links (they would put
    KETENBUS_CONSOLE_PORT=tcp://... in the environment, which the settings read)."""
    for workload in _workloads(overlay):
        name = workload["metadata"]["name"]
        pod = _pod(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert 10001 == pod["securityContext"]["runAsUser"], name
        assert {"type": "RuntimeDefault"} == pod["securityContext"]["seccompProfile"], name
        assert (False, False) == (pod["automountServiceAccountToken"], pod["enableServiceLinks"])
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert {"drop": ["ALL"]} == context["capabilities"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_only_referenced_never_written(overlay: str) -> None:
    """No Secret is rendered, no ConfigMap holds a credential, and every password,
    secret, token and database URL is read by secretKeyRef; the Kafka password is the
    Secret Strimzi made for the service's own user."""
    text = _rendered_text(overlay)

    assert [] == _objects(overlay, "Secret")
    assert [] == re.findall(
        r"KETENBUS_\w*(?:PASSWORD|SECRET|TOKEN|DATABASE_URL)\w*\n\s*value:", text
    )
    for config_map in _objects(overlay, "ConfigMap"):
        assert [] == [key for key in config_map.get("data", {}) if SECRET_NAME.search(key)]
    for workload in _workloads(overlay):
        for container in _pod(workload)["containers"]:
            env = _environment(overlay, container)
            for name, value in env.items():
                if SECRET_NAME.search(name):
                    _secret_ref(value)
            if "KETENBUS_KAFKA_SASL_PASSWORD" in env:
                user = env["KETENBUS_KAFKA_SASL_USERNAME"]
                assert (user, "password") == _secret_ref(env["KETENBUS_KAFKA_SASL_PASSWORD"])
                assert f"User:{user}" == SERVICE_PRINCIPALS[container["name"]]
                _named(overlay, "KafkaUser", str(user))


def test_the_console_reads_its_session_secret_from_a_secret() -> None:
    """The console refuses to start beside a cluster without KETENBUS_CONSOLE_SECRET: every
    replica reads the same one from the Secret ketenbus-console-session."""
    env = _environment("production", _container("production", "console"))

    assert ("ketenbus-console-session", "secret") == _secret_ref(env["KETENBUS_CONSOLE_SECRET"])
    assert ("ketenbus-database", "url") == _secret_ref(env["KETENBUS_DATABASE_URL"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_migration_job_runs_the_projects_alembic_upgrade(overlay: str) -> None:
    """`alembic -c deploy/migrations/alembic.ini upgrade head` (the operators' command in
    that file) in the image's working directory, which holds deploy/, on the database of
    the Secret."""
    (job,) = _objects(overlay, "Job")
    (container,) = _pod(job)["containers"]
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")

    assert MIGRATION_COMMAND == container["command"]
    assert IMAGE_WORKDIR == container["workingDir"]
    assert f"alembic -c {MIGRATION_COMMAND[2]}" in ALEMBIC_INI.read_text(encoding="utf-8")
    assert (REPO / MIGRATION_COMMAND[2]).is_file()
    assert f"WORKDIR {IMAGE_WORKDIR}" in dockerfile
    assert re.search(r"^COPY deploy \./deploy$", dockerfile, re.MULTILINE)
    assert ("ketenbus-database", "url") == _secret_ref(
        _environment(overlay, container)["KETENBUS_DATABASE_URL"]
    )
    assert "Never" == _pod(job)["restartPolicy"]


# Scaling.


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_scales_the_router_and_the_tracker_on_their_real_consumer_groups(
    overlay: str, registry: AgencyRegistry
) -> None:
    """A ScaledObject per scaled service, on its Deployment (which then sets no replicas
    itself), on the lag of the group the service joins, reading the group's topics, over
    SASL_SSL as the service's own Kafka user; never more replicas than partitions."""
    groups = bus_groups(registry)
    partitions = {
        t["spec"]["topicName"]: t["spec"]["partitions"] for t in _objects(overlay, "KafkaTopic")
    }
    scaled = _objects(overlay, "ScaledObject")

    assert sorted(f"ketenbus-{s}" for s in KEDA_SCALED) == sorted(
        s["spec"]["scaleTargetRef"]["name"] for s in scaled
    )
    for service, group in KEDA_SCALED.items():
        (scaler,) = [
            s for s in scaled if s["spec"]["scaleTargetRef"]["name"] == f"ketenbus-{service}"
        ]
        deployment = _named(overlay, "Deployment", f"ketenbus-{service}")
        (trigger,) = scaler["spec"]["triggers"]
        metadata = trigger["metadata"]
        group_topics = groups[group]
        auth = _named(overlay, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        secrets = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
        (username,) = auth["spec"]["env"]
        assert ("apps/v1", "Deployment") == (
            scaler["spec"]["scaleTargetRef"]["apiVersion"],
            scaler["spec"]["scaleTargetRef"]["kind"],
        )
        assert "replicas" not in deployment["spec"]
        assert ("kafka", group) == (trigger["type"], metadata["consumerGroup"])
        # One topic names it; a group on several topics (every outbox) counts them all.
        assert ([metadata["topic"]] if "topic" in metadata else group_topics) == group_topics
        assert ("scram_sha512", "enable") == (metadata["sasl"], metadata["tls"])
        assert (
            _text_env(overlay, service)["KETENBUS_KAFKA_BOOTSTRAP"] == metadata["bootstrapServers"]
        )
        assert ("username", "KETENBUS_KAFKA_SASL_USERNAME", service) == (
            username["parameter"],
            username["name"],
            username["containerName"],
        )
        assert (f"ketenbus-{service}", "password") == (
            secrets["password"]["name"],
            secrets["password"]["key"],
        )
        assert 1 <= scaler["spec"]["minReplicaCount"] <= scaler["spec"]["maxReplicaCount"]
        assert scaler["spec"]["maxReplicaCount"] <= min(partitions[t] for t in group_topics)
    assert {topics.CASES} == set(groups[TRACKER_GROUP])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_kafka_cluster_is_named_the_same_everywhere(overlay: str) -> None:
    """The cluster label of every topic and user is the cluster the services connect to
    (<cluster>-kafka-bootstrap, TLS port), trust (<cluster>-cluster-ca-cert), KEDA reads,
    and the NetworkPolicies open Kafka's pods for."""
    cluster = _cluster(overlay)
    namespace = _named(overlay, "Deployment", "ketenbus-router")["metadata"]["namespace"]
    bootstrap = f"{cluster}-kafka-bootstrap.{namespace}.svc:{KAFKA_PORT}"
    ca_secret = f"{cluster}-cluster-ca-cert"

    assert {bootstrap} == {
        _text_env(overlay, service)["KETENBUS_KAFKA_BOOTSTRAP"] for service in SERVICES
    }
    assert {bootstrap} == {
        s["spec"]["triggers"][0]["metadata"]["bootstrapServers"]
        for s in _objects(overlay, "ScaledObject")
    }
    for service in SERVICES:
        pod = _pod(_named(overlay, "Deployment", f"ketenbus-{service}"))
        (volume,) = [v for v in pod["volumes"] if v["name"] == "kafka-ca"]
        assert ca_secret == volume["secret"]["secretName"]
    for auth in _objects(overlay, "TriggerAuthentication"):
        (ca,) = [ref for ref in auth["spec"]["secretTargetRef"] if ref["parameter"] == "ca"]
        assert (ca_secret, "ca.crt") == (ca["name"], ca["key"])
    kafka_peer = _named(overlay, "NetworkPolicy", "ketenbus-kafka")["spec"]["egress"][0]["to"][0]
    strimzi = _named(overlay, "NetworkPolicy", "ketenbus-strimzi-egress")["spec"]["podSelector"]
    assert cluster == kafka_peer["podSelector"]["matchLabels"]["strimzi.io/cluster"]
    assert {"strimzi.io/cluster": cluster} == strimzi["matchLabels"]


def test_production_names_its_own_kafka_cluster_image_and_partitions() -> None:
    """The overlay, not the base, says which Kafka cluster, which release of the image,
    and how many partitions (six, as docker-compose.yml)."""
    images = {c["image"] for w in _workloads("production") for c in _pod(w)["containers"]}

    assert "ketenbus" == _cluster("base")
    assert "ketenbus" != _cluster("production")
    (image,) = images
    name, _, tag = image.rpartition(":")
    assert "/" in name
    assert tag not in ("", "latest")
    assert {6} == {t["spec"]["partitions"] for t in _objects("production", "KafkaTopic")}
    assert "6" == _compose_environment("router")["KETENBUS_TOPIC_PARTITIONS"]


def test_production_runs_two_or_more_of_each_service_spread_and_budgeted() -> None:
    """Two replicas at least (from the ScaledObject where KEDA scales), a budget that keeps
    one running, and replicas spread over nodes."""
    for service in SERVICES:
        deployment = _named("production", "Deployment", f"ketenbus-{service}")
        selector = deployment["spec"]["selector"]["matchLabels"]
        replicas = (
            _named("production", "ScaledObject", f"ketenbus-{service}")["spec"]["minReplicaCount"]
            if service in KEDA_SCALED
            else deployment["spec"]["replicas"]
        )
        budget = _named("production", "PodDisruptionBudget", f"ketenbus-{service}")
        spread = _pod(deployment)["topologySpreadConstraints"]
        assert replicas >= 2, service
        assert (1, selector) == (
            budget["spec"]["minAvailable"],
            budget["spec"]["selector"]["matchLabels"],
        )
        assert "kubernetes.io/hostname" in {s["topologyKey"] for s in spread}
        assert all(selector == s["labelSelector"]["matchLabels"] for s in spread)


def test_the_base_budgets_let_a_single_replica_be_drained() -> None:
    """One replica and minAvailable 1 would block every node drain; the base allows one
    pod of each service to be evicted."""
    for budget in _objects("base", "PodDisruptionBudget"):
        assert {"maxUnavailable": 1} == {
            k: v for k, v in budget["spec"].items() if k in ("maxUnavailable", "minAvailable")
        }


# Network flows.

_DNS = {"dns 53/UDP", "dns 53/TCP"}
_BUS_CLIENT = _DNS | {f"kafka {KAFKA_PORT}/TCP", f"postgres {POSTGRES_PORT}/TCP"}
EXPECTED_EGRESS = {
    "router": _BUS_CLIENT,
    "tracker": _BUS_CLIENT,
    "escalation": _BUS_CLIENT,
    "gateway": _BUS_CLIENT | {f"internet-v4 {WEBHOOK_PORT}/TCP", f"internet-v6 {WEBHOOK_PORT}/TCP"},
    "console": _BUS_CLIENT | {"services 8081/TCP"},
    "migrate": _DNS | {f"postgres {POSTGRES_PORT}/TCP"},
}
EXPECTED_INGRESS = {
    "router": {"console 8081/TCP"},
    "tracker": {"console 8081/TCP"},
    "escalation": {"console 8081/TCP"},
    "gateway": {"console 8081/TCP", "ingress-controller 8090/TCP"},
    "console": {"ingress-controller 8080/TCP"},
    "migrate": set(),
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_namespace_denies_all_traffic_but_the_flows_the_bus_needs(overlay: str) -> None:
    """A default deny selects every pod both ways; each bus pod may then reach only DNS,
    Kafka's brokers on the TLS listener and PostgreSQL (the console also the services'
    health port, the gateway https outside the cluster), and be reached only by the
    console on its health port and by the ingress controller on the console's and the
    gateway's HTTP port."""
    deny = _named(overlay, "NetworkPolicy", "ketenbus-default-deny")["spec"]

    assert ({}, ["Ingress", "Egress"]) == (deny["podSelector"], deny["policyTypes"])
    for component, egress in EXPECTED_EGRESS.items():
        labels = _pod_labels(overlay, component)
        assert egress == _flows(overlay, labels, "Egress"), component
        assert EXPECTED_INGRESS[component] == _flows(overlay, labels, "Ingress"), component


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_network_ports_are_the_ports_the_services_listen_on(overlay: str) -> None:
    """The health port the console may reach, and the HTTP ports the ingress controller
    may reach, are the containers' own."""
    assert {8081} == {
        int(_text_env(overlay, s)["KETENBUS_HEALTH_PORT"])
        for s in ("router", "tracker", "escalation", "gateway")
    }
    assert 8080 == int(_text_env(overlay, "console")["KETENBUS_CONSOLE_PORT"])
    assert 8090 == int(_text_env(overlay, "gateway")["KETENBUS_GATEWAY_PORT"])
    assert KAFKA_PORT == int(
        _text_env(overlay, "router")["KETENBUS_KAFKA_BOOTSTRAP"].rsplit(":")[1]
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_webhooks_reach_port_443_outside_the_private_ranges_only(overlay: str) -> None:
    """The gateway's egress to anywhere excepts the private networks, the link-local
    range (cloud metadata) and loopback, for IPv4 and IPv6."""
    policy = _named(overlay, "NetworkPolicy", "ketenbus-gateway-webhooks")["spec"]
    (rule,) = policy["egress"]
    blocks = {peer["ipBlock"]["cidr"]: set(peer["ipBlock"]["except"]) for peer in rule["to"]}

    assert [{"protocol": "TCP", "port": WEBHOOK_PORT}] == rule["ports"]
    assert {"0.0.0.0/0", "::/0"} == set(blocks)
    assert set() == PRIVATE_RANGES - blocks["0.0.0.0/0"]
    assert {"fc00::/7", "fe80::/10"} <= blocks["::/0"]
