"""Field encryption: key providers, the keyring, the field envelope, blind indexes, shredding.

Nothing outside this package calls AESGCM, HKDF or HMAC on case data.
"""
