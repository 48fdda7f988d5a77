"""Each service's channels (`contracts.channels`) declared on FastStream brokers, for AsyncAPI only.

The brokers here are never started: FastStream builds the AsyncAPI document
from their subscribers and publishers without a connection. One per service,
each channel named `<service>-<receives|sends>-<topic>`, with the service's
consumer group on what it receives.
"""

from __future__ import annotations

from typing import Any

from faststream.kafka import KafkaBroker

from contracts.channels import Service
from services.runtime.kafka.acl import (
    ESCALATION_GROUP,
    GATEWAY_GROUP,
    ROUTER_GROUP,
    TRACKER_GROUP,
)

GROUPS = {
    "router": ROUTER_GROUP,
    "tracker": TRACKER_GROUP,
    "escalation": ESCALATION_GROUP,
    "gateway": GATEWAY_GROUP,
}


def channel_name(service: str, verb: str, topic: str) -> str:
    """A channel id as AsyncAPI 3 allows them: letters, digits, `_` and `-` only."""
    safe = "".join(c if c.isalnum() else "_" for c in topic.replace("{code}", "code"))
    return f"{service}-{verb}-{safe}"


def service_broker(service: Service, bootstrap: str) -> KafkaBroker:
    """A never-started broker declaring `service`'s subscribers and publishers."""
    broker = KafkaBroker(bootstrap)
    about = f"({service.name}: {service.description})"
    for channel in service.receives:

        async def handle(event: Any) -> None:  # pragma: no cover - never consumes
            del event

        # FastStream takes the payload schema from the handler's annotation.
        handle.__annotations__["event"] = channel.payload
        broker.subscriber(
            channel.topic,
            group_id=GROUPS.get(service.name),
            title=channel_name(service.name, "receives", channel.topic),
            description=f"{channel.description} {about}",
        )(handle)
    for channel in service.sends:
        broker.publisher(
            channel.topic,
            schema=channel.payload,
            title=channel_name(service.name, "sends", channel.topic),
            description=f"{channel.description} {about}",
        )
    return broker
