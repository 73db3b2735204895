"""The fleet's one error."""

from __future__ import annotations

from fastmango.errors import FastmangoError


class FleetUnavailable(FastmangoError):
    """The fleet's PostgreSQL could not be reached or refused the statement. The message
    names what failed and never holds the DSN's password."""
