"""The gateway benchmarks' HTTP load: bodies POSTed with a bounded number in flight.

Two clients for the ingress load, both on kept-alive loopback connections:
- `raw` (the default): `RawConnection`, HTTP/1.1 written and read on an
  asyncio stream, nothing else. It costs this process ~40 us of CPU a request,
  so the floor's rate is the relay's, not the load generator's.
- `httpx`: an httpx AsyncClient per connection. httpx costs this process
  0.7-1.0 ms of CPU a request on this machine (one shared pool of 64
  connections: 2.9 ms, as the pool looks through every connection and waiting
  request each time); on two cores that caps the floor near 1,000-1,500
  requests/s, and the ratio would compare the gateway with the load generator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

import httpx

CLIENTS = ("raw", "httpx")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes


Post = Callable[[bytes], Awaitable[Answer]]
"""POST one body; its answer."""


class RawConnection:
    """One kept-alive HTTP/1.1 connection to 127.0.0.1:`port`, one request at a time.

    Only what the benchmarks' servers answer is read: a status line, headers and a
    Content-Length body (uvicorn sends one for every answer here); anything else is
    an error, never a guess.
    """

    def __init__(self, port: int, path: str, headers: dict[str, str]) -> None:
        self.port = port
        lines = [f"POST {path} HTTP/1.1", f"host: 127.0.0.1:{port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._head = "\r\n".join(lines).encode() + b"\r\ncontent-length: "
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> Answer:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._writer.write(b"%s%d\r\n\r\n%s" % (self._head, len(body), body))
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *fields = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (field.partition(":") for field in fields if field)
        }
        if "content-length" not in headers:
            await self.close()
            raise RuntimeError(f"an answer without Content-Length: {status_line}")
        content = await self._reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Answer(int(status_line.split(" ", 2)[1]), content)

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            await writer.wait_closed()


@contextlib.contextmanager
def httpx_quiet() -> Iterator[None]:
    """httpx's line per request ("HTTP Request: POST ...", INFO) left out for a while.

    At the bus's INFO level httpx logs every request it makes: in a load generator
    that is its own work, not the server's, and thousands of lines on the terminal.
    """
    logger = logging.getLogger("httpx")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def httpx_post(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> Post:
    async def post(body: bytes) -> Answer:
        response = await client.post(url, content=body, headers=headers)
        return Answer(response.status_code, response.content)

    return post


async def post_all(posts: Sequence[Post], bodies: Sequence[bytes]) -> list[Answer]:
    """POST every body, one worker per `posts` (so that many in flight); the answers.

    The workers take the bodies from one iterator, so every body goes once.
    """
    pending = iter(bodies)

    async def worker(post: Post) -> list[Answer]:
        return [await post(body) for body in pending]

    done = await asyncio.gather(*(worker(post) for post in posts))
    return [answer for answers in done for answer in answers]
