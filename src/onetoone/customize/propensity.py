"""Adaptive propensities: a Beta-Bernoulli model per action and segment, Thompson sampling.

The response rate ``theta`` of an action in a segment has a Beta(alpha, beta) posterior:
``alpha = prior_strength * prior + successes``, ``beta = prior_strength * (1 - prior) +
failures``. A decision ranks actions by a draw ``theta ~ Beta(alpha, beta)`` (Thompson 1933;
Chapelle & Li 2011, "An Empirical Evaluation of Thompson Sampling"), so an action with little
evidence is tried in proportion to its chance of being the best, and every response moves the
posterior at once.

The draw is made by inverse CDF from a uniform that hashes (customer, action, period): the same
customer asking on two channels in the same period sees the same ranking, and decisions are
reproducible. Priors come from the action's ``prior_propensity`` or, with ``prior_score``, from
the mean of a batch score over the segment's customers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from scipy.special import betaincinv

SUCCESS = frozenset({"click", "accept", "conversion"})
FAILURE = frozenset({"ignore", "reject"})


@dataclass
class Posterior:
    prior_alpha: float
    prior_beta: float
    successes: float = 0.0
    failures: float = 0.0

    @property
    def alpha(self) -> float:
        return self.prior_alpha + self.successes

    @property
    def beta(self) -> float:
        return self.prior_beta + self.failures

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)


class AdaptivePropensities:
    """Posteriors of every (action, segment), updated by responses; thread-safe."""

    def __init__(
        self,
        priors: dict[str, tuple[float, float]],
        segment_priors: dict[tuple[str, str], float] | None = None,
    ) -> None:
        #: action -> (prior mean, prior strength)
        self.priors = priors
        self.segment_priors = segment_priors or {}
        self.posteriors: dict[tuple[str, str], Posterior] = {}
        self._lock = threading.Lock()

    def posterior(self, action: str, segment: str) -> Posterior:
        key = (action, segment)
        found = self.posteriors.get(key)
        if found is None:
            mean, strength = self.priors.get(action, (0.05, 20.0))
            mean = self.segment_priors.get(key, mean)
            mean = min(max(mean, 1e-4), 1 - 1e-4)
            found = Posterior(mean * strength, (1 - mean) * strength)
            with self._lock:
                found = self.posteriors.setdefault(key, found)
        return found

    def sample(self, actions: list[str], segment: str, seeds: Iterable[float]) -> np.ndarray:
        """Thompson draws for ``actions`` from uniforms ``seeds`` (inverse Beta CDF)."""
        posts = [self.posterior(a, segment) for a in actions]
        a = np.fromiter((p.alpha for p in posts), float, len(posts))
        b = np.fromiter((p.beta for p in posts), float, len(posts))
        u = np.fromiter(seeds, float, len(posts))
        return np.asarray(betaincinv(a, b, u), dtype=float)

    def means(self, actions: list[str], segment: str) -> np.ndarray:
        return np.array([self.posterior(a, segment).mean for a in actions], dtype=float)

    def update(self, action: str, segment: str, response: str) -> bool:
        """Count a response; True when it changed the posterior."""
        post = self.posterior(action, segment)
        with self._lock:
            if response in SUCCESS:
                post.successes += 1
            elif response in FAILURE:
                post.failures += 1
            else:
                return False
        return True

    def load(self, rows: Iterable[tuple[str, str, float, float]]) -> None:
        """Restore counts (action, segment, successes, failures) from the table."""
        for action, segment, successes, failures in rows:
            post = self.posterior(action, segment)
            post.successes, post.failures = float(successes), float(failures)

    def row(self, action: str, segment: str, now: datetime) -> dict[str, object]:
        post = self.posterior(action, segment)
        return {
            "action_id": action,
            "segment": segment,
            "successes": post.successes,
            "failures": post.failures,
            "alpha": post.alpha,
            "beta": post.beta,
            "updated_at": now,
        }
