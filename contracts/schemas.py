"""The events' JSON Schemas: exported for agency systems, checked against the models.

The committed schemas (`contracts/schemas/`) are the published contract. Agency
systems validate against them, so a model change that would refuse what they
were told is valid must instead get a new `.v2` type (DESIGN "Envelope").
`check_compatibility` finds such changes before they are released.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from contracts._schema_diff import breaking_changes
from contracts.envelope import CaseEvent, schema_uri
from contracts.events import EVENT_CLASSES

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
EXPORT_HINT = "run `ketenbus contracts export contracts/schemas`"


class EventData(BaseModel):
    """Any JSON object: what `data` must hold is up to each event type's own schema."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Envelope(CaseEvent[EventData]):
    """Any Ketenbus event: the NL GOV CloudEvents envelope, `data` left to the type's schema."""

    name: ClassVar[str] = "envelope"


def current_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of the envelope and of each event type, by name."""
    models: dict[str, type[CaseEvent[Any]]] = {Envelope.name: Envelope, **EVENT_CLASSES}
    return {
        name: {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": schema_uri(name),
            **model.model_json_schema(),
        }
        for name, model in sorted(models.items())
    }


def export_schemas(directory: Path) -> list[Path]:
    """Write `<name>.json` for the envelope and every event type; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in current_schemas().items():
        path = directory / f"{name}.json"
        path.write_text(_dump(schema), encoding="utf-8")
        written.append(path)
    return written


def check_compatibility(directory: Path) -> list[str]:
    """One line per breaking change between the committed schemas and the current models.

    Also reports an event type without a committed schema (it must be exported
    before agencies can build against it) and a committed schema whose type is gone.
    """
    if not directory.is_dir():
        return [f"{directory}: no such schema directory; {EXPORT_HINT}"]
    current = current_schemas()
    committed = {path.name.removesuffix(".json"): path for path in directory.glob("*.json")}
    problems: list[str] = []
    for name in sorted(committed.keys() | current.keys()):
        if name not in committed:
            problems.append(f"{name}: no committed schema; {EXPORT_HINT}")
        elif name not in current:
            problems.append(f"{name}: committed schema exists but the event type no longer does")
        else:
            problems += _check_one(name, committed[name], current[name])
    return problems


def _check_one(name: str, path: Path, current: dict[str, Any]) -> list[str]:
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"{name}: cannot read the committed schema {path} ({exc})"]
    if not isinstance(old, dict):
        return [f"{name}: the committed schema {path} is not a JSON object"]
    return [f"{name}: {change}" for change in breaking_changes(old, current)]


def _dump(schema: dict[str, Any]) -> str:
    # Sorted and indented, so a re-export of unchanged models rewrites identical bytes.
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
