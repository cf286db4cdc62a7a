"""DSSE envelopes (https://github.com/secure-systems-lab/dsse, v1.0) around in-toto statements, signed with the
release's elliptic-curve key: ECDSA over the pre-authentication encoding, the hash matching the curve as model
signing does (SHA-256 for P-256, SHA-384 for P-384, SHA-512 for P-521). The key id in the envelope is the key's
id (``keys.key_id``), the one the unit's signature names."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from release_assets.provenance.keys import SignatureError, SigningKey, Trust, short

IN_TOTO = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what is signed, so the payload type cannot be swapped."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def _hash_for(curve_bits: int):
    from cryptography.hazmat.primitives import hashes

    return {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[curve_bits]


def sign_envelope(payload: bytes, key: SigningKey, payload_type: str = IN_TOTO) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import ec

    private = key.private_key()
    sig = private.sign(pae(payload_type, payload), ec.ECDSA(_hash_for(private.curve.key_size)))
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": key.key_id, "sig": base64.b64encode(sig).decode()}],
    }


def envelope_bytes(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope, indent=1, sort_keys=True).encode()


def open_envelope(raw: bytes, trust: Trust, where: str, payload_type: str = IN_TOTO) -> tuple[bytes, str]:
    """The payload of the envelope ``raw`` and the id of the trusted key whose signature verified it.

    Refused (:class:`SignatureError`, naming ``where``): not an envelope, another payload type, no signature by
    a key ``trust`` holds, or a signature that does not verify (the payload was changed)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        envelope = json.loads(raw)
        payload = base64.b64decode(envelope["payload"], validate=True)
        kind = envelope["payloadType"]
        signatures = [(s["keyid"], base64.b64decode(s["sig"], validate=True)) for s in envelope["signatures"]]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise SignatureError(f"{where}: not a DSSE envelope ({type(exc).__name__}: {exc})") from None
    if kind != payload_type:
        raise SignatureError(f"{where}: payload type {kind!r}, expected {payload_type!r}")
    if not signatures:
        raise SignatureError(f"{where}: the envelope carries no signature")
    known = [(k, s) for k, s in signatures if k in trust.keys]
    if not known:
        ids = ", ".join(short(str(k)) for k, _ in signatures)
        raise SignatureError(
            f"{where}: signed by key {ids}, which {trust.who} does not trust (trusted: {trust.named()})"
        )
    for keyid, sig in known:
        public = trust.keys[keyid].public_key()
        try:
            public.verify(sig, pae(kind, payload), ec.ECDSA(_hash_for(public.curve.key_size)))
        except InvalidSignature:
            continue
        return payload, keyid
    raise SignatureError(
        f"{where}: the signature of key {short(known[0][0])} does not verify: the statement was changed"
    )
