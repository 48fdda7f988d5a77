"""Signed events: a signature proves the source agency sent the event, and nothing else does."""

from __future__ import annotations

import base64
import copy
import json
import stat
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import rfc8785
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from contracts import CaseOpened, RegistryInvalid, parse_event, source_urn
from contracts.agency_client import AgencyKeys
from contracts.case import ActionTaken, CaseContext, CitizenPromise, OpenDeadline
from contracts.events import CaseOpening
from contracts.registry import AgencyRegistry
from contracts.signing import (
    SignatureRefused,
    canonical_form,
    key_id,
    sign_event,
    verify_signature,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "agencies.yaml"
NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
UWV_OIN = "00000099000000000013"


def example_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    return document


def keyed(document: dict[str, Any]) -> tuple[AgencyRegistry, dict[str, AgencyKeys]]:
    """The registry with a fresh key pair for every agency, and those key pairs."""
    document = copy.deepcopy(document)
    keys = {entry["code"]: AgencyKeys.generate(entry["code"]) for entry in document["agencies"]}
    for entry in document["agencies"]:
        entry["signing_key"] = keys[entry["code"]].public_key
    return AgencyRegistry.from_document(document), keys


@pytest.fixture(scope="module")
def bus() -> tuple[AgencyRegistry, dict[str, AgencyKeys]]:
    return keyed(example_document())


@pytest.fixture
def keyed_registry(bus: tuple[AgencyRegistry, dict[str, AgencyKeys]]) -> AgencyRegistry:
    return bus[0]


@pytest.fixture
def keys(bus: tuple[AgencyRegistry, dict[str, AgencyKeys]]) -> dict[str, AgencyKeys]:
    return bus[1]


def uwv_event(oin: str = UWV_OIN) -> CaseOpened:
    """About 800 bytes on the wire once signed, like a real case opening."""
    context = CaseContext(
        actions=[ActionTaken(at=NOW, agency="uwv", description="Terugvordering gepauzeerd")],
        promises=[CitizenPromise(agency="uwv", promise="Terugbellen", due=date(2025, 3, 21))],
        deadlines=[OpenDeadline(description="Bezwaartermijn", due=date(2025, 4, 25))],
    )
    return CaseOpened.new(
        source=source_urn(oin, "uitkeringen"),
        case_id=uuid.uuid4(),
        time=NOW,
        data=CaseOpening(category="schulden", summary="Schulden, € 4.200", context=context),
    )


# Keys and strings that matter to RFC 8785: escapes, non-ASCII (sorted by UTF-16
# code units, where U+FF01 comes after U+1F600), lone surrogates.
TRICKY_TEXT = st.text(max_size=12) | st.sampled_from(
    ["", '"', "\\", "\x00", "\x1f", "\x7f", "\u2028", "é", "\uff01", "\U0001f600", "\ud800"]
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) - 2, max_value=2**53 + 2)
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY_TEXT, inner, max_size=4),
    max_leaves=16,
)


def refusal(document: dict[str, Any], registry: AgencyRegistry) -> SignatureRefused:
    with pytest.raises(SignatureRefused) as caught:
        verify_signature(document, registry)
    return caught.value


def test_a_signed_event_verifies_as_its_source_agency(
    keyed_registry: AgencyRegistry, keys: dict[str, AgencyKeys]
) -> None:
    wire = keys["uwv"].sign(uwv_event())

    agency = verify_signature(json.loads(wire), keyed_registry)

    assert "uwv" == agency.code
    event = parse_event(wire)
    assert keys["uwv"].key_id == event.signingkey
    assert event.signature is not None
    assert 64 == len(base64.b64decode(event.signature))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param(("data", "summary"), "Eén schuld", id="data"),
        pytest.param(("data", "context", "actions", 0, "agency"), "svb", id="nested-data"),
        pytest.param(("sequence",), 2, id="sequence"),
        pytest.param(("subject",), str(uuid.uuid4()), id="subject"),
    ],
)
def test_a_changed_event_is_refused_as_bad_signature(
    keyed_registry: AgencyRegistry,
    keys: dict[str, AgencyKeys],
    path: tuple[str | int, ...],
    value: Any,
) -> None:
    document = json.loads(keys["uwv"].sign(uwv_event()))
    node = document
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value

    assert "bad-signature" == refusal(document, keyed_registry).code


def test_a_signature_forged_under_the_source_agencys_key_id_is_refused_as_bad_signature(
    keyed_registry: AgencyRegistry, keys: dict[str, AgencyKeys]
) -> None:
    document = json.loads(uwv_event().to_json())
    document["signingkey"] = keys["uwv"].key_id
    forger = SigningKey.generate()
    forged = forger.sign(canonical_form(document)).signature
    document["signature"] = base64.b64encode(forged).decode()

    assert "bad-signature" == refusal(document, keyed_registry).code


@pytest.mark.parametrize(
    "respell",
    [
        pytest.param(lambda s: s.rstrip("="), id="unpadded"),
        # The last character before `==` carries 4 unused bits: B decodes like A.
        pytest.param(lambda s: s[:-3] + chr(ord(s[-3]) + 1) + "==", id="nonzero-padding-bits"),
    ],
)
def test_a_signature_in_another_base64_spelling_is_refused(
    keyed_registry: AgencyRegistry, keys: dict[str, AgencyKeys], respell: Callable[[str], str]
) -> None:
    document = json.loads(keys["uwv"].sign(uwv_event()))
    document["signature"] = respell(document["signature"])

    assert "bad-signature" == refusal(document, keyed_registry).code


def test_a_signature_in_url_safe_base64_is_refused(
    keyed_registry: AgencyRegistry, keys: dict[str, AgencyKeys]
) -> None:
    # About 1 signature in 15 has neither + nor /; sign until one differs in the URL-safe alphabet.
    while True:
        document = json.loads(keys["uwv"].sign(uwv_event()))
        urlsafe = document["signature"].replace("+", "-").replace("/", "_")
        if urlsafe != document["signature"]:
            break
    document["signature"] = urlsafe

    assert "bad-signature" == refusal(document, keyed_registry).code


def test_an_event_signed_with_another_agencys_key_is_refused_as_foreign_key(
    keyed_registry: AgencyRegistry, keys: dict[str, AgencyKeys]
) -> None:
    wire = keys["svb"].sign(uwv_event())

    refused = refusal(json.loads(wire), keyed_registry)

    assert "foreign-key" == refused.code
    assert "'svb'" in refused.reason
    assert "'uwv'" in refused.reason
    assert refused.reason == str(refused)


@pytest.mark.parametrize("missing", ["signature", "signingkey", "both"])
def test_an_event_without_signature_or_key_id_is_refused_as_unsigned(
    keyed_registry: AgencyRegistry, keys: dict[str, AgencyKeys], missing: str
) -> None:
    document = json.loads(keys["uwv"].sign(uwv_event()))
    for name in ("signature", "signingkey") if missing == "both" else (missing,):
        del document[name]

    assert "unsigned" == refusal(document, keyed_registry).code


def test_an_event_signed_with_an_unregistered_key_is_refused_as_unknown_key(
    keyed_registry: AgencyRegistry,
) -> None:
    wire = sign_event(uwv_event(), SigningKey.generate())

    assert "unknown-key" == refusal(json.loads(wire), keyed_registry).code


def test_an_event_from_an_agency_without_a_registered_key_is_refused_as_unknown_key(
    registry: AgencyRegistry,
) -> None:
    wire = sign_event(uwv_event(), SigningKey.generate())

    refused = refusal(json.loads(wire), registry)

    assert "unknown-key" == refused.code
    assert "agency 'uwv' has no signing_key" in refused.reason


def test_an_event_from_an_unregistered_oin_is_refused_as_unknown_source(
    keyed_registry: AgencyRegistry, keys: dict[str, AgencyKeys]
) -> None:
    wire = keys["uwv"].sign(uwv_event(oin="00000099000000009999"))

    refused = refusal(json.loads(wire), keyed_registry)

    assert "unknown-source" == refused.code
    assert "00000099000000009999" in refused.reason


def test_a_signed_event_still_verifies_after_reordering_and_reindenting(
    keyed_registry: AgencyRegistry, keys: dict[str, AgencyKeys]
) -> None:
    document = json.loads(keys["uwv"].sign(uwv_event()))
    reordered = dict(reversed(document.items()))
    rewritten = json.dumps(reordered, indent=4, ensure_ascii=True, separators=(" , ", " : "))

    assert "uwv" == verify_signature(json.loads(rewritten), keyed_registry).code


def test_the_canonical_form_is_independent_of_key_order_and_whitespace() -> None:
    compact = b'{"b":[1,{"y":2,"x":"\xc3\xa9"}],"a":null}'
    spaced = b'{\n  "a" : null,\n\t"b" : [ 1 , { "x" : "\\u00e9" , "y" : 2 } ]\n}'

    assert b'{"a":null,"b":[1,{"x":"\xc3\xa9","y":2}]}' == canonical_form(json.loads(compact))
    assert canonical_form(json.loads(compact)) == canonical_form(json.loads(spaced))


def test_the_canonical_form_covers_everything_but_the_signature() -> None:
    document = {"id": "1", "signingkey": "0123456789abcdef", "signature": "x", "data": {"a": 1}}

    expected = b'{"data":{"a":1},"id":"1","signingkey":"0123456789abcdef"}'
    assert expected == canonical_form(document)


def test_the_canonical_form_matches_the_rfc_8785_example() -> None:
    # RFC 8785 section 3.2.2, input and the expected output.
    example = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        r'"string": "\u20ac$\u000F\u000aA\'\u0042\u0022\u005c\\\"\/",'
        '"literals": [null, true, false]}'
    ).replace("\\'", "'")
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        r'"string":"€$\u000f\nA' + "'" + r'B\"\\\\\"/"}'
    ).encode()

    assert expected == canonical_form(json.loads(example))


@settings(max_examples=400, deadline=None)
@given(document=st.dictionaries(TRICKY_TEXT, JSON_VALUES, max_size=6))
@example(document={"\uff01": 1, "\U0001f600": 2})
@example(document={"a": "\ud800"})
@example(document={"\ud800": None})
@example(document={"n": 2**53 - 1, "m": -(2**53) + 1})
def test_the_canonical_form_is_what_the_rfc_8785_reference_writes(
    document: dict[str, Any],
) -> None:
    unsigned = {name: value for name, value in document.items() if name != "signature"}
    try:
        expected = rfc8785.dumps(unsigned)
    except (rfc8785.CanonicalizationError, UnicodeError):  # a lone surrogate in a key
        with pytest.raises(ValueError, match="RFC 8785"):
            canonical_form(document)
    else:
        assert expected == canonical_form(document)


def test_the_canonical_form_refuses_an_integer_beyond_what_json_numbers_keep_exact() -> None:
    with pytest.raises(ValueError, match="RFC 8785"):
        canonical_form({"sequence": 2**53 + 1})


def test_the_key_id_is_the_first_16_hex_digits_of_sha256_of_the_public_key() -> None:
    # SHA-256 of 32 zero bytes is 66687aadf862bd776c8fc18b8e9f8e20...
    assert "66687aadf862bd77" == key_id(bytes(32))


def test_signing_json_bytes_a_client_wrote_replaces_an_old_signature(
    keyed_registry: AgencyRegistry, keys: dict[str, AgencyKeys]
) -> None:
    stale = sign_event(uwv_event(), SigningKey.generate())
    handwritten = json.dumps(json.loads(stale), indent=2).encode()

    wire = keys["uwv"].sign(handwritten)

    assert keys["uwv"].key_id == json.loads(wire)["signingkey"]
    assert "uwv" == verify_signature(json.loads(wire), keyed_registry).code


def test_signing_bytes_that_are_not_a_json_object_is_refused() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        sign_event(b"[1, 2]", SigningKey.generate())


def test_registry_finds_the_agency_by_the_id_of_its_key(
    keyed_registry: AgencyRegistry, keys: dict[str, AgencyKeys]
) -> None:
    found = keyed_registry.agency_by_key_id(keys["gm0363"].key_id)

    assert found is not None
    assert "gm0363" == found.code
    assert keys["gm0363"].key_id == found.key_id
    assert keyed_registry.agency_by_key_id("0000000000000000") is None


def respelled_public_key() -> str:
    """A valid key spelled with the 2 unused bits of its 43rd character set."""
    canonical = AgencyKeys.generate("uwv").public_key
    return canonical[:42] + chr(ord(canonical[42]) + 1) + "="


@pytest.mark.parametrize(
    ("signing_key", "expected"),
    [
        pytest.param(base64.b64encode(bytes(31)).decode(), "got 31 bytes", id="short"),
        pytest.param("not base64!", "must be standard base64", id="not-base64"),
        pytest.param(
            base64.urlsafe_b64encode(b"\xfb" * 32).decode(), "must be standard base64", id="urlsafe"
        ),
        pytest.param(
            respelled_public_key(),
            "is not in canonical base64",
            id="nonzero-padding-bits",
        ),
        pytest.param(
            base64.b64encode(b"\x01" + bytes(31)).decode(),
            "is not a valid Ed25519 public key",
            id="identity-point",
        ),
    ],
)
def test_registry_refuses_a_signing_key_that_is_not_a_base64_ed25519_key(
    signing_key: str, expected: str
) -> None:
    document = example_document()
    document["agencies"][2]["signing_key"] = signing_key

    with pytest.raises(RegistryInvalid) as caught:
        AgencyRegistry.from_document(document)

    (problem,) = caught.value.problems
    assert problem.startswith("agencies[2] (uwv).signing_key: ")
    assert expected in problem


def test_registry_refuses_two_agencies_with_one_key() -> None:
    document = example_document()
    shared = AgencyKeys.generate("uwv").public_key
    document["agencies"][2]["signing_key"] = shared
    document["agencies"][3]["signing_key"] = shared

    with pytest.raises(RegistryInvalid) as caught:
        AgencyRegistry.from_document(document)

    assert "agency 'svb': signing_key has the key id of agency 'uwv'" in str(caught.value)


def test_agency_keys_saved_to_a_file_only_the_owner_reads_load_back(tmp_path: Path) -> None:
    keys = AgencyKeys.generate("uwv")
    path = tmp_path / "uwv.key"

    keys.save(path)
    loaded = AgencyKeys.load(path, "uwv")

    assert 0o600 == stat.S_IMODE(path.stat().st_mode)
    assert keys.public_key == loaded.public_key
    assert keys.key_id == loaded.key_id


def test_agency_keys_refuse_to_overwrite_a_key_file(tmp_path: Path) -> None:
    path = tmp_path / "uwv.key"
    AgencyKeys.generate("uwv").save(path)
    before = path.read_bytes()

    with pytest.raises(FileExistsError):
        AgencyKeys.generate("uwv").save(path)

    assert before == path.read_bytes()


def test_agency_keys_load_refuses_a_file_that_is_not_a_key(tmp_path: Path) -> None:
    path = tmp_path / "uwv.key"
    path.write_text("c2VjcmV0\n", encoding="ascii")

    with pytest.raises(ValueError, match="not a Ketenbus private key file") as caught:
        AgencyKeys.load(path, "uwv")

    assert "c2VjcmV0" not in str(caught.value)


def test_agency_keys_repr_shows_the_key_id_and_never_the_private_key(tmp_path: Path) -> None:
    keys = AgencyKeys.generate("uwv")
    keys.save(tmp_path / "uwv.key")
    private = (tmp_path / "uwv.key").read_text(encoding="ascii").strip()

    shown = repr(keys) + str(keys)

    assert f"AgencyKeys(code='uwv', key_id='{keys.key_id}')" == repr(keys)
    assert private not in shown
