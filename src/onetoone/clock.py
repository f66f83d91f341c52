"""The one clock: every time the project stores is naive UTC, read here."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, in UTC, without time zone (the store's ``TIMESTAMP`` columns are UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)
