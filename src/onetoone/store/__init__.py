"""Storage: the only package that imports the database engine.

Domain code receives a :data:`Connection` (or the :class:`Store` that holds it), runs DuckDB SQL
on it, and names the engine's errors through this package; :mod:`onetoone.store.dialect` turns
that SQL into another engine's dialect.
"""

from onetoone.store.duckdb import (
    DATABASE_FILE,
    ENGINE_VERSION,
    Connection,
    DatabaseError,
    OutOfMemory,
    Store,
    duckdb_settings,
    scratch,
)

__all__ = [
    "DATABASE_FILE",
    "ENGINE_VERSION",
    "Connection",
    "DatabaseError",
    "OutOfMemory",
    "Store",
    "duckdb_settings",
    "scratch",
]
