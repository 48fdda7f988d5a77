"""One span per consumed record, parented on the record's own trace, for a batch subscriber.

FastStream traces a batch as one span in a new trace that only links to the
records' traces; a case's trace would end at every batch consumer. Here each
record of the batch gets a span whose parent is the context in its headers,
with the case id as an attribute, and while the handler runs the spans are
kept per Kafka key (the case id) so `publish_all` produces a case's messages
inside its span: the trace context in their headers continues the case's trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from faststream import BaseMiddleware
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

CASE_ID = "ketenbus.case_id"
"""The span attribute naming the case a span worked on."""

_PROPAGATOR = TraceContextTextMapPropagator()
_by_key: ContextVar[dict[bytes, Context] | None] = ContextVar("ketenbus_case_spans", default=None)


def case_context(key: bytes | None) -> Context | None:
    """The context of the span of the record with `key` being handled now, if any."""
    contexts = _by_key.get()
    if contexts is None or key is None:
        return None
    return contexts.get(key)


def case_id_of(key: bytes | None) -> str | None:
    """The case id a Kafka key names, or None when the key is not a case id."""
    try:
        return str(UUID((key or b"").decode()))
    except (UnicodeDecodeError, ValueError):
        return None


def _headers(record: Any) -> dict[str, str]:
    carrier: dict[str, str] = {}
    for field, value in getattr(record, "headers", None) or ():
        if isinstance(value, bytes):
            carrier[field] = value.decode("utf-8", "replace")
    return carrier


class CaseSpans:
    """A FastStream broker middleware factory: `CaseSpans(tracer, service)`."""

    def __init__(self, tracer: Tracer, service: str) -> None:
        self.tracer = tracer
        self.service = service

    def __call__(self, msg: Any, /, *, context: Any) -> _CaseSpanScope:
        return _CaseSpanScope(msg, context=context, owner=self)


class _CaseSpanScope(BaseMiddleware[Any, Any]):
    def __init__(self, msg: Any, /, *, context: Any, owner: CaseSpans) -> None:
        super().__init__(msg, context=context)
        self.owner = owner

    async def consume_scope(self, call_next: Any, msg: Any) -> Any:
        raw = msg.raw_message
        records: Sequence[Any] = raw if isinstance(raw, tuple | list) else (raw,)
        batch = trace.get_current_span().get_span_context()
        links = [Link(batch)] if batch.is_valid else []
        spans: list[Span] = []
        contexts: dict[bytes, Context] = {}
        for record in records:
            attributes = {
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.kafka.destination.partition": record.partition,
                "messaging.kafka.message.offset": record.offset,
            }
            if (case_id := case_id_of(record.key)) is not None:
                attributes[CASE_ID] = case_id
            # No context in the headers (a sender without tracing): the record starts its
            # own trace, linked to the batch, rather than joining other cases' batch trace.
            span = self.owner.tracer.start_span(
                f"{self.owner.service} {record.topic}",
                context=_PROPAGATOR.extract(_headers(record)),
                kind=trace.SpanKind.CONSUMER,
                attributes=attributes,
                links=links,
            )
            spans.append(span)
            if record.key is not None:
                contexts[record.key] = trace.set_span_in_context(span)
        token = _by_key.set(contexts)
        try:
            return await call_next(msg)
        except Exception as exc:
            for span in spans:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            _by_key.reset(token)
            for span in spans:
                span.end()
