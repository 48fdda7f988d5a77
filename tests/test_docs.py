"""The README, which a newcomer reads first, names every setting, verb and topic the code has."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main

from contracts import topics
from services.cli import app
from services.runtime.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _verbs() -> list[str]:
    group = typer.main.get_group(app)
    verbs = []
    for name, command in group.commands.items():
        sub = getattr(command, "commands", None)
        verbs += [f"ketenbus {name} {child}" for child in sub] if sub else [f"ketenbus {name}"]
    return sorted(verbs)


@pytest.mark.parametrize("variable", [f"KETENBUS_{name.upper()}" for name in Settings.model_fields])
def test_every_setting_is_documented(variable: str) -> None:
    assert f"`{variable}`" in README


@pytest.mark.parametrize("verb", _verbs())
def test_every_cli_verb_is_documented(verb: str) -> None:
    assert f"`{verb}" in README


@pytest.mark.parametrize(
    "topic", [*topics.BUS_TOPICS, "agency.<code>.outbox", "agency.<code>.inbox"]
)
def test_every_topic_is_documented(topic: str) -> None:
    assert f"`{topic}`" in README
