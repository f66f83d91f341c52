"""Export writers: each silo of the demo company as its real system would export it.

Each writer takes the latent people and behaviour, renders what that system knows (with the dirt
of :mod:`onetoone.demo._dirt`), writes the file and returns a :class:`SiloOut` with the true
person of every row, for the truth files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from onetoone.demo import _names as names
from onetoone.demo._dirt import (
    BAD_DATES,
    BAD_NUMBERS,
    DIRT_RATES,
    DirtLog,
    break_json,
    malformed_count,
    no_accents,
    pick_rows,
    render_emails,
    render_names,
    render_phones,
    typo,
)
from onetoone.demo._format import (
    DAY,
    cat,
    csv_field,
    datetime_str,
    group_join,
    int_str,
    iso_local,
    iso_utc,
    json_objects,
    json_str,
    lookup,
    money,
    null_where,
    ratio_str,
    where,
    write_lines,
)
from onetoone.demo._population import (
    CANCELLED_ORDER_SHARE,
    MOVED_SHARE,
    RETURNED_ORDER_SHARE,
    SECOND_WEB_ACCOUNT,
    SERVICE_CATEGORIES,
    Catalogue,
    Events,
    People,
    Purchases,
    Timeline,
    fade,
)

CHUNK = 500_000
STREET_SHORT = {"rue": "r", "avenue": "av.", "boulevard": "bd", "allée": "all.", "place": "pl.",
                "impasse": "imp.", "chemin": "ch.", "quai": "q."}


@dataclass
class SiloOut:
    """What was written for one source: rows and the truth about each row."""

    name: str
    path: str  # relative to the demo directory
    rows: int
    source_id: pa.Array
    person: np.ndarray  # true person of the row, -1 if nobody of the base
    has_reference: np.ndarray  # the row names its customer (key or identifier)
    line: np.ndarray  # 1-based physical line where the record starts
    dirt: DirtLog
    extra_counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Known:
    """What the marketing platforms know of each person (from the profile silos)."""

    mail: pa.Array  # the marketing e-mail as written in the silo, null if unknown
    mail_ok: np.ndarray  # deliverable (no typo)
    mail_from: np.ndarray  # when the address became known
    mobile_known: np.ndarray


# --- generic writers ------------------------------------------------------------------------

@dataclass
class CsvEdit:
    row: int
    action: str  # "drop_last", "extra", "truncate"
    column: int = 0


def _substitute(values: pa.Array, rows: Sequence[int], new: Sequence[str]) -> pa.Array:
    if not rows:
        return values
    index = np.arange(len(values), dtype=np.int64)
    index[np.asarray(rows)] = len(values) + np.arange(len(rows))
    return pa.concat_arrays([values.cast(pa.string()), pa.array(list(new), pa.string())]).take(
        pa.array(index))


def write_csv(path: Path, header: Sequence[str], fields: list[pa.Array], *, delimiter: str,
              text_columns: set[int], eol: str = "\n", encoding: str = "utf-8",
              bom: bool = False, edits: Sequence[CsvEdit] = ()) -> np.ndarray:
    """Write a CSV file; returns the 1-based line where each record starts."""
    n = len(fields[0]) if fields else 0
    path.parent.mkdir(parents=True, exist_ok=True)
    by_row = {e.row: e for e in edits}
    starts = np.zeros(n, dtype=np.int64)
    line_no = 2
    enc = "cp1252" if encoding == "cp1252" else "utf-8"
    with path.open("wb") as fh:
        head = ("\ufeff" if bom else "") + delimiter.join(header) + eol
        fh.write(head.encode(enc))
        for a in range(0, n, CHUNK):
            b = min(n, a + CHUNK)
            cols = [csv_field(f.slice(a, b - a), delimiter) if i in text_columns
                    else pc.fill_null(f.slice(a, b - a), "") for i, f in enumerate(fields)]
            lines = cat(pc.binary_join_element_wise(*cols, delimiter), eol)
            rows = [r for r in by_row if a <= r < b]
            if rows:
                new = [_edited_line(by_row[r], [c[r - a].as_py() for c in cols], delimiter, eol)
                       for r in rows]
                lines = _substitute(lines, [r - a for r in rows], new)
            breaks = pc.count_substring(lines, "\n").to_numpy(zero_copy_only=False)
            cum = np.cumsum(breaks)
            starts[a:b] = line_no + np.r_[0, cum[:-1]]
            line_no += int(cum[-1]) if len(cum) else 0
            write_lines(fh, lines, enc)
    return starts


def _edited_line(edit: CsvEdit, values: list[str], delimiter: str, eol: str) -> str:
    if edit.action == "drop_last":
        return delimiter.join(values[:-1]) + eol
    if edit.action == "extra":
        v = values[edit.column]
        cut = v.find(" ") if " " in v else len(v) // 2
        values = [*values[: edit.column], v[:cut] + delimiter + v[cut:],
                  *values[edit.column + 1:]]
        return delimiter.join(values) + eol
    # "truncate": an export that stopped inside a quoted field
    third = values[2].strip('"')
    return delimiter.join(values[:2]) + delimiter + '"' + third[: max(1, len(third) // 2)]


def write_jsonl(path: Path, objects: pa.Array,
                edits: dict[int, Callable[[str], str]]) -> np.ndarray:
    """Write JSON lines (``objects`` without newline); ``edits`` replaces whole lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(objects)
    with path.open("wb") as fh:
        for a in range(0, n, CHUNK):
            b = min(n, a + CHUNK)
            lines = cat(objects.slice(a, b - a), "\n")
            rows = sorted(r for r in edits if a <= r < b)
            if rows:
                new = [edits[r](lines[r - a].as_py()) for r in rows]
                lines = _substitute(lines, [r - a for r in rows], new)
            write_lines(fh, lines)
    return np.arange(1, n + 1, dtype=np.int64)


def _value_edits(rng: np.random.Generator, source: str, n_rows: int, kind: str,
                 exclude: set[int], bad_values: Sequence[str]) -> tuple[list[int], list[str]]:
    rows = pick_rows(rng, n_rows, malformed_count(source, kind, n_rows), exclude)
    exclude.update(rows)
    return rows, [bad_values[i % len(bad_values)] for i in range(len(rows))]


_JSON_BAD_ISO = ['"' + v + '"' for v in BAD_DATES["iso"]]  # as JSON strings


def _spoil(rng: np.random.Generator, source: str, kind: str, values: pa.Array,
           bad_values: Sequence[str], exclude: set[int], log: DirtLog, detail: str) -> pa.Array:
    """``values`` with the rows picked for ``kind`` made bad, logged as malformed ``detail``."""
    rows, bad = _value_edits(rng, source, len(values), kind, exclude, bad_values)
    log.add(np.array(rows, dtype=np.int64), kind, malformed=True, detail=detail)
    return _substitute(values, rows, bad)


def _shape_edits(rng: np.random.Generator, source: str, n_rows: int, exclude: set[int],
                 log: DirtLog, extra_column: int | None = None,
                 last_row_reserved: bool = False) -> list[CsvEdit]:
    edits: list[CsvEdit] = []
    if last_row_reserved and malformed_count(source, "unclosed_quote", n_rows):
        edits.append(CsvEdit(n_rows - 1, "truncate"))
        exclude.add(n_rows - 1)
        log.add(np.array([n_rows - 1]), "unclosed_quote", malformed=True)
    rows = pick_rows(rng, n_rows, malformed_count(source, "missing_column", n_rows), exclude)
    exclude.update(rows)
    edits += [CsvEdit(r, "drop_last") for r in rows]
    log.add(np.array(rows, dtype=np.int64), "missing_column", malformed=True)
    if extra_column is not None:
        rows = pick_rows(rng, n_rows, malformed_count(source, "extra_column", n_rows), exclude)
        exclude.update(rows)
        edits += [CsvEdit(r, "extra", extra_column) for r in rows]
        log.add(np.array(rows, dtype=np.int64), "extra_column", malformed=True,
                detail=f"column {extra_column}")
    return edits


def _rank_ids(prefix: str, n: int, width: int, first: int = 1) -> pa.Array:
    return cat(prefix, int_str(np.arange(first, first + n), width))


def _rand_ids(prefix: str, n: int, width: int, a: int, b: int) -> pa.Array:
    mod = 10**width
    return cat(prefix, int_str((np.arange(n, dtype=np.int64) * a + b) % mod, width))


# --- the silos ------------------------------------------------------------------------------

@dataclass
class Context:
    directory: Path
    people: People
    purchases: Purchases
    catalogue: Catalogue
    tl: Timeline
    stamp: str  # yyyymmdd of the end date, used in file names
    crm_id: pa.Array | None = None  # primary CRM id per person (null if not in CRM)
    web_account: pa.Array | None = None  # main account id per person
    web_email: pa.Array | None = None
    second_account: pa.Array | None = None
    second_email: pa.Array | None = None
    second_created: np.ndarray | None = None
    crm_mail: pa.Array | None = None
    crm_mail_ok: np.ndarray | None = None
    web_mail_ok: np.ndarray | None = None
    mobile_known: np.ndarray | None = None
    replacement_time: np.ndarray | None = None  # loyalty card replaced at (or -1)
    replacement_card: np.ndarray | None = None
    moves: Moves | None = None
    web_plan: WebAccountsPlan | None = None
    last_order: np.ndarray | None = None  # (main, second account) x person: last order or -1

    def path(self, rel: str) -> Path:
        return self.directory / rel


def _street_type(rng: np.random.Generator, street_type: np.ndarray, mask: np.ndarray,
                 rates: dict[str, float], log: DirtLog) -> pa.Array:
    """Street types as written, abbreviated (``av.``) at ``address_abbreviated`` where
    ``mask``."""
    types = list(names.STREET_TYPES)
    abbrev = mask & (rng.random(len(street_type)) < rates["address_abbreviated"])
    log.add(abbrev, "address_abbreviated")
    return lookup(types + [STREET_SHORT[t] for t in types],
                  street_type + np.where(abbrev, len(types), 0))


def _postcode(rng: np.random.Generator, city: np.ndarray, mask: np.ndarray,
              rates: dict[str, float], log: DirtLog) -> pa.Array:
    """The cities' postcodes, the leading zero dropped at ``postcode_leading_zero`` where
    ``mask`` (a spreadsheet read them as numbers)."""
    postcode = lookup([c[1] for c in names.CITIES], city)
    zero = mask & pc.starts_with(postcode, "0").to_numpy(zero_copy_only=False) & (
        rng.random(len(city)) < rates["postcode_leading_zero"])
    log.add(zero, "postcode_leading_zero")
    return pc.if_else(pa.array(zero), pc.utf8_slice_codeunits(postcode, 1), postcode)


def write_crm(ctx: Context, rng: np.random.Generator) -> SiloOut:
    people, tl = ctx.people, ctx.tl
    rates = DIRT_RATES["crm"]
    base = np.flatnonzero(people.in_crm)
    dup = base[rng.random(len(base)) < rates["duplicate"]]
    person = np.concatenate([base, dup])
    is_dup = np.r_[np.zeros(len(base), bool), np.ones(len(dup), bool)]
    created = np.concatenate([
        people.acquired[base] + rng.integers(0, 1800, len(base)),
        people.acquired[dup] + rng.integers(20 * DAY, 500 * DAY, len(dup)),
    ])
    keep = created < tl.end
    person, is_dup, created = person[keep], is_dup[keep], created[keep]
    order = np.argsort(created, kind="stable")
    person, is_dup, created = person[order], is_dup[order], created[order]
    k = len(person)
    log = DirtLog()
    log.add(is_dup, "duplicate")
    ids = _rank_ids("C", k, 7, first=10001)
    primary = np.full(people.n, -1, dtype=np.int64)
    primary[person[~is_dup]] = np.flatnonzero(~is_dup)
    ctx.crm_id = lookup(ids, primary)

    female = people.female[person]
    civ = where(female, where(rng.random(k) < 0.03, "Mlle", "Mme"), "M.")
    civ = null_where(rng.random(k) < 0.05, civ)
    force = is_dup & (rng.random(k) < 0.6)
    first, last = render_names(rng, people, person, rates, log, force_typo=force)
    email, mail_ok = render_emails(rng, people, person, rates, log)
    use_land = (people.landline[person] > 0) & (rng.random(k) < 0.35)
    number = np.where(use_land, people.landline[person], people.mobile[person])
    phone = render_phones(rng, number, [0.45, 0.25, 0.15, 0.10, 0.05, 0, 0],
                          rates["phone_missing"], log)
    phone_present = ~pc.is_null(phone).to_numpy(zero_copy_only=False)
    birth = datetime_str(people.birth_day[person] * DAY, "%d/%m/%Y")
    no_birth = rng.random(k) < rates["birth_date_missing"]
    birth = null_where(no_birth, birth)
    log.add(no_birth, "birth_date_missing")
    stype = _street_type(rng, people.street_type[person], np.ones(k, dtype=bool), rates, log)
    address = cat(int_str(people.street_no[person]), " ", stype, " ",
                  lookup(names.STREET_NAMES, people.street[person]))
    address = null_where(rng.random(k) < 0.03, address)
    city_i = people.city[person]
    postcode = _postcode(rng, city_i, np.ones(k, dtype=bool), rates, log)
    city = lookup([c[0] for c in names.CITIES], city_i)
    city = pc.if_else(pa.array(rng.random(k) < 0.3), pc.utf8_upper(city), city)
    country = lookup(["France", "FR", ""], rng.choice(3, size=k, p=[0.95, 0.04, 0.01]))
    created_s = datetime_str(created, "%d/%m/%Y", "%H:%M:%S")
    value_rank = people.mean_spend[person] * people.lam[person]
    q = np.quantile(value_rank, [0.5, 0.85]) if k else np.zeros(2)
    tier = np.where(value_rank >= q[1], 0, np.where(value_rank >= q[0], 1, 2))
    tier = np.where(rng.random(k) < 0.1, 3, tier)
    segment = lookup(["OR", "ARGENT", "BRONZE", ""], tier)
    optin = where(rng.random(k) < 0.4, "O", "N")

    exclude: set[int] = set()
    n_bad = malformed_count("crm", "bad_date", k)
    bad_rows = pick_rows(rng, k - 1, n_bad, exclude)
    exclude.update(bad_rows)
    b_birth, b_created = bad_rows[: max(0, n_bad - 1)], bad_rows[max(0, n_bad - 1):]
    birth = _substitute(birth, b_birth, [BAD_DATES["dmy"][i % 4] for i in range(len(b_birth))])
    created_s = _substitute(created_s, b_created, BAD_DATES["dmy_hms"][: len(b_created)])
    log.add(np.array(b_birth, dtype=np.int64), "bad_date", malformed=True,
            detail="date_naissance")
    log.add(np.array(b_created, dtype=np.int64), "bad_date", malformed=True,
            detail="date_creation")
    exclude.add(k - 1)
    edits = _shape_edits(rng, "crm", k, exclude, log, extra_column=7, last_row_reserved=True)
    rel = f"exports/crm/clients_{ctx.stamp}.csv"
    header = ["id_client", "civilite", "prenom", "nom", "email", "telephone", "date_naissance",
              "adresse", "code_postal", "ville", "pays", "date_creation", "segment_crm",
              "optin_courrier"]
    fields = [ids, civ, first, last, email, phone, birth, address, postcode, city, country,
              created_s, segment, optin]
    lines = write_csv(ctx.path(rel), header, fields, delimiter=";", text_columns={2, 3, 7, 9},
                      eol="\r\n", encoding="cp1252", edits=edits)

    # the marketing platforms know the e-mail of the primary record
    prim_rows = primary[primary >= 0]
    ctx.crm_mail = lookup(email, primary)
    ok = np.zeros(people.n, dtype=bool)
    ok[person[prim_rows]] = mail_ok[prim_rows]
    ctx.crm_mail_ok = ok
    mk = np.zeros(people.n, dtype=bool)
    mk[person[phone_present & ~use_land]] = True
    ctx.mobile_known = mk
    return SiloOut("crm", rel, k, ids, person, np.ones(k, bool), lines, log)


@dataclass
class Moves:
    """People who moved during the observed period: their address before ``moved_at``."""

    moved_at: np.ndarray  # time of the move, -1 if the person did not move
    street_no: np.ndarray
    street_type: np.ndarray
    street: np.ndarray
    city: np.ndarray


@dataclass
class WebAccountsPlan:
    """The web accounts file before its delivery addresses (known once the orders are)."""

    person: np.ndarray
    is_dup: np.ndarray
    fields: list[tuple[str, pa.Array]]
    broken: list[int]


def _weighted_cities(rng: np.random.Generator, size: int) -> np.ndarray:
    w = np.array([c[2] for c in names.CITIES], dtype=np.float64)
    return rng.choice(len(names.CITIES), size=size, p=w / w.sum())


def _random_addresses(rng: np.random.Generator, home_city: np.ndarray,
                      same_city: float) -> tuple[np.ndarray, ...]:
    """Street number, type, name and city of random addresses, in ``home_city`` with
    probability ``same_city``, else in a city drawn by population."""
    k = len(home_city)
    city = np.where(rng.random(k) < same_city, home_city, _weighted_cities(rng, k))
    return (np.minimum(1 + rng.geometric(0.04, k), 220),
            rng.integers(0, len(names.STREET_TYPES), k),
            rng.integers(0, len(names.STREET_NAMES), k), city)


def _other_street(address: tuple[np.ndarray, ...], *avoid: tuple[np.ndarray, ...]) -> np.ndarray:
    """Street indexes of ``address`` moved to the next street where the whole address equals
    one of ``avoid`` (so that it is never one of those)."""
    street = address[2].copy()
    for _ in range(len(avoid) + 1):
        same = np.zeros(len(street), dtype=bool)
        for a in avoid:
            same |= (address[0] == a[0]) & (address[1] == a[1]) & (street == a[2]) \
                & (address[3] == a[3])
        if not same.any():
            break
        street[same] = (street[same] + 1) % len(names.STREET_NAMES)
    return street


def plan_moves(ctx: Context, rng: np.random.Generator) -> None:
    """Some households move during the observed period (half of them within their city)."""
    people, tl = ctx.people, ctx.tl
    n = people.n
    moved = rng.random(n) < MOVED_SHARE
    at = rng.integers(tl.start, tl.end, n)
    old = _random_addresses(rng, people.city, 0.5)
    current = (people.street_no, people.street_type, people.street, people.city)
    old = (*old[:2], _other_street(old, current), old[3])
    h = people.household  # a household moves together (members copy their head)
    ctx.moves = Moves(moved_at=np.where(moved, at, -1)[h], street_no=old[0][h],
                      street_type=old[1][h], street=old[2][h], city=old[3][h])


_STREET_TYPO = pa.array(list(names.STREET_NAMES) + [
    typo(s, v) for v in range(3) for s in names.STREET_NAMES])


def write_web_accounts(ctx: Context, rng: np.random.Generator, out: SiloOut) -> None:
    """Write the accounts file planned by :func:`plan_web_accounts` with each account's default
    delivery address: the last one entered at checkout (the address the person lived at then,
    sometimes a workplace's or a relative's), none for an account that never ordered."""
    people, plan, moves = ctx.people, ctx.web_plan, ctx.moves
    assert plan is not None and moves is not None and ctx.last_order is not None
    person, is_dup = plan.person, plan.is_dup
    k = len(person)
    rates = DIRT_RATES["web_accounts"]
    log = out.dirt
    last = ctx.last_order[is_dup.astype(np.int64), person]
    has = last >= 0
    current = tuple(a[person] for a in (people.street_no, people.street_type, people.street,
                                        people.city))
    before = tuple(a[person] for a in (moves.street_no, moves.street_type, moves.street,
                                       moves.city))
    u = rng.random(k)
    work = has & (u < rates["address_work"])
    relative = has & ~work & (u < rates["address_work"] + rates["address_relative"])
    previous = has & ~work & ~relative & (moves.moved_at[person] > last)
    w_addr = _random_addresses(rng, current[3], 0.6)
    # a relative's address: another household's of the base (a random one if there is none)
    other = rng.integers(0, people.n, k)
    r_addr = tuple(np.where(people.household[other] != people.household[person],
                            a[other], b) for a, b in zip(
        (people.street_no, people.street_type, people.street, people.city),
        _random_addresses(rng, current[3], 0.3), strict=True))
    addr = tuple(np.select([work, relative, previous], [w, r, b], c) for w, r, b, c in zip(
        w_addr, r_addr, before, current, strict=True))
    away = work | relative
    addr = (*addr[:2], np.where(away, _other_street(addr, current, before), addr[2]), addr[3])
    log.add(previous, "address_previous")
    log.add(work, "address_work")
    log.add(relative, "address_relative")

    stype = _street_type(rng, addr[1], has, rates, log)
    mistyped = has & (rng.random(k) < rates["address_typo"])
    variant = rng.integers(0, 3, k)
    street = lookup(_STREET_TYPO, addr[2] + np.where(mistyped, 1 + variant, 0)
                    * len(names.STREET_NAMES))
    log.add(mistyped, "address_typo")
    line = cat(int_str(addr[0]), " ", stype, " ", street)
    city = lookup([c[0] for c in names.CITIES], addr[3])
    plain = has & (rng.random(k) < rates["address_accents_dropped"])
    line = pc.if_else(pa.array(plain), no_accents(line), line)
    city = pc.if_else(pa.array(plain), no_accents(city), city)
    log.add(plain, "address_accents_dropped")
    lower = has & (rng.random(k) < rates["address_lower"])
    line = pc.if_else(pa.array(lower), pc.utf8_lower(line), line)
    log.add(lower, "address_lower")
    case = rng.random(k)
    upper_city = has & (case < rates["city_case"] * 2 / 3)
    lower_city = has & ~upper_city & (case < rates["city_case"])
    city = pc.if_else(pa.array(upper_city), pc.utf8_upper(city),
                      pc.if_else(pa.array(lower_city), pc.utf8_lower(city), city))
    log.add(upper_city | lower_city, "city_case")
    postcode = _postcode(rng, addr[3], has, rates, log)
    country = lookup(["France", "FR"], (rng.random(k) < 0.1).astype(np.int64))
    delivery = json_objects([(name, json_str(null_where(~has, value))) for name, value in (
        ("line1", line), ("postcode", postcode), ("city", city), ("country", country))])
    objects = json_objects([*plan.fields, ("delivery_address", delivery)])
    write_jsonl(ctx.path(out.path), objects, {r: break_json for r in plan.broken})


def plan_web_accounts(ctx: Context, rng: np.random.Generator) -> SiloOut:
    """The web accounts (the file is written by :func:`write_web_accounts`)."""
    people, tl = ctx.people, ctx.tl
    rates = DIRT_RATES["web_accounts"]
    base = np.flatnonzero(people.has_web)
    second = base[rng.random(len(base)) < SECOND_WEB_ACCOUNT]
    sec_created = people.web_created[second] + rng.integers(30 * DAY, 600 * DAY, len(second))
    second, sec_created = second[sec_created < tl.end], sec_created[sec_created < tl.end]
    person = np.concatenate([base, second])
    is_dup = np.r_[np.zeros(len(base), bool), np.ones(len(second), bool)]
    created = np.concatenate([people.web_created[base], sec_created])
    order = np.argsort(created, kind="stable")
    person, is_dup, created = person[order], is_dup[order], created[order]
    k = len(person)
    log = DirtLog()
    log.add(is_dup, "duplicate")
    ids = _rand_ids("W", k, 8, 48_271_171, 10_000_019)
    first, last = render_names(rng, people, person, rates, log)
    email_log = DirtLog()
    email, mail_ok = render_emails(rng, people, person, rates, email_log)
    log.merge(email_log, ~is_dup)
    # second accounts use another address (a work or new address)
    local = people.email_local.take(pa.array(person))
    other = cat(local, lookup([".pro@gmail.com", "@outlook.fr", "2@gmail.com", "@yahoo.fr"],
                              rng.integers(0, 4, k)))
    email = pc.if_else(pa.array(is_dup), other, email)
    mail_ok = mail_ok | is_dup
    log.add(is_dup, "email_other")
    phone = render_phones(rng, people.mobile[person], [0.2, 0.5, 0, 0, 0.3, 0, 0],
                          rates["phone_missing"], log)
    newsletter = where(np.where(is_dup, rng.random(k) < 0.5, people.email_consent0[person]),
                       "true", "false")
    handle = people.handle.take(pa.array(person))
    handle = null_where(is_dup, handle)
    device = people.device.take(pa.array(person))
    device = null_where(is_dup & (rng.random(k) < 0.5), device)

    main_row = np.full(people.n, -1, dtype=np.int64)
    main_row[person[~is_dup]] = np.flatnonzero(~is_dup)
    sec_row = np.full(people.n, -1, dtype=np.int64)
    sec_row[person[is_dup]] = np.flatnonzero(is_dup)
    ctx.web_account, ctx.web_email = lookup(ids, main_row), lookup(email, main_row)
    ctx.second_account, ctx.second_email = lookup(ids, sec_row), lookup(email, sec_row)
    sc = np.full(people.n, -1, dtype=np.int64)
    sc[person[is_dup]] = created[is_dup]
    ctx.second_created = sc
    wok = np.zeros(people.n, dtype=bool)
    wok[person[~is_dup]] = mail_ok[~is_dup]
    ctx.web_mail_ok = wok
    if ctx.mobile_known is not None:
        present = ~pc.is_null(phone).to_numpy(zero_copy_only=False)
        ctx.mobile_known[person[present]] = True

    created_s = iso_local(created)
    exclude: set[int] = set()
    created_s = _spoil(rng, "web_accounts", "bad_date", created_s, BAD_DATES["iso"], exclude, log,
                       "created_at")
    broken = pick_rows(rng, k, malformed_count("web_accounts", "broken_json", k), exclude)
    log.add(np.array(broken, dtype=np.int64), "broken_json", malformed=True)
    ctx.web_plan = WebAccountsPlan(person, is_dup, [
        ("account_id", json_str(ids)), ("email", json_str(email)),
        ("first_name", json_str(first)), ("last_name", json_str(last)),
        ("phone", json_str(phone)), ("created_at", json_str(created_s)),
        ("newsletter", newsletter), ("instagram", json_str(cat("@", handle))),
        ("device_id", json_str(device)),
    ], broken)
    rel = "exports/web/accounts.jsonl"
    lines = np.arange(1, k + 1, dtype=np.int64)
    return SiloOut("web_accounts", rel, k, ids, person, np.ones(k, bool), lines, log)


def write_web_orders(ctx: Context, rng: np.random.Generator) -> SiloOut:
    pu, tl, catalogue = ctx.purchases, ctx.tl, ctx.catalogue
    assert ctx.web_account is not None and ctx.web_email is not None
    assert ctx.second_account is not None and ctx.second_email is not None
    assert ctx.second_created is not None
    web_idx = np.flatnonzero(pu.web)
    pos_in_web = np.full(len(pu.person), -1, dtype=np.int64)
    pos_in_web[web_idx] = np.arange(len(web_idx))
    # items JSON grouped per web purchase (items are contiguous per purchase)
    item_json = json_objects([
        ("sku", json_str(catalogue.sku.take(pa.array(pu.item_product)))),
        ("qty", int_str(pu.item_qty)),
        ("unit_price", money(pu.item_unit_cents)),
    ])
    sizes = np.bincount(pos_in_web[pu.item_purchase], minlength=len(web_idx))
    items_per_web = cat("[", group_join(item_json, sizes, ","), "]")

    obs = web_idx[pu.time[web_idx] < tl.end]
    cancelled_src = obs[rng.random(len(obs)) < CANCELLED_ORDER_SHARE]
    purchase = np.concatenate([obs, cancelled_src])
    is_cancel = np.r_[np.zeros(len(obs), bool), np.ones(len(cancelled_src), bool)]
    time = np.concatenate([pu.time[obs],
                           pu.time[cancelled_src] - rng.integers(300, 3600, len(cancelled_src))])
    order = np.lexsort((is_cancel, time))
    purchase, is_cancel, time = purchase[order], is_cancel[order], time[order]
    k = len(purchase)
    person = pu.person[purchase]
    use_second = (ctx.second_created[person] >= 0) & (time >= ctx.second_created[person]) \
        & (rng.random(k) < 0.5)
    account = pc.if_else(pa.array(use_second), ctx.second_account.take(pa.array(person)),
                         ctx.web_account.take(pa.array(person)))
    email = pc.if_else(pa.array(use_second), ctx.second_email.take(pa.array(person)),
                       ctx.web_email.take(pa.array(person)))
    last = np.full((2, ctx.people.n), -1, dtype=np.int64)
    np.maximum.at(last, (use_second.astype(np.int64), person), time)
    ctx.last_order = last
    status = where(is_cancel, "cancelled", where(rng.random(k) < RETURNED_ORDER_SHARE,
                                                 "returned", "paid"))
    ids = _rank_ids("CMD", k, 9, first=100_000_001)
    total = money(pu.amount_cents[purchase])
    ordered_at = json_str(iso_local(time))
    items = items_per_web.take(pa.array(pos_in_web[purchase]))
    log = DirtLog()
    exclude: set[int] = set()
    total = _spoil(rng, "web_orders", "bad_number", total, ['"59,90 €"', '"N/A"'], exclude, log,
                   "total")
    ordered_at = _spoil(rng, "web_orders", "bad_date", ordered_at, _JSON_BAD_ISO, exclude, log,
                        "ordered_at")
    broken = pick_rows(rng, k, malformed_count("web_orders", "broken_json", k), exclude)
    log.add(np.array(broken, dtype=np.int64), "broken_json", malformed=True)
    objects = json_objects([
        ("order_id", json_str(ids)), ("account_id", json_str(account)),
        ("email", json_str(email)), ("ordered_at", ordered_at), ("total", total),
        ("currency", json_str(lookup(["EUR"], np.zeros(k, np.int64)))),
        ("status", json_str(status)), ("channel", json_str(lookup(["web"], np.zeros(k, int)))),
        ("items", items),
    ])
    rel = "exports/web/orders.jsonl"
    lines = write_jsonl(ctx.path(rel), objects, {r: break_json for r in broken})
    n_items = int(sizes[pos_in_web[purchase]].sum())
    return SiloOut("web_orders", rel, k, ids, person, np.ones(k, bool), lines, log,
                   extra_counts={"web_order_items": n_items,
                                 "web_orders_cancelled": int(is_cancel.sum())})


def write_store_tickets(ctx: Context, rng: np.random.Generator) -> SiloOut:
    people, pu, tl = ctx.people, ctx.purchases, ctx.tl
    idx = np.flatnonzero(~pu.web & (pu.time < tl.end))
    order = np.argsort(pu.time[idx], kind="stable")
    idx = idx[order]
    k = len(idx)
    person = pu.person[idx]
    time = pu.time[idx]
    store = pu.store[idx]
    day = time // DAY
    # ticket number: store, date and sequence within the store's day
    key = store.astype(np.int64) * 1_000_000 + day
    o = np.lexsort((time, key))
    ks = key[o]
    first = np.r_[True, ks[1:] != ks[:-1]]
    grp_start = np.maximum.accumulate(np.where(first, np.arange(k), 0))
    seq = np.empty(k, dtype=np.int64)
    seq[o] = np.arange(k) - grp_start + 1
    store_code = cat("M", int_str(store + 1, 2))
    ids = cat(store_code, "-", datetime_str(day * DAY, "%Y%m%d"), "-", int_str(seq, 4))
    # loyalty cards: lost cards are replaced at some point
    log = DirtLog()
    member = people.loyalty_member[person]
    forgot = member & (rng.random(k) < DIRT_RATES["store_tickets"]["card_forgotten"])
    log.add(forgot, "card_forgotten")
    card = int_str(people.card[person], 13)
    rep_time, rep_card = ctx.replacement_time, ctx.replacement_card
    if rep_time is not None and rep_card is not None:
        use_new = (rep_time[person] >= 0) & (time >= rep_time[person])
        card = pc.if_else(pa.array(use_new), int_str(rep_card[person], 13), card)
    card = null_where(~member | forgot, card)
    amount = money(pu.amount_cents[idx], ",")
    when = datetime_str(time, "%d/%m/%Y", "%H:%M")
    n_art = int_str(pu.n_items[idx])
    exclude: set[int] = set()
    amount = _spoil(rng, "store_tickets", "bad_number", amount, BAD_NUMBERS, exclude, log,
                    "montant_ttc")
    when = _spoil(rng, "store_tickets", "bad_date", when, BAD_DATES["dmy_hm"], exclude, log,
                  "date_heure")
    edits = _shape_edits(rng, "store_tickets", k, exclude, log)
    rel = f"exports/stores/tickets_{ctx.stamp}.csv"
    header = ["ticket", "magasin", "date_heure", "carte_fidelite", "montant_ttc", "nb_articles",
              "canal"]
    fields = [ids, store_code, when, card, amount, n_art, lookup(["store"], np.zeros(k, int))]
    lines = write_csv(ctx.path(rel), header, fields, delimiter=";", text_columns=set(),
                      edits=edits)
    has_ref = member & ~forgot
    return SiloOut("store_tickets", rel, k, ids, person, has_ref, lines, log,
                   extra_counts={"store_tickets_anonymous": int((~has_ref).sum())})


def plan_card_replacements(ctx: Context, rng: np.random.Generator) -> None:
    """Some members lose their card and get a new number (a loyalty duplicate)."""
    people, tl = ctx.people, ctx.tl
    n = people.n
    lost = people.loyalty_member & (rng.random(n) < DIRT_RATES["loyalty"]["duplicate"])
    t = people.acquired + (rng.random(n) * (tl.end - people.acquired)).astype(np.int64)
    ctx.replacement_time = np.where(lost, t, -1)
    # the same bijection as the first cards, on indexes n..2n-1: never an existing number
    ctx.replacement_card = 2_990_000_000_000 + (
        (np.arange(n, dtype=np.int64) + n) * 2_654_435_761 + 97) % 1_000_000_000


def write_loyalty(ctx: Context, rng: np.random.Generator) -> SiloOut:
    people = ctx.people
    rates = DIRT_RATES["loyalty"]
    base = np.flatnonzero(people.loyalty_member)
    rep_time, rep_card = ctx.replacement_time, ctx.replacement_card
    assert rep_time is not None and rep_card is not None
    rep = base[rep_time[base] >= 0]
    person = np.concatenate([base, rep])
    is_dup = np.r_[np.zeros(len(base), bool), np.ones(len(rep), bool)]
    enrolled = np.concatenate([people.acquired[base], rep_time[rep]])
    card_no = np.concatenate([people.card[base], rep_card[rep]])
    order = np.argsort(enrolled, kind="stable")
    person, is_dup, enrolled, card_no = person[order], is_dup[order], enrolled[order], \
        card_no[order]
    k = len(person)
    log = DirtLog()
    log.add(is_dup, "duplicate")
    ids = int_str(card_no, 13)
    first, last = render_names(rng, people, person, rates, log, system_upper=True)
    birth = datetime_str(people.birth_day[person] * DAY, "%Y-%m-%d")
    no_birth = rng.random(k) < rates["birth_date_missing"]
    birth = null_where(no_birth, birth)
    log.add(no_birth, "birth_date_missing")
    phone = render_phones(rng, people.mobile[person], [0.1, 0.9, 0, 0, 0, 0, 0],
                          rates["phone_missing"], log)
    if ctx.mobile_known is not None:
        ctx.mobile_known[person[~pc.is_null(phone).to_numpy(zero_copy_only=False)]] = True
    city_i = people.city[person]
    postcode = lookup([c[1] for c in names.CITIES], city_i)
    city = pc.utf8_upper(no_accents(lookup([c[0] for c in names.CITIES], city_i)))
    enrolled_s = datetime_str(enrolled, "%Y-%m-%d")
    assert ctx.crm_id is not None
    client = ctx.crm_id.take(pa.array(person))
    in_crm = ~pc.is_null(client).to_numpy(zero_copy_only=False)
    drop = in_crm & (rng.random(k) < rates["customer_number_missing"])
    client = null_where(drop, client)
    log.add(drop, "customer_number_missing")
    exclude: set[int] = set()
    birth = _spoil(rng, "loyalty", "bad_date", birth, BAD_DATES["ymd"], exclude, log, "birth_date")
    edits = _shape_edits(rng, "loyalty", k, exclude, log)
    rel = "exports/loyalty/members.csv"
    header = ["card_number", "first_name", "last_name", "birth_date", "phone", "postcode",
              "city", "enrolled_on", "client_id"]
    fields = [ids, first, last, birth, phone, postcode, city, enrolled_s, client]
    lines = write_csv(ctx.path(rel), header, fields, delimiter=",", text_columns={1, 2, 6},
                      edits=edits)
    return SiloOut("loyalty", rel, k, ids, person, np.ones(k, bool), lines, log)


def write_service(ctx: Context, rng: np.random.Generator, ev: Events) -> SiloOut:
    people = ctx.people
    rates = DIRT_RATES["service"]
    k = len(ev.person)
    person = ev.person
    log = DirtLog()
    ids = _rank_ids("SR-", k, 7, first=1_000_001)
    channel = lookup(["phone", "email", "chat", "store"], ev.extra)
    voice = (ev.extra == 0) | (ev.extra == 3)
    use_land = (people.landline[person] > 0) & (rng.random(k) < 0.2)
    number = np.where(use_land, people.landline[person], people.mobile[person])
    phone = render_phones(rng, number, [0.3, 0.3, 0, 0, 0.3, 0, 0.1], 0.0, DirtLog())
    email_log = DirtLog()
    email, _ok = render_emails(rng, people, person, {"email_typo": rates["email_typo"]},
                               email_log)
    none = rng.random(k) < rates["no_identifier"]
    no_email = (voice & (rng.random(k) < 0.8)) | none
    other = (rng.random(k) < rates["email_other"]) & ~no_email
    email = pc.if_else(pa.array(other),
                       cat(people.email_local.take(pa.array(person)), "@entreprise-",
                           int_str(person % 97), ".fr"), email)
    log.merge(email_log, ~no_email & ~other)
    log.add(other, "email_other")
    log.add(none, "no_identifier")
    phone = null_where(~voice | none, phone)
    email = null_where(no_email, email)
    category = lookup(SERVICE_CATEGORIES, ev.kind)
    texts_fr, texts_en = names.SERVICE_TEXTS_FR, names.SERVICE_TEXTS_EN
    flat = [t for group in texts_fr for t in group] + [t for group in texts_en for t in group]
    off_fr = np.cumsum([0] + [len(g) for g in texts_fr])[:-1]
    len_fr = np.array([len(g) for g in texts_fr])
    off_en = sum(len(g) for g in texts_fr) + np.cumsum([0] + [len(g) for g in texts_en])[:-1]
    len_en = np.array([len(g) for g in texts_en])
    eng = people.english[person]
    r = rng.integers(0, 1 << 30, k)
    t_idx = np.where(eng, off_en[ev.kind] + r % len_en[ev.kind],
                     off_fr[ev.kind] + r % len_fr[ev.kind])
    text = lookup(flat, t_idx)
    opened = datetime_str(ev.time, "%Y-%m-%d", "%H:%M")
    exclude: set[int] = set()
    opened = _spoil(rng, "service", "bad_date", opened, BAD_DATES["ymd_hm"], exclude, log,
                    "opened_at")
    edits = _shape_edits(rng, "service", k, exclude, log)
    rel = "exports/service/tickets.csv"
    header = ["ticket_id", "opened_at", "channel", "caller_phone", "caller_email", "category",
              "text"]
    fields = [ids, opened, channel, phone, email, category, text]
    lines = write_csv(ctx.path(rel), header, fields, delimiter=",", text_columns={6},
                      bom=True, edits=edits)
    return SiloOut("service", rel, k, ids, person, ~none, lines, log)


def known_contacts(ctx: Context) -> Known:
    people = ctx.people
    assert ctx.web_email is not None and ctx.crm_mail is not None
    assert ctx.web_mail_ok is not None and ctx.crm_mail_ok is not None
    assert ctx.mobile_known is not None
    has_web = people.has_web
    mail = pc.if_else(pa.array(has_web), ctx.web_email, ctx.crm_mail)
    ok = np.where(has_web, ctx.web_mail_ok, ctx.crm_mail_ok)
    mail_from = np.where(has_web, people.web_created, people.acquired)
    return Known(mail=mail, mail_ok=ok, mail_from=mail_from, mobile_known=ctx.mobile_known)


EMAIL_EVENTS: tuple[str, ...] = ("sent", "open", "click", "unsubscribe", "bounce")
SMS_STATUSES: tuple[str, ...] = ("sent", "delivered", "clicked", "stop")


@dataclass
class Campaigns:
    email: Events  # kind: EMAIL_EVENTS index, extra: campaign index
    email_times: np.ndarray
    sms: Events  # kind: SMS_STATUSES index, extra: campaign index
    sms_times: np.ndarray
    email_unsub: np.ndarray  # time of unsubscription or -1
    sms_stop: np.ndarray


def simulate_campaigns(rng: np.random.Generator, people: People, tl: Timeline,
                       known: Known) -> Campaigns:
    """E-mail (every 14 days) and SMS (every 30 days) campaigns, sent to consenting people."""
    n = people.n
    has_mail = ~pc.is_null(known.mail).to_numpy(zero_copy_only=False)
    base = has_mail & people.email_consent0
    unsub = np.full(n, -1, dtype=np.int64)
    bounces = np.zeros(n, dtype=np.int64)
    e_times = np.arange(tl.start + 4 * DAY + 10 * 3600, tl.end, 14 * DAY)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for c, tc in enumerate(e_times):
        elig = base & (known.mail_from <= tc) & (unsub < 0) & (bounces < 3)
        r = np.flatnonzero(elig & (rng.random(n) < 0.25))
        ts = tc + rng.integers(0, 3600, len(r))
        parts.append((r, ts, np.zeros(len(r), np.int64), np.full(len(r), c)))
        ok = known.mail_ok[r]
        rb = r[~ok]
        bounces[rb] += 1
        parts.append((rb, ts[~ok] + 30, np.full(len(rb), 4), np.full(len(rb), c)))
        g, tg = r[ok], ts[ok]
        opened = rng.random(len(g)) < people.open_rate[g] * fade(people, g, tg)
        to = tg + np.minimum(rng.exponential(6 * 3600, len(g)), 3 * DAY).astype(np.int64) + 60
        parts.append((g[opened], to[opened], np.ones(int(opened.sum()), np.int64),
                      np.full(int(opened.sum()), c)))
        clicked = opened & (rng.random(len(g)) < 0.2 + 0.2 * people.promo[g])
        parts.append((g[clicked], to[clicked] + rng.integers(5, 600, int(clicked.sum())),
                      np.full(int(clicked.sum()), 2), np.full(int(clicked.sum()), c)))
        leave = tc >= people.email_unsub_at[g]
        tl_ = to[leave] + rng.integers(10, 900, int(leave.sum()))
        unsub[g[leave]] = tl_
        parts.append((g[leave], tl_, np.full(int(leave.sum()), 3), np.full(int(leave.sum()), c)))
    email = _events(parts, tl)

    sms_base = known.mobile_known & people.sms_consent0
    stop = np.full(n, -1, dtype=np.int64)
    s_times = np.arange(tl.start + 10 * DAY + 18 * 3600, tl.end, 30 * DAY)
    sparts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for c, tc in enumerate(s_times):
        elig = sms_base & (people.acquired <= tc) & (stop < 0)
        r = np.flatnonzero(elig & (rng.random(n) < 0.35))
        ts = tc + rng.integers(0, 1800, len(r))
        u = rng.random(len(r))
        status = np.where(u < 0.04, 0, np.where(
            u < 0.04 + 0.06 * fade(people, r, ts) * (0.5 + people.promo[r]), 2, 1))
        quit_ = tc >= people.sms_stop_at[r]
        status = np.where(quit_, 3, status)
        stop[r[quit_]] = ts[quit_] + 120
        sparts.append((r, ts, status, np.full(len(r), c)))
    sms = _events(sparts, tl)
    return Campaigns(email=email, email_times=e_times, sms=sms, sms_times=s_times,
                     email_unsub=np.where(unsub < tl.end, unsub, -1),
                     sms_stop=np.where(stop < tl.end, stop, -1))


def _events(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
            tl: Timeline) -> Events:
    if not parts:
        z = np.zeros(0, dtype=np.int64)
        return Events(z, z, z, z)
    p = np.concatenate([x[0] for x in parts]).astype(np.int64)
    t = np.concatenate([x[1] for x in parts]).astype(np.int64)
    k = np.concatenate([x[2] for x in parts]).astype(np.int64)
    c = np.concatenate([x[3] for x in parts]).astype(np.int64)
    ok = t < tl.end
    o = np.lexsort((k, t[ok]))
    p, t, k, c = p[ok], t[ok], k[ok], c[ok]
    return Events(p[o], t[o], k[o], c[o])


def write_email_events(ctx: Context, rng: np.random.Generator, camp: Campaigns,
                       known: Known) -> SiloOut:
    ev = camp.email
    k = len(ev.person)
    log = DirtLog()
    ids = _rand_ids("ev_", k, 10, 2_654_435_761, 1_234_567)
    email = known.mail.take(pa.array(ev.person))
    cdates = datetime_str(camp.email_times, "%Y%m%d")
    campaign = cat("NL-", cdates.take(pa.array(ev.extra)))
    kind = lookup(EMAIL_EVENTS, ev.kind)
    ts = iso_utc(ev.time)
    exclude: set[int] = set()
    ts = _spoil(rng, "email_events", "bad_date", ts, BAD_DATES["isoz"], exclude, log, "timestamp")
    edits = _shape_edits(rng, "email_events", k, exclude, log)
    rel = "exports/email/events.csv"
    header = ["event_id", "email", "campaign_id", "event", "timestamp", "canal"]
    fields = [ids, email, campaign, kind, ts, lookup(["email"], np.zeros(k, int))]
    lines = write_csv(ctx.path(rel), header, fields, delimiter=",", text_columns={1},
                      edits=edits)
    return SiloOut("email_events", rel, k, ids, ev.person, np.ones(k, bool), lines, log)


def write_sms_events(ctx: Context, rng: np.random.Generator, camp: Campaigns) -> SiloOut:
    ev = camp.sms
    k = len(ev.person)
    log = DirtLog()
    ids = _rand_ids("SM", k, 10, 1_103_515_245, 12_345)
    msisdn = cat("33", int_str(ctx.people.mobile[ev.person], 9))
    cdates = datetime_str(camp.sms_times, "%Y%m")
    campaign = cat("SMS-", cdates.take(pa.array(ev.extra)))
    status = lookup(SMS_STATUSES, ev.kind)
    sent = datetime_str(ev.time, "%Y-%m-%d", "%H:%M:%S")
    exclude: set[int] = set()
    sent = _spoil(rng, "sms_events", "bad_date", sent, BAD_DATES["ymd_hms"], exclude, log,
                  "sent_at")
    edits = _shape_edits(rng, "sms_events", k, exclude, log)
    rel = "exports/sms/sms_log.csv"
    header = ["msg_id", "msisdn", "campaign", "status", "sent_at", "canal"]
    fields = [ids, msisdn, campaign, status, sent, lookup(["sms"], np.zeros(k, int))]
    lines = write_csv(ctx.path(rel), header, fields, delimiter=",", text_columns=set(),
                      edits=edits)
    return SiloOut("sms_events", rel, k, ids, ev.person, np.ones(k, bool), lines, log)


def write_consents(ctx: Context, rng: np.random.Generator, camp: Campaigns,
                   known: Known) -> SiloOut:
    people = ctx.people
    has_mail = ~pc.is_null(known.mail).to_numpy(zero_copy_only=False)
    who = np.flatnonzero(has_mail)
    sms_who = np.flatnonzero(has_mail & known.mobile_known)
    uns = np.flatnonzero(camp.email_unsub >= 0)
    stp = np.flatnonzero((camp.sms_stop >= 0) & has_mail)
    person = np.concatenate([who, sms_who, uns, stp])
    channel = np.concatenate([np.zeros(len(who), np.int64), np.ones(len(sms_who), np.int64),
                              np.zeros(len(uns), np.int64), np.ones(len(stp), np.int64)])
    granted = np.concatenate([people.email_consent0[who], people.sms_consent0[sms_who],
                              np.zeros(len(uns) + len(stp), bool)])
    time = np.concatenate([known.mail_from[who], people.acquired[sms_who] + 600,
                           camp.email_unsub[uns], camp.sms_stop[stp]])
    o = np.lexsort((channel, time))
    person, channel, granted, time = person[o], channel[o], granted[o], time[o]
    k = len(person)
    log = DirtLog()
    email = known.mail.take(pa.array(person))
    gr = where(granted, "true", "false")
    when = datetime_str(time, "%Y-%m-%d", "%H:%M:%S")
    exclude: set[int] = set()
    gr = _spoil(rng, "consents", "bad_boolean", gr, ["peut-être", "oui?"], exclude, log, "granted")
    when = _spoil(rng, "consents", "bad_date", when, BAD_DATES["ymd_hms"], exclude, log,
                  "changed_at")
    rel = "exports/consents/consents.csv"
    header = ["consent_id", "email", "channel", "purpose", "granted", "changed_at"]
    ids = _rank_ids("CS", k, 8, first=1)
    fields = [ids, email, lookup(["email", "sms"], channel),
              lookup(["marketing"], np.zeros(k, int)), gr, when]
    lines = write_csv(ctx.path(rel), header, fields, delimiter=",", text_columns={1})
    return SiloOut("consents", rel, k, ids, person, np.ones(k, bool), lines, log)


def write_social(ctx: Context, rng: np.random.Generator, ev: Events) -> SiloOut:
    people = ctx.people
    k = len(ev.person)
    log = DirtLog()
    person = ev.person
    stranger = person < 0
    safe = np.where(stranger, 0, person)
    handle = people.handle.take(pa.array(safe))
    s_handle = cat(lookup(names.STRANGER_HANDLES, rng.integers(0, len(names.STRANGER_HANDLES),
                                                                k)),
                   int_str(rng.integers(1, 999, k)))
    handle = pc.if_else(pa.array(stranger), s_handle, handle)
    handle = cat("@", handle)
    platform = lookup(["instagram", "twitter", "facebook"], ev.extra)
    eng = np.where(stranger, rng.random(k) < 0.2, people.english[safe])
    neg = ev.kind == 1
    tables = [names.SOCIAL_POS_FR, names.SOCIAL_NEG_FR, names.SOCIAL_POS_EN, names.SOCIAL_NEG_EN]
    flat = [t for tb in tables for t in tb]
    offs = np.cumsum([0] + [len(t) for t in tables])[:-1]
    lens = np.array([len(t) for t in tables])
    which = eng.astype(np.int64) * 2 + neg.astype(np.int64)
    text = lookup(flat, offs[which] + rng.integers(0, 1 << 30, k) % lens[which])
    lang = where(eng, "en", "fr")
    prefix = lookup(["ig_", "tw_", "fb_"], ev.extra)
    ids = cat(prefix, int_str((np.arange(k, dtype=np.int64) * 7_919 + 104_729) % 10**10, 10))
    posted = json_str(iso_local(ev.time))
    exclude: set[int] = set()
    posted = _spoil(rng, "social", "bad_date", posted, _JSON_BAD_ISO, exclude, log, "posted_at")
    broken = pick_rows(rng, k, malformed_count("social", "broken_json", k), exclude)
    log.add(np.array(broken, dtype=np.int64), "broken_json", malformed=True)
    objects = json_objects([
        ("post_id", json_str(ids)), ("platform", json_str(platform)),
        ("handle", json_str(handle)), ("posted_at", posted), ("text", json_str(text)),
        ("lang", json_str(lang)),
    ])
    rel = "exports/social/posts.jsonl"
    lines = write_jsonl(ctx.path(rel), objects, {r: break_json for r in broken})
    return SiloOut("social", rel, k, ids, person, np.ones(k, bool), lines, log,
                   extra_counts={"social_negative": int(neg.sum()),
                                 "social_strangers": int(stranger.sum())})


def write_nps(ctx: Context, rng: np.random.Generator, ev: Events, known: Known) -> SiloOut:
    people = ctx.people
    has_mail = ~pc.is_null(known.mail).to_numpy(zero_copy_only=False)
    keep = has_mail[ev.person]
    person, time, score = ev.person[keep], ev.time[keep], ev.kind[keep]
    k = len(person)
    log = DirtLog()
    ids = _rank_ids("NPS-", k, 7, first=1)
    email = known.mail.take(pa.array(person))
    eng = people.english[person]
    band = np.where(score >= 9, 0, np.where(score >= 7, 1, 2))
    tables = [names.NPS_COMMENTS_POS_FR, names.NPS_COMMENTS_MID_FR, names.NPS_COMMENTS_NEG_FR,
              names.NPS_COMMENTS_POS_EN, names.NPS_COMMENTS_MID_EN, names.NPS_COMMENTS_NEG_EN]
    flat = [t for tb in tables for t in tb]
    offs = np.cumsum([0] + [len(t) for t in tables])[:-1]
    lens = np.array([len(t) for t in tables])
    which = eng.astype(np.int64) * 3 + band
    comment = lookup(flat, offs[which] + rng.integers(0, 1 << 30, k) % lens[which])
    comment = null_where(rng.random(k) < 0.6, comment)
    answered = datetime_str(time, "%Y-%m-%d", "%H:%M:%S")
    score_s = int_str(score)
    exclude: set[int] = set()
    score_s = _spoil(rng, "nps", "bad_number", score_s, ["dix", "sept/dix"], exclude, log, "score")
    edits = _shape_edits(rng, "nps", k, exclude, log)
    rel = "exports/nps/responses.csv"
    header = ["response_id", "email", "answered_at", "score", "comment", "kind"]
    fields = [ids, email, answered, score_s, comment, lookup(["nps"], np.zeros(k, int))]
    lines = write_csv(ctx.path(rel), header, fields, delimiter=",", text_columns={1, 4},
                      edits=edits)
    return SiloOut("nps", rel, k, ids, person, np.ones(k, bool), lines, log)


def write_products(ctx: Context, rng: np.random.Generator) -> SiloOut:
    c = ctx.catalogue
    k = len(c.sku)
    log = DirtLog()
    price = money(c.price_cents)
    exclude: set[int] = set()
    price = _spoil(rng, "products", "bad_number", price, ["NC", "prix libre"], exclude, log,
                   "price")
    edits = _shape_edits(rng, "products", k, exclude, log)
    rel = "exports/products/catalogue.csv"
    header = ["sku", "name", "category", "brand", "price", "margin_rate"]
    fields = [c.sku, c.name, lookup(names.CATEGORIES, c.category), lookup(names.BRANDS, c.brand),
              price, ratio_str(c.margin_rate)]
    lines = write_csv(ctx.path(rel), header, fields, delimiter=",", text_columns={1, 3},
                      edits=edits)
    return SiloOut("products", rel, k, c.sku, np.full(k, -1, dtype=np.int64),
                   np.zeros(k, bool), lines, log)

