"""The outbox: where messages go when no real channel is configured (docs/channels.md), so
that a campaign runs end to end offline. E-mails are ``outbox/email/<campaign>/<id>.eml``
files (open them in any mail client); other channels ``outbox/<channel>.jsonl``."""

from __future__ import annotations

import json
import os
from email.utils import formatdate
from pathlib import Path

from onetoone.channels.base import Message, Outcome
from onetoone.channels.mail import email_bytes


class Outbox:
    """A channel that writes each message under ``root`` (files readable by their owner)."""

    def __init__(self, name: str, root: Path, *, email: bool, sender: str | None = None) -> None:
        self.name, self.root, self.email, self.sender = name, root, email, sender
        self._folders: set[Path] = set()

    def send(self, messages: list[Message]) -> list[Outcome]:
        if self.email:
            date = formatdate(localtime=False)
            for m in messages:
                folder = self.root / "email" / _safe(m.campaign)
                if folder not in self._folders:
                    folder.mkdir(parents=True, exist_ok=True)
                    self._folders.add(folder)
                _write(folder / f"{_safe(m.delivery_id)}.eml",
                       email_bytes(m, self.sender, date=date))
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            lines = "".join(json.dumps({
                "delivery_id": m.delivery_id, "decision_id": m.decision_id,
                "customer_id": m.customer_id, "campaign": m.campaign, "action_id": m.action_id,
                "to": m.to, "text": m.text, "links": m.links}, ensure_ascii=False) + "\n"
                for m in messages)
            fd = os.open(self.root / f"{_safe(self.name)}.jsonl",
                         os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as out:
                out.write(lines)
        return [Outcome(m.delivery_id, "sent", provider_id=f"outbox:{m.delivery_id}")
                for m in messages]

    def close(self) -> None:
        pass


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
