"""Differentiate customers by value, defection risk and needs."""
