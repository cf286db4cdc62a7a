"""Registered versions load as MLflow pyfunc models: each model member with its signature and input example, each
release answering as `serve` does, `mlflow models serve` answering /invocations, and member aliases that follow
the release's. One published store (iris, helpdesk, kbqa on tiny settings) and one MLflow database per module."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from release_assets.core.hashing import member_digest, sha256_file
from release_assets.manifest import PythonModel, load_manifest
from release_assets.models.python_model import RUNTIME as PYTHON_MODEL
from release_assets.record.ledger import promote
from release_assets.release.bundle import BundleError, release_version, write_bundle
from release_assets.release.store import LocalReleaseStore
from release_assets.resources.registry import Registry
from release_assets.rollout import mlflow_models
from release_assets.rollout.aliases import mirror_aliases
from release_assets.serving.loader import load_release
from release_assets_tests.conftest import REPO
from release_assets_tests.serving.published import publish_tiny

mlflow = pytest.importorskip("mlflow")
MEMBERS = [("iris", "classifier", ["features"]), ("helpdesk", "intent_model", ["text"])]
MEMBERS += [("helpdesk", "vision_model", ["pixels"])]
DIGIT_SEVEN = [0, 0, 7, 16, 16, 16, 6, 0, 0, 0, 6, 8, 10, 16, 3, 0, 0, 0, 0, 0, 13, 9, 0, 0, 0, 0, 0, 5, 16, 2, 0, 0]
DIGIT_SEVEN += [0, 0, 0, 12, 10, 0, 0, 0, 0, 0, 3, 16, 3, 0, 0, 0, 0, 0, 9, 13, 0, 0, 0, 0, 0, 0, 11, 8, 0, 0, 0, 0]
REQUESTS = {
    "iris": [{"features": [5.1, 3.5, 1.4, 0.2]}, {"features": [6.7, 3.0, 5.2, 2.3], "user_id": "u2"}],
    "helpdesk": [
        {"message": "Where is my order 12345? I paid $49.99", "user_id": "u1"},
        {"message": "Please change the address of this order", "attachment": {"digits": [DIGIT_SEVEN]}},
    ],
    "kbqa": [{"message": "How long do I have to send something back?"}],
}
VOLATILE = {"request_id", "latency_ms", "variant"}  # per request, or where it came from


@contextlib.contextmanager
def tracking(uri: str):
    """MLflow's process-wide tracking URI (what `models:/` URIs resolve against) for a block, restored after."""
    from mlflow.tracking._tracking_service import utils

    before, env = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        utils._tracking_uri = before
        if env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow_models")
    store_path, versions = publish_tiny(root)
    store = LocalReleaseStore(store_path)
    registry = Registry(f"sqlite:///{root / 'mlflow.db'}", str(root / "mlartifacts"))
    started, cwd = time.perf_counter(), root / "cwd"
    cwd.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)  # MLflow's process-wide defaults (./mlflow.db, ./mlruns) would land here
        for release, version in versions.items():
            promote(store, release, version, "alice", "the first champion")
            mirror_aliases(store, registry, release)  # registers the version, then points the aliases
    synced_s = time.perf_counter() - started
    assert list(cwd.iterdir()) == []
    with tracking(registry.tracking_uri):
        yield store, registry, versions, root, synced_s


@pytest.mark.parametrize(("release", "member", "columns"), MEMBERS)
def test_each_model_member_loads_from_its_alias_and_predicts_as_its_kind(registered, release, member, columns):
    store, _, versions, root, _ = registered
    model = mlflow.pyfunc.load_model(f"models:/{release}.{member}@champion")
    signature = model.metadata.signature
    assert signature.inputs.input_names() == columns  # what the kind reads, not the split's bookkeeping
    assert signature.outputs.input_names() == ["label", "probabilities"]
    example = model.input_example
    assert len(example) >= 1 and list(example[0]) == columns
    answers = model.predict(example)
    served = load_release(store, release, cache_dir=root / "cache")._predictors[member]
    expected = served.predict_proba(example)
    assert list(answers["label"]) == [served.labels[i] for i in expected.argmax(axis=1)]
    got = np.array([[p[label] for label in served.labels] for p in answers["probabilities"]])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert model.metadata.metadata["release_assets"]["version"] == versions[release]


def test_the_sentence_embedder_is_a_pyfunc_answering_an_embedding_per_text(registered):
    store, _, _, root, _ = registered
    model = mlflow.pyfunc.load_model("models:/kbqa.embedder@champion")
    signature = model.metadata.signature
    assert signature.inputs.input_names() == ["text"]
    assert signature.outputs.input_names() == ["embedding"]  # vectors, not a label it never decides
    texts = ["How long do I have to return an item?", "What is the return window?", "My screen is cracked"]
    answers = model.predict([{"text": t} for t in texts])
    vectors = np.array(list(answers["embedding"]), dtype=np.float64)
    served = load_release(store, "kbqa", cache_dir=root / "cache")._predictors["embedder"]
    np.testing.assert_allclose(vectors, served.embed(texts), atol=1e-6)  # what retrieval and the gates use
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # a paraphrase is nearer than another topic
    with pytest.raises(Exception, match=r"row 1: an embedding model reads one string field `text`"):
        model.predict([{"text": "fine"}, {"message": "no text field"}])


def test_a_member_whose_files_changed_after_registration_is_refused(registered, tmp_path):
    local = mlflow.artifacts.download_artifacts("models:/iris.classifier@champion", dst_path=str(tmp_path))
    [params] = Path(local).glob("artifacts/*/model.json")
    params.write_text(params.read_text().replace("setosa", "setosa!", 1))
    with pytest.raises(Exception, match=r"model\.json does not match the verified bundle's sha256"):
        mlflow.pyfunc.load_model(local)


@pytest.mark.parametrize("release", ["iris", "helpdesk", "kbqa"])
def test_each_release_loads_and_answers_as_serve_does(registered, release):
    import pandas as pd

    store, _, versions, root, _ = registered
    model = mlflow.pyfunc.load_model(f"models:/{release}@champion")
    served = load_release(store, release, cache_dir=root / "cache")
    for rows in (REQUESTS[release], pd.DataFrame(REQUESTS[release])):
        answers = model.predict(rows)
        assert len(answers) == len(REQUESTS[release])
        for answer, request in zip(answers, REQUESTS[release], strict=True):
            assert answer["version"] == versions[release] and answer["variant"] == "mlflow"
            expected = served.predict(request)
            assert {k: v for k, v in answer.items() if k not in VOLATILE} == {
                k: v for k, v in expected.items() if k not in VOLATILE
            }
    if release == "helpdesk":
        assert answers[1]["entities"].get("order_id"), answers[1]  # the attachment was read
    assert model.predict(model.input_example)  # the saved example answers too


def test_a_bad_request_is_named_by_row_and_field(registered):
    model = mlflow.pyfunc.load_model("models:/helpdesk@champion")
    with pytest.raises(mlflow.exceptions.MlflowException, match=r"row 1: .*message"):
        model.predict([{"message": "hi"}, {"message": "   "}])


def test_member_aliases_mirror_the_release(registered):
    _, registry, versions, _, _ = registered
    client = registry.client
    for release, member, _ in MEMBERS:
        release_aliases = registry.aliases(release)
        assert release_aliases == {"candidate": versions[release], "champion": versions[release]}
        mv = client.get_model_version_by_alias(f"{release}.{member}", "champion")
        assert mv.tags["digest"] and mv.tags["pyfunc"] == "true"
        assert set(client.get_registered_model(f"{release}.{member}").aliases) == {"candidate", "champion"}
    registry.mirror("helpdesk", {"canary": versions["helpdesk"]})
    assert "canary" in client.get_registered_model("helpdesk.intent_model").aliases
    registry.mirror("helpdesk", {"canary": None})
    assert "canary" not in client.get_registered_model("helpdesk.intent_model").aliases
    assert "canary" not in client.get_registered_model("helpdesk").aliases


def test_the_release_run_holds_the_pyfuncs_and_nothing_pickled(registered):
    _, registry, versions, root, synced_s = registered
    print(f"sync of iris, helpdesk, kbqa with pyfuncs and prompts: {synced_s:.1f} s")
    [mv] = registry.client.search_model_versions(f"name='helpdesk' and tags.release_version='{versions['helpdesk']}'")
    run = registry.client.get_run(mv.run_id)
    assert mv.source == f"{run.info.artifact_uri}/release"
    saved = [p for p in (root / "mlartifacts").rglob("*") if p.is_file()]
    assert saved and not [p for p in saved if p.suffix in (".pkl", ".pickle") or "cloudpickle" in p.name]
    mlmodels = [p for p in saved if p.name == "MLmodel"]
    # Each release, and each model member of it (kbqa's embedding model included: a member like any model).
    models = sum(len(load_manifest(REPO / "releases" / f"{r}.yaml").members_of_family("model")) for r in versions)
    assert len(mlmodels) == len(versions) + models
    for mlmodel in mlmodels:  # models from code: the code file beside MLmodel, no pickled python_model
        text = mlmodel.read_text()
        assert "loader_module: mlflow.pyfunc.loaders.code_model" in text and "python_model.pkl" not in text
        assert (mlmodel.parent / "mlflow_pyfunc.py").is_file()
    # Each model member of helpdesk's manifest (its judge too) registered once, as version 1.
    helpdesk_models = load_manifest(REPO / "releases" / "helpdesk.yaml").members_of_family("model")
    assert json.loads(mv.tags["member_model_versions"]) == {f"helpdesk.{name}": "1" for name in helpdesk_models}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict, timeout: float = 10.0) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_mlflow_models_serve_answers_invocations_for_iris(registered, tmp_path):
    _, registry, versions, _, _ = registered
    port = _free_port()
    # As in a shell with the venv active: MLflow starts `uvicorn` from PATH.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry.tracking_uri, "PATH": path}
    log = (tmp_path / "serve.log").open("w")
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/iris@champion"]
    command += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(
        command,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as ping:
                    if ping.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "mlflow models serve did not answer /ping within 90 s"
            time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/invocations"
        split = {"dataframe_split": {"columns": ["features"], "data": [[[5.1, 3.5, 1.4, 0.2]], [[6.7, 3.0, 5.2, 2.3]]]}}
        status, body = _post(url, split)
        assert status == 200, body
        [setosa, virginica] = body["predictions"]
        assert (setosa["label"], virginica["label"]) == ("setosa", "virginica")
        assert setosa["version"] == versions["iris"] and abs(sum(setosa["probabilities"].values()) - 1) < 1e-4
        status, body = _post(url, {"dataframe_records": [{"features": [5.1, 3.5, 1.4, 0.2]}]})
        assert status == 200 and body["predictions"][0]["label"] == "setosa"
        status, body = _post(url, {"dataframe_records": [{"features": [5.1, 3.5, 1.4]}]})
        assert status == 400 and "features" in body["message"], body
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
        log.close()


def fit_small(X, y, params):
    """A team's training function (python_model), for the test below."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=200).fit(X, y)


def _python_model(tmp_path: Path) -> tuple[dict, Path, list[dict]]:
    """A python_model member trained by the team function above on a small table, extracted as a bundle would
    be (``unit/risk``, its test split beside it); returns its manifest, its folder and the table's rows."""
    rng = np.random.default_rng(0)
    split, model_dir = tmp_path / "split", tmp_path / "unit" / "risk"
    split.mkdir()
    model_dir.mkdir(parents=True)
    table = {
        "task": "binary",
        "labels": ["no", "yes"],
        "positive": "yes",
        "target": "defaulted",
        "feature_columns": ["income", "age"],
        "features": {"income": {"dtype": "float", "min": 0}, "age": {"dtype": "int", "min": 18, "max": 120}},
    }
    (split / "table.json").write_text(json.dumps(table))
    rows = []
    for i in range(60):
        income, age = float(rng.uniform(10, 100)), int(rng.integers(18, 80))
        label = "yes" if income < 40 else "no"
        rows.append({"id": f"r{i}", "label": label, "features": {"income": income, "age": age}})
    (split / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    member = PythonModel(kind="python_model", data="loans", train=f"{__name__}:fit_small")
    PYTHON_MODEL.build(member, split, model_dir, tmp_path)
    (tmp_path / "unit" / "applications_split").mkdir()
    test_rows = tmp_path / "unit" / "applications_split" / "test.jsonl"
    test_rows.write_text("".join(json.dumps(r) + "\n" for r in rows[:5]))
    members = {}
    for name, folder in (("risk", model_dir), ("applications_split", test_rows.parent)):
        listed = {p.name: sha256_file(p) for p in sorted(folder.iterdir())}
        files = [{"path": f"{name}/{n}", "sha256": d, "size": (folder / n).stat().st_size} for n, d in listed.items()]
        kind = "python_model" if name == "risk" else "split"
        members[name] = {"kind": kind, "digest": member_digest(listed), "files": files, "metrics": {}}
    manifest = {"release": "loans", "version": release_version(members), "members": members}
    return manifest, model_dir, rows


def _unit_file(tmp_path: Path):
    def fetch(path: str) -> Path | None:
        found = tmp_path / "unit" / path
        return found if found.is_file() else None

    return fetch


def test_a_python_model_member_is_a_pyfunc_over_its_feature_columns(tmp_path):
    manifest, model_dir, rows = _python_model(tmp_path)
    example = mlflow_models.member_example(manifest, "risk", model_dir, _unit_file(tmp_path))
    assert example.rows == [r["features"] for r in rows[:3]]  # the feature columns, one column each
    mlflow_models.save_member_model(tmp_path / "pyfunc", manifest, "risk", model_dir, example)
    model = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc"))
    assert model.metadata.signature.inputs.input_names() == ["income", "age"]
    answers = model.predict([{"income": 20.0, "age": 30}, {"income": 95.5, "age": 61}])
    assert list(answers["label"]) == ["yes", "no"]
    with pytest.raises(mlflow.exceptions.MlflowException, match=r"row 0: .*age"):
        model.predict([{"income": 20.0, "age": 7}])
    assert not list((tmp_path / "pyfunc").rglob("*.pkl"))


def test_a_table_models_release_is_a_pyfunc_answering_feature_rows(tmp_path):
    manifest, model_dir, rows = _python_model(tmp_path)
    bundle = tmp_path / "bundle.tar.gz"
    write_bundle(
        {f["path"]: tmp_path / "unit" / f["path"] for m in manifest["members"].values() for f in m["files"]},
        manifest,
        bundle,
    )
    assert mlflow_models.serves(manifest)
    examples = {"risk": mlflow_models.member_example(manifest, "risk", model_dir, _unit_file(tmp_path))}
    example = mlflow_models.release_example(manifest, _unit_file(tmp_path), examples)
    assert example == [{"features": r["features"]} for r in rows[:3]]
    mlflow_models.save_release_model(tmp_path / "release", manifest, bundle, example)
    model = mlflow.pyfunc.load_model(str(tmp_path / "release"))
    assert model.metadata.signature.inputs.input_names() == ["features", "user_id"]
    [poor, rich] = model.predict([{"features": {"income": 20.0, "age": 30}}, {"features": {"income": 95.0, "age": 61}}])
    assert (poor["label"], rich["label"]) == ("yes", "no") and rich["version"] == manifest["version"]
    assert not mlflow_models.serves({"members": {"a": {"kind": "split"}}})


def test_an_unknown_model_config_is_refused():
    with pytest.raises(BundleError, match="names no release_assets model"):
        mlflow_models.open_model({"model": "other"}, {})
