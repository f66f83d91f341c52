"""The running server of a workspace, as the CLI finds it: ``.onetoone/server.json``.

``onetoone serve`` owns the workspace's database while it runs; it writes its address, its
process id and a local admin token (valid while it runs, never stored in the database) to
``.onetoone/server.json``, readable by its owner only (folder 0700, file 0600), and removes it
when it stops. A command run meanwhile finds the file and goes through the server's REST API
(:class:`LocalServer`); a file left by a server that died is detected and removed.

Standard library only (``urllib``): the CLI reaches a server without the ``service`` extra.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onetoone.errors import OneToOneError, WorkspaceError

FOLDER = ".onetoone"
FILE = "server.json"
#: The most rows one ``POST /v1/sql`` returns.
MAX_SQL_ROWS = 100_000


def server_file(root: Path) -> Path:
    return root / FOLDER / FILE


def write_server_file(root: Path, url: str, token: str) -> Path:
    """Write the address file atomically, readable and writable by its owner only."""
    folder = root / FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    target = folder / FILE
    temporary = folder / f".{FILE}.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"url": url, "pid": os.getpid(), "token": token,
                   "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, fh)
    os.replace(temporary, target)
    return target


def remove_server_file(root: Path) -> None:
    """Remove the address file if it is this process's."""
    target = server_file(root)
    try:
        if json.loads(target.read_text(encoding="utf-8")).get("pid") == os.getpid():
            target.unlink()
    except (OSError, ValueError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


@dataclass(frozen=True)
class LocalServer:
    """The server that owns a workspace, reached with its local admin token."""

    url: str
    pid: int
    token: str

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             timeout: float = 600.0) -> Any:
        """One REST call; the server's error becomes the same one-sentence error."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("message") or f"HTTP {exc.code}"
            except (ValueError, AttributeError):
                message = f"HTTP {exc.code}"
            raise OneToOneError(message) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise WorkspaceError(
                f"The onetoone server of this workspace (pid {self.pid}, {self.url}) did not "
                f"answer: {getattr(exc, 'reason', exc)}.",
                hint="Check that it still runs, or stop it and run the command again.") from None

    def answers(self, wait: float = 5.0) -> bool:
        deadline = time.monotonic() + wait
        while True:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1.0) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, TimeoutError, ConnectionError):
                if time.monotonic() >= deadline or not _alive(self.pid):
                    return False
                time.sleep(0.2)


def find_server(root: Path) -> tuple[LocalServer | None, str | None]:
    """The server that owns the workspace at ``root`` (None when none runs), and a sentence
    to tell the user when a stale address file was removed."""
    target = server_file(root)
    try:
        info = json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except PermissionError:
        owner = _owner(target)
        raise WorkspaceError(
            f"This workspace is served by a onetoone server of another user ({owner}); its "
            "address file is readable by that user only.",
            hint="Run the command as that user, or call the server's REST API with a key.",
        ) from None
    except ValueError:
        info = {}
    server = None
    if isinstance(info, dict) and {"url", "pid", "token"} <= set(info):
        server = LocalServer(str(info["url"]), int(info["pid"]), str(info["token"]))
        if _alive(server.pid) and server.answers():
            return server, None
    target.unlink(missing_ok=True)
    pid = f" (pid {server.pid})" if server else ""
    return None, f"Removed the address file of a onetoone server{pid} that no longer runs."


def _owner(path: Path) -> str:
    try:
        import pwd

        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (ImportError, KeyError, OSError):
        return "unknown"
