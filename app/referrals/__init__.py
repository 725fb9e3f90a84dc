"""Referrals to partner organisations: partners, consents, signed and encrypted packages, status answers."""
