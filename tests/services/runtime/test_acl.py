"""The Kafka ACLs from the registry isolate the agencies and give each service what it uses."""

from __future__ import annotations

import ast
import inspect
import json
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from contracts import topics
from contracts.registry import AgencyRegistry
from services.escalation.service import EscalationService
from services.router.app import create_router
from services.runtime.config.settings import Settings
from services.runtime.kafka import acl as acl_module
from services.runtime.kafka.acl import (
    CONSOLE,
    ESCALATION,
    GATEWAY,
    INIT,
    ROUTER,
    SERVICE_PRINCIPALS,
    TRACKER,
    Acl,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    agency_principal,
    as_commands,
    as_json,
    as_script,
    kafka_acls,
)
from services.runtime.kafka.topics import bus_topics
from services.tracker.app import create_tracker

REPO = Path(__file__).resolve().parents[3]
ACLS_SCRIPT = REPO / "deploy" / "kafka" / "acls.sh"
ANY_KAFKA_WILDCARD = "*"


def _engine() -> AsyncEngine:
    # Never connected: the services only keep it until they start.
    return create_async_engine("sqlite+aiosqlite://")


def _subscription(broker: KafkaBroker) -> tuple[set[str], str | None]:
    """The topics and group of a service broker's one subscriber, as its code declares them."""
    (subscriber,) = broker.subscribers
    kafka: Any = subscriber  # FastStream types it as the broker-neutral use case
    return set(kafka.topic_names), kafka.group_id


def _topics(acls: list[Acl], principal: str, operation: Operation) -> set[str]:
    return {
        a.resource_name
        for a in acls
        if a.principal == principal
        and a.resource_type is ResourceType.TOPIC
        and a.operation is operation
    }


def _groups(acls: list[Acl], principal: str) -> set[str]:
    return {
        a.resource_name
        for a in acls
        if a.principal == principal
        and a.resource_type is ResourceType.GROUP
        and a.operation is Operation.READ
    }


def _matches(acl: Acl, name: str) -> bool:
    if acl.resource_name == ANY_KAFKA_WILDCARD:
        return True
    if acl.pattern_type is PatternType.PREFIXED:
        return name.startswith(acl.resource_name)
    return name == acl.resource_name


def _agency_acls(registry: AgencyRegistry) -> list[Acl]:
    principals = {agency_principal(agency.code) for agency in registry.agencies}
    return [a for a in kafka_acls(registry) if a.principal in principals]


def _registry_with_extra_agency(registry: AgencyRegistry, code: str, oin: str) -> AgencyRegistry:
    document = yaml.safe_load((REPO / "deploy" / "agencies.yaml").read_text(encoding="utf-8"))
    extra = {**document["agencies"][0], "code": code, "oin": oin, "escalation_teams": []}
    document["agencies"].append(extra)
    return AgencyRegistry.from_document(document)


def _code_topics(package: str, registry: AgencyRegistry) -> set[str]:
    """The bus topics a service package's source names (contracts.topics constants and helpers)."""
    names = {"CASES", "ESCALATIONS", "DLQ", "AUDIT", "inbox", "outbox"}
    used: set[str] = set()
    for path in (REPO / "services" / package).glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id == "topics" and node.attr in names:
                    used.add(node.attr)
            elif isinstance(node, ast.ImportFrom) and node.module == "contracts.topics":
                used |= {alias.name for alias in node.names if alias.name in names}
    codes = [agency.code for agency in registry.agencies]
    resolved = {getattr(topics, name) for name in used if name.isupper()}
    if "inbox" in used:
        resolved |= {topics.inbox(code) for code in codes}
    if "outbox" in used:
        resolved |= {topics.outbox(code) for code in codes}
    return resolved


def test_every_agency_writes_only_its_own_outbox(registry: AgencyRegistry) -> None:
    acls = kafka_acls(registry)

    for agency in registry.agencies:
        principal = agency_principal(agency.code)
        assert {topics.outbox(agency.code)} == _topics(acls, principal, Operation.WRITE)


def test_every_agency_reads_only_its_own_inbox_and_the_alerts_if_it_has_a_team(
    registry: AgencyRegistry,
) -> None:
    acls = kafka_acls(registry)

    for agency in registry.agencies:
        expected = {topics.inbox(agency.code)}
        if agency.escalation_teams:
            expected.add(topics.ESCALATIONS)
        assert expected == _topics(acls, agency_principal(agency.code), Operation.READ)


def test_an_agency_without_an_escalation_team_does_not_read_the_alerts(
    registry: AgencyRegistry,
) -> None:
    extended = _registry_with_extra_agency(registry, "noteam", "0" * 19 + "9")

    assert {topics.inbox("noteam")} == _topics(
        kafka_acls(extended), agency_principal("noteam"), Operation.READ
    )


def test_no_agency_acl_has_a_wildcard_or_a_prefixed_topic(registry: AgencyRegistry) -> None:
    agency_acls = _agency_acls(registry)

    assert [] == [a for a in agency_acls if ANY_KAFKA_WILDCARD in a.resource_name]
    assert [] == [
        a
        for a in agency_acls
        if a.resource_type is ResourceType.TOPIC and a.pattern_type is not PatternType.LITERAL
    ]
    assert [] == [a for a in agency_acls if a.resource_type is ResourceType.CLUSTER]


def test_every_outbox_has_one_agency_writer_besides_the_console_and_every_inbox_one_reader(
    registry: AgencyRegistry,
) -> None:
    acls = kafka_acls(registry)
    writers = Counter(
        (a.resource_name, a.principal) for a in acls if a.operation is Operation.WRITE
    )
    agency_readers = Counter(
        a.resource_name for a in _agency_acls(registry) if a.operation is Operation.READ
    )

    for agency in registry.agencies:
        outbox = topics.outbox(agency.code)
        # The console only puts back dead letters as their agency signed them, and the
        # gateway only what the agency sent it signed (the router checks each signature
        # again), so either can write there but neither can speak for an agency.
        assert [agency_principal(agency.code), CONSOLE, GATEWAY] == [
            p for (t, p) in writers if t == outbox
        ]
        assert 1 == agency_readers[topics.inbox(agency.code)]


def test_no_agency_can_read_another_agencys_inbox_or_join_its_groups(
    registry: AgencyRegistry,
) -> None:
    # `gm03` is a prefix of `gm0363`: a bare `agency-gm03` prefix would match gm0363's groups.
    extended = _registry_with_extra_agency(registry, "gm03", "0" * 19 + "8")
    acls = kafka_acls(extended)

    for agency in extended.agencies:
        own = agency_principal(agency.code)
        for other in extended.agencies:
            if other.code == agency.code:
                continue
            granted = [a for a in acls if a.principal == own]
            assert not any(_matches(a, topics.inbox(other.code)) for a in granted)
            assert not any(_matches(a, topics.outbox(other.code)) for a in granted)
            for group in (f"agency-{other.code}", f"agency-{other.code}-worker"):
                assert not any(
                    _matches(a, group) for a in granted if a.resource_type is ResourceType.GROUP
                ), (agency.code, group)


def test_an_agency_may_use_its_own_group_and_groups_named_after_it(
    registry: AgencyRegistry,
) -> None:
    acls = [a for a in kafka_acls(registry) if a.resource_type is ResourceType.GROUP]

    for agency in registry.agencies:
        own = [a for a in acls if a.principal == agency_principal(agency.code)]
        for group in (f"agency-{agency.code}", f"agency-{agency.code}-inbox"):
            assert any(_matches(a, group) for a in own), group


def test_the_router_reads_every_outbox_in_its_own_group_as_its_code_subscribes(
    registry: AgencyRegistry,
) -> None:
    broker = create_router(Settings(), registry, "127.0.0.1:1", _engine())
    subscribed, group = _subscription(broker)
    acls = kafka_acls(registry)

    assert subscribed == _topics(acls, ROUTER, Operation.READ)
    assert {topics.outbox(agency.code) for agency in registry.agencies} == subscribed
    assert {group} == _groups(acls, ROUTER)


def test_the_router_writes_the_case_log_every_inbox_the_dlq_and_the_audit_log(
    registry: AgencyRegistry,
) -> None:
    inboxes = {topics.inbox(agency.code) for agency in registry.agencies}

    assert {topics.CASES, topics.DLQ, topics.AUDIT, *inboxes} == _topics(
        kafka_acls(registry), ROUTER, Operation.WRITE
    )


def test_the_tracker_reads_the_case_log_in_its_own_group_and_writes_nothing(
    registry: AgencyRegistry,
) -> None:
    broker = create_tracker(Settings(), registry, _engine(), "127.0.0.1:1")
    subscribed, group = _subscription(broker)
    acls = kafka_acls(registry)

    assert {topics.CASES} == subscribed
    assert {topics.CASES} == _topics(acls, TRACKER, Operation.READ)
    assert {group} == _groups(acls, TRACKER)
    assert set() == _topics(acls, TRACKER, Operation.WRITE)


def test_the_escalation_service_reads_the_case_log_and_writes_alerts_cases_inboxes_dlq_audit(
    registry: AgencyRegistry,
) -> None:
    service = EscalationService(Settings(), registry, _engine(), "127.0.0.1:1")
    subscribed, group = _subscription(service.broker)
    acls = kafka_acls(registry)
    inboxes = {topics.inbox(agency.code) for agency in registry.agencies}

    assert {topics.CASES} == subscribed
    assert {topics.CASES} == _topics(acls, ESCALATION, Operation.READ)
    assert {group} == _groups(acls, ESCALATION)
    assert {topics.ESCALATIONS, topics.CASES, topics.DLQ, topics.AUDIT, *inboxes} == _topics(
        acls, ESCALATION, Operation.WRITE
    )


def test_the_gateway_reads_every_inbox_in_its_group_and_writes_outboxes_inboxes_dlq_case_log(
    registry: AgencyRegistry,
) -> None:
    """Outboxes: what agencies POST; inboxes in `ketenbus-gateway`: their webhooks; the DLQ
    and inboxes: a delivery given up and the sender's notice; the case log: that notice for
    a handoff request its receiver never got (the escalation service escalates it there)."""
    acls = kafka_acls(registry)
    inboxes = {topics.inbox(agency.code) for agency in registry.agencies}
    outboxes = {topics.outbox(agency.code) for agency in registry.agencies}
    writes = _topics(acls, GATEWAY, Operation.WRITE)

    assert inboxes == _topics(acls, GATEWAY, Operation.READ)
    assert {acl_module.GATEWAY_GROUP} == _groups(acls, GATEWAY)
    assert {topics.CASES, topics.DLQ, *inboxes, *outboxes} == writes - {topics.AUDIT}


def test_the_group_ids_are_the_services_defaults() -> None:
    tracker = inspect.signature(create_tracker).parameters["group_id"].default
    escalation = inspect.signature(EscalationService).parameters["group_id"].default
    router = inspect.signature(create_router).parameters["group_id"].default

    assert (router, tracker, escalation) == (
        acl_module.ROUTER_GROUP,
        acl_module.TRACKER_GROUP,
        acl_module.ESCALATION_GROUP,
    )


def test_every_topic_a_service_package_names_is_granted_to_that_service(
    registry: AgencyRegistry,
) -> None:
    acls = kafka_acls(registry)
    principals = {
        "router": ROUTER,
        "tracker": TRACKER,
        "escalation": ESCALATION,
        "console": CONSOLE,
        "gateway": GATEWAY,
    }

    for package, principal in principals.items():
        granted = _topics(acls, principal, Operation.READ) | _topics(
            acls, principal, Operation.WRITE
        )
        assert set() == _code_topics(package, registry) - granted, package


def test_the_console_reads_dead_letters_writes_the_case_log_and_outboxes_and_describes_the_rest(
    registry: AgencyRegistry,
) -> None:
    acls = kafka_acls(registry)
    outboxes = {topics.outbox(agency.code) for agency in registry.agencies}
    described = {
        a.resource_name
        for a in acls
        if a.principal == CONSOLE and a.operation == Operation.DESCRIBE
    }

    assert {topics.DLQ} == _topics(acls, CONSOLE, Operation.READ)
    assert {topics.CASES, *outboxes} == _topics(acls, CONSOLE, Operation.WRITE)
    assert (
        set(bus_topics(registry))
        | {
            acl_module.ROUTER_GROUP,
            acl_module.TRACKER_GROUP,
            acl_module.ESCALATION_GROUP,
        }
        == described
    )
    assert set() == _groups(acls, CONSOLE)


def test_the_init_job_may_create_and_describe_exactly_the_bus_topics(
    registry: AgencyRegistry,
) -> None:
    acls = kafka_acls(registry)
    created = set(bus_topics(registry))

    assert created == _topics(acls, INIT, Operation.CREATE)
    assert created == _topics(acls, INIT, Operation.DESCRIBE)
    assert {Operation.CREATE, Operation.DESCRIBE} == {
        a.operation for a in acls if a.principal == INIT
    }


def test_every_acl_allows_a_user_principal_and_none_repeats(registry: AgencyRegistry) -> None:
    acls = kafka_acls(registry)

    assert {Permission.ALLOW} == {a.permission for a in acls}
    assert all(a.principal.startswith("User:") for a in acls)
    assert len(set(acls)) == len(acls)


def test_every_principal_with_acls_is_an_agency_or_a_known_service(
    registry: AgencyRegistry,
) -> None:
    agencies = {agency_principal(agency.code) for agency in registry.agencies}

    assert set() == {a.principal for a in kafka_acls(registry)} - agencies - set(
        SERVICE_PRINCIPALS.values()
    )


def test_each_command_adds_exactly_its_acl(registry: AgencyRegistry) -> None:
    acls = kafka_acls(registry)

    for acl, command in zip(acls, as_commands(acls), strict=True):
        words = shlex.split(command)
        assert ["kafka-acls.sh", "--bootstrap-server", "$BOOTSTRAP"] == words[:3]
        assert ["--command-config", "$ADMIN_CONFIG", "--add"] == words[3:6]
        assert acl.principal == words[words.index("--allow-principal") + 1]
        assert acl.operation == words[words.index("--operation") + 1].upper()
        flag = f"--{acl.resource_type.lower()}"
        assert acl.resource_name == words[words.index(flag) + 1]
        assert (acl.pattern_type is PatternType.PREFIXED) == ("--resource-pattern-type" in words)


def test_a_cluster_acl_renders_as_the_cluster_flag_and_names_are_shell_quoted() -> None:
    cluster = Acl(
        INIT, ResourceType.CLUSTER, "kafka-cluster", PatternType.LITERAL, Operation.CREATE
    )
    odd = Acl("User:a b", ResourceType.GROUP, "g;rm -rf", PatternType.PREFIXED, Operation.READ)

    cluster_words = shlex.split(as_commands([cluster])[0])
    odd_words = shlex.split(as_commands([odd])[0])

    assert "--cluster" in cluster_words
    assert "kafka-cluster" not in cluster_words
    assert "User:a b" == odd_words[odd_words.index("--allow-principal") + 1]
    assert "g;rm -rf" == odd_words[odd_words.index("--group") + 1]
    assert ["--resource-pattern-type", "prefixed"] == odd_words[-2:]


def test_json_lists_every_acl_with_its_fields(registry: AgencyRegistry) -> None:
    acls = kafka_acls(registry)

    decoded = json.loads(as_json(acls))

    assert [Acl(**item) for item in decoded] == acls
    assert {
        "principal",
        "resource_type",
        "resource_name",
        "pattern_type",
        "operation",
        "permission",
    } == set(decoded[0])


def test_the_committed_acls_script_is_the_one_generated_from_the_example_registry(
    registry: AgencyRegistry,
) -> None:
    expected = as_script(kafka_acls(registry))

    assert expected == ACLS_SCRIPT.read_text(encoding="utf-8"), (
        "deploy/kafka/acls.sh is stale: run `ketenbus acl > deploy/kafka/acls.sh`"
    )


def test_the_script_runs_every_command_once_after_its_header(registry: AgencyRegistry) -> None:
    acls = kafka_acls(registry)
    lines = as_script(acls).splitlines()

    assert "#!/bin/sh" == lines[0]
    assert any("ketenbus acl" in line for line in lines if line.startswith("#"))
    assert as_commands(acls) == [line for line in lines if line.startswith("kafka-acls.sh")]
