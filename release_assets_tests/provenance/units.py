"""Signed release units for the provenance tests: keys, a small published unit with its signature and
attestations, and a bundle rewritten as an attacker would (members and manifest consistent, signature kept)."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path
from typing import Any

from release_assets.artifacts import LocalArtifactStore
from release_assets.core.hashing import member_digest
from release_assets.promotion.policy import Verdict
from release_assets.provenance.attest import unit_files
from release_assets.provenance.keys import SigningKey, Trust, load_signing_key
from release_assets.provenance.sbom import sbom_bytes
from release_assets.provenance.signing import KeySigner
from release_assets.provenance.statements import BuildRecord
from release_assets.release.bundle import write_bundle
from release_assets.release.publish import build_manifest, publish_release
from release_assets.release.store import BUNDLE, ReleaseStore
from release_assets_tests.release.test_publish import RELEASE, artifact

# A clean build on the default branch: promotion needs no override for where it was built.
LINEAGE = {"git": {"commit": "a" * 40, "dirty": False, "branch": "main", "on_default_branch": True}}
PACKAGES = [("numpy", "2.3.1"), ("release-assets", "0.1.0"), ("scikit-learn", "1.7.0")]


def new_key(tmp: Path, name: str) -> tuple[SigningKey, Path]:
    """A P-256 key pair: the signing key, and its public half written to ``tmp/<name>.pub``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = load_signing_key(pem, name)
    public = tmp / f"{name}.pub"
    public.write_bytes(key.public.public_pem)
    return key, public


def trust(*keys: SigningKey, who: str = "environment prod") -> Trust:
    return Trust({k.key_id: k.public for k in keys}, who)


def build(signer: str = "key:test") -> BuildRecord:
    return BuildRecord(
        builder_id="https://github.com/acme/models/actions/runs/42",
        started_on="2026-12-07T07:00:00Z",
        finished_on="2026-12-07T07:01:00Z",
        signer=signer,
        manifest_file={"path": "releases/helpdesk.yaml", "sha256": "b" * 64},
        lock_sha256="c" * 64,
        sbom={"path": "_build_environment_report/sbom.cdx.json", "sha256": "d" * 64},
        builder_version={"release_assets": "0.1.0", "python": "3.11.7"},
    )


def publish_signed(
    tmp: Path, store: ReleaseStore, key: SigningKey | None, content: str = "1", gates: list[Verdict] | None = None
) -> tuple[str, dict[str, Any]]:
    """A helpdesk unit (model, its report, chain) with the SBOM, signed by ``key`` (None: unsigned), published to
    ``store``; its version and manifest."""
    cache = LocalArtifactStore(tmp / "cache")
    refs = {
        "intent_model": artifact(cache, "intent_model", {"model.json": f'{{"w": {content}}}', "weights.bin": "xx"}),
        "intent_model_report": artifact(cache, "intent_model_report", {"report.md": "p95 12 ms"}, kind="report"),
        "chain": artifact(cache, "chain", {"chain.yaml": "steps: []"}, kind="chain"),
    }
    manifest = build_manifest(RELEASE, refs, gates or [], LINEAGE)
    attest = None
    if key is not None:
        signer = KeySigner(key)

        def attest(bundle: Path, m: dict[str, Any]) -> dict[str, bytes]:
            return unit_files(bundle, m, signer, lambda: build(signer.identity), "releases/helpdesk.yaml")

    _, published, _ = publish_release(cache, store, RELEASE, refs, manifest, sbom=sbom_bytes(PACKAGES), attest=attest)
    return published["version"], published


def entries(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle, "r:gz") as tar:
        return {i.name: tar.extractfile(i).read() for i in tar.getmembers()}  # type: ignore[union-attr]


def rewrite(store_root: Path, version: str, path: str, body: bytes, *, consistent: bool) -> None:
    """Replace file ``path`` of the stored bundle by ``body``; ``consistent``: also fix the manifest's sha256, size
    and member digest (inside the bundle and beside it), as someone who knows the format would."""
    folder = store_root / "releases" / RELEASE / version
    files = entries(folder / BUNDLE)
    manifest = json.loads(files.pop("manifest.json"))
    files[path] = body
    if consistent:
        member = manifest["members"][path.split("/")[0]]
        for f in member["files"]:
            if f["path"] == path:
                f["sha256"], f["size"] = hashlib.sha256(body).hexdigest(), len(body)
        member["digest"] = member_digest({f["path"].split("/", 1)[1]: f["sha256"] for f in member["files"]})
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    scratch = folder.parent / "scratch"
    scratch.mkdir(exist_ok=True)
    paths = {}
    for name, data in files.items():
        paths[name] = scratch / name.replace("/", "__")
        paths[name].write_bytes(data)
    write_bundle(paths, manifest, folder / BUNDLE)
