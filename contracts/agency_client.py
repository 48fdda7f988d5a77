"""An agency system's own key pair: sign what it emits, seal and open personal data.

One Ed25519 key pair per agency: its public half goes into the agency registry
(`signing_key`), its private half stays with the agency system in a file that
only its owner can read. `ketenbus keys new CODE` creates one.

    keys = AgencyKeys.load(Path("/etc/ketenbus/uwv.key"), "uwv")
    personal = keys.seal(PersonalSection(bsn="123456782"), ["gm0363"], registry)
    wire = keys.sign(HandoffRequested.new(..., data=...))  # bytes for agency.uwv.outbox
    mine = keys.open(received.data.context.personal)  # a SealedPersonal sealed for uwv
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from contracts.case import PersonalSection, SealedPersonal
from contracts.envelope import CaseEvent
from contracts.registry import AgencyRegistry, key_id
from contracts.sealing import open_personal, seal_personal
from contracts.signing import sign_event

__all__ = ["AgencyKeys"]

_CODE = re.compile(r"^[a-z][a-z0-9]{1,31}$")
_SEED_BYTES = 32


class AgencyKeys:
    """One agency's key pair. Its repr names the agency and key id, never the private key."""

    __slots__ = ("_signing_key", "code")

    def __init__(self, code: str, signing_key: SigningKey) -> None:
        if not _CODE.match(code):
            raise ValueError(f"{code!r} is not an agency code (a-z and digits, 2-32 long)")
        self.code = code
        self._signing_key = signing_key

    @classmethod
    def generate(cls, code: str) -> AgencyKeys:
        """A new random key pair for agency `code`."""
        return cls(code, SigningKey.generate())

    @classmethod
    def load(cls, path: Path | str, code: str) -> AgencyKeys:
        """The key pair whose private key file `save` wrote; ValueError if it is not one."""
        text = Path(path).read_text(encoding="ascii", errors="replace").strip()
        try:
            seed = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            seed = b""
        if len(seed) != _SEED_BYTES:
            # The file's content is not shown: it may be a private key after all.
            raise ValueError(
                f"{path}: not a Ketenbus private key file (standard base64 of a "
                f"{_SEED_BYTES}-byte Ed25519 seed on one line)"
            )
        return cls(code, SigningKey(seed))

    def save(self, path: Path | str) -> None:
        """Write the private key to a new file only its owner can read (mode 0600).

        Raises FileExistsError rather than overwrite: a replaced key would lock
        the agency out until the registry has the new public key.
        """
        # O_EXCL: never overwrite, nor follow a planted symlink; the mode is set at
        # creation, so the key is never readable by others, not even for a moment.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(base64.b64encode(bytes(self._signing_key)).decode("ascii") + "\n")

    @property
    def public_key(self) -> str:
        """The public key as the registry's `signing_key`: standard base64 of 32 bytes."""
        return base64.b64encode(bytes(self._signing_key.verify_key)).decode("ascii")

    @property
    def key_id(self) -> str:
        """The `signingkey` attribute of the events this key signs."""
        return key_id(bytes(self._signing_key.verify_key))

    def sign(self, event: CaseEvent[Any] | bytes) -> bytes:
        """The event's wire JSON, signed: what the agency writes to its outbox."""
        return sign_event(event, self._signing_key)

    def seal(
        self, personal: PersonalSection, for_agencies: Iterable[str], registry: AgencyRegistry
    ) -> SealedPersonal:
        """The personal section sealed for each named agency, with its registered key."""
        recipients = []
        for code in for_agencies:
            agency = registry.agency(code)
            if agency is None:
                raise ValueError(f"cannot seal for agency {code!r}: it is not in the registry")
            recipients.append(agency)
        return seal_personal(personal, recipients)

    def open(self, sealed: SealedPersonal) -> PersonalSection:
        """The personal section sealed for this agency; CannotOpen if there is none for it."""
        return open_personal(sealed, self.code, self._signing_key)

    def __repr__(self) -> str:
        return f"AgencyKeys(code={self.code!r}, key_id={self.key_id!r})"
