"""`--json` on the commands a script drives, and the exit codes: one JSON object on standard output, errors too
({"error": ..., "code": N}); 0 success, 1 held or refused, 2 usage or configuration, 3 a service did not answer."""

import json
import socket

import pytest

from release_assets.cli import main as cli


def _json(capsys) -> dict:
    out = capsys.readouterr().out
    return json.loads(out)  # the whole of standard output is one object


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"release-assets {version('release_assets')}\n"


def test_every_command_a_script_drives_answers_in_json(cli_env, tmp_path, capsys):
    assert cli.main(["release", "iris", "--quiet", "--json"]) == 0
    released = _json(capsys)
    [iris] = released["releases"]
    assert iris["status"] == "published" and released["publish"] is True and released["run_id"]
    assert all(set(g) == {"asset", "check", "passed", "severity", "reason"} for g in iris["gates"])
    version = iris["version"]
    assert cli.main(["release", "iris", "--json"]) == 0  # through the API: no run, the same version
    unchanged = {**iris, "status": "unchanged", "bundle": None, "gates": None, "recorded_gates": None}
    assert _json(capsys)["releases"][0] == unchanged

    assert cli.main(["list", "--json"]) == 0
    listed = _json(capsys)
    [row] = [r for r in listed["releases"] if r["release"] == "iris"]
    assert row["candidate"] == version and row["champion"] is None and row["errors"] == []
    assert [v["version"] for v in row["versions"]] == [version] and row["versions"][0]["aliases"] == ["candidate"]
    assert listed["manifest_errors"] == [] and "code" not in listed

    assert cli.main(["promote", "iris", "0" * 16, "--approved-by", "a", "--reason", "r", "--json"]) == 1
    refused = _json(capsys)
    assert refused["code"] == 1 and refused["error"].startswith("promotion refused: iris 0000000000000000 was never")
    assert cli.main(["promote", "iris", version, "--approved-by", "alice", "--reason", "first", "--json"]) == 0
    promoted = _json(capsys)
    assert promoted["action"] == "promoted" and promoted["champion"] == version and promoted["actor"] == "alice"
    assert promoted["from_version"] is None and promoted["mlflow_pending"] is None and "code" not in promoted
    assert cli.main(["rollback", "iris", "--reason", "no", "--json"]) == 1
    assert "nothing to roll back to" in _json(capsys)["error"]

    assert cli.main(["history", "iris", "--json"]) == 0
    history = _json(capsys)
    assert history["release"] == "iris" and history["champion"] == version
    assert history["events"][0]["action"] == "published" and history["events"][-1]["action"] == "promoted"
    assert history["events"][-1]["actor"] == "alice" and history["events"][-1]["environment"]

    bundle = tmp_path / "store" / "releases" / "iris" / version / "bundle.tar.gz"
    assert cli.main(["verify", str(bundle.parent), "--json"]) == 0
    verified = _json(capsys)
    assert verified["ok"] is True and verified["release"] == "iris" and verified["version"] == version
    assert verified["files"] > 0 and verified["held_by_reference"] == 0
    assert cli.main(["verify", "--ledger", "iris", "--json"]) == 0
    [ledger] = _json(capsys)["ledgers"]
    assert ledger["release"] == "iris" and ledger["ok"] is True and ledger["events"] == len(history["events"])

    assert cli.main(["validate", "--json"]) == 0
    validated = _json(capsys)
    assert "iris" in [v["release"] for v in validated["valid"]] and validated["errors"] == []

    # Refused: a bundle that does not verify; usage: a name that is not one, a command without what it needs.
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bundle.write_bytes(bytes(data))
    assert cli.main(["verify", str(bundle), "--json"]) == 1
    broken = _json(capsys)
    assert broken["ok"] is False and broken["code"] == 1 and broken["problems"] and broken["error"]
    assert cli.main(["history", "../../outside", "--json"]) == 2
    usage = _json(capsys)
    assert set(usage) == {"error", "code"} and usage["code"] == 2
    assert usage["error"].startswith("'../../outside' is not a release name")
    assert cli.main(["verify", "--json"]) == 2
    assert _json(capsys)["error"] == "verify needs a bundle (or its folder), or --ledger"


def test_a_held_release_is_exit_1_with_its_gates(cli_env, capsys):
    assert cli.main(["release", "iris", "--quiet", "--json", "--set", "iris:gates.classifier.accuracy.min=0.999"]) == 1
    held = _json(capsys)
    assert held["code"] == 1 and held["error"] == "iris: held_back"
    [iris] = held["releases"]
    assert iris["status"] == "held_back"
    assert any(g["check"] == "accuracy_gate" and not g["passed"] for g in iris["gates"])


def test_validate_json_names_the_broken_manifest(cli_env, capsys):
    (cli_env / "releases" / "helpdesk.yaml").write_text("name: helpdesk\nmembers: [unclosed\n")
    assert cli.main(["validate", "--json"]) == 1
    answer = _json(capsys)
    assert answer["code"] == 1 and "helpdesk.yaml: not valid YAML" in answer["error"]
    assert [v["release"] for v in answer["valid"]] == sorted(v["release"] for v in answer["valid"])
    assert "helpdesk" not in [v["release"] for v in answer["valid"]]


def test_canary_status_and_tick_say_when_the_metrics_do_not_answer(cli_env, tmp_path, monkeypatch, capsys):
    """A canary whose baseline was recorded, then the servers' /metrics stop answering: status still reads the
    ledger (and says why there is no live analysis), with exit 3; a tick holds the canary, exit 3 too."""
    from bench.support.bundles import publish_unit
    from release_assets.manifest import load_manifest
    from release_assets.record.ledger import promote
    from release_assets.release.store import LocalReleaseStore
    from release_assets.rollout.canary import Rollout, start
    from release_assets_tests.rollout.test_canary import Source

    store = LocalReleaseStore(tmp_path / "store")
    v1, v2 = publish_unit(store, "iris", "one"), publish_unit(store, "iris", "two")
    promote(store, "iris", v1, "alice", "first")
    spec = load_manifest(cli_env / "releases" / "iris.yaml").rollout
    source = Source()
    source.add(v1, requests=10)
    source.add(v2, requests=10)
    start(Rollout(store, "iris", spec, store.root / "flags"), v2, "bob", "try it", source=source)

    assert cli.main(["canary", "status", "helpdesk", "--json"]) == 0  # no canary there
    assert _json(capsys) == {
        "release": "helpdesk",
        "environment": "default",  # no environments.yaml: the one implicit environment
        "champion": None,
        "canary": None,
        "analysis": None,
        "analysis_error": None,
    }
    monkeypatch.setenv("RELEASE_ASSETS_METRICS_URLS", f"http://127.0.0.1:{_dead_port()}/metrics")
    monkeypatch.delenv("RELEASE_ASSETS_PROMETHEUS_URL", raising=False)
    assert cli.main(["canary", "status", "iris", "--json"]) == 3
    status = _json(capsys)
    assert status["champion"] == v1 and status["canary"]["version"] == v2 and status["canary"]["baseline_recorded"]
    assert status["canary"]["percent"] == spec.steps[0] and status["analysis"] is None
    assert status["code"] == 3 and status["error"] == status["analysis_error"] and status["error"]
    assert cli.main(["canary", "status", "iris"]) == 3
    assert "live analysis unavailable: " in capsys.readouterr().out
    assert cli.main(["canary", "tick", "iris", "--json"]) == 3
    assert _json(capsys)["action"] == "unavailable"  # tick's own shape, kept
