"""Needs-based segments: what customers buy, where, how and when -- in words a marketer reads.

1. Behavioural features per customer over ``lookback_days`` before the as-of date (set-based
   SQL): spend share per product category (``transaction_items`` x ``products``), web share of
   purchases (``transactions.channel``), promotion sensitivity (share of item spend bought at
   least 5 % under list price), price level (unit price / category mean price), basket size,
   purchase frequency, weekend share. Silos that are absent drop their features.
2. Clustering: k-means (scikit-learn) on standardized features, the number of segments chosen
   by the silhouette score between ``min_segments`` and ``max_segments`` on a sample.
3. Each segment is described by the features that set it apart (largest standardized gaps to
   the average customer) and named from them ("web shoppers, mode femme").
4. Stability: centroids are stored in ``needs_segments``; a new run matches its centroids to
   the latest stored ones (Hungarian assignment on standardized distance), so a segment keeps
   its id and name while it stays within ``match_distance``.

Customers without a purchase in the look-back window get ``needs_segment = "unsegmented"``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from onetoone.clock import utcnow
from onetoone.differentiate.defection._features import connection, present_silos
from onetoone.errors import ModelError
from onetoone.schema import TABLES
from onetoone.store import frame_view

UNSEGMENTED = "unsegmented"


class NeedsError(ModelError):
    """Needs segments cannot be built (too few customers, no purchase)."""

    http_status = 422


@dataclass
class NeedsResult:
    """Segment of every customer and the description of every segment."""

    as_of: pd.Timestamp
    assignments: pd.Series  # customer_id -> segment name
    segments: pd.DataFrame  # segment_id, name, description, customers, centroid (raw units)
    features: pd.DataFrame
    silhouette: float
    notes: list[str] = field(default_factory=list)


def needs_features(store: Any, as_of: Any, lookback_days: int = 365,
                   exclude_statuses: tuple[str, ...] = ("cancelled", "canceled"),
                   max_categories: int = 12) -> pd.DataFrame:
    """Behavioural features of every customer with a purchase in the window before ``as_of``."""
    con = connection(store)
    silos = present_silos(con)
    if "transactions" not in silos:
        raise NeedsError("There is no transaction of an identified customer to segment.",
                         hint="Ingest transactions and run 'onetoone identify'.")
    end = pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1)
    start = end - pd.Timedelta(days=lookback_days)
    marks = ", ".join(f"'{s.lower()}'" for s in exclude_statuses) or "''"
    params = [start.to_pydatetime(), end.to_pydatetime()]
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _needs_tx AS
        SELECT source_id, customer_id, occurred_at, amount::DOUBLE AS amount, channel
        FROM transactions
        WHERE customer_id IS NOT NULL AND occurred_at >= ? AND occurred_at < ?
          AND amount > 0 AND (status IS NULL OR lower(status) NOT IN ({marks}))
    """, params)
    base = con.execute("""
        SELECT customer_id,
               ln(1 + count(DISTINCT date_trunc('day', occurred_at))) AS log_purchases,
               ln(1 + avg(amount)) AS log_basket,
               avg(CASE WHEN channel IN ('web', 'app') THEN 1.0 WHEN channel IS NULL THEN NULL
                        ELSE 0.0 END) AS web_share,
               avg(CASE WHEN dayofweek(occurred_at) IN (0, 6) THEN 1.0 ELSE 0.0 END)
                 AS weekend_share
        FROM _needs_tx GROUP BY customer_id
    """).df().set_index("customer_id")
    if base["web_share"].isna().all():
        base = base.drop(columns="web_share")
    has_items = con.execute(
        "SELECT count(*) FROM transaction_items i JOIN _needs_tx t "
        "ON t.source_id = i.transaction_id").fetchall()[0][0] if "transactions" in silos else 0
    if has_items:
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _needs_items AS
            WITH p AS (SELECT source_id, any_value(category) AS category,
                              avg(price::DOUBLE) AS price FROM products GROUP BY source_id),
                 cat AS (SELECT category, avg(price) AS cat_price FROM p GROUP BY category)
            SELECT t.customer_id, coalesce(p.category, 'unknown') AS category,
                   abs(coalesce(i.quantity, 1) * i.unit_price::DOUBLE) AS spend,
                   i.unit_price::DOUBLE AS unit_price, p.price, cat.cat_price
            FROM transaction_items i JOIN _needs_tx t ON t.source_id = i.transaction_id
            LEFT JOIN p ON p.source_id = i.product_id LEFT JOIN cat USING (category)
            WHERE i.unit_price IS NOT NULL
        """)
        items = con.execute("""
            SELECT customer_id,
              sum(spend) FILTER (WHERE price > 0 AND unit_price < 0.95 * price)
                / nullif(sum(spend) FILTER (WHERE price > 0), 0) AS promo_share,
              avg(unit_price / cat_price) FILTER (WHERE cat_price > 0) AS price_level
            FROM _needs_items GROUP BY customer_id
        """).df().set_index("customer_id")
        cats = con.execute("SELECT customer_id, category, sum(spend) AS spend FROM _needs_items "
                           "GROUP BY ALL").df()
        top = (cats.groupby("category")["spend"].sum().sort_values(ascending=False)
               .index[:max_categories])
        cats["category"] = cats["category"].where(cats["category"].isin(top), "other")
        shares = cats.pivot_table(index="customer_id", columns="category", values="spend",
                                  aggfunc="sum", fill_value=0.0)
        shares = shares.div(shares.sum(axis=1).replace(0, np.nan), axis=0)
        shares.columns = [f"share:{c}" for c in shares.columns]
        base = base.join(items, how="left").join(shares, how="left")
        if base["promo_share"].isna().all():
            base = base.drop(columns="promo_share")
        if base["price_level"].isna().all():
            base = base.drop(columns="price_level")
    return base


def _describe_feature(name: str, high: bool) -> str:
    if name.startswith("share:"):
        label = name.split(":", 1)[1]
        return f"{label} buyers" if high else f"little {label}"
    words = {
        "web_share": ("web shoppers", "store shoppers"),
        "promo_share": ("promotion hunters", "full-price buyers"),
        "price_level": ("premium buyers", "budget buyers"),
        "log_basket": ("big baskets", "small baskets"),
        "log_purchases": ("frequent buyers", "occasional buyers"),
        "weekend_share": ("weekend shoppers", "weekday shoppers"),
    }
    high_text, low_text = words.get(name, (f"high {name}", f"low {name}"))
    return high_text if high else low_text


def _show(name: str, value: float) -> str:
    if name.startswith("share:") or name.endswith("_share"):
        return f"{value:.0%}"
    if name.startswith("log_"):
        return f"{np.expm1(value):,.1f}"
    return f"{value:.2f}"


def describe(centroids: pd.DataFrame, mean: pd.Series, scale: pd.Series,
             n_words: int = 2) -> tuple[list[str], list[str]]:
    """Name and description of each centroid from its largest standardized gaps."""
    names, descriptions = [], []
    z = (centroids - mean) / scale
    for _, row in z.iterrows():
        order = row.abs().sort_values(ascending=False).index
        picked = [f for f in order if not (f.startswith("share:") and row[f] < 0)]
        words = [_describe_feature(f, row[f] > 0) for f in picked[:n_words]]
        names.append(", ".join(words) if words else "average customers")
        traits = []
        for f in order[:4]:
            label = f.removeprefix("share:") + " share" if f.startswith("share:") else f
            traits.append(f"{label} {_show(f, centroids.loc[row.name, f])} vs "
                          f"{_show(f, mean[f])} on average")
        descriptions.append("; ".join(traits))
    return names, descriptions


def _choose_k(Z: np.ndarray, k_min: int, k_max: int, seed: int) -> tuple[int, Any, float]:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from threadpoolctl import threadpool_limits

    best: tuple[int, Any, float] | None = None
    k_max = min(k_max, len(Z) - 1)
    for k in range(k_min, k_max + 1):
        with threadpool_limits(1 if len(Z) < 50_000 else None):  # small data: no thread spin
            model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(Z)
        if len(np.unique(model.labels_)) < 2:
            continue
        score = float(silhouette_score(Z, model.labels_, sample_size=min(len(Z), 4000),
                                       random_state=seed))
        if best is None or score > best[2]:
            best = (k, model, score)
    if best is None:
        raise NeedsError("The customers' behaviours are all alike: no segments can be formed.")
    return best


def _previous(con: Any) -> pd.DataFrame:
    con.execute(TABLES["needs_segments"].ddl())
    return con.execute(
        "SELECT segment_id, name, centroid FROM needs_segments WHERE as_of = "
        "(SELECT max(as_of) FROM needs_segments)").df()


def _match(new: pd.DataFrame, old: pd.DataFrame, scale: pd.Series,
           max_distance: float) -> dict[int, tuple[str, str]]:
    """New cluster number -> (segment_id, name) of the stored segment it continues."""
    from scipy.optimize import linear_sum_assignment

    if old.empty:
        return {}
    old_c = pd.DataFrame([json.loads(c) if isinstance(c, str) else c for c in old["centroid"]])
    common = [c for c in new.columns if c in old_c.columns]
    if not common:
        return {}
    a = (new[common] / scale[common]).to_numpy(float)
    b = (old_c[common].astype(float) / scale[common]).to_numpy(float)
    b = np.nan_to_num(b)
    dist = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))
    rows, cols = linear_sum_assignment(dist)
    return {int(r): (str(old["segment_id"].iloc[c]), str(old["name"].iloc[c]))
            for r, c in zip(rows, cols, strict=True) if dist[r, c] <= max_distance}


def assign_needs_segments(store: Any, as_of: Any, config: Any = None, *,
                          write: bool = True) -> NeedsResult:
    """Segment every customer who bought in the look-back window; store the centroids."""
    from sklearn.preprocessing import StandardScaler

    from onetoone.differentiate.settings import NeedsSettings

    settings = getattr(config, "needs", config) or NeedsSettings()
    con = connection(store)
    if as_of is None:
        as_of = con.execute("SELECT max(occurred_at) FROM transactions "
                            "WHERE customer_id IS NOT NULL").fetchall()[0][0]
        if as_of is None:
            raise NeedsError("There is no transaction of an identified customer to segment.")
    as_of_ts = pd.Timestamp(as_of).normalize()
    feats = needs_features(con, as_of_ts, settings.lookback_days,
                           tuple(settings.exclude_statuses), settings.max_categories)
    notes: list[str] = []
    if len(feats) < settings.min_customers:
        raise NeedsError(f"{len(feats)} customers bought in the {settings.lookback_days} days "
                         f"before {as_of_ts.date()}, fewer than min_customers = "
                         f"{settings.min_customers}.",
                         hint="Lower [needs] min_customers or lengthen lookback_days.")
    filled = feats.fillna(feats.mean()).fillna(0.0)  # imputed values sit at the mean: z = 0
    varying = filled.columns[filled.std() > 1e-9]
    filled = filled[varying]
    scaler = StandardScaler().fit(filled)
    Z = scaler.transform(filled)
    rng = np.random.default_rng(settings.seed)
    sample = Z if len(Z) <= settings.sample_size else Z[
        rng.choice(len(Z), settings.sample_size, replace=False)]
    k, model, silhouette = _choose_k(sample, settings.min_segments, settings.max_segments,
                                     settings.seed)
    labels = model.predict(Z)
    mean = pd.Series(scaler.mean_, index=varying)
    scale = pd.Series(scaler.scale_, index=varying).replace(0, 1.0)
    centroids = pd.DataFrame(scaler.inverse_transform(model.cluster_centers_), columns=varying)
    names, descriptions = describe(centroids, mean, scale)
    previous = _previous(con)
    matched = _match(centroids, previous, scale, settings.match_distance)
    used = {int(m.group(1)) for s in previous["segment_id"]
            if (m := re.fullmatch(r"S(\d+)", str(s)))}
    next_id = max(used, default=0) + 1
    ids, final_names = [], []
    for i in range(k):
        if i in matched:
            seg_id, name = matched[i]
        else:
            seg_id, name = f"S{next_id}", names[i]
            next_id += 1
        ids.append(seg_id)
        final_names.append(name)
    seen: dict[str, int] = {}
    for i, name in enumerate(final_names):  # two segments never share a name
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            final_names[i] = f"{name} ({ids[i]})"
    counts = np.bincount(labels, minlength=k)
    segments = pd.DataFrame({
        "segment_id": ids, "name": final_names, "description": descriptions,
        "customers": counts,
        "centroid": [json.dumps({c: float(v) for c, v in row.items()})
                     for _, row in centroids.iterrows()],
    })
    assignments = pd.Series(np.asarray(final_names, dtype=object)[labels], index=feats.index,
                            name="needs_segment")
    if matched:
        notes.append(f"Needs segments: {len(matched)} of {k} continue earlier segments.")
    notes.append(f"Needs segments: {k} chosen by silhouette ({silhouette:.2f}) over "
                 f"{len(feats):,} customers with a purchase in {settings.lookback_days} days.")
    if write:
        now = utcnow()
        rows = segments.assign(as_of=as_of_ts.date(), silhouette=silhouette, created_at=now)
        with frame_view(con, "_needs_rows", rows):
            con.execute("DELETE FROM needs_segments WHERE as_of = ?", [as_of_ts.date()])
            con.execute("INSERT INTO needs_segments SELECT as_of, segment_id, name, "
                        "description, customers, centroid::JSON, silhouette, created_at "
                        "FROM _needs_rows")
    return NeedsResult(as_of=as_of_ts, assignments=assignments, segments=segments,
                       features=feats, silhouette=silhouette, notes=notes)
