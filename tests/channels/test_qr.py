"""Personalized QR codes: PNG decoded back by a real reader (zbarimg), SVG checked as XML."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("segno", reason="QR codes need the channels extra (segno)")

from onetoone.channels.qr import qr_png, qr_svg, write_codes
from onetoone.errors import InvalidInputError, OneToOneError

#: a short link as the server signs them: a long, case-sensitive token
URL = ("https://shop.example.org/r/"
       "eyJjIjoiQzAwMDQyIiwiZCI6ImRlYy0yMDI2LTA0LTE3LTAwMDEiLCJhIjoid2VsY29tZSJ9"
       ".Xk3_q-9ZbT0aLmN2pQrS7uVwY1zA4bC6dE8fG0hJ")
SVG_NS = "{http://www.w3.org/2000/svg}"
ZBARIMG = shutil.which("zbarimg")


def _decode(path: Path) -> str:
    done = subprocess.run([ZBARIMG or "zbarimg", "--raw", "-q", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, f"zbarimg found no code in {path.name}: {done.stderr}"
    return done.stdout.removesuffix("\n")


def test_png_is_a_png() -> None:
    data = qr_png(URL)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(qr_png(URL, scale=2)) < len(data)


@pytest.mark.skipif(ZBARIMG is None, reason="zbarimg (Debian zbar-tools) is not installed: "
                                            "cannot decode the PNG")
@pytest.mark.parametrize("scale", [8, 3])
def test_png_decodes_back_to_exactly_the_url(tmp_path: Path, scale: int) -> None:
    path = tmp_path / "code.png"
    path.write_bytes(qr_png(URL, scale=scale))
    assert _decode(path) == URL


@pytest.mark.skipif(ZBARIMG is None, reason="zbarimg (Debian zbar-tools) is not installed: "
                                            "cannot decode the PNG")
def test_written_codes_decode_to_their_own_url(tmp_path: Path) -> None:
    items = [(f"C{n:05d}", f"{URL}{n}") for n in range(3)]
    paths = write_codes(tmp_path / "codes", items)
    assert [p.name for p in paths] == ["C00000.png", "C00001.png", "C00002.png"]
    assert [_decode(p) for p in paths] == [url for _, url in items]


def test_svg_is_well_formed_and_self_contained() -> None:
    svg = qr_svg(URL)
    root = ET.fromstring(svg.encode("utf-8"))
    assert root.tag == f"{SVG_NS}svg"
    box = root.get("viewBox")
    assert box is not None
    x, y, width, height = (int(v) for v in box.split())
    assert (x, y) == (0, 0) and width == height
    assert root.get("width") == str(width) and root.get("height") == str(height)
    modules = width // 4  # scale 4
    assert (modules - 8 - 17) % 4 == 0, "a QR code of 17 + 4v modules and a quiet zone of 4"
    assert qr_svg(URL, scale=8).count(f'viewBox="0 0 {modules * 8} {modules * 8}"') == 1
    # nothing fetched from elsewhere: no links, images, scripts, styles or entities
    for element in root.iter():
        assert element.tag.removeprefix(SVG_NS) not in ("image", "use", "script", "style",
                                                         "foreignObject", "a")
        for name, value in element.attrib.items():
            assert "href" not in name and "url(" not in value and "://" not in value
    assert "<!DOCTYPE" not in svg and "<!ENTITY" not in svg and "http://" not in svg.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")


def test_write_codes_sanitises_names_and_protects_files(tmp_path: Path) -> None:
    folder = tmp_path / "qr"
    paths = write_codes(folder, [("../../etc/passwd", URL), ("Zoé Dupont", URL),
                                 ("a/b", URL), ("a_b", URL), (".hidden", URL), ("", URL)],
                        fmt="svg")
    assert [p.name for p in paths] == ["_.._etc_passwd.svg", "Zo__Dupont.svg", "a_b.svg",
                                       "a_b-2.svg", "hidden.svg", "_.svg"]
    for path in paths:
        assert path.parent == folder
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        ET.fromstring(path.read_bytes())
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in paths)


def test_bad_inputs_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="format"):
        write_codes(tmp_path, [("a", URL)], fmt="gif")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="needs a URL"):
        qr_png("")
    with pytest.raises(InvalidInputError, match="too long"):
        qr_png("https://example.org/r/" + "x" * 5000)


def test_without_segno_the_error_says_what_to_install(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['segno'] = None\n"
            "from onetoone.channels.qr import qr_png\n"
            "from onetoone.errors import OneToOneError\n"
            "try:\n    qr_png('https://example.org/r/x')\n"
            "except OneToOneError as exc:\n    print(exc.user_message())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.strip() == "QR codes need segno. pip install 'onetoone[channels]'."
    assert issubclass(InvalidInputError, OneToOneError)
