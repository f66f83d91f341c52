"""A small synthetic multi-silo customer base with known defections, written straight into a store.

Each customer is acquired in the first 400 days, buys as a Poisson process (mean gap 20-60 days)
until a latent defection day, complains with probability 0.7 in the 45 days before defecting,
opens fewer e-mails then, and prefers either "home" or "fashion" products (its needs segment),
bought on the web or in store. Fast enough for unit tests (800 customers, ~15k rows).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

START = pd.Timestamp("2023-01-01")
END = pd.Timestamp("2024-12-31")
CATEGORIES = {"home": ["linge", "cuisine"], "fashion": ["mode", "chaussures"]}
ALL_CATEGORIES = [c for cats in CATEGORIES.values() for c in cats]


def synthetic_base(con, n: int = 800, seed: int = 7, *, contracts: bool = False,
                   silos: tuple[str, ...] = ("interactions", "feedback", "social_posts",
                                             "consents")) -> pd.DataFrame:
    """Fill the canonical tables of ``con`` and return the truth (one row per customer)."""
    rng = np.random.default_rng(seed)
    days = (END - START).days
    ids = [f"c{i:04d}" for i in range(n)]
    segment = rng.choice(["home", "fashion"], n)
    acquired = rng.integers(0, 400, n)
    lifetime = rng.exponential(350, n).astype(int) + 30
    defect = acquired + lifetime
    gap = rng.uniform(20, 60, n)
    web = np.where(segment == "fashion", 0.85, 0.15)
    tx, items, inter, feedback, posts, consents = [], [], [], [], [], []
    products = [(f"{cat}-{k}", cat, 40.0 if cat in ("linge", "mode") else 80.0)
                for cats in CATEGORIES.values() for cat in cats for k in range(3)]
    for i, cid in enumerate(ids):
        day = float(acquired[i])
        k = 0
        while day < min(defect[i], days):
            when = START + pd.Timedelta(days=day, hours=int(rng.integers(9, 20)))
            tid = f"t{i}-{k}"
            channel = "web" if rng.random() < web[i] else "store"
            promo = rng.random() < (0.6 if segment[i] == "home" else 0.1)
            cats = CATEGORIES[segment[i]] if rng.random() < 0.9 else ALL_CATEGORIES
            total = 0.0
            for _ in range(int(rng.integers(1, 4))):
                cat = cats[int(rng.integers(len(cats)))]
                pid, _, price = products[[p[1] for p in products].index(cat)]
                unit = price * (0.7 if promo else 1.0)
                items.append((tid, pid, 1.0, unit))
                total += unit
            tx.append((f"web:{tid}", "web", tid, cid, when, total, channel,
                       "paid", cid))
            day += rng.exponential(gap[i])
            k += 1
        end_seen = min(defect[i], days)
        for month_day in range(int(acquired[i]), days, 30):  # monthly newsletter
            when = START + pd.Timedelta(days=month_day, hours=8)
            inter.append((cid, when, "email", "sent"))
            near = defect[i] - 60 <= month_day
            if rng.random() < (0.12 if near else 0.6):
                inter.append((cid, when + pd.Timedelta(hours=3), "email", "open"))
        if defect[i] < days + 200 and rng.random() < 0.7:
            for _ in range(int(rng.integers(1, 3))):
                d = defect[i] - rng.uniform(0, 45)
                if d < days:
                    inter.append((cid, START + pd.Timedelta(days=d), "phone", "complaint"))
        if rng.random() < 0.05:  # a few complaints from customers who stay
            d = rng.uniform(acquired[i], days)
            inter.append((cid, START + pd.Timedelta(days=d), "phone", "complaint"))
        if rng.random() < 0.3:
            d = min(end_seen - 10, days - 1)
            if d > acquired[i]:
                near = defect[i] - 60 <= d
                score = float(rng.integers(0, 6) if near else rng.integers(7, 11))
                feedback.append((cid, START + pd.Timedelta(days=d), "nps", score))
        if rng.random() < 0.3:
            d = rng.uniform(acquired[i], min(defect[i], days))
            text = ("vraiment decu, service nul" if defect[i] - d < 60
                    else "super accueil, merci")
            posts.append((cid, START + pd.Timedelta(days=d), text))
        consents.append((cid, START + pd.Timedelta(days=int(acquired[i])), "email", True))
        if defect[i] < days and rng.random() < 0.3:
            consents.append((cid, START + pd.Timedelta(days=int(defect[i])), "email", False))
    _insert(con, "customers", pd.DataFrame({"customer_id": ids}))
    _insert(con, "transactions", pd.DataFrame(
        tx, columns=["record_key", "source", "source_id", "customer_source_id", "occurred_at",
                     "amount", "channel", "status", "customer_id"]))
    _insert(con, "transaction_items", pd.DataFrame(
        items, columns=["transaction_id", "product_id", "quantity", "unit_price"]))
    _insert(con, "products", pd.DataFrame(products, columns=["source_id", "category", "price"]))
    if "interactions" in silos:
        _insert(con, "interactions", pd.DataFrame(
            inter, columns=["customer_id", "occurred_at", "channel", "type"]))
    if "feedback" in silos:
        _insert(con, "feedback", pd.DataFrame(
            feedback, columns=["customer_id", "occurred_at", "kind", "score"]))
    if "social_posts" in silos:
        frame = pd.DataFrame(posts, columns=["customer_id", "occurred_at", "text"])
        frame["source_id"] = [f"p{i}" for i in range(len(frame))]
        _insert(con, "social_posts", frame)
    if "consents" in silos:
        _insert(con, "consents", pd.DataFrame(
            consents, columns=["customer_id", "occurred_at", "channel", "granted"]))
    if contracts:
        ended = [START + pd.Timedelta(days=int(d)) if d < days else None for d in defect]
        _insert(con, "contracts", pd.DataFrame({
            "source_id": [f"k{i}" for i in range(n)], "customer_id": ids,
            "started_at": [START + pd.Timedelta(days=int(a)) for a in acquired],
            "ended_at": ended, "amount": 20.0}))
    return pd.DataFrame({"customer_id": ids, "segment": segment, "acquired": acquired,
                         "defect_day": defect}).set_index("customer_id")


def _insert(con, table: str, frame: pd.DataFrame) -> None:
    con.register("_t_insert", frame)
    cols = ", ".join(f'"{c}"' for c in frame.columns)
    con.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM _t_insert')
    con.unregister("_t_insert")
