"""The blob suites of profile §4: layouts built by hand, round trips, tampering, fuzzing, leaks."""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.crypto.suites import (
    HEADER_LEN,
    MAX_PLAINTEXT,
    TAG_LEN,
    Decryptor,
    Encryptor,
    RsaDecryptor,
    RsaEncryptor,
    Sm4Decryptor,
    Sm4Encryptor,
    Suite,
    X25519Decryptor,
    X25519Encryptor,
    _hmac_sha256,
    _x25519_key,
    _x25519_public_key_loader,
    associated_data,
    blob_suite,
)
from pipeline.errors import DecryptError

SECRET = b"SECRET-DISK-SN-12345"
AD = associated_data("VENDOR01", 7)

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # once per module: slow
X25519_KEY = X25519PrivateKey.generate()
SM4_KEY = os.urandom(16)

PAIRS: dict[Suite, tuple[Encryptor, Decryptor]] = {
    Suite.RSA: (RsaEncryptor(RSA_KEY.public_key()), RsaDecryptor(RSA_KEY)),
    Suite.X25519: (X25519Encryptor(X25519_KEY.public_key()), X25519Decryptor(X25519_KEY)),
    Suite.SM4: (Sm4Encryptor(SM4_KEY), Sm4Decryptor(SM4_KEY)),
}
OTHER_DECRYPTORS: dict[Suite, Decryptor] = {
    Suite.RSA: RsaDecryptor(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    Suite.X25519: X25519Decryptor(X25519PrivateKey.generate()),
    Suite.SM4: Sm4Decryptor(os.urandom(16)),
}

vendor_ids = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="@"),
    min_size=1,
    max_size=21,
)
versions = st.integers(min_value=1, max_value=2**31 - 1)
plaintexts = st.binary(max_size=MAX_PLAINTEXT)
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _raises(code: set[str], decryptor: Decryptor, blob: bytes, ad: bytes = AD) -> DecryptError:
    with pytest.raises(DecryptError) as caught:
        decryptor.decrypt(blob, ad)
    assert caught.value.code in code
    return caught.value


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


# --- the layouts, built by hand from profile §4, open with the decryptors ---------------------


def test_rsa_layout_from_the_profile() -> None:
    key, nonce = os.urandom(32), os.urandom(12)
    blob = b"\x01" + RSA_KEY.public_key().encrypt(key, OAEP) + nonce + AESGCM(key).encrypt(nonce, SECRET, AD)
    assert len(blob) == 1 + 256 + 12 + len(SECRET) + 16
    assert PAIRS[Suite.RSA][1].decrypt(blob, AD) == SECRET


def test_x25519_layout_from_the_profile() -> None:
    ephemeral = X25519PrivateKey.generate()
    eph = ephemeral.public_key().public_bytes_raw()
    recipient = X25519_KEY.public_key().public_bytes_raw()
    key = HKDF(hashes.SHA256(), 32, salt=eph + recipient, info=b"lookthrough/v1").derive(
        ephemeral.exchange(X25519_KEY.public_key())
    )
    nonce = os.urandom(12)
    blob = b"\x02" + eph + nonce + AESGCM(key).encrypt(nonce, SECRET, AD)
    assert PAIRS[Suite.X25519][1].decrypt(blob, AD) == SECRET


def test_sm4_layout_from_the_profile() -> None:
    nonce = os.urandom(12)
    encryptor = Cipher(algorithms.SM4(SM4_KEY), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(b"VENDOR01@7")
    blob = b"\x03" + nonce + encryptor.update(SECRET) + encryptor.finalize() + encryptor.tag
    assert PAIRS[Suite.SM4][1].decrypt(blob, AD) == SECRET


@pytest.mark.parametrize("suite", list(Suite))
def test_encrypted_blob_has_the_profile_length(suite: Suite) -> None:
    blob = PAIRS[suite][0].encrypt(SECRET, AD)
    assert blob[0] == suite
    assert len(blob) == 1 + HEADER_LEN[suite] + len(SECRET) + TAG_LEN


def test_suite_labels_round_trip() -> None:
    assert [s.label for s in Suite] == [
        "RSA2048-OAEP-SHA256/AES-256-GCM",
        "X25519-HKDF-SHA256/AES-256-GCM",
        "SM4-GCM",
    ]
    assert all(Suite.from_label(s.label) is s for s in Suite)
    with pytest.raises(ValueError):
        Suite.from_label("AES-128-CBC")


# --- round trips ---------------------------------------------------------------------------


def _round_trip(suite: Suite, vendor_id: str, version: int, plaintext: bytes) -> None:
    encryptor, decryptor = PAIRS[suite]
    ad = associated_data(vendor_id, version)
    assert ad == f"{vendor_id}@{version}".encode("ascii")
    assert decryptor.decrypt(encryptor.encrypt(plaintext, ad), ad) == plaintext


@settings(max_examples=25, deadline=None)
@given(vendor_ids, versions, plaintexts)
def test_rsa_round_trip(vendor_id: str, version: int, plaintext: bytes) -> None:
    _round_trip(Suite.RSA, vendor_id, version, plaintext)


@settings(deadline=None)
@given(vendor_ids, versions, plaintexts)
def test_x25519_round_trip(vendor_id: str, version: int, plaintext: bytes) -> None:
    _round_trip(Suite.X25519, vendor_id, version, plaintext)


@settings(deadline=None)
@given(vendor_ids, versions, plaintexts)
def test_sm4_round_trip(vendor_id: str, version: int, plaintext: bytes) -> None:
    _round_trip(Suite.SM4, vendor_id, version, plaintext)


@pytest.mark.parametrize("suite", list(Suite))
def test_limits(suite: Suite) -> None:
    encryptor, decryptor = PAIRS[suite]
    assert decryptor.decrypt(encryptor.encrypt(b"x" * MAX_PLAINTEXT, AD), AD) == b"x" * MAX_PLAINTEXT
    assert decryptor.decrypt(encryptor.encrypt(b"", AD), AD) == b""
    with pytest.raises(ValueError):
        encryptor.encrypt(b"x" * (MAX_PLAINTEXT + 1), AD)
    too_long = encryptor.encrypt(b"x" * MAX_PLAINTEXT, AD) + b"\x00"
    assert _raises({"E205"}, decryptor, too_long).code == "E205"


# --- tampering -----------------------------------------------------------------------------


@pytest.mark.parametrize("suite", list(Suite))
def test_every_flipped_bit_is_rejected(suite: Suite) -> None:
    encryptor, decryptor = PAIRS[suite]
    blob = encryptor.encrypt(SECRET, AD)
    for position in range(len(blob)):
        for mask in (0x01, 0x80):  # 0x80 covers the top bit that X25519 itself ignores
            tampered = bytearray(blob)
            tampered[position] ^= mask
            expected = {"E205"} if position == 0 else {"E204"}
            _raises(expected, decryptor, bytes(tampered))


@pytest.mark.parametrize("suite", list(Suite))
def test_every_truncation_is_rejected(suite: Suite) -> None:
    encryptor, decryptor = PAIRS[suite]
    blob = encryptor.encrypt(SECRET, AD)
    shortest = 1 + HEADER_LEN[suite] + TAG_LEN
    for length in range(len(blob)):
        _raises({"E205"} if length < shortest else {"E204"}, decryptor, blob[:length])


@pytest.mark.parametrize("suite", list(Suite))
def test_other_vendor_version_or_key_is_rejected(suite: Suite) -> None:
    encryptor, decryptor = PAIRS[suite]
    blob = encryptor.encrypt(SECRET, associated_data("VENDOR01", 7))
    _raises({"E204"}, decryptor, blob, associated_data("VENDOR02", 7))
    _raises({"E204"}, decryptor, blob, associated_data("VENDOR01", 8))
    _raises({"E204"}, OTHER_DECRYPTORS[suite], blob)


@pytest.mark.parametrize("suite", list(Suite))
def test_blob_of_another_suite_is_e205(suite: Suite) -> None:
    for other in Suite:
        if other is not suite:
            _raises({"E205"}, PAIRS[suite][1], PAIRS[other][0].encrypt(SECRET, AD))


def test_x25519_low_order_ephemeral_key_is_e204() -> None:
    blob = PAIRS[Suite.X25519][0].encrypt(SECRET, AD)
    _raises({"E204"}, PAIRS[Suite.X25519][1], blob[:1] + bytes(32) + blob[33:])


def test_associated_data_never_raises() -> None:
    assert associated_data("VENDOR01", 7) == b"VENDOR01@7"
    assert associated_data("\udc80", 1) == b"\xed\xb2\x80@1"  # lone surrogate: E204 later, not a crash


def test_blob_suite() -> None:
    assert [blob_suite(bytes([s]) + b"rest") for s in Suite] == list(Suite)
    for bad in (b"", b"\x00", b"\x04abc", b"\xff"):
        with pytest.raises(DecryptError) as caught:
            blob_suite(bad)
        assert caught.value.code == "E205"


@settings(deadline=None)
@given(st.sampled_from(list(Suite)), st.one_of(st.binary(max_size=1400), st.binary(min_size=1, max_size=400)))
def test_arbitrary_bytes_raise_only_decrypt_errors(suite: Suite, data: bytes) -> None:
    decryptor = PAIRS[suite][1]
    for blob in (data, bytes([suite]) + data):
        with pytest.raises(DecryptError) as caught:
            decryptor.decrypt(blob, AD)
        assert caught.value.code in {"E204", "E205"}


# --- nothing secret in errors or reprs -----------------------------------------------------


@pytest.mark.parametrize("suite", list(Suite))
def test_errors_carry_no_plaintext_key_or_blob(suite: Suite) -> None:
    encryptor, decryptor = PAIRS[suite]
    blob = encryptor.encrypt(SECRET, AD)
    failures = [
        _raises({"E204"}, decryptor, blob, associated_data("VENDOR02", 7)),
        _raises({"E204"}, OTHER_DECRYPTORS[suite], blob),
        _raises({"E204"}, decryptor, blob[:-1] + bytes([blob[-1] ^ 1])),
        _raises({"E205"}, decryptor, blob[:5]),
        _raises({"E205"}, decryptor, b"\x09" + blob[1:]),
    ]
    forbidden = [SECRET, SECRET.decode(), SM4_KEY.hex(), blob[1:9].hex(), repr(blob[1:9])]
    for failure in failures:
        # Raised outside any except block: no chained cryptography exception at all.
        assert failure.__cause__ is None and failure.__context__ is None
        for exc in _chain(failure):
            text = f"{exc!s} {exc!r} {exc.args!r}"
            assert not any(str(item) in text for item in forbidden)
    for obj in PAIRS[suite]:
        assert SM4_KEY.hex() not in repr(obj) and "PRIVATE" not in repr(obj)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_x25519_key_derivation_is_cryptographys_hkdf(shared: bytes, ephemeral: bytes, recipient: bytes) -> None:
    expected = HKDF(hashes.SHA256(), 32, salt=ephemeral + recipient, info=b"lookthrough/v1").derive(shared)
    assert _x25519_key(shared, ephemeral, recipient) == expected


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=100))
def test_hmac_sha256_is_the_standard_one(key: bytes, message: bytes) -> None:
    assert _hmac_sha256(key, message) == hmac.digest(key, message, "sha256")


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=32, max_size=32) | st.sampled_from([bytes(32), b"\x01" + bytes(31), b"\xff" * 32]))
def test_x25519_public_key_loader_is_the_public_method(data: bytes) -> None:
    loaded = _x25519_public_key_loader()(data)
    assert isinstance(loaded, X25519PublicKey)
    assert loaded.public_bytes_raw() == X25519PublicKey.from_public_bytes(data).public_bytes_raw()
