"""The Python API (release_assets.api) called directly, on a throwaway project, store, MLflow and Dagster instance:
the same functions the CLI calls, returning the shapes `--json` prints."""

import json
import socket

import pytest

from release_assets import api
from release_assets.cli import main as cli
from release_assets.core.settings import get_settings
from release_assets.manifest import ManifestError
from release_assets.record.ledger import PromotionError
from release_assets.release.store import StoreError

FLOWER = {"features": [6.7, 3.0, 5.2, 2.3]}


def test_release_promote_load_history_rollback(cli_env, capsys):
    run = api.release(["iris"])
    [iris] = run.releases
    assert run.ok and iris.published_ok and api.release_status(iris) == "published" and run.run_id
    shape = run.as_dict()
    [row] = shape["releases"]
    assert row["status"] == "published" and row["version"] == iris.version and row["errors"] == []
    assert {"asset", "check", "passed", "severity", "reason"} == set(row["gates"][0])
    json.dumps(shape)  # plain data
    version = iris.version

    # Nothing changed since the run that published it: no run at all, the same version.
    again = api.release(["iris"])
    assert again.releases == [] and again.unchanged == {"iris": version} and again.run_id is None and again.ok
    assert again.as_dict()["releases"] == [
        {
            "release": "iris",
            "status": "unchanged",
            "version": version,
            "bundle": None,
            "gates": None,
            "recorded_gates": None,
            "weakened_gates": [],
            "errors": [],
        }
    ]

    [listed] = api.versions(["iris"])
    assert listed.champion is None and listed.candidate == version
    [info] = listed.versions
    assert info.version == version and info.aliases == ["candidate"] and info.gates_total == len(iris.gates)

    with pytest.raises(api.UsageError):
        api.promote("iris", version)  # no approver, no reason, no environment
    with pytest.raises(PromotionError, match=r"^promotion refused: iris 0{16} was never published"):
        api.promote("iris", "0" * 16, approved_by="alice", reason="x")
    move = api.promote("iris", version, approved_by="alice", reason="first")
    assert move == api.Move(
        release="iris",
        action="promoted",
        champion=version,
        from_version=None,
        environment=None,
        regions=[],
        actor="alice",
        reason="first",
        override=None,
        mlflow_pending=None,
    )
    assert api.load_release("iris").predict(FLOWER)["label"] == "virginica"
    assert api.load_release("iris", alias="candidate").version == version

    found = api.history("iris")
    assert found.champion == version and [e.action for e in found.events][-1] == "promoted"
    assert found.events[0].action == "published" and found.events[0].to_version == version
    # The CLI prints the very same shape.
    capsys.readouterr()
    assert cli.main(["history", "iris", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(found.as_dict()))

    with pytest.raises(PromotionError, match=r"^rollback refused: .*nothing to roll back to"):
        api.rollback("iris", reason="no", by="bob")
    assert api.history("iris").events == found.events  # a refusal writes nothing


def test_errors_are_the_package_own(cli_env):
    with pytest.raises(ManifestError, match=r"release\(s\) nope not found; known: \["):
        api.release(["nope"])
    with pytest.raises(StoreError, match="is not a release name"):
        api.history("../../outside")
    with pytest.raises(StoreError, match="iris has no champion"):
        api.load_release("iris")


def test_a_move_stands_when_mlflow_is_unreachable_and_says_so(cli_env, monkeypatch, capsys):
    run = api.release(["iris"])
    version = run.releases[0].version
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("RELEASE_ASSETS_MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    get_settings.cache_clear()
    move = api.promote("iris", version, approved_by="alice", reason="first")
    assert move.champion == version and api.history("iris").champion == version  # the ledger is the truth
    assert move.mlflow_pending is not None
    assert f"MLflow tracking server http://127.0.0.1:{port} unreachable" in move.mlflow_pending

    # The CLI: exit 3 (a service did not answer), the move and the reason in one JSON object.
    monkeypatch.setattr(api, "promote", lambda *a, **k: move)
    assert cli.main(["promote", "iris", version, "--approved-by", "alice", "--reason", "first", "--json"]) == 3
    answer = json.loads(capsys.readouterr().out)
    assert answer["champion"] == version and answer["code"] == 3 and answer["error"] == move.mlflow_pending
