"""The keyring file (format: see pipeline.crypto.keyring): parse and validate, read and write.

`parse_keyring(document, base_dir)` turns the JSON document into `EntrySpec`s and raises
ConfigError for anything unknown, missing or out of range. `read_keyring` also insists the
file is owner-only. Nothing here reads key material; `KeySource.read` does, on demand.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from pipeline.crypto.files import read_owner_only, write_owner_only
from pipeline.crypto.suites import Suite
from pipeline.errors import ConfigError

MAX_KEY_VERSION = 2**31 - 1  # the vendor APIs carry the version as a signed 32-bit int
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_E = TypeVar("_E", bound=StrEnum)
_ENTRY_FIELDS = frozenset(
    {"version", "suite", "environment", "status", "not_before", "not_after", "private_key", "public_key"}
)


class Environment(StrEnum):
    PRODUCTION = "production"
    TEST = "test"


class KeyStatus(StrEnum):
    ACTIVE = "active"  # reporters encrypt with it, the pipeline decrypts
    RETIRED = "retired"  # decrypt only: late reports still arrive under it
    REVOKED = "revoked"  # rejected (E202); final


@dataclass(frozen=True)
class KeyEntry:
    """Metadata of one key version. It holds no key material, so it is safe to print and log.

    The validity window is `not_before <= now < not_after`; either end may be open.
    """

    version: int
    suite: Suite
    environment: Environment
    status: KeyStatus
    not_before: datetime | None = None
    not_after: datetime | None = None

    def valid_at(self, now_ms: int) -> bool:
        low, high = window_ms(self)
        return (low is None or now_ms >= low) and (high is None or now_ms < high)

    def validity(self) -> str:
        """The window as text for operators, e.g. "2025-01-01T00:00:00+08:00 .. (open)"."""
        if self.not_before is None and self.not_after is None:
            return "always"
        low = self.not_before.isoformat() if self.not_before else "(open)"
        high = self.not_after.isoformat() if self.not_after else "(open)"
        return f"{low} .. {high}"


def window_ms(entry: KeyEntry) -> tuple[int | None, int | None]:
    """The entry's validity window in UTC epoch milliseconds."""
    low = None if entry.not_before is None else int(entry.not_before.timestamp() * 1000)
    high = None if entry.not_after is None else int(entry.not_after.timestamp() * 1000)
    return low, high


@dataclass(frozen=True)
class KeySource:
    """Where key material lives: a file (must be owner-only) or an environment variable."""

    file: Path | None = None
    env: str | None = None

    def read(self, *, secret: bool = True) -> bytes:
        """The material's bytes; a secret's file must be owner-only (a public key's need not)."""
        if self.file is not None:
            if secret:
                return read_owner_only(self.file)
            try:
                return self.file.read_bytes()
            except OSError as exc:
                raise ConfigError(f"cannot read {self.file}: {exc.strerror}") from None
        value = os.environ.get(self.env or "")
        if value is None:
            raise ConfigError(f"environment variable {self.env} is not set")
        return value.encode()

    def __str__(self) -> str:
        return f"file {self.file}" if self.file is not None else f"environment variable {self.env}"


@dataclass(frozen=True)
class EntrySpec:
    """A parsed keyring entry: its metadata and where its key material lives."""

    entry: KeyEntry
    private_key: KeySource
    public_key: KeySource | None = None


def parse_instant(text: str, what: str) -> datetime:
    """An ISO-8601 instant with a UTC offset ("Z" allowed); ConfigError otherwise."""
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{what} is not an ISO-8601 time: {text!r}") from None
    if instant.tzinfo is None:
        # A bare local time is ambiguous between the operators' zone and UTC.
        raise ConfigError(f"{what} needs a UTC offset, e.g. 2025-01-01T00:00:00+08:00: {text!r}")
    return instant


def read_keyring(path: Path) -> tuple[dict[str, Any], list[EntrySpec]]:
    """The raw document (for operators to edit) and its parsed entries."""
    try:
        document = json.loads(read_owner_only(path))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"keyring {path} is not valid JSON (line {getattr(exc, 'lineno', '?')})") from None
    return document, parse_keyring(document, path.parent, str(path))


def write_keyring(path: Path, document: dict[str, Any]) -> None:
    """Validate `document`, then replace the keyring file atomically with mode 0600."""
    parse_keyring(document, path.parent, str(path))
    write_owner_only(path, (json.dumps(document, indent=2) + "\n").encode())


def parse_keyring(document: object, base_dir: Path, name: str = "keyring") -> list[EntrySpec]:
    """The entries of a keyring document; relative key paths are relative to `base_dir`."""
    if not isinstance(document, dict) or set(document) != {"entries"}:
        raise ConfigError(f'{name}: expected an object with exactly one key, "entries"')
    raw_entries = document["entries"]
    if not isinstance(raw_entries, list):
        raise ConfigError(f'{name}: "entries" must be a list')
    specs: list[EntrySpec] = []
    seen: set[int] = set()
    for index, raw in enumerate(raw_entries):
        spec = _parse_entry(raw, base_dir, f"{name}: entry {index}")
        if spec.entry.version in seen:
            raise ConfigError(f"{name}: key version {spec.entry.version} appears more than once")
        seen.add(spec.entry.version)
        specs.append(spec)
    return specs


def _parse_entry(raw: object, base_dir: Path, where: str) -> EntrySpec:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected an object")
    unknown = set(raw) - _ENTRY_FIELDS
    if unknown:
        raise ConfigError(f"{where}: unknown fields {sorted(unknown)}")
    version = raw.get("version")
    if type(version) is not int or not 1 <= version <= MAX_KEY_VERSION:
        raise ConfigError(f"{where}: version must be an integer from 1 to {MAX_KEY_VERSION}")
    where = f"{where} (version {version})"
    entry = KeyEntry(
        version=version,
        suite=parse_suite(raw.get("suite"), where),
        environment=parse_choice(Environment, raw.get("environment"), f"{where}: environment"),
        status=parse_choice(KeyStatus, raw.get("status"), f"{where}: status"),
        not_before=parse_optional_instant(raw.get("not_before"), f"{where}: not_before"),
        not_after=parse_optional_instant(raw.get("not_after"), f"{where}: not_after"),
    )
    if entry.not_before and entry.not_after and entry.not_before >= entry.not_after:
        raise ConfigError(f"{where}: not_before must be earlier than not_after")
    private_key = _parse_source(raw.get("private_key"), base_dir, f"{where}: private_key")
    public_key = None
    if raw.get("public_key") is not None:
        if entry.suite is Suite.SM4:
            raise ConfigError(f"{where}: SM4-GCM is symmetric and has no public_key")
        public_key = _parse_source(raw["public_key"], base_dir, f"{where}: public_key")
    return EntrySpec(entry, private_key, public_key)


def parse_suite(value: object, where: str) -> Suite:
    try:
        return Suite.from_label(value if isinstance(value, str) else "")
    except ValueError:
        pass  # raised outside the handler: one message, no chained context
    raise ConfigError(f"{where}: suite must be one of {[suite.label for suite in Suite]}")


def parse_choice(kind: type[_E], value: object, where: str) -> _E:
    choices = [member.value for member in kind]
    if value not in choices:
        raise ConfigError(f"{where} must be one of {choices}")
    return kind(value)


def parse_optional_instant(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be an ISO-8601 string")
    return parse_instant(value, where)


def _parse_source(value: object, base_dir: Path, where: str) -> KeySource:
    if isinstance(value, dict) and len(value) == 1:
        file, env = value.get("file"), value.get("env")
        if isinstance(file, str) and file:
            return KeySource(file=base_dir / file)  # an absolute path replaces base_dir
        if isinstance(env, str) and _ENV_NAME.fullmatch(env):
            return KeySource(env=env)
    raise ConfigError(f'{where} must be {{"file": "path"}} or {{"env": "VARIABLE_NAME"}}')
