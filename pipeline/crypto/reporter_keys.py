"""What a futures company holds: the exported public keyring, and encryption under it.

`export_document` builds the JSON that `lookthrough keys export-public` writes; `ReporterKeys`
loads it and `encrypt(vendor_id, key_version, plaintext)` returns the blob of profile §4.
Format (`PUBLIC_FORMAT_DOC`): {"format": "lookthrough-public-keys/1", "entries": [{"version",
"suite", "environment", "not_before"?, "not_after"?, "public_key_pem"? | "pre_shared_key_hex"?}]}.
A file that carries a pre-shared key must be owner-only. Errors: ConfigError.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline.crypto.files import check_owner_only
from pipeline.crypto.keyfile import (
    Environment,
    KeyEntry,
    KeyStatus,
    parse_choice,
    parse_optional_instant,
    parse_suite,
)
from pipeline.crypto.material import encryptor_from_public_pem, sm4_key_from_hex
from pipeline.crypto.suites import Encryptor, Sm4Encryptor, Suite, associated_data
from pipeline.errors import ConfigError

FORMAT = "lookthrough-public-keys/1"
_FIELDS = frozenset(
    {"version", "suite", "environment", "not_before", "not_after", "public_key_pem", "pre_shared_key_hex"}
)

PUBLIC_FORMAT_DOC = """\
### Public keyring (what reporters receive)

`lookthrough keys export-public` writes the active keys only (retired and revoked keys must
not be used for new reports):

```json
{"format": "lookthrough-public-keys/1",
 "entries": [
  {"version": 7, "suite": "X25519-HKDF-SHA256/AES-256-GCM", "environment": "production",
   "not_after": "2026-01-01T00:00:00+08:00", "public_key_pem": "-----BEGIN PUBLIC KEY-----\\n..."},
  {"version": 9, "suite": "SM4-GCM", "environment": "test", "pre_shared_key_hex": "00112233..."}
 ]}
```

SM4-GCM is symmetric: its key is exported only with `--include-psk`, and a file holding one
must be kept owner-only (mode 0600) by the reporter as well.
"""


def export_document(keys: Iterable[tuple[KeyEntry, str | None, bytes | None]]) -> dict[str, Any]:
    """The public keyring for (entry, public key PEM, SM4 pre-shared key) triples."""
    entries: list[dict[str, Any]] = []
    for entry, pem, psk in keys:
        item: dict[str, Any] = {
            "version": entry.version,
            "suite": entry.suite.label,
            "environment": entry.environment.value,
        }
        if entry.not_before is not None:
            item["not_before"] = entry.not_before.isoformat()
        if entry.not_after is not None:
            item["not_after"] = entry.not_after.isoformat()
        if pem is not None:
            item["public_key_pem"] = pem
        if psk is not None:
            item["pre_shared_key_hex"] = psk.hex()
        entries.append(item)
    return {"format": FORMAT, "entries": entries}


class ReporterKeys:
    """Encrypts terminal information for the monitoring center; holds public keys and PSKs only."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[tuple[KeyEntry, Encryptor | None]]) -> None:
        """Keys as (entry, encryptor); None for an SM4 entry exported without its key."""
        self._keys = {entry.version: (entry, encryptor) for entry, encryptor in keys}

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReporterKeys:
        """Read an export-public file; one carrying a pre-shared key must be owner-only."""
        file = Path(path)
        try:
            document = json.loads(file.read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read {file}: {exc.strerror}") from None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ConfigError(f"public keyring {file} is not valid JSON") from None
        keys = cls.from_document(document, str(file))
        if any(entry.suite is Suite.SM4 and enc is not None for entry, enc in keys._keys.values()):
            check_owner_only(file)
        return keys

    @classmethod
    def from_document(cls, document: object, name: str = "public keyring") -> ReporterKeys:
        """Parse the JSON document that `export_document` builds."""
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ConfigError(f'{name}: expected an object with "format": "{FORMAT}"')
        raw_entries = document.get("entries")
        if set(document) != {"format", "entries"} or not isinstance(raw_entries, list):
            raise ConfigError(f'{name}: expected exactly "format" and an "entries" list')
        keys = [_parse_entry(raw, f"{name}: entry {index}") for index, raw in enumerate(raw_entries)]
        if len({entry.version for entry, _ in keys}) != len(keys):
            raise ConfigError(f"{name}: a key version appears more than once")
        return cls(keys)

    def entries(self) -> list[KeyEntry]:
        return [self._keys[version][0] for version in sorted(self._keys)]

    def current_version(self, environment: str, now_ms: int | None = None) -> int:
        """The newest usable key version for `environment` at `now_ms` (UTC epoch ms)."""
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        usable = [
            entry.version
            for entry, encryptor in self._keys.values()
            if encryptor is not None and entry.environment == environment and entry.valid_at(now)
        ]
        if not usable:
            raise ConfigError(f"no usable {environment} key at this time")
        return max(usable)

    def encrypt(self, vendor_id: str, key_version: int, plaintext: bytes) -> bytes:
        """The blob for `plaintext` (≤ 1024 bytes), bound to `vendor_id@key_version`."""
        if not vendor_id or not vendor_id.isascii() or not vendor_id.isprintable() or "@" in vendor_id:
            raise ValueError("vendor_id must be non-empty printable ASCII without '@'")
        entry, encryptor = self._keys.get(key_version, (None, None))
        if entry is None:
            raise ConfigError(f"key version {key_version} is not in the public keyring")
        if encryptor is None:
            raise ConfigError(f"key version {key_version} ({entry.suite.label}) was exported without its key")
        return encryptor.encrypt(plaintext, associated_data(vendor_id, key_version))

    def __repr__(self) -> str:
        return f"ReporterKeys(versions={sorted(self._keys)})"


def _parse_entry(raw: object, where: str) -> tuple[KeyEntry, Encryptor | None]:
    if not isinstance(raw, dict) or set(raw) - _FIELDS:
        raise ConfigError(f"{where}: expected an object with fields among {sorted(_FIELDS)}")
    version = raw.get("version")
    if type(version) is not int or version < 1:
        raise ConfigError(f"{where}: version must be a positive integer")
    where = f"{where} (version {version})"
    suite = parse_suite(raw.get("suite"), where)
    environment = parse_choice(Environment, raw.get("environment"), f"{where}: environment")
    entry = KeyEntry(
        version=version,
        suite=suite,
        environment=environment,
        status=KeyStatus.ACTIVE,  # only active keys are exported
        not_before=parse_optional_instant(raw.get("not_before"), f"{where}: not_before"),
        not_after=parse_optional_instant(raw.get("not_after"), f"{where}: not_after"),
    )
    pem, psk = raw.get("public_key_pem"), raw.get("pre_shared_key_hex")
    if suite is Suite.SM4:
        if pem is not None:
            raise ConfigError(f"{where}: SM4-GCM has no public key")
        if psk is None:
            return entry, None
        if not isinstance(psk, str):
            raise ConfigError(f"{where}: pre_shared_key_hex must be a string")
        return entry, Sm4Encryptor(sm4_key_from_hex(psk.encode(), where))
    if not isinstance(pem, str) or psk is not None:
        raise ConfigError(f"{where}: {suite.label} needs public_key_pem and no pre-shared key")
    return entry, encryptor_from_public_pem(suite, pem.encode(), where)

