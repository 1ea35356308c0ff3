"""The pipeline's versioned keyring: key version → suite, environment, status, validity, key.

`Keyring.load(path, pipeline_environment)` reads the keyring file and builds one decryptor per
usable entry; `decrypt` opens a blob or raises DecryptError E201–E205 (profile §7). The file
format (also `KEYRING_FORMAT_DOC`, for the README):

    {"entries": [{
        "version": 7,                                   # positive integer, unique
        "suite": "X25519-HKDF-SHA256/AES-256-GCM",      # or "RSA2048-OAEP-SHA256/AES-256-GCM", "SM4-GCM"
        "environment": "production",                    # or "test"
        "status": "active",                             # or "retired" (decrypt only), "revoked" (reject)
        "not_before": "2025-01-01T00:00:00+08:00",      # optional; ISO-8601 with UTC offset
        "not_after": "2026-01-01T00:00:00+08:00",       # optional; exclusive
        "private_key": {"file": "keys/v7-x25519.pem"},  # or {"env": "VARIABLE_NAME"}
        "public_key": {"file": "keys/v7-x25519.pub.pem"}  # optional; checked against private_key
    }]}

Relative paths are relative to the keyring file. Private keys are unencrypted PKCS8 PEM (RSA
2048, X25519); an SM4 key is 32 hex digits. The keyring and private key files must be
owner-only (mode 0600); otherwise loading fails with ConfigError.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from pipeline.crypto.keyfile import Environment, KeyEntry, KeyStatus, read_keyring, window_ms
from pipeline.crypto.material import load_decryptor
from pipeline.crypto.suites import Decryptor, associated_data
from pipeline.errors import ConfigError, DecryptError

KEYRING_FORMAT_DOC = """\
### Keyring file

The pipeline's keyring (`lookthrough keys generate` creates and maintains it) is a JSON file,
mode 0600:

```json
{"entries": [
  {"version": 7,
   "suite": "X25519-HKDF-SHA256/AES-256-GCM",
   "environment": "production",
   "status": "active",
   "not_before": "2025-01-01T00:00:00+08:00",
   "not_after": "2026-01-01T00:00:00+08:00",
   "private_key": {"file": "keys/v7-x25519.pem"},
   "public_key": {"file": "keys/v7-x25519.pub.pem"}}
]}
```

- `version`: the key version reporters put in the report line; a positive integer, unique.
- `suite`: `RSA2048-OAEP-SHA256/AES-256-GCM` (blob byte 01), `X25519-HKDF-SHA256/AES-256-GCM` (02)
  or `SM4-GCM` (03).
- `environment`: `production` or `test`; a production pipeline rejects blobs under a test key (E203).
- `status`: `active`; `retired` (still decrypts, no longer exported to reporters); `revoked`
  (every blob rejected with E202; final).
- `not_before`, `not_after`: optional validity window, ISO-8601 with a UTC offset; `not_after` is
  exclusive. Outside the window: E202.
- `private_key`: `{"file": "path"}` (relative to the keyring file) or `{"env": "VARIABLE"}`;
  unencrypted PKCS8 PEM for RSA-2048 and X25519, 32 hex digits for the SM4 pre-shared key.
- `public_key`: optional, RSA and X25519 only, same forms; when present it must match the private key.

The keyring and every private key file must be readable by their owner only (`chmod 600`);
the pipeline refuses to start otherwise. Key material for revoked entries, and for test
entries on a production pipeline, is not read.
"""


class _Slot:
    """What `decrypt` needs for one version, resolved once at load."""

    __slots__ = ("decrypt", "entry", "not_after", "not_before", "refusal", "suite_byte", "windowed")

    def __init__(self, entry: KeyEntry, decryptor: Decryptor | None, refusal: tuple[str, str] | None) -> None:
        self.entry = entry
        self.suite_byte = int(entry.suite)
        self.refusal = refusal
        self.decrypt: Callable[[bytes, bytes], bytes] = decryptor.decrypt if decryptor else _refused
        self.not_before, self.not_after = window_ms(entry)
        self.windowed = self.not_before is not None or self.not_after is not None


def _refused(blob: bytes, associated_data: bytes) -> bytes:
    raise AssertionError("a refused key version never reaches its decryptor")


class Keyring:
    """Decrypts blobs by key version for a pipeline running in one environment."""

    __slots__ = ("_environment", "_slots")

    def __init__(
        self, pipeline_environment: str, keys: Iterable[tuple[KeyEntry, Decryptor | None]]
    ) -> None:
        """Keys as (entry, decryptor); the decryptor may be None where the entry is refused anyway."""
        self._environment = _parse_environment(pipeline_environment)
        self._slots: dict[int, _Slot] = {}
        for entry, decryptor in keys:
            refusal = self._refusal(entry)
            if refusal is None and decryptor is None:
                raise ConfigError(f"key version {entry.version} is usable but has no decryptor")
            if decryptor is not None and decryptor.suite is not entry.suite:
                raise ConfigError(f"key version {entry.version}: decryptor suite differs from the entry's")
            self._slots[entry.version] = _Slot(entry, decryptor, refusal)

    @classmethod
    def load(cls, path: str | os.PathLike[str], pipeline_environment: str) -> Keyring:
        """Read the keyring file and the key material of every entry this pipeline may use."""
        environment = _parse_environment(pipeline_environment)
        _, specs = read_keyring(Path(path))
        keys: list[tuple[KeyEntry, Decryptor | None]] = []
        for spec in specs:
            usable = _refusal(spec.entry, environment) is None
            keys.append((spec.entry, load_decryptor(spec) if usable else None))
        return cls(environment, keys)

    def entries(self) -> list[KeyEntry]:
        """Every entry's metadata, by version; no key material."""
        return [self._slots[version].entry for version in sorted(self._slots)]

    def decrypt(self, vendor_id: str, key_version: int, blob: bytes, now_ms: int | None = None) -> bytes:
        """The plaintext of `blob`, reported under `vendor_id@key_version` at `now_ms` (UTC epoch ms).

        Raises DecryptError: E201 unknown version, E203 test key on production, E202 revoked or
        outside the validity window, E205 suite byte differs from the version's or malformed blob,
        E204 authentication failure.
        """
        slot = self._slots.get(key_version)
        if slot is None:
            raise DecryptError("E201", f"unknown key version {key_version}")
        if slot.refusal is not None:
            raise DecryptError(*slot.refusal)
        if slot.windowed:
            now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
            if (slot.not_before is not None and now < slot.not_before) or (
                slot.not_after is not None and now >= slot.not_after
            ):
                raise DecryptError("E202", f"key version {key_version} is outside its validity window")
        if not blob or blob[0] != slot.suite_byte:
            suite = slot.entry.suite.label
            raise DecryptError("E205", f"blob suite is not key version {key_version}'s {suite}")
        return slot.decrypt(blob, associated_data(vendor_id, key_version))

    def _refusal(self, entry: KeyEntry) -> tuple[str, str] | None:
        return _refusal(entry, self._environment)

    def __repr__(self) -> str:
        return f"Keyring(environment={self._environment.value!r}, versions={sorted(self._slots)})"


def _refusal(entry: KeyEntry, environment: Environment) -> tuple[str, str] | None:
    """The (code, message) every blob under `entry` gets regardless of content, if any."""
    if environment is Environment.PRODUCTION and entry.environment is Environment.TEST:
        return "E203", f"key version {entry.version} is a test key; this pipeline is production"
    if entry.status is KeyStatus.REVOKED:
        return "E202", f"key version {entry.version} is revoked"
    return None


def _parse_environment(value: str) -> Environment:
    try:
        return Environment(value)
    except ValueError:
        pass  # raised outside the handler: one message, no chained context
    raise ConfigError(f"pipeline environment must be one of {[e.value for e in Environment]}, not {value!r}")
