"""Who used the machine's CPU over a window: every process's CPU time, and the machine's busy time.

Read from Linux's /proc (`/proc/<pid>/stat`, `/proc/<pid>/cmdline`, `/proc/stat`):
a sample at the start of a window and one at its end, and the difference between
them. Off Linux every figure is empty (no processes, no busy time).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class Process:
    """One process as /proc showed it: its parent, its name and its CPU seconds so far."""

    pid: int
    ppid: int
    comm: str
    cpu_s: float
    reaped_s: float
    """CPU seconds of its children that ended and it waited for (cutime + cstime)."""
    started: int
    """Clock ticks after boot when it started: with the pid, which process it is."""
    title: str
    """Its command line as it shows it (PostgreSQL backends put their database there); empty
    for a kernel thread."""


@dataclass(frozen=True, slots=True)
class Sample:
    """Every readable process, and the machine's busy and total CPU seconds (all cores)."""

    processes: dict[int, Process]
    busy_s: float
    total_s: float


def sample() -> Sample:
    """The machine now."""
    found: dict[int, Process] = {}
    for entry in _PROC.glob("[0-9]*"):
        process = _process(entry)
        if process is not None:
            found[process.pid] = process
    busy, total = _machine()
    return Sample(found, busy, total)


def _process(entry: Path) -> Process | None:
    try:
        stat = (entry / "stat").read_text()
    except OSError:
        return None  # gone meanwhile
    # The name is in parentheses and may hold spaces; the fields after it are plain.
    head, _, rest = stat.rpartition(")")
    comm = head.split("(", 1)[1] if "(" in head else ""
    fields = rest.split()
    try:
        title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        title = ""
    return Process(
        pid=int(entry.name),
        ppid=int(fields[1]),
        comm=comm,
        cpu_s=(int(fields[11]) + int(fields[12])) / _TICK,
        reaped_s=(int(fields[13]) + int(fields[14])) / _TICK,
        started=int(fields[19]),
        title=title,
    )


def _machine() -> tuple[float, float]:
    """Busy and total CPU seconds of all cores since boot (`/proc/stat`'s `cpu` line)."""
    try:
        line = (_PROC / "stat").read_text().splitlines()[0]
    except (OSError, IndexError):
        return 0.0, 0.0
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in line.split()[1:9])
    busy = user + nice + system + irq + softirq + steal
    return busy / _TICK, (busy + idle + iowait) / _TICK


def descendants(processes: dict[int, Process], roots: set[int]) -> set[int]:
    """`roots` and every process below them."""
    children: dict[int, list[int]] = {}
    for process in processes.values():
        children.setdefault(process.ppid, []).append(process.pid)
    found, todo = set(roots), list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def used(start: Sample, end: Sample, pids: set[int], *, reaped: bool = False) -> float:
    """CPU seconds `pids` used between the samples (all of it for one started meanwhile);
    `reaped`: and their children that ended meanwhile."""
    total = 0.0
    for pid in pids:
        after = end.processes.get(pid)
        if after is None:
            continue
        before = start.processes.get(pid)
        if before is None or before.started != after.started:
            before = None
        total += after.cpu_s - (before.cpu_s if before is not None else 0.0)
        if reaped:
            total += after.reaped_s - (before.reaped_s if before is not None else 0.0)
    return total


def busiest(
    start: Sample, end: Sample, exclude: set[int], count: int = 3
) -> list[tuple[str, float]]:
    """The `count` command lines (their start) that used the most CPU between the samples,
    with their children that ended meanwhile, leaving out `exclude`; processes of the same
    command line added up. (A process that itself ended meanwhile is not seen, nor its
    children.)"""
    by_title: dict[str, float] = {}
    for pid, process in end.processes.items():
        if pid in exclude:
            continue
        title = (process.title or f"[{process.comm}]").strip()[:70]
        by_title[title] = by_title.get(title, 0.0) + used(start, end, {pid}, reaped=True)
    ranked = sorted(by_title.items(), key=lambda item: -item[1])
    return [(title, round(seconds, 2)) for title, seconds in ranked[:count] if seconds > 0]
