"""Signed release units (provenance/): the round trip, and every unit that must be refused (unsigned, signed by a
key nobody trusts, a byte changed in any member or in an attestation), by `verify`'s check, by promotion and by
serving with --signed-only, each with its reason. Keys are made per test; nothing reaches Sigstore."""

from __future__ import annotations

import base64
import json

import pytest

from release_assets.provenance.keys import SignatureError, load_signing_key
from release_assets.provenance.signing import SIGNATURE, KeylessSigner, configured_signer, verify_unit_signature
from release_assets.provenance.statements import PROVENANCE_FILE, TEST_RESULT_FILE
from release_assets.record.ledger import PromotionError, promote, record_published
from release_assets.record.verified import verified_manifest, verified_unit
from release_assets.release.bundle import BundleError
from release_assets.release.store import BUNDLE, LocalReleaseStore
from release_assets.serving.loader import load_release
from release_assets_tests.provenance.units import RELEASE, entries, new_key, publish_signed, rewrite, trust


@pytest.fixture
def store(tmp_path) -> LocalReleaseStore:
    return LocalReleaseStore(tmp_path / "store")


@pytest.fixture
def key(tmp_path):
    return new_key(tmp_path, "release")[0]


def test_a_signed_unit_round_trips_and_signing_keeps_the_version(tmp_path, store, key):
    unsigned_store = LocalReleaseStore(tmp_path / "unsigned")
    version, manifest = publish_signed(tmp_path / "a", store, key)
    unsigned_version, _ = publish_signed(tmp_path / "b", unsigned_store, None)
    assert version == unsigned_version  # the signature sits beside the unit, outside it
    assert store.names_beside(RELEASE, version) == sorted([SIGNATURE, PROVENANCE_FILE, TEST_RESULT_FILE])
    assert unsigned_store.names_beside(RELEASE, version) == []

    own, check = verified_unit(store, RELEASE, version, trust(key))
    assert own == manifest and check is not None and check.key_id == key.key_id
    assert sorted(check.attestations) == [PROVENANCE_FILE, TEST_RESULT_FILE]
    assert check.statements[PROVENANCE_FILE]["subject"][0]["digest"]["sha256"] == check.bundle_sha256
    # Without trust, the digests alone (as before signing existed).
    assert verified_manifest(store, RELEASE, version) == manifest


def _refused_everywhere(tmp_path, store, version: str, accepted) -> str:
    """The reason verify's check, promotion and serving --signed-only each give; they must agree."""
    with pytest.raises(BundleError) as by_verify:
        verified_unit(store, RELEASE, version, accepted)
    with pytest.raises(PromotionError) as by_promote:
        promote(store, RELEASE, version, "alice", "ship", trust=accepted)
    with pytest.raises(BundleError) as by_serve:
        load_release(store, RELEASE, version=version, cache_dir=tmp_path / "serving", trust=accepted)
    reason = str(by_verify.value)
    assert reason in str(by_promote.value) and str(by_serve.value) == reason
    assert store.events(RELEASE)[-1]["action"] == "published"  # nothing promoted
    return reason


def test_an_unsigned_unit_is_refused(tmp_path, store, key):
    version, _ = publish_signed(tmp_path, store, None)
    record_published(store, RELEASE, version, "ci", "run-1")
    reason = _refused_everywhere(tmp_path, store, version, trust(key))
    assert f"not signed (no {SIGNATURE} beside it); environment prod accepts only units signed by" in reason
    assert key.key_id[:16] in reason


def test_a_unit_signed_by_an_untrusted_key_is_refused(tmp_path, store, key):
    stranger = new_key(tmp_path, "stranger")[0]
    version, _ = publish_signed(tmp_path, store, stranger)
    record_published(store, RELEASE, version, "ci", "run-1")
    reason = _refused_everywhere(tmp_path, store, version, trust(key))
    assert f"signed by key {stranger.key_id[:16]}, which environment prod does not trust" in reason


@pytest.mark.parametrize(
    ("path", "why"),
    [
        # An artifact member: as is, its file no longer has its sha256; rewritten consistently, the version no longer
        # matches the members (the bundle's own check names it, before the signature).
        ("intent_model/weights.bin", "intent_model/weights.bin: sha256"),
        ("chain/chain.yaml", "does not match its members' digest"),
        # Evidence (outside the version), rewritten consistently: only the signature sees it.
        ("intent_model_report/report.md", "does not match: the bundle's sha256 is"),
        ("_build_environment_report/sbom.cdx.json", "does not match: the bundle's sha256 is"),
    ],
)
def test_a_byte_changed_in_any_member_is_refused(tmp_path, store, key, path, why):
    version, _ = publish_signed(tmp_path, store, key)
    record_published(store, RELEASE, version, "ci", "run-1")
    body = entries(store.root / "releases" / RELEASE / version / BUNDLE)[path]
    flipped = bytes([body[0] ^ 1]) + body[1:]
    rewrite(store.root, version, path, flipped, consistent=not path.startswith("intent_model/"))
    assert why in _refused_everywhere(tmp_path, store, version, trust(key))


def test_a_changed_attestation_is_refused(tmp_path, store, key):
    version, _ = publish_signed(tmp_path, store, key)
    envelope = json.loads(store.beside(RELEASE, version, PROVENANCE_FILE) or b"")
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["runDetails"]["builder"]["id"] = "https://evil.example/builder"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    store.put_beside(RELEASE, version, PROVENANCE_FILE, json.dumps(envelope).encode())
    with pytest.raises(SignatureError, match=rf"\({PROVENANCE_FILE}\): the signature of key \w+ does not verify"):
        verified_unit(store, RELEASE, version, trust(key))


def test_a_missing_attestation_is_refused(tmp_path, store, key):
    version, _ = publish_signed(tmp_path, store, key)
    store.root.joinpath("releases", RELEASE, version, TEST_RESULT_FILE).unlink()
    with pytest.raises(SignatureError, match=rf"\({TEST_RESULT_FILE}\): missing"):
        verified_unit(store, RELEASE, version, trust(key))


def test_promotion_and_signed_only_serving_accept_a_trusted_unit(tmp_path, store, key):
    version, _ = publish_signed(tmp_path, store, key)
    record_published(store, RELEASE, version, "ci", "run-1")
    moved = promote(store, RELEASE, version, "alice", "ship", trust=trust(key))
    assert moved[-1]["action"] == "promoted"
    # The loader gets past the signature to what it serves (this toy unit's members are not a servable model).
    with pytest.raises(BundleError, match="no chain and not exactly one model: nothing to serve"):
        load_release(store, RELEASE, version=version, cache_dir=tmp_path / "serving", trust=trust(key))


class _Settings:
    def __init__(self, **values):
        self.signing_mode = values.get("signing_mode", "key")
        self.signing_key = values.get("signing_key")
        self.signing_key_file = values.get("signing_key_file")
        self.signing_identity = values.get("signing_identity")


def test_the_signing_key_comes_from_a_variable_or_a_file_and_bad_ones_are_named(tmp_path, key):
    pem = key.private_pem.decode()
    assert configured_signer(_Settings()) is None  # nothing configured: publishing stays unsigned
    assert configured_signer(_Settings(signing_key=pem)).identity == f"key:{key.key_id}"
    (tmp_path / "k.pem").write_text(pem)
    assert configured_signer(_Settings(signing_key_file=tmp_path / "k.pem")).identity == f"key:{key.key_id}"
    with pytest.raises(SignatureError, match="not both"):
        configured_signer(_Settings(signing_key=pem, signing_key_file=tmp_path / "k.pem"))
    with pytest.raises(SignatureError) as bad:
        configured_signer(_Settings(signing_key="-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"))
    assert str(bad.value).startswith("RELEASE_ASSETS_SIGNING_KEY: not an unencrypted PEM private key")
    assert "nope" not in str(bad.value)  # the value is never echoed
    with pytest.raises(SignatureError, match=r"_FILE=.*missing.pem: cannot be read"):
        configured_signer(_Settings(signing_key_file=tmp_path / "missing.pem"))
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    other = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(SignatureError, match="model signing takes elliptic-curve keys"):
        load_signing_key(other, "ed.pem")


def test_keyless_signing_goes_through_model_signings_sigstore_signer_with_ambient_credentials(
    tmp_path, key, monkeypatch
):
    """Sigstore cannot be reached here: its signer is a fake that records how model signing configured it and
    returns a bundle shaped like a keyless one (a certificate, no public key hint)."""
    from model_signing._signing import sign_sigstore

    made = {}

    class FakeSigstoreSigner:
        def __init__(self, **kwargs):
            made["kwargs"] = kwargs

        def sign(self, payload):
            made["statement"] = payload.statement.pb

            class Written:
                def write(self, path):
                    bundle = {"verificationMaterial": {"certificate": {"rawBytes": "MIIB"}}, "dsseEnvelope": {}}
                    path.write_text(json.dumps(bundle))

            return Written()

    monkeypatch.setattr(sign_sigstore, "Signer", FakeSigstoreSigner)
    statements = []
    identity = "acme/models/.github/workflows/release.yml@refs/heads/main"
    signer = KeylessSigner(identity, statement_signer=statements.append)
    bundle = tmp_path / BUNDLE
    bundle.write_bytes(b"a bundle")
    signature = signer.sign_bundle(bundle)
    assert made["kwargs"]["use_ambient_credentials"] is True and made["kwargs"]["identity_token"] is None
    assert made["statement"].subject[0].name == BUNDLE  # model signing's manifest of the one file
    signer.sign_statement({"_type": "x"})
    assert statements == [b'{"_type":"x"}']
    assert signer.identity == f"oidc:{identity}"
    # Offline, a keyless signature is named and refused by a verifier that trusts keys.
    with pytest.raises(SignatureError, match=r"signed keylessly .*model_signing verify sigstore"):
        verify_unit_signature(bundle, signature, trust(key), "b")


def test_trusted_keys_come_from_environments_yaml_and_a_bad_one_is_named(tmp_path):
    from release_assets.core.settings import Settings
    from release_assets.rollout.environments import EnvironmentsError, checking_trust, parse_environments, trust_of

    prod_key, public = new_key(tmp_path, "prod")
    (tmp_path / "not-a-key.pub").write_text("hello")
    envs = parse_environments(
        {
            "environments": [
                {"name": "dev"},
                {"name": "prod", "store": {"local": "prod"}, "trusted_keys": ["prod.pub"]},
                {"name": "dr", "store": {"local": "dr"}, "trusted_keys": ["missing.pub", "not-a-key.pub"]},
            ]
        }
    )
    settings = Settings(project_root=tmp_path)
    assert trust_of(envs.get("dev"), settings) is None  # trusts nobody: signatures not required
    prod = trust_of(envs.get("prod"), settings)
    assert prod is not None and prod.who == "environment prod" and list(prod.keys) == [prod_key.key_id]
    assert prod.keys[prod_key.key_id].where == str(public)
    with pytest.raises(EnvironmentsError, match=r"environments.yaml: dr.trusted_keys: .*missing.pub: trusted key"):
        trust_of(envs.get("dr"), settings)
    # verify's and serve's trust: the keys given, before environments.yaml and the signing key.
    given = checking_trust([str(public)], settings)
    assert given is not None and given.who == "--trusted-key" and set(given.keys) == set(prod.keys)
    with pytest.raises(EnvironmentsError, match=r"not-a-key\.pub: not a PEM public key"):
        checking_trust([str(tmp_path / "not-a-key.pub")], settings)
