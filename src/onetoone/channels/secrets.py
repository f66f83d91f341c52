"""The workspace's channel secret: the key of the HMACs that sign message links and the
callback tokens of gateways (docs/channels.md).

It is the environment variable ``ONETOONE_CHANNELS_KEY`` when set, else the file
``.onetoone/channels.key`` of the workspace, made at first use readable by its owner only
(folder 0700, file 0600). Changing it invalidates every link and callback token given out.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

KEY_FILE = Path(".onetoone") / "channels.key"
KEY_ENV = "ONETOONE_CHANNELS_KEY"


def channel_secret(root: Path | str) -> bytes:
    """The channel secret of the workspace at ``root`` (created on first use)."""
    given = os.environ.get(KEY_ENV)
    if given:
        return given.encode("utf-8")
    path = Path(root) / KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        found = path.read_bytes().strip()
        if found:
            return found
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    # written whole under a temporary name, then linked into place: a process reading the
    # key never sees it half written, and of two processes creating it at once one wins
    temporary = path.parent / f".channels.key.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_hex(32).encode("ascii"))
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_bytes().strip()
