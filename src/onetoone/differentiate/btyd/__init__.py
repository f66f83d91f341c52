"""Buy-till-you-die value models: who is still a customer, how much will each one buy.

BG/NBD, Pareto/NBD, MBG/NBD (continuous time), BG/BB (discrete opportunities), the Gamma-Gamma
spend model, CLV, and the transactions-to-summaries step they all read. Validated against the
published CDNOW and donation figures; see docs/value-models.md.
"""

from onetoone.differentiate.btyd._clv import clv
from onetoone.differentiate.btyd._summary import summary_from_transactions
from onetoone.differentiate.btyd.bgbb import BGBB
from onetoone.differentiate.btyd.bgnbd import BGNBD
from onetoone.differentiate.btyd.gammagamma import GammaGamma
from onetoone.differentiate.btyd.modified_bgnbd import ModifiedBGNBD
from onetoone.differentiate.btyd.paretonbd import ParetoNBD

__all__ = [
    "BGBB",
    "BGNBD",
    "GammaGamma",
    "ModifiedBGNBD",
    "ParetoNBD",
    "clv",
    "summary_from_transactions",
]
