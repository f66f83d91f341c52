"""onetoone: one-to-one marketing on your own customer data.

The public entry is :class:`Workspace`; models live in the domain packages
(``onetoone.differentiate.btyd`` ...). Names are loaded on first use, so importing a model
loads neither the store nor the service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from onetoone.errors import OneToOneError

if TYPE_CHECKING:
    from onetoone.workspace import Workspace

__version__ = "0.1.0"
__all__ = ["OneToOneError", "Workspace", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Workspace":
        from onetoone.workspace import Workspace

        return Workspace
    raise AttributeError(f"module 'onetoone' has no attribute {name!r}")
