"""Errors raised by onetoone: one root, subclasses that know their HTTP status.

A user sees ``str(error)``: one sentence saying what is wrong, followed by ``hint`` saying what
to do. The CLI prints both without a traceback; the REST API answers with ``http_status``.
"""

from __future__ import annotations

import math


class OneToOneError(Exception):
    """Root of every error onetoone raises on purpose."""

    http_status: int = 400

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def user_message(self) -> str:
        """The sentence and the hint, as a person reads them."""
        text = str(self)
        return f"{text} {self.hint}" if self.hint else text


class ConfigError(OneToOneError):
    """The configuration file is invalid (unknown key, wrong type, unknown source)."""


class WorkspaceError(OneToOneError):
    """The workspace folder is missing, locked or made by an incompatible version."""

    http_status = 409


class ConflictError(OneToOneError):
    """A change the current state refuses: a name of the configuration file changed through
    the API, a retired campaign run, a name taken with other settings."""

    http_status = 409


class IngestError(OneToOneError):
    """A source file cannot be read at all (missing columns, wrong encoding, empty)."""

    http_status = 422


class NotFoundError(OneToOneError):
    """A customer, source or object asked for does not exist."""

    http_status = 404


class ModelError(OneToOneError):
    """A model cannot be fitted or used as asked (bad inputs, not fitted, no convergence)."""


class InvalidInputError(OneToOneError):
    """A request or argument that is well-formed but cannot be used (invalid identifier...)."""

    http_status = 422


class AuthenticationError(OneToOneError):
    """No API key, or a key that is not valid."""

    http_status = 401


class PermissionDeniedError(OneToOneError):
    """A valid API key that lacks the scope the call needs."""

    http_status = 403


class PayloadTooLargeError(OneToOneError):
    """A request body (or batch of events) larger than the service accepts."""

    http_status = 413


class RateLimitedError(OneToOneError):
    """An API key over its request rate or its bound of new customers; ``retry_after`` is
    the whole number of seconds (at least 1) to wait before trying again."""

    http_status = 429

    def __init__(self, message: str, *, retry_after: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = max(1, math.ceil(min(retry_after, 86_400.0)))
