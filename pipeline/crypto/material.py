"""Key material of a keyring entry: PEM keys (RSA, X25519) or a 32-hex-digit SM4 key.

`load_decryptor(spec)` reads the private material once and, when the entry declares a public
key, checks that it matches. `public_pem`/`pre_shared_key` give what reporters receive;
`generate` makes fresh material. Errors are ConfigError naming the entry and the source,
never the material.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from pipeline.crypto.keyfile import EntrySpec
from pipeline.crypto.suites import (
    RSA_KEY_BITS,
    SM4_KEY_LEN,
    Decryptor,
    Encryptor,
    RsaDecryptor,
    RsaEncryptor,
    Sm4Decryptor,
    Suite,
    X25519Decryptor,
    X25519Encryptor,
)
from pipeline.errors import ConfigError

_PrivateKey = RSAPrivateKey | X25519PrivateKey
_PublicKey = RSAPublicKey | X25519PublicKey


@dataclass(frozen=True)
class GeneratedKey:
    """Fresh key material as file contents: PEM (PKCS8 / SubjectPublicKeyInfo) or SM4 hex."""

    private: bytes = field(repr=False)
    public: bytes | None = None


def generate(suite: Suite) -> GeneratedKey:
    """New key material for `suite`; SM4 has no public part."""
    if suite is Suite.SM4:
        return GeneratedKey(private=secrets.token_hex(SM4_KEY_LEN).encode() + b"\n")
    private: _PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
        if suite is Suite.RSA
        else X25519PrivateKey.generate()
    )
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return GeneratedKey(private=private_pem, public=_public_pem(private.public_key()).encode())


def load_decryptor(spec: EntrySpec) -> Decryptor:
    """The entry's decryptor, built once from its private material."""
    if spec.entry.suite is Suite.SM4:
        return Sm4Decryptor(pre_shared_key(spec))
    private = _load_private(spec)
    if isinstance(private, RSAPrivateKey):
        return RsaDecryptor(private)
    return X25519Decryptor(private)


def public_pem(spec: EntrySpec) -> str:
    """The entry's public key as PEM, derived from (and checked against) its private key."""
    return _public_pem(_load_private(spec).public_key())


def pre_shared_key(spec: EntrySpec) -> bytes:
    """The 16-byte SM4 key of an SM4-GCM entry."""
    return sm4_key_from_hex(spec.private_key.read(), f"key version {spec.entry.version}: {spec.private_key}")


def sm4_key_from_hex(text: bytes, where: str) -> bytes:
    """A 16-byte SM4 key from 32 hex digits (surrounding whitespace ignored)."""
    try:
        key = bytes.fromhex(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != SM4_KEY_LEN:
        raise ConfigError(f"{where} does not hold an SM4 key as {2 * SM4_KEY_LEN} hex digits")
    return key


def encryptor_from_public_pem(suite: Suite, pem: bytes, where: str) -> Encryptor:
    """A reporter's encryptor for an RSA or X25519 entry from its SubjectPublicKeyInfo PEM."""
    public = _load_public(suite, pem, where)
    return RsaEncryptor(public) if isinstance(public, RSAPublicKey) else X25519Encryptor(public)


def _load_public(suite: Suite, pem: bytes, where: str) -> _PublicKey:
    try:
        public = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        public = None
    if suite is Suite.RSA and isinstance(public, RSAPublicKey) and public.key_size == RSA_KEY_BITS:
        return public
    if suite is Suite.X25519 and isinstance(public, X25519PublicKey):
        return public
    raise ConfigError(f"{where} does not hold a PEM {_kind(suite)} public key")


def _load_private(spec: EntrySpec) -> _PrivateKey:
    suite, where = spec.entry.suite, f"key version {spec.entry.version}: {spec.private_key}"
    try:
        private = serialization.load_pem_private_key(spec.private_key.read(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        private = None  # TypeError: the PEM is encrypted; reported below without details
    if suite is Suite.RSA and isinstance(private, RSAPrivateKey) and private.key_size == RSA_KEY_BITS:
        key: _PrivateKey = private
    elif suite is Suite.X25519 and isinstance(private, X25519PrivateKey):
        key = private
    else:
        raise ConfigError(f"{where} does not hold an unencrypted PEM {_kind(suite)} private key")
    if spec.public_key is not None:
        # A stale public key file would make every reporter's blob fail with E204; catch it at load.
        public_where = f"key version {spec.entry.version}: {spec.public_key}"
        declared = _load_public(suite, spec.public_key.read(secret=False), public_where)
        if _der(declared) != _der(key.public_key()):
            raise ConfigError(f"{public_where} does not match the private key")
    return key


def _public_pem(public: _PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def _der(public: _PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _kind(suite: Suite) -> str:
    return f"{RSA_KEY_BITS}-bit RSA" if suite is Suite.RSA else "X25519"
