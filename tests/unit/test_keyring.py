"""The keyring: file format, permissions, E201–E205 by key version, and the reporter side."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.crypto import Environment, KeyEntry, Keyring, KeyStatus, ReporterKeys, Suite
from pipeline.crypto.reporter_keys import export_document
from pipeline.crypto.suites import Encryptor, RsaEncryptor, Sm4Encryptor, X25519Encryptor
from pipeline.errors import ConfigError, DecryptError

SECRET = b"SECRET-DISK-SN-12345"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # once per module: slow
X25519_KEYS = {version: X25519PrivateKey.generate() for version in (2, 4, 5, 6, 8)}
SM4_KEYS = {3: os.urandom(16), 7: os.urandom(16)}
JAN_1 = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
JUL_1 = int(datetime(2025, 7, 1, tzinfo=UTC).timestamp() * 1000)
NOW = JAN_1 + 86_400_000


def _pem(key: rsa.RSAPrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _public_pem(key: rsa.RSAPrivateKey | X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.write_bytes(data)
    os.chmod(path, mode)


def _entry(version: int, suite: Suite, **extra: Any) -> dict[str, Any]:
    return {
        "version": version,
        "suite": suite.label,
        "environment": "production",
        "status": "active",
        "private_key": {"file": f"keys/v{version}"},
        **extra,
    }


def _make_keyring(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Versions: 1 RSA, 2 X25519 (+ public key), 3 SM4, 4 retired, 5 revoked, 6 test key,
    7 SM4 valid in 2025H1, 8 X25519 from an environment variable."""
    keys = directory / "keys"
    keys.mkdir(mode=0o700)
    _write(keys / "v1", _pem(RSA_KEY))
    for version, key in X25519_KEYS.items():
        _write(keys / f"v{version}", _pem(key))
    _write(keys / "v2.pub", _public_pem(X25519_KEYS[2]), 0o644)  # public: need not be owner-only
    for version, sm4 in SM4_KEYS.items():
        _write(keys / f"v{version}", sm4.hex().encode() + b"\n")
    monkeypatch.setenv("LT_TEST_KEY_V8", _pem(X25519_KEYS[8]).decode())
    entries = [
        _entry(1, Suite.RSA),
        _entry(2, Suite.X25519, public_key={"file": "keys/v2.pub"}),
        _entry(3, Suite.SM4),
        _entry(4, Suite.X25519, status="retired"),
        _entry(5, Suite.X25519, status="revoked"),
        _entry(6, Suite.X25519, environment="test"),
        _entry(7, Suite.SM4, not_before="2025-01-01T08:00:00+08:00", not_after="2025-07-01T00:00:00Z"),
        _entry(8, Suite.X25519, private_key={"env": "LT_TEST_KEY_V8"}),
    ]
    path = directory / "keyring.json"
    _write(path, json.dumps({"entries": entries}).encode())
    return path


@pytest.fixture
def keyring_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return _make_keyring(tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def shared_keyring(tmp_path_factory: pytest.TempPathFactory) -> Keyring:
    """One loaded production keyring for tests that only read it (loading validates RSA: slow)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        return Keyring.load(_make_keyring(tmp_path_factory.mktemp("shared"), monkeypatch), "production")


def _reporter() -> ReporterKeys:
    """The reporter side, built independently of the keyring file."""
    keys: list[tuple[KeyEntry, Encryptor]] = [(KeyEntry(1, *_meta(Suite.RSA)), RsaEncryptor(RSA_KEY.public_key()))]
    keys += [(KeyEntry(v, *_meta(Suite.X25519)), X25519Encryptor(k.public_key())) for v, k in X25519_KEYS.items()]
    keys += [(KeyEntry(v, *_meta(Suite.SM4)), Sm4Encryptor(k)) for v, k in SM4_KEYS.items()]
    return ReporterKeys(keys)


def _meta(suite: Suite) -> tuple[Suite, Environment, KeyStatus]:
    return suite, Environment.PRODUCTION, KeyStatus.ACTIVE


def _code(keyring: Keyring, vendor: str, version: int, blob: bytes, now_ms: int | None = NOW) -> str:
    with pytest.raises(DecryptError) as caught:
        keyring.decrypt(vendor, version, blob, now_ms)
    return caught.value.code


def test_round_trip_for_every_usable_version(keyring_path: Path) -> None:
    keyring, reporter = Keyring.load(keyring_path, "production"), _reporter()
    for version in (1, 2, 3, 4, 7, 8):  # 4 is retired: it still decrypts
        blob = reporter.encrypt("VENDOR01", version, SECRET)
        assert keyring.decrypt("VENDOR01", version, blob, now_ms=NOW) == SECRET


def test_entries_list_metadata(keyring_path: Path) -> None:
    entries = Keyring.load(keyring_path, "production").entries()
    assert [e.version for e in entries] == list(range(1, 9))
    assert entries[0] == KeyEntry(1, Suite.RSA, Environment.PRODUCTION, KeyStatus.ACTIVE)
    assert entries[6].not_before == datetime(2025, 1, 1, tzinfo=UTC)
    assert entries[6].valid_at(JAN_1) and not entries[6].valid_at(JAN_1 - 1) and not entries[6].valid_at(JUL_1)


def test_rejections_by_version(keyring_path: Path) -> None:
    keyring, reporter = Keyring.load(keyring_path, "production"), _reporter()
    blob = {v: reporter.encrypt("VENDOR01", v, SECRET) for v in (2, 3, 5, 6, 7)}
    assert _code(keyring, "VENDOR01", 99, blob[2]) == "E201"
    assert _code(keyring, "VENDOR01", 5, blob[5]) == "E202"  # revoked
    assert _code(keyring, "VENDOR01", 7, blob[7], now_ms=JAN_1 - 1) == "E202"  # not yet valid
    assert _code(keyring, "VENDOR01", 7, blob[7], now_ms=JUL_1) == "E202"  # not_after is exclusive
    assert keyring.decrypt("VENDOR01", 7, blob[7], now_ms=JAN_1) == SECRET
    assert _code(keyring, "VENDOR01", 7, blob[7], now_ms=None) == "E202"  # the real clock is past 2025H1
    assert _code(keyring, "VENDOR01", 6, blob[6]) == "E203"
    assert _code(keyring, "VENDOR01", 2, blob[3]) == "E205"  # an SM4 blob under an X25519 version
    assert _code(keyring, "VENDOR01", 2, b"") == "E205"
    assert _code(keyring, "VENDOR02", 2, blob[2]) == "E204"
    assert _code(keyring, "VENDOR01", 8, blob[2]) == "E204"  # same suite, other key


def test_test_pipeline_accepts_test_keys(keyring_path: Path) -> None:
    keyring = Keyring.load(keyring_path, "test")
    assert keyring.decrypt("V", 6, _reporter().encrypt("V", 6, SECRET)) == SECRET


def test_material_of_refused_entries_is_not_read(keyring_path: Path) -> None:
    (keyring_path.parent / "keys" / "v5").unlink()  # revoked
    (keyring_path.parent / "keys" / "v6").unlink()  # test key; this pipeline is production
    Keyring.load(keyring_path, "production")
    with pytest.raises(ConfigError, match="v6"):
        Keyring.load(keyring_path, "test")


@settings(deadline=None, max_examples=300)
@given(
    st.text(st.characters() | st.characters(categories=["Cs"]), max_size=30),  # lone surrogates too
    st.integers(min_value=-(2**40), max_value=2**40),
    st.binary(max_size=1400),
)
def test_arbitrary_input_raises_only_decrypt_errors(
    shared_keyring: Keyring, vendor: str, version: int, blob: bytes
) -> None:
    keyring = shared_keyring
    for candidate in (version, version % 8 + 1):
        for data in (blob, bytes([candidate % 3 + 1]) + blob):
            try:
                keyring.decrypt(vendor, candidate, data, NOW)
            except DecryptError as exc:
                assert exc.code in {"E201", "E202", "E203", "E204", "E205"}


def test_no_secret_in_errors_or_reprs(keyring_path: Path) -> None:
    keyring, reporter = Keyring.load(keyring_path, "production"), _reporter()
    key_texts = [SM4_KEYS[3].hex(), _pem(RSA_KEY).decode().splitlines()[1], "PRIVATE"]
    blob = reporter.encrypt("VENDOR01", 3, SECRET)
    errors: list[BaseException] = []
    for vendor, version, data in (("VENDOR02", 3, blob), ("VENDOR01", 2, blob), ("VENDOR01", 3, blob[:-1])):
        with pytest.raises(DecryptError) as caught:
            keyring.decrypt(vendor, version, data, NOW)
        errors.append(caught.value)
    for error in errors:
        chain: BaseException | None = error
        while chain is not None:
            text = f"{chain!s} {chain!r}"
            assert "SECRET-DISK-SN-12345" not in text and blob[1:9].hex() not in text
            chain = chain.__cause__ or chain.__context__
    shown = repr(keyring) + repr(keyring.entries()) + repr(reporter) + repr(reporter.entries())
    assert not any(text in shown for text in key_texts)


@pytest.mark.parametrize("target", ["keyring.json", "keys/v1", "keys/v3"])
def test_group_or_world_readable_files_are_refused(keyring_path: Path, target: str) -> None:
    path = keyring_path.parent / target
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError) as caught:
        Keyring.load(keyring_path, "production")
    assert str(path) in str(caught.value) and "0644" in str(caught.value)
    assert SM4_KEYS[3].hex() not in str(caught.value) and "PRIVATE" not in str(caught.value)


def _rewrite(path: Path, change: Any) -> None:
    document = json.loads(path.read_text())
    change(document["entries"])
    _write(path, json.dumps(document).encode())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e[0].update(colour="blue"), "unknown fields"),
        (lambda e: e[1].update(version=1), "more than once"),
        (lambda e: e[0].update(version=0), "version"),
        (lambda e: e[0].update(suite="AES-128-CBC"), "suite"),
        (lambda e: e[0].update(environment="staging"), "environment"),
        (lambda e: e[0].update(status="paused"), "status"),
        (lambda e: e[0].update(not_before="2025-01-01T00:00:00"), "UTC offset"),
        (lambda e: e[6].update(not_after="2024-01-01T00:00:00Z"), "earlier"),
        (lambda e: e[0].update(private_key={"url": "http://x"}), "private_key"),
        (lambda e: e[2].update(public_key={"file": "keys/v3"}), "symmetric"),
        (lambda e: e[1].update(public_key={"file": "keys/v1"}), "X25519 public key"),
        (lambda e: e[0].update(private_key={"file": "keys/v2"}), "RSA private key"),
        (lambda e: e[2].update(private_key={"file": "keys/v2"}), "SM4 key"),
        (lambda e: e[7].update(private_key={"env": "LT_TEST_UNSET_VARIABLE"}), "LT_TEST_UNSET_VARIABLE"),
        (lambda e: e[0].update(private_key={"file": "keys/missing"}), "keys/missing"),
    ],
)
def test_bad_keyring_files_raise_config_error(keyring_path: Path, change: Any, message: str) -> None:
    _rewrite(keyring_path, change)
    with pytest.raises(ConfigError, match=message):
        Keyring.load(keyring_path, "production")


def test_public_key_must_match_private_key(keyring_path: Path) -> None:
    _write(keyring_path.parent / "keys" / "v2.pub", _public_pem(X25519_KEYS[4]))
    with pytest.raises(ConfigError, match="does not match"):
        Keyring.load(keyring_path, "production")


def test_bad_documents_and_environments(keyring_path: Path) -> None:
    with pytest.raises(ConfigError, match="pipeline environment"):
        Keyring.load(keyring_path, "staging")
    _write(keyring_path, b"{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Keyring.load(keyring_path, "production")
    _write(keyring_path, b'{"keys": []}')
    with pytest.raises(ConfigError, match="entries"):
        Keyring.load(keyring_path, "production")


def test_reporter_keys_from_an_export(tmp_path: Path, keyring_path: Path) -> None:
    production, test = Environment.PRODUCTION, Environment.TEST
    document = export_document(
        [
            (KeyEntry(2, Suite.X25519, production, KeyStatus.ACTIVE), _public_pem(X25519_KEYS[2]).decode(), None),
            (KeyEntry(3, Suite.SM4, production, KeyStatus.ACTIVE), None, SM4_KEYS[3]),
            (KeyEntry(6, Suite.X25519, test, KeyStatus.ACTIVE), _public_pem(X25519_KEYS[6]).decode(), None),
            (KeyEntry(7, Suite.SM4, production, KeyStatus.ACTIVE), None, None),  # exported without PSK
        ]
    )
    path = tmp_path / "public.json"
    _write(path, json.dumps(document).encode(), 0o644)
    with pytest.raises(ConfigError, match="group or others"):  # it carries a pre-shared key
        ReporterKeys.load(path)
    os.chmod(path, 0o600)
    reporter, keyring = ReporterKeys.load(path), Keyring.load(keyring_path, "production")
    for version in (2, 3):
        assert keyring.decrypt("V1", version, reporter.encrypt("V1", version, SECRET), NOW) == SECRET
    assert reporter.current_version("production", NOW) == 3
    assert reporter.current_version("test", NOW) == 6
    with pytest.raises(ConfigError, match="without its key"):
        reporter.encrypt("V1", 7, SECRET)
    with pytest.raises(ConfigError, match="not in the public keyring"):
        reporter.encrypt("V1", 1, SECRET)
    for vendor in ("", "A@B", "供应商"):
        with pytest.raises(ValueError):
            reporter.encrypt(vendor, 2, SECRET)
    with pytest.raises(ValueError):
        reporter.encrypt("V1", 2, b"x" * 1025)
    with pytest.raises(ConfigError):
        ReporterKeys.from_document({"format": "lookthrough-public-keys/1", "entries": [{"version": 2}]})
