"""Storage: the only package that imports the database engine.

Domain code receives a :data:`Connection` (or the :class:`Store` that holds it) and runs DuckDB
SQL on it; what is the engine's own rather than SQL goes through this package: its errors and
types, scratch databases, settings for a block (``engine_settings``), frames made queryable
(``frame_view`` for a block, or ``show_frame`` / ``drop_frame``), the catalog (``has_table``,
``table_columns``) and transactions (``transaction`` on a store or a connection;
``Store.atomic`` for a whole job). Another engine implements the same functions.
"""

from onetoone.store.duckdb import (
    DATABASE_FILE,
    ENGINE_VERSION,
    Connection,
    DatabaseError,
    OutOfMemory,
    Store,
    compact_database,
    copy_database,
    drop_frame,
    frame_view,
    has_table,
    read_query,
    scratch,
    show_frame,
    table_columns,
    transaction,
)
from onetoone.store.duckdb import (
    duckdb_settings as engine_settings,
)

__all__ = [
    "DATABASE_FILE",
    "ENGINE_VERSION",
    "Connection",
    "DatabaseError",
    "OutOfMemory",
    "Store",
    "compact_database",
    "copy_database",
    "drop_frame",
    "engine_settings",
    "frame_view",
    "has_table",
    "read_query",
    "scratch",
    "show_frame",
    "table_columns",
    "transaction",
]
