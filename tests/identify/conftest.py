"""Fixtures of the identify tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from _identify_data import Builder, make_base


@pytest.fixture
def base(tmp_path: Path) -> Builder:
    """A workspace from CSV bodies: ``base(crm=..., web=..., tx=..., identify=...)``."""
    return make_base(tmp_path)
