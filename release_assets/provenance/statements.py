"""The in-toto Statements (https://in-toto.io/Statement/v1) a release unit carries beside its bundle, each about
the bundle (its subject, by sha256):

- SLSA provenance v1 (``provenance.intoto.json``): how it was built. The build definition holds the release
  manifest file, the git commit, the members' data digests and code versions, the dependency lock's digest; the run
  details the builder, the Dagster run and when it started and finished, and the SBOM as a byproduct.
- a test result (``test-result.intoto.json``, in-toto's test-result predicate v0.1): every gate's verdict.
- a verification summary per promotion (``verification.<environment>.intoto.json``, SLSA VSA v1): which
  environment verified it, against which keys, approved by whom.

Each is kept signed in a DSSE envelope (``dsse.py``), by the key that signed the unit. Plain dicts in, plain dicts
out: the schema check is the in-toto protobuf bindings' (tests), the signing is the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATEMENT = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"
VERIFICATION_SUMMARY = "https://slsa.dev/verification_summary/v1"
# What "building a release unit" means, for a verifier reading buildDefinition: documented in docs/architecture.md
# (Provenance). Versioned: a change to what externalParameters hold is a new build type.
BUILD_TYPE = "https://release-assets.dev/build-types/release-unit/v1"
VERIFIER = "https://release-assets.dev/verifiers/promote/v1"
# A member's digest is not one file's sha256 but the sha256 of its files' sha256 list (core.hashing.member_digest):
# named as its own algorithm so nobody compares it with a file's.
MEMBER_DIGEST = "releaseAssetsMemberSha256"

# The verification summary's extension field naming who approved the promotion (see verification_summary).
APPROVAL = "approval"

PROVENANCE_FILE = "provenance.intoto.json"
TEST_RESULT_FILE = "test-result.intoto.json"


def verification_file(environment: str) -> str:
    return f"verification.{environment}.intoto.json"


def subject(manifest: dict[str, Any], bundle_sha256: str) -> list[dict[str, Any]]:
    release, version = manifest["release"], manifest["version"]
    return [
        {
            "name": f"{release}/{version}/bundle.tar.gz",
            "digest": {"sha256": bundle_sha256},
            "annotations": {"release": release, "version": version},
        }
    ]


def _statement(manifest: dict[str, Any], bundle_sha256: str, predicate_type: str, predicate: dict) -> dict[str, Any]:
    return {
        "_type": STATEMENT,
        "subject": subject(manifest, bundle_sha256),
        "predicateType": predicate_type,
        "predicate": predicate,
    }


@dataclass(frozen=True)
class BuildRecord:
    """What the provenance says about the build beyond the manifest (the run, the builder, the environment)."""

    builder_id: str  # who ran the build: a CI workflow's URI, or this machine's `release-assets` on a workstation
    started_on: str  # RFC 3339, UTC
    finished_on: str
    signer: str  # the signer's identity (``key:<key id>`` or ``oidc:<identity>``)
    manifest_file: dict[str, str] | None = None  # {"path": releases/x.yaml (in the checkout), "sha256": ...}
    lock_sha256: str | None = None  # requirements.lock of the environment that built it (None: no lock there)
    sbom: dict[str, str] | None = None  # {"path": the bundle's SBOM file, "sha256": ...}
    builder_version: dict[str, str] = field(default_factory=dict)  # release_assets, python


def _git(lineage: dict[str, Any]) -> dict[str, Any]:
    return lineage.get("git") or {}


def provenance_statement(manifest: dict[str, Any], bundle_sha256: str, build: BuildRecord) -> dict[str, Any]:
    lineage = manifest.get("lineage") or {}
    git = _git(lineage)
    dependencies: list[dict[str, Any]] = []
    if git.get("commit"):
        dependencies.append(
            {
                "name": "source",
                "digest": {"gitCommit": git["commit"]},
                "annotations": {"branch": git.get("branch") or "", "dirty": bool(git.get("dirty"))},
            }
        )
    if build.manifest_file:
        dependencies.append({"name": build.manifest_file["path"], "digest": {"sha256": build.manifest_file["sha256"]}})
    if build.lock_sha256:
        dependencies.append({"name": "requirements.lock", "digest": {"sha256": build.lock_sha256}})
    for name, member in sorted(manifest["members"].items()):
        dependencies.append(
            {
                "name": f"member:{name}",
                "digest": {MEMBER_DIGEST: member["digest"]},
                "annotations": {"kind": member["kind"], "role": member["role"]},
            }
        )
    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "release": manifest["release"],
                "source": {"commit": git.get("commit"), "dirty": git.get("dirty"), "branch": git.get("branch")},
                **({"manifest": build.manifest_file["path"]} if build.manifest_file else {}),
            },
            "internalParameters": {
                "code_versions": lineage.get("code_versions") or {},
                "data_versions": lineage.get("data_versions") or {},
                "weakened_gates": manifest.get("weakened_gates") or [],
                "signer": build.signer,
            },
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {
                "id": build.builder_id,
                **({"version": build.builder_version} if build.builder_version else {}),
            },
            "metadata": {
                "invocationId": lineage.get("dagster_run_id") or "",
                "startedOn": build.started_on,
                "finishedOn": build.finished_on,
            },
            "byproducts": (
                [
                    {
                        "name": build.sbom["path"],
                        "digest": {"sha256": build.sbom["sha256"]},
                        "mediaType": "application/vnd.cyclonedx+json",
                    }
                ]
                if build.sbom
                else []
            ),
        },
    }
    return _statement(manifest, bundle_sha256, SLSA_PROVENANCE, predicate)


_RESULTS = {"passed": "passedTests", "failed": "failedTests", "inconclusive": "warnedTests"}


def test_result_statement(manifest: dict[str, Any], bundle_sha256: str, policy_url: str) -> dict[str, Any]:
    """The gates' verdicts as in-toto's test result: PASSED when every gate passed, WARNED when some were
    inconclusive or warn-only and failed (they did not hold it), FAILED when a blocking gate failed."""
    tests: dict[str, list[str]] = {"passedTests": [], "warnedTests": [], "failedTests": []}
    blocking_failed = False
    for gate in manifest.get("gates") or []:
        name = f"{gate['member']}.{gate['gate']}"
        status = gate.get("status")
        bucket = _RESULTS.get(status, "warnedTests")
        if status == "failed" and gate.get("severity", "block") != "block":
            bucket = "warnedTests"  # a warn-only gate reports, it never holds
        blocking_failed |= bucket == "failedTests"
        tests[bucket].append(name)
    result = "FAILED" if blocking_failed else "WARNED" if tests["warnedTests"] else "PASSED"
    predicate = {
        "result": result,
        "configuration": [{"name": policy_url}],
        **{k: sorted(v) for k, v in tests.items()},
    }
    return _statement(manifest, bundle_sha256, TEST_RESULT, predicate)


def verification_summary(
    manifest: dict[str, Any],
    bundle_sha256: str,
    *,
    environment: str,
    policy_sha256: str,
    approval: dict[str, Any],
    approval_uri: str,
    approval_sha256: str,
    input_attestations: dict[str, str],
    time_verified: str,
    resource_uri: str,
) -> dict[str, Any]:
    """A promotion into ``environment`` as a SLSA verification summary: the unit's signature and attestations
    (``input_attestations``: file -> sha256 of each envelope read) were verified under the environment's policy
    (``policy_sha256``: of its entry in environments.yaml, trusted keys included), and the ledger's ``approved``
    event (``approval``, at ``approval_uri``, by its chain hash) let it in: cited as an input like the
    attestations, and named in ``APPROVAL``, an extension field (the VSA schema has no approver; SLSA's parsing
    rules have consumers ignore fields they do not know)."""
    attestations = [{"uri": name, "digest": {"sha256": sha}} for name, sha in sorted(input_attestations.items())]
    predicate = {
        "verifier": {"id": VERIFIER},
        "timeVerified": time_verified,
        "resourceUri": resource_uri,
        "policy": {"uri": f"environments.yaml#{environment}", "digest": {"sha256": policy_sha256}},
        "inputAttestations": [*attestations, {"uri": approval_uri, "digest": {"sha256": approval_sha256}}],
        "verificationResult": "PASSED",
        # What a key-mode signature proves: signed provenance from this builder (SLSA Build L1); a hosted builder's
        # keyless signature from its own identity is what L2 asks for, which the offline check does not verify.
        "verifiedLevels": ["SLSA_BUILD_LEVEL_1"],
        "slsaVersion": "1.0",
        APPROVAL: {
            "environment": environment,
            "approver": approval["actor"],
            "reason": approval["reason"],
            "time": approval["time"],
            "ledgerEvent": approval_uri,
        },
    }
    return _statement(manifest, bundle_sha256, VERIFICATION_SUMMARY, predicate)
