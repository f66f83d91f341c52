"""Audiences for ads and addressable TV: the platforms' normalisation before hashing, opt-in
consent on the channel ``ads``, a deterministic holdout, owner-only files, the command line
alone and through a server, and erasure taking the person out of the files."""

from __future__ import annotations

import csv
import hashlib
import json
import stat
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from _service_server import OPTIN, Server, crm_sources, make_workspace
from onetoone import Workspace
from onetoone.channels.audiences import (
    HEADERS,
    audience_export,
    audience_row,
    normalise_city,
    normalise_country,
    normalise_email,
    normalise_name,
    normalise_phone,
    normalise_postcode,
    sha256_hex,
)
from onetoone.cli import app
from onetoone.errors import ConfigError, InvalidInputError, NotFoundError
from onetoone.interact.events import Consent


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- normalisation (examples of the platforms' documentation) ---------------------------------

def test_email_is_trimmed_and_lower_cased_and_gmail_dots_are_kept() -> None:
    for platform in ("google", "meta"):
        assert normalise_email(platform, " John.Doe@Example.com ") == "john.doe@example.com"
        # Google: removing the dots of gmail.com addresses is not required (they are accepted)
        assert normalise_email(platform, "Jane.Doe@Gmail.com") == "jane.doe@gmail.com"
        assert normalise_email(platform, "no-at-sign") is None
        assert normalise_email(platform, None) is None
    assert sha256_hex(normalise_email("google", " John.Doe@Example.com ")) == sha(
        "john.doe@example.com")
    assert normalise_email("google", "john .doe@example.com") == "john.doe@example.com"
    assert sha256_hex(None) == "" and sha256_hex("") == ""


def test_phone_is_e164_for_google_and_digits_with_the_country_code_for_meta() -> None:
    assert normalise_phone("google", "+33 6 12 34 56 78") == "+33612345678"
    assert normalise_phone("meta", "+33 6 12 34 56 78") == "33612345678"
    assert normalise_phone("meta", "+1 (650) 555-1212") == "16505551212"
    assert normalise_phone("meta", "0033612345678") == "33612345678"  # no leading zeros
    assert normalise_phone("csv", "+33612345678") == "+33612345678"
    assert normalise_phone("google", "12") is None and normalise_phone("meta", None) is None


def test_names_city_postcode_and_country() -> None:
    # Google: lower case, extra spaces removed; a last name without punctuation
    assert normalise_name("google", "  Marie   Claire ") == "marie claire"
    assert normalise_name("google", "Jean-Pierre") == "jean-pierre"
    assert normalise_name("google", "O'Brien-Smith", last=True) == "obriensmith"
    # Meta: lower-case letters only, accented letters kept (UTF-8)
    assert normalise_name("meta", "Émilie") == "émilie"
    assert normalise_name("meta", "O'Brien", last=True) == "obrien"
    assert normalise_name("meta", "Jean-Pierre") == "jeanpierre"
    assert normalise_name("meta", "  ") is None
    assert normalise_city("Saint-Étienne") == "saintetienne"
    assert normalise_city("New York") == "newyork"
    assert normalise_postcode("meta", "94303-5300", "US") == "94303"
    assert normalise_postcode("meta", "SW1A 1AA", "GB") == "sw1a1"
    assert normalise_postcode("meta", " 75011 ", "FR") == "75011"
    assert normalise_postcode("google", "WC2H 8LG", "GB") == "WC2H 8LG"
    assert normalise_postcode("google", "=1+1", "FR") == "11"  # never a formula
    assert normalise_country("google", "fr") == "FR" and normalise_country("meta", "FR") == "fr"
    assert normalise_country("meta", "France") is None
    with pytest.raises(InvalidInputError, match="Unknown platform"):
        normalise_email("tiktok", "a@b.fr")


def test_rows_per_platform() -> None:
    attrs = {"email": "Marie@Exemple.fr", "phone": "+33612345678", "first_name": "Marie",
             "last_name": "Dupont-Martin", "postcode": "75011", "city": "Paris",
             "country": "FR"}
    assert audience_row("google", "C1", attrs) == [
        sha("marie@exemple.fr"), sha("+33612345678"), sha("marie"), sha("dupontmartin"),
        "FR", "75011"]
    assert audience_row("meta", "C1", attrs) == [
        sha("marie@exemple.fr"), sha("33612345678"), sha("marie"), sha("dupontmartin"),
        sha("75011"), sha("paris"), sha("fr")]
    # spreadsheet-safe: a cell starting with "+" gets a leading "'" (as in the outbound lists)
    assert audience_row("csv", "C1", attrs) == [
        "C1", "marie@exemple.fr", "'+33612345678", "Marie", "Dupont-Martin", "75011", "FR"]
    # Google's address match needs first and last names, country and zip: all, or none sent
    partial = {"email": "a@b.fr", "first_name": "Ann", "country": "FR"}
    assert audience_row("google", "C2", partial) == [sha("a@b.fr"), "", "", "", "", ""]
    assert audience_row("meta", "C3", {"first_name": "Ann", "city": "Lyon"}) is None
    assert audience_row("csv", "C4", {"first_name": "=cmd", "last_name": "X", "postcode": "1",
                                      "country": "FR"})[3] == "'=cmd"


# -- a small workspace ------------------------------------------------------------------------

CRM = """id;prenom;nom;mail;tel;cp;ville;pays
1;Marie;Martin;Marie.Martin@Exemple.fr;06 12 34 56 78;75011;Paris;FR
2;John;Smith;john@example.co.uk;;SW1A 1AA;London;GB
3;Paul;Durand;paul@exemple.fr;;69001;Lyon;FR
4;Lea;Petit;;06 98 76 54 32;13001;Marseille;FR
5;Zoe;Roux;zoe@exemple.fr;;33000;Bordeaux;FR
6;Noe;;;;;;FR
"""
CONSENTS = """client;canal;finalite;ok;date
1;ads;advertising;oui;2026-01-10
2;ads;advertising;oui;2026-01-10
2;ads;advertising;non;2026-03-01
3;email;marketing;oui;2026-01-10
4;ads;advertising;oui;2026-01-10
5;ads;marketing;oui;2026-01-10
6;ads;advertising;oui;2026-01-10
"""
CONFIG = """
[workspace]
name = "audiences"
default_country = "FR"

[contact_policy]
outbound_channels = ["email", "sms", "ads"]
quiet_hours_start = ""
quiet_hours_end = ""

[control_groups]
universal_share = 0.0
""" + crm_sources({"source_id": "id", "first_name": "prenom", "last_name": "nom",
                  "email": "mail", "phone": "tel", "postcode": "cp", "city": "ville",
                  "country": "pays"}, {**OPTIN, "purpose": "finalite"}) + """
[audiences.fans]
holdout_share = 0.0

[audiences.french]
audience = 'country == "FR"'
holdout_share = 0.0
"""


def _workspace(root: Path, crm: str = CRM, consents: str = CONSENTS,
               config: str = CONFIG) -> Path:
    (root / "crm.csv").write_text(crm, encoding="utf-8")
    (root / "consents.csv").write_text(consents, encoding="utf-8")
    with Workspace.init(root, config_text=config) as ws:
        ws.ingest()
        ws.identify()
    return root


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _sidecar(path: Path) -> list[str]:
    """The customer ids of a file's rows, from its sidecar."""
    lines = path.with_name(path.name + ".ids").read_text(encoding="utf-8").splitlines()
    return [row[0] for row in csv.reader(lines[1:])]


def _ids(root: Path, email_or_phone: str) -> str:
    with duckdb.connect(str(root / "onetoone.duckdb"), read_only=True) as con:
        return str(con.execute("SELECT customer_id FROM customers WHERE email = ? OR phone = ?",
                               [email_or_phone, email_or_phone]).fetchone()[0])


def _export(ws: Workspace, name: str, platform: str, output: Path | None = None) -> dict:
    return audience_export(ws.decisions, ws.config.audiences, ws.root, name, platform, output)


def test_only_customers_consenting_to_advertising_on_ads_are_exported(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    marie, lea = _ids(root, "marie.martin@exemple.fr"), _ids(root, "+33698765432")
    with Workspace(root) as ws:
        result = _export(ws, "fans", "csv")
        assert (result["customers"], result["selected"]) == (6, 6)
        # John withdrew, Paul consented to e-mail only, Zoe to marketing only: no advertising
        assert result["without_consent"] == 3
        assert result["without_identifiers"] == 1  # Noe: nothing to match on
        assert (result["held_out"], result["exported"]) == (0, 2)
        assert result["file"] == "audiences/fans-csv.csv"
        rows = _read(root / result["file"])
        assert [r["customer_id"] for r in rows] == sorted([marie, lea])
        assert rows[[r["customer_id"] for r in rows].index(marie)] == {
            "customer_id": marie, "email": "marie.martin@exemple.fr", "phone": "'+33612345678",
            "first_name": "Marie", "last_name": "Martin", "postcode": "75011", "country": "FR"}

        # the audience rule selects: John (GB) is not selected
        assert _export(ws, "french", "csv")["selected"] == 5

        # a withdrawal through the service is in force for the next export
        ws.decisions.set_consent(marie, Consent(channel="all", purpose="all", granted=False))
        again = _export(ws, "fans", "google")
        assert (again["without_consent"], again["exported"]) == (4, 1)
        google = _read(root / "audiences/fans-google.csv")
        assert list(google[0]) == list(HEADERS["google"])
        assert google == [{"Email": "", "Phone": sha("+33698765432"), "First Name": sha("lea"),
                           "Last Name": sha("petit"), "Country": "FR", "Zip": "13001"}]
        with pytest.raises(NotFoundError, match="No audience"):
            _export(ws, "nope", "csv")
        with pytest.raises(InvalidInputError, match="Unknown platform"):
            _export(ws, "fans", "tiktok")


def test_holdout_is_deterministic_and_about_the_share(tmp_path: Path) -> None:
    n = 400
    crm = "id;prenom;nom;mail;tel;cp;ville;pays\n" + "".join(
        f"{i};P{i};N{i};p{i}@exemple.fr;;750{i % 20:02d};Paris;FR\n" for i in range(1, n + 1))
    consents = "client;canal;finalite;ok;date\n" + "".join(
        f"{i};ads;advertising;oui;2026-01-10\n" for i in range(1, n + 1))
    config = CONFIG + "\n[audiences.lift]\nholdout_share = 0.25\n"
    root = _workspace(tmp_path, crm, consents, config)
    with Workspace(root) as ws:
        first = _export(ws, "lift", "meta")
        held = _read(root / "audiences/lift-holdout.csv")
        second = _export(ws, "lift", "google")
        assert _read(root / "audiences/lift-holdout.csv") == held  # the same ones each time
    assert first["holdout_file"] == "audiences/lift-holdout.csv"
    assert first["held_out"] == second["held_out"] == len(held)
    assert first["held_out"] + first["exported"] == n
    assert 0.18 * n <= len(held) <= 0.32 * n
    exported = set(_sidecar(root / "audiences/lift-meta.csv"))
    assert len(exported) == first["exported"] and not exported & {r["customer_id"]
                                                                   for r in held}
    assert list(_read(root / "audiences/lift-meta.csv")[0]) == list(HEADERS["meta"])
    # an erased person leaves the holdout list too
    gone = held[0]["customer_id"]
    with Workspace(root) as ws:
        ws.privacy.erase("customer", gone, actor="test")
    left = [r["customer_id"] for r in _read(root / "audiences/lift-holdout.csv")]
    assert gone not in left and len(left) == len(held) - 1
    assert _sidecar(root / "audiences/lift-holdout.csv") == left


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_cli_export_files_are_owner_only_and_erasure_removes_the_person(
        tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    marie, lea = _ids(root, "marie.martin@exemple.fr"), _ids(root, "+33698765432")
    runner = CliRunner()
    where = ["--workspace", str(root)]
    for platform in ("google", "meta", "csv"):
        done = runner.invoke(app, ["audience", "export", "fans", "--platform", platform,
                                   *where])
        assert done.exit_code == 0, done.output
        assert "exported" in done.output and f"audiences/fans-{platform}.csv" in done.output
    elsewhere = root / "tv" / "operator.csv"
    done = runner.invoke(app, ["audience", "export", "fans", "-p", "csv", "-o",
                               str(elsewhere), *where])
    assert done.exit_code == 0, done.output
    files = [root / "audiences" / f"fans-{p}.csv" for p in ("google", "meta", "csv", "holdout")]
    files.append(elsewhere)
    for path in files:
        sidecar = path.with_name(path.name + ".ids")
        assert _mode(path) == 0o600 and _mode(sidecar) == 0o600, path
    meta = _read(root / "audiences/fans-meta.csv")
    assert {r["EMAIL"] for r in meta} == {sha("marie.martin@exemple.fr"), ""}
    with duckdb.connect(str(root / "onetoone.duckdb"), read_only=True) as con:
        audits = con.execute("SELECT actor, details FROM audit_log WHERE action = "
                             "'audience.export'").fetchall()
    assert len(audits) == 4 and all(a.startswith("cli:") for a, _ in audits)
    details = json.loads(audits[-1][1])
    assert details["exported"] == 2 and details["files"][0] == "tv/operator.csv"
    bad = runner.invoke(app, ["audience", "export", "fans", "-p", "tiktok", *where])
    assert bad.exit_code == 1 and "Platforms: google, meta, csv" in bad.output

    # the access export shows the person's rows in the audience files
    access = runner.invoke(app, ["privacy", "export", "--email", "marie.martin@exemple.fr",
                                 *where])
    assert access.exit_code == 0, access.output
    shown = {f["file"] for f in json.loads(access.output)["files"]}
    assert {"audiences/fans-google.csv", "audiences/fans-meta.csv", "audiences/fans-csv.csv",
            "tv/operator.csv"} <= shown

    erased = runner.invoke(app, ["privacy", "erase", "--email", "marie.martin@exemple.fr",
                                 *where])
    assert erased.exit_code == 0, erased.output
    for path in [*files[:3], elsewhere]:
        ids = _sidecar(path)
        assert ids == [lea], path
        assert len(_read(path)) == 1 and _mode(path) == 0o600, path
        text = path.read_text(encoding="utf-8")
        assert marie not in text and "marie" not in text.lower()
        assert sha("marie.martin@exemple.fr") not in text and sha("+33612345678") not in text
    assert lea in (root / "audiences/fans-csv.csv").read_text(encoding="utf-8")


def test_a_file_changed_by_hand_is_removed_whole_on_erasure(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    with Workspace(root) as ws:
        _export(ws, "fans", "meta")
    path = root / "audiences/fans-meta.csv"
    with path.open("a", encoding="utf-8") as f:
        f.write("x,x,x,x,x,x,x\n")  # no longer one row per id of the sidecar
    with Workspace(root) as ws:
        ws.privacy.erase("email", "marie.martin@exemple.fr", actor="test")
    assert not path.exists() and not path.with_name(path.name + ".ids").exists()


def test_cli_goes_through_a_running_server(tmp_path: Path) -> None:
    _workspace(tmp_path)
    server = Server(tmp_path, make_workspace(tmp_path, CONFIG))
    server.start()
    try:
        done = CliRunner().invoke(app, ["audience", "export", "fans", "--platform", "meta",
                                        "--workspace", str(tmp_path)])
        assert done.exit_code == 0, done.output
        assert (tmp_path / "audiences/fans-meta.csv").is_file()
        assert _mode(tmp_path / "audiences/fans-meta.csv") == 0o600
        outside = CliRunner().invoke(app, ["audience", "export", "fans", "-p", "csv", "-o",
                                           str(tmp_path.parent / "x.csv"), "--workspace",
                                           str(tmp_path)])
        assert outside.exit_code == 1 and "inside its workspace" in outside.output
        with server.client("admin") as client:
            answer = client.post("/v1/audiences/fans/export", json={"platform": "google"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["exported"] == 2
            assert client.post("/v1/audiences/nope/export",
                               json={"platform": "csv"}).status_code == 404
            assert client.post("/v1/audiences/fans/export",
                               json={"platform": "x"}).status_code == 422
            for _ in range(50):  # audit entries are committed with the next group
                audit = client.post("/v1/sql", json={
                    "query": "SELECT actor FROM audit_log WHERE action = 'audience.export' "
                             'ORDER BY "at"'}).json()["rows"]
                if len(audit) == 2:
                    break
                time.sleep(0.1)
        assert [a[0] for a in audit] == ["key:local-cli", "key:admin"]
        with server.client("reader") as reader:
            assert reader.post("/v1/audiences/fans/export",
                               json={"platform": "csv"}).status_code == 403
    finally:
        server.stop()


@pytest.mark.parametrize(("extra", "says"), [
    ('[audiences.x]\npurpose = "spam"\n', "not a consent purpose"),
    ('[audiences.x]\naudience = "shoe_size > 3"\n', "unknown field 'shoe_size'"),
    ('[audiences.x]\ntiers = ["gold"]\n', "unknown value tier 'gold'"),
    ('[audiences.x]\nholdout_share = 0.9\n', "holdout_share"),
    ('[audiences."a b"]\n', "may only hold"),
])
def test_bad_audiences_are_refused_at_load(tmp_path: Path, extra: str, says: str) -> None:
    from onetoone.config import parse_config

    with pytest.raises(ConfigError, match=says):
        parse_config(CONFIG + extra)


def test_ads_must_be_an_outbound_channel(tmp_path: Path) -> None:
    from onetoone.config import parse_config

    config = CONFIG.replace('outbound_channels = ["email", "sms", "ads"]\n', "")
    with pytest.raises(ConfigError, match="'ads' is not an outbound channel") as raised:
        parse_config(config)
    assert '"ads"' in str(raised.value.hint)
