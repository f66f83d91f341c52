"""Shared fixtures: throwaway workspaces, the reference data folder and a real ``onetoone serve``.

The server helpers live in ``tests/_service_server.py``; import them explicitly
(``from _service_server import Server``): this folder is on ``sys.path`` because this
conftest sits in it (pytest's default ``prepend`` import mode, no ``__init__.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from onetoone import Workspace

if TYPE_CHECKING:
    from _service_server import Server

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


# A real ``onetoone serve`` per test module (and per test where a test kills it). The import
# is inside the fixtures so that a session without server tests does not need the api extra.


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from _service_server import Server, make_workspace

    root: Path = tmp_path_factory.mktemp("service")
    srv = Server(root, make_workspace(root)).start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    from _service_server import Server, make_workspace

    srv = Server(tmp_path, make_workspace(tmp_path))
    yield srv
    srv.stop()
