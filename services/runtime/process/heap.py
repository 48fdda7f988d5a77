"""The cyclic garbage collector kept off the objects a service holds for its whole life.

After start-up nearly every object a service holds lives as long as the
process: modules, the registry, pydantic's validators, SQLAlchemy's metadata.
A batch of events then makes and drops hundreds of thousands of short-lived
ones, which start the collector's runs, and its runs of the older generations
walk every long-lived object again. In the router that was a fifth of its CPU
per event. `gc.freeze` moves what exists at that moment out of the collector's
sight; reference counting still frees almost everything the moment it is
dropped, and the collector still finds cycles among newer objects.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


def freeze_long_lived() -> None:
    """Collect once, then keep every object that exists now out of the collector's runs."""
    gc.collect()
    gc.freeze()


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    """`freeze_long_lived` for a while (a benchmark in a process that goes on)."""
    freeze_long_lived()
    try:
        yield
    finally:
        gc.unfreeze()
