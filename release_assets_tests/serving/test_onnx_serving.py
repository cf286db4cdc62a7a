"""A published helpdesk release served through onnxruntime: the bundle carries model.onnx, a server process and the
chain evaluation answer without importing torch or transformers, and the answers equal torch's. kbqa's evaluation
(its sentence embedder and judge) imports neither either."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from release_assets.manifest import load_manifest
from release_assets.models.trainers import RUNTIME_ENV
from release_assets.release.store import LocalReleaseStore
from release_assets.serving.loader import load_release
from release_assets_tests.conftest import REPO
from release_assets_tests.serving.published import publish_tiny

HEAVY = ("torch", "transformers")


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx-serving")
    store, versions = publish_tiny(root, ("helpdesk", "kbqa"))
    return store, versions, root / "cache"


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != RUNTIME_ENV}


# The onnxruntime predictor each model kind of helpdesk is served by; the torch kinds also keep their weights.
ONNX_PREDICTORS = {
    "text_classifier": "OnnxTextPredictor",
    "image_classifier": "OnnxVisionPredictor",
    "judge_model": "OnnxJudgePredictor",
    "sentence_embedder": "OnnxSentenceEmbedder",
}
TORCH_KINDS = ("text_classifier", "image_classifier")


def _models(manifest: dict) -> dict[str, str]:
    """The unit's model members and their kinds (every member but data, the chain and evidence)."""
    return {name: m["kind"] for name, m in manifest["members"].items() if m["kind"] in ONNX_PREDICTORS}


def test_the_release_unit_carries_each_torch_models_onnx_export(published):
    store, versions, cache = published
    version = versions["helpdesk"]
    loaded = load_release(LocalReleaseStore(store), "helpdesk", version=version, cache_dir=cache)
    models = _models(loaded.manifest)
    assert set(models) == {"intent_model", "vision_model", "judge"}
    for member, kind in models.items():
        paths = {f["path"] for f in loaded.manifest["members"][member]["files"]}
        weights = {f"{member}/model.safetensors"} if kind in TORCH_KINDS else set()
        assert {f"{member}/model.onnx", *weights} <= paths, sorted(paths)
    assert {name: type(p).__name__ for name, p in loaded._predictors.items()} == {
        name: ONNX_PREDICTORS[kind] for name, kind in models.items()
    }


def test_a_served_request_imports_neither_torch_nor_transformers(published):
    store, versions, cache = published
    version = versions["helpdesk"]
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from release_assets.release.store import LocalReleaseStore\n"
        "from release_assets.serving.loader import load_release\n"
        "loaded = load_release(LocalReleaseStore(Path(sys.argv[1])), 'helpdesk', version=sys.argv[2],\n"
        "                      cache_dir=Path(sys.argv[3]))\n"
        "answer = loaded.predict({'message': 'Where is my order 12345?', 'attachment': {'digits': [[0] * 64]}})\n"
        "print(json.dumps({'intent': answer['intent'], 'reply': answer['reply'],\n"
        "                  'heavy': sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'transformers'})}))\n"
    )
    args = [sys.executable, "-c", code, str(store), version, str(cache)]
    out = subprocess.run(args, cwd=REPO, env=_clean_env(), capture_output=True, text=True, timeout=120, check=True)
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["heavy"] == [], answer
    assert answer["intent"] and answer["reply"]


@pytest.mark.parametrize("release", ["helpdesk", "kbqa"])
def test_the_chain_evaluation_imports_neither_torch_nor_transformers(published, tmp_path, release):
    store, versions, cache = published
    files = cache / release / versions[release] / "files"
    loaded = load_release(LocalReleaseStore(store), release, version=versions[release], cache_dir=cache)  # extracted
    # Every model the chain uses, the judge among them (and kbqa's embedder): its `judge:` section is evaluated too.
    models = {name: (kind, str(files / name)) for name, kind in _models(loaded.manifest).items()}
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from release_assets.evaluation.chain_evaluation import build_chain_evaluation\n"
        "files, golden, out, labels = (Path(a) for a in sys.argv[1:5])\n"
        "models = {name: (kind, Path(path)) for name, (kind, path) in json.loads(sys.argv[5]).items()}\n"
        "summary = build_chain_evaluation(files / 'chain', models, golden, out, judge_labels=labels)\n"
        "print(json.dumps({'metrics': summary['metrics'],\n"
        "                  'heavy': sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'transformers'})}))\n"
    )
    chain = load_manifest(REPO / "releases" / f"{release}.yaml").chain("chain")
    assert chain.golden and chain.judge_labels
    golden, labels = REPO / chain.golden, REPO / chain.judge_labels
    args = [sys.executable, "-c", code, str(files), str(golden), str(tmp_path), str(labels), json.dumps(models)]
    out = subprocess.run(args, cwd=REPO, env=_clean_env(), capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [], result
    assert result["metrics"]["format_valid"] > 0.99
    assert {"judge_agreement", "judge_kappa", "judge_factual_consistency", "judge_tone"} <= set(result["metrics"])
    assert (tmp_path / "report.json").exists()


def test_onnx_and_torch_answer_the_golden_suite_alike(published, monkeypatch):
    """Same intent, entities, digits read and reply on every golden case; confidences within the parity bound."""
    from release_assets.evaluation.golden_inputs import load_cases, to_requests

    store, versions, cache = published
    version = versions["helpdesk"]
    runs = {}
    for runtime in ("onnx", "torch"):
        monkeypatch.setenv(RUNTIME_ENV, runtime)
        loaded = load_release(LocalReleaseStore(store), "helpdesk", version=version, cache_dir=cache)
        cases = load_cases(REPO / "data/golden/helpdesk.jsonl", loaded._runner.spec.evaluation)
        runs[runtime] = loaded._runner.run(to_requests(cases))
    assert type(loaded._predictors["intent_model"]).__name__ == "TextPredictor"  # the last load was torch's
    confidences = []
    for onnx_case, torch_case in zip(runs["onnx"], runs["torch"], strict=True):
        assert onnx_case.errors == torch_case.errors == {}
        for step, outputs in onnx_case.outputs.items():
            expected = torch_case.outputs[step]
            assert {k: v for k, v in outputs.items() if k != "confidence"} == {
                k: v for k, v in expected.items() if k != "confidence"
            }, (onnx_case.id, step)
            if "confidence" in outputs:
                confidences.append(abs(outputs["confidence"] - expected["confidence"]))
    assert len(runs["onnx"]) == 211 and confidences
    assert np.max(confidences) < 1e-5
