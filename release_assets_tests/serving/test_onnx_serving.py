"""A published helpdesk release served through onnxruntime: the bundle carries model.onnx, a server process and the
chain evaluation answer without importing torch or transformers, and the answers equal torch's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from release_assets.models.trainers import RUNTIME_ENV
from release_assets.release.store import LocalReleaseStore
from release_assets.serving.loader import load_release
from release_assets_tests.conftest import REPO
from release_assets_tests.serving.published import publish_tiny

HEAVY = ("torch", "transformers")


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx-serving")
    store, versions = publish_tiny(root, ("helpdesk",))
    return store, versions["helpdesk"], root / "cache"


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != RUNTIME_ENV}


def test_the_release_unit_carries_each_torch_models_onnx_export(published):
    store, version, cache = published
    loaded = load_release(LocalReleaseStore(store), "helpdesk", version=version, cache_dir=cache)
    for member in ("intent_model", "vision_model"):
        paths = {f["path"] for f in loaded.manifest["members"][member]["files"]}
        assert {f"{member}/model.onnx", f"{member}/model.safetensors"} <= paths, sorted(paths)
    assert {type(p).__name__ for p in loaded._predictors.values()} == {"OnnxTextPredictor", "OnnxVisionPredictor"}


def test_a_served_request_imports_neither_torch_nor_transformers(published):
    store, version, cache = published
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


def test_the_chain_evaluation_imports_neither_torch_nor_transformers(published, tmp_path):
    store, version, cache = published
    files = cache / "helpdesk" / version / "files"
    load_release(LocalReleaseStore(store), "helpdesk", version=version, cache_dir=cache)  # extracted, verified
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from release_assets.evaluation.chain_evaluation import build_chain_evaluation\n"
        "files, golden, out = (Path(a) for a in sys.argv[1:4])\n"
        "models = {'intent_model': ('text_classifier', files / 'intent_model'),\n"
        "          'vision_model': ('image_classifier', files / 'vision_model')}\n"
        "summary = build_chain_evaluation(files / 'chain', models, golden, out)\n"
        "print(json.dumps({'format_valid': summary['metrics']['format_valid'],\n"
        "                  'heavy': sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'transformers'})}))\n"
    )
    args = [sys.executable, "-c", code, str(files), str(REPO / "data/golden/helpdesk.jsonl"), str(tmp_path)]
    out = subprocess.run(args, cwd=REPO, env=_clean_env(), capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [], result
    assert result["format_valid"] > 0.99
    assert (tmp_path / "report.json").exists()


def test_onnx_and_torch_answer_the_golden_suite_alike(published, monkeypatch):
    """Same intent, entities, digits read and reply on every golden case; confidences within the parity bound."""
    from release_assets.evaluation.golden_inputs import load_cases, to_requests

    store, version, cache = published
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
