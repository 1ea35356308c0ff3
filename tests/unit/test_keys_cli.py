"""`lookthrough keys …` end to end: generate, list, retire, revoke, export-public, then use the keys."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.crypto import Keyring, ReporterKeys
from pipeline.errors import DecryptError

SECRET = b"SECRET-DISK-SN-12345"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_lifecycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keyring = tmp_path / "center" / "keyring.json"
    k = ("--keyring", str(keyring))
    for suite in ("rsa", "x25519", "sm4"):  # versions 1, 2, 3
        assert _run(capsys, "keys", "generate", *k, "--suite", suite)[0] == 0
    assert _run(capsys, "keys", "generate", *k, "--suite", "x25519", "--environment", "test")[0] == 0  # 4
    code, out, _ = _run(
        capsys, "keys", "generate", *k, "--suite", "x25519", "--version", "10",
        "--not-before", "2025-01-01T00:00:00+08:00", "--not-after", "2099-01-01T00:00:00Z",
    )
    assert code == 0 and "generated key version 10" in out
    assert _run(capsys, "keys", "generate", *k, "--suite", "sm4")[0] == 0  # 11: highest + 1

    # Owner-only everywhere: the keyring, the keys/ directory and every key file.
    keys_dir = keyring.parent / "keys"
    assert _mode(keyring) == 0o600 and _mode(keys_dir) == 0o700
    assert sorted(p.name for p in keys_dir.iterdir()) == [
        "v1-rsa.pem", "v1-rsa.pub.pem", "v10-x25519.pem", "v10-x25519.pub.pem", "v11-sm4.hex",
        "v2-x25519.pem", "v2-x25519.pub.pem", "v3-sm4.hex", "v4-x25519.pem", "v4-x25519.pub.pem",
    ]
    assert all(_mode(p) == 0o600 for p in keys_dir.iterdir())
    assert not list(keyring.parent.glob(".*.tmp"))

    # Blobs made before retirement must still open after it.
    early = ReporterKeys.from_document(json.loads(_export(capsys, k, "--include-psk")))
    early_blob = early.encrypt("VENDOR01", 1, SECRET)

    assert _run(capsys, "keys", "retire", *k, "1") == (0, "key version 1 is now retired\n", "")
    assert _run(capsys, "keys", "revoke", *k, "2")[0] == 0
    code, _, err = _run(capsys, "keys", "retire", *k, "2")
    assert code == 2 and "revocation is final" in err
    assert _run(capsys, "keys", "revoke", *k, "99")[0] == 2

    code, table, _ = _run(capsys, "keys", "list", *k)
    assert code == 0
    rows = [line.split() for line in table.splitlines()]
    assert rows[0] == ["VERSION", "SUITE", "ENVIRONMENT", "STATUS", "VALIDITY"]
    assert [row[:4] for row in rows[1:]] == [
        ["1", "RSA2048-OAEP-SHA256/AES-256-GCM", "production", "retired"],
        ["2", "X25519-HKDF-SHA256/AES-256-GCM", "production", "revoked"],
        ["3", "SM4-GCM", "production", "active"],
        ["4", "X25519-HKDF-SHA256/AES-256-GCM", "test", "active"],
        ["10", "X25519-HKDF-SHA256/AES-256-GCM", "production", "active"],
        ["11", "SM4-GCM", "production", "active"],
    ]
    assert "2025-01-01T00:00:00+08:00" in rows[5][4]
    _assert_no_key_material(keys_dir, table)

    # Without --include-psk: SM4 entries are listed but carry no key; nothing secret is printed.
    public_text = _export(capsys, k)
    _assert_no_key_material(keys_dir, public_text)
    exported = json.loads(public_text)["entries"]
    assert [e["version"] for e in exported] == [3, 4, 10, 11]  # retired and revoked are excluded
    assert all("pre_shared_key_hex" not in e for e in exported)

    public_file = tmp_path / "reporter" / "public.json"
    public_file.parent.mkdir()
    assert _run(capsys, "keys", "export-public", *k, "--include-psk", "--out", str(public_file)) == (0, "", "")
    assert _mode(public_file) == 0o600
    reporter = ReporterKeys.load(public_file)
    production = Keyring.load(keyring, "production")
    for version in (3, 10, 11):
        blob = reporter.encrypt("VENDOR01", version, SECRET)
        assert production.decrypt("VENDOR01", version, blob) == SECRET
    assert production.decrypt("VENDOR01", 1, early_blob) == SECRET  # retired: decrypt only
    assert reporter.current_version("production") == 11
    blob = reporter.encrypt("VENDOR01", 4, SECRET)
    with pytest.raises(DecryptError) as test_key:
        production.decrypt("VENDOR01", 4, blob)
    assert test_key.value.code == "E203"
    assert Keyring.load(keyring, "test").decrypt("VENDOR01", 4, blob) == SECRET
    with pytest.raises(DecryptError) as revoked:
        production.decrypt("VENDOR01", 2, early.encrypt("VENDOR01", 2, SECRET))
    assert revoked.value.code == "E202"


def _export(capsys: pytest.CaptureFixture[str], k: tuple[str, str], *extra: str) -> str:
    code, out, _ = _run(capsys, "keys", "export-public", *k, *extra)
    assert code == 0
    return out


def _assert_no_key_material(keys_dir: Path, text: str) -> None:
    assert "PRIVATE" not in text
    for path in keys_dir.glob("*.hex"):
        assert path.read_text().strip() not in text
    for path in keys_dir.glob("*.pem"):
        if not path.name.endswith(".pub.pem"):
            assert path.read_text().splitlines()[1] not in text


def test_generate_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    k = ("--keyring", str(tmp_path / "keyring.json"))
    assert _run(capsys, "keys", "generate", *k, "--suite", "sm4", "--version", "5")[0] == 0
    code, _, err = _run(capsys, "keys", "generate", *k, "--suite", "sm4", "--version", "5")
    assert code == 2 and "already exists" in err
    code, _, err = _run(capsys, "keys", "generate", *k, "--suite", "sm4", "--not-before", "2025-01-01")
    assert code == 2 and "UTC offset" in err
    code, _, err = _run(
        capsys, "keys", "generate", *k, "--suite", "sm4",
        "--not-before", "2026-01-01T00:00:00Z", "--not-after", "2025-01-01T00:00:00Z",
    )
    assert code == 2 and "earlier" in err
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["v5-sm4.hex"]  # nothing left behind

    (tmp_path / "keyring.json").chmod(0o644)
    code, _, err = _run(capsys, "keys", "list", *k)
    assert code == 2 and "keyring.json" in err and "chmod 600" in err
    with pytest.raises(SystemExit):
        main(["keys", "generate", *k, "--suite", "aes"])
