"""Crypto errors. Messages name what failed, never a key, a plaintext or a ciphertext."""


class CryptoError(Exception):
    """Base for every encryption failure."""


class KeyFileError(CryptoError):
    """The key file is missing, malformed or readable by others."""


class DecryptionError(CryptoError):
    """A value could not be opened: wrong key, wrong place, tampered or shredded."""


class UnknownKeyError(CryptoError):
    """A ciphertext or wrapped key names a key id the keyring does not hold."""


class ShreddedError(DecryptionError):
    """The subject's data key was destroyed; its fields can never be read again."""
