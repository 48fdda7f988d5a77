"""Signatures checked in worker processes, beside the router's event loop.

Verifying an Ed25519 signature and writing the canonical form it covers are
a third of the router's work per event, and need nothing but the event's bytes
and the registry. In a thread they would still hold the GIL for the canonical
form; in a process they run on another core while the event loop checks the
batch's first share, or delivers the part before. Every router in a process
shares one pool (`Workers`), started at the first router and ended with the
process: by concurrent.futures at a normal exit, by each worker itself when
its parent is gone.

A worker that cannot answer costs nothing but speed: the router then checks
those signatures itself (`UNCHECKED`).

The workers are spawned, not forked, so each imports the parent's main
module: a program that runs a router keeps its start-up under
`if __name__ == "__main__":` (`ketenbus`, `python -m services.router` and
pytest do).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Final, Literal

from contracts.parse import read_json
from contracts.registry import AgencyRegistry
from contracts.screening import nesting_exceeds
from contracts.signing import SignatureRefused, verify_signature
from services.runtime.observability.logging import get_logger

log = get_logger("ketenbus.router")

VERIFIED: Final = "verified"
UNCHECKED: Final = "unchecked"
"""Not checked apart: the router verifies the signature itself (no worker, or the worker
could not read the event as a JSON object, which the router then refuses with its reasons)."""

Verdict = tuple[str, str] | Literal["verified", "unchecked"]
"""A signature's verdict: verified, unchecked, or refused as SignatureRefused's (code, reason)."""

PARENT_POLL_S = 1.0
"""How soon a worker whose parent died notices it and exits."""


def verdicts(registry_document: bytes, values: Sequence[bytes | None]) -> list[Verdict]:
    """Each value's signature verdict against the registry (in a worker process)."""
    registry = _registry(registry_document)
    found: list[Verdict] = []
    for value in values:
        if not value or nesting_exceeds(value):
            found.append(UNCHECKED)  # refused by the router's own checks, with their reasons
            continue
        try:
            document = read_json(value)
        except ValueError:  # UnicodeDecodeError is one
            found.append(UNCHECKED)
            continue
        if not isinstance(document, dict):
            found.append(UNCHECKED)
            continue
        try:
            verify_signature(document, registry)
        except SignatureRefused as exc:
            found.append((exc.code, exc.reason))
        else:
            found.append(VERIFIED)
    return found


_registries: dict[bytes, AgencyRegistry] = {}
_KEPT_REGISTRIES = 8
"""Registries a worker keeps read (routers of one process may run on different ones)."""


def _registry(document: bytes) -> AgencyRegistry:
    """The registry of this JSON document, read once per worker."""
    registry = _registries.get(document)
    if registry is None:
        if len(_registries) >= _KEPT_REGISTRIES:
            del _registries[next(iter(_registries))]  # the one read longest ago
        registry = _registries[document] = AgencyRegistry.model_validate_json(document)
    return registry


def _ready() -> None:
    """Nothing: submitted once to start the workers before the first batch needs them."""


def _leave_with(parent: int) -> None:
    """Worker initialiser: exit when the parent is gone (killed, not shut down)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(0)

    threading.Thread(target=watch, name="leave-with-parent", daemon=True).start()


class Workers:
    """The process's pool of signature workers, started on first use, replaced when broken."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def get(self) -> Executor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.count,
                    # Not fork: the parent runs an event loop and threads.
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_leave_with,
                    initargs=(os.getpid(),),
                )
                self._pool.submit(_ready)
            return self._pool

    def close(self) -> None:
        """End the workers (after the checks they are doing)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def discard(self, pool: Executor) -> None:
        """Forget a broken pool; the next `get` starts another."""
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)


_shared: Workers | None = None
_shared_lock = threading.Lock()


def shared_workers(count: int | None = None) -> Workers | None:
    """This process's signature workers, `count` of them when the first router asks.

    None: one per core beside the event loop's, at most four, and none on a
    single core, where a worker would only take turns with the loop. 0: none.
    """
    global _shared  # noqa: PLW0603 - one pool per process, made on first use
    if count is None:
        count = min((os.cpu_count() or 1) - 1, 4)
    if count < 1:
        return None
    with _shared_lock:
        if _shared is None:
            _shared = Workers(count)
        return _shared


class Verifier:
    """Sends one registry's signature checks to the workers."""

    def __init__(self, registry: AgencyRegistry, workers: Workers) -> None:
        self.workers = workers
        self._document = registry.model_dump_json().encode()
        workers.get()  # start them now, not when the first large batch waits for them

    def submit(self, values: list[bytes | None]) -> asyncio.Future[list[Verdict]]:
        """The verdicts of these values, worked out from now on."""
        pool = self.workers.get()
        loop = asyncio.get_running_loop()
        try:
            submitted = loop.run_in_executor(pool, verdicts, self._document, values)
        except (BrokenProcessPool, RuntimeError) as exc:  # RuntimeError: shut down
            return _unchecked(loop, self.workers, pool, exc, len(values))
        return asyncio.ensure_future(self._answer(submitted, pool, len(values)))

    async def _answer(
        self, submitted: asyncio.Future[list[Verdict]], pool: Executor, count: int
    ) -> list[Verdict]:
        try:
            return await submitted
        except BrokenProcessPool as exc:
            return await _unchecked(asyncio.get_running_loop(), self.workers, pool, exc, count)


def _unchecked(
    loop: asyncio.AbstractEventLoop, workers: Workers, pool: Executor, exc: Exception, count: int
) -> asyncio.Future[list[Verdict]]:
    log.warning("signature workers unavailable; checking in the router", error=str(exc))
    workers.discard(pool)
    answered: asyncio.Future[list[Verdict]] = loop.create_future()
    answered.set_result([UNCHECKED] * count)
    return answered
