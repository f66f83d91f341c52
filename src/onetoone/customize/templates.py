"""The template language of treatments: Jinja2 in a sandbox, and output that cannot inject.

A treatment field named ``html`` or ending in ``_html`` is HTML: every value a template puts in
it is escaped (a last name ``<script>``, a request's context), unless the template marks it
safe itself. Every other field is plain text (a subject, an SMS, a banner's words): nothing is
escaped, and control characters are dropped (they could hide text or break an SMS). A cell of a
CSV file that a spreadsheet would read as a formula is written with a leading ``'`` (OWASP's
rule on CSV injection).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from jinja2 import ChainableUndefined
from jinja2.sandbox import SandboxedEnvironment

#: control characters but tab and newline, and the bidirectional overrides that reorder text
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
#: what a spreadsheet reads as the start of a formula
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def is_html(field: str) -> bool:
    """Whether a treatment field holds HTML (``html``, ``body_html``...)."""
    return field == "html" or field.endswith("_html")


@cache
def template_environment(html: bool = False) -> SandboxedEnvironment:
    """Sandboxed Jinja2: templates read the profile but cannot reach Python internals; with
    ``html``, every value is escaped."""
    return SandboxedEnvironment(
        undefined=ChainableUndefined, autoescape=html, keep_trailing_newline=False
    )


def plain_text(text: str) -> str:
    """``text`` without control characters (tab and newline kept)."""
    return _CONTROL.sub("", text)


def spreadsheet_cell(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs: text starting as a formula gets a leading ``'``;
    None is empty."""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return "" if value is None else value
