"""Storage backends. Only this package knows SQL dialects and connection details."""

from onetoone.store.duckdb import Store

__all__ = ["Store"]
