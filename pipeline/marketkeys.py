"""A keyring for a synthetic market: one active key per suite, plus a revoked and a test key.

Used by the generator, the demo and the tests; operators use `lookthrough keys` instead.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.crypto.admin import export_public, generate_key, set_status
from pipeline.crypto.keyfile import Environment, KeyStatus
from pipeline.crypto.reporter_keys import ReporterKeys
from pipeline.crypto.suites import Suite
from pipeline.generate import KeySet

SUITES = {"x25519": Suite.X25519, "rsa": Suite.RSA, "sm4": Suite.SM4}


def create_market_keyring(directory: Path, suites: tuple[str, ...] = ("x25519", "rsa", "sm4")) -> tuple[Path, KeySet]:
    """Create `directory/keyring.json` and the reporter-side `KeySet` that matches it."""
    keyring = directory / "keyring.json"
    active = tuple(generate_key(keyring, SUITES[name]).version for name in suites)
    revoked = generate_key(keyring, Suite.X25519).version
    test = generate_key(keyring, Suite.X25519, environment=Environment.TEST).version
    # Exported before revocation, like a reporter who never heard the key was revoked.
    reporter = ReporterKeys.from_document(export_public(keyring, include_psk=True))
    set_status(keyring, revoked, KeyStatus.REVOKED)
    return keyring, KeySet(reporter, active, revoked, test)
