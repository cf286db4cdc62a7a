"""Signing keys and the keys an environment trusts: elliptic-curve keys in PEM, what OpenSSF model signing's key
mode takes (P-256, P-384, P-521).

A key is named by its key id, the sha256 of its public half as SubjectPublicKeyInfo PEM: the value model signing
writes into a signature's verification material (``publicKey.hint``), so a signature says which key made it
before any cryptography runs, and a refusal can name the key that is not trusted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from release_assets.release.bundle import BundleError

CURVES = ("secp256r1", "secp384r1", "secp521r1")  # model_signing._signing.sign_ec_key._check_supported_ec_key


class SignatureError(BundleError):
    """A signature or attestation that must not be trusted, or a key that cannot be used; the message says which
    file or key, and why. A kind of :class:`BundleError`: whoever refuses a bundle that does not verify refuses
    one whose signature does not either."""


def key_id(public_pem: bytes) -> str:
    return hashlib.sha256(public_pem).hexdigest()


def short(key: str) -> str:
    """A key id as people read it in messages and tables."""
    return key[:16]


def _check_curve(public_key, where: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name not in CURVES:
        kind = public_key.curve.name if isinstance(public_key, ec.EllipticCurvePublicKey) else type(public_key).__name__
        raise SignatureError(f"{where}: a {kind} key; model signing takes elliptic-curve keys on {', '.join(CURVES)}")


def _spki_pem(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class TrustedKey:
    """A public key a verifier accepts signatures from; ``where`` names it in messages (its file)."""

    public_pem: bytes
    where: str

    @property
    def key_id(self) -> str:
        return key_id(self.public_pem)

    def public_key(self):
        from cryptography.hazmat.primitives import serialization

        return serialization.load_pem_public_key(self.public_pem)


@dataclass(frozen=True, repr=False)  # repr=False: the private key never reaches a log line
class SigningKey:
    """A private key in PEM; ``where`` names where it came from (a file, an environment variable), never its value."""

    private_pem: bytes
    where: str

    def private_key(self):
        from cryptography.hazmat.primitives import serialization

        return serialization.load_pem_private_key(self.private_pem, password=None)

    @property
    def public(self) -> TrustedKey:
        return TrustedKey(_spki_pem(self.private_key().public_key()), self.where)

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def __repr__(self) -> str:
        return f"SigningKey({self.where}, key id {short(self.key_id)})"


def load_signing_key(pem: bytes, where: str) -> SigningKey:
    """A usable private key from ``pem`` (unencrypted PEM); :class:`SignatureError` naming ``where`` otherwise."""
    from cryptography.hazmat.primitives import serialization

    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:  # not PEM, encrypted, or not a key
        raise SignatureError(f"{where}: not an unencrypted PEM private key ({exc})") from None
    _check_curve(private.public_key(), where)
    return SigningKey(pem, where)


def load_trusted_key(pem: bytes, where: str) -> TrustedKey:
    """A public key (PEM, SubjectPublicKeyInfo), re-serialized so its key id is the one model signing writes."""
    from cryptography.hazmat.primitives import serialization

    try:
        public = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"{where}: not a PEM public key ({exc})") from None
    _check_curve(public, where)
    return TrustedKey(_spki_pem(public), where)


def read_trusted_keys(paths: Iterable[Path]) -> dict[str, TrustedKey]:
    """Key id -> key, from public key files; a missing or unreadable file is named."""
    keys = {}
    for path in paths:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise SignatureError(f"{path}: trusted key cannot be read ({exc.strerror or exc})") from None
        key = load_trusted_key(pem, str(path))
        keys[key.key_id] = key
    return keys


@dataclass(frozen=True)
class Trust:
    """Whose signatures a verifier accepts: ``keys`` (key id -> key), ``who`` names the verifier in refusals
    ("environment prod", "--trusted-key")."""

    keys: dict[str, TrustedKey]
    who: str

    def named(self) -> str:
        return ", ".join(f"{short(k)} ({v.where})" for k, v in sorted(self.keys.items())) or "none"
