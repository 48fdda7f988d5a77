"""Load the agency registry from its YAML file, failing with every problem named."""

from __future__ import annotations

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
