"""Direct mail with personalized QR codes: a campaign on ``post`` delivered by a ``print``
channel writes one code per message and the mailing file; every code is read back by a real
reader (zbarimg) and leads, through the real application, to a scan recorded for its decision
and a redirect to the personalized page. Forged links, customers without an address, formulas
in names, SVG, a workspace without a public URL, a second run and an erasure are covered."""

from __future__ import annotations

import csv
import re
import shutil
import stat
import struct
import subprocess
import time
import warnings
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import pytest
from typer.testing import CliRunner

from _service_server import CONFIG, OPTIN, crm_sources, make_workspace
from onetoone import Workspace
from onetoone.cli import app
from onetoone.errors import InvalidInputError

pytest.importorskip("segno", reason="QR codes need the channels extra (segno)")

ZBARIMG = shutil.which("zbarimg")
needs_zbarimg = pytest.mark.skipif(
    ZBARIMG is None, reason="zbarimg (Debian zbar-tools) is not installed: cannot read the "
    "codes back ('.ci/run' installs it)")
PUBLIC = "https://crm.example.org"
FORMULA = '=HYPERLINK("https://evil.example/x")'

PEOPLE = [  # id, first name, last name, address, postcode, city
    ("1", "Alice", "Quillebeuf", "12 rue des Tilleuls", "75011", "Paris"),
    ("2", FORMULA, "Martin", "3 place du Marché", "69002", "Lyon"),
    ("3", "Chloé", "Vasseur", "8 impasse des Lilas", "33000", "Bordeaux"),
    ("4", "Denis", "Sansadresse", "", "", ""),
    ("5", "Émile", "Ravanel", "41 avenue Foch", "13008", "Marseille"),
]

PRINT = """
[actions.catalogue_offer]
issue = "growth"
kind = "offer"
channels = ["post"]
value = 20
prior_propensity = 0.2
[actions.catalogue_offer.treatments.post.fr]
headline = "{{ first_name }}, votre offre de printemps"
body = "Scannez le code : -20 % sur la collection."
url = "https://shop.example.org/printemps?client={{ customer_id }}"

[actions.visit_us]
issue = "growth"
channels = ["post"]
value = 5
prior_propensity = 0.1
[actions.visit_us.treatments.post.fr]
headline = "Venez nous voir, {{ first_name }}"

[channels.mailing]
type = "print"
carries = "post"

[channels.mailing_svg]
type = "print"
carries = "post"
qr_format = "svg"
qr_scale = 3

[campaigns.spring]
channel = "post"
actions = ["catalogue_offer"]
control_share = 0.0
deliver_with = "mailing"

[campaigns.visit]
channel = "post"
actions = ["visit_us"]
control_share = 0.0
deliver_with = "mailing_svg"
"""


def _build(root: Path, public_url: str | None = PUBLIC) -> Path:
    """A workspace of :data:`PEOPLE` (all consenting to mail) with the print campaigns, and
    its admin key in ``admin.key``."""
    exports = root / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    rows = ["id;prenom;nom;mail;adresse;cp;ville;pays;langue"]
    rows += [f"{i};{first};{last};client{i}@exemple.fr;{address};{postcode};{city};FR;fr"
             for i, first, last, address, postcode, city in PEOPLE]
    (exports / "crm.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    consents = ["client;canal;ok;date"] + [f"{p[0]};post;oui;2026-01-10" for p in PEOPLE]
    (exports / "consents.csv").write_text("\n".join(consents) + "\n", encoding="utf-8")
    sources = crm_sources({"source_id": "id", "first_name": "prenom", "last_name": "nom",
                           "email": "mail", "address": "adresse", "postcode": "cp",
                           "city": "ville", "country": "pays", "language": "langue"}, OPTIN)
    sources = sources.replace('"crm.csv"', '"exports/crm.csv"').replace(
        '"consents.csv"', '"exports/consents.csv"')
    config = CONFIG if public_url is None else CONFIG.replace(
        "[api]\n", f'[api]\npublic_url = "{public_url}"\n')
    keys = make_workspace(root, config + PRINT + sources)
    (root / "admin.key").write_text(keys["admin"], encoding="utf-8")
    with Workspace(root) as ws:
        ws.ingest()
        ws.identify()
    return root


def _scalar(root: Path, sql: str) -> object:
    with duckdb.connect(str(root / "onetoone.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchone()[0]


def _mailing(root: Path, campaign: str = "spring") -> list[dict[str, str]]:
    with (root / "outbox" / "print" / campaign / "once.csv").open(
            newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _decode(path: Path) -> str:
    done = subprocess.run([ZBARIMG or "zbarimg", "--raw", "-q", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"zbarimg found no code in {path.name}: {done.stderr}"
    return done.stdout.removesuffix("\n")


def _svg_to_png(svg: Path, png: Path) -> None:
    """Draw segno's SVG (one path of horizontal lines, ``scale(n)``) into a PNG, a pixel a
    module on four: what a printer does with the vector, for the reader to read."""
    root = ET.fromstring(svg.read_bytes())
    size = int(root.get("viewBox", "0 0 0 0").split()[2])
    path = next(e for e in root.iter() if e.tag.endswith("path"))
    scale = int(re.fullmatch(r"scale\((\d+)\)", path.get("transform", "")).group(1))
    modules = size // scale
    dark = [[False] * modules for _ in range(modules)]
    x = y = 0.0
    for command, a, b in re.findall(r"([MmHh])\s*(-?[\d.]+)(?:[ ,](-?[\d.]+))?",
                                    path.get("d", "")):
        if command in "Mm":
            x, y = (float(a), float(b)) if command == "M" else (x + float(a), y + float(b))
        else:
            end = float(a) if command == "H" else x + float(a)
            for column in range(int(x), int(end)):
                dark[int(y)][column] = True
            x = end
    zoom = 4
    raw = b"".join(b"\x00" + bytes(0 if dark[r // zoom][c // zoom] else 255
                                   for c in range(modules * zoom))
                   for r in range(modules * zoom))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    png.write_bytes(b"\x89PNG\r\n\x1a\n"
                    + chunk(b"IHDR", struct.pack(">IIBBBBB", modules * zoom, modules * zoom,
                                                 8, 0, 0, 0, 0))
                    + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@contextmanager
def _client(root: Path) -> Iterator[Any]:
    """The real application of the workspace, in process."""
    with warnings.catch_warnings():  # the test client's own deprecation notice
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient
    from onetoone.api.app import build_app

    with TestClient(build_app(root)) as client:
        yield client


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """A workspace whose spring campaign ran once."""
    root = _build(tmp_path_factory.mktemp("print"))
    with Workspace(root) as ws:
        preview = ws.campaigns.preview("spring")
        assert preview["not_sent"] == {"no address": 1} and preview["to_send"] == 4
        assert not (root / "outbox").exists()  # a preview prints nothing
        result = ws.campaigns.run("spring")
    return root, result


def test_the_run_writes_one_code_and_one_mailing_row_per_message(
        printed: tuple[Path, dict[str, object]]) -> None:
    root, result = printed
    folder = root / "outbox" / "print" / "spring"
    rows = _mailing(root)
    assert result["delivery"]["sent"] == len(rows) == 4  # type: ignore[index]
    assert result["not_sent"] == {"no address": 1}  # Denis, who has no postal address
    assert "Sansadresse" not in (folder / "once.csv").read_text(encoding="utf-8")
    assert list(rows[0])[:11] == ["delivery_id", "customer_id", "first_name", "last_name",
                                  "full_name", "address", "postcode", "city", "region",
                                  "country", "language"]
    assert list(rows[0])[-2:] == ["code", "link"]
    by_name = {r["last_name"]: r for r in rows}
    alice = by_name["Quillebeuf"]
    assert (alice["first_name"], alice["address"], alice["postcode"], alice["city"],
            alice["country"], alice["language"]) == ("Alice", "12 rue des Tilleuls", "75011",
                                                     "Paris", "FR", "fr")
    assert alice["headline"] == "Alice, votre offre de printemps"
    assert alice["body"].startswith("Scannez le code")
    assert "url" not in alice  # the page is reached through the link, never printed
    assert alice["link"].startswith(f"{PUBLIC}/r/")
    # every file is the owner's only; one code per row, named by its delivery id
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["once.csv", *(r["code"] for r in rows)])
    assert all(r["code"] == f"{r['delivery_id']}.png" for r in rows)
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    with duckdb.connect(str(root / "onetoone.duckdb"), read_only=True) as con:
        sent = dict(con.execute("SELECT delivery_id, provider_id FROM deliveries "
                                "WHERE status = 'sent'").fetchall())
    assert sent == {r["delivery_id"]: f"print:{r['code']}" for r in rows}


def test_a_formula_in_a_name_is_written_as_text(
        printed: tuple[Path, dict[str, object]]) -> None:
    root, _ = printed
    martin = next(r for r in _mailing(root) if r["last_name"] == "Martin")
    assert martin["first_name"] == "'" + FORMULA
    assert martin["headline"] == "'" + FORMULA + ", votre offre de printemps"
    for row in _mailing(root):
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row.values())


@needs_zbarimg
def test_every_code_reads_back_to_its_rows_link(
        printed: tuple[Path, dict[str, object]]) -> None:
    root, _ = printed
    rows = _mailing(root)
    assert len({r["link"] for r in rows}) == len(rows)
    # the link names the delivery only: a small code (version 5 at most with this address)
    assert all(len(r["link"]) <= len(PUBLIC) + 52 for r in rows)
    for row in rows:
        assert _decode(root / "outbox" / "print" / "spring" / row["code"]) == row["link"]


def test_a_scan_is_recorded_for_its_decision_and_redirects_to_the_page(
        printed: tuple[Path, dict[str, object]]) -> None:
    root, _ = printed
    row = next(r for r in _mailing(root) if r["last_name"] == "Vasseur")
    path = urlsplit(row["link"]).path
    with _client(root) as client:
        went = client.get(path, follow_redirects=False)
        assert went.status_code == 302
        assert went.headers["location"] == (
            f"https://shop.example.org/printemps?client={row['customer_id']}")
        token = path.removeprefix("/r/")
        forged = "/r/" + token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
        assert client.get(forged, follow_redirects=False).status_code == 404
        other = next(r for r in _mailing(root) if r["last_name"] == "Ravanel")
        seal = urlsplit(other["link"]).path.rpartition(".")[2]
        mixed = f"/r/{token.partition('.')[0]}.{seal}"  # one message's body, another's seal
        assert client.get(mixed, follow_redirects=False).status_code == 404
    with duckdb.connect(str(root / "onetoone.duckdb"), read_only=True) as con:
        decision = con.execute("SELECT decision_id FROM deliveries WHERE delivery_id = ?",
                               [row["delivery_id"]]).fetchone()[0]
        responses = con.execute("SELECT decision_id, customer_id, response FROM responses"
                                ).fetchall()
        scans = con.execute("SELECT customer_id, channel FROM interactions "
                            "WHERE type = 'scan'").fetchall()
    assert responses == [(decision, row["customer_id"], "click")]
    assert scans == [(row["customer_id"], "qr")]
    with Workspace(root) as ws:
        assert ws.campaigns.status("spring")["clicked"] == 1


def test_a_second_run_sends_nothing_new(printed: tuple[Path, dict[str, object]]) -> None:
    root, _ = printed
    folder = root / "outbox" / "print" / "spring"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with Workspace(root) as ws:
        again = ws.campaigns.run("spring")
    assert again["delivery"]["sent"] == 0 and again["to_send"] == 0
    assert again["already_in_this_occurrence"] == 4
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_message_retried_after_a_crash_is_not_written_twice(tmp_path: Path) -> None:
    """The mailing file is appended before the deliveries are recorded: a run that stopped
    in between sends those messages again, and their rows are not repeated."""
    root = _build(tmp_path)
    with Workspace(root) as ws:
        ws.campaigns.run("spring")
    rows = _mailing(root)
    with Workspace(root) as ws:  # as if the deliveries had not been recorded
        ws.store.execute("DELETE FROM deliveries")
    with Workspace(root) as ws:
        again = ws.campaigns.run("spring")
    assert again["delivery"]["sent"] == 4
    assert _mailing(root) == rows


def test_a_text_field_met_later_widens_the_mailing_file(tmp_path: Path) -> None:
    """Actions of one campaign may have different fields: the file gets the new column and
    keeps its rows (each cell escaped once); an address without a city is not printed."""
    from onetoone.channels.base import Message
    from onetoone.channels.printing import PrintChannel

    golden = {"C1": {"first_name": FORMULA, "city": "Paris"}, "C2": {"city": "Lyon"},
              "C3": {"city": None}}
    channel = PrintChannel("mailing", tmp_path, public_url=PUBLIC, secret=b"k" * 32,
                           golden=lambda ids: {i: golden[i] for i in ids})

    def message(n: int, **fields: str) -> Message:
        return Message(f"m{n}", f"d{n}", f"C{n}", "spring:once", "mailing", "offer",
                       f"{n} rue Haute", {"language": "fr", **fields})

    first = channel.send([message(1, headline="Bonjour")])
    second = channel.send([message(2, headline="Salut", coupon="-20 %"),
                           message(3, headline="Hello")])
    assert [o.status for o in [*first, *second]] == ["sent", "sent", "failed"]
    assert second[1].error == "incomplete postal address: no city"
    with (tmp_path / "print" / "spring" / "once.csv").open(newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f))
    header = lines[0]
    assert header[11:] == ["headline", "coupon", "code", "link"]
    rows = [dict(zip(header, line, strict=True)) for line in lines[1:]]
    assert [(r["customer_id"], r["first_name"], r["headline"], r["coupon"]) for r in rows] == [
        ("C1", "'" + FORMULA, "Bonjour", ""), ("C2", "", "Salut", "'-20 %")]
    assert sorted(p.name for p in (tmp_path / "print" / "spring").iterdir()) == [
        "m1.png", "m2.png", "once.csv"]


@needs_zbarimg
def test_svg_codes_read_back_and_the_fallback_page_is_the_public_url(tmp_path: Path) -> None:
    root = _build(tmp_path)
    with _client(root) as client:  # a run as the server does it: a job
        client.headers["Authorization"] = f"Bearer {(root / 'admin.key').read_text()}"
        job = client.post("/v1/campaigns/visit/run").json()
        for _ in range(600):
            job = client.get(f"/v1/jobs/{job['job_id']}").json()
            if job["status"] not in ("queued", "running"):
                break
            time.sleep(0.05)
        assert job["status"] == "succeeded", job
        assert job["result"]["delivery"]["sent"] == 4
    rows = _mailing(root, "visit")
    assert rows and all(r["code"].endswith(".svg") for r in rows)
    assert {r["headline"] for r in rows} >= {"Venez nous voir, Alice"}
    for row in rows:
        svg = root / "outbox" / "print" / "visit" / row["code"]
        ET.fromstring(svg.read_bytes())
        assert 'viewBox="0 0 ' in svg.read_text(encoding="utf-8")
        _svg_to_png(svg, tmp_path / "drawn.png")
        assert _decode(tmp_path / "drawn.png") == row["link"]
    with _client(root) as client:
        went = client.get(urlsplit(rows[0]["link"]).path, follow_redirects=False)
        assert went.status_code == 302 and went.headers["location"] == PUBLIC


def test_without_a_public_url_the_run_is_refused_in_one_sentence(tmp_path: Path) -> None:
    root = _build(tmp_path, public_url=None)
    with Workspace(root) as ws, pytest.raises(InvalidInputError) as refused:
        ws.campaigns.preview("spring")
    with Workspace(root) as ws, pytest.raises(InvalidInputError) as refused:
        ws.campaigns.run("spring")
    assert str(refused.value) == (
        "The channel 'mailing' prints QR codes of signed links to the server: set "
        "[api] public_url in onetoone.toml to the address at which phones reach "
        "'onetoone serve'.")
    done = CliRunner().invoke(app, ["campaign", "run", "spring", "--workspace", str(root)])
    assert done.exit_code != 0 and "set [api] public_url" in done.output.replace("\n", " ")
    assert not (root / "outbox").exists()
    with duckdb.connect(str(root / "onetoone.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0


def test_erasure_removes_the_persons_code_and_mailing_rows(tmp_path: Path) -> None:
    root = _build(tmp_path)
    with Workspace(root) as ws:
        ws.campaigns.run("spring")
        ws.campaigns.run("visit")
    campaigns = ("spring", "visit")
    rows = {c: _mailing(root, c) for c in campaigns}
    alice = {c: next(r for r in rows[c] if r["last_name"] == "Quillebeuf") for c in campaigns}
    theirs = [root / "outbox" / "print" / c / alice[c]["code"] for c in campaigns]
    assert all(p.is_file() for p in theirs)
    needles = [b"quillebeuf", b"12 rue des tilleuls", b"client1@exemple.fr"]

    def holding() -> list[str]:
        return sorted({str(p.relative_to(root)) for p in root.rglob("*")
                       if p.is_file() and "exports" not in p.relative_to(root).parts[:1]
                       and any(n in p.read_bytes().lower() for n in needles)})

    assert "outbox/print/spring/once.csv" in holding()  # the check can fail
    runner = CliRunner()
    exported = runner.invoke(app, ["privacy", "export", "--email", "client1@exemple.fr",
                                   "--output", str(tmp_path / "access.json"),
                                   "--workspace", str(root)])
    assert exported.exit_code == 0, exported.output
    text = (tmp_path / "access.json").read_text(encoding="utf-8")
    assert "outbox/print/spring/once.csv" in text and alice["spring"]["code"] in text
    (tmp_path / "access.json").unlink()

    erased = runner.invoke(app, ["privacy", "erase", "--email", "client1@exemple.fr",
                                 "--workspace", str(root)])
    assert erased.exit_code == 0, erased.output
    assert holding() == []
    assert not any(p.exists() for p in theirs)
    for campaign in campaigns:  # the others' rows and codes stay, the owner's only
        folder = root / "outbox" / "print" / campaign
        left = _mailing(root, campaign)
        assert left == [r for r in rows[campaign] if r["last_name"] != "Quillebeuf"]
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            ["once.csv", *(r["code"] for r in left)])
        assert stat.S_IMODE((folder / "once.csv").stat().st_mode) == 0o600
    # the letter already in their mailbox leads to the home page, and records nothing
    responses = _scalar(root, "SELECT count(*) FROM responses")
    with _client(root) as client:
        went = client.get(urlsplit(alice["spring"]["link"]).path, follow_redirects=False)
        assert went.status_code == 302 and went.headers["location"] == PUBLIC
    assert _scalar(root, "SELECT count(*) FROM responses") == responses
