"""A write sent twice acts once: the API's Idempotency-Key."""
