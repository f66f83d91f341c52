"""The demo company: Maison Aurore, a synthetic French home & fashion retailer.

:func:`generate_demo` writes the company's silo exports (CRM, web shop, store tills, loyalty,
customer service, e-mail and SMS platforms, consents, social posts, NPS, product catalogue) as
messy files under ``exports/``, and the ground truth under ``truth/`` (Parquet): the true person
behind every row, the latent behaviour of every person, what each person does in a future holdout
period that never appears in the exports, and every deliberate defect. See ``docs/demo.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from onetoone.demo import _names as names
from onetoone.demo._catalog import DECISIONING_TOML
from onetoone.demo._dirt import DIRT_RATES, MALFORMED
from onetoone.demo._format import cat, int_str, lookup
from onetoone.demo._population import (
    FIRST_NAMES,
    LAST_NAMES,
    UPLIFT_TYPES,
    People,
    Purchases,
    Timeline,
    assign_accounts,
    make_catalogue,
    make_people,
    simulate_nps,
    simulate_purchases,
    simulate_service,
    simulate_social,
)
from onetoone.demo._silos import (
    Campaigns,
    Context,
    Known,
    SiloOut,
    known_contacts,
    plan_card_replacements,
    plan_moves,
    plan_web_accounts,
    simulate_campaigns,
    write_consents,
    write_crm,
    write_email_events,
    write_loyalty,
    write_nps,
    write_products,
    write_service,
    write_sms_events,
    write_social,
    write_store_tickets,
    write_web_accounts,
    write_web_orders,
)
from onetoone.progress import Progress

__all__ = ["DIRT_RATES", "MALFORMED", "DemoCompany", "generate_demo"]

TRUTH_FILES = ("records", "people", "holdout", "dirt")


@dataclass
class DemoCompany:
    """What :func:`generate_demo` wrote.

    ``files`` maps every silo name and ``truth_<name>`` to its absolute path; ``counts`` maps every
    silo to the number of data records written (malformed ones included), plus a few
    ``<silo>_<detail>`` counts; ``malformed`` maps every silo to its number of deliberately
    malformed records (those a loader must quarantine).
    """

    directory: Path
    customers: int
    seed: int
    sources_toml: str
    files: dict[str, Path]
    counts: dict[str, int]
    malformed: dict[str, int] = field(default_factory=dict)
    #: the last day of the exports (the truth's holdout starts the day after)
    end: date = date(2025, 12, 31)

    def config_text(self) -> str:
        """The whole ``onetoone.toml`` of the demo company's workspace: its sources, then its
        catalog of actions and its campaigns."""
        return ('[workspace]\nname = "demo"\ndefault_country = "FR"\ntimezone = "Europe/Paris"\n'
                f'currency = "EUR"\nlanguage = "fr"\n\n{self.sources_toml}\n'
                f'{DECISIONING_TOML}')


def generate_demo(
    directory: Path,
    customers: int = 5000,
    seed: int = 42,
    *,
    start: date = date(2023, 1, 1),
    calibration_end: date = date(2025, 6, 30),
    end: date = date(2025, 12, 31),
    progress: Progress | None = None,
) -> DemoCompany:
    """Write the demo company's exports and ground truth under ``directory``.

    Exports cover ``start``..``end`` (inclusive); the truth also holds a future holdout period of
    26 weeks after ``end``; ``calibration_end`` splits the observed period for calibration/holdout
    validation (counts per person on each side are in the truth). Same arguments, same bytes.
    """
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if not start < calibration_end <= end:
        raise ValueError("dates must satisfy start < calibration_end <= end")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda _stage, _fraction: None)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(24)]
    tl = Timeline.from_dates(start, calibration_end, end)

    report("people", 0.0)
    people = make_people(streams[0], customers, tl)
    catalogue = make_catalogue(streams[1])
    purchases = simulate_purchases(streams[2], people, tl, catalogue)
    assign_accounts(streams[3], people, purchases, tl)
    ctx = Context(directory=directory, people=people, purchases=purchases, catalogue=catalogue,
                  tl=tl, stamp=end.strftime("%Y%m%d"))
    plan_card_replacements(ctx, streams[4])
    plan_moves(ctx, streams[22])

    outs: list[SiloOut] = []
    steps: list[tuple[str, Callable[[], SiloOut]]] = [
        ("crm", lambda: write_crm(ctx, streams[5])),
        ("web_accounts", lambda: plan_web_accounts(ctx, streams[6])),
        ("web_orders", lambda: write_web_orders(ctx, streams[7])),
        ("store_tickets", lambda: write_store_tickets(ctx, streams[8])),
        ("loyalty", lambda: write_loyalty(ctx, streams[9])),
        ("service", lambda: write_service(ctx, streams[10],
                                          simulate_service(streams[11], people, tl))),
    ]
    total_steps = len(steps) + 7
    for i, (stage, fn) in enumerate(steps):
        report(stage, (i + 1) / total_steps)
        outs.append(fn())
    # an account's delivery address is the one of its last order
    write_web_accounts(ctx, streams[23], outs[1])
    known = known_contacts(ctx)
    report("campaigns", (len(steps) + 1) / total_steps)
    camp = simulate_campaigns(streams[12], people, tl, known)
    report("email_events", (len(steps) + 2) / total_steps)
    outs.append(write_email_events(ctx, streams[13], camp, known))
    outs.append(write_sms_events(ctx, streams[14], camp))
    outs.append(write_consents(ctx, streams[15], camp, known))
    report("social", (len(steps) + 3) / total_steps)
    outs.append(write_social(ctx, streams[16], simulate_social(streams[17], people, tl)))
    outs.append(write_nps(ctx, streams[18], simulate_nps(streams[19], people, purchases, tl),
                          known))
    outs.append(write_products(ctx, streams[20]))

    report("truth", (len(steps) + 5) / total_steps)
    truth = directory / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    _write_records(truth / "records.parquet", outs)
    _write_dirt(truth / "dirt.parquet", outs)
    _write_people(truth / "people.parquet", people, purchases, tl, ctx, known, camp)
    _write_holdout(truth / "holdout.parquet", streams[21], people, purchases, tl)

    files = {o.name: directory / o.path for o in outs}
    files["web_order_items"] = files["web_orders"]
    files.update({f"truth_{t}": truth / f"{t}.parquet" for t in TRUTH_FILES})
    counts: dict[str, int] = {}
    for o in outs:
        counts[o.name] = o.rows
        counts.update(o.extra_counts)
    malformed = {o.name: len(o.dirt.malformed_rows()) for o in outs}
    report("done", 1.0)
    return DemoCompany(directory=directory, customers=customers, seed=seed,
                       sources_toml=sources_toml({o.name: o.path for o in outs}),
                       files=files, counts=counts, malformed=malformed, end=end)


# --- truth ----------------------------------------------------------------------------------

def _ts(seconds: np.ndarray) -> pa.Array:
    s = np.asarray(seconds, dtype=np.int64)
    return pa.array(s.astype("datetime64[s]"), mask=s < 0, type=pa.timestamp("s"))


def _write_records(path: Path, outs: list[SiloOut]) -> None:
    schema = pa.schema([
        ("source", pa.string()), ("file", pa.string()), ("row", pa.int64()),
        ("line", pa.int64()), ("source_id", pa.string()), ("person_id", pa.int64()),
        ("has_reference", pa.bool_()), ("malformed", pa.bool_()),
    ])
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for o in outs:
            k = o.rows
            bad = np.zeros(k, dtype=bool)
            bad[o.dirt.malformed_rows()] = True
            writer.write_table(pa.table([
                lookup([o.name], np.zeros(k, np.int64)), lookup([o.path], np.zeros(k, np.int64)),
                pa.array(np.arange(1, k + 1, dtype=np.int64)), pa.array(o.line),
                o.source_id.cast(pa.string()),
                pa.array(o.person, mask=o.person < 0, type=pa.int64()),
                pa.array(o.has_reference), pa.array(bad),
            ], schema=schema))


def _write_dirt(path: Path, outs: list[SiloOut]) -> None:
    tables = []
    for o in outs:
        log = o.dirt
        for rows, kind, bad, detail in zip(log.rows, log.kinds, log.malformed, log.details,
                                           strict=True):
            k = len(rows)
            z = np.zeros(k, np.int64)
            tables.append(pa.table({
                "source": lookup([o.name], z), "file": lookup([o.path], z),
                "row": pa.array(rows + 1), "line": pa.array(o.line[rows]),
                "source_id": o.source_id.take(pa.array(rows)).cast(pa.string()),
                "kind": lookup([kind], z), "malformed": pa.array(np.full(k, bad)),
                "detail": lookup([detail], z),
            }))
    table = pa.concat_tables(tables) if tables else pa.table({
        "source": pa.array([], pa.string()), "file": pa.array([], pa.string()),
        "row": pa.array([], pa.int64()), "line": pa.array([], pa.int64()),
        "source_id": pa.array([], pa.string()), "kind": pa.array([], pa.string()),
        "malformed": pa.array([], pa.bool_()), "detail": pa.array([], pa.string())})
    pq.write_table(table.sort_by([("source", "ascending"), ("row", "ascending")]), path,
                   compression="zstd")


def _period_sums(people: People, purchases: Purchases, lo: int, hi: int) -> tuple[np.ndarray,
                                                                                  np.ndarray]:
    m = (purchases.time >= lo) & (purchases.time < hi)
    n = np.bincount(purchases.person[m], minlength=people.n)
    spend = np.bincount(purchases.person[m], weights=purchases.amount_cents[m],
                        minlength=people.n) / 100.0
    return n.astype(np.int64), np.round(spend, 2)


def _write_people(path: Path, people: People, purchases: Purchases, tl: Timeline, ctx: Context,
                  known: Known, camp: Campaigns) -> None:
    n = people.n
    alive_end = people.alive_at(tl.end)
    # response probabilities already include the lower response of people who defected
    damp = np.where(alive_end, 1.0, 0.2)
    people.p_control = people.p_control * damp
    people.p_treated = people.p_treated * damp
    n_cal, s_cal = _period_sums(people, purchases, tl.start, tl.calibration_end)
    n_obs, s_obs = _period_sums(people, purchases, tl.start, tl.end)
    has_mail = ~pc.is_null(known.mail).to_numpy(zero_copy_only=False)
    mob = cat("+33", int_str(people.mobile, 9))
    land = cat("+33", int_str(people.landline, 9))
    land = pc.if_else(pa.array(people.landline > 0), land, pa.nulls(n, pa.string()))
    address = cat(int_str(people.street_no), " ", lookup(names.STREET_TYPES, people.street_type),
                  " ", lookup(names.STREET_NAMES, people.street))
    card = pc.if_else(pa.array(people.card > 0), int_str(people.card, 13),
                      pa.nulls(n, pa.string()))
    table = pa.table({
        "person_id": pa.array(np.arange(n, dtype=np.int64)),
        "segment": lookup(names.SEGMENTS, people.segment),
        "gender": lookup(["M", "F"], people.female.astype(np.int64)),
        "language": lookup(["fr", "en"], people.english.astype(np.int64)),
        "first_name": lookup(FIRST_NAMES, people.first),
        "last_name": lookup(LAST_NAMES, people.last),
        "birth_date": pa.array(people.birth_day.astype("datetime64[D]"), type=pa.date32()),
        "email": people.email,
        "generic_email": pa.array(people.generic_email),
        "mobile": mob, "landline": land, "address": address,
        "postcode": lookup([c[1] for c in names.CITIES], people.city),
        "city": lookup([c[0] for c in names.CITIES], people.city),
        **_previous_address(ctx),
        "household_id": pa.array(people.household),
        "crm_id": ctx.crm_id, "web_account_id": ctx.web_account, "loyalty_card": card,
        "social_handle": cat("@", people.handle), "device_id": people.device,
        "in_crm": pa.array(people.in_crm), "has_web_account": pa.array(people.has_web),
        "loyalty_member": pa.array(people.loyalty_member),
        "acquired_at": _ts(people.acquired),
        "purchase_rate_per_week": pa.array(people.lam),
        "dropout_prob": pa.array(people.p_drop),
        "spend_shape": pa.array(np.full(n, 3.0)), "spend_rate": pa.array(people.nu),
        "mean_spend": pa.array(people.mean_spend),
        "web_share": pa.array(people.web_share), "promo_sensitivity": pa.array(people.promo),
        "basket_size": pa.array(people.basket), "satisfaction": pa.array(people.satisfaction),
        "email_open_rate": pa.array(people.open_rate),
        "uplift_type": lookup(UPLIFT_TYPES, people.uplift),
        "p_response_control": pa.array(people.p_control),
        "p_response_treated": pa.array(people.p_treated),
        "consent_email": pa.array(has_mail & people.email_consent0 & (camp.email_unsub < 0)),
        "consent_sms": pa.array(known.mobile_known & people.sms_consent0 & (camp.sms_stop < 0)),
        "email_unsubscribed_at": _ts(camp.email_unsub),
        "sms_stopped_at": _ts(camp.sms_stop),
        "alive_at_end": pa.array(alive_end),
        "defected_at": _ts(people.death),
        "purchases_calibration": pa.array(n_cal), "spend_calibration": pa.array(s_cal),
        "purchases_observed": pa.array(n_obs), "spend_observed": pa.array(s_obs),
    })
    pq.write_table(table, path, compression="zstd")


def _previous_address(ctx: Context) -> dict[str, pa.Array]:
    m = ctx.moves
    assert m is not None
    stayed = m.moved_at < 0
    address = cat(int_str(m.street_no), " ", lookup(names.STREET_TYPES, m.street_type), " ",
                  lookup(names.STREET_NAMES, m.street))
    city = np.where(stayed, -1, m.city)
    return {"moved_at": _ts(m.moved_at),
            "previous_address": pc.if_else(pa.array(stayed), pa.nulls(len(stayed), pa.string()),
                                           address),
            "previous_postcode": lookup([c[1] for c in names.CITIES], city),
            "previous_city": lookup([c[0] for c in names.CITIES], city)}


def _write_holdout(path: Path, rng: np.random.Generator, people: People, purchases: Purchases,
                   tl: Timeline) -> None:
    n = people.n
    n_h, s_h = _period_sums(people, purchases, tl.end, tl.horizon)
    treated = rng.random(n) < 0.5
    responded = rng.random(n) < np.where(treated, people.p_treated, people.p_control)
    pq.write_table(pa.table({
        "person_id": pa.array(np.arange(n, dtype=np.int64)),
        "holdout_start": _ts(np.full(n, tl.end)), "holdout_end": _ts(np.full(n, tl.horizon)),
        "purchases": pa.array(n_h), "spend": pa.array(s_h),
        "alive_at_start": pa.array(people.alive_at(tl.end)),
        "alive_at_holdout_end": pa.array(people.alive_at(tl.horizon)),
        "treated": pa.array(treated), "responded": pa.array(responded),
    }), path, compression="zstd")


# --- configuration --------------------------------------------------------------------------

def _source(name: str, path: str, entity: str, options: dict[str, str],
            columns: dict[str, str], identifiers: dict[str, str] | None = None) -> str:
    lines = [f"[sources.{name}]", f'entity = "{entity}"', f'path = "{path}"']
    lines += [f'{k} = "{v}"' for k, v in options.items()]
    lines.append(f"[sources.{name}.columns]")
    lines += [f'{k} = "{v}"' for k, v in columns.items()]
    if identifiers:
        lines.append(f"[sources.{name}.identifiers]")
        lines += [f'{k} = "{v}"' for k, v in identifiers.items()]
    return "\n".join(lines) + "\n"


def sources_toml(paths: dict[str, str]) -> str:
    """The ``[sources.*]`` part of ``onetoone.toml`` declaring every silo of the demo."""
    csv = {"format": "csv", "delimiter": ",", "encoding": "utf-8"}
    parts = [
        _source("crm", paths["crm"], "customers",
                {"format": "csv", "delimiter": ";", "encoding": "cp1252",
                 "date_format": "%d/%m/%Y", "datetime_format": "%d/%m/%Y %H:%M:%S"},
                {"source_id": "id_client", "gender": "civilite", "first_name": "prenom",
                 "last_name": "nom", "email": "email", "phone": "telephone",
                 "birth_date": "date_naissance", "address": "adresse", "postcode": "code_postal",
                 "city": "ville", "country": "pays", "created_at": "date_creation"},
                {"customer_number": "id_client"}),
        _source("web_accounts", paths["web_accounts"], "customers", {"format": "jsonl"},
                {"source_id": "account_id", "email": "email", "first_name": "first_name",
                 "last_name": "last_name", "phone": "phone", "created_at": "created_at",
                 "address": "delivery_address.line1", "postcode": "delivery_address.postcode",
                 "city": "delivery_address.city", "country": "delivery_address.country"},
                {"social_handle": "instagram", "device_id": "device_id"}),
        _source("web_orders", paths["web_orders"], "transactions",
                {"format": "jsonl", "customer_source": "web_accounts"},
                {"source_id": "order_id", "customer_source_id": "account_id",
                 "occurred_at": "ordered_at", "amount": "total", "currency": "currency",
                 "status": "status", "channel": "channel"},
                {"email": "email"}),
        _source("web_order_items", paths["web_orders"], "transaction_items",
                {"format": "jsonl", "explode": "items"},
                {"transaction_id": "order_id", "product_id": "items.sku",
                 "quantity": "items.qty", "unit_price": "items.unit_price"}),
        _source("store_tickets", paths["store_tickets"], "transactions",
                {"format": "csv", "delimiter": ";", "decimal": ",", "encoding": "utf-8",
                 "datetime_format": "%d/%m/%Y %H:%M"},
                {"source_id": "ticket", "store_id": "magasin", "occurred_at": "date_heure",
                 "amount": "montant_ttc", "channel": "canal"},
                {"loyalty_card": "carte_fidelite"}),
        _source("loyalty", paths["loyalty"], "customers", {**csv, "date_format": "%Y-%m-%d"},
                {"source_id": "card_number", "first_name": "first_name",
                 "last_name": "last_name", "birth_date": "birth_date", "phone": "phone",
                 "postcode": "postcode", "city": "city", "created_at": "enrolled_on"},
                {"loyalty_card": "card_number", "customer_number": "client_id"}),
        _source("service", paths["service"], "interactions",
                {**csv, "encoding": "utf-8-sig", "datetime_format": "%Y-%m-%d %H:%M"},
                {"source_id": "ticket_id", "occurred_at": "opened_at", "channel": "channel",
                 "type": "category", "text": "text"},
                {"phone": "caller_phone", "email": "caller_email"}),
        _source("email_events", paths["email_events"], "interactions", csv,
                {"source_id": "event_id", "occurred_at": "timestamp", "channel": "canal",
                 "type": "event", "campaign_id": "campaign_id"},
                {"email": "email"}),
        _source("sms_events", paths["sms_events"], "interactions",
                {**csv, "datetime_format": "%Y-%m-%d %H:%M:%S"},
                {"source_id": "msg_id", "occurred_at": "sent_at", "channel": "canal",
                 "type": "status", "campaign_id": "campaign"},
                {"phone": "msisdn"}),
        _source("consents", paths["consents"], "consents",
                {**csv, "datetime_format": "%Y-%m-%d %H:%M:%S"},
                {"channel": "channel", "purpose": "purpose", "granted": "granted",
                 "occurred_at": "changed_at"},
                {"email": "email"}),
        _source("social", paths["social"], "social_posts", {"format": "jsonl"},
                {"source_id": "post_id", "platform": "platform", "handle": "handle",
                 "occurred_at": "posted_at", "text": "text", "language": "lang"},
                {"social_handle": "handle"}),
        _source("nps", paths["nps"], "feedback",
                {**csv, "datetime_format": "%Y-%m-%d %H:%M:%S"},
                {"source_id": "response_id", "occurred_at": "answered_at", "kind": "kind",
                 "score": "score", "text": "comment"},
                {"email": "email"}),
        _source("products", paths["products"], "products", csv,
                {"source_id": "sku", "name": "name", "category": "category", "brand": "brand",
                 "price": "price", "margin": "margin_rate"}),
    ]
    return "\n".join(parts)
