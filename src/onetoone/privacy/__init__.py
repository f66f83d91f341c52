"""Privacy: the audit log, data-subject rights (access, erasure, anonymisation, retention)
and the registry of every table and file that holds a person's data (docs/privacy.md)."""

from onetoone.privacy.audit import audit_row, cli_actor, record

__all__ = ["audit_row", "cli_actor", "record"]
