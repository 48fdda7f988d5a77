"""The committed JSON Schemas: up to date, and guarded against breaking changes.

The committed schema is the old contract, the current model the new one. To
simulate a breaking model change, these tests edit a copy of the committed
schemas so that it accepts MORE than the model does; the check must then name
the event type and the change.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import contracts
from contracts.schemas import check_compatibility, export_schemas

COMMITTED = Path(contracts.__file__).parent / "schemas"
CLI_MODULE = Path(__file__).resolve().parents[2] / "services" / "cli" / "contracts_cmd.py"

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture
def schemas(tmp_path: Path) -> Path:
    """A copy of the committed schemas that a test may edit."""
    copy = tmp_path / "schemas"
    shutil.copytree(COMMITTED, copy)
    return copy


@pytest.fixture
def contracts_cli() -> typer.Typer:
    """The `contracts` sub-app, loaded on its own.

    `services.cli` imports every verb's module; this keeps these tests independent
    of the others.
    """
    spec = importlib.util.spec_from_file_location("ketenbus_contracts_cmd", CLI_MODULE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app: typer.Typer = module.app
    return app


def edit_schema(directory: Path, name: str, edit: Edit) -> None:
    path = directory / f"{name}.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    edit(schema)
    path.write_text(json.dumps(schema), encoding="utf-8")


def in_def(definition: str, edit: Edit) -> Edit:
    """An edit applied to one `$defs` entry (where each event's `data` model lives)."""
    return lambda schema: edit(schema["$defs"][definition])


def test_committed_schemas_equal_a_fresh_export(tmp_path: Path) -> None:
    """Change a model, re-export: `ketenbus contracts export contracts/schemas`."""
    written = export_schemas(tmp_path)

    assert sorted(p.name for p in COMMITTED.glob("*.json")) == sorted(p.name for p in written)
    for path in written:
        assert (COMMITTED / path.name).read_text(encoding="utf-8") == path.read_text(
            encoding="utf-8"
        ), f"{path.name} is stale"


def test_export_is_deterministic(tmp_path: Path) -> None:
    first = {p.name: p.read_bytes() for p in export_schemas(tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in export_schemas(tmp_path / "b")}

    assert first == second


def test_exported_schema_names_itself_and_its_dialect() -> None:
    schema = json.loads((COMMITTED / "handoff-requested.json").read_text(encoding="utf-8"))
    envelope = json.loads((COMMITTED / "envelope.json").read_text(encoding="utf-8"))

    assert "urn:nld:ketenbus:schema:handoff-requested" == schema["$id"]
    assert "https://json-schema.org/draft/2020-12/schema" == schema["$schema"]
    assert "urn:nld:ketenbus:schema:envelope" == envelope["$id"]
    assert {"type": "object", "additionalProperties": True} == {
        key: envelope["$defs"]["EventData"][key] for key in ("type", "additionalProperties")
    }


def test_committed_schemas_are_compatible() -> None:
    assert [] == check_compatibility(COMMITTED)


@pytest.mark.parametrize(
    ("name", "edit", "expected"),
    [
        pytest.param(
            "handoff-requested",
            in_def("HandoffRequest", lambda d: d["properties"].update(urgency={"type": "string"})),
            "handoff-requested: data.urgency was removed or renamed",
            id="property-removed",
        ),
        pytest.param(
            "case-opened",
            in_def("CaseOpening", lambda d: d["required"].remove("category")),
            "case-opened: data.category became required",
            id="optional-made-required",
        ),
        pytest.param(
            "handoff-rejected",
            in_def(
                "HandoffRejection",
                lambda d: d["properties"].update(
                    rule_reference={"anyOf": [{"type": "integer"}, {"type": "null"}]}
                ),
            ),
            "handoff-rejected: data.rule_reference type narrowed (integer | null -> string | null)",
            id="type-changed",
        ),
        pytest.param(
            "case-closed",
            in_def(
                "CaseClosure",
                lambda d: d["properties"].update(
                    outcome={
                        "anyOf": [
                            {"type": "string", "minLength": 1, "maxLength": 2000},
                            {"type": "null"},
                        ]
                    }
                ),
            ),
            "case-closed: data.outcome type narrowed (string | null -> string)",
            id="null-no-longer-accepted",
        ),
        pytest.param(
            "escalation-resolved",
            in_def(
                "EscalationResolution",
                lambda d: d["properties"]["outcome"]["enum"].append("appealed"),
            ),
            "escalation-resolved: data.outcome type narrowed (values removed: 'appealed')",
            id="literal-value-removed",
        ),
        pytest.param(
            "escalation-resolved",
            in_def(
                "EscalationResolution",
                lambda d: d["properties"]["handoff_to"]["anyOf"][0].pop("pattern"),
            ),
            "escalation-resolved: data.handoff_to type narrowed "
            "(pattern added or changed: none -> '^[a-z][a-z0-9]{1,31}$')",
            id="pattern-added",
        ),
        pytest.param(
            "handoff-expired",
            in_def("HandoffExpiry", lambda d: d["properties"]["deadline"].pop("format")),
            "handoff-expired: data.deadline type narrowed "
            "(format added or changed: none -> 'date-time')",
            id="format-added",
        ),
        pytest.param(
            "escalation-raised",
            in_def("EscalationRaise", lambda d: d["properties"]["level"].update(minimum=0)),
            "escalation-raised: data.level type narrowed (minimum raised: 0 -> 1)",
            id="minimum-raised",
        ),
        pytest.param(
            "case-closed",
            in_def("CaseClosure", lambda d: d["properties"]["outcome"].update(maxLength=5000)),
            "case-closed: data.outcome type narrowed (maxLength lowered: 5000 -> 2000)",
            id="max-length-lowered",
        ),
        pytest.param(
            "case-opened",
            in_def("EscalationPath", lambda d: d["properties"]["levels"].update(minItems=0)),
            "case-opened: data.escalation_path.levels type narrowed (minItems raised: 0 -> 1)",
            id="min-items-raised-through-ref-and-union",
        ),
        pytest.param(
            "case-opened",
            in_def("ActionTaken", lambda d: d["properties"].update(by={"type": "string"})),
            "case-opened: data.context.actions[].by was removed or renamed",
            id="nested-array-item-property-removed",
        ),
        pytest.param(
            "case-closed",
            in_def("CaseClosure", lambda d: d.update(additionalProperties=True)),
            "case-closed: data type narrowed (additionalProperties closed)",
            id="additional-properties-closed",
        ),
        pytest.param(
            "case-closed",
            lambda s: s["properties"]["sequence"].pop("minimum"),
            "case-closed: sequence type narrowed (minimum raised: none -> 1)",
            id="envelope-attribute-narrowed",
        ),
        pytest.param(
            "envelope",
            lambda s: s["properties"].update(priority={"type": "string"}),
            "envelope: priority was removed or renamed",
            id="envelope-attribute-removed",
        ),
    ],
)
def test_breaking_change_is_named(schemas: Path, name: str, edit: Edit, expected: str) -> None:
    edit_schema(schemas, name, edit)

    assert [expected] == check_compatibility(schemas)


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        pytest.param(
            "handoff-rejected",
            in_def("HandoffRejection", lambda d: d["properties"].pop("rule_reference")),
            id="optional-property-added",
        ),
        pytest.param(
            "handoff-rejected",
            in_def("HandoffRejection", lambda d: d["required"].append("rule_reference")),
            id="required-made-optional",
        ),
        pytest.param(
            "case-closed",
            in_def("CaseClosure", lambda d: d["properties"]["outcome"].update(maxLength=100)),
            id="max-length-raised",
        ),
        pytest.param(
            "escalation-resolved",
            in_def("EscalationResolution", lambda d: d["properties"]["outcome"]["enum"].pop()),
            id="literal-value-added",
        ),
        pytest.param(
            "escalation-requested",
            in_def(
                "EscalationRequest",
                lambda d: d["properties"].update(
                    level={"type": "integer", "minimum": 1, "maximum": 3}
                ),
            ),
            id="range-widened-and-null-allowed",
        ),
        pytest.param(
            "case-closed",
            lambda s: s["properties"]["sequence"].update(type="integer", minimum=5),
            id="minimum-lowered",
        ),
    ],
)
def test_widening_change_is_not_reported(schemas: Path, name: str, edit: Edit) -> None:
    edit_schema(schemas, name, edit)

    assert [] == check_compatibility(schemas)


def test_event_type_without_committed_schema_asks_for_an_export(schemas: Path) -> None:
    (schemas / "case-closed.json").unlink()

    assert [
        "case-closed: no committed schema; run `ketenbus contracts export contracts/schemas`"
    ] == check_compatibility(schemas)


def test_committed_schema_of_a_vanished_event_type_is_reported(schemas: Path) -> None:
    shutil.copy(schemas / "case-closed.json", schemas / "case-reopened.json")

    assert [
        "case-reopened: committed schema exists but the event type no longer does"
    ] == check_compatibility(schemas)


def test_unreadable_committed_schema_is_reported_not_raised(schemas: Path) -> None:
    (schemas / "case-closed.json").write_text("{not json", encoding="utf-8")

    (problem,) = check_compatibility(schemas)
    assert problem.startswith("case-closed: cannot read the committed schema")


def test_missing_schema_directory_asks_for_an_export(tmp_path: Path) -> None:
    (problem,) = check_compatibility(tmp_path / "nowhere")

    assert problem.endswith("run `ketenbus contracts export contracts/schemas`")


def test_cli_check_passes_on_the_committed_schemas(contracts_cli: typer.Typer) -> None:
    result = CliRunner().invoke(contracts_cli, ["check"])

    assert 0 == result.exit_code, result.output
    assert "compatible" in result.stdout
    assert 1 == len(result.stdout.splitlines())


def test_cli_check_fails_naming_type_and_change(contracts_cli: typer.Typer, schemas: Path) -> None:
    edit_schema(
        schemas,
        "handoff-requested",
        in_def("HandoffRequest", lambda d: d["properties"].update(urgency={"type": "string"})),
    )
    (schemas / "case-closed.json").unlink()

    result = CliRunner().invoke(contracts_cli, ["check", "--schemas", str(schemas)])

    assert 1 == result.exit_code
    assert [
        "case-closed: no committed schema; run `ketenbus contracts export contracts/schemas`",
        "handoff-requested: data.urgency was removed or renamed",
    ] == result.stderr.splitlines()
    assert "Traceback" not in result.output


def test_cli_export_writes_and_lists_every_schema(
    contracts_cli: typer.Typer, tmp_path: Path
) -> None:
    result = CliRunner().invoke(contracts_cli, ["export", str(tmp_path)])

    assert 0 == result.exit_code, result.output
    written = sorted(p.name for p in tmp_path.glob("*.json"))
    assert sorted(p.name for p in COMMITTED.glob("*.json")) == written
    assert len(written) == len(result.stdout.splitlines())


def test_cli_export_into_an_unwritable_place_fails_in_one_line(
    contracts_cli: typer.Typer, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")

    result = CliRunner().invoke(contracts_cli, ["export", str(blocker / "schemas")])

    assert 1 == result.exit_code
    assert 1 == len(result.stderr.splitlines())
    assert "Traceback" not in result.output
