"""BG/BB against Fader, Hardie & Shang (2010): the 1995 donor cohort, 6 opportunities."""

from __future__ import annotations

import numpy as np
import pytest

from onetoone.differentiate.btyd import BGBB
from onetoone.errors import ModelError

# (x, t_x, number of donors) for n = 6, printed in the paper (also lifetimes' donations.csv).
DONATIONS = [
    (0, 0, 3464), (1, 1, 1091), (1, 2, 277), (1, 3, 129), (1, 4, 78), (1, 5, 119), (1, 6, 129),
    (2, 2, 613), (2, 3, 255), (2, 4, 155), (2, 5, 173), (2, 6, 234), (3, 3, 322), (3, 4, 181),
    (3, 5, 225), (3, 6, 357), (4, 4, 240), (4, 5, 284), (4, 6, 512), (5, 5, 335), (5, 6, 728),
    (6, 6, 1203),
]  # fmt: skip


@pytest.fixture(scope="module")
def donations() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = np.array(DONATIONS, dtype=float)
    return table[:, 0], table[:, 1], table[:, 2]


@pytest.fixture(scope="module")
def model(donations: tuple) -> BGBB:
    x, t_x, count = donations
    return BGBB().fit(x, t_x, 6, weights=count)


def test_bgbb_donation_parameters_and_log_likelihood(model: BGBB, donations: tuple) -> None:
    assert donations[2].sum() == 11104
    expected = {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.783}
    for name, value in expected.items():
        assert model.params_[name] == pytest.approx(value, abs=6e-4)
    assert model.log_likelihood_ == pytest.approx(-33225.6, abs=0.05)
    assert model.n_customers_ == 11104


def test_bgbb_formulas_agree(model: BGBB) -> None:
    # eq. 13 for a customer with no history equals eq. 7; eq. 11 gives delta/(gamma+delta).
    future = np.arange(1, 8)
    np.testing.assert_allclose(
        model.expected_purchases(future, 0, 0, 0), model.expected_purchases_new(future), rtol=1e-10
    )
    g, d = model.params_["gamma"], model.params_["delta"]
    assert model.p_alive(0, 0, 0) == pytest.approx(d / (g + d), rel=1e-12)


def test_bgbb_monotone_in_recency(model: BGBB) -> None:
    alive = model.p_alive(3, np.array([3, 4, 5, 6]), 6)
    assert np.all(np.diff(alive) > 0)


def test_bgbb_rejects_inconsistent_summaries() -> None:
    with pytest.raises(ModelError, match="frequency <= recency"):
        BGBB().fit([3], [2], [6])
