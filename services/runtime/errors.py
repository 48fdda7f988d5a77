"""Errors a user can act on: the CLI prints them as one line, without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Something the user asked for cannot be done; the message says why."""
