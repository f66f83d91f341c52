"""CSV ingestion: formats, normalization, quarantine with reasons, idempotency, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onetoone.errors import IngestError

CRM = """
[sources.crm]
entity = "customers"
path = "exports/crm.csv"
delimiter = ";"
date_format = "%d/%m/%Y"
[sources.crm.columns]
source_id = "client_id"
first_name = "prenom"
last_name = "nom"
email = "mail"
phone = "tel"
birth_date = "date_naissance"
country = "pays"
[sources.crm.identifiers]
loyalty_card = "carte"
"""

HEADER = "client_id;prenom;nom;mail;tel;date_naissance;pays;carte;segment\n"
GOOD = (
    "1;Marie; Dupont ; Marie.Dupont@Exemple.FR ;06 12 34 56 78;31/12/1980;France;C-001;or\n"
    "2;Jean;Martin;jean@exemple.fr;+33 6 11 22 33 44;01/02/1975;FR;;argent\n"
    "3;Zoé;Lefèvre;zoe@exemple.fr;0033 7 11 22 33 44;05/06/1990;Belgique;c 003;\n"
)


def _counts(ws, source: str = "crm") -> tuple[int, int, int]:
    return ws.store.fetchall(
        "SELECT sum(rows_read), sum(rows_loaded), sum(rows_quarantined) FROM ingestions "
        "WHERE source = ?", [source])[0]


def test_loads_and_normalizes_a_french_crm_export(make_workspace):
    ws = make_workspace(CRM, {"exports/crm.csv": (HEADER + GOOD).encode("cp1252")})
    [result] = ws.ingest()
    assert (result.total("rows_read"), result.total("rows_loaded")) == (3, 3)
    rows = ws.store.fetchall(
        "SELECT source_id, last_name, email, phone, birth_date::VARCHAR, country, "
        "attributes->>'segment' FROM customer_records ORDER BY source_id")
    assert rows[0] == ("1", "Dupont", "marie.dupont@exemple.fr", "+33612345678", "1980-12-31",
                       "FR", "or")
    assert rows[2][1:] == ("Lefèvre", "zoe@exemple.fr", "+33711223344", "1990-06-05", "BE",
                           None)
    ids = ws.store.fetchall(
        "SELECT record_key, type, value FROM identifiers ORDER BY record_key, type")
    assert ("crm:1", "loyalty_card", "C001") in ids
    assert ("crm:3", "loyalty_card", "C003") in ids
    assert ("crm:2", "email", "jean@exemple.fr") in ids
    assert ws.store.scalar("SELECT encoding FROM ingestions") == "cp1252"


def test_every_bad_row_is_quarantined_with_a_reason(make_workspace):
    bad = (
        "4;Paul;Durand;paul@exemple.fr;;31/02/1980;FR;;x\n"         # impossible date
        '5;"Luc;Blanc;luc@exemple.fr;;02/02/1975;FR;;y\n'            # unbalanced quote
        "6;Ana;Petit;ana@exemple.fr;;03/03/1991;ES;;z;extra\n"      # one column too many
        ";Sans;Id;sid@exemple.fr;;03/03/1991;ES;;z\n"              # required id empty
        "1;Marie;Dupont;autre@exemple.fr;;;;;\n"                    # same id again
        "7;Trunc\n"                                                  # truncated last line
    )
    ws = make_workspace(CRM, {"exports/crm.csv": HEADER + GOOD + bad})
    ws.ingest()
    read, loaded, quarantined = _counts(ws)
    assert (read, loaded, quarantined) == (9, 3, 6)
    reasons = [r for (r,) in ws.store.fetchall("SELECT reason FROM quarantine ORDER BY reason")]
    assert "birth_date '31/02/1980' is not a date (expected %d/%m/%Y, ISO 8601)" in reasons
    assert any(r.startswith("unbalanced quote") for r in reasons)
    assert any("the header has 9" in r for r in reasons)
    assert "source_id is empty" in reasons
    assert "source_id '1' already appears at row 1 of this file" in reasons
    # Rows after the stray quote were not swallowed by it.
    assert ws.store.scalar("SELECT count(*) FROM customer_records") == 3
    raw = ws.store.scalar("SELECT raw FROM quarantine WHERE reason LIKE 'birth_date%'")
    assert json.loads(raw)["prenom"] == "Paul"


def test_reloading_the_same_file_adds_nothing_and_a_changed_file_only_its_changes(
    make_workspace, tmp_path: Path
):
    ws = make_workspace(CRM, {"exports/crm.csv": HEADER + GOOD})
    ws.ingest()
    [again] = ws.ingest()
    assert [f.status for f in again.files] == ["unchanged"]
    assert ws.store.scalar("SELECT count(*) FROM customer_records") == 3
    changed = GOOD.replace("jean@exemple.fr", "jean.martin@exemple.fr")
    (tmp_path / "exports/crm.csv").write_text(
        HEADER + changed + "8;Léa;Roux;lea@exemple.fr;;;;;\n", encoding="utf-8")
    [third] = ws.ingest()
    f = third.files[0]
    assert (f.rows_read, f.rows_new, f.rows_changed, f.rows_unchanged) == (4, 1, 1, 2)
    assert ws.store.scalar("SELECT count(*) FROM customer_records") == 4
    assert ws.store.scalar(
        "SELECT email FROM customer_records WHERE source_id = '2'") == "jean.martin@exemple.fr"
    emails = ws.store.fetchall(
        "SELECT value FROM identifiers WHERE record_key = 'crm:2' AND type = 'email'")
    assert emails == [("jean.martin@exemple.fr",)]


def test_missing_mapped_columns_load_nothing_and_name_them(make_workspace):
    ws = make_workspace(CRM, {"exports/crm.csv": "client_id;prenom;nom\n1;Marie;Dupont\n"})
    with pytest.raises(IngestError) as info:
        ws.ingest()
    message = str(info.value)
    assert "crm.csv" in message and "'mail'" in message and "'date_naissance'" in message
    assert ws.store.scalar("SELECT count(*) FROM ingestions") == 0
    assert ws.store.scalar("SELECT count(*) FROM customer_records") == 0


def test_wrong_delimiter_is_explained(make_workspace):
    ws = make_workspace(CRM.replace('delimiter = ";"', 'delimiter = ","'),
                        {"exports/crm.csv": HEADER + GOOD})
    with pytest.raises(IngestError) as info:
        ws.ingest()
    assert "delimiter" in (info.value.hint or "")


def test_a_failure_midway_leaves_nothing_written(make_workspace, tmp_path: Path):
    sources = CRM.replace('path = "exports/crm.csv"', 'path = "exports/*.csv"')
    ws = make_workspace(sources, {
        "exports/a.csv": HEADER + GOOD,
        "exports/b.csv": "client_id;prenom\n9;X\n",
    })
    with pytest.raises(IngestError):
        ws.ingest()
    assert ws.store.scalar("SELECT count(*) FROM customer_records") == 0
    assert ws.store.scalar("SELECT count(*) FROM identifiers") == 0
    assert ws.store.scalar("SELECT count(*) FROM quarantine") == 0


def test_declared_utf8_that_is_not_says_which_encoding_to_set(make_workspace):
    ws = make_workspace(CRM.replace('delimiter = ";"', 'delimiter = ";"\nencoding = "utf-8"'),
                        {"exports/crm.csv": (HEADER + GOOD).encode("latin-1")})
    with pytest.raises(IngestError) as info:
        ws.ingest()
    assert "not valid UTF-8" in str(info.value) and "cp1252" in (info.value.hint or "")


def test_utf8_bom_and_auto_delimiter(make_workspace):
    sources = CRM.replace('delimiter = ";"\n', "")
    ws = make_workspace(sources, {"exports/crm.csv": b"\xef\xbb\xbf" + (HEADER + GOOD).encode()})
    [result] = ws.ingest()
    assert result.total("rows_loaded") == 3
    assert ws.store.scalar("SELECT first_name FROM customer_records WHERE source_id='3'") == "Zoé"


def test_empty_and_zero_byte_files_load_nothing_without_error(make_workspace):
    sources = CRM.replace('path = "exports/crm.csv"', 'path = "exports"')
    ws = make_workspace(sources, {"exports/a.csv": HEADER, "exports/b.csv": b""})
    [result] = ws.ingest()
    assert sorted(f.status for f in result.files) == ["empty", "loaded"]
    assert result.total("rows_read") == 0


def test_duplicated_header_column(make_workspace):
    header = "client_id;prenom;nom;mail;tel;date_naissance;pays;carte;nom\n"
    ws = make_workspace(CRM, {"exports/crm.csv": header + GOOD})
    with pytest.raises(IngestError, match="'nom' twice"):
        ws.ingest()
    # An unmapped duplicated column is kept under a new name.
    header = "client_id;prenom;nom;mail;tel;date_naissance;pays;carte;segment;segment\n"
    (Path(ws.root) / "exports/crm.csv").write_text(header + "1;A;B;a@b.fr;;;;;x;y\n")
    ws.ingest()
    assert ws.store.scalar("SELECT attributes->>'segment_2' FROM customer_records") == "y"


def test_unknown_entity_and_unknown_key_are_config_errors(tmp_path: Path):
    from onetoone.config import parse_config
    from onetoone.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown entity 'clients'"):
        parse_config('[sources.a]\nentity = "clients"\npath = "x.csv"\n')
    with pytest.raises(ConfigError) as info:
        parse_config('[workspace]\nname = "x"\n\n[sources.a]\nentity = "customers"\n'
                     'path = "x.csv"\ndelimter = ";"\n')
    assert str(info.value) == "Unknown key 'delimter' in [sources.a] (onetoone.toml, line 7)."


def test_decimal_comma_amounts_and_local_times(make_workspace):
    sources = """
[sources.tickets]
entity = "transactions"
path = "tickets.csv"
delimiter = ";"
decimal = ","
datetime_format = "%d/%m/%Y %H:%M"
[sources.tickets.columns]
source_id = "ticket"
occurred_at = "date_heure"
amount = "montant"
[sources.tickets.identifiers]
loyalty_card = "carte"
"""
    data = ("ticket;date_heure;montant;carte\n"
            "T1;15/07/2024 10:30;1 234,50;C-001\n"
            "T2;15/01/2024 10:30;-12,00;\n"
            "T3;15/01/2024 10:30;douze;C-002\n")
    ws = make_workspace(sources, {"tickets.csv": data})
    ws.ingest()
    rows = ws.store.fetchall("SELECT source_id, occurred_at::VARCHAR, amount::VARCHAR, "
                             "customer_record_key FROM transactions ORDER BY source_id")
    # Paris is UTC+2 in July and UTC+1 in January.
    assert rows == [("T1", "2024-07-15 08:30:00", "1234.50", "tickets~loyalty_card:C001"),
                    ("T2", "2024-01-15 09:30:00", "-12.00", None)]
    reason = ws.store.scalar("SELECT reason FROM quarantine")
    assert reason == "amount 'douze' is not an amount (decimal separator ',')"
    # The card holder exists as a customer record even without a profile.
    assert ws.store.fetchall("SELECT record_key, origin FROM customer_records") == [
        ("tickets~loyalty_card:C001", "reference")]
