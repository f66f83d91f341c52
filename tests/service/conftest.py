"""A real ``onetoone serve`` per test module (and per test where a test kills it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _service_server import Server, make_workspace


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root: Path = tmp_path_factory.mktemp("service")
    srv = Server(root, make_workspace(root)).start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path, make_workspace(tmp_path))
    yield srv
    srv.stop()
