"""Interact: events in real time, consent, contact policy, customer profiles for decisions.

See docs/service.md.
"""
