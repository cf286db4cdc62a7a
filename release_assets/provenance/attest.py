"""Everything kept beside a signed release unit, made and checked in one place.

``unit_files`` signs a written bundle: the model-signing signature of the bundle, its SLSA provenance and the gates'
test result, each statement in a DSSE envelope signed by the same signer. ``check_unit`` is what every verifier
runs (``verify``, ``promote``, ``serve --signed-only``): the signature by a trusted key over these very bytes, and
each attestation signed by that key and about this bundle. Each refusal says why, naming the file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release_assets.core.hashing import sha256_file
from release_assets.provenance.dsse import open_envelope
from release_assets.provenance.keys import SignatureError, Trust, short
from release_assets.provenance.signing import SIGNATURE, UnitSigner, verify_unit_signature
from release_assets.provenance.statements import (
    PROVENANCE_FILE,
    SLSA_PROVENANCE,
    TEST_RESULT,
    TEST_RESULT_FILE,
    BuildRecord,
    provenance_statement,
    test_result_statement,
)

ATTESTATIONS = {PROVENANCE_FILE: SLSA_PROVENANCE, TEST_RESULT_FILE: TEST_RESULT}


def unit_files(
    bundle: Path, manifest: dict[str, Any], signer: UnitSigner, build: Callable[[], BuildRecord], policy_url: str
) -> dict[str, bytes]:
    """File name -> bytes to keep beside ``bundle``: its signature, provenance and test result. ``build`` is
    called after signing the bundle, so the provenance's finish time includes it."""
    digest = sha256_file(bundle)
    signature = signer.sign_bundle(bundle)
    provenance = provenance_statement(manifest, digest, build())
    return {
        SIGNATURE: signature,
        PROVENANCE_FILE: signer.sign_statement(provenance),
        TEST_RESULT_FILE: signer.sign_statement(test_result_statement(manifest, digest, policy_url)),
    }


@dataclass(frozen=True)
class UnitCheck:
    key_id: str  # the trusted key that signed the unit and its attestations
    bundle_sha256: str
    attestations: dict[str, str]  # file -> sha256 of the envelope read (a verification summary cites them)
    statements: dict[str, dict[str, Any]]  # file -> the verified statement

    def summary(self) -> str:
        return f"signed by key {short(self.key_id)}; {', '.join(sorted(self.attestations))} verified"


def check_unit(bundle: Path, beside: Callable[[str], bytes | None], trust: Trust, where: str) -> UnitCheck:
    """The unit at ``bundle`` (``beside(name)``: the bytes of a file kept beside it, None if absent) is signed by
    a key of ``trust``, unchanged since, and so are its attestations; :class:`SignatureError` saying why not."""
    key = verify_unit_signature(bundle, beside(SIGNATURE), trust, where)
    digest = sha256_file(bundle)
    read, statements = {}, {}
    for name, predicate_type in ATTESTATIONS.items():
        raw = beside(name)
        at = f"{where} ({name})"
        if raw is None:
            raise SignatureError(f"{at}: missing; a signed unit carries its {predicate_type} attestation beside it")
        payload, signed_by = open_envelope(raw, trust, at)
        if signed_by != key:
            raise SignatureError(f"{at}: signed by key {short(signed_by)}, the unit by {short(key)}")
        statement = json.loads(payload)
        if statement.get("predicateType") != predicate_type:
            raise SignatureError(f"{at}: predicate {statement.get('predicateType')!r}, expected {predicate_type!r}")
        subjects = [s.get("digest", {}).get("sha256") for s in statement.get("subject") or []]
        if digest not in subjects:
            raise SignatureError(f"{at}: about another bundle (subject sha256 {', '.join(map(str, subjects))[:40]}...)")
        read[name] = hashlib.sha256(raw).hexdigest()
        statements[name] = statement
    return UnitCheck(key, digest, read, statements)
