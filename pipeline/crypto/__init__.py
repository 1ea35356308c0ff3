"""Ciphertext suites and keyrings of profile §4.

The pipeline opens blobs with `Keyring` (private keys, by key version); reporters seal them
with `ReporterKeys` (the exported public keyring). Operators manage both with `lookthrough keys`.
"""

from pipeline.crypto.keyfile import Environment, KeyEntry, KeyStatus
from pipeline.crypto.keyring import KEYRING_FORMAT_DOC, Keyring
from pipeline.crypto.reporter_keys import PUBLIC_FORMAT_DOC, ReporterKeys
from pipeline.crypto.suites import MAX_PLAINTEXT, Suite, associated_data

__all__ = [
    "KEYRING_FORMAT_DOC",
    "MAX_PLAINTEXT",
    "PUBLIC_FORMAT_DOC",
    "Environment",
    "KeyEntry",
    "KeyStatus",
    "Keyring",
    "ReporterKeys",
    "Suite",
    "associated_data",
]
