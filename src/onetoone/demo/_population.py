"""Latent people of the demo company and their behaviour, from known stochastic processes.

Every person gets latent parameters drawn per segment:

* purchases follow BG/NBD: a Poisson purchase rate per week ``lam ~ Gamma`` while alive, and after
  every repeat purchase the person drops out ("defects") with probability ``p ~ Beta``;
* spend per purchase follows Gamma-Gamma: ``nu ~ Gamma(q, gamma)``, amount ``~ Gamma(p_shape, nu)``;
* needs: favourite categories, web/store channel mix, promotion sensitivity, basket size;
* a true response to a marketing treatment (uplift type and response probabilities);
* consent to e-mail and SMS marketing, satisfaction, and the leading signals of defection
  (complaints, negative posts, NPS detractor answers, fading e-mail opens).

All draws are vectorized with numpy; times are integer seconds of naive Europe/Paris local time
since 1970-01-01.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from onetoone.demo import _names as names
from onetoone.demo._format import DAY, cat, day_number, int_str, lookup

WEEK = 7 * DAY
HOLDOUT_WEEKS = 26

FIRST_NAMES: tuple[str, ...] = (
    names.FIRST_NAMES_F + names.FIRST_NAMES_M + names.FIRST_NAMES_EN_F + names.FIRST_NAMES_EN_M
)
_NF, _NM = len(names.FIRST_NAMES_F), len(names.FIRST_NAMES_M)
_NEF, _NEM = len(names.FIRST_NAMES_EN_F), len(names.FIRST_NAMES_EN_M)
LAST_NAMES: tuple[str, ...] = names.LAST_NAMES_FR + names.LAST_NAMES_EN

UPLIFT_TYPES: tuple[str, ...] = ("persuadable", "sure_thing", "lost_cause", "do_not_disturb")

# Per segment (order of names.SEGMENTS).
SEGMENT_SHARES = np.array([0.22, 0.25, 0.12, 0.23, 0.18])
RATE_MEAN = np.array([0.10, 0.06, 0.15, 0.08, 0.03])  # purchases per week while alive
RATE_SHAPE = 0.7
DROPOUT_MEAN = np.array([0.12, 0.08, 0.04, 0.20, 0.15])
DROPOUT_CONCENTRATION = 4.0
SPEND_P, SPEND_Q = 3.0, 4.0
SPEND_MEAN = np.array([55.0, 90.0, 160.0, 35.0, 70.0])  # euros per purchase, population mean
WEB_SHARE_MEAN = np.array([0.75, 0.25, 0.45, 0.50, 0.40])
LOYALTY_PROB = np.array([0.40, 0.70, 0.90, 0.55, 0.25])
PROMO_MEAN = np.array([0.30, 0.20, 0.10, 0.80, 0.30])
BASKET_MEAN = np.array([2.2, 2.8, 3.0, 1.8, 1.4])
EMAIL_CONSENT = np.array([0.85, 0.75, 0.85, 0.90, 0.60])
SMS_CONSENT = np.array([0.45, 0.50, 0.60, 0.70, 0.30])
OPEN_RATE = np.array([0.35, 0.25, 0.45, 0.30, 0.15])
AGE_MEAN = np.array([32.0, 45.0, 50.0, 40.0, 55.0])
UPLIFT_PROBS = np.array([
    [0.25, 0.20, 0.45, 0.10],
    [0.20, 0.15, 0.55, 0.10],
    [0.10, 0.45, 0.25, 0.20],
    [0.35, 0.10, 0.50, 0.05],
    [0.15, 0.05, 0.70, 0.10],
])
# Category preference weights (order of names.CATEGORIES: 5 home then 5 fashion).
CATEGORY_WEIGHTS = np.array([
    [1, 2, 1, 0.2, 1, 8, 4, 2, 5, 6],
    [6, 6, 5, 3, 4, 1, 1, 3, 1, 1],
    [4, 5, 3, 4, 4, 4, 3, 1, 3, 3],
    [3, 3, 3, 1, 2, 4, 3, 4, 3, 3],
    [2, 6, 2, 0.5, 3, 2, 1, 2, 1, 5],
], dtype=np.float64)

ENGLISH_SHARE = 0.05
HOUSEHOLD_JOIN_SHARE = 0.05  # people who live with another person of the base
HOUSEHOLD_SHARED_EMAIL = 0.35  # of those, share of who use the family e-mail
GENERIC_EMAIL_SHARE = 0.006  # people whose e-mail is a shared generic one (contact@...)
LANDLINE_SHARE = 0.30
HANDLE_SHARE = 0.22  # of web account holders, who give an Instagram handle
SECOND_WEB_ACCOUNT = 0.02
MOVED_SHARE = 0.2  # households that move during the observed period
CANCELLED_ORDER_SHARE = 0.03
RETURNED_ORDER_SHARE = 0.05


@dataclass(frozen=True)
class Timeline:
    """Seconds since 1970 (naive local time) of the period limits; ends are exclusive."""

    start: int
    calibration_end: int
    end: int
    horizon: int

    @classmethod
    def from_dates(cls, start: date, calibration_end: date, end: date) -> Timeline:
        return cls(
            start=day_number(start) * DAY,
            calibration_end=day_number(calibration_end + timedelta(days=1)) * DAY,
            end=day_number(end + timedelta(days=1)) * DAY,
            horizon=day_number(end + timedelta(days=1)) * DAY + HOLDOUT_WEEKS * WEEK,
        )


@dataclass
class Catalogue:
    sku: pa.Array
    name: pa.Array
    category: np.ndarray  # index into names.CATEGORIES
    brand: np.ndarray
    price_cents: np.ndarray
    margin_rate: np.ndarray


@dataclass
class Purchases:
    """Every purchase (observed and holdout); sorted by person then time."""

    person: np.ndarray
    time: np.ndarray
    web: np.ndarray  # bool
    amount_cents: np.ndarray  # realized amount (items total for web, ticket for store)
    n_items: np.ndarray
    store: np.ndarray  # store index (for store purchases)
    # web items, for web purchases only: purchase index into the arrays above
    item_purchase: np.ndarray
    item_product: np.ndarray
    item_qty: np.ndarray
    item_unit_cents: np.ndarray


@dataclass
class People:
    n: int
    segment: np.ndarray
    female: np.ndarray
    english: np.ndarray
    first: np.ndarray  # index into FIRST_NAMES
    last: np.ndarray  # index into LAST_NAMES
    birth_day: np.ndarray
    city: np.ndarray  # index into names.CITIES
    street: np.ndarray
    street_type: np.ndarray
    street_no: np.ndarray
    email_local: pa.Array
    email_domain: pa.Array
    email_domain_idx: np.ndarray  # index into names.MAIL_DOMAINS or -1 (business domain)
    generic_email: np.ndarray
    mobile: np.ndarray  # 9-digit national significant number (6xxxxxxxx / 7xxxxxxxx)
    landline: np.ndarray  # 9-digit number or 0
    household: np.ndarray
    home_store: np.ndarray
    handle: pa.Array  # social handle without '@', null if none
    device: pa.Array
    card: np.ndarray  # loyalty card number (int) or 0
    # latent behaviour
    lam: np.ndarray
    p_drop: np.ndarray
    nu: np.ndarray
    mean_spend: np.ndarray
    web_share: np.ndarray
    promo: np.ndarray
    basket: np.ndarray
    satisfaction: np.ndarray
    open_rate: np.ndarray
    acquired: np.ndarray  # time of first purchase
    death: np.ndarray  # time of dropout (last purchase) or -1 when alive at the horizon
    loyalty_member: np.ndarray
    has_web: np.ndarray  # web account created before the end of observation
    web_created: np.ndarray
    in_crm: np.ndarray
    email_consent0: np.ndarray  # consent given at registration
    sms_consent0: np.ndarray
    email_unsub_at: np.ndarray  # latent time at which they would unsubscribe (may be > horizon)
    sms_stop_at: np.ndarray
    uplift: np.ndarray
    p_control: np.ndarray
    p_treated: np.ndarray

    @property
    def email(self) -> pa.Array:
        return cat(self.email_local, "@", self.email_domain)

    def alive_at(self, t: int) -> np.ndarray:
        return (self.death < 0) | (self.death >= t)


def _zipf(rng: np.random.Generator, size: int, n: int, offset: float) -> np.ndarray:
    w = 1.0 / (np.arange(n) + offset)
    return rng.choice(n, size=size, p=w / w.sum())


def _affine_unique(index: np.ndarray, modulus: int, a: int, b: int) -> np.ndarray:
    """A bijection of ``range(modulus)`` (a coprime with modulus): unique, random-looking ids."""
    return (index.astype(np.int64) * a + b) % modulus


def _slug(s: str) -> str:
    import unicodedata

    t = unicodedata.normalize("NFD", s.lower())
    t = "".join(c for c in t if not unicodedata.combining(c))
    return "".join(c for c in t if c.isalnum() or c == "-").replace("-", "")


def make_people(rng: np.random.Generator, n: int, tl: Timeline) -> People:
    seg = rng.choice(len(SEGMENT_SHARES), size=n, p=SEGMENT_SHARES)
    female = rng.random(n) < 0.53
    english = rng.random(n) < ENGLISH_SHARE
    first = np.where(
        english,
        np.where(female, _NF + _NM + rng.integers(0, _NEF, n),
                 _NF + _NM + _NEF + rng.integers(0, _NEM, n)),
        np.where(female, _zipf(rng, n, _NF, 6.0), _NF + _zipf(rng, n, _NM, 6.0)),
    )
    n_fr = len(names.LAST_NAMES_FR)
    last = np.where(english, n_fr + rng.integers(0, len(names.LAST_NAMES_EN), n),
                    _zipf(rng, n, n_fr, 10.0))
    age = np.clip(rng.normal(AGE_MEAN[seg], 12.0), 18, 88)
    birth_day = (tl.start // DAY - age * 365.25).astype(np.int64)
    city_w = np.array([c[2] for c in names.CITIES], dtype=np.float64)
    city = rng.choice(len(names.CITIES), size=n, p=city_w / city_w.sum())
    street = rng.integers(0, len(names.STREET_NAMES), n)
    street_type = rng.integers(0, len(names.STREET_TYPES), n)
    street_no = np.minimum(1 + rng.geometric(0.04, n), 220)

    idx = np.arange(n, dtype=np.int64)
    mobile = np.where(rng.random(n) < 0.8, 600_000_000, 700_000_000) + _affine_unique(
        idx, 100_000_000, 48_271_171, 12_345_678)
    region = np.array([_landline_region(c[1]) for c in names.CITIES])[city]
    landline = np.where(rng.random(n) < LANDLINE_SHARE,
                        region * 100_000_000 + _affine_unique(idx, 100_000_000, 69_621_113, 777),
                        0)

    # e-mail addresses: a pattern from the name, a domain, made unique by digits
    fslug = np.array([_slug(s) for s in FIRST_NAMES], dtype=object)
    lslug = np.array([_slug(s) for s in LAST_NAMES], dtype=object)
    fs, ls = lookup(list(fslug), first), lookup(list(lslug), last)
    pattern = rng.choice(6, size=n, p=[0.35, 0.05, 0.15, 0.2, 0.15, 0.1])
    yy = int_str((birth_day.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64)
                  + 1970) % 100, 2)
    initial = pc.utf8_slice_codeunits(fs, 0, 1)
    num = int_str(rng.integers(1, 100, n))
    candidates = [
        cat(fs, ".", ls), cat(fs, "_", ls), cat(initial, ls), cat(fs, ".", ls, yy),
        cat(fs, ls, num), cat(ls, ".", fs),
    ]
    local = candidates[0]
    for k in range(1, 6):
        local = pc.if_else(pa.array(pattern == k), candidates[k], local)
    dom_w = np.array([d[1] for d in names.MAIL_DOMAINS], dtype=np.float64)
    domain_idx = rng.choice(len(names.MAIL_DOMAINS), size=n, p=dom_w / dom_w.sum())
    domain = lookup([d[0] for d in names.MAIL_DOMAINS], domain_idx)
    local = _make_unique(local, domain, idx)

    # households: a few people live with another one (same address, landline, often last name,
    # sometimes the family e-mail)
    household = idx.copy()
    joiner = rng.random(n) < HOUSEHOLD_JOIN_SHARE
    heads = np.flatnonzero(~joiner)
    if len(heads) and joiner.any():
        j = np.flatnonzero(joiner)
        h = heads[rng.integers(0, len(heads), len(j))]
        household[j] = h
        city[j], street[j], street_type[j], street_no[j] = city[h], street[h], street_type[h], \
            street_no[h]
        need_line = landline[h] == 0
        landline[h[need_line]] = region[h[need_line]] * 100_000_000 + _affine_unique(
            h[need_line], 100_000_000, 69_621_113, 777)
        landline[j] = landline[h]
        same_name = rng.random(len(j)) < 0.7
        last[j[same_name]] = last[h[same_name]]
        share = rng.random(len(j)) < HOUSEHOLD_SHARED_EMAIL
        js, hs = j[share], h[share]
        src = idx.copy()
        src[js] = hs
        local, domain = local.take(pa.array(src)), domain.take(pa.array(src))
        domain_idx[js] = domain_idx[hs]

    # generic shared e-mails (contact@business.fr) used by a few unrelated people
    generic = rng.random(n) < GENERIC_EMAIL_SHARE
    ng = int(generic.sum())
    if ng:
        pool = max(1, ng // 3)
        words = rng.integers(0, len(names.BUSINESS_WORDS), pool)
        owners = rng.integers(0, len(names.LAST_NAMES_FR[:60]), pool)
        gl = rng.integers(0, len(names.GENERIC_LOCALS), pool)
        pool_local = [names.GENERIC_LOCALS[g] for g in gl]
        pool_domain = [f"{names.BUSINESS_WORDS[w]}-{_slug(names.LAST_NAMES_FR[o])}{i}.fr"
                       for i, (w, o) in enumerate(zip(words, owners, strict=True))]
        pick = rng.integers(0, pool, ng)
        gi = np.flatnonzero(generic)
        src = idx.copy()
        src[gi] = n + pick
        local = pa.concat_arrays([local, pa.array(pool_local, pa.string())]).take(pa.array(src))
        domain = pa.concat_arrays([domain, pa.array(pool_domain, pa.string())]).take(
            pa.array(src))
        domain_idx[gi] = -1

    # behaviour
    lam = rng.gamma(RATE_SHAPE, RATE_MEAN[seg] / RATE_SHAPE)
    m = DROPOUT_MEAN[seg]
    p_drop = rng.beta(m * DROPOUT_CONCENTRATION, (1 - m) * DROPOUT_CONCENTRATION)
    gamma = SPEND_MEAN[seg] * (SPEND_Q - 1) / SPEND_P
    nu = rng.gamma(SPEND_Q, 1.0 / gamma)
    web_share = rng.beta(WEB_SHARE_MEAN[seg] * 3, (1 - WEB_SHARE_MEAN[seg]) * 3)
    promo = rng.beta(PROMO_MEAN[seg] * 4, (1 - PROMO_MEAN[seg]) * 4)
    basket = BASKET_MEAN[seg] * rng.lognormal(0, 0.2, n)
    satisfaction = np.clip(rng.beta(6, 2, n) - 0.8 * (p_drop - 0.1), 0.05, 0.99)
    open_rate = rng.beta(OPEN_RATE[seg] * 5, (1 - OPEN_RATE[seg]) * 5)
    acq_day = rng.integers(tl.start // DAY, tl.end // DAY - 1, n)

    loyalty_member = rng.random(n) < LOYALTY_PROB[seg]
    uplift = (rng.random(n)[:, None] > np.cumsum(UPLIFT_PROBS[seg], axis=1)).sum(axis=1)
    uplift = np.minimum(uplift, 3)
    u1, u2 = rng.random(n), rng.random(n)
    p0 = np.select([uplift == 0, uplift == 1, uplift == 2],
                   [0.01 + 0.05 * u1, 0.35 + 0.25 * u1, 0.03 * u1], 0.10 + 0.15 * u1)
    p1 = np.select([uplift == 0, uplift == 1, uplift == 2],
                   [0.20 + 0.25 * u2, np.clip(p0 + 0.06 * (u2 - 0.5), 0, 1), p0 + 0.01 * u2],
                   p0 * (0.2 + 0.3 * u2))
    email_consent0 = rng.random(n) < EMAIL_CONSENT[seg]
    sms_consent0 = rng.random(n) < SMS_CONSENT[seg]
    unsub_scale = np.where(uplift == 3, 1.5, 5.0) * 365 * DAY
    email_unsub_at = (acq_day * DAY + rng.exponential(unsub_scale)).astype(np.int64)
    sms_stop_at = (acq_day * DAY + rng.exponential(4.0 * 365 * DAY, n)).astype(np.int64)

    store_city = {c: i for i, c in reversed(list(enumerate(names.STORE_CITIES)))}
    city_store = np.array([store_city.get(c[0], -1) for c in names.CITIES])
    home_store = city_store[city]
    far = home_store < 0
    home_store[far] = rng.integers(0, len(names.STORE_CITIES), int(far.sum()))
    paris = np.flatnonzero(np.array(names.STORE_CITIES) == "Paris")
    in_paris = home_store == paris[0]
    home_store[in_paris] = paris[rng.integers(0, len(paris), int(in_paris.sum()))]

    hs_pattern = rng.integers(0, 4, n)
    h_candidates = [cat(fs, "_", pc.utf8_slice_codeunits(ls, 0, 1)), cat(fs, ".", ls),
                    cat(initial, ls, int_str(rng.integers(1, 99, n))), cat(fs, ls)]
    handle = h_candidates[0]
    for k in range(1, 4):
        handle = pc.if_else(pa.array(hs_pattern == k), h_candidates[k], handle)
    handle = _make_unique(handle, pa.array([""] * n, pa.string()), idx)
    hex_hi = _affine_unique(idx, 1 << 31, 1_103_515_245, 12_345)
    hex_lo = rng.integers(0, 1 << 31, n)
    device = cat("dv-", int_str(hex_hi, 10), "-", int_str(hex_lo, 10))
    card = 2_990_000_000_000 + _affine_unique(idx, 1_000_000_000, 2_654_435_761, 97)

    people = People(
        n=n, segment=seg, female=female, english=english, first=first, last=last,
        birth_day=birth_day, city=city, street=street, street_type=street_type,
        street_no=street_no, email_local=local, email_domain=domain,
        email_domain_idx=domain_idx, generic_email=generic, mobile=mobile, landline=landline,
        household=household, home_store=home_store,
        handle=handle,
        device=device, card=np.where(loyalty_member, card, 0), lam=lam, p_drop=p_drop, nu=nu,
        mean_spend=SPEND_P / nu, web_share=web_share, promo=promo, basket=basket,
        satisfaction=satisfaction, open_rate=open_rate, acquired=acq_day * DAY,
        death=np.full(n, -1, dtype=np.int64), loyalty_member=loyalty_member,
        has_web=np.zeros(n, dtype=bool), web_created=np.full(n, -1, dtype=np.int64),
        in_crm=np.zeros(n, dtype=bool), email_consent0=email_consent0,
        sms_consent0=sms_consent0, email_unsub_at=email_unsub_at, sms_stop_at=sms_stop_at,
        uplift=uplift, p_control=p0, p_treated=p1,
    )
    return people


def _landline_region(postcode: str) -> int:
    dep = postcode[:2]
    if dep in {"75", "77", "78", "91", "92", "93", "94", "95"}:
        return 1
    if dep in {"14", "29", "35", "37", "44", "45", "49", "56", "72", "76", "79", "86", "17"}:
        return 2
    if dep in {"10", "21", "25", "51", "54", "57", "59", "67", "68", "80"}:
        return 3
    if dep in {"06", "13", "26", "30", "34", "38", "42", "63", "69", "73", "74", "83", "84"}:
        return 4
    return 5


def _make_unique(local: pa.Array, domain: pa.Array, idx: np.ndarray) -> pa.Array:
    """Append digits to the repeated values of ``local@domain`` until all are unique."""
    for round_ in range(4):
        full = pd.Series(cat(local, "@", domain).to_numpy(zero_copy_only=False))
        dup = full.duplicated().to_numpy()
        if not dup.any():
            break
        digits = (idx * (7 + round_ * 13) + 11) % (100 if round_ < 2 else 100_000)
        if round_ == 3:
            digits = idx
        local = pc.if_else(pa.array(dup), cat(local, int_str(digits)), local)
    return local


def make_catalogue(rng: np.random.Generator, size: int = 600) -> Catalogue:
    cat_idx = np.sort(rng.integers(0, len(names.CATEGORIES), size))
    lo = np.array([p[0] for p in names.CATEGORY_PRICES])[cat_idx]
    hi = np.array([p[1] for p in names.CATEGORY_PRICES])[cat_idx]
    raw = np.exp(rng.uniform(np.log(lo), np.log(hi)))
    price = (np.floor(raw) * 100 + np.where(rng.random(size) < 0.5, 90, 99)).astype(np.int64)
    item = [names.CATEGORY_ITEMS[c][rng.integers(0, len(names.CATEGORY_ITEMS[c]))]
            for c in cat_idx]
    adj = rng.integers(0, len(names.ADJECTIVES), size)
    col = rng.integers(0, len(names.COLOURS), size)
    label = [f"{item[i]} {names.ADJECTIVES[adj[i]]} {names.COLOURS[col[i]]}" for i in range(size)]
    codes = ["LM", "DE", "CU", "MO", "LU", "FE", "HO", "EN", "CH", "AC"]
    sku = [f"{codes[c]}-{100000 + 7919 * i % 900000:06d}" for i, c in enumerate(cat_idx)]
    brand = rng.integers(0, len(names.BRANDS), size)
    margin = np.round(rng.uniform(0.25, 0.62, size), 2)
    # sort by category then price for nearest-price lookups
    order = np.lexsort((price, cat_idx))
    return Catalogue(
        sku=pa.array([sku[i] for i in order], pa.string()),
        name=pa.array([label[i] for i in order], pa.string()),
        category=cat_idx[order], brand=brand[order], price_cents=price[order],
        margin_rate=margin[order],
    )


def simulate_purchases(rng: np.random.Generator, people: People, tl: Timeline,
                       catalogue: Catalogue) -> Purchases:
    """BG/NBD purchase times, Gamma-Gamma amounts, channels, baskets and web items."""
    n = people.n
    t0 = people.acquired.astype(np.float64)
    d_weeks = (tl.horizon - t0) / WEEK
    n_events = rng.poisson(people.lam * d_weeks)
    j_death = rng.geometric(people.p_drop)  # dies right after its j-th repeat purchase
    m = np.minimum(n_events, j_death)
    dies = j_death <= n_events
    # repeat times: first m of n_events uniform order statistics, from exponential spacings
    tot = n_events + 1
    starts = np.cumsum(tot) - tot
    e = rng.standard_exponential(int(tot.sum()))
    cs = np.cumsum(e)
    grp = np.repeat(np.arange(n), tot)
    base = cs[starts] - e[starts]
    total = cs[starts + tot - 1] - base
    within = np.arange(len(e)) - starts[grp]
    keep = within < m[grp]
    g = grp[keep]
    rep_t = t0[g] + (cs[keep] - base[g]) / total[g] * d_weeks[g] * WEEK
    person = np.concatenate([np.arange(n), g])
    raw_t = np.concatenate([t0, rep_t])
    order = np.lexsort((raw_t, person))
    person, raw_t = person[order], raw_t[order]
    k = len(person)

    web = rng.random(k) < people.web_share[person]
    day = (raw_t // DAY).astype(np.int64)
    tod = np.where(web, rng.integers(7 * 3600, 24 * 3600 - 60, k),
                   rng.integers(9 * 3600 + 1800, 19 * 3600 + 1800, k))
    time = day * DAY + tod
    # keep time order within a person; the first purchase defines the acquisition time
    order = np.lexsort((time, person))
    time, web = time[order], web[order]
    first = np.r_[True, person[1:] != person[:-1]]
    people.acquired = time[first]
    last_idx = np.r_[np.flatnonzero(first)[1:] - 1, k - 1]
    people.death = np.where(dies, time[last_idx], -1)

    # Gamma-Gamma amounts and baskets
    z = rng.gamma(SPEND_P, 1.0 / people.nu[person])
    n_items = np.clip(1 + rng.poisson(np.maximum(people.basket[person] - 1, 0.05)), 1, 8)
    store = people.home_store[person].copy()
    away = rng.random(k) < 0.12
    store[away] = rng.integers(0, len(names.STORE_CITIES), int(away.sum()))

    # web items: nearest catalogue price to the per-item share of the amount
    wi = np.flatnonzero(web)
    item_purchase = np.repeat(wi, n_items[wi])
    ni = len(item_purchase)
    seg = people.segment[person[item_purchase]]
    cw = np.cumsum(CATEGORY_WEIGHTS / CATEGORY_WEIGHTS.sum(axis=1, keepdims=True), axis=1)
    ccat = np.minimum((rng.random(ni)[:, None] > cw[seg]).sum(axis=1), len(names.CATEGORIES) - 1)
    target = z[item_purchase] / n_items[item_purchase] * rng.lognormal(0, 0.25, ni) * 100
    product = np.empty(ni, dtype=np.int64)
    for c in range(len(names.CATEGORIES)):
        sel = np.flatnonzero(ccat == c)
        rows = np.flatnonzero(catalogue.category == c)
        if len(rows) == 0:
            rows = np.arange(len(catalogue.category))
        prices = catalogue.price_cents[rows]
        pos = np.clip(np.searchsorted(prices, target[sel]), 1, len(rows) - 1) \
            if len(rows) > 1 else np.zeros(len(sel), dtype=np.int64)
        if len(rows) > 1:
            left_closer = np.abs(prices[pos - 1] - target[sel]) <= np.abs(prices[pos] - target[sel])
            pos = np.where(left_closer, pos - 1, pos)
        product[sel] = rows[pos]
    qty = np.where(rng.random(ni) < 0.88, 1, np.where(rng.random(ni) < 0.8, 2, 3))
    promo_hit = rng.random(ni) < people.promo[person[item_purchase]] * 0.4
    unit = np.where(promo_hit, np.round(catalogue.price_cents[product] * 0.7),
                    catalogue.price_cents[product]).astype(np.int64)
    amount = np.round(z * 100).astype(np.int64)
    web_total = np.bincount(item_purchase, weights=unit * qty, minlength=k).astype(np.int64)
    amount = np.where(web, web_total, np.maximum(amount, 100))
    n_items = np.where(web, np.bincount(item_purchase, weights=qty, minlength=k).astype(np.int64),
                       n_items)
    return Purchases(person=person, time=time, web=web, amount_cents=amount, n_items=n_items,
                     store=store, item_purchase=item_purchase, item_product=product,
                     item_qty=qty, item_unit_cents=unit)


def assign_accounts(rng: np.random.Generator, people: People, purchases: Purchases,
                    tl: Timeline) -> None:
    """Who has a web account, a loyalty card, a CRM record (everyone has at least one)."""
    n = people.n
    first_web = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_web, purchases.person[purchases.web], purchases.time[purchases.web])
    has_web_purchase = first_web < np.iinfo(np.int64).max
    signup_only = (~has_web_purchase) & (rng.random(n) < 0.2)
    created = np.where(has_web_purchase, first_web - rng.integers(60, 1800, n),
                       people.acquired + rng.integers(1, 120, n) * DAY)
    people.web_created = np.where(has_web_purchase | signup_only, created, -1)
    people.has_web = (people.web_created >= 0) & (people.web_created < tl.end)
    crm_prob = np.where(people.loyalty_member, 0.95, np.where(people.has_web, 0.6, 0.4))
    people.in_crm = rng.random(n) < crm_prob
    people.in_crm |= ~(people.has_web | people.loyalty_member)
    no_handle = ~people.has_web | (rng.random(n) >= HANDLE_SHARE)
    people.handle = pc.if_else(pa.array(no_handle), pa.nulls(n, pa.string()), people.handle)


@dataclass
class Events:
    """Event rows of one kind: person (or -1 for strangers), time and integer attributes."""

    person: np.ndarray
    time: np.ndarray
    kind: np.ndarray  # meaning depends on the event family
    extra: np.ndarray  # meaning depends on the event family


def _window_events(rng: np.random.Generator, who: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   rate_per_year: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    span = np.maximum(hi - lo, 0).astype(np.float64)
    counts = rng.poisson(np.asarray(rate_per_year) * span / (365.25 * DAY))
    p = np.repeat(who, counts)
    t = np.repeat(lo, counts) + (rng.random(int(counts.sum())) * np.repeat(span, counts))
    return p, t.astype(np.int64)


SIGNAL_WINDOW = 120 * DAY
SERVICE_CATEGORIES: tuple[str, ...] = ("complaint", "question", "return", "delivery")


def simulate_service(rng: np.random.Generator, people: People, tl: Timeline) -> Events:
    """Customer-service contacts; defectors complain in the months before they drop out."""
    n = people.n
    who = np.arange(n)
    lo = people.acquired
    dead_end = np.where(people.death >= 0, np.minimum(people.death, tl.end), tl.end)
    p1, t1 = _window_events(rng, who, lo, dead_end, 0.35)
    kind1 = rng.choice(4, size=len(p1), p=[0.12, 0.43, 0.2, 0.25])
    observed_death = (people.death >= 0) & (people.death < tl.end)
    d = np.flatnonzero(observed_death & (rng.random(n) < 0.6))
    cnt = 1 + rng.poisson(1.0, len(d))
    p2 = np.repeat(d, cnt)
    w_lo = np.maximum(people.death[p2] - SIGNAL_WINDOW, people.acquired[p2])
    t2 = (w_lo + rng.random(len(p2)) * (people.death[p2] - w_lo)).astype(np.int64)
    kind2 = np.where(rng.random(len(p2)) < 0.8, 0, 3)
    person = np.concatenate([p1, p2])
    time = np.concatenate([t1, t2])
    time = (time // DAY) * DAY + rng.integers(8 * 3600, 20 * 3600, len(time))
    kind = np.concatenate([kind1, kind2])
    channel = rng.choice(4, size=len(person), p=[0.4, 0.3, 0.2, 0.1])  # phone,email,chat,store
    ok = (time >= tl.start) & (time < tl.end)
    order = np.argsort(time[ok], kind="stable")
    return Events(person=person[ok][order], time=time[ok][order], kind=kind[ok][order],
                  extra=channel[ok][order])


def simulate_social(rng: np.random.Generator, people: People, tl: Timeline) -> Events:
    """Social posts by people with a handle (and strangers); kind 1 = negative, extra = platform."""
    n = people.n
    has = ~pc.is_null(people.handle).to_numpy(zero_copy_only=False)
    who = np.flatnonzero(has)
    end = np.where(people.death[who] >= 0, np.minimum(people.death[who] + 90 * DAY, tl.end),
                   tl.end)
    p1, t1 = _window_events(rng, who, people.acquired[who], end, 1.5)
    neg1 = rng.random(len(p1)) < 0.08 + 0.3 * (1 - people.satisfaction[p1])
    defect = has & (people.death >= 0) & (people.death < tl.end) & (rng.random(n) < 0.55)
    d = np.flatnonzero(defect)
    cnt = 1 + rng.poisson(0.8, len(d))
    p2 = np.repeat(d, cnt)
    w_lo = np.maximum(people.death[p2] - SIGNAL_WINDOW, people.acquired[p2])
    t2 = (w_lo + rng.random(len(p2)) * (people.death[p2] - w_lo)).astype(np.int64)
    n_strangers = max(1, int(0.3 * (len(p1) + len(p2))))
    p3 = np.full(n_strangers, -1)
    t3 = rng.integers(tl.start, tl.end, n_strangers)
    person = np.concatenate([p1, p2, p3])
    time = np.concatenate([t1, t2, t3]).astype(np.int64)
    neg = np.concatenate([neg1, np.ones(len(p2), bool), rng.random(n_strangers) < 0.25])
    platform = rng.choice(3, size=len(person), p=[0.6, 0.25, 0.15])  # instagram, twitter, fb
    ok = (time >= tl.start) & (time < tl.end)
    order = np.argsort(time[ok], kind="stable")
    return Events(person=person[ok][order], time=time[ok][order],
                  kind=neg[ok][order].astype(np.int64), extra=platform[ok][order])


def simulate_nps(rng: np.random.Generator, people: People, purchases: Purchases,
                 tl: Timeline) -> Events:
    """NPS answers after some purchases; kind = score 0..10; detractors before dropout."""
    answered = rng.random(len(purchases.person)) < 0.07
    p = purchases.person[answered]
    t = purchases.time[answered] + rng.integers(1 * DAY, 6 * DAY, len(p))
    s = people.satisfaction[p]
    score = np.clip(np.round(10 * s + rng.normal(0, 1.6, len(p)) + 0.5), 0, 10).astype(np.int64)
    death = people.death[p]
    near = (death >= 0) & (t >= death - SIGNAL_WINDOW) & (t <= death + 30 * DAY)
    detract = near & (rng.random(len(p)) < 0.75)
    score = np.where(detract, rng.integers(0, 7, len(p)), score)
    ok = (t >= tl.start) & (t < tl.end)
    order = np.argsort(t[ok], kind="stable")
    return Events(person=p[ok][order], time=t[ok][order], kind=score[ok][order],
                  extra=np.zeros(int(ok.sum()), dtype=np.int64))


def fade(people: People, person: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Engagement multiplier: fades over the months before dropout, low afterwards."""
    death = people.death[person]
    dead = death >= 0
    to_go = (death - t) / SIGNAL_WINDOW
    before = np.clip(0.15 + 0.85 * to_go, 0.15, 1.0)
    return np.where(~dead, 1.0, np.where(t < death, before, 0.08))
