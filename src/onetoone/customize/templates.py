"""The template language of treatments: Jinja2 in a sandbox."""

from __future__ import annotations

from functools import cache

from jinja2 import ChainableUndefined
from jinja2.sandbox import SandboxedEnvironment


@cache
def template_environment() -> SandboxedEnvironment:
    """Sandboxed Jinja2: templates read the profile but cannot reach Python internals."""
    return SandboxedEnvironment(
        undefined=ChainableUndefined, autoescape=False, keep_trailing_newline=False
    )
