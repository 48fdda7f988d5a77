"""Structured logs: JSON when not on a terminal, readable on one; never personal data."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Keys that would carry personal data if someone logged a context by mistake.
_PERSONAL_KEYS = frozenset({"bsn", "name", "address", "phone", "email", "personal", "amounts"})


def _drop_personal(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Any:
    for key in _PERSONAL_KEYS.intersection(event_dict):
        event_dict[key] = "[withheld]"
    return event_dict


class _CurrentStderr:
    """Whatever `sys.stderr` is when a line is written, not when logging was set up.

    A program that swaps stderr for a while (a test runner, an embedding CLI) and closes
    its stand-in afterwards must not leave every later log line writing to a closed file.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_STDERR: Any = _CurrentStderr()


def configure(level: str = "INFO", fmt: str = "auto") -> None:
    """Set up structlog and route the standard library's loggers through it."""
    json_out = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_personal,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_out
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_STDERR),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(_STDERR)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The Kafka client's own chatter (rebalances, retries) matters only when something fails.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # httpx logs each request with its URL at INFO: a webhook's URL may carry the
    # receiver's key in its query, and a line per POST costs more than it tells.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
