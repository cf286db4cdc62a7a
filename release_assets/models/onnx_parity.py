"""The ONNX parity gate: the exported ``model.onnx`` must compute what the torch model computes.

Serving and evaluation run the ONNX file; the gates judged it, but the weights were trained (and the regression
gate's champion re-scored) in torch. So every torch model's test split goes through both, and the largest
absolute difference of a **logit** (the graph's output, before softmax: stricter than probabilities, which
softmax squashes towards 0 and 1) must stay within 1e-5. Float32 kernels differ in summation order, so exact
equality is not expected: measured differences are ~1e-7; a wrong export (a traced shape baked in, an op
lowered differently, a file from other weights) is orders of magnitude above the bound.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from release_assets import keys
from release_assets.artifacts import LocalArtifactStore, fingerprint
from release_assets.core.hashing import CodeInputs, sha256_file
from release_assets.datasets.build import read_jsonl
from release_assets.datasets.quality import describe
from release_assets.models.onnx_export import ONNX_FILE
from release_assets.models.trainers import MODEL_KINDS
from release_assets.verdict import Verdict

GATE = "onnx_parity"
MAX_ABS_DIFF = 1e-5
WORST_ROWS = 5
ONNX_KINDS = ("text_classifier", "image_classifier")


@runtime_checkable
class _Scored(Protocol):
    """A predictor that gives its raw scores: both runtimes of every ONNX kind do."""

    labels: list[str]

    def logits(self, rows: list[dict[str, Any]]) -> np.ndarray: ...


def measure_parity(kind: str, model_dir: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Logits of ``rows`` through torch and through onnxruntime: the largest difference, per-row differences of
    the worst rows, and how many rows the two runtimes label differently."""

    if not (model_dir / ONNX_FILE).is_file():
        raise FileNotFoundError(f"{model_dir / ONNX_FILE} is missing: the model was not exported")
    torch_model = MODEL_KINDS[kind].load(model_dir, runtime="torch")
    onnx_model = MODEL_KINDS[kind].load(model_dir, runtime="onnx")
    if not isinstance(torch_model, _Scored) or not isinstance(onnx_model, _Scored):
        raise TypeError(f"a {kind} predictor gives no logits: only {', '.join(ONNX_KINDS)} are compared")
    expected, got = torch_model.logits(rows), onnx_model.logits(rows)
    if expected.shape != got.shape:
        raise ValueError(f"ONNX logits have shape {got.shape}, torch's {expected.shape}")
    per_row = np.abs(expected.astype(np.float64) - got.astype(np.float64)).max(axis=1) if len(rows) else np.zeros(0)
    torch_labels, onnx_labels = expected.argmax(axis=1), got.argmax(axis=1)
    worst = np.argsort(-per_row, kind="stable")[:WORST_ROWS]
    labels = torch_model.labels
    return {
        "rows": len(rows),
        "max_abs_diff": float(per_row.max()) if len(rows) else None,
        "label_disagreements": int((torch_labels != onnx_labels).sum()),
        "worst": [
            {
                "id": rows[i].get("id", str(i)),
                "input": describe(rows[i]),
                "max_abs_diff": float(per_row[i]),
                "torch": labels[int(torch_labels[i])],
                "onnx": labels[int(onnx_labels[i])],
            }
            for i in worst
        ],
    }


def parity_verdict(member: str, parity: dict[str, Any], max_abs_diff: float = MAX_ABS_DIFF) -> Verdict:
    """Passed when every logit of every test row agrees within ``max_abs_diff``; otherwise the worst rows are named
    in the reason (and listed as examples), with how many rows changed label."""
    bounds = {"min": None, "max": max_abs_diff}
    observed = parity["max_abs_diff"]
    if observed is None:
        reason = f"{GATE}: no test rows to compare the ONNX export with torch on"
        return Verdict(member, GATE, "inconclusive", reason, None, bounds)
    where = f"max |ONNX - torch| logit difference {observed:.3g} over {parity['rows']} test rows"
    if observed <= max_abs_diff:
        return Verdict(member, GATE, "passed", f"{where} meets the gate <= {max_abs_diff:g}", observed, bounds)
    named = ", ".join(
        f"{w['id']} ({w['max_abs_diff']:.3g})" for w in parity["worst"] if w["max_abs_diff"] > max_abs_diff
    )
    reason = (
        f"{where} violates the gate <= {max_abs_diff:g}; worst rows: {named}; "
        f"{parity['label_disagreements']} row(s) labelled differently. Serving would not answer like the model "
        "the gates judged: re-export (rematerialize the model)"
    )
    return Verdict(member, GATE, "failed", reason, observed, bounds, examples=list(parity["worst"]))


def artifact_verdict(
    member: str, kind: str, model_dir: Path, split_dir: Path, cache: tuple[Path, str] | None = None
) -> Verdict:
    """The verdict on one model artifact against its split's test rows; an export or split that cannot be read
    fails (never passes unmeasured), naming why.

    With ``cache`` (artifact store root, release) the measurement is kept in the build cache, keyed by the sha256
    of every file it reads (as they are on disk now) and this code: loading torch and onnxruntime to re-measure
    an unchanged model costs seconds, on every run that reuses it and in the release unit that decides again."""

    def measure() -> dict[str, Any]:
        return measure_parity(kind, model_dir, read_jsonl(split_dir / "test.jsonl"))

    try:
        if cache is None:
            return parity_verdict(member, measure())
        return parity_verdict(member, _cached(cache[0], cache[1], member, model_dir, split_dir, measure))
    except Exception as exc:
        reason = f"cannot compare {member}'s ONNX export with torch: {type(exc).__name__}: {exc}"
        return Verdict(member, GATE, "failed", reason, None, {"min": None, "max": MAX_ABS_DIFF})


def _cached(root: Path, release: str, member: str, model_dir: Path, split_dir: Path, measure: Any) -> dict[str, Any]:
    # Every model file as it is on disk now (the cache's own bookkeeping, `_*`, aside) and the rows compared.
    model_files = sorted(p for p in model_dir.rglob("*") if p.is_file() and not p.name.startswith("_"))
    digests = {p.relative_to(model_dir).as_posix(): sha256_file(p) for p in model_files}
    digests["<test split>"] = sha256_file(split_dir / "test.jsonl")
    fp = fingerprint(CodeInputs([__name__]).version(), digests, MAX_ABS_DIFF)
    ref, _ = LocalArtifactStore(root).build(
        release=release, member=f"{member}_onnx_parity", kind=GATE, fingerprint=fp, builder=lambda out: measure()
    )
    return ref.summary


def release_verdicts(manifest: Any, refs_by_key: dict[tuple[str, ...], Any], store_root: Path) -> list[Verdict]:
    """The parity verdict of every exported model a release bundles, decided again from the bundled files: for the
    release unit to call before publishing, since a blocking check only stops downstream steps in its own run."""

    out = []
    for name, member in sorted(manifest.members_of(*ONNX_KINDS).items()):
        model = refs_by_key.get(tuple(keys.model(manifest.name, name)))
        split = refs_by_key.get(tuple(keys.split(manifest.name, member.data)))
        if model is None or split is None:
            reason = f"cannot compare {name}'s ONNX export with torch: the model or its split is not bundled"
            out.append(Verdict(name, GATE, "failed", reason, None, {"min": None, "max": MAX_ABS_DIFF}))
            continue
        model_dir, split_dir = model.path(store_root), split.path(store_root)
        out.append(artifact_verdict(name, member.kind, model_dir, split_dir, (store_root, manifest.name)))
    return out
