"""The real server in a subprocess: ``python -m onetoone.cli serve`` on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from onetoone import Workspace

CONFIG = """
[workspace]
name = "service-test"
timezone = "Europe/Paris"

[actions.retention_offer]
issue = "retention"
kind = "offer"
channels = ["email", "web", "sms"]
eligibility = "value_tier in ['top', None]"
value = 30
prior_propensity = 0.3
[actions.retention_offer.treatments.email.fr]
subject = "{{ first_name or 'Bonjour' }}, -20 % pour vous"
body = "Votre code : FIDELE20"
[actions.retention_offer.treatments.email.en]
subject = "{{ first_name or 'Hello' }}, 20% off for you"
body = "Your code: FIDELE20"

[actions.newsletter]
issue = "growth"
channels = ["email", "web", "store"]
value = 5
prior_propensity = 0.1

[actions.delivery_apology]
issue = "service"
kind = "service"
purpose = "service"
channels = ["email"]
eligibility = "context_late_delivery == true"
value = 100
prior_propensity = 0.5

[contact_policy]
quiet_hours_start = ""
quiet_hours_end = ""

[control_groups]
universal_share = 0.0

[api]
max_body_bytes = 300000
max_events_per_request = 500
"""

SCOPE_SETS = {
    "admin": ["admin"],
    "events": ["events:write"],
    "consents": ["consents:write"],
    "reader": ["customers:read"],
    "decider": ["decisions"],
    "privacy": ["privacy"],
}


#: The optin source of :func:`crm_sources`: consents.csv, columns client;canal;ok;date.
OPTIN = {"customer_source_id": "client", "channel": "canal", "granted": "ok",
         "occurred_at": "date"}


def crm_sources(columns: dict[str, str], optin: dict[str, str] | None = None) -> str:
    """``[identify]`` without probabilistic matching and the ``[sources.crm]`` of a small
    ``crm.csv`` (``;``-separated, ``columns``: canonical field -> column), with a
    ``[sources.optin]`` of ``consents.csv`` when ``optin`` maps its columns."""
    def mapped(fields: dict[str, str]) -> str:
        return "".join(f'{k} = "{v}"\n' for k, v in fields.items())

    text = ('\n[identify]\nprobabilistic = false\n\n[sources.crm]\nentity = "customers"\n'
            'path = "crm.csv"\ndelimiter = ";"\n[sources.crm.columns]\n' + mapped(columns))
    if optin is not None:
        text += ('\n[sources.optin]\nentity = "consents"\npath = "consents.csv"\n'
                 'delimiter = ";"\ncustomer_source = "crm"\n[sources.optin.columns]\n'
                 + mapped(optin))
    return text


def make_workspace(root: Path, config: str = CONFIG) -> dict[str, str]:
    """A workspace with the test catalog and one key per scope set."""
    with Workspace.init(root, config_text=config) as ws:
        return {name: ws.keys.create(name, scopes) for name, scopes in SCOPE_SETS.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``onetoone serve`` as a child process; ``kill9`` and ``start`` again at will."""

    def __init__(self, workspace: Path, keys: dict[str, str]) -> None:
        self.workspace = workspace
        self.keys = keys
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workspace / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> Server:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "onetoone.cli", "serve", "--workspace",
                 str(self.workspace), "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("server not ready in time")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def client(self, key: str | None = "admin") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[key]}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)
