"""The `release-assets` commands a person types, against a throwaway project, store and instance."""

import json

import pytest

from bench.support.project import edit_manifest
from release_assets.cli import main as cli
from release_assets.core.settings import get_settings


@pytest.fixture
def env(cli_env):
    return cli_env


def _runs() -> int:
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        return instance.get_runs_count()


def test_release_list_promote_history_rollback_verify(env, tmp_path, capsys):
    assert cli.main(["release", "iris"]) == 0
    out, err = capsys.readouterr()
    assert "== iris: published" in out and "gates:" in out
    # Progress on standard error, one line per step as it starts and ends; standard output keeps the summary.
    assert "start iris/classifier" in err and "done  iris/classifier (" in err and "start" not in out
    version = next(line.split()[-1] for line in out.splitlines() if line.strip().startswith("version:"))

    # Nothing changed: proven from the stamp the first run left, without a Dagster run.
    runs = _runs()
    assert cli.main(["release", "iris"]) == 0
    out = capsys.readouterr().out
    assert "== iris: unchanged (inputs identical" in out and f"version: {version}" in out and "nothing to run" in out
    assert _runs() == runs
    assert cli.main(["release", "iris", "--force"]) == 0
    assert "unchanged (already published, nothing new)" in capsys.readouterr().out

    assert cli.main(["list", "iris"]) == 0
    assert version in capsys.readouterr().out

    assert cli.main(["promote", "iris", "0" * 16, "--approved-by", "alice", "--reason", "x"]) == 1
    refusal = capsys.readouterr().err
    assert refusal.startswith("promotion refused: iris 0000000000000000 was never published"), refusal
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


@pytest.mark.parametrize("command", ["status", "tick", "start", "abort", "resume"])
def test_canary_commands_refuse_a_release_name_that_is_a_path(env, tmp_path, capsys, command):
    outside = tmp_path / "x.yaml"  # what ../../x would have read
    outside.write_text("name: x\nmembers: {}\n")
    extra = {
        "start": ["0" * 16, "--approved-by", "a", "--reason", "r"],
        "abort": ["--reason", "r"],
        "resume": ["--reason", "r"],
    }.get(command, [])
    code = cli.main(["canary", command, "../../x", *extra])
    err = capsys.readouterr().err
    assert code in (1, 2) and "'../../x' is not a release name" in err, err


def test_validate_loads_every_chain_file_a_manifest_names(env, capsys):
    assert cli.main(["validate"]) == 0
    capsys.readouterr()
    chain = env / "prompts" / "helpdesk" / "chain.yaml"
    chain.write_text(chain.read_text().replace("steps:", "steps: [", 1))  # no longer parses
    assert cli.main(["validate"]) == 1
    captured = capsys.readouterr()
    assert "helpdesk.yaml: members.chain:" in captured.err and str(chain) in captured.err, captured.err
    assert "OK: helpdesk" not in captured.out and "OK: iris" in captured.out
    chain.write_text(chain.read_text().replace("steps: [", "steps:", 1).replace("{{ classify_intent", "{{ nope", 1))
    assert cli.main(["validate"]) == 1, "a template that reads an undeclared variable"
    chain.write_text(chain.read_text().replace("{{ nope", "{{ classify_intent", 1))
    messages = env / "data" / "support" / "messages.jsonl"
    messages.write_text("")  # the intent model's labels come from its data: an empty file is named
    assert cli.main(["validate"]) == 1
    assert f"{messages}: no rows" in capsys.readouterr().err


def test_a_rebuild_of_a_published_version_shows_the_gates_list_shows(env, capsys):
    # Published with no champion (two gates only warn), then promoted: a rebuild now passes all of them, but the
    # version's record (what `list` shows and promotion reads) is the first run's.
    assert cli.main(["release", "iris", "--quiet"]) == 0
    [version] = [line.split()[-1] for line in capsys.readouterr().out.splitlines() if "version:" in line]
    assert cli.main(["promote", "iris", version, "--approved-by", "a", "--reason", "r"]) == 0
    assert cli.main(["release", "iris", "--quiet", "--force"]) == 0
    out = capsys.readouterr().out
    assert "unchanged (already published" in out
    assert "11/11 passed in this run; the published version records 9/11 passed (shown by `list`)" in out, out
    assert cli.main(["list"]) == 0
    assert "9/11 passed" in capsys.readouterr().out


def _one_line_error(err: str) -> str:
    assert "Traceback" not in err and "dagster._core" not in err, err
    return err


def test_a_broken_manifest_does_not_stop_the_other_releases(env, capsys):
    (env / "releases" / "helpdesk.yaml").write_text("name: helpdesk\nmembers: [unclosed\n")
    assert cli.main(["release", "iris"]) == 0
    captured = capsys.readouterr()
    assert "== iris: published" in captured.out
    assert "helpdesk.yaml: not valid YAML" in _one_line_error(captured.err)
    assert cli.main(["list"]) == 0
    captured = capsys.readouterr()
    assert "iris" in captured.out and "helpdesk.yaml" in _one_line_error(captured.err)
    assert cli.main(["release", "helpdesk"]) == 2
    assert "release(s) helpdesk cannot be loaded" in _one_line_error(capsys.readouterr().err)
    assert cli.main(["validate"]) == 1
    captured = capsys.readouterr()
    assert "OK: iris" in captured.out and "FAILED:" in captured.err


def test_a_missing_data_file_is_named_before_any_work(env, capsys):
    (env / "data" / "support" / "messages.jsonl").unlink()
    assert cli.main(["validate"]) == 1
    err = _one_line_error(capsys.readouterr().err)
    assert "helpdesk.yaml: members.messages.path: data/support/messages.jsonl does not exist" in err


def test_store_problems_are_one_line_each(env, tmp_path, capsys):
    assert cli.main(["release", "iris"]) == 0
    out = capsys.readouterr().out
    version = next(line.split()[-1] for line in out.splitlines() if line.strip().startswith("version:"))
    folder = tmp_path / "store" / "releases" / "iris" / version

    # A path trick in a release name never reaches the file system.
    assert cli.main(["history", "../../../outside"]) == 2
    assert "'../../../outside' is not a release name" in _one_line_error(capsys.readouterr().err)

    # The loose manifest beside the bundle must agree with the bundle's own.
    loose = folder / "manifest.json"
    original = loose.read_text()
    edited = json.loads(original)
    edited["gates"] = [{**g, "status": "passed"} for g in edited["gates"]]  # "no warnings, all passed"
    loose.write_text(json.dumps(edited))
    assert cli.main(["verify", str(folder)]) == 1
    assert "differs from the bundle's own" in _one_line_error(capsys.readouterr().err)

    # A truncated manifest is named; `list` still answers for what it can read.
    loose.write_text(original[: len(original) // 2])
    assert cli.main(["list", "iris"]) == 1
    assert f"{loose}: not a readable release manifest" in _one_line_error(capsys.readouterr().err)
    assert cli.main(["promote", "iris", version, "--approved-by", "alice", "--reason", "x"]) == 1
    assert "not a readable release manifest" in _one_line_error(capsys.readouterr().err)
    loose.write_text(original)

    # The ledger: intact, then edited.
    assert cli.main(["verify", "--ledger", "iris"]) == 0
    assert "OK: ledger iris: 1 events, hash chain intact" in capsys.readouterr().out
    ledger = tmp_path / "store" / "ledger" / "iris.jsonl"
    ledger.write_text(ledger.read_text().replace('"actor": "dagster"', '"actor": "mallory"'))
    assert cli.main(["verify", "--ledger", "iris"]) == 1  # a ledger that does not verify: refused, like a bundle
    assert "iris.jsonl line 1: edited" in _one_line_error(capsys.readouterr().err)
    assert cli.main(["history", "iris"]) == 1  # every command that replays it stops
    assert "iris.jsonl line 1: edited" in _one_line_error(capsys.readouterr().err)


def test_an_unreachable_s3_store_fails_at_once_naming_the_endpoint(env, monkeypatch, capsys):
    import socket
    import time

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("RELEASE_ASSETS_STORE_BACKEND", "s3")
    monkeypatch.setenv("RELEASE_ASSETS_S3_BUCKET", "releases")
    monkeypatch.setenv("RELEASE_ASSETS_S3_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    get_settings.cache_clear()
    start = time.perf_counter()
    assert cli.main(["release", "iris"]) == 3  # an unreachable service
    assert cli.main(["list"]) == 3
    assert cli.main(["history", "iris"]) == 3
    assert time.perf_counter() - start < 30
    err = _one_line_error(capsys.readouterr().err)
    assert err.count(f"http://127.0.0.1:{port} is unreachable") == 3, err
    assert cli.main(["history", "iris", "--json"]) == 3
    answer = json.loads(capsys.readouterr().out)
    assert answer["code"] == 3 and f"http://127.0.0.1:{port} is unreachable" in answer["error"]


def test_weakened_gates_show_in_list_and_history_and_need_an_override(env, capsys):
    weaken = [f"iris:gates.classifier.{g}.severity=warn" for g in ("accuracy", "macro_f1", "min_class_recall")]
    args = ["release", "iris", "--set", "iris:members.classifier.params.C=0.0001"]
    assert (
        cli.main(
            args
            + [x for w in weaken for x in ("--set", w)]
            + ["--set", "iris:gates.classifier.slice_gap.severity=warn"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "WEAKENED gates" in out and "gates.classifier.accuracy.severity: block -> warn" in out
    version = next(line.split()[-1] for line in out.splitlines() if line.strip().startswith("version:"))
    assert cli.main(["list", "iris"]) == 0
    assert "WEAKENED gates (4)" in capsys.readouterr().out
    assert cli.main(["promote", "iris", version, "--approved-by", "alice", "--reason", "ship"]) == 1
    err = _one_line_error(capsys.readouterr().err)
    assert "weakened from the committed manifest" in err and "--override-weakened-gates" in err
    promote = ["promote", "iris", version, "--approved-by", "alice", "--reason", "demo", "--override-weakened-gates"]
    assert cli.main(promote) == 0
    assert "OVER WEAKENED GATES" in capsys.readouterr().out
    assert cli.main(["history", "iris"]) == 0
    history = capsys.readouterr().out
    assert "OVERRIDE of weakened gates: gates.classifier.accuracy.severity: block -> warn" in history
    assert "run by" in history


def test_predict_answers_as_json_from_a_message_a_file_or_stdin(env, tmp_path, capsys, monkeypatch):
    import io

    assert cli.main(["release", "iris", "kbqa"]) == 0
    out = capsys.readouterr().out
    iris_version = out.split("== iris: published")[1].split("version: ")[1].split()[0]
    request = tmp_path / "flower.json"
    request.write_text(json.dumps({"features": [6.7, 3.0, 5.2, 2.3]}))
    assert cli.main(["predict", "iris", "--alias", "candidate", "--json", str(request)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["version"] == iris_version and answer["label"] == "virginica"

    assert cli.main(["predict", "kbqa", "--alias", "candidate", "--message", "Can I send my boots back?"]) == 0
    assert json.loads(capsys.readouterr().out)["reply"]

    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"message": "Do you ship abroad?"})))
    assert cli.main(["predict", "kbqa", "--alias", "candidate", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["release"] == "kbqa"

    assert cli.main(["predict", "kbqa", "--alias", "candidate", "--json", str(request)]) == 2
    assert "features: unknown field" in _one_line_error(capsys.readouterr().err)
    assert cli.main(["predict", "iris", "--message", "hi"]) == 2
    assert "iris has no champion" in _one_line_error(capsys.readouterr().err)


def test_flags_route_a_canary_share_through_the_flag_file(env, tmp_path, capsys):
    assert cli.main(["release", "iris"]) == 0
    version = capsys.readouterr().out.split("version: ")[1].split()[0]
    assert cli.main(["flags", "iris", "--canary", version, "--canary-percent", "10"]) == 2
    assert "iris has no champion" in _one_line_error(capsys.readouterr().err)
    assert cli.main(["promote", "iris", version, "--approved-by", "alice", "--reason", "first"]) == 0
    capsys.readouterr()
    assert cli.main(["flags", "iris", "--canary", version, "--canary-percent", "101"]) == 2
    assert "canary_percent" in _one_line_error(capsys.readouterr().err)
    assert cli.main(["flags", "iris", "--canary", version, "--canary-percent", "10"]) == 2
    assert "needs both --approved-by and --reason" in _one_line_error(capsys.readouterr().err)
    canary = ["flags", "iris", "--canary", version, "--canary-percent", "10", "--approved-by", "bob"]
    assert cli.main([*canary, "--reason", "5% first"]) == 0
    last = json.loads((tmp_path / "store" / "ledger" / "iris.jsonl").read_text().splitlines()[-1])
    assert last["action"] == "routed" and last["routing"] == {"canary": version, "canary_percent": 10}
    path = tmp_path / "store" / "flags" / "iris.flagd.json"
    document = json.loads(path.read_text())
    assert document["flags"]["iris.route"]["variants"] == {"champion": version, "canary": version}
