"""Helpline: secure-intake case tracker for hotlines serving people fleeing persecution."""

__version__ = "0.1.0"
