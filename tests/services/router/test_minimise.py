"""What each receiver may see of an event (`minimise.grants`, `minimise.deliveries`)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from contracts.agency_client import AgencyKeys
from contracts.case import ActionTaken, CaseContext, PersonalSection, SealedPersonal
from contracts.registry import AgencyRegistry, CaseCategory
from services.router import minimise
from services.router.minimise import Grant, handoff_grant
from tests._testutil import START, EventFactory
from tests.services.router.events import BSN, full_context, with_context

Keys = dict[str, AgencyKeys]


@pytest.fixture
def make(signed_registry: AgencyRegistry) -> EventFactory:
    return EventFactory(signed_registry)


def _category(registry: AgencyRegistry, code: str) -> CaseCategory:
    category = registry.category(code)
    assert category is not None
    return category


def _sealed(keys: Keys, registry: AgencyRegistry, *receivers: str) -> SealedPersonal:
    return keys["uwv"].seal(PersonalSection(bsn=BSN), receivers, registry)


def _signed(keys: Keys, event: Any) -> tuple[dict[str, Any], bytes]:
    value = keys["uwv"].sign(event)
    return json.loads(value), value


def _copies(
    registry: AgencyRegistry, document: dict[str, Any], value: bytes, category: str
) -> dict[str, minimise.Delivery]:
    name = document["type"].rsplit(".", 1)[1]
    grants = minimise.grants(registry, name, document["data"], _category(registry, category), "uwv")
    return {copy.receiver: copy for copy in minimise.deliveries(document, value, grants)}


def _context(copy: minimise.Delivery) -> dict[str, Any]:
    context: dict[str, Any] = json.loads(copy.value)["data"]["context"]
    return {name: section for name, section in context.items() if section}


def test_a_handoff_receiver_is_granted_exactly_its_categorys_handoff_fields(
    signed_registry: AgencyRegistry,
) -> None:
    category = _category(signed_registry, "uitkering")
    data = {"from_agency": "uwv", "to_agency": "gm0363"}

    grants = minimise.grants(signed_registry, "handoff-requested", data, category, "uwv")

    assert {
        "gm0363": Grant(
            category.handoff_purpose,
            category.handoff_legal_basis,
            frozenset(category.handoff_fields),
        )
    } == grants


def test_a_handoff_receivers_copy_holds_its_categorys_handoff_fields_only(
    signed_registry: AgencyRegistry, agency_keys: Keys, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    sealed = _sealed(agency_keys, signed_registry, "gm0363")
    requested = make.requested(case_id, uuid.uuid4(), "uwv", "gm0363")
    document, value = _signed(agency_keys, with_context(requested, full_context("uwv", sealed)))

    (copy,) = _copies(signed_registry, document, value, "uitkering").values()

    # uitkering's handoff grant names every section but personal.
    assert {"actions", "promises", "flags"} == set(_context(copy))
    assert ["actions", "promises", "flags"] == copy.fields


def test_a_subscriber_gets_the_fields_of_its_subscription(
    signed_registry: AgencyRegistry, agency_keys: Keys, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    opened = with_context(make.opened(case_id, by="uwv"), full_context("uwv"))
    document, value = _signed(agency_keys, opened)

    copies = _copies(signed_registry, document, value, "schulden")

    # case-opened: toeslagen may see actions, promises and deadlines; gm0363 flags as well.
    assert {"toeslagen", "gm0363"} == set(copies)
    assert {"actions", "promises"} == set(_context(copies["toeslagen"]))
    assert {"actions", "promises", "flags"} == set(_context(copies["gm0363"]))
    subscription = next(
        s for a, s in signed_registry.subscribers("case-opened") if a.code == "toeslagen"
    )
    assert subscription.purpose == copies["toeslagen"].grant.purpose
    assert subscription.legal_basis == copies["toeslagen"].grant.legal_basis


def test_a_subscriber_whose_grant_lacks_personal_gets_no_box_even_one_sealed_for_it(
    signed_registry: AgencyRegistry, agency_keys: Keys, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    sealed = _sealed(agency_keys, signed_registry, "gm0363", "toeslagen")
    opened = with_context(make.opened(case_id, by="uwv"), full_context("uwv", sealed))
    document, value = _signed(agency_keys, opened)

    copies = _copies(signed_registry, document, value, "schulden")

    assert "personal" not in _context(copies["gm0363"])
    assert "personal" not in _context(copies["toeslagen"])


def test_of_a_sealed_personal_section_each_receiver_gets_its_own_box_only(
    signed_registry: AgencyRegistry, agency_keys: Keys, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    sealed = _sealed(agency_keys, signed_registry, "gm0363", "svb")
    requested = make.requested(case_id, uuid.uuid4(), "uwv", "gm0363")
    document, value = _signed(agency_keys, with_context(requested, full_context("uwv", sealed)))
    grant = handoff_grant(_category(signed_registry, "schulden"))

    copies = {
        copy.receiver: copy
        for copy in minimise.deliveries(
            document, value, {"gm0363": grant, "svb": grant, "cjib": grant}
        )
    }

    assert {"sealed": {"gm0363": sealed.sealed["gm0363"]}} == _context(copies["gm0363"])["personal"]
    assert {"sealed": {"svb": sealed.sealed["svb"]}} == _context(copies["svb"])["personal"]
    assert "personal" not in _context(copies["cjib"])
    assert "personal" in copies["gm0363"].fields
    assert "personal" not in copies["cjib"].fields


def test_a_copy_with_anything_removed_carries_no_signature_but_is_otherwise_the_event(
    signed_registry: AgencyRegistry, agency_keys: Keys, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    opened = with_context(make.opened(case_id, by="uwv"), full_context("uwv"))
    document, value = _signed(agency_keys, opened)

    copy = json.loads(_copies(signed_registry, document, value, "schulden")["toeslagen"].value)

    assert set(minimise.SIGNATURE_ATTRIBUTES) <= set(document)
    assert set() == set(minimise.SIGNATURE_ATTRIBUTES) & set(copy)
    unsigned = {k: v for k, v in document.items() if k not in minimise.SIGNATURE_ATTRIBUTES}
    assert {**unsigned, "data": {**document["data"], "context": copy["data"]["context"]}} == copy


def test_a_copy_that_loses_nothing_is_the_emitted_bytes_signature_and_all(
    signed_registry: AgencyRegistry, agency_keys: Keys, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    sealed = _sealed(agency_keys, signed_registry, "gm0363")
    context = CaseContext(
        actions=[ActionTaken(at=START, agency="uwv", description="Gebeld")], personal=sealed
    )
    requested = with_context(make.requested(case_id, uuid.uuid4(), "uwv", "gm0363"), context)
    document, value = _signed(agency_keys, requested)

    (copy,) = _copies(signed_registry, document, value, "schulden").values()

    assert value == copy.value
    assert ["actions", "personal"] == copy.fields


def test_the_fields_of_a_copy_name_only_the_sections_delivered_with_content(
    signed_registry: AgencyRegistry, agency_keys: Keys, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    context = CaseContext(actions=[ActionTaken(at=START, agency="uwv", description="Gebeld")])
    opened = with_context(make.opened(case_id, by="uwv"), context)
    document, value = _signed(agency_keys, opened)

    copies = _copies(signed_registry, document, value, "schulden")

    assert {"toeslagen": ["actions"], "gm0363": ["actions"]} == {
        code: copy.fields for code, copy in copies.items()
    }


def test_an_event_without_context_goes_to_each_receiver_as_sent_with_no_fields(
    signed_registry: AgencyRegistry, agency_keys: Keys, make: EventFactory
) -> None:
    case_id = uuid.uuid4()
    closed = make.closed(case_id, by="uwv")
    document, value = _signed(agency_keys, closed)

    copies = _copies(signed_registry, document, value, "schulden")

    assert {"belastingdienst", "toeslagen", "cjib"} == set(copies)
    assert {(value, ())} == {(copy.value, tuple(copy.fields)) for copy in copies.values()}


def test_the_sender_never_receives_its_own_event(
    signed_registry: AgencyRegistry,
) -> None:
    category = _category(signed_registry, "schulden")

    grants = minimise.grants(signed_registry, "case-closed", {}, category, "cjib")

    assert "cjib" not in grants
    assert {"belastingdienst", "toeslagen"} == set(grants)


def test_the_other_party_of_a_handoff_answer_gets_it_under_the_handoff_grant(
    signed_registry: AgencyRegistry,
) -> None:
    category = _category(signed_registry, "schulden")
    data = {"handoff_id": str(uuid.uuid4()), "from_agency": "uwv", "to_agency": "gm0363"}

    grants = minimise.grants(signed_registry, "handoff-accepted", data, category, "gm0363")

    assert {"uwv": handoff_grant(category)} == grants


def test_a_handoff_receiver_not_in_the_registry_is_granted_nothing(
    signed_registry: AgencyRegistry,
) -> None:
    category = _category(signed_registry, "schulden")
    data = {"from_agency": "uwv", "to_agency": "nobody"}

    grants = minimise.grants(signed_registry, "handoff-requested", data, category, "uwv")

    assert {} == grants
