"""The reason codes of a refusal: stable, in a dead letter's `ketenbus-reason-code` header
and in the `data.reason_code` of the `delivery-failed` notice the sender receives.

A code names what was wrong, not which service found it (`ketenbus-rejected-by`
says that). A new code is a change of the public contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

REASON_CODES: Mapping[str, str] = MappingProxyType(
    {
        "unknown-agency": "the topic is no registered agency's outbox",
        "tombstone": "the record has no value (null)",
        "malformed-headers": "a header value is not UTF-8 text",
        "oversize": "the value is over 64 KB",
        "malformed-json": "not JSON, not UTF-8, or nested more than 64 deep",
        "invalid-envelope": "a JSON value that is no object, or an envelope attribute of the "
        "wrong shape",
        "unsigned": "no `signature` or `signingkey`",
        "bad-signature": "the signature does not verify",
        "foreign-key": "signed with another agency's key",
        "unknown-key": "signed with a key in no registry",
        "unknown-source": "the source OIN is no registered agency",
        "unknown-type": "a type the bus does not know",
        "invalid-data": "`data` of the wrong shape for its type",
        "forged-source": "the source OIN is not the outbox agency's",
        "unauthorised-type": "the registry does not let the agency emit the type",
        "wrong-key": "the key is not the case id",
        "quoted-key": "the key is the case id as a JSON string (with quotes)",
        "unsealed-personal-data": "a personal section in clear, or a BSN in any text",
        "nul-character": "a NUL character (U+0000) in any text or name",
        "duplicate-event-id": "the event id was delivered before",
        "not-permitted": "not the sender's to do on the case, or a case the bus does not know",
        "processing-failed": "a service could not process the record after "
        "KETENBUS_MAX_ATTEMPTS tries",
        "webhook-undeliverable": "the receiver's webhook did not take the event within "
        "KETENBUS_WEBHOOK_HORIZON",
    }
)
"""Every reason code, with when it is given."""

WEBHOOK_UNDELIVERABLE = "webhook-undeliverable"
"""The gateway gave a webhook delivery up; the escalation service acts on it for a handoff
request that never reached its receiver (see `contracts.handoff.gateway_source`)."""
