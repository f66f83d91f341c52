"""Customize: the actions catalog, the contact policy, arbitration and adaptive propensities.

One decision engine picks, for this customer, now, on this channel, the next best action (or
none) under the customer's consent and the contact policy; see docs/service.md.
"""
