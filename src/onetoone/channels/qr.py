"""Personalized QR codes (docs/channels.md): one code per customer encoding the URL the caller
gives (a signed short link such as ``https://example.org/r/{token}``), as PNG or SVG, with
error correction M and the standard quiet zone of four modules. Needs ``segno``
(``pip install 'onetoone[channels]'``)."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from onetoone.errors import InvalidInputError, OneToOneError

#: modules of white around the code (the standard's quiet zone)
QUIET_ZONE = 4
FORMATS = ("png", "svg")


def _segno() -> Any:
    try:
        import segno
    except ImportError:
        raise OneToOneError("QR codes need segno.",
                            hint="pip install 'onetoone[channels]'.") from None
    return segno


def _code(url: str) -> Any:
    if not url:
        raise InvalidInputError("A QR code needs a URL to encode.")
    segno = _segno()
    try:
        return segno.make(url, error="m", boost_error=False, micro=False)
    except segno.DataOverflowError:
        raise InvalidInputError(f"The URL is too long for a QR code ({len(url)} characters)."
                                ) from None


def qr_png(url: str, *, scale: int = 8) -> bytes:
    """The PNG image of a QR code encoding ``url`` (``scale`` pixels a module)."""
    out = io.BytesIO()
    _code(url).save(out, kind="png", scale=scale, border=QUIET_ZONE)
    return out.getvalue()


def qr_svg(url: str, *, scale: int = 4) -> str:
    """The SVG document of a QR code encoding ``url`` (``scale`` units a module), sized in
    pixels and with a ``viewBox`` so that it scales."""
    out = io.BytesIO()
    _code(url).save(out, kind="svg", scale=scale, border=QUIET_ZONE, omitsize=True)
    svg = out.getvalue().decode("utf-8")
    box = re.search(r'viewBox="0 0 (\d+) (\d+)"', svg)
    if box:  # width and height beside the viewBox: the image has a size of its own
        width, height = box.groups()
        svg = svg.replace(box.group(0), f'width="{width}" height="{height}" {box.group(0)}', 1)
    return svg


def write_codes(folder: Path, items: Iterable[tuple[str, str]],
                fmt: Literal["png", "svg"] = "png") -> list[Path]:
    """Write one code per ``(name, url)`` to ``folder/<name>.<fmt>`` (the name reduced to
    letters, digits, ``-``, ``_`` and ``.``; a name taken twice gets ``-2``, ``-3``...), each
    file readable by its owner only. The paths, in the order of ``items``."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"Unknown QR code format '{fmt}': use png or svg.")
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    taken: set[str] = set()
    for name, url in items:
        data = qr_png(url) if fmt == "png" else qr_svg(url).encode("utf-8")
        stem = file_stem(name)
        unique, n = stem, 1
        while unique.lower() in taken:
            n += 1
            unique = f"{stem}-{n}"
        taken.add(unique.lower())
        path = folder / f"{unique}.{fmt}"
        write_private(path, data)
        written.append(path)
    return written


def file_stem(name: str) -> str:
    """A file name stem made of ``name``: no separators, no leading dot, 100 characters."""
    kept = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
    return kept.lstrip(".")[:100] or "_"


def write_private(path: Path, data: bytes) -> None:
    """``path`` written whole under a temporary name (:func:`temporary`), then put in place,
    readable by its owner only."""
    tmp = temporary(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(data)
    os.replace(tmp, path)


def temporary(path: Path) -> Path:
    """Where :func:`write_private` writes ``path`` before putting it in place."""
    return path.with_name(f".{path.name}.tmp")
