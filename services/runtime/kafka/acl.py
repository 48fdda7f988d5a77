"""Broker-level isolation: the Kafka ACLs the agency registry implies (DESIGN "Topics").

The router already refuses an event an agency may not send; these ACLs make
the Kafka brokers enforce the topic table as well, so a leaked agency
credential reaches only that agency's own outbox and inbox, and each service
reaches only the topics and consumer group its code uses. `kafka_acls` is a
pure function of the registry; `ketenbus acl` renders its result as
`kafka-acls.sh` commands (committed as deploy/kafka/acls.sh), as JSON, or as
Strimzi `KafkaTopic` and `KafkaUser` resources (committed as
deploy/k8s/base/kafka/strimzi.yaml) that carry the same ACLs.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import yaml

from contracts import topics
from contracts.registry import AgencyRegistry
from services.runtime.kafka.topics import bus_topics


class ResourceType(StrEnum):
    TOPIC = "TOPIC"
    GROUP = "GROUP"
    CLUSTER = "CLUSTER"


class PatternType(StrEnum):
    LITERAL = "LITERAL"
    PREFIXED = "PREFIXED"


class Operation(StrEnum):
    READ = "READ"
    WRITE = "WRITE"
    DESCRIBE = "DESCRIBE"
    CREATE = "CREATE"


class Permission(StrEnum):
    ALLOW = "ALLOW"


@dataclass(frozen=True)
class Acl:
    """One Kafka ACL binding: `principal` may do `operation` on the resource (any host)."""

    principal: str
    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    operation: Operation
    permission: Permission = Permission.ALLOW


# The services' Kafka users (KETENBUS_KAFKA_SASL_USERNAME in docker-compose.yml).
ROUTER = "User:ketenbus-router"
TRACKER = "User:ketenbus-tracker"
ESCALATION = "User:ketenbus-escalation"
CONSOLE = "User:ketenbus-console"
GATEWAY = "User:ketenbus-gateway"
INIT = "User:ketenbus-init"
SERVICE_PRINCIPALS = {
    "router": ROUTER,
    "tracker": TRACKER,
    "escalation": ESCALATION,
    "console": CONSOLE,
    "gateway": GATEWAY,
    "init": INIT,
}
"""Each service's principal by service name (`init` is the topic set-up job)."""

# The consumer groups the services join (their `group_id` defaults; the tests check them).
ROUTER_GROUP = "ketenbus-router"
TRACKER_GROUP = "ketenbus-tracker"
ESCALATION_GROUP = "ketenbus-escalation"
GATEWAY_GROUP = "ketenbus-gateway"

CONSOLE_READS: tuple[str, ...] = (topics.DLQ,)
"""Topics the console reads records of: the dead letters it lists, shows and counts.
It reads by partition assignment, so it needs no consumer group."""


def agency_principal(code: str) -> str:
    """An agency's Kafka user: `User:agency-<code>`."""
    return f"User:agency-{code}"


def agency_group(code: str) -> str:
    """An agency's own consumer group; its other groups start with this name and a `-`."""
    return f"agency-{code}"


# READ and WRITE already imply DESCRIBE in Kafka; it is listed so each grant reads plainly.
_READ = (Operation.READ, Operation.DESCRIBE)
_WRITE = (Operation.WRITE, Operation.DESCRIBE)


def _on_topic(principal: str, name: str, *operations: Operation) -> list[Acl]:
    return [
        Acl(principal, ResourceType.TOPIC, name, PatternType.LITERAL, operation)
        for operation in operations
    ]


def _reads(principal: str, names: Iterable[str]) -> list[Acl]:
    return [acl for name in names for acl in _on_topic(principal, name, *_READ)]


def _writes(principal: str, names: Iterable[str]) -> list[Acl]:
    return [acl for name in names for acl in _on_topic(principal, name, *_WRITE)]


def _group(principal: str, name: str, pattern: PatternType = PatternType.LITERAL) -> Acl:
    return Acl(principal, ResourceType.GROUP, name, pattern, Operation.READ)


def kafka_acls(registry: AgencyRegistry) -> list[Acl]:
    """Every ACL the bus needs for this registry, agencies first, in registry order.

    Everything is denied that is not granted here (the brokers run with
    `allow.everyone.if.no.acl.found=false`). Agencies get only literal topic
    names, never a wildcard or a prefix.
    """
    codes = [agency.code for agency in registry.agencies]
    outboxes = [topics.outbox(code) for code in codes]
    inboxes = [topics.inbox(code) for code in codes]
    acls: list[Acl] = []
    for agency in registry.agencies:
        principal = agency_principal(agency.code)
        acls += _writes(principal, [topics.outbox(agency.code)])
        acls += _reads(principal, [topics.inbox(agency.code)])
        if agency.escalation_teams:
            acls += _reads(principal, [topics.ESCALATIONS])
        group = agency_group(agency.code)
        # Agency codes hold no `-`, so `agency-gm03-` can never match a group of `gm0363`;
        # a bare `agency-gm03` prefix would.
        acls += [_group(principal, group), _group(principal, f"{group}-", PatternType.PREFIXED)]

    acls += _reads(ROUTER, outboxes)
    acls.append(_group(ROUTER, ROUTER_GROUP))
    acls += _writes(ROUTER, [topics.CASES, *inboxes, topics.DLQ, topics.AUDIT])

    acls += _reads(TRACKER, [topics.CASES])
    acls.append(_group(TRACKER, TRACKER_GROUP))

    acls += _reads(ESCALATION, [topics.CASES])
    acls.append(_group(ESCALATION, ESCALATION_GROUP))
    acls += _writes(
        ESCALATION, [topics.ESCALATIONS, topics.CASES, *inboxes, topics.DLQ, topics.AUDIT]
    )

    acls += _reads(CONSOLE, CONSOLE_READS)
    # Lag and rates: every topic's log end (DESCRIBE) and the services' committed offsets.
    acls += [
        acl for name in bus_topics(registry) for acl in _on_topic(CONSOLE, name, Operation.DESCRIBE)
    ]
    acls += [
        Acl(CONSOLE, ResourceType.GROUP, group, PatternType.LITERAL, Operation.DESCRIBE)
        for group in (ROUTER_GROUP, TRACKER_GROUP, ESCALATION_GROUP)
    ]
    # A team's acknowledgement or resolution goes on the case log; a replayed dead
    # letter goes back to the outbox it came from, as its agency signed it.
    acls += _writes(CONSOLE, [topics.CASES, *outboxes])

    # The gateway puts what agencies send over HTTP on their outboxes, as they signed it;
    # the router checks it there like any other event.
    acls += _writes(GATEWAY, outboxes)
    # Webhooks: it reads every inbox in its own group, and a delivery it gives up goes to
    # the dead letters, with a notice to the sender's inbox, and for a handoff request its
    # receiver never got, on the case log (the escalation service escalates it from there).
    acls += _reads(GATEWAY, inboxes)
    acls.append(_group(GATEWAY, GATEWAY_GROUP))
    acls += _writes(GATEWAY, [topics.DLQ, topics.CASES, *inboxes])
    # A ZGW system's Notificaties message goes, as zgw-notificatie, straight to the inboxes
    # of its subscribers, each delivery audited (it came unsigned: the router cannot check it).
    acls += _writes(GATEWAY, [topics.AUDIT])

    # The set-up job creates exactly the topics of this registry, then waits until it sees them.
    acls += [
        acl
        for name in bus_topics(registry)
        for acl in _on_topic(INIT, name, Operation.CREATE, Operation.DESCRIBE)
    ]
    return list(dict.fromkeys(acls))


# kafka-acls.sh spells operations in camel case.
_CLI_OPERATION = {
    Operation.READ: "Read",
    Operation.WRITE: "Write",
    Operation.DESCRIBE: "Describe",
    Operation.CREATE: "Create",
}


# Left unquoted for the shell to expand: the script reads where and how to connect at run time.
_KAFKA_ACLS = 'kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG"'


def as_command(acl: Acl) -> str:
    """One `kafka-acls.sh --add` line; BOOTSTRAP and ADMIN_CONFIG come from the environment."""
    words = [
        "--add",
        "--allow-principal",
        acl.principal,
        "--operation",
        _CLI_OPERATION[acl.operation],
    ]
    if acl.resource_type is ResourceType.CLUSTER:
        words.append("--cluster")
    else:
        words += [f"--{acl.resource_type.lower()}", acl.resource_name]
    if acl.pattern_type is PatternType.PREFIXED:
        words += ["--resource-pattern-type", "prefixed"]
    return " ".join([_KAFKA_ACLS, *(shlex.quote(word) for word in words)])


def as_commands(acls: Sequence[Acl]) -> list[str]:
    """One shell-quoted `kafka-acls.sh --add` command per ACL, in order."""
    return [as_command(acl) for acl in acls]


SCRIPT_HEADER = """\
#!/bin/sh
# Generated by `ketenbus acl` from the agency registry: do not edit by hand.
# Regenerate it whenever the registry changes, and commit the result:
#
#   ketenbus acl > deploy/kafka/acls.sh
#
# Adds the Kafka ACLs of every agency and service (see "Broker-level isolation" in
# the README). Run it with BOOTSTRAP (brokers) and ADMIN_CONFIG (an admin client
# properties file) set; docker-compose.yml's kafka-security step does. Adding an
# ACL that exists is a no-op; ACLs of removed agencies are not removed.
set -eu
: "${BOOTSTRAP:?set BOOTSTRAP to the brokers}"
: "${ADMIN_CONFIG:?set ADMIN_CONFIG to an admin client properties file}"
"""


def as_script(acls: Sequence[Acl]) -> str:
    """The commands as a runnable script, grouped by principal under a comment."""
    lines = [SCRIPT_HEADER.rstrip("\n")]
    principal = None
    for acl in acls:
        if acl.principal != principal:
            principal = acl.principal
            lines += ["", f"# {principal}"]
        lines.append(as_command(acl))
    return "\n".join(lines) + "\n"


def as_json(acls: Sequence[Acl]) -> str:
    """The ACLs as a JSON array of objects, one per ACL, field names as in `Acl`."""
    return json.dumps([asdict(acl) for acl in acls], indent=2) + "\n"


# Strimzi: the same ACLs as KafkaUser resources, the topics as KafkaTopic resources.

STRIMZI_API_VERSION = "kafka.strimzi.io/v1beta2"
STRIMZI_CLUSTER = "ketenbus"
"""The Strimzi `Kafka` cluster the resources name (label `strimzi.io/cluster`); the
production overlay of deploy/k8s replaces it."""
TOPIC_REPLICAS = 3
"""Replicas of every topic, as docker-compose.yml's topic set-up creates them."""
TOPIC_MIN_INSYNC_REPLICAS = 2
"""With acks=all a write survives the loss of one broker."""

_STRIMZI_RESOURCE = {
    ResourceType.TOPIC: "topic",
    ResourceType.GROUP: "group",
    ResourceType.CLUSTER: "cluster",
}
_STRIMZI_PATTERN = {PatternType.LITERAL: "literal", PatternType.PREFIXED: "prefix"}
_STRIMZI_PERMISSION = {Permission.ALLOW: "allow"}
ANY_HOST = "*"
"""Every ACL allows any host, as kafka-acls.sh's `--allow-principal` without `--allow-host`."""

# A Kubernetes object name (DNS-1123 subdomain), at most 253 characters.
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _k8s_name(name: str, what: str) -> str:
    if len(name) > 253 or not _K8S_NAME.match(name):
        raise ValueError(f"{what} {name!r} is not a valid Kubernetes object name")
    return name


def kafka_user_name(principal: str) -> str:
    """The KafkaUser (and Kafka user) name of a `User:<name>` principal."""
    if not principal.startswith("User:"):
        raise ValueError(f"principal {principal!r} is not a User: principal")
    return _k8s_name(principal.removeprefix("User:"), "Kafka user")


def kafka_topic_resource_name(topic: str) -> str:
    """The KafkaTopic's metadata.name: the topic name with `-` for `.`; spec.topicName
    keeps the real name (a name with dots would also be valid, but Strimzi advises against
    relying on it)."""
    return _k8s_name(topic.replace(".", "-"), "KafkaTopic name for topic")


def _labels(cluster: str) -> dict[str, str]:
    return {"strimzi.io/cluster": cluster}


def _strimzi_rules(acls: Sequence[Acl]) -> list[dict[str, Any]]:
    """One rule per resource, in order of first use, with its operations in order."""
    rules: dict[tuple[ResourceType, str, PatternType, Permission], list[str]] = {}
    for acl in acls:
        key = (acl.resource_type, acl.resource_name, acl.pattern_type, acl.permission)
        operations = rules.setdefault(key, [])
        operation = _CLI_OPERATION[acl.operation]
        if operation not in operations:
            operations.append(operation)
    result = []
    for (resource_type, name, pattern, permission), operations in rules.items():
        resource: dict[str, str] = {"type": _STRIMZI_RESOURCE[resource_type]}
        if resource_type is not ResourceType.CLUSTER:
            resource |= {"name": name, "patternType": _STRIMZI_PATTERN[pattern]}
        result.append(
            {
                "type": _STRIMZI_PERMISSION[permission],
                "resource": resource,
                "operations": operations,
                "host": ANY_HOST,
            }
        )
    return result


def strimzi_resources(
    acls: Sequence[Acl],
    topic_names: Sequence[str],
    *,
    partitions: int,
    replicas: int = TOPIC_REPLICAS,
    cluster: str = STRIMZI_CLUSTER,
) -> list[dict[str, Any]]:
    """A KafkaTopic per topic, then a KafkaUser per principal (in order of first ACL).

    Each user authenticates with SCRAM-SHA-512 (the User Operator makes its password, in
    a Secret of the user's name) and is authorized by exactly its ACLs.
    """
    resources: list[dict[str, Any]] = []
    names: set[str] = set()
    for topic in topic_names:
        name = kafka_topic_resource_name(topic)
        if name in names:
            raise ValueError(f"topics {topic!r} and another share the KafkaTopic name {name!r}")
        names.add(name)
        resources.append(
            {
                "apiVersion": STRIMZI_API_VERSION,
                "kind": "KafkaTopic",
                "metadata": {"name": name, "labels": _labels(cluster)},
                "spec": {
                    "topicName": topic,
                    "partitions": partitions,
                    "replicas": replicas,
                    "config": {"min.insync.replicas": min(TOPIC_MIN_INSYNC_REPLICAS, replicas)},
                },
            }
        )
    by_principal: dict[str, list[Acl]] = {}
    for acl in acls:
        by_principal.setdefault(acl.principal, []).append(acl)
    for principal, granted in by_principal.items():
        resources.append(
            {
                "apiVersion": STRIMZI_API_VERSION,
                "kind": "KafkaUser",
                "metadata": {"name": kafka_user_name(principal), "labels": _labels(cluster)},
                "spec": {
                    "authentication": {"type": "scram-sha-512"},
                    "authorization": {"type": "simple", "acls": _strimzi_rules(granted)},
                },
            }
        )
    return resources


STRIMZI_HEADER = """\
# Generated by `ketenbus acl --format strimzi` from the agency registry: do not edit by hand.
# Regenerate it whenever the registry changes, and commit the result:
#
#   ketenbus acl --format strimzi > deploy/k8s/base/kafka/strimzi.yaml
#
# A KafkaTopic for every bus topic (partitions: KETENBUS_TOPIC_PARTITIONS) and a
# KafkaUser for every agency and service: SCRAM-SHA-512, authorized by exactly the
# ACLs of deploy/kafka/acls.sh. Strimzi's User Operator puts each user's password in a
# Secret named after the user (key `password`). See "Kubernetes" in docs/operations.md.
"""


def as_strimzi(
    acls: Sequence[Acl],
    topic_names: Sequence[str],
    *,
    partitions: int,
    replicas: int = TOPIC_REPLICAS,
    cluster: str = STRIMZI_CLUSTER,
) -> str:
    """`strimzi_resources` as one YAML stream under a header comment."""
    resources = strimzi_resources(
        acls, topic_names, partitions=partitions, replicas=replicas, cluster=cluster
    )
    body = yaml.safe_dump_all(resources, sort_keys=False, explicit_start=True, width=100)
    return STRIMZI_HEADER + body
