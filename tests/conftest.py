"""Shared fixtures: throwaway workspaces and the reference data folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from onetoone import Workspace

ROOT = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    """The reference data sets (``../shared/data`` from the project root)."""
    return Path(os.environ.get("ONETOONE_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture
def shared() -> Path:
    path = shared_data()
    if not path.is_dir():
        pytest.skip(f"reference data folder {path} is absent (set ONETOONE_SHARED_DATA)")
    return path


WorkspaceFactory = Callable[..., Workspace]


@pytest.fixture
def make_workspace(tmp_path: Path) -> Iterator[WorkspaceFactory]:
    """Create a workspace whose onetoone.toml declares the given sources text."""
    opened: list[Workspace] = []

    def factory(sources: str = "", files: dict[str, bytes | str] | None = None,
                settings: str = "") -> Workspace:
        for name, content in (files or {}).items():
            target = tmp_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str):
                target.write_text(content, encoding="utf-8")
            else:
                target.write_bytes(content)
        text = f'[workspace]\nname = "test"\n{settings}\n{sources}'
        ws = Workspace.init(tmp_path, config_text=text)
        opened.append(ws)
        return ws

    yield factory
    for ws in opened:
        ws.close()
