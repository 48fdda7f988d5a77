"""What each receiver may see of an event: its grant, and the event cut down to it.

A receiver gets an event under one grant (purpose, legal basis, context
fields): the receiver of a handoff request under its case category's handoff
grant, a subscriber under its subscription, and the other party of a handoff
answer under the category's handoff grant (an answer carries no context).
Context sections the grant does not name are removed; of a sealed personal
section the receiver gets its own box only, and nothing if it has none.

A copy that lost anything no longer matches the emitter's signature, so its
`signature` and `signingkey` attributes are dropped: the receiver has the
bus's word for it (only the router writes inboxes). A copy that lost nothing
is the emitted bytes, signature and all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from contracts.case import CONTEXT_FIELDS
from contracts.registry import AgencyRegistry, CaseCategory

SIGNATURE_ATTRIBUTES = ("signature", "signingkey")


@dataclass(frozen=True, slots=True)
class Grant:
    """Why a receiver gets an event, and which context fields it may see."""

    purpose: str
    legal_basis: str
    fields: frozenset[str]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One receiver's copy of an event, and the context fields it holds."""

    receiver: str
    value: bytes
    grant: Grant
    fields: list[str]


def handoff_grant(category: CaseCategory) -> Grant:
    return Grant(
        purpose=category.handoff_purpose,
        legal_basis=category.handoff_legal_basis,
        fields=frozenset(category.handoff_fields),
    )


def grants(
    registry: AgencyRegistry,
    name: str,
    data: dict[str, Any],
    category: CaseCategory,
    sender: str,
) -> dict[str, Grant]:
    """Every receiver of an event named `name` with `data`, and its grant (never the sender)."""
    return Grants(registry).of(name, data, category, sender)


class Grants:
    """The grants of one registry, each worked out once (the router asks for every event)."""

    def __init__(self, registry: AgencyRegistry) -> None:
        self.registry = registry
        self._categories = {category.code: category for category in registry.categories}
        self._subscribed: dict[str, dict[str, Grant]] = {}
        self._handoff: dict[str, Grant] = {}

    def category(self, code: str) -> CaseCategory | None:
        """The registry's case category `code`."""
        return self._categories.get(code)

    def of(
        self, name: str, data: dict[str, Any], category: CaseCategory, sender: str
    ) -> dict[str, Grant]:
        """Every receiver of an event named `name` with `data`, and its grant (never the sender)."""
        registry = self.registry
        found = dict(self._subscriptions(name))
        handoff = self._handoff.get(category.code)
        if handoff is None:
            handoff = self._handoff[category.code] = handoff_grant(category)
        # The parties an event names: both ends of a handoff, and the agency a forced
        # handoff gives the case to (it must learn that it now holds the case).
        for party in ("to_agency", "from_agency", "handoff_to"):
            code = data.get(party)
            if isinstance(code, str) and code not in found and registry.agency(code) is not None:
                found[code] = handoff
        receiver = data.get("to_agency")
        if name == "handoff-requested" and isinstance(receiver, str) and registry.agency(receiver):
            found[receiver] = handoff  # the receiver's grant is the handoff's, always
        found.pop(sender, None)
        return found

    def _subscriptions(self, name: str) -> dict[str, Grant]:
        subscribed = self._subscribed.get(name)
        if subscribed is None:
            subscribed = self._subscribed[name] = {
                agency.code: Grant(
                    subscription.purpose, subscription.legal_basis, frozenset(subscription.fields)
                )
                for agency, subscription in self.registry.subscribers(name)
            }
        return subscribed


def deliveries(
    document: dict[str, Any], value: bytes, receivers: dict[str, Grant]
) -> list[Delivery]:
    """Each receiver's copy of the event (`document` is `value` parsed)."""
    data = document.get("data")
    context = data.get("context") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(context, dict):
        return [Delivery(code, value, grant, []) for code, grant in receivers.items()]
    present = [name for name in CONTEXT_FIELDS if context.get(name)]
    out = []
    for code, grant in receivers.items():
        kept = _minimised(context, present, grant.fields, code)
        if kept == context:
            out.append(Delivery(code, value, grant, present))
            continue
        copy = {k: v for k, v in document.items() if k not in SIGNATURE_ATTRIBUTES}
        copy["data"] = {**data, "context": kept}
        fields = [name for name in present if kept.get(name)]
        out.append(Delivery(code, _dumps(copy), grant, fields))
    return out


def _minimised(
    context: dict[str, Any], present: list[str], granted: frozenset[str], receiver: str
) -> dict[str, Any]:
    kept = {name: context[name] for name in present if name in granted}
    personal = kept.get("personal")
    if isinstance(personal, dict):
        boxes = personal.get("sealed")
        own = boxes.get(receiver) if isinstance(boxes, dict) else None
        if own is None or not isinstance(boxes, dict):
            del kept["personal"]
        elif len(boxes) > 1:
            kept["personal"] = {"sealed": {receiver: own}}
    # Sections that are present but empty say nothing: keep the copy equal when they differ only so.
    for name, section in context.items():
        if name not in kept and not section:
            kept[name] = section
    return kept


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""Compact JSON, as agencies' clients write it, for what orjson does not write."""


def _dumps(document: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits: valid JSON all the same
        return _ENCODER.encode(document).encode()
