"""Signature verdicts worked out apart from the router, and the workers that work them out."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

from contracts.agency_client import AgencyKeys
from contracts.registry import AgencyRegistry
from services.router._verifier import UNCHECKED, VERIFIED, shared_workers, verdicts
from tests._testutil import EventFactory


def test_each_value_gets_the_verdict_the_router_would_reach_itself(
    signed_registry: AgencyRegistry, agency_keys: dict[str, AgencyKeys]
) -> None:
    opened = EventFactory(signed_registry).opened(uuid.uuid4(), by="belastingdienst")
    good = agency_keys["belastingdienst"].sign(opened)
    foreign = agency_keys["uwv"].sign(opened)
    document = signed_registry.model_dump_json().encode()

    found = verdicts(document, [good, foreign, b"{not json", b"[1, 2]", good])

    assert [VERIFIED, "foreign-key", UNCHECKED, UNCHECKED, VERIFIED] == [
        v if isinstance(v, str) else v[0] for v in found
    ]
    assert "agency 'uwv'" in found[1][1]


def test_a_worker_leaves_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys, time
            from services.router._verifier import Workers

            if __name__ == "__main__":
                pool = Workers(1).get()
                print(pool.submit(os.getpid).result(timeout=60), flush=True)
                time.sleep(120)
            """
        )
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert _alive(worker)
    finally:
        parent.kill()
        parent.wait(timeout=30)
        if parent.stdout is not None:
            parent.stdout.close()

    deadline = time.monotonic() + 20
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie has ended: it only waits to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_no_workers_are_started_when_the_setting_says_none() -> None:
    assert None is shared_workers(0)
