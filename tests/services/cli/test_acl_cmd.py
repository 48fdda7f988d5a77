"""`ketenbus acl` prints the registry's Kafka ACLs: the committed script by default, or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from contracts.registry import AgencyRegistry, RegistryInvalid
from services.cli import acl_cmd
from services.runtime.kafka.acl import as_script, kafka_acls

REPO = Path(__file__).resolve().parents[3]
REGISTRY = REPO / "deploy" / "agencies.yaml"


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """A group, so the verb is invoked by its name as under `ketenbus`."""

    acl_cmd.register(app)
    return app


def _run(*args: str, registry: Path = REGISTRY) -> tuple[int, str]:
    result = CliRunner().invoke(_app(), ["acl", *args], env={"KETENBUS_REGISTRY": str(registry)})
    return result.exit_code, result.stdout


def test_acl_prints_the_committed_script_for_the_example_registry() -> None:
    code, output = _run()

    assert 0 == code
    assert (REPO / "deploy" / "kafka" / "acls.sh").read_text(encoding="utf-8") == output, (
        "deploy/kafka/acls.sh is stale: run `ketenbus acl > deploy/kafka/acls.sh`"
    )


def test_acl_format_commands_is_the_default(registry: AgencyRegistry) -> None:
    code, output = _run("--format", "commands")

    assert 0 == code
    assert as_script(kafka_acls(registry)) == output
    assert output == _run()[1]


def test_acl_format_json_prints_every_acl_as_an_object(registry: AgencyRegistry) -> None:
    code, output = _run("--format", "json")
    decoded = json.loads(output)

    assert 0 == code
    assert len(kafka_acls(registry)) == len(decoded)
    assert {
        "principal": "User:agency-uwv",
        "resource_type": "TOPIC",
        "resource_name": "agency.uwv.outbox",
        "pattern_type": "LITERAL",
        "operation": "WRITE",
        "permission": "ALLOW",
    } in decoded


def test_acl_reads_the_registry_named_by_the_settings(tmp_path: Path) -> None:
    document = yaml.safe_load(REGISTRY.read_text(encoding="utf-8"))
    document["agencies"].append(
        {**document["agencies"][0], "code": "extra", "oin": "0" * 19 + "7", "escalation_teams": []}
    )
    other = tmp_path / "agencies.yaml"
    other.write_text(yaml.safe_dump(document), encoding="utf-8")

    code, output = _run(registry=other)

    assert 0 == code
    assert "--topic agency.extra.outbox" in output
    assert "--topic agency.extra.outbox" not in _run()[1]


def test_acl_rejects_an_unknown_format() -> None:
    code, _ = _run("--format", "yaml")

    assert 2 == code


@pytest.mark.parametrize("broken", ["agencies: []\n", "operator: [\n"])
def test_acl_fails_on_an_invalid_registry(tmp_path: Path, broken: str) -> None:
    path = tmp_path / "agencies.yaml"
    path.write_text(broken, encoding="utf-8")

    result = CliRunner().invoke(_app(), ["acl"], env={"KETENBUS_REGISTRY": str(path)})

    assert 0 != result.exit_code
    assert isinstance(result.exception, RegistryInvalid)
