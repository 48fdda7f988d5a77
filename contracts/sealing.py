"""Sealed personal data: a case's personal section readable by its receiving agencies only.

The personal section is sealed once per receiving agency with an X25519 sealed
box (libsodium `crypto_box_seal`) for that agency's public key. One key pair
per agency serves both purposes: the X25519 key is the one converted from the
agency's registered Ed25519 signing key, and the agency opens its box with the
X25519 form of its own signing key. The bus carries the boxes without being
able to open them, and gives each receiver only its own box (`sealed_for`).

A sealed box does not say who sealed it; the event's signature does.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from nacl.exceptions import CryptoError
from nacl.public import SealedBox
from nacl.signing import SigningKey, VerifyKey
from pydantic import ValidationError

from contracts.case import PersonalSection, SealedPersonal
from contracts.registry import Agency, public_key_bytes

__all__ = ["CannotOpen", "SealedPersonal", "open_personal", "seal_personal", "sealed_for"]


class CannotOpen(ValueError):
    """Nothing is sealed for this agency, or its box does not open with this key."""


def seal_personal(personal: PersonalSection, recipients: Iterable[Agency]) -> SealedPersonal:
    """The personal section sealed for each recipient, keyed by agency code.

    Raises ValueError when there is no recipient or one has no `signing_key`
    in the registry (there is no key to seal for).
    """
    plaintext = personal.model_dump_json(exclude_none=True).encode()
    boxes: dict[str, str] = {}
    for agency in recipients:
        if agency.signing_key is None:
            raise ValueError(
                f"cannot seal personal data for agency {agency.code!r}: it has no "
                "signing_key in the registry"
            )
        public = VerifyKey(public_key_bytes(agency.signing_key)).to_curve25519_public_key()
        boxes[agency.code] = base64.b64encode(SealedBox(public).encrypt(plaintext)).decode()
    if not boxes:
        raise ValueError("cannot seal personal data for no one: name at least one agency")
    return SealedPersonal(sealed=boxes)


def open_personal(sealed: SealedPersonal, code: str, key: SigningKey) -> PersonalSection:
    """The personal section in `code`'s box, opened with that agency's signing key.

    Raises CannotOpen when nothing is sealed for `code`, or the box does not
    open with `key` (sealed for another key, or damaged).
    """
    box = sealed.sealed.get(code)
    if box is None:
        boxes = ", ".join(sorted(sealed.sealed))
        raise CannotOpen(f"nothing is sealed for agency {code!r} (sealed for: {boxes})")
    try:
        plaintext = SealedBox(key.to_curve25519_private_key()).decrypt(base64.b64decode(box))
    except (CryptoError, ValueError):
        raise CannotOpen(
            f"the personal data sealed for agency {code!r} does not open with this key"
        ) from None
    try:
        return PersonalSection.model_validate_json(plaintext)
    except ValidationError:
        # The sender sealed something else; its content is not echoed, it is personal data.
        raise CannotOpen(
            f"the box sealed for agency {code!r} opens but holds no valid personal section"
        ) from None


def sealed_for(sealed: SealedPersonal, code: str) -> SealedPersonal | None:
    """Only `code`'s box, or None when nothing is sealed for it: what one receiver may get."""
    box = sealed.sealed.get(code)
    if box is None:
        return None
    if len(sealed.sealed) == 1:
        return sealed
    # The box was validated with the rest; per receiver, per event, skip doing it again.
    return SealedPersonal.model_construct(sealed={code: box})
