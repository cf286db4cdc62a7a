"""The torch models' ONNX export: byte-deterministic, a valid graph with a dynamic batch axis, answering like
torch (the parity gate), run without importing torch or transformers, and the runtime selectable for comparison."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from release_assets.models.onnx_export import ONNX_FILE, OPSET
from release_assets.models.onnx_parity import MAX_ABS_DIFF, measure_parity, parity_verdict
from release_assets.models.trainers import MODEL_KINDS, RUNTIME_ENV, model_runtime
from release_assets_tests.conftest import REPO
from release_assets_tests.models.test_trainers import CASES

KINDS = ("image_classifier", "text_classifier")
TEXT_PROBES = ["where is my order 12345", "REFUND please!!", "cancel", "x", "a much longer message " * 10]


def _rows(kind: str) -> list[dict]:
    make_rows, _ = CASES[kind]
    return [{**row, "id": f"{kind[:4]}-{i}"} for i, row in enumerate(make_rows())]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for kind in KINDS:
        folder = tmp_path_factory.mktemp(kind)
        model_kind = MODEL_KINDS[kind]
        model_kind.train(_rows(kind), model_kind.parse_params(CASES[kind][1]), folder, None)
        out[kind] = folder
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _export_again(kind: str, model_dir: Path, out_dir: Path) -> None:
    """Re-export the saved weights, as a fresh trainer run would."""
    from release_assets.models import onnx_export

    if kind == "text_classifier":
        from tokenizers import Tokenizer

        from release_assets.models.language import LABELS_FILE, TOKENIZER_FILE, _classifier_class

        model = _classifier_class().from_pretrained(model_dir)
        max_length = json.loads((model_dir / LABELS_FILE).read_text())["max_length"]
        onnx_export.export_text(model, Tokenizer.from_file(str(model_dir / TOKENIZER_FILE)), max_length, out_dir)
    else:
        predictor = MODEL_KINDS[kind].load(model_dir, runtime="torch")
        onnx_export.export_vision(predictor._net, out_dir)


@pytest.mark.parametrize("kind", KINDS)
def test_same_weights_export_byte_identical_onnx(models, kind, tmp_path):
    _export_again(kind, models[kind], tmp_path)
    assert _sha(tmp_path / ONNX_FILE) == _sha(models[kind] / ONNX_FILE)


def test_export_in_another_process_gives_the_same_bytes(models, tmp_path):
    # Another interpreter with another hash seed, as on another clone: the bytes must not depend on either.
    code = (
        "import sys; from pathlib import Path\n"
        "from release_assets_tests.models.test_onnx import _export_again\n"
        "_export_again('text_classifier', Path(sys.argv[1]), Path(sys.argv[2]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    args = [sys.executable, "-c", code, str(models["text_classifier"]), str(tmp_path)]
    subprocess.run(args, cwd=REPO, env=env, check=True, timeout=300, capture_output=True)
    assert _sha(tmp_path / ONNX_FILE) == _sha(models["text_classifier"] / ONNX_FILE)


@pytest.mark.parametrize("kind", KINDS)
def test_graph_is_valid_with_a_dynamic_batch_axis(models, kind):
    import onnx

    model = onnx.load(str(models[kind] / ONNX_FILE))
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain: o.version for o in model.opset_import}[""] == OPSET
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    if kind == "text_classifier":
        assert dims == {"input_ids": ["batch", "sequence"], "attention_mask": ["batch", "sequence"]}
    else:
        assert dims == {"pixels": ["batch", 1, 8, 8]}
    assert [o.name for o in model.graph.output] == ["logits"]
    predictor = MODEL_KINDS[kind].load(models[kind], runtime="onnx")
    rows = _rows(kind)
    for n in (1, 7):  # any batch size runs, and one row's answer does not depend on the batch it came in
        assert predictor.predict_proba(rows[:n]).shape == (n, len(predictor.labels))
    np.testing.assert_allclose(predictor.logits(rows[:1]), predictor.logits(rows[:7])[:1], atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_onnx_answers_like_torch_within_the_parity_bound(models, kind):
    rows = _rows(kind)
    if kind == "text_classifier":
        rows += [{"id": f"probe-{i}", "text": t, "label": "refund"} for i, t in enumerate(TEXT_PROBES)]
    parity = measure_parity(kind, models[kind], rows)
    assert parity["rows"] == len(rows) and parity["max_abs_diff"] <= MAX_ABS_DIFF, parity
    assert parity["label_disagreements"] == 0
    verdict = parity_verdict("m", parity)
    assert verdict.status == "passed" and "meets the gate <= 1e-05" in verdict.reason
    torch_model = MODEL_KINDS[kind].load(models[kind], runtime="torch")
    onnx_model = MODEL_KINDS[kind].load(models[kind], runtime="onnx")
    np.testing.assert_allclose(onnx_model.predict_proba(rows), torch_model.predict_proba(rows), atol=1e-5)


def test_parity_gate_fails_on_an_export_of_other_weights(models, tmp_path):
    """The fixture that must fail: model.onnx exported from slightly perturbed weights of the same model."""
    import shutil

    import torch

    kind = "image_classifier"
    folder = tmp_path / "perturbed"
    shutil.copytree(models[kind], folder)
    net = MODEL_KINDS[kind].load(folder, runtime="torch")._net
    with torch.no_grad():
        net[-1].bias.add_(torch.tensor([0.0, 0.01, 0.0]))  # one logit off by 0.01 on every row
    from release_assets.models.onnx_export import export_vision

    export_vision(net, folder)
    rows = _rows(kind)
    verdict = parity_verdict("vision_model", measure_parity(kind, folder, rows))
    assert verdict.status == "failed" and verdict.holds_release
    assert verdict.observed == pytest.approx(0.01, rel=1e-3)
    assert "violates the gate <= 1e-05; worst rows: " in verdict.reason
    assert all(e["max_abs_diff"] > MAX_ABS_DIFF for e in verdict.examples) and len(verdict.examples) == 5
    assert verdict.examples[0]["id"] in verdict.reason and "labelled differently" in verdict.reason


def test_parity_without_an_export_is_an_error(models, tmp_path):
    import shutil

    folder = tmp_path / "no-onnx"
    shutil.copytree(models["image_classifier"], folder)
    (folder / ONNX_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.onnx is missing"):
        measure_parity("image_classifier", folder, _rows("image_classifier"))


def test_runtime_is_selectable_and_falls_back_to_torch_without_an_export(models, tmp_path, monkeypatch):
    import shutil

    text = models["text_classifier"]
    assert type(MODEL_KINDS["text_classifier"].load(text)).__name__ == "OnnxTextPredictor"
    monkeypatch.setenv(RUNTIME_ENV, "torch")
    assert type(MODEL_KINDS["text_classifier"].load(text)).__name__ == "TextPredictor"
    assert type(MODEL_KINDS["text_classifier"].load(text, runtime="onnx")).__name__ == "OnnxTextPredictor"
    monkeypatch.setenv(RUNTIME_ENV, "tensorflow")
    with pytest.raises(ValueError, match="expected one of onnx, torch"):
        model_runtime()
    monkeypatch.delenv(RUNTIME_ENV)
    old = tmp_path / "published-before-onnx"
    shutil.copytree(models["image_classifier"], old)
    (old / ONNX_FILE).unlink()
    assert type(MODEL_KINDS["image_classifier"].load(old)).__name__ == "VisionPredictor"


def test_onnx_predictors_import_neither_torch_nor_transformers(models):
    code = (
        "import sys; from pathlib import Path\n"
        "from release_assets.models.trainers import MODEL_KINDS, predict_labels\n"
        "text = MODEL_KINDS['text_classifier'].load(Path(sys.argv[1]))\n"
        "image = MODEL_KINDS['image_classifier'].load(Path(sys.argv[2]))\n"
        "print(predict_labels(text, [{'text': 'where is my order'}])[0][0], type(text).__name__)\n"
        "print(predict_labels(image, [{'pixels': [0] * 64}])[0][0], type(image).__name__)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'transformers'}))\n"
    )
    args = [sys.executable, "-c", code, str(models["text_classifier"]), str(models["image_classifier"])]
    env = {k: v for k, v in os.environ.items() if k != RUNTIME_ENV}
    out = subprocess.run(args, cwd=REPO, env=env, check=True, timeout=120, capture_output=True, text=True)
    lines = out.stdout.strip().splitlines()
    assert lines[0].endswith("OnnxTextPredictor") and lines[1].endswith("OnnxVisionPredictor"), out.stdout
    assert lines[-1] == "[]", out.stdout


def test_release_verdicts_decide_every_bundled_export_again(models, tmp_path):
    """What the release unit can call before publishing: one verdict per exported model, from the bundled files."""
    import shutil

    from release_assets.artifacts import ArtifactRef
    from release_assets.datasets.build import write_jsonl
    from release_assets.manifest import load_manifests
    from release_assets.models.onnx_parity import release_verdicts

    [manifest] = [m for m in load_manifests(REPO / "releases") if m.name == "helpdesk"]
    refs = {}
    for name, kind, data in (
        ("intent_model", "text_classifier", "messages"),
        ("vision_model", "image_classifier", "digits"),
    ):
        shutil.copytree(models[kind], tmp_path / name)
        (tmp_path / f"{data}_split").mkdir()
        write_jsonl(tmp_path / f"{data}_split" / "test.jsonl", _rows(kind))
        for key, location in (((manifest.name, name), name), ((manifest.name, f"{data}_split"), f"{data}_split")):
            refs[key] = ArtifactRef(
                release=manifest.name, member=key[1], kind=kind, fingerprint="f", location=location, files={}
            )
    verdicts = release_verdicts(manifest, refs, tmp_path)
    assert [(v.member, v.gate, v.status) for v in verdicts] == [
        ("intent_model", "onnx_parity", "passed"),
        ("vision_model", "onnx_parity", "passed"),
    ]
    (tmp_path / "vision_model" / ONNX_FILE).write_bytes(b"not a model")
    del refs[(manifest.name, "intent_model")]
    intent, vision = release_verdicts(manifest, refs, tmp_path)
    assert intent.status == "failed" and "not bundled" in intent.reason
    assert vision.status == "failed" and vision.reason.startswith("cannot compare vision_model's ONNX export")


def test_a_parity_measurement_is_reused_until_a_file_it_read_changes(models, tmp_path, monkeypatch):
    """The check reruns on every run that reuses the model, and the release unit decides again: both read the
    cached measurement instead of loading torch and onnxruntime again; an edited export is measured afresh."""
    import shutil

    from release_assets.datasets.build import write_jsonl
    from release_assets.models import onnx_parity

    model_dir, split_dir = tmp_path / "vision_model", tmp_path / "digits_split"
    shutil.copytree(models["image_classifier"], model_dir)
    split_dir.mkdir()
    write_jsonl(split_dir / "test.jsonl", _rows("image_classifier"))
    cache = (tmp_path / "store", "helpdesk")
    first = onnx_parity.artifact_verdict("vision_model", "image_classifier", model_dir, split_dir, cache)
    assert first.status == "passed"

    def refuse(*args):
        raise AssertionError("measured again")

    monkeypatch.setattr(onnx_parity, "measure_parity", refuse)
    again = onnx_parity.artifact_verdict("vision_model", "image_classifier", model_dir, split_dir, cache)
    assert (again.status, again.observed) == ("passed", first.observed)
    (model_dir / ONNX_FILE).write_bytes(b"not a model")
    changed = onnx_parity.artifact_verdict("vision_model", "image_classifier", model_dir, split_dir, cache)
    assert changed.status == "failed" and "measured again" in changed.reason
