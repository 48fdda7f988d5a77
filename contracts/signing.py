"""Signed events: who sent an event, proven by the sender's Ed25519 key.

An agency signs the event's canonical form, the event as a JSON object without
its `signature` attribute serialised by RFC 8785 (JSON Canonicalization
Scheme), so the signature survives any re-serialisation that keeps the JSON
values. `signingkey` names the key (see `key_id`) and is itself signed. The
router checks each event with `verify_signature` against the agency registry.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey

from contracts.canonical import canonical_json
from contracts.envelope import CaseEvent, oin_of_source
from contracts.registry import Agency, AgencyRegistry, key_id

__all__ = [
    "SignatureRefused",
    "canonical_form",
    "key_id",
    "sign_event",
    "verify_signature",
]

SIGNATURE_BYTES = 64


class SignatureRefused(Exception):
    """An event whose signature does not prove it comes from its source agency.

    `code` is short and stable, for machines (dead-letter headers, counts):
    `unsigned`, `unknown-source`, `unknown-key`, `foreign-key` or `bad-signature`.
    `reason` is the sentence for the sender; str(exc) is the reason.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def canonical_form(document: Mapping[str, Any]) -> bytes:
    """What is signed: the event's JSON object without `signature`, by RFC 8785.

    Raises ValueError for a value RFC 8785 cannot express (an integer beyond
    ±(2**53 - 1), a non-finite number, a non-string key, a lone surrogate).
    """
    unsigned = {name: value for name, value in document.items() if name != "signature"}
    try:
        return canonical_json(unsigned)
    except ValueError as exc:
        raise ValueError(f"the event has {exc}") from None


def sign_event(event: CaseEvent[Any] | bytes, key: SigningKey) -> bytes:
    """The event's wire JSON with `signingkey` and `signature` set by this key.

    Takes an event model or JSON an agency system wrote itself; an existing
    signature is replaced. Raises ValueError if the bytes are not a JSON object.
    """
    raw = event.to_json() if isinstance(event, CaseEvent) else event
    document = json.loads(raw)
    if not isinstance(document, dict):
        message = "an event is a JSON object; cannot sign anything else"
        raise ValueError(message)  # noqa: TRY004 - the bytes' content is wrong, not their type
    document.pop("signature", None)
    document["signingkey"] = key_id(bytes(key.verify_key))
    signature = key.sign(canonical_form(document)).signature
    document["signature"] = base64.b64encode(signature).decode("ascii")
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def verify_signature(document: Mapping[str, Any], registry: AgencyRegistry) -> Agency:
    """The source agency of a parsed event whose signature proves it sent it.

    The signature must verify with the key the registry holds for the agency
    whose OIN is in `source`. Raises SignatureRefused otherwise.
    """
    signature = document.get("signature")
    signing_key = document.get("signingkey")
    if signature is None or signing_key is None:
        missing = " and ".join(
            name for name in ("signingkey", "signature") if document.get(name) is None
        )
        raise SignatureRefused("unsigned", f"the event is not signed: no {missing}")
    sender = _source_agency(document.get("source"), registry)
    signer = registry.agency_by_key_id(signing_key) if isinstance(signing_key, str) else None
    if signer is None or signer.verify_key is None:
        raise SignatureRefused(
            "unknown-key",
            f"signingkey {str(signing_key)[:40]!r} is no agency's registered key"
            + ("" if sender.signing_key else f"; agency {sender.code!r} has no signing_key"),
        )
    if signer.code != sender.code:
        raise SignatureRefused(
            "foreign-key",
            f"signed with the key of agency {signer.code!r}, but the source is agency "
            f"{sender.code!r}; an agency signs with its own key",
        )
    raw = _signature_bytes(signature)
    try:
        signer.verify_key.verify(canonical_form(document), raw)
    except (BadSignatureError, ValueError):
        raise SignatureRefused(
            "bad-signature",
            f"the signature does not verify with agency {sender.code!r}'s key: "
            "the event was changed after signing, or not signed with that key",
        ) from None
    return sender


def _source_agency(source: Any, registry: AgencyRegistry) -> Agency:
    try:
        oin = oin_of_source(source) if isinstance(source, str) else None
    except ValueError:
        oin = None
    if oin is None:
        shown = repr(source)[:120]
        raise SignatureRefused("unknown-source", f"source {shown} is not an OIN source URN")
    agency = registry.agency_by_oin(oin)
    if agency is None:
        raise SignatureRefused("unknown-source", f"no agency in the registry has OIN {oin}")
    return agency


def _signature_bytes(signature: Any) -> bytes:
    """The 64 raw bytes of a `signature` attribute, or bad-signature."""
    raw = b""
    if isinstance(signature, str):
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
    # One spelling per signature: re-encoding must give back the attribute exactly.
    if len(raw) != SIGNATURE_BYTES or base64.b64encode(raw).decode("ascii") != signature:
        raise SignatureRefused(
            "bad-signature",
            f"signature is not standard base64 of a {SIGNATURE_BYTES}-byte Ed25519 signature",
        )
    return raw
