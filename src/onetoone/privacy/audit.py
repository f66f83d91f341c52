"""The audit log: who read or changed whose data, when (``audit_log``, docs/privacy.md).

Every read of one person's data (the 360 view, a lookup by identifier, an export), every
consent change, key change, merge, unmerge and erasure writes one entry; a bulk read (SQL, a
report, a campaign preview or run) writes one entry per run with its counts. ``details`` holds
counts and parameters, never personal data: values that look like an e-mail or a phone number
are refused, so that a careless caller cannot turn the audit log into a copy of the base.

Actors are ``key:NAME`` (the REST API), ``cli:USER`` (the command line, the operating-system
user), ``job:STEP`` (a scheduled job) and ``user:NAME`` (the dashboard).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
from typing import Any

from onetoone.clock import utcnow
from onetoone.store import Connection, Store

#: Text that must never reach the audit log's details: an e-mail or a phone number.
_PERSONAL = re.compile(r"\S@\S|(?:^|[^\dT])[+0]\d(?:[ .-]?\d){7,}")


def cli_actor() -> str:
    """The actor of a command run by hand: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a container without /etc/passwd entry
        return "cli:unknown"


def sql_details(query: str, table: Any, truncated: bool) -> dict[str, Any]:
    """What the audit log keeps of a SQL read: counts and a fingerprint of the statement
    (its text may hold an e-mail in a WHERE clause)."""
    return {"statement_sha256": hashlib.sha256(query.encode()).hexdigest()[:16],
            "rows": int(table.num_rows), "columns": int(table.num_columns),
            "truncated": bool(truncated)}


def _clean(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, where) for v in value]
    if isinstance(value, str) and not where.endswith("_sha256") and _PERSONAL.search(value):
        raise ValueError(f"audit details {where} look like personal data; log counts and ids.")
    return value


def audit_row(actor: str, action: str, customer_id: str | None = None,
              details: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ``audit_log`` row (the writer's :class:`~onetoone.interact.writer.Txn` inserts it
    with the rest of a request's writes)."""
    return {
        "at": utcnow(),
        "actor": actor[:200],
        "action": action,
        "customer_id": customer_id,
        "details": json.dumps(_clean(details or {}, "details"), default=str, sort_keys=True),
    }


def record(target: Store | Connection, actor: str, action: str,
           customer_id: str | None = None, details: dict[str, Any] | None = None) -> None:
    """Write one entry now (batch code and the command line; inside a transaction, it is
    kept only if the transaction is)."""
    row = audit_row(actor, action, customer_id, details)
    con = target.con if isinstance(target, Store) else target
    con.execute(
        'INSERT INTO audit_log ("at", actor, action, customer_id, details) '
        "VALUES (?, ?, ?, ?, ?)",
        [row["at"], row["actor"], row["action"], row["customer_id"], row["details"]],
    )
