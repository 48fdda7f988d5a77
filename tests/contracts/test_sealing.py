"""Sealed personal data: only the agency it is sealed for can read it, and it travels in a case."""

from __future__ import annotations

import base64
import copy
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from nacl.signing import SigningKey
from pydantic import ValidationError

from contracts import CaseContext, CaseOpened, PersonalSection, parse_event, source_urn
from contracts.agency_client import AgencyKeys
from contracts.case import MoneyAmount
from contracts.events import CaseOpening
from contracts.registry import AgencyRegistry
from contracts.sealing import (
    CannotOpen,
    SealedPersonal,
    open_personal,
    seal_personal,
    sealed_for,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "agencies.yaml"
PERSONAL = PersonalSection(
    bsn="123456782",
    name="J. Jansen",
    address="Kerkstraat 1, Amsterdam",
    amounts=[MoneyAmount(label="Schuld", cents=123456)],
)


@pytest.fixture(scope="module")
def bus() -> tuple[AgencyRegistry, dict[str, SigningKey]]:
    """The example registry with a fresh key pair for every agency, and their private keys."""
    document: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    document = copy.deepcopy(document)
    private = {entry["code"]: SigningKey.generate() for entry in document["agencies"]}
    for entry in document["agencies"]:
        entry["signing_key"] = AgencyKeys(entry["code"], private[entry["code"]]).public_key
    return AgencyRegistry.from_document(document), private


@pytest.fixture
def keyed_registry(bus: tuple[AgencyRegistry, dict[str, SigningKey]]) -> AgencyRegistry:
    return bus[0]


@pytest.fixture
def private(bus: tuple[AgencyRegistry, dict[str, SigningKey]]) -> dict[str, SigningKey]:
    return bus[1]


@pytest.fixture
def keys(private: dict[str, SigningKey]) -> dict[str, AgencyKeys]:
    return {code: AgencyKeys(code, key) for code, key in private.items()}


def test_each_recipient_opens_the_personal_data_sealed_for_it(
    keyed_registry: AgencyRegistry, keys: dict[str, AgencyKeys], private: dict[str, SigningKey]
) -> None:
    sealed = keys["uwv"].seal(PERSONAL, ["gm0363", "svb"], keyed_registry)

    assert {"gm0363", "svb"} == set(sealed.sealed)
    assert PERSONAL == keys["gm0363"].open(sealed)
    assert PERSONAL == open_personal(sealed, "svb", private["svb"])


def test_sealed_personal_data_does_not_open_with_any_other_agencys_key(
    keyed_registry: AgencyRegistry, private: dict[str, SigningKey]
) -> None:
    gm0363 = keyed_registry.agency("gm0363")
    assert gm0363 is not None
    sealed = seal_personal(PERSONAL, [gm0363])
    others = [code for code in private if code != "gm0363"]
    assert len(others) >= 5

    for code in others:
        with pytest.raises(CannotOpen, match="does not open with this key"):
            open_personal(sealed, "gm0363", private[code])


def test_an_agency_with_nothing_sealed_for_it_cannot_open(
    keyed_registry: AgencyRegistry, keys: dict[str, AgencyKeys]
) -> None:
    sealed = keys["uwv"].seal(PERSONAL, ["gm0363"], keyed_registry)

    with pytest.raises(CannotOpen, match="nothing is sealed for agency 'toeslagen'"):
        keys["toeslagen"].open(sealed)


def test_a_damaged_box_cannot_be_opened(
    keyed_registry: AgencyRegistry, keys: dict[str, AgencyKeys]
) -> None:
    sealed = keys["uwv"].seal(PERSONAL, ["gm0363"], keyed_registry)
    box = bytearray(base64.b64decode(sealed.sealed["gm0363"]))
    box[-1] ^= 1
    damaged = SealedPersonal(sealed={"gm0363": base64.b64encode(box).decode()})

    with pytest.raises(CannotOpen):
        keys["gm0363"].open(damaged)


def test_sealed_for_keeps_only_the_receivers_box(
    keyed_registry: AgencyRegistry, keys: dict[str, AgencyKeys]
) -> None:
    sealed = keys["uwv"].seal(PERSONAL, ["gm0363", "svb", "cjib"], keyed_registry)

    minimised = sealed_for(sealed, "svb")

    assert minimised is not None
    assert {"svb": sealed.sealed["svb"]} == minimised.sealed
    assert PERSONAL == keys["svb"].open(minimised)
    assert sealed_for(sealed, "toeslagen") is None


def test_sealing_for_an_agency_without_a_registered_key_names_it(
    registry: AgencyRegistry,
) -> None:
    uwv = registry.agency("uwv")
    assert uwv is not None

    with pytest.raises(ValueError, match="agency 'uwv': it has no signing_key"):
        seal_personal(PERSONAL, [uwv])


def test_sealing_for_no_one_or_an_unknown_agency_is_refused(
    keyed_registry: AgencyRegistry, keys: dict[str, AgencyKeys]
) -> None:
    with pytest.raises(ValueError, match="at least one agency"):
        seal_personal(PERSONAL, [])
    with pytest.raises(ValueError, match="'nobody': it is not in the registry"):
        keys["uwv"].seal(PERSONAL, ["nobody"], keyed_registry)


def test_a_case_context_parses_personal_data_in_the_clear_and_sealed(
    keyed_registry: AgencyRegistry, keys: dict[str, AgencyKeys]
) -> None:
    sealed = keys["uwv"].seal(PERSONAL, ["gm0363"], keyed_registry)
    clear_json = CaseContext(personal=PERSONAL).model_dump_json()
    sealed_json = CaseContext(personal=sealed).model_dump_json()

    assert PERSONAL == CaseContext.model_validate_json(clear_json).personal
    assert sealed == CaseContext.model_validate_json(sealed_json).personal
    assert PersonalSection() == CaseContext.model_validate_json('{"personal": {}}').personal


def test_a_signed_event_carries_sealed_personal_data_to_its_receiver(
    keyed_registry: AgencyRegistry, keys: dict[str, AgencyKeys]
) -> None:
    uwv = keyed_registry.agency("uwv")
    assert uwv is not None
    context = CaseContext(personal=keys["uwv"].seal(PERSONAL, ["gm0363"], keyed_registry))
    event = CaseOpened.new(
        source=source_urn(uwv.oin, "uitkeringen"),
        case_id=uuid.uuid4(),
        data=CaseOpening(category="schulden", summary="Schulden", context=context),
    )

    received = parse_event(keys["uwv"].sign(event))

    personal = received.data.context.personal
    assert isinstance(personal, SealedPersonal)
    assert PERSONAL == keys["gm0363"].open(personal)


@pytest.mark.parametrize(
    "personal",
    [
        pytest.param({"sealed": {}}, id="no-box"),
        pytest.param({"sealed": {"gm0363": "not base64!" * 8}}, id="not-base64"),
        pytest.param({"sealed": {"GM0363": "A" * 64}}, id="not-an-agency-code"),
        pytest.param({"sealed": {"gm0363": "A" * 64}, "bsn": "123456782"}, id="both-forms"),
    ],
)
def test_a_case_context_refuses_malformed_sealed_personal_data(personal: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CaseContext.model_validate({"personal": personal})
