"""Whole-bus health: the broker and every service, checked together."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from starlette.requests import Request
from starlette.responses import JSONResponse

from services.runtime.config.settings import Settings
from services.runtime.kafka.clients import client_security


class BusHealth:
    """Asks the broker and each service's /healthz; answers 200 only when all are up."""

    def __init__(
        self, bootstrap: str, targets: dict[str, str], *, settings: Settings | None = None
    ) -> None:
        """`settings`: the Kafka security options (None: PLAINTEXT, the embedded broker).

        Read here, not per check: SASL without credentials is a UserError at start-up,
        not a broker that looks down.
        """
        self.bootstrap = bootstrap
        self.targets = targets
        self._security = client_security(settings) if settings is not None else {}
        self._admin: AIOKafkaAdminClient | None = None
        self._http = httpx.AsyncClient(timeout=2.0)

    async def close(self) -> None:
        await self._http.aclose()
        if self._admin is not None:
            await self._admin.close()

    async def broker_state(self) -> dict[str, Any]:
        started = time.monotonic()
        try:
            if self._admin is None:
                admin = AIOKafkaAdminClient(
                    bootstrap_servers=self.bootstrap, request_timeout_ms=2000, **self._security
                )
                await asyncio.wait_for(admin.start(), 3.0)
                self._admin = admin
            await asyncio.wait_for(self._admin.describe_cluster(), 3.0)
        except Exception as exc:  # noqa: BLE001 - any failure means down; the reason is shown
            if self._admin is not None:
                await self._admin.close()
                self._admin = None
            return {"state": "down", "bootstrap": self.bootstrap, "error": type(exc).__name__}
        elapsed = round((time.monotonic() - started) * 1000, 1)
        return {"state": "up", "bootstrap": self.bootstrap, "latency_ms": elapsed}

    async def service_state(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url)
            body: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return {"state": "down", "error": type(exc).__name__}
        if response.status_code != 200:
            body.setdefault("state", "down")
            if body["state"] == "running":
                body["state"] = "degraded"
        return body

    async def check(self) -> tuple[bool, dict[str, Any]]:
        names = list(self.targets)
        broker, *services = await asyncio.gather(
            self.broker_state(), *(self.service_state(self.targets[n]) for n in names)
        )
        states = dict(zip(names, services, strict=True))
        healthy = broker["state"] == "up" and all(s.get("state") == "running" for s in services)
        return healthy, {
            "status": "up" if healthy else "down",
            "broker": broker,
            "services": states,
        }

    async def endpoint(self, _: Request) -> JSONResponse:
        healthy, body = await self.check()
        return JSONResponse(body, status_code=200 if healthy else 503)
