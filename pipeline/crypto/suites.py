"""The three blob suites of profile §4: encrypt with public material, decrypt with private material.

A blob is `suite byte · suite header · AEAD ciphertext with a 16-byte tag`, and its associated
data is `vendor_id@key_version` (see `associated_data`). Decrypt raises `DecryptError` E205 for
an unknown suite byte or a malformed blob and E204 for any authentication failure. Messages
name suites and lengths only: never plaintext, key or blob bytes.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from enum import IntEnum
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pipeline.errors import DecryptError

MAX_PLAINTEXT = 1024
TAG_LEN = 16
NONCE_LEN = 12
AES_KEY_LEN = 32
SM4_KEY_LEN = 16
RSA_KEY_BITS = 2048
RSA_WRAPPED_LEN = RSA_KEY_BITS // 8
X25519_KEY_LEN = 32
HKDF_INFO = b"lookthrough/v1"


class Suite(IntEnum):
    """A blob suite; the value is the blob's first byte, `label` the profile's name."""

    RSA = 0x01
    X25519 = 0x02
    SM4 = 0x03

    @property
    def label(self) -> str:
        return _LABELS[self]

    @classmethod
    def from_label(cls, label: str) -> Suite:
        """The suite named `label` (e.g. "SM4-GCM"); ValueError if there is none."""
        for suite, name in _LABELS.items():
            if name == label:
                return suite
        raise ValueError(f"unknown suite {label!r}; known: {', '.join(_LABELS.values())}")


_LABELS = {
    Suite.RSA: "RSA2048-OAEP-SHA256/AES-256-GCM",
    Suite.X25519: "X25519-HKDF-SHA256/AES-256-GCM",
    Suite.SM4: "SM4-GCM",
}
_SUITE_BY_BYTE = {suite.value: suite for suite in Suite}

# Bytes between the suite byte and the AEAD ciphertext.
HEADER_LEN = {
    Suite.RSA: RSA_WRAPPED_LEN + NONCE_LEN,
    Suite.X25519: X25519_KEY_LEN + NONCE_LEN,
    Suite.SM4: NONCE_LEN,
}

_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
_SHA256 = hashes.SHA256()


def associated_data(vendor_id: str, key_version: int) -> bytes:
    """The AD binding a blob to its vendor and key version: `vendor_id@key_version`.

    ASCII for every valid vendor ID (profile §1); UTF-8 otherwise (lone surrogates passed
    through), so this never raises and odd input fails authentication instead.
    """
    return f"{vendor_id}@{key_version}".encode("utf-8", "surrogatepass")


def blob_suite(blob: bytes) -> Suite:
    """The suite named by the blob's first byte; DecryptError E205 if empty or unknown."""
    # A dict lookup, not Suite(byte): the enum's constructor takes ~0.4 µs, and every accepted
    # report asks once for its label.
    suite = _SUITE_BY_BYTE.get(blob[0]) if blob else None
    if suite is None:
        raise DecryptError("E205", "unknown suite byte" if blob else "empty blob")
    return suite


class Encryptor(Protocol):
    """Public side of one key: seals a plaintext of at most MAX_PLAINTEXT bytes into a blob."""

    @property
    def suite(self) -> Suite: ...

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes: ...


class Decryptor(Protocol):
    """Private side of one key: opens a blob or raises DecryptError (E204, E205)."""

    @property
    def suite(self) -> Suite: ...

    def decrypt(self, blob: bytes, associated_data: bytes) -> bytes: ...


def _check_plaintext(plaintext: bytes) -> None:
    if len(plaintext) > MAX_PLAINTEXT:
        raise ValueError(f"plaintext has {len(plaintext)} bytes; the limit is {MAX_PLAINTEXT}")


def _layout_bounds(suite: Suite) -> tuple[int, int]:
    low = 1 + HEADER_LEN[suite] + TAG_LEN
    return low, low + MAX_PLAINTEXT


# Plain ints for the per-blob layout test (enum member lookups and hashing cost ~0.2 µs a blob);
# on a mismatch _check_layout runs to raise its E205.
_RSA_LOW, _RSA_HIGH = _layout_bounds(Suite.RSA)
_X25519_LOW, _X25519_HIGH = _layout_bounds(Suite.X25519)
_SM4_LOW, _SM4_HIGH = _layout_bounds(Suite.SM4)
_RSA_BYTE, _X25519_BYTE, _SM4_BYTE = int(Suite.RSA), int(Suite.X25519), int(Suite.SM4)


def _check_layout(blob: bytes, suite: Suite) -> None:
    """E205 unless the blob starts with `suite` and its ciphertext length is possible."""
    low = 1 + HEADER_LEN[suite] + TAG_LEN
    high = low + MAX_PLAINTEXT
    if not low <= len(blob) <= high:
        raise DecryptError("E205", f"{suite.label} blob has {len(blob)} bytes; expected {low} to {high}")
    if blob[0] != suite:
        raise DecryptError("E205", f"suite byte is not {suite.label}")


def _auth_failed(suite: Suite) -> DecryptError:
    return DecryptError("E204", f"{suite.label} authentication failed")


def _aes_gcm_open(suite: Suite, key: bytes, nonce: bytes, sealed: bytes, ad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(nonce, sealed, ad)
    except InvalidTag:
        pass  # raised outside the handler so the error carries no __context__
    raise _auth_failed(suite)


class RsaEncryptor:
    """Suite 0x01 for a 2048-bit RSA public key: OAEP-wrapped fresh AES-256 key per blob."""

    __slots__ = ("_public_key",)
    suite = Suite.RSA

    def __init__(self, public_key: RSAPublicKey) -> None:
        if public_key.key_size != RSA_KEY_BITS:
            raise ValueError(f"{Suite.RSA.label} needs a {RSA_KEY_BITS}-bit RSA key")
        self._public_key = public_key

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        _check_plaintext(plaintext)
        key = os.urandom(AES_KEY_LEN)
        nonce = os.urandom(NONCE_LEN)
        wrapped = self._public_key.encrypt(key, _OAEP)
        return bytes([Suite.RSA]) + wrapped + nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)

    def __repr__(self) -> str:
        return "RsaEncryptor()"


class RsaDecryptor:
    """Suite 0x01 with the matching 2048-bit RSA private key."""

    __slots__ = ("_private_key",)
    suite = Suite.RSA

    def __init__(self, private_key: RSAPrivateKey) -> None:
        if private_key.key_size != RSA_KEY_BITS:
            raise ValueError(f"{Suite.RSA.label} needs a {RSA_KEY_BITS}-bit RSA key")
        self._private_key = private_key

    def decrypt(self, blob: bytes, associated_data: bytes) -> bytes:
        if not _RSA_LOW <= len(blob) <= _RSA_HIGH or blob[0] != _RSA_BYTE:
            _check_layout(blob, Suite.RSA)
        key = b""
        # Reported below as E204, without __context__. try/except rather than contextlib.suppress,
        # which builds a context manager per blob (~0.25 µs).
        try:  # noqa: SIM105
            key = self._private_key.decrypt(blob[1 : 1 + RSA_WRAPPED_LEN], _OAEP)
        except ValueError:
            pass
        # A bad unwrap and a wrongly sized key both report E204: distinct codes would hand
        # reporters (who see feedback codes) an OAEP validity oracle.
        if len(key) != AES_KEY_LEN:
            raise _auth_failed(Suite.RSA)
        start = 1 + RSA_WRAPPED_LEN
        nonce = blob[start : start + NONCE_LEN]
        return _aes_gcm_open(Suite.RSA, key, nonce, blob[start + NONCE_LEN :], associated_data)

    def __repr__(self) -> str:
        return "RsaDecryptor()"


_SHA256_BLOCK = 64
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def _hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104) with hashlib's SHA-256.

    Why: hmac.digest and cryptography's HMAC set up an OpenSSL MAC context per call (~1.5 µs);
    two plain SHA-256 hashes over the padded key take ~0.4 µs.
    """
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_SHA256_BLOCK, b"\0")
    inner = hashlib.sha256(key.translate(_IPAD) + message).digest()
    return hashlib.sha256(key.translate(_OPAD) + inner).digest()


def _x25519_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    # Salting with both public keys as transmitted binds the AES key to the exact bytes in
    # the blob, including the bits X25519 itself ignores (RFC 7748 masks the top bit).
    # HKDF-SHA256 (RFC 5869) with a 32-byte output is one extract and one expand block:
    # PRK = HMAC(salt, shared), key = HMAC(PRK, info || 0x01). Written out with hashlib it costs
    # ~1.3 µs instead of ~3 µs for cryptography's HKDF object; tests/unit/test_crypto_suites.py
    # checks it against that HKDF.
    prk = _hmac_sha256(ephemeral + recipient, shared)
    return _hmac_sha256(prk, _HKDF_BLOCK_1)[:AES_KEY_LEN]


_HKDF_BLOCK_1 = HKDF_INFO + b"\x01"


class X25519Encryptor:
    """Suite 0x02 for an X25519 public key: fresh ephemeral key pair per blob."""

    __slots__ = ("_public_bytes", "_public_key")
    suite = Suite.X25519

    def __init__(self, public_key: X25519PublicKey) -> None:
        self._public_key = public_key
        self._public_bytes = public_key.public_bytes_raw()

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        _check_plaintext(plaintext)
        ephemeral = X25519PrivateKey.generate()
        ephemeral_bytes = ephemeral.public_key().public_bytes_raw()
        key = _x25519_key(ephemeral.exchange(self._public_key), ephemeral_bytes, self._public_bytes)
        nonce = os.urandom(NONCE_LEN)
        sealed = AESGCM(key).encrypt(nonce, plaintext, associated_data)
        return bytes([Suite.X25519]) + ephemeral_bytes + nonce + sealed

    def __repr__(self) -> str:
        return "X25519Encryptor()"


@functools.cache
def _x25519_public_key_loader() -> Callable[[bytes], X25519PublicKey]:
    """`X25519PublicKey.from_public_bytes`, or the binding that method ends in.

    Why: on every call the public classmethod imports cryptography's backend module and asks it
    whether X25519 is supported (~1 µs of each ~39 µs decrypt); the answer cannot change while the
    process runs, and the binding is what the method then calls. The binding is used only where
    cryptography keeps it (43-50) and gives the same key as the public method; else the method.
    """
    try:
        from cryptography.hazmat.bindings._rust import openssl as rust_openssl

        direct: Callable[[bytes], X25519PublicKey] = rust_openssl.x25519.from_public_bytes
        probe = X25519PrivateKey.generate().public_key().public_bytes_raw()
        if direct(probe).public_bytes_raw() == X25519PublicKey.from_public_bytes(probe).public_bytes_raw():
            return direct
    except Exception:  # any doubt: the public method
        pass
    return X25519PublicKey.from_public_bytes


class X25519Decryptor:
    """Suite 0x02 with the recipient's X25519 private key."""

    __slots__ = ("_load_public_key", "_private_key", "_public_bytes")
    suite = Suite.X25519

    def __init__(self, private_key: X25519PrivateKey) -> None:
        self._private_key = private_key
        self._public_bytes = private_key.public_key().public_bytes_raw()
        self._load_public_key = _x25519_public_key_loader()

    def decrypt(self, blob: bytes, associated_data: bytes) -> bytes:
        if not _X25519_LOW <= len(blob) <= _X25519_HIGH or blob[0] != _X25519_BYTE:
            _check_layout(blob, Suite.X25519)
        ephemeral = blob[1 : 1 + X25519_KEY_LEN]
        shared = b""
        # ValueError: a low-order point (all-zero secret); reported below as E204. try/except rather
        # than contextlib.suppress, which builds a context manager per blob (~0.25 µs).
        try:  # noqa: SIM105
            shared = self._private_key.exchange(self._load_public_key(ephemeral))
        except ValueError:
            pass
        if not shared:
            raise _auth_failed(Suite.X25519)
        key = _x25519_key(shared, ephemeral, self._public_bytes)
        start = 1 + X25519_KEY_LEN
        nonce = blob[start : start + NONCE_LEN]
        return _aes_gcm_open(Suite.X25519, key, nonce, blob[start + NONCE_LEN :], associated_data)

    def __repr__(self) -> str:
        return "X25519Decryptor()"


def _sm4(key: bytes) -> algorithms.SM4:
    if len(key) != SM4_KEY_LEN:
        raise ValueError(f"{Suite.SM4.label} needs a {SM4_KEY_LEN}-byte key")
    return algorithms.SM4(key)


class Sm4Encryptor:
    """Suite 0x03 with the pre-shared SM4 key; random 96-bit nonce per blob."""

    __slots__ = ("_algorithm",)
    suite = Suite.SM4

    def __init__(self, key: bytes) -> None:
        self._algorithm = _sm4(key)

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        _check_plaintext(plaintext)
        nonce = os.urandom(NONCE_LEN)
        encryptor = Cipher(self._algorithm, modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(associated_data)
        sealed = encryptor.update(plaintext) + encryptor.finalize()
        return bytes([Suite.SM4]) + nonce + sealed + encryptor.tag

    def __repr__(self) -> str:
        return "Sm4Encryptor()"


class Sm4Decryptor:
    """Suite 0x03 with the pre-shared SM4 key.

    cryptography has no AEAD class for SM4, so this uses the Cipher API; the SM4
    algorithm object is built once per key.
    """

    __slots__ = ("_algorithm",)
    suite = Suite.SM4

    def __init__(self, key: bytes) -> None:
        self._algorithm = _sm4(key)

    def decrypt(self, blob: bytes, associated_data: bytes) -> bytes:
        if not _SM4_LOW <= len(blob) <= _SM4_HIGH or blob[0] != _SM4_BYTE:
            _check_layout(blob, Suite.SM4)
        nonce = blob[1 : 1 + NONCE_LEN]
        decryptor = Cipher(self._algorithm, modes.GCM(nonce, blob[-TAG_LEN:])).decryptor()
        decryptor.authenticate_additional_data(associated_data)
        plaintext = decryptor.update(blob[1 + NONCE_LEN : -TAG_LEN])
        try:
            decryptor.finalize()
            return plaintext
        except InvalidTag:
            pass  # raised outside the handler so the error carries no __context__
        raise _auth_failed(Suite.SM4)

    def __repr__(self) -> str:
        return "Sm4Decryptor()"
