"""Load the agency registry from its YAML file, failing with every problem named."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from contracts.registry import AgencyRegistry, RegistryInvalid


def load_registry(path: Path) -> AgencyRegistry:
    """The validated registry at `path`; RegistryInvalid says what is wrong and where."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryInvalid([f"{path}: cannot read the registry ({exc.strerror})"]) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RegistryInvalid([f"{path}: not valid YAML ({exc})"]) from None
    try:
        return AgencyRegistry.from_document(document)
    except RegistryInvalid as exc:
        raise RegistryInvalid([f"{path}: {problem}" for problem in exc.problems]) from None


def with_signing_keys(registry: AgencyRegistry, public_keys: Mapping[str, str]) -> AgencyRegistry:
    """The registry with these agencies' `signing_key`s (agency code -> base64 public key).

    For a run that makes its own key pairs (the demo, a simulation, tests): the
    agencies it plays sign with keys no one else has, and the registry the
    services check against knows their public halves.
    """
    document = registry.model_dump(mode="json")
    for agency in document["agencies"]:
        if agency["code"] in public_keys:
            agency["signing_key"] = public_keys[agency["code"]]
    return AgencyRegistry.from_document(document)
