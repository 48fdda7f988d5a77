"""A process the gateway benchmarks start, watch and stop: its log, its lines, its CPU.

Each side of both gateway benchmarks runs as its own process, as the gateway
does in production: the gateway (`python -m services.gateway`) and the ingress
floor's relay, the webhook receiver, and the two webhook senders
(`python -m bench._gateway_http ROLE`). So a side's CPU per event is its own
process's (from /proc), and the load generator and the receiver are never on
the measured event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import IO

from bench._proc import cpu_seconds

STOP_TIMEOUT_S = 15.0


def child_env(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without its KETENBUS_* settings, then `settings`.

    The caller's own settings (a database, a bootstrap, a rate) must not reach the
    processes under test; the benchmark says what each one runs with.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("KETENBUS_")}
    return {**env, "KETENBUS_LOG_FORMAT": "json", **settings}


class Child:
    """One process: `python -m module args`, stderr to `log_path`; stdout read by line
    (`talks`), or to the log as well, so that a pipe nobody reads never fills."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], log_path: Path, *, talks: bool
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.talks = talks
        self.process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    async def start(self) -> None:
        self._log = self.log_path.open("wb")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            *self.argv,
            env=self.env,
            stdin=asyncio.subprocess.PIPE if self.talks else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if self.talks else self._log,
            stderr=self._log,
        )

    def _failed(self, what: str) -> RuntimeError:
        code = self.process.returncode if self.process else None
        tail = self.log_path.read_text(errors="replace")[-2000:]
        return RuntimeError(f"the {self.name} {what} (exit code {code}):\n{tail}")

    def check_alive(self) -> None:
        if self.process is None or self.process.returncode is not None:
            raise self._failed("exited")

    async def line(self, timeout: float) -> str:
        """The next line the process prints; RuntimeError if it ends or says nothing in time."""
        assert self.process is not None
        assert self.process.stdout is not None
        try:
            raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except TimeoutError:
            raise self._failed(f"printed nothing in {timeout:.0f} s") from None
        if not raw:
            await self.process.wait()
            raise self._failed("exited")
        return raw.decode().strip()

    async def say(self, text: str) -> None:
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.write(f"{text}\n".encode())
        await self.process.stdin.drain()

    async def listening(self, port: int, timeout: float) -> None:
        """Wait until 127.0.0.1:`port` takes a connection (the gateway opens its port only
        once Kafka is reached)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                return
            await asyncio.sleep(0.05)
        raise self._failed(f"did not listen on 127.0.0.1:{port} in {timeout:.0f} s")

    def cpu_s(self) -> float:
        """CPU seconds (user + system, all threads) the process has used; NaN off Linux."""
        used = cpu_seconds(self.process.pid) if self.process else None
        return float("nan") if used is None else used

    async def ended(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Wait for a process that has done its work to end by itself, then `stop` it."""
        if self.process is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), timeout)
        await self.stop()

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not ended within STOP_TIMEOUT_S."""
        process = self.process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
