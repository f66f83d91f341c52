"""Interact: events in real time, consent, customer profiles, the decision service, API keys.

See docs/service.md.
"""
