"""A real release signed end to end: `release-assets release iris` with a signing key publishes the same version
a run without one does, with its signature, attestations and SBOM; `verify` checks them against a trusted key and
refuses another key or a changed bundle; promotion through environments.yaml's trusted_keys and serving with
--signed-only load it, and refuse the unsigned build of the same content."""

from __future__ import annotations

import json
import shutil

import pytest

from release_assets.cli import main as cli
from release_assets.core.settings import get_settings
from release_assets.provenance.sbom import SBOM_PATH
from release_assets.provenance.signing import SIGNATURE
from release_assets.provenance.statements import PROVENANCE_FILE, TEST_RESULT_FILE
from release_assets.release.store import LocalReleaseStore
from release_assets.serving.loader import load_release
from release_assets_tests.provenance.units import new_key, trust


def _version(out: str) -> str:
    return next(line.split()[-1] for line in out.splitlines() if line.strip().startswith("version:"))


def test_a_signed_release_verifies_promotes_and_serves_only_signed(cli_env, tmp_path, monkeypatch, capsys):
    key, public = new_key(tmp_path, "release")
    _, stranger = new_key(tmp_path, "stranger")
    store = LocalReleaseStore(tmp_path / "store")

    # Unsigned first (no key configured): published all the same, and verify says it is unsigned.
    assert cli.main(["release", "iris", "--quiet"]) == 0
    unsigned = _version(capsys.readouterr().out)
    folder = tmp_path / "store" / "releases" / "iris" / unsigned
    assert cli.main(["verify", str(folder)]) == 0
    assert "unsigned (no signing key configured, no trusted key: nothing to check)" in capsys.readouterr().out
    assert cli.main(["verify", str(folder), "--trusted-key", str(public)]) == 1
    assert f"not signed (no {SIGNATURE} beside it); --trusted-key accepts only" in capsys.readouterr().err

    # The same content from a fresh store, signed: the same version.
    shutil.rmtree(tmp_path / "store")
    shutil.rmtree(cli_env / ".release_store", ignore_errors=True)
    monkeypatch.setenv("RELEASE_ASSETS_SIGNING_KEY_FILE", str(tmp_path / "release.pem"))
    (tmp_path / "release.pem").write_bytes(key.private_pem)
    get_settings.cache_clear()
    assert cli.main(["release", "iris", "--quiet", "--force"]) == 0
    version = _version(capsys.readouterr().out)
    assert version == unsigned
    assert sorted(store.names_beside("iris", version)) == [SIGNATURE, PROVENANCE_FILE, TEST_RESULT_FILE]

    assert cli.main(["verify", str(folder), "--json"]) == 0
    verified = json.loads(capsys.readouterr().out)
    assert verified["signature"]["key_id"] == key.key_id and verified["signature"]["verified"] is True
    assert cli.main(["verify", str(folder), "--trusted-key", str(stranger)]) == 1
    assert f"signed by key {key.key_id[:16]}, which --trusted-key does not trust" in capsys.readouterr().err

    # The provenance names this run, its start and the SBOM the bundle carries.
    from release_assets.record.verified import verified_unit

    manifest, check = verified_unit(store, "iris", version, trust(key))
    assert check is not None
    predicate = check.statements[PROVENANCE_FILE]["predicate"]
    sbom = next(f for m in manifest["members"].values() for f in m["files"] if f["path"] == SBOM_PATH)
    assert predicate["runDetails"]["byproducts"][0]["digest"] == {"sha256": sbom["sha256"]}
    assert predicate["runDetails"]["metadata"]["invocationId"] == manifest["lineage"]["dagster_run_id"]
    assert predicate["runDetails"]["metadata"]["startedOn"] <= predicate["runDetails"]["metadata"]["finishedOn"]
    deps = {d["name"] for d in predicate["buildDefinition"]["resolvedDependencies"]}
    assert {"releases/iris.yaml", "member:classifier"} <= deps

    # environments.yaml trusts the release key: promotion passes, serving --signed-only answers.
    (cli_env / "environments.yaml").write_text(f"environments:\n  - name: dev\n    trusted_keys: [{public}]\n")
    assert cli.main(["promote", "iris", version, "--approved-by", "alice", "--reason", "signed"]) == 0
    capsys.readouterr()
    loaded = load_release(store, "iris", cache_dir=tmp_path / "serving", trust=trust(key))
    assert loaded.version == version

    # A changed signature file (another key's) refuses serving --signed-only, naming the key.
    other = tmp_path / "other"
    other.mkdir()
    stranger_key, _ = new_key(other, "stranger2")
    from release_assets.provenance.signing import KeySigner

    (folder / SIGNATURE).write_bytes(KeySigner(stranger_key).sign_bundle(folder / "bundle.tar.gz"))
    with pytest.raises(ValueError, match=f"signed by key {stranger_key.key_id[:16]}, which environment dev"):
        load_release(store, "iris", cache_dir=tmp_path / "serving", trust=trust(key, who="environment dev"))
