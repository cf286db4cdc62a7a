"""The trained judge: one logistic regression per rubric over the features of ``judge_features``, trained on the
hand-labelled set's training half plus rows generated from the golden suites' facts (``judge_negatives``), exported
to ONNX and served by onnxruntime (no torch, no endpoint, no network), so the judge CI runs is a release member with
a digest like any model.

Why a linear model over named features: with two hundred labelled rows a bigger model memorises them, and a linear
one can say why it failed a reply (the feature that pulled its score down most), which is the one-line reason
the failed check's table shows.

The artifact: ``model.onnx`` (``features`` [n, F] float32 -> ``pass_probability`` [n, rubrics]; the
standardisation is folded into the weights) and ``judge.json`` (rubrics, feature names, weights for the reasons,
training counts).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from release_assets.core.textfiles import read_yaml
from release_assets.models.judge_features import FACTUAL, FEATURES, TONE, Signals, signals
from release_assets.models.judge_negatives import generated_rows
from release_assets.models.onnx_export import ONNX_FILE, OPSET
from release_assets.models.onnx_runtime import session

RUBRICS = {"factual_consistency": FACTUAL, "tone": TONE}
JUDGE_FILE = "judge.json"
INPUT, OUTPUT = "features", "pass_probability"
LABELS = ["fail", "pass"]
IR_VERSION = 8  # ONNX IR of opset 17 (models/onnx_export.OPSET), which onnxruntime 1.x loads
TRAIN, HELD_OUT = "train", "heldout"  # the labelled set's `split` values


class LabelledSetError(ValueError):
    """A labelled set that cannot calibrate the judge; the message names the file and the line."""


def load_labelled(path: Path, rubrics: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of a labelled set (``data/judge/labelled.jsonl``), each checked for what calibration reads."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise LabelledSetError(f"{path}:{n}: not valid JSON: {exc}") from None
        for key in ("id", "group", "split", "facts", "reply", "verdicts", "verdict"):
            if key not in row:
                raise LabelledSetError(f"{path}:{n}: missing `{key}`")
        missing = [r for r in rubrics if row["verdicts"].get(r) not in ("pass", "fail")]
        if missing:
            raise LabelledSetError(f"{path}:{n}: verdicts.{missing[0]}: expected pass or fail (a rubric of the judge)")
        rows.append(row)
    if not any(r["split"] == HELD_OUT for r in rows):
        raise LabelledSetError(f"{path}: no row has split {HELD_OUT!r}: nothing the judge never trained on")
    return rows


class JudgeParams(BaseModel):
    """Trainer settings (``params:`` of a ``judge_model`` member)."""

    model_config = ConfigDict(extra="forbid")
    # Weight of one generated row against one hand-labelled row: the generated rows are many, alike and written by
    # rule, so at weight 1 they outvote the labels. Chosen with `c` by 5-fold cross-validation over the training
    # half's messages (whole groups per fold, six fold assignments averaged), never on the held-out half. Agreement
    # (kappa) at c = 1: weight 0 0.881 (0.755), 0.02 0.891 (0.775), 0.05 0.905 (0.803), 0.1 0.904 (0.802), 0.2
    # 0.898 (0.789), 0.3 0.895 (0.784), 1 0.875 (0.743).
    generated_weight: float = Field(default=0.1, ge=0, le=1)
    # Inverse L2 strength of each logistic regression. Weights 0.05-0.15 with c 3-30 form a plateau in that
    # cross-validation (agreement 0.908-0.913, kappa 0.808-0.819; c 0.3 is below at 0.894-0.900); its middle.
    c: float = Field(default=10.0, gt=0)
    seed: int = 0


def feature_matrix(rows: Sequence[dict[str, Any]]) -> tuple[np.ndarray, list[Signals]]:
    found = [signals(r.get("message", ""), r["facts"], r["reply"]) for r in rows]
    matrix = np.array([s.vector() for s in found], dtype=np.float32).reshape(len(found), len(FEATURES))
    return matrix, found


def train(
    labelled: Sequence[dict[str, Any]], generated: Sequence[dict[str, Any]], params: JudgeParams, out_dir: Path
) -> dict[str, Any]:
    """Fit one head per rubric on ``labelled`` (weight 1) and ``generated`` (``generated_weight``); write the
    ONNX model and judge.json to ``out_dir``; return the build summary."""
    from sklearn.linear_model import LogisticRegression

    rows = [*labelled, *generated]
    x, _ = feature_matrix(rows)
    weights = np.concatenate([np.ones(len(labelled)), np.full(len(generated), params.generated_weight)])
    coef = np.zeros((len(FEATURES), len(RUBRICS)), dtype=np.float64)
    bias = np.zeros(len(RUBRICS), dtype=np.float64)
    heads = {}
    for k, (rubric, names) in enumerate(RUBRICS.items()):
        idx = [FEATURES.index(n) for n in names]
        y = np.array([r["verdicts"][rubric] == "pass" for r in rows])
        if y.all() or not y.any():
            raise ValueError(f"judge training rows: every {rubric} label is the same; nothing to learn")
        mean, std = x[:, idx].mean(axis=0), x[:, idx].std(axis=0) + 1e-6
        model = LogisticRegression(C=params.c, max_iter=5000, class_weight="balanced", random_state=params.seed)
        model.fit((x[:, idx] - mean) / std, y, sample_weight=weights)
        scaled = model.coef_[0] / std  # folded: w·((x - mean) / std) + b == (w / std)·x + (b - w·mean / std)
        coef[idx, k] = scaled
        bias[k] = model.intercept_[0] - float(scaled @ mean)
        heads[rubric] = {"features": list(names), "mean": mean.tolist(), "coef": scaled.tolist()}
    out_dir.mkdir(parents=True, exist_ok=True)
    export_onnx(coef, bias, out_dir / ONNX_FILE)
    meta = {
        "rubrics": list(RUBRICS),
        "features": list(FEATURES),
        "heads": heads,
        "labelled_rows": len(labelled),
        "generated_rows": len(generated),
        "params": params.model_dump(),
    }
    (out_dir / JUDGE_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
    return {"labels": LABELS, "format": "onnx", "labelled_rows": len(labelled), "generated_rows": len(generated)}


def export_onnx(coef: np.ndarray, bias: np.ndarray, path: Path) -> None:
    """sigmoid(x @ coef + bias), one column per rubric, as a three-node ONNX graph (deterministic bytes)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_features, n_rubrics = coef.shape
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", [INPUT, "coef"], ["logits_raw"]),
            helper.make_node("Add", ["logits_raw", "bias"], ["logits"]),
            helper.make_node("Sigmoid", ["logits"], [OUTPUT]),
        ],
        "judge",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["n", n_features])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["n", n_rubrics])],
        initializer=[
            numpy_helper.from_array(coef.astype(np.float32), "coef"),
            numpy_helper.from_array(bias.astype(np.float32), "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="release_assets")
    model.ir_version = IR_VERSION  # what the pinned onnxruntime reads; onnx's helper writes its own newest
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString(deterministic=True))


# What each feature means when it pulls a score down: the reason's wording, with what triggered it.
def _reason(name: str, found: Signals) -> str:
    match name:
        case "unsupported_numbers":
            return f"states {', '.join(found.unsupported_numbers)}, a number the facts do not hold"
        case "missing_numbers":
            return "leaves out the numbers the facts give"
        case "negation_surplus":
            return f"adds a negation the facts do not make ({', '.join(found.negations)})"
        case "polarity_flips":
            return f"says the opposite of the facts about: {', '.join(found.flips)}"
        case "absolute_claims":
            return f"makes a sweeping claim the facts do not ({', '.join(found.absolutes)})"
        case "unsupported_entities":
            return f"names {', '.join(found.unsupported_entities)}, which the facts and message do not"
        case "unit_mismatch":
            return f"gives {', '.join(found.units)} where the facts give that number in another unit"
        case "antonym_swaps":
            return f"says the opposite of the facts ({', '.join(found.swaps)})"
        case "clarifying":
            return "asks the customer a question instead of answering"
        case "fact_coverage" | "answer_coverage" | "cosine" | "best_fact_coverage":
            return "does not carry the facts it was given"
        case "weakest_fact_coverage":
            return "leaves out one of the facts it was given"
        case "novel_sentence":
            return "has a sentence the facts and the message do not back"
        case "reply_novelty":
            return "adds content that is not in the facts"
        case "action_claims":
            return "claims something was done or will happen that the facts do not say"
        case "refusal":
            return "declines to answer although the facts hold the answer"
        case "abstains_honestly" | "no_facts":
            return "answers without facts to answer from"
        case "dismissive":
            return f"dismissive wording ({', '.join(dict.fromkeys(found.dismissive))})"
        case "courtesy":
            return "no courtesy at all"
        case "questions":
            return "rhetorical questions at the customer"
        case "you_blame":
            return "blames the customer"
        case "imperatives":
            return "orders the customer about"
        case _:
            return "short and curt"


class OnnxJudgePredictor:
    """The trained judge through onnxruntime. ``judge(rows)`` gives each rubric's pass probability and the reason
    for the lowest one; ``predict_proba`` (the Predictor protocol) the overall fail/pass probability."""

    labels = LABELS

    def __init__(self, model_dir: Path) -> None:
        self.meta = json.loads((Path(model_dir) / JUDGE_FILE).read_text())
        self.rubrics: list[str] = self.meta["rubrics"]
        if self.meta["features"] != list(FEATURES):
            raise ValueError(
                f"{model_dir / JUDGE_FILE}: trained on features {self.meta['features']}, this code computes "
                f"{list(FEATURES)}: rebuild the judge model"
            )
        self._session = session(Path(model_dir) / ONNX_FILE)

    def scores(self, rows: Sequence[dict[str, Any]]) -> tuple[np.ndarray, list[Signals]]:
        """Pass probability per row and rubric ([n, rubrics]) and the signals behind them."""
        x, found = feature_matrix(rows)
        if not len(rows):
            return np.zeros((0, len(self.rubrics)), dtype=np.float32), found
        return self._session.run([OUTPUT], {INPUT: x})[0], found

    def reason(self, rubric: str, found: Signals) -> str:
        """The feature that pulled this rubric's score down most, against the training rows' average."""
        head = self.meta["heads"][rubric]
        pulls = [
            (w * (found.values[name] - mean), name)
            for name, w, mean in zip(head["features"], head["coef"], head["mean"], strict=True)
        ]
        weakest, name = min(pulls)
        return _reason(name, found) if weakest < 0 else "no signal against it"

    def predict_proba(self, rows: list[dict[str, Any]]) -> np.ndarray:
        scores, _ = self.scores(rows)
        overall = scores.min(axis=1) if len(rows) else np.zeros(0, dtype=np.float32)
        return np.stack([1 - overall, overall], axis=1)


class JudgeRuntime:
    """The ``judge_model`` kind's runtime (``ModelRuntime``): trains from the files its member names, which are
    therefore inputs of the build (``source_files``), and loads through onnxruntime."""

    def build(self, member: Any, split_dir: Path | None, out_dir: Path, project_root: Path) -> dict[str, Any]:
        params = JudgeParams.model_validate(member.params)
        labelled = load_labelled(project_root / member.labelled, list(RUBRICS))
        train_rows = [r for r in labelled if r["split"] == TRAIN]
        generated: list[dict[str, Any]] = []
        for k, source in enumerate(member.generated_from):
            golden = [json.loads(line) for line in (project_root / source.golden).read_text().splitlines() if line]
            kb = read_yaml(project_root / source.knowledge_base, ValueError)
            generated += generated_rows(golden, kb["facts"], seed=params.seed + k, source=source.golden)
        summary = train(train_rows, generated, params, out_dir)
        summary["train_rows"] = len(train_rows) + len(generated)
        return summary

    def source_files(self, member: Any, project_root: Path) -> list[Path]:
        files = [member.labelled, *(f for s in member.generated_from for f in (s.golden, s.knowledge_base))]
        return [project_root / f for f in files]

    def source_identity(self, member: Any, project_root: Path) -> Any:
        return None

    def load(self, model_dir: Path, runtime: str | None = None) -> OnnxJudgePredictor:
        return OnnxJudgePredictor(model_dir)

    def code_modules(self, member: Any) -> list[str]:
        return [__name__, "release_assets.models.judge_features", "release_assets.models.judge_negatives"]


RUNTIME = JudgeRuntime()
