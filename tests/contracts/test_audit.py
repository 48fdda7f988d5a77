"""The audit chain's contract: how a record is hashed and linked, and what breaks the chain."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta, timezone
from typing import Any

import pytest
import rfc8785
from pydantic import ValidationError

from contracts.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditRecord,
    Broken,
    check_chain,
    link,
    record_hash,
    record_json,
    trusted_entry,
)
from tests.services.audit.entries import T0, entries, entry


def chain(count: int) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    previous = GENESIS_HASH
    for seq, item in enumerate(entries(count), start=1):
        records.append(link(seq, previous, item))
        previous = records[-1].hash
    return records


def test_a_record_hash_is_sha256_of_its_published_json_without_hash_in_rfc8785_form() -> None:
    """What an auditor does with a record read from the topic, without this module: the
    hash covers everything but itself and the chain's name."""
    record = chain(1)[0]
    published = json.loads(record.model_dump_json())
    claimed = published.pop("hash")
    assert "ketenbus" == published.pop("chain")

    assert hashlib.sha256(rfc8785.dumps(published)).hexdigest() == claimed


def test_a_record_is_published_as_pydantic_writes_it_byte_for_byte() -> None:
    record = link(7, "a" * 64, entry(minute=5).model_copy(update={"purpose": "Zorg ë \u2028 \x01"}))

    assert record.model_dump_json().encode() == record_json(record)
    assert record == AuditRecord.model_validate_json(record_json(record))


def test_a_trusted_entry_is_the_entry_pydantic_validates_from_the_same_values() -> None:
    validated = entry()

    trusted = trusted_entry(**validated.model_dump())

    assert validated == trusted
    assert validated.model_dump_json() == trusted.model_dump_json()
    assert validated.model_fields_set == trusted.model_fields_set
    with pytest.raises(ValidationError):
        trusted.receiver = "uwv"  # frozen, as a validated entry


def test_a_linked_record_is_the_record_pydantic_validates_from_its_json() -> None:
    record = link(3, "b" * 64, entry())

    again = AuditRecord.model_validate_json(record.model_dump_json())

    assert again == record
    assert again.model_fields_set == record.model_fields_set
    assert again.model_dump() == record.model_dump()
    assert list(AuditRecord.model_fields) == list(record.model_dump())


def test_a_record_publishes_its_time_in_utc_with_microseconds() -> None:
    record = link(1, GENESIS_HASH, entry(minute=5))

    assert "2026-11-29T09:05:00.000000Z" == json.loads(record.model_dump_json())["delivered_at"]


def test_the_same_instant_in_another_offset_hashes_the_same() -> None:
    item = entry()
    shifted = item.model_copy(
        update={"delivered_at": item.delivered_at.astimezone(timezone(timedelta(hours=2)))}
    )
    again = AuditEntry.model_validate(shifted.model_dump())

    assert record_hash(1, GENESIS_HASH, item) == record_hash(1, GENESIS_HASH, again)


@pytest.mark.parametrize(
    "change",
    [
        {"receiver": "cjib"},
        {"fields": ["actions"]},
        {"purpose": "Iets anders"},
        {"legal_basis": "Awir art. 26"},
        {"event_type": "case-opened"},
        {"delivered_at": T0 + timedelta(microseconds=1)},
    ],
    ids=lambda change: next(iter(change)),
)
def test_changing_any_field_of_an_entry_changes_its_hash(change: dict[str, Any]) -> None:
    item = entry(minute=0)

    changed = item.model_copy(update=change)

    assert record_hash(1, GENESIS_HASH, item) != record_hash(1, GENESIS_HASH, changed)


def test_seq_and_prev_hash_are_part_of_the_hash() -> None:
    item = entry()
    base = record_hash(2, "a" * 64, item)

    assert (base, base) != (record_hash(3, "a" * 64, item), record_hash(2, "b" * 64, item))


def test_hashing_a_record_hashes_only_its_entry_seq_and_prev_hash() -> None:
    record = chain(1)[0]

    assert record.hash == record_hash(record.seq, record.prev_hash, record)


def test_the_first_record_follows_genesis_and_each_next_carries_the_hash_before() -> None:
    records = chain(3)

    assert [GENESIS_HASH, records[0].hash, records[1].hash] == [r.prev_hash for r in records]
    assert [1, 2, 3] == [record.seq for record in records]


def test_a_record_survives_a_trip_through_its_json() -> None:
    record = chain(1)[0]

    assert record == AuditRecord.model_validate_json(record.model_dump_json())


def test_an_entry_refuses_a_naive_time_and_unknown_members() -> None:
    document = entry().model_dump()

    with pytest.raises(ValidationError):
        AuditEntry.model_validate({**document, "delivered_at": T0.replace(tzinfo=None)})
    with pytest.raises(ValidationError):
        AuditEntry.model_validate({**document, "bsn": "123456782"})


def test_an_intact_chain_has_no_break() -> None:
    assert None is check_chain(chain(5))


def test_an_empty_chain_has_no_break() -> None:
    assert None is check_chain([])


def test_check_chain_names_a_record_whose_contents_changed() -> None:
    records = chain(5)
    records[2] = records[2].model_copy(update={"receiver": "cjib"})

    broken = check_chain(records)

    assert (
        Broken(
            seq=3,
            kind="contents-changed",
            reason="contents changed since it was written",
            case_id=records[2].case_id,
            event_id=records[2].event_id,
        )
        == broken
    )


def test_check_chain_names_the_record_after_a_removed_one() -> None:
    records = chain(5)
    del records[2]

    broken = check_chain(records)

    assert broken is not None
    assert (4, "gap", "record 3 missing before it") == (broken.seq, broken.kind, broken.reason)


def test_check_chain_names_the_range_of_removed_records() -> None:
    records = chain(6)
    del records[1:4]

    broken = check_chain(records)

    assert broken is not None
    assert (5, "records 2-4 missing before it") == (broken.seq, broken.reason)


def test_check_chain_names_a_removed_record_whose_successors_were_renumbered() -> None:
    """Record 3 removed, 4 and 5 rehashed as 3 and 4: 3 no longer links to 2."""
    records = chain(5)
    forged_3 = link(3, records[2].hash, records[3])
    forged_4 = link(4, forged_3.hash, records[4])

    broken = check_chain([*records[:2], forged_3, forged_4])

    assert broken is not None
    assert (3, "not-linked") == (broken.seq, broken.kind)
    assert "does not follow record 2" in broken.reason


def test_check_chain_names_a_record_read_out_of_order() -> None:
    records = chain(3)

    broken = check_chain([records[0], records[1], records[1], records[2]])

    assert broken is not None
    assert (2, "out-of-order", "out of order: record 3 expected") == (
        broken.seq,
        broken.kind,
        broken.reason,
    )


def test_a_first_record_that_does_not_follow_genesis_is_not_linked() -> None:
    first = link(1, "f" * 64, entry())

    broken = check_chain([first])

    assert broken is not None
    assert ("not-linked", "does not follow the start of the chain") == (
        broken.kind,
        broken.reason.split(":")[0],
    )


def test_check_chain_continues_from_a_record_in_the_middle() -> None:
    records = chain(6)

    assert None is check_chain(records[3:], start_hash=records[2].hash, start_seq=4)
    assert check_chain(records[3:]) is not None
