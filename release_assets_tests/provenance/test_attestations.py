"""The attestations beside a signed unit validate against their schemas (the in-toto attestation framework's own
protobuf bindings: Statement v1, SLSA provenance v1, test result v0.1, SLSA verification summary v1) and say what
the unit is; the SBOM validates against CycloneDX 1.6 and is the one the provenance names; an environment with
trusted_keys takes only signed units and records each promotion as a signed verification summary."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.predicates.test_result.v0 import test_result_pb2
from in_toto_attestation.predicates.vsa.v1 import vsa_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement

from release_assets.core.settings import get_settings
from release_assets.promotion.policy import Verdict
from release_assets.provenance.dsse import open_envelope
from release_assets.provenance.sbom import SBOM_PATH, sbom_bytes
from release_assets.provenance.statements import (
    APPROVAL,
    PROVENANCE_FILE,
    SLSA_PROVENANCE,
    TEST_RESULT,
    TEST_RESULT_FILE,
    VERIFICATION_SUMMARY,
    verification_file,
)
from release_assets.record.ledger import PromotionError, record_published
from release_assets.record.verified import verified_unit
from release_assets.release.store import LocalReleaseStore, event_hash
from release_assets.rollout.environment_promotion import promote_to
from release_assets.rollout.environments import parse_environments
from release_assets_tests.provenance.units import PACKAGES, RELEASE, new_key, publish_signed, trust

PREDICATES = {
    SLSA_PROVENANCE: provenance_pb2.Provenance,
    TEST_RESULT: test_result_pb2.TestResult,
    VERIFICATION_SUMMARY: vsa_pb2.VerificationSummary,
}


def validate(statement: dict) -> None:
    """Parse ``statement`` strictly (an unknown or mistyped field fails) into the Statement and its predicate's
    message, then run the framework's own checks on the statement and on every resource descriptor in it. The
    one field allowed beyond the schema is the verification summary's documented extension, ``APPROVAL``.

    The bindings' VSA v1 message has ``verifiedLevels`` as one string where the SLSA spec has an array
    (in-toto/attestation#425, fixed by #429, unreleased in 0.9.3): it is checked against the spec here instead."""
    pb = json_format.ParseDict(statement, statement_pb2.Statement())
    Statement.copy_from_pb(pb).validate()
    fields = dict(statement["predicate"])
    if statement["predicateType"] == VERIFICATION_SUMMARY:
        fields.pop(APPROVAL)
        levels = fields.pop("verifiedLevels")
        assert isinstance(levels, list) and all(re.fullmatch(r"SLSA_[A-Z]+_LEVEL_[0-4]", v) for v in levels), levels
    predicate = json_format.ParseDict(fields, PREDICATES[statement["predicateType"]]())
    descriptors = []
    if isinstance(predicate, provenance_pb2.Provenance):
        descriptors = [*predicate.build_definition.resolved_dependencies, *predicate.run_details.byproducts]
    for descriptor in descriptors:
        ResourceDescriptor.copy_from_pb(descriptor).validate()


def test_a_mistyped_statement_fails_the_schema_check():
    good = {"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "b", "digest": {"sha256": "a" * 64}}]}
    with pytest.raises(json_format.ParseError):
        validate({**good, "predicateType": TEST_RESULT, "predicate": {"result": "PASSED", "passed": ["x"]}})
    with pytest.raises(ValueError, match="At least one digest required"):
        validate({**good, "subject": [{"name": "b"}], "predicateType": TEST_RESULT, "predicate": {"result": "PASSED"}})


def test_provenance_and_test_result_validate_and_describe_the_unit(tmp_path):
    key, _ = new_key(tmp_path, "release")
    store = LocalReleaseStore(tmp_path / "store")
    verdicts = [
        Verdict("intent_model", "accuracy", "passed", "0.9 >= 0.8", 0.9, {"min": 0.8, "max": None}),
        Verdict("chain", "latency", "inconclusive", "no champion", None, {}, on_inconclusive="warn"),
    ]
    version, manifest = publish_signed(tmp_path, store, key, gates=verdicts)
    _, check = verified_unit(store, RELEASE, version, trust(key))
    assert check is not None
    provenance, tests = check.statements[PROVENANCE_FILE], check.statements[TEST_RESULT_FILE]
    validate(provenance)
    validate(tests)

    assert provenance["subject"][0]["name"] == f"{RELEASE}/{version}/bundle.tar.gz"
    build = provenance["predicate"]["buildDefinition"]
    assert build["externalParameters"]["source"]["commit"] == "a" * 40
    deps = {d["name"]: d["digest"] for d in build["resolvedDependencies"]}
    assert deps["source"] == {"gitCommit": "a" * 40} and deps["requirements.lock"] == {"sha256": "c" * 64}
    assert deps["member:intent_model"] == {"releaseAssetsMemberSha256": manifest["members"]["intent_model"]["digest"]}
    assert build["internalParameters"]["signer"] == f"key:{key.key_id}"
    assert provenance["predicate"]["runDetails"]["builder"]["id"].endswith("/actions/runs/42")

    assert tests["predicate"]["result"] == "WARNED"
    assert tests["predicate"]["passedTests"] == ["intent_model.accuracy"]
    assert tests["predicate"]["warnedTests"] == ["chain.latency"]


def test_the_sbom_is_cyclonedx_the_same_bytes_for_the_same_environment_and_in_the_bundle():
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    sbom = sbom_bytes(PACKAGES)
    assert sbom == sbom_bytes(list(reversed(PACKAGES)))
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom.decode()) is None
    document = json.loads(sbom)
    assert document["metadata"]["component"] == {
        "bom-ref": "release-assets",
        "name": "release-assets",
        "type": "application",
        "version": "0.1.0",
    }
    assert [c["purl"] for c in document["components"] if c["type"] == "library"] == [
        "pkg:pypi/numpy@2.3.1",
        "pkg:pypi/scikit-learn@1.7.0",
    ]
    assert "timestamp" not in document["metadata"]
    assert (
        sbom_bytes(PACKAGES[:1]) != sbom
        and json.loads(sbom_bytes(PACKAGES[:1]))["serialNumber"] != (document["serialNumber"])
    )
    # This environment's own SBOM lists what is installed here.
    own = {c["name"] for c in json.loads(sbom_bytes())["components"]}
    assert {"model-signing", "cyclonedx-python-lib", "dagster"} <= own


def test_the_bundle_carries_its_sbom_as_evidence(tmp_path):
    store = LocalReleaseStore(tmp_path / "store")
    _, manifest = publish_signed(tmp_path, store, None)
    member = manifest["members"]["_build_environment_report"]
    assert member["role"] == "evidence" and member["kind"] == "cyclonedx_sbom"
    assert [(f["path"], f["sha256"]) for f in member["files"]] == [
        (SBOM_PATH, hashlib.sha256(sbom_bytes(PACKAGES)).hexdigest())
    ]


@pytest.fixture
def signing_env(tmp_path, monkeypatch):
    """This machine signs with the release key (RELEASE_ASSETS_SIGNING_KEY), as the promoting CI job would."""
    key, public = new_key(tmp_path, "release")
    monkeypatch.setenv("RELEASE_ASSETS_SIGNING_KEY", key.private_pem.decode())
    monkeypatch.setenv("RELEASE_ASSETS_PROJECT_ROOT", str(tmp_path))
    get_settings.cache_clear()
    yield key, public
    get_settings.cache_clear()


def test_an_environment_with_trusted_keys_takes_only_signed_units_and_records_a_verification_summary(
    tmp_path, signing_env
):
    key, public = signing_env
    envs = parse_environments(
        {
            "environments": [
                {"name": "dev"},
                {"name": "prod", "store": {"local": str(tmp_path / "prod")}, "trusted_keys": [public.name]},
            ]
        }
    )
    dev = LocalReleaseStore(tmp_path / "dev")
    unsigned, _ = publish_signed(tmp_path / "u", dev, None, content="2")
    record_published(dev, RELEASE, unsigned, "ci", "run-1")
    with pytest.raises(PromotionError) as refused:
        promote_to(dev, envs, RELEASE, unsigned, "prod", "alice", "ship")
    assert str(refused.value).startswith(
        f"{RELEASE} {unsigned} cannot be promoted to prod: its signature is not accepted"
    )
    assert "not signed (no bundle.sig beside it); environment prod accepts only units signed by" in str(refused.value)
    assert not (tmp_path / "prod").exists()

    version, _ = publish_signed(tmp_path / "s", dev, key)
    record_published(dev, RELEASE, version, "ci", "run-2")
    moved = promote_to(dev, envs, RELEASE, version, "prod", "alice", "ship it")
    assert moved[-1]["environment"] == "prod"
    prod = LocalReleaseStore(tmp_path / "prod")
    # The signature and attestations travelled with the unit, and prod's copy verifies with them.
    assert verified_unit(prod, RELEASE, version, trust(key))[1] is not None
    name = verification_file("prod")
    assert dev.beside(RELEASE, version, name) == prod.beside(RELEASE, version, name)
    payload, signed_by = open_envelope(prod.beside(RELEASE, version, name) or b"", trust(key), name)
    summary = json.loads(payload)
    validate(summary)
    assert signed_by == key.key_id
    assert summary["predicate"]["policy"]["uri"] == "environments.yaml#prod"
    *attestations, approval = summary["predicate"]["inputAttestations"]
    assert {a["uri"] for a in attestations} == {PROVENANCE_FILE, TEST_RESULT_FILE}
    approved = next(e for e in dev.events(RELEASE) if e["action"] == "approved")
    where = f"ledger/{RELEASE}#seq={approved['seq']}"
    assert approval == {"uri": where, "digest": {"sha256": event_hash(approved)}}
    assert summary["predicate"][APPROVAL] == {
        "environment": "prod",
        "approver": "alice",
        "reason": "ship it",
        "time": approved["time"],
        "ledgerEvent": where,
    }
    assert (
        summary["subject"][0]["digest"]["sha256"]
        == hashlib.sha256(
            (tmp_path / "dev" / "releases" / RELEASE / version / "bundle.tar.gz").read_bytes()
        ).hexdigest()
    )
