"""Bounces that come back after the SMTP session (docs/channels.md#bounces): delivery status
notifications (RFC 3464, status codes of RFC 3463) read from the mailbox where the mail server
delivers the return path's mail, or posted one at a time, and applied to ``deliveries``.

- ``Action: failed`` with a 5.x.x status, a hard bounce: the delivery becomes ``bounced``,
  with the diagnostic as its error; its contact goes back to the caps and its address is not
  written to again, as when the server refuses a recipient during the session. A delivery the
  server reported ``delivered`` turns ``bounced`` too; one already ``bounced`` stays so.
- ``Action: failed`` with a 4.x.x status, or ``Action: delayed``, a soft bounce: the delivery
  keeps its state and its error notes the report.
- A report naming no delivery, or one unknown here: ``unmatched``, left alone.
- A customer's answer to one of the campaigns' e-mails: a ``reply`` (:func:`record_reply`).
- Any other message (an automatic answer, mail about something else): ``other``, left in
  place.

The delivery id comes from the returned original's headers (:func:`parse_dsn`) or, when the
report returns none, from the VERP address it was sent to (:func:`verp_delivery_id`).
Applying is idempotent: a report whose effect is there already changes nothing (``already``),
and in a Maildir a message applied is moved to ``cur`` with the seen flag ``S`` and is not
read again. Like a refusal during the session, a hard bounce is an interaction ``bounce`` of
the decision in the customer's timeline but no response: the customer never saw the offer, so
the adaptive propensities learn nothing from it (least of all a success). Addresses never
reach a log line, an error or a delivery's ``error``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mailbox
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onetoone.channels.smtp import parse_dsn, verp_delivery_id
from onetoone.clock import utcnow
from onetoone.errors import InvalidInputError, NotFoundError, OneToOneError

if TYPE_CHECKING:
    from onetoone.channels.settings import ChannelConfig
    from onetoone.interact.service import DecisionService
    from onetoone.progress import Progress

#: the workspace (``onetoone.workspace.Workspace``; not imported: the workspace imports the
#: channels)
Workspace = Any

log = logging.getLogger("onetoone.channels.bounces")

#: the largest message taken (a report returning a whole original stays well below)
MAX_MESSAGE_BYTES = 1024 * 1024
#: a status code of RFC 3463 (class.subject.detail) opening a diagnostic
_STATUS = re.compile(r"([245])\.\d{1,3}\.\d{1,3}\b")
_HINT = ("Point bounce_mailbox of [channels.NAME] (or --mailbox) to the Maildir folder or "
         "mbox file where your mail server delivers the return path's mail "
         "(docs/channels.md#bounces).")


@dataclass
class BounceTally:
    """What reading bounces did: reports applied as hard (``bounced``) or ``soft`` bounces,
    ``unmatched`` and ``already`` applied ones, and ``other`` messages (no report)."""

    messages: int = 0
    bounced: int = 0
    soft: int = 0
    unmatched: int = 0
    already: int = 0
    #: customers' answers to a message (``In-Reply-To`` one of its ids)
    replies: int = 0
    other: int = 0

    def add(self, other: BounceTally) -> None:
        for name in (f.name for f in fields(self)):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def summary(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# -- one message ----------------------------------------------------------------------------

def apply_message(service: DecisionService, raw: bytes, return_path: str | None = None,
                  now: datetime | None = None) -> BounceTally:
    """Apply one message of a bounce mailbox: each recipient it reports as failed or delayed
    (RFC 3464) counts once, as ``bounced``, ``soft``, ``unmatched`` or ``already``; a message
    reporting none is ``other``. ``return_path`` is the channel's, for VERP."""
    tally = BounceTally(messages=1)
    reports = parse_dsn(raw)
    if not reports:
        if record_reply(service, raw):
            tally.replies = 1
        else:
            tally.other = 1
        return tally
    verp = verp_delivery_id(raw, return_path)
    known: list[tuple[str, bool, str]] = []
    for delivery_id, status, diagnostic in reports:
        delivery_id = delivery_id or verp
        if not delivery_id:
            tally.unmatched += 1
            continue
        code = _STATUS.match(diagnostic)
        hard = status == "bounced" and code is not None and code.group(1) == "5"
        note = (f"bounced: {diagnostic}" if hard else
                f"soft bounce: {diagnostic}" if status == "bounced" else
                f"delayed: {diagnostic}")
        known.append((delivery_id[:200], hard, note[:300]))
    if not known:
        return tally
    outcomes = service.writer.write(_apply(known, now or utcnow()))
    for outcome, bounced in outcomes:
        setattr(tally, outcome, getattr(tally, outcome) + 1)
        if bounced is not None:
            customer_id, address, decided_at, channel, decision_id = bounced
            if address:
                _suppress(service, customer_id, address, decided_at, channel)
            record_bounce(service, customer_id, decision_id, channel or "email")
    return tally


def record_reply(service: DecisionService, raw: bytes) -> bool:
    """A customer's answer to one of the campaigns' e-mails (its ``In-Reply-To`` or
    ``References`` names the message's id, which holds the delivery id) recorded: an
    interaction ``reply`` of the decision with the answer's own words (quoted lines and what
    follows "On ... wrote:" left out, 2,000 characters at most) and an ``impression`` response
    (the message was read; nothing learned). Automatic answers (RFC 3834) are none. Whether
    it was one (a reply recorded before counts)."""
    import email
    import email.policy

    from onetoone.interact.events import Event

    mail = email.message_from_bytes(raw, policy=email.policy.default)
    automatic = str(mail.get("Auto-Submitted", "no")).strip().lower()
    if automatic != "no" or str(mail.get("Precedence", "")).lower() in _BULK:
        return False
    ids = [m.group(1) for header in ("In-Reply-To", "References")
           for m in _REPLY_ID.finditer(str(mail.get(header, "")))]
    if not ids:
        return False
    cur = service.cursor()
    found = cur.execute(
        "SELECT d.delivery_id, d.decision_id, d.customer_id, d.channel FROM deliveries d "
        "WHERE d.delivery_id IN (SELECT unnest(?::VARCHAR[])) LIMIT 1", [ids]).fetchone()
    if found is None:
        return False
    delivery, decision_id, customer_id, _ = found
    body = mail.get_body(("plain",))
    words = _own_words(body.get_content() if body is not None else "")
    key = str(mail.get("Message-ID", "")).strip().encode() or raw
    service.ingest_events([Event(
        event_id=f"reply-{delivery}-{hashlib.sha256(key).hexdigest()[:24]}",
        occurred_at=utcnow().replace(tzinfo=UTC), customer={"customer_id": customer_id},
        channel="email", type="reply",
        properties={"decision_id": decision_id, "direction": "inbound", "text": words})])
    with contextlib.suppress(OneToOneError):  # an action no longer in the catalog, say
        service.respond(decision_id, "impression")
    return True


#: a message id of a campaign's e-mail: ``<delivery_id@domain>``
_REPLY_ID = re.compile(r"<([A-Za-z0-9_-]{8,200})@[^<>\s]+>")
#: Precedence values of automatic mail
_BULK = ("bulk", "junk", "list", "auto_reply")
#: the line that opens the quoted original in most mail programs (English, French)
_QUOTE_HEAD = re.compile(r"^(On .{4,200} wrote:|Le .{4,200} a écrit ?:|-{2,} ?Original "
                         r"Message ?-{2,}|-{2,} ?Message d'origine ?-{2,})\s*$", re.I | re.M)


def _own_words(text: str) -> str:
    """The reply's own words: without the quoted original, control characters, 2,000
    characters at most."""
    from onetoone.customize.templates import plain_text

    head = _QUOTE_HEAD.search(text)
    kept = text[:head.start()] if head else text
    lines = [line for line in kept.splitlines() if not line.lstrip().startswith(">")]
    return plain_text("\n".join(lines).strip())[:2000]


def record_bounce(service: DecisionService, customer_id: str, decision_id: str,
                  channel: str) -> None:
    """The bounce in the customer's timeline: an interaction ``bounce`` of the decision (one
    a decision; no response, so nothing learned)."""
    from onetoone.interact.events import Event

    service.ingest_events([Event(
        event_id=f"bounce-{decision_id}", occurred_at=utcnow().replace(tzinfo=UTC),
        customer={"customer_id": customer_id}, channel=channel, type="bounce",
        properties={"decision_id": decision_id, "direction": "inbound"})])


def _apply(reports: list[tuple[str, bool, str]], now: datetime) -> Callable[[Any], Any]:
    """A work for the service's writer: each report applied to its delivery; its outcome, and
    for a new hard bounce what the in-memory profile needs (customer, address, decided at,
    decision channel)."""

    def work(txn: Any) -> list[tuple[str, tuple[Any, ...] | None]]:
        cur = txn.cur
        out: list[tuple[str, tuple[Any, ...] | None]] = []
        for delivery_id, hard, note in reports:
            row = cur.execute("""
                SELECT d.status, d.error, d.customer_id, o.address, o.created_at, o.channel,
                       d.decision_id
                FROM deliveries d LEFT JOIN outbound o
                  ON o.run_id = d.campaign AND o.decision_id = d.decision_id
                WHERE d.delivery_id = ? LIMIT 1""", [delivery_id]).fetchone()
            if row is None:
                out.append(("unmatched", None))
            elif row[0] == "bounced" or (not hard and row[1] == note):
                out.append(("already", None))
            elif hard:
                cur.execute("UPDATE deliveries SET status = 'bounced', error = ?, "
                            "updated_at = ? WHERE delivery_id = ?", [note, now, delivery_id])
                out.append(("bounced", tuple(row[2:])))
            else:
                cur.execute("UPDATE deliveries SET error = ?, updated_at = ? "
                            "WHERE delivery_id = ?", [note, now, delivery_id])
                out.append(("soft", None))
        return out

    return work


def _suppress(service: DecisionService, customer_id: str, address: str,
              decided_at: datetime | None, channel: str | None) -> None:
    """The profile held in memory told, as for a bounce during the session: the contact
    goes back to the caps and the address is not written to again. A profile not held yet is
    read from the tables, which say both, when first used."""
    if customer_id not in service._profiles:
        return
    profile = service.profile(customer_id)
    with profile.lock:
        if decided_at is not None and channel:
            service.policy.release_contact(profile, channel, decided_at)
        profile.bounced.add(str(address).lower())


# -- mailboxes ------------------------------------------------------------------------------

def mailbox_path(root: Path, config: ChannelConfig) -> Path | None:
    """The channel's ``bounce_mailbox``, relative to the workspace folder ``root``."""
    if not config.bounce_mailbox:
        return None
    path = Path(config.bounce_mailbox.strip()).expanduser()
    return path if path.is_absolute() else root / path


def read_mailbox(service: DecisionService, path: Path, return_path: str | None = None,
                 now: datetime | None = None) -> BounceTally:
    """Apply every message of a Maildir (a folder with ``cur``, ``new`` and ``tmp``) or an
    mbox file. In a Maildir, a message with a report applied is moved to ``cur`` with the
    flag ``S`` (seen), and seen messages are not read again; others stay as they are. An mbox
    is only read (the mail server appends to it): its reports apply once all the same."""
    _check(path)
    tally = BounceTally()
    try:
        if path.is_dir():
            for file, raw in _maildir(path):
                done = apply_message(service, raw, return_path, now)
                tally.add(done)
                if done.bounced or done.soft or done.already or done.replies:
                    _mark_seen(path, file)
        else:
            box = mailbox.mbox(path, create=False)
            try:
                for key in box.iterkeys():
                    tally.add(apply_message(service, box.get_bytes(key), return_path, now))
            finally:
                box.close()
    except PermissionError:
        raise _unreadable(path) from None
    return tally


def _check(path: Path) -> None:
    """A Maildir or a file that can be read, else one sentence with what to do."""
    try:
        if path.is_dir():
            missing = [d for d in ("cur", "new", "tmp") if not (path / d).is_dir()]
            if missing:
                raise InvalidInputError(f"The folder {path} is not a Maildir (it has no "
                                        f"{' or '.join(missing)} folder).", hint=_HINT)
            os.listdir(path / "new")
        elif path.is_file():
            with path.open("rb"):
                pass
        else:
            raise NotFoundError(f"The bounce mailbox {path} does not exist.", hint=_HINT)
    except PermissionError:
        raise _unreadable(path) from None


def _unreadable(path: Path) -> OneToOneError:
    return OneToOneError(f"The bounce mailbox {path} cannot be read: permission denied.",
                         hint="Give the user running onetoone read access to it (and write "
                         "access to a Maildir's cur and new folders, where applied messages "
                         "are marked seen).")


def _maildir(path: Path) -> Iterator[tuple[Path, bytes]]:
    """``(file, bytes)`` of the messages of a Maildir not marked seen: ``new``, then ``cur``
    without the flag ``S`` (file names ``unique[:2,flags]``, as :mod:`mailbox` writes them)."""
    colon = mailbox.Maildir.colon
    for folder in ("new", "cur"):
        for name in sorted(os.listdir(path / folder)):
            if name.startswith("."):
                continue
            info = name.partition(colon)[2]
            if folder == "cur" and info.startswith("2,") and "S" in info[2:]:
                continue
            file = path / folder / name
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                if file.stat().st_size > MAX_MESSAGE_BYTES:
                    log.warning("bounce mailbox: a message over %d bytes left alone",
                                MAX_MESSAGE_BYTES)
                    continue
                yield file, file.read_bytes()


def _mark_seen(path: Path, file: Path) -> None:
    """Move a Maildir message to ``cur`` with the flag ``S`` (its other flags kept)."""
    colon = mailbox.Maildir.colon
    unique, _, info = file.name.partition(colon)
    flags = set(info[2:]) if info.startswith("2,") else set()
    target = path / "cur" / f"{unique}{colon}2,{''.join(sorted(flags | {'S'}))}"
    try:
        os.rename(file, target)
    except FileNotFoundError:  # moved meanwhile by another reader
        pass
    except OSError as exc:
        log.warning("bounce mailbox: a message applied could not be marked seen (%s): it is "
                    "read again, and changes nothing, at the next run", type(exc).__name__)


# -- the step -------------------------------------------------------------------------------

def intake(ws: Workspace, channel: str | None = None, mailbox_file: Path | None = None, *,
           actor: str, tell: Progress | None = None) -> dict[str, Any]:
    """Read the ``bounce_mailbox`` of every channel of type smtp that has one (or of
    ``channel``), or the one-off ``mailbox_file`` of ``channel``, and apply its reports;
    the counts, in all and by mailbox. One audit entry (counts only)."""
    smtp = {n: c for n, c in ws.config.channels.items() if c.type == "smtp"}
    if channel is not None and channel not in smtp:
        raise NotFoundError(f"No channel '{channel}' of type smtp.",
                            hint=f"Channels of type smtp: {', '.join(smtp) or 'none'}.")
    boxes: list[tuple[str | None, Path]] = []
    if mailbox_file is not None:
        if channel is None and len(smtp) > 1:
            raise InvalidInputError("Several channels of type smtp: say whose bounces the "
                                    "mailbox holds.", hint=f"--channel {' or '.join(smtp)}.")
        boxes = [(channel or next(iter(smtp), None), mailbox_file)]
    else:
        for name, config in smtp.items():
            path = mailbox_path(ws.root, config)
            if path is not None and channel in (None, name):
                boxes.append((name, path))
        if not boxes:
            raise InvalidInputError(
                "No channel of type smtp has a bounce_mailbox" + (
                    f" ('{channel}' has none)." if channel else "."),
                hint="Set bounce_mailbox in its [channels.NAME] (docs/channels.md#bounces), "
                "or give --mailbox PATH.")
    for _, path in boxes:  # every one checked before any is applied
        _check(path)
    total, each = BounceTally(), []
    for index, (owner, path) in enumerate(boxes):
        if tell is not None:
            tell(f"bounces of {owner or 'the mailbox'}", index / len(boxes))
        return_path = smtp[owner].return_path if owner is not None else None
        tally = read_mailbox(ws.decisions, path, return_path)
        total.add(tally)
        each.append({"channel": owner, **tally.summary()})
    result = {**total.summary(), "mailboxes": each}
    ws.audit(actor, "campaign.bounces", None, channels=[e["channel"] for e in each],
             **total.summary())
    log.info("bounces: %d message(s): %d bounced, %d soft, %d unmatched, %d already, "
             "%d other", total.messages, total.bounced, total.soft, total.unmatched,
             total.already, total.other)
    return result


__all__ = ["MAX_MESSAGE_BYTES", "BounceTally", "apply_message", "intake", "mailbox_path",
           "read_mailbox"]
