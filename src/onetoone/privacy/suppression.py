"""The erasure list: keyed hashes of erased people's identifiers and records (``erasures``),
so that loading the same records again sends them to quarantine (docs/privacy.md).

The key lives in ``.onetoone/privacy.key`` (owner-only, made at the first erasure), or in the
environment variable ``ONETOONE_PRIVACY_KEY``; without it the hashes of guessable values (an
e-mail) could be recomputed by whoever reads the database.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from onetoone.errors import WorkspaceError
from onetoone.store import Connection

KEY_FILE = Path(".onetoone") / "privacy.key"
KEY_ENV = "ONETOONE_PRIVACY_KEY"
REASONS = {
    ("erase", "request"): "erased at the person's request on {date}",
    ("anonymise", "request"): "anonymised at the person's request on {date}",
    ("erase", "retention"): "erased by the retention period on {date}",
    ("anonymise", "retention"): "anonymised by the retention period on {date}",
}


def privacy_key(root: Path, *, create: bool = False) -> bytes | None:
    """The workspace's secret for the erasure hashes (made at the first erasure)."""
    given = os.environ.get(KEY_ENV)
    if given:
        return given.encode("utf-8")
    path = root / KEY_FILE
    if path.is_file():
        return path.read_bytes().strip()
    if not create:
        return None
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_hex(32).encode("ascii"))
    return path.read_bytes().strip()


def erasure_hash(key: bytes, kind: str, value: str) -> str:
    """The keyed hash kept for an erased identifier (``email``) or record (``record``);
    ingestion computes the same in SQL (:func:`hash_sql`)."""
    return hashlib.sha256(key + f":{kind}:{value}".encode()).hexdigest()


def erased_list(con: Connection, root: Path) -> bytes | None:
    """When people were erased: make the temporary table ``_erased`` (h, reason) and return
    the key; None when nobody was. A missing key with erasures is an error, never a silent
    return of the erased."""
    count = con.execute("SELECT count(*) FROM erasures").fetchall()[0][0]
    if not count:
        return None
    key = privacy_key(root)
    if key is None:
        raise WorkspaceError(
            f"The erasure list cannot be checked: {KEY_FILE} is missing, so erased people "
            "would come back.",
            hint=f"Restore that file from your backup, or set {KEY_ENV}.")
    cases = " ".join(
        f"WHEN mode = '{mode}' AND reason = '{why}' THEN "
        f"replace('{text.replace(chr(39), chr(39) * 2)}', '{{date}}', "
        "strftime(erased_at, '%Y-%m-%d'))"
        for (mode, why), text in REASONS.items())
    con.execute(f"CREATE OR REPLACE TEMP TABLE _erased AS SELECT identifier_hash AS h, "
                f"CASE {cases} ELSE 'erased on ' || strftime(erased_at, '%Y-%m-%d') END "
                "AS reason FROM erasures")
    return key
