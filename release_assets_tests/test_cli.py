"""The `release-assets` commands a person types, against a throwaway project, store and instance."""

import pytest

from release_assets import cli
from release_assets.settings import get_settings
from release_assets_tests.conftest import edit_manifest


@pytest.fixture
def env(project, tmp_path, monkeypatch):
    for name, value in {
        "RELEASE_ASSETS_PROJECT_ROOT": str(project),
        "RELEASE_ASSETS_STORE_ROOT": str(tmp_path / "store"),
        "RELEASE_ASSETS_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "RELEASE_ASSETS_MLFLOW_ARTIFACT_ROOT": str(tmp_path / "mlartifacts"),
        "DAGSTER_HOME": str(tmp_path / "home"),
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield project
    get_settings.cache_clear()


def test_release_list_promote_history_rollback_verify(env, tmp_path, capsys):
    assert cli.main(["release", "iris"]) == 0
    out = capsys.readouterr().out
    assert "== iris: published" in out and "gates:" in out
    version = next(line.split()[-1] for line in out.splitlines() if line.strip().startswith("version:"))

    assert cli.main(["release", "iris"]) == 0
    assert "unchanged (already published, nothing new)" in capsys.readouterr().out

    assert cli.main(["list", "iris"]) == 0
    assert version in capsys.readouterr().out

    assert cli.main(["promote", "iris", "0" * 16, "--approved-by", "alice", "--reason", "x"]) == 1
    assert "was never published" in capsys.readouterr().err
    assert cli.main(["promote", "iris", version, "--approved-by", "alice", "--reason", "first"]) == 0
    assert f"{version} is now champion" in capsys.readouterr().out

    assert cli.main(["rollback", "iris", "--by", "bob", "--reason", "no"]) == 1
    assert "nothing to roll back to" in capsys.readouterr().err

    assert cli.main(["history", "iris"]) == 0
    history = capsys.readouterr().out
    assert "published" in history and "promoted" in history and "alice" in history

    bundle = tmp_path / "store" / "releases" / "iris" / version / "bundle.tar.gz"
    assert cli.main(["verify", str(bundle)]) == 0
    assert f"OK: iris {version}" in capsys.readouterr().out
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bundle.write_bytes(bytes(data))
    assert cli.main(["verify", str(bundle)]) == 1
    assert "FAILED" in capsys.readouterr().err


def test_held_back_release_exits_non_zero_with_the_reason(env, capsys):
    assert cli.main(["release", "iris", "--set", "iris:gates.classifier.accuracy.min=0.999"]) == 1
    out = capsys.readouterr().out
    assert "== iris: HELD BACK" in out
    assert "[FAIL] classifier_report accuracy_gate: accuracy = " in out


def test_bad_override_and_bad_manifest_are_clear(env, capsys):
    assert cli.main(["release", "iris", "--set", "iris:members.classifier.params.D=1"]) == 2
    assert "members.classifier.params.D: Extra inputs are not permitted" in capsys.readouterr().err
    edit_manifest(env, "iris", lambda d: d["members"]["classifier"].update({"kind": "quantum_classifier"}))
    assert cli.main(["validate"]) == 1
    assert "iris.yaml: members.classifier" in capsys.readouterr().err
