"""The README and docs/, which a newcomer reads first, stay true to the code as it moves.

docs/operations.md names every setting and verb, docs/contracts.md every topic;
every link, file path and module the documents name exists; the README stays a
front page (at most 250 lines, the embedded broker's warning on its first screen).
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from pathlib import Path

import pytest
import typer.main

from contracts import topics
from services.cli import app
from services.runtime.config.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
DOCUMENTS = [README, *sorted(DOCS.glob("*.md"))]

README_MAX_LINES = 250
FIRST_SCREEN_LINES = 24
"""A terminal's height: what a newcomer sees of the README before scrolling."""

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_PATH = re.compile(r"(?<![\w./<-])((?:bench|contracts|deploy|examples|services|tests)/[\w./-]*)")
_MODULE = re.compile(r"(?<![\w./<-])((?:bench|contracts|services)(?:\.[A-Za-z_]\w*)+)")
_FILE_SUFFIXES = {"md", "py", "yaml", "yml", "json", "jsonl", "sh", "txt", "toml"}


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _verbs() -> list[str]:
    group = typer.main.get_group(app)
    verbs = []
    for name, command in group.commands.items():
        sub = getattr(command, "commands", None)
        verbs += [f"ketenbus {name} {child}" for child in sub] if sub else [f"ketenbus {name}"]
    return sorted(verbs)


def _outside_code(text: str) -> str:
    """The text without its fenced code blocks (a `#` there is no heading, a `[x](y)` no link)."""
    kept, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            kept.append(line)
    return "\n".join(kept)


@cache
def _anchors(path: Path) -> frozenset[str]:
    """The anchors GitHub gives the headings of `path`: lower case, punctuation dropped,
    spaces as hyphens, a repeated one numbered."""
    seen: dict[str, int] = {}
    anchors = set()
    for line in _outside_code(_text(path)).splitlines():
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if heading is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(anchors)


def _links() -> list[tuple[str, str]]:
    return [
        (_name(document), target)
        for document in DOCUMENTS
        for target in _LINK.findall(_outside_code(_text(document)))
        if not re.match(r"[a-z]+:", target)  # http:, https:, mailto:
    ]


def _paths() -> list[tuple[str, str]]:
    found = set()
    for document in DOCUMENTS:
        for path in _PATH.findall(_text(document)):
            found.add((_name(document), path.rstrip(".")))
    return sorted(found)


def _modules() -> list[tuple[str, str]]:
    found = set()
    for document in DOCUMENTS:
        for dotted in _MODULE.findall(_text(document)):
            if dotted.rsplit(".", 1)[-1] not in _FILE_SUFFIXES:  # contracts.md is a file
                found.add((_name(document), dotted))
    return sorted(found)


def _resolves(dotted: str) -> bool:
    """Whether `dotted` is a module, or a module and attributes of it."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


@pytest.mark.parametrize("variable", [f"KETENBUS_{name.upper()}" for name in Settings.model_fields])
def test_every_setting_is_documented_in_operations(variable: str) -> None:
    assert f"`{variable}`" in _text(DOCS / "operations.md")


@pytest.mark.parametrize("verb", _verbs())
def test_every_cli_verb_is_documented_in_operations(verb: str) -> None:
    assert f"`{verb}" in _text(DOCS / "operations.md")


@pytest.mark.parametrize(
    "topic", [*topics.BUS_TOPICS, "agency.<code>.outbox", "agency.<code>.inbox"]
)
def test_every_topic_is_documented_in_contracts(topic: str) -> None:
    assert f"`{topic}`" in _text(DOCS / "contracts.md")


def test_readme_is_a_front_page_of_at_most_250_lines() -> None:
    assert README_MAX_LINES >= len(_text(README).splitlines())


def test_readme_warns_on_its_first_screen_that_the_embedded_broker_isolates_nothing() -> None:
    first_screen = " ".join(_text(README).splitlines()[:FIRST_SCREEN_LINES])
    assert "The embedded broker isolates nothing" in first_screen
    assert "any client on this machine can read every agency's inbox" in first_screen


@pytest.mark.parametrize(("document", "target"), _links())
def test_every_relative_link_resolves_to_an_existing_file(document: str, target: str) -> None:
    file, _, _ = target.partition("#")
    resolved = (ROOT / document).parent / file if file else ROOT / document
    assert resolved.exists(), f"{document} links to {target}, which does not exist"


@pytest.mark.parametrize(("document", "target"), [(d, t) for d, t in _links() if "#" in t])
def test_every_link_anchor_names_a_heading_of_its_document(document: str, target: str) -> None:
    file, _, anchor = target.partition("#")
    resolved = ((ROOT / document).parent / file if file else ROOT / document).resolve()
    if not resolved.is_file():
        pytest.skip(f"{target}: no such file, which the test of relative links reports")
    assert anchor in _anchors(resolved), f"{document} links to {target}: no such heading"


@pytest.mark.parametrize(("document", "path"), _paths())
def test_every_path_named_in_the_docs_exists_in_the_tree(document: str, path: str) -> None:
    assert (ROOT / path).exists(), f"{document} names {path}, which is not in the tree"


@pytest.mark.parametrize(("document", "dotted"), _modules())
def test_every_module_named_in_the_docs_imports(document: str, dotted: str) -> None:
    assert _resolves(dotted), f"{document} names {dotted}, which does not import"
