"""Needs segments: recovered from behaviour, named from what sets them apart, stable across runs."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from _defection_data import synthetic_base
from sklearn.metrics import adjusted_rand_score

from onetoone.config import NeedsSettings
from onetoone.differentiate.needs import NeedsError, assign_needs_segments, needs_features
from onetoone.store import Store

SETTINGS = NeedsSettings(min_segments=2, max_segments=5, min_customers=20)


@pytest.fixture(scope="module")
def store():
    store = Store(":memory:")
    truth = synthetic_base(store.con, n=500, silos=())
    store.truth = truth  # type: ignore[attr-defined]
    yield store
    store.close()


def test_features_from_items_products_and_channels(store):
    feats = needs_features(store, "2024-12-31", 365)
    assert {"web_share", "promo_share", "price_level", "log_basket", "log_purchases",
            "share:mode", "share:cuisine"} <= set(feats.columns)
    shares = feats[[c for c in feats.columns if c.startswith("share:")]]
    assert shares.sum(axis=1).round(6).eq(1).all()
    fashion = store.truth["segment"].reindex(feats.index) == "fashion"
    assert feats.loc[fashion, "web_share"].mean() > 0.7 > 0.3 > feats.loc[~fashion,
                                                                           "web_share"].mean()


def test_segments_recover_the_needs_and_read_well(store):
    res = assign_needs_segments(store, "2024-12-31", SETTINGS)
    truth = store.truth["segment"].reindex(res.assignments.index)
    assert adjusted_rand_score(truth, res.assignments) > 0.5
    assert 2 <= len(res.segments) <= 5 and res.silhouette > 0
    assert res.segments["name"].is_unique
    names = " ".join(res.segments["name"])
    assert any(w in names for w in ("web shoppers", "store shoppers", "mode", "cuisine",
                                    "linge", "chaussures", "promotion"))
    assert res.segments["description"].str.contains("vs .* on average").all()
    stored = store.execute("SELECT segment_id, name, centroid FROM needs_segments").df()
    assert len(stored) == len(res.segments)
    assert "web_share" in json.loads(stored["centroid"].iloc[0])


def test_a_new_run_keeps_ids_and_names(store):
    first = assign_needs_segments(store, "2024-10-31", SETTINGS)
    second = assign_needs_segments(store, "2024-11-30",
                                   SETTINGS.model_copy(update={"seed": 5}))
    assert set(second.segments["segment_id"]) & set(first.segments["segment_id"])
    both = first.assignments.index.intersection(second.assignments.index)
    same = (first.assignments[both] == second.assignments[both]).mean()
    assert same > 0.8
    stored = store.execute("SELECT DISTINCT as_of FROM needs_segments").df()
    assert len(stored) >= 2


def test_too_few_customers_is_a_clear_error():
    small = Store(":memory:")
    frame = pd.DataFrame({"customer_id": ["a", "b"], "amount": [1.0, 2.0],
                          "occurred_at": pd.to_datetime(["2024-01-01", "2024-01-05"])})
    small.con.register("f", frame)
    small.con.execute("INSERT INTO transactions (customer_id, amount, occurred_at) "
                      "SELECT * FROM f")
    with pytest.raises(NeedsError, match="fewer than min_customers"):
        assign_needs_segments(small, "2024-01-31", NeedsSettings())
    empty = Store(":memory:")
    with pytest.raises(NeedsError, match="no transaction"):
        assign_needs_segments(empty, "2024-01-31", NeedsSettings())
