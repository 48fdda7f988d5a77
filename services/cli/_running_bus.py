"""What a running `ketenbus up` tells the other verbs: its broker and the registry it runs on.

`ketenbus up --demo` runs on a registry of its own (`demo-registry.yaml`, with
the demo's keys), so a verb that checked an event against `KETENBUS_REGISTRY`
would judge it by rules the running bus does not use. The bus writes
`bus.json` in the data directory once it has started and removes it when it
stops; a file left by a bus that was killed names a process that is gone, and
is ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

FILE = "bus.json"


@dataclass(frozen=True, slots=True)
class RunningBus:
    bootstrap: str
    registry: Path
    demo: bool
    pid: int


def announce(data_dir: Path, bus: RunningBus) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "bootstrap": bus.bootstrap,
        "registry": str(bus.registry.resolve()),
        "demo": bus.demo,
        "pid": bus.pid,
    }
    (data_dir / FILE).write_text(json.dumps(document), encoding="utf-8")


def withdraw(data_dir: Path) -> None:
    (data_dir / FILE).unlink(missing_ok=True)


def running_bus(data_dir: Path, bootstrap: str) -> RunningBus | None:
    """The bus `ketenbus up` runs on `bootstrap` from this data directory, if it still runs."""
    try:
        document = json.loads((data_dir / FILE).read_text(encoding="utf-8"))
        bus = RunningBus(
            str(document["bootstrap"]),
            Path(document["registry"]),
            bool(document["demo"]),
            int(document["pid"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if bus.bootstrap != bootstrap or not _alive(bus.pid):
        return None
    return bus


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
