"""Structured logs: where they go and what they never carry."""

from __future__ import annotations

import io
import json
import sys

import pytest

from services.runtime.observability.logging import configure, get_logger


def test_a_stderr_swapped_in_and_closed_while_logging_was_set_up_does_not_break_later_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A CLI run inside a test runner configures logging on a stand-in stderr it closes after."""
    stand_in = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stand_in)
    configure("INFO", "json")
    get_logger("ketenbus.test").info("during")
    stand_in.close()
    later = io.StringIO()
    monkeypatch.setattr(sys, "stderr", later)

    get_logger("ketenbus.test").info("after", case_id="c-1")

    line = json.loads(later.getvalue())
    assert ("after", "c-1") == (line["event"], line["case_id"])


def test_personal_keys_are_withheld_from_a_log_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A context logged by mistake with a BSN keeps its key but loses its value."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    configure("INFO", "json")

    get_logger("ketenbus.test").info("handoff", case_id="c-2", bsn="999999990")

    line = json.loads(out.getvalue())
    assert ("[withheld]", "c-2") == (line["bsn"], line["case_id"])
