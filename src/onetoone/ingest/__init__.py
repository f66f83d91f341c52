"""Ingestion: readers, mapping, validation, quarantine and idempotent loads."""

from onetoone.ingest._loader import FileResult, SourceLoader, SourceResult, resolve_paths

__all__ = ["FileResult", "SourceLoader", "SourceResult", "resolve_paths"]
