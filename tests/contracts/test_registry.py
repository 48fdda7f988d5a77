"""The agency registry: the example loads, and a bad one names the entry and the problem."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts import RegistryInvalid
from services.runtime.config.registry import load_registry

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "agencies.yaml"


def example_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    return document


def test_example_registry_loads_with_the_main_agencies() -> None:
    registry = load_registry(EXAMPLE)

    codes = {agency.code for agency in registry.agencies}
    assert {"belastingdienst", "toeslagen", "uwv", "svb", "cjib", "gm0363"} <= codes
    assert len(registry.agencies) >= 6


def test_example_registry_answers_lookups() -> None:
    registry = load_registry(EXAMPLE)

    uwv = registry.agency("uwv")
    assert uwv is not None
    assert uwv is registry.agency_by_oin(uwv.oin)
    subscribers = {agency.code for agency, _ in registry.subscribers("escalation-raised")}
    assert {"gm0363", "minszw"} == subscribers


def _set(*path: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(document: dict[str, Any]) -> None:
        node: Any = document
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def _append(*path: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(document: dict[str, Any]) -> None:
        node: Any = document
        for key in path:
            node = node[key]
        node.append(value)

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(
            _set("agencies", 2, "oin", value="12345"),
            "agencies[2] (uwv).oin: String should match pattern",
            id="bad-oin",
        ),
        pytest.param(
            _set("agencies", 3, "code", value="uwv"),
            "agency code 'uwv' appears more than once",
            id="duplicate-code",
        ),
        pytest.param(
            _set("agencies", 4, "oin", value="00000099000000000011"),
            "OIN '00000099000000000011' appears more than once",
            id="duplicate-oin",
        ),
        pytest.param(
            _append("agencies", 0, "emits", value="case-reopened"),
            "agency 'belastingdienst': emits unknown event type 'case-reopened'",
            id="unknown-emitted-type",
        ),
        pytest.param(
            _append("agencies", 6, "subscriptions", 0, "events", value="case-reopened"),
            "agency 'gm0363': subscription 0 names unknown event type 'case-reopened'",
            id="unknown-subscribed-type",
        ),
        pytest.param(
            _set("categories", 0, "escalation_path", "levels", 1, "team", value="nobody"),
            "category 'schulden': level 2 names team 'nobody' of agency 'gm0363', "
            "which the registry lacks",
            id="level-names-missing-team",
        ),
        pytest.param(
            _set(
                "categories", 1, "escalation_path", "levels", 0, "acknowledge_within", value="PT0S"
            ),
            "categories[1] (toeslagen-herstel).escalation_path.levels[0].acknowledge_within: "
            "must be a positive duration",
            id="zero-acknowledge-time",
        ),
    ],
)
def test_invalid_registry_names_entry_and_problem(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], expected: str
) -> None:
    document = copy.deepcopy(example_document())
    edit(document)
    path = tmp_path / "agencies.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")

    with pytest.raises(RegistryInvalid) as caught:
        load_registry(path)

    (problem,) = caught.value.problems
    assert problem.startswith(f"{path}: {expected}")


def test_unreadable_registry_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"

    with pytest.raises(RegistryInvalid, match="cannot read the registry") as caught:
        load_registry(missing)

    assert str(missing) in str(caught.value)


def test_registry_that_is_not_yaml_is_named(tmp_path: Path) -> None:
    path = tmp_path / "agencies.yaml"
    path.write_text("agencies: [belastingdienst\noperator: {", encoding="utf-8")

    with pytest.raises(RegistryInvalid, match="not valid YAML") as caught:
        load_registry(path)

    assert str(path) in str(caught.value)


def test_empty_registry_file_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "agencies.yaml"
    path.write_text("", encoding="utf-8")

    with pytest.raises(RegistryInvalid, match=r"agencies\.yaml"):
        load_registry(path)


def test_example_registry_finds_a_category_by_its_code() -> None:
    registry = load_registry(EXAMPLE)

    first = registry.categories[0]
    assert first is registry.category(first.code)
    assert None is registry.category("no-such-category")


def test_a_copied_registry_looks_up_its_own_agencies_and_categories() -> None:
    registry = load_registry(EXAMPLE)
    kept = registry.agencies[0]
    registry.agency(kept.code)  # the lookups are worked out once, then kept
    registry.category(registry.categories[0].code)

    copied = registry.model_copy(update={"agencies": [kept], "categories": []})

    assert kept is copied.agency(kept.code)
    assert None is copied.agency(registry.agencies[1].code)
    assert None is copied.category(registry.categories[0].code)
    assert registry.agencies[1] is registry.agency(registry.agencies[1].code)
