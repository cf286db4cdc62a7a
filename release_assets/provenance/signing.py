"""The release unit's signature: OpenSSF model signing (``model-signing``) over the unit's bundle, kept beside it
in the release store as ``bundle.sig`` (a Sigstore bundle holding a DSSE envelope with the file's sha256).

The bundle is what is signed because it is what travels (to every environment and region) and what serving
extracts: it holds every member file and the manifest that names the files held by reference by their sha256, so
the one signature covers all of them. The signature sits beside the bundle, not inside it: signing never changes
the bundle's bytes or the release version, and an unsigned unit can be signed later without becoming another one.

Two ways to sign, one file format: key mode (an elliptic-curve private key from ``RELEASE_ASSETS_SIGNING_KEY`` or
``RELEASE_ASSETS_SIGNING_KEY_FILE``: locally, in tests, on a runner with a stored secret), and keyless mode
(``RELEASE_ASSETS_SIGNING_MODE=keyless``: Sigstore with the CI runner's OIDC identity, a short-lived certificate and
a transparency-log entry; GitHub Actions needs ``id-token: write``). Keyless signing needs Sigstore's public
services, so it runs in CI only; this package verifies key-mode signatures offline and names a keyless one.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from release_assets.core.hashing import sha256_file
from release_assets.provenance.dsse import envelope_bytes, sign_envelope
from release_assets.provenance.keys import SignatureError, SigningKey, Trust, load_signing_key, short

SIGNATURE = "bundle.sig"  # beside bundle.tar.gz


class UnitSigner(Protocol):
    @property
    def identity(self) -> str:
        """Who signs, as recorded in the provenance: ``key:<key id>`` or the OIDC identity."""

    def sign_bundle(self, bundle: Path) -> bytes:
        """The model-signing signature of the file ``bundle``."""

    def sign_statement(self, statement: dict[str, Any]) -> bytes:
        """``statement`` (an in-toto Statement) in a signed envelope, as the bytes stored beside the bundle."""


def _statement_json(statement: dict[str, Any]) -> bytes:
    return json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()


def _sign_with(config: Any, bundle: Path) -> bytes:
    """``model_signing.signing.Config.sign`` of the one file ``bundle``, returning the signature's bytes."""
    with tempfile.TemporaryDirectory(prefix="unit-sig-") as tmp:
        out = Path(tmp) / SIGNATURE
        config.sign(bundle, out)
        return out.read_bytes()


@dataclass(frozen=True)
class KeySigner:
    key: SigningKey

    @property
    def identity(self) -> str:
        return f"key:{self.key.key_id}"

    def sign_bundle(self, bundle: Path) -> bytes:
        from model_signing import signing

        # model signing reads the key from a file: a private temporary one (0600) when it came from a variable.
        with tempfile.TemporaryDirectory(prefix="unit-key-") as tmp:
            path = Path(tmp) / "key.pem"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(self.key.private_pem)
            return _sign_with(signing.Config().use_elliptic_key_signer(private_key=path), bundle)

    def sign_statement(self, statement: dict[str, Any]) -> bytes:
        return envelope_bytes(sign_envelope(_statement_json(statement), self.key))


def _sigstore_unit_config() -> Any:
    from model_signing import signing

    # The runner's ambient OIDC token (GitHub Actions: ACTIONS_ID_TOKEN_REQUEST_* with `id-token: write`); never
    # a browser flow, which would hang a CI job.
    return signing.Config().use_sigstore_signer(use_ambient_credentials=True)


def _sigstore_sign_statement(payload: bytes) -> bytes:
    from sigstore import dsse, oidc
    from sigstore.models import ClientTrustConfig
    from sigstore.sign import SigningContext

    token = oidc.detect_credential()
    if token is None:
        raise SignatureError("keyless signing: no ambient OIDC credential (in GitHub Actions: `id-token: write`)")
    context = SigningContext.from_trust_config(ClientTrustConfig.production())
    with context.signer(oidc.IdentityToken(token)) as signer:
        return signer.sign_dsse(dsse.Statement(payload)).to_json().encode()


@dataclass(frozen=True)
class KeylessSigner:
    """Sigstore with the runner's OIDC identity: model signing's Sigstore signer for the unit, Sigstore's DSSE
    signing for the attestations (a Sigstore bundle around each envelope). ``unit_config`` and ``statement_signer``
    are the two calls that reach Sigstore, swapped for fakes where it cannot be reached."""

    who: str  # the identity expected in the certificate (GitHub: the workflow's ref), recorded in the provenance
    unit_config: Callable[[], Any] = _sigstore_unit_config
    statement_signer: Callable[[bytes], bytes] = _sigstore_sign_statement

    @property
    def identity(self) -> str:
        return f"oidc:{self.who}"

    def sign_bundle(self, bundle: Path) -> bytes:
        return _sign_with(self.unit_config(), bundle)

    def sign_statement(self, statement: dict[str, Any]) -> bytes:
        return self.statement_signer(_statement_json(statement))


def configured_signer(settings: Any) -> UnitSigner | None:
    """The signer the settings configure; None when none is (publishing then stays unsigned)."""
    if settings.signing_mode == "keyless":
        return KeylessSigner(settings.signing_identity or os.environ.get("GITHUB_WORKFLOW_REF", "ci"))
    if settings.signing_key is not None and settings.signing_key_file is not None:
        raise SignatureError("set RELEASE_ASSETS_SIGNING_KEY or RELEASE_ASSETS_SIGNING_KEY_FILE, not both")
    if settings.signing_key is not None:
        return KeySigner(load_signing_key(settings.signing_key.encode(), "RELEASE_ASSETS_SIGNING_KEY"))
    if settings.signing_key_file is not None:
        where = f"RELEASE_ASSETS_SIGNING_KEY_FILE={settings.signing_key_file}"
        try:
            pem = Path(settings.signing_key_file).read_bytes()
        except OSError as exc:
            raise SignatureError(f"{where}: cannot be read ({exc.strerror or exc})") from None
        return KeySigner(load_signing_key(pem, where))
    return None


def signer_of(signature: bytes, where: str) -> dict[str, str]:
    """Who made ``signature`` without verifying it: ``{"key_id": ...}`` (key mode) or ``{"certificate": ...}``
    (keyless: Sigstore's certificate, verified online only)."""
    try:
        material = json.loads(signature)["verificationMaterial"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"{where}: not a model-signing signature ({type(exc).__name__}: {exc})") from None
    hint = (material.get("publicKey") or {}).get("hint")
    if hint:
        return {"key_id": hint}
    if material.get("certificate") or material.get("x509CertificateChain"):
        return {"certificate": "sigstore"}
    raise SignatureError(f"{where}: the signature names no key and carries no certificate")


def verify_unit_signature(bundle: Path, signature: bytes | None, trust: Trust, where: str) -> str:
    """The id of the trusted key whose signature covers ``bundle``'s bytes; :class:`SignatureError` with the reason
    otherwise: unsigned, signed keylessly (not verifiable offline), by a key ``trust`` does not hold, or not
    matching the bundle (it was changed after signing)."""
    if signature is None:
        raise SignatureError(
            f"{where}: not signed (no {SIGNATURE} beside it); {trust.who} accepts only units signed by {trust.named()}"
        )
    made_by = signer_of(signature, f"{where} ({SIGNATURE})")
    if "key_id" not in made_by:
        raise SignatureError(
            f"{where}: signed keylessly (a Sigstore certificate); {trust.who} trusts keys only ({trust.named()}): "
            "check it with `model_signing verify sigstore --identity ... --identity_provider ...`"
        )
    key = trust.keys.get(made_by["key_id"])
    if key is None:
        raise SignatureError(
            f"{where}: signed by key {short(made_by['key_id'])}, which {trust.who} does not trust "
            f"(trusted: {trust.named()})"
        )
    from model_signing import verifying

    with tempfile.TemporaryDirectory(prefix="unit-verify-") as tmp:
        sig_path, pub_path = Path(tmp) / SIGNATURE, Path(tmp) / "key.pub"
        sig_path.write_bytes(signature)
        pub_path.write_bytes(key.public_pem)
        try:
            verifying.Config().use_elliptic_key_verifier(public_key=pub_path).verify(bundle, sig_path)
        except Exception as exc:  # model signing raises ValueError, cryptography's InvalidSignature, protobuf errors
            reason = _mismatch(bundle, signature) or str(exc) or type(exc).__name__
            raise SignatureError(
                f"{where}: the signature of key {short(key.key_id)} does not match: {reason}"
            ) from None
    return key.key_id


def signed_sha256(signature: bytes) -> str | None:
    """The bundle's sha256 as the signature's statement records it: model signing's manifest of a one-file model
    is one resource, named ``.``, with the file's digest (its subject digest is of the manifest, not the file)."""
    try:
        envelope = json.loads(signature)["dsseEnvelope"]
        resources = json.loads(base64.b64decode(envelope["payload"]))["predicate"]["resources"]
    except (ValueError, KeyError, TypeError):
        return None
    found = [r.get("digest") for r in resources if r.get("name") == "." and r.get("algorithm") == "sha256"]
    return found[0] if len(found) == 1 and len(resources) == 1 else None


def _mismatch(bundle: Path, signature: bytes) -> str | None:
    """Model signing's own mismatch message prints digests as Python bytes; this says it in hex."""
    signed = signed_sha256(signature)
    if signed is None:
        return None
    actual = sha256_file(bundle)
    if actual == signed:
        return None  # the digest agrees, so the envelope's signature itself failed: model signing's reason stands
    return f"the bundle's sha256 is {actual[:16]}..., the signature covers {signed[:16]}...: changed after signing"
