"""onetoone: one-to-one marketing on your own customer data.

The public entry is :class:`Workspace`; models live in the domain packages
(``onetoone.differentiate.btyd`` ...).
"""

from onetoone.errors import OneToOneError
from onetoone.workspace import Workspace

__version__ = "0.1.0"
__all__ = ["OneToOneError", "Workspace", "__version__"]
