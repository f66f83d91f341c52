"""Direct mail with personalized QR codes (docs/channels.md#personalized-qr-codes).

A channel of type ``print`` delivers a campaign (usually on the decision channel ``post``) as
files for the printer or the mailing house, under ``outbox/print/<campaign>/``:

- ``<delivery_id>.png`` (or ``.svg``): the QR code of the message's signed short link
  (``/r/<token>``), which records the scan as a response to the decision, then redirects to
  the treatment's ``url`` (or to the workspace's public URL when the treatment has none);
- ``<occurrence>.csv``: the mailing file, one row per message: who, where (the postal address
  of the golden record), the rendered text of the treatment, the code's file name and its link.

Files are readable by their owner only; rows are appended whole, and a message already in the
mailing file (a run that stopped before recording it) is not written twice.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onetoone.channels.base import Message, Outcome
from onetoone.channels.qr import file_stem, qr_png, qr_svg, temporary, write_private
from onetoone.channels.tracking import Signer, short_scan_url, web_address
from onetoone.customize.templates import is_html, spreadsheet_cell

if TYPE_CHECKING:
    from onetoone.store import Store

#: the folder of the outbox holding the print files
FOLDER = "print"
#: the golden record's fields written to the mailing file (the street address is the
#: message's address, ``ADDRESS_OF["post"]``)
POSTAL = ("first_name", "last_name", "full_name", "postcode", "city", "region", "country",
          "language")
#: the mailing file's columns before and after the treatment's text fields
HEAD = ("delivery_id", "customer_id", "first_name", "last_name", "full_name", "address",
        "postcode", "city", "region", "country", "language")
TAIL = ("code", "link")
#: treatment fields not written as text: the page the code leads to (reached through the
#: link), the language (a column of its own)
_NOT_TEXT = frozenset({"url", "language"})

#: customer ids -> their postal fields (:data:`POSTAL`)
Golden = Callable[[list[str]], dict[str, dict[str, Any]]]


class PrintChannel:
    """Writes each message's QR code and its row of the mailing file under ``root``."""

    def __init__(self, name: str, root: Path, *, public_url: str, secret: bytes,
                 golden: Golden, fmt: str = "png", scale: int | None = None) -> None:
        self.name, self.root, self.public_url = name, root, public_url.rstrip("/")
        self.signer, self.golden, self.fmt, self.scale = Signer(secret), golden, fmt, scale
        #: mailing files read or written so far: their header and delivery ids
        self._files: dict[Path, tuple[list[str], set[str]]] = {}

    def send(self, messages: list[Message]) -> list[Outcome]:
        records = self.golden(sorted({m.customer_id for m in messages}))
        outcomes: list[Outcome] = []
        rows: dict[Path, list[dict[str, Any]]] = {}
        for m in messages:
            record = records.get(m.customer_id) or {}
            target = str(m.fields.get("url") or self.public_url)
            if not web_address(target):
                outcomes.append(Outcome(m.delivery_id, "failed",
                                        error="the treatment's url is not an http(s) address"))
                continue
            if not (m.to.strip() and record.get("city")):
                outcomes.append(Outcome(m.delivery_id, "failed",
                                        error="incomplete postal address: no city"))
                continue
            link = short_scan_url(self.signer, self.public_url, m.delivery_id)
            campaign, _, occurrence = m.campaign.partition(":")
            folder = self.root / FOLDER / file_stem(campaign)
            folder.mkdir(parents=True, exist_ok=True)
            code = f"{file_stem(m.delivery_id)}.{self.fmt}"
            write_private(folder / code, self._image(link))
            texts = {k: v for k, v in m.fields.items()
                     if k not in _NOT_TEXT and not is_html(k) and v is not None}
            rows.setdefault(folder / f"{file_stem(occurrence or 'once')}.csv", []).append({
                **{k: record.get(k) for k in POSTAL}, **texts,
                "delivery_id": m.delivery_id, "customer_id": m.customer_id, "address": m.to,
                "language": m.fields.get("language") or record.get("language"),
                "code": code, "link": link})
            outcomes.append(Outcome(m.delivery_id, "sent", provider_id=f"print:{code}"))
        for path, batch in rows.items():
            self._append(path, batch)
        return outcomes

    def close(self) -> None:
        pass

    def _image(self, link: str) -> bytes:
        if self.fmt == "svg":
            return qr_svg(link, scale=self.scale or 4).encode("utf-8")
        return qr_png(link, scale=self.scale or 8)

    def _append(self, path: Path, rows: list[dict[str, Any]]) -> None:
        """Append the rows not in the mailing file yet, whole lines in one write; a text field
        the header lacks rewrites the file with it first (replaced at once, never half)."""
        header, written = self._file(path)
        rows = [r for r in rows if r["delivery_id"] not in written]
        if not rows:
            return
        fields = [k for r in rows for k in r if k not in HEAD and k not in TAIL]
        texts = list(dict.fromkeys([*header[len(HEAD):len(header) - len(TAIL)], *fields]))
        wanted = [*HEAD, *texts, *TAIL]
        if header and wanted != header:
            with path.open(newline="", encoding="utf-8") as f:
                old = [dict(zip(header, line, strict=False)) for line in list(csv.reader(f))[1:]]
            write_private(path, _lines(wanted, old, header=True))
            header = wanted
        data = _lines(wanted, rows, header=not header)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        written.update(r["delivery_id"] for r in rows)
        self._files[path] = (wanted, written)

    def _file(self, path: Path) -> tuple[list[str], set[str]]:
        if path not in self._files:
            temporary(path).unlink(missing_ok=True)  # left by a rewrite that stopped
            header: list[str] = []
            ids: set[str] = set()
            try:
                with path.open(newline="", encoding="utf-8") as f:
                    lines = list(csv.reader(f))
            except FileNotFoundError:
                lines = []
            if lines:
                header, ids = lines[0], {line[0] for line in lines[1:] if line}
            self._files[path] = (header, ids)
        return self._files[path]


def golden_records(root: Path, store: Store | None = None) -> Golden:
    """What reads the postal fields of customers from the golden record (``customers``): on
    a cursor of ``store``, else on the workspace's database at ``root`` (already open in the
    process that runs the campaign: a connection of its own is one more to it)."""
    columns = ", ".join(POSTAL)

    def read(ids: list[str]) -> dict[str, dict[str, Any]]:
        from onetoone.store import DATABASE_FILE, Store

        with store.cursor() if store is not None else Store(root / DATABASE_FILE) as cur:
            found = cur.fetchall(f"SELECT customer_id, {columns} FROM customers "
                                 "WHERE customer_id IN (SELECT unnest(?::VARCHAR[]))", [ids])
        return {r[0]: dict(zip(POSTAL, r[1:], strict=True)) for r in found}

    return read


def _lines(columns: list[str], rows: Iterable[dict[str, Any]], *, header: bool) -> bytes:
    """CSV lines of ``rows``, every cell through :func:`spreadsheet_cell` (a cell escaped
    already stays as it is)."""
    out = io.StringIO()
    writer = csv.writer(out)
    lines = [{c: c for c in columns}] if header else []
    for row in [*lines, *rows]:
        writer.writerow([spreadsheet_cell("" if row.get(c) is None else str(row[c]))
                         for c in columns])
    return out.getvalue().encode("utf-8")

