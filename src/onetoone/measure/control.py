"""Control groups: who is held out, decided by a salted hash of the customer id.

The assignment is stable (the same customer stays in or out across runs, channels and restarts)
and independent of everything the engine knows, which is what makes the comparison with the
treated customers unbiased. The universal control group gets no marketing action at all; a
per-action holdout withholds only that action; an A/B/n test gives each customer one of its arms.
"""

from __future__ import annotations

import hashlib


def uniform(*parts: str) -> float:
    """A uniform in (0, 1) from a stable hash of the parts."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / 2.0**64


def in_universal_control(customer_id: str, share: float, salt: str) -> bool:
    return share > 0 and uniform(salt, "universal", customer_id) < share


def in_holdout(customer_id: str, action_id: str, share: float, salt: str) -> bool:
    return share > 0 and uniform(salt, "holdout", action_id, customer_id) < share


def ab_arm(customer_id: str, test: str, arms: list[str], salt: str) -> str:
    """The arm of an A/B/n test this customer is given, for good (equal shares)."""
    index = int(uniform(salt, "ab_test", test, customer_id) * len(arms))
    return arms[min(index, len(arms) - 1)]
