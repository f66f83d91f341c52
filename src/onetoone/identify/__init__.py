"""Identify: one customer view across every silo.

Deterministic stitching on strong identifiers with guards against over-merging, probabilistic
matching (Fellegi & Sunter 1969, via Splink) for records that share none, a review band,
golden records, stable customer ids, audited manual merge and unmerge. See docs/identity.md.
"""

from onetoone.identify.resolver import IdentifyResult, IdentityResolver

__all__ = ["IdentifyResult", "IdentityResolver"]
