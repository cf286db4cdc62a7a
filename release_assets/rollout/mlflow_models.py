"""Published release units and their model members as MLflow pyfunc models that load and predict.

Each model member of a registered release version becomes a pyfunc wrapping its stored artifact, loaded by its own
kind's runtime (``MODEL_KINDS[kind].load``, so plugin kinds too), with a signature and an input example: its rows
as the kind reads them (``{"text": ...}``, ``{"pixels": [...]}``, ``{"features": [...]}``), or a table model's
feature columns, one column each. It answers ``label`` and ``probabilities`` (``prediction`` for regression; an
``embedding``, one unit vector per ``text``, for a sentence-embedding model). The
release itself is a pyfunc over its bundle: loading it extracts and verifies the bundle and builds the very
:class:`~release_assets.serving.loader.LoadedRelease` that ``serve`` answers with, so
``mlflow.pyfunc.load_model("models:/helpdesk@champion").predict([{"message": ...}])`` answers as the server does.

Nothing is pickled. The models are "models from code": MLflow stores ``mlflow_pyfunc.py`` (beside this module) as
the model's code and runs it when the model loads; the only state is the artifact files and ``model_config`` (JSON:
the release, version, member, kind and the sha256 of every file, checked on load). MLflow would cloudpickle a
``PythonModel`` instance given to it; this package never hands it one.

What a member reads is found from its own test split (the split whose rows its evaluation report scored): the first
rows, less every field whose removal leaves the model's answers unchanged, so a text model's example is its text,
not the split's bookkeeping. MLflow itself is imported only inside the functions that save a model.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from release_assets import keys
from release_assets.core.hashing import member_digest, sha256_file
from release_assets.models.trainers import EMBEDDING, MODEL_KINDS, task_of
from release_assets.release.bundle import BundleError, extract_bundle, read_manifest
from release_assets.serving.loader import CHAIN, TABLE, LoadedRelease, served_members
from release_assets.serving.requests import RequestError, parse_table_row

CODE_FILE = Path(__file__).with_name("mlflow_pyfunc.py")  # what MLflow runs to load either kind of model
MEMBER, RELEASE = "member", "release"  # model_config["model"]: which of the two a saved pyfunc is
EXAMPLE_ROWS = 3
# An embedding model has no test split to take rows from; its example is one sentence of the kind it embeds.
EMBEDDING_EXAMPLE = [{"text": "How do I reset my password?"}]
VARIANT = "mlflow"  # an answer's `variant`: loaded from the registry, not routed by the server's flags
# A table's declared dtypes as MLflow column types (a datetime travels as its ISO text, as in a request).
TABLE_TYPES = {"int": "long", "float": "double", "number": "double", "bool": "boolean", "str": "string"}
FetchFile = Callable[[str], Path | None]  # a path in the bundle -> the file (extracted, or fetched by reference)


class InvalidInput(ValueError):
    """Rows a model cannot answer as given; the pyfunc turns it into MLflow's invalid-parameter error (HTTP 400)."""


def requirements(*extras: str) -> list[str]:
    """What a model needs installed: this package (with ``extras``) and MLflow, at the versions that saved it."""
    import mlflow

    names = ",".join(sorted({"mlflow", *extras}))
    return [f"release_assets[{names}]=={metadata.version('release_assets')}", f"mlflow=={mlflow.__version__}"]


# -- input rows ------------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A cell as JSON would hold it: MLflow hands arrays as numpy arrays and missing values as NaN."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not _missing(v)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def records(model_input: Any) -> list[dict[str, Any]]:
    """A DataFrame, a list of dicts or one dict as plain rows, absent cells (NaN, None) left out."""
    if hasattr(model_input, "to_dict"):
        rows = model_input.to_dict(orient="records")
    elif isinstance(model_input, dict):
        rows = [model_input]
    else:
        rows = list(model_input)
    if not all(isinstance(r, dict) for r in rows):
        raise InvalidInput("expected rows of named fields (a DataFrame, or a list of JSON objects)")
    return [{str(k): _plain(v) for k, v in r.items() if not _missing(v)} for r in rows]


# -- a member --------------------------------------------------------------------------------------------------


def _member_files(model_dir: Path) -> dict[str, str]:
    return {p.relative_to(model_dir).as_posix(): sha256_file(p) for p in sorted(model_dir.rglob("*")) if p.is_file()}


def check_member_files(model_dir: Path, config: dict[str, Any]) -> None:
    """The artifact holds exactly the member's files, each with the sha256 the verified bundle listed."""
    found, listed = _member_files(model_dir), config["files"]
    if found != listed:
        changed = sorted(p for p in set(found) | set(listed) if found.get(p) != listed.get(p))
        raise BundleError(
            f"{config['release']} {config['version']} member {config['member']}: {changed[0]} does not match the "
            "verified bundle's sha256 (or is missing or unlisted); refusing to load it"
        )
    if member_digest(listed) != config["digest"]:
        raise BundleError(f"{config['member']}: its files do not make the digest {config['digest'][:12]}")


class MemberModel:
    """One model member, loaded by its kind's runtime: rows in, ``label`` + ``probabilities`` (or ``prediction``)
    out, one row each."""

    def __init__(self, config: dict[str, Any], model_dir: Path) -> None:
        check_member_files(model_dir, config)
        self.config = config
        self.predictor = MODEL_KINDS[config["kind"]].load(model_dir)
        features = getattr(self.predictor, "features", None)
        self.columns: dict[str, dict[str, Any]] | None = features if isinstance(features, dict) else None

    def rows(self, model_input: Any) -> list[dict[str, Any]]:
        rows = records(model_input)
        if self.columns is None:
            return rows
        out = []
        for i, row in enumerate(rows):  # a table model's columns, checked as a served request's are
            try:
                out.append({"features": parse_table_row({"features": row}, self.columns)})
            except RequestError as exc:
                raise InvalidInput(f"row {i}: {exc}") from None
        return out

    def predict(self, model_input: Any):
        import pandas as pd

        rows = self.rows(model_input)
        if task_of(self.predictor) == EMBEDDING:
            return pd.DataFrame({"embedding": [v.tolist() for v in self._embed(rows)]})
        try:
            if task_of(self.predictor) == "regression":
                values = self.predictor.predict_values(rows)
                return pd.DataFrame({"prediction": [float(v) for v in values]})
            proba = np.asarray(self.predictor.predict_proba(rows), dtype=np.float64)
        except (KeyError, TypeError, ValueError, IndexError) as exc:  # a row without what the kind reads
            what = f"{self.config['member']} ({self.config['kind']})"
            raise InvalidInput(f"{what} cannot read these rows: {exc!r}") from None
        labels = list(self.predictor.labels)
        return pd.DataFrame(
            {
                "label": [labels[int(i)] for i in proba.argmax(axis=1)],
                "probabilities": [{lab: float(p) for lab, p in zip(labels, row, strict=True)} for row in proba],
            }
        )

    def _embed(self, rows: list[dict[str, Any]]) -> np.ndarray:
        texts = []
        for i, row in enumerate(rows):
            text = row.get("text")
            if not isinstance(text, str):
                raise InvalidInput(f"row {i}: an embedding model reads one string field `text`, got {sorted(row)}")
            texts.append(text)
        return self.predictor.embed(texts)


def _scores(predictor: Any, rows: list[dict[str, Any]]) -> np.ndarray:
    if task_of(predictor) == "regression":
        return np.asarray(predictor.predict_values(rows), dtype=np.float64)
    return np.asarray(predictor.predict_proba(rows), dtype=np.float64)


def fields_read(predictor: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` less every field the model's answers do not depend on (tried one at a time, in name order)."""
    base = _scores(predictor, rows)
    kept = [dict(r) for r in rows]
    for field in sorted({k for r in rows for k in r}):
        trial = [{k: v for k, v in r.items() if k != field} for r in kept]
        try:
            same = np.array_equal(_scores(predictor, trial), base)
        except Exception:  # it reads this field: without it the model fails
            same = False
        if same:
            kept = trial
    return kept if all(kept) else [dict(r) for r in rows]


def _jsonl_head(path: Path, n: int) -> list[dict[str, Any]]:
    rows = []
    with path.open() as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) >= n:
                break
    return rows


def split_rows(manifest: dict[str, Any], member: str, fetch: FetchFile, predictor: Any, n: int) -> list[dict]:
    """The first rows of the test split ``member`` was evaluated on: the split whose ids its evaluation report
    predicted, or else the first split whose rows it answers."""
    tests = sorted(
        f["path"] for name, m in manifest["members"].items() for f in m["files"] if f["path"] == f"{name}/test.jsonl"
    )
    report_path = f"{keys.report(manifest['release'], member)[-1]}/report.json"
    listed = {f["path"] for m in manifest["members"].values() for f in m["files"]}
    report = fetch(report_path) if report_path in listed else None
    scored = set(json.loads(report.read_text()).get("predictions") or {}) if report is not None else set()
    candidates = []
    for path in tests:
        local = fetch(path)
        if local is None:
            continue
        rows = _jsonl_head(local, 200 if scored else n)
        if scored and any(r.get("id") in scored for r in rows):
            return [r for r in rows if r.get("id") in scored][:n]
        candidates.append(rows[:n])
    for rows in candidates:
        try:
            _scores(predictor, rows)
        except Exception:
            continue
        return rows
    return []


@dataclass(frozen=True)
class MemberExample:
    """What a member's pyfunc is saved with: rows as its pyfunc takes them, and its input schema's columns."""

    rows: list[dict[str, Any]]  # the pyfunc's input example
    model_rows: list[dict[str, Any]]  # the same rows as the kind's predictor reads them (a release's example)


def member_example(manifest: dict[str, Any], member: str, model_dir: Path, fetch: FetchFile) -> MemberExample:
    predictor = MODEL_KINDS[manifest["members"][member]["kind"]].load(model_dir)
    if task_of(predictor) == EMBEDDING:
        return MemberExample(list(EMBEDDING_EXAMPLE), list(EMBEDDING_EXAMPLE))
    rows = split_rows(manifest, member, fetch, predictor, EXAMPLE_ROWS)
    features = getattr(predictor, "features", None)
    if isinstance(features, dict):  # a table model: its feature columns, from the split or its signature
        if not rows:
            rows = [{"features": {c: _placeholder(spec) for c, spec in features.items()}}]
        model_rows = [{"features": {c: r["features"].get(c) for c in features}} for r in rows]
        return MemberExample([dict(r["features"]) for r in model_rows], model_rows)
    read = fields_read(predictor, rows) if rows else []
    return MemberExample(read, read)


def _placeholder(spec: dict[str, Any]) -> Any:
    """A value a column accepts, for a table model whose split is not at hand: its first allowed value, or min."""
    if spec.get("allowed"):
        return spec["allowed"][0]
    dtype = spec.get("dtype")
    if dtype in ("int", "float", "number"):
        low = spec.get("min", 0)
        return int(low) if dtype == "int" else float(low)
    return {"bool": False, "datetime": "2000-01-01T00:00:00"}.get(str(dtype), "")


def _member_signature(predictor: Any, example: MemberExample):
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import DataType
    from mlflow.types.schema import Array, ColSpec, Map, Schema

    features = getattr(predictor, "features", None)
    if isinstance(features, dict):
        inputs = Schema(
            [
                ColSpec(TABLE_TYPES.get(spec.get("dtype", ""), "string"), name, required=not spec.get("nullable"))
                for name, spec in features.items()
            ]
        )
    elif example.rows:
        inputs = infer_signature(example.rows).inputs
    else:
        inputs = None
    if task_of(predictor) == EMBEDDING:
        outputs = Schema([ColSpec(Array(DataType.float), "embedding")])
    elif task_of(predictor) == "regression":
        outputs = Schema([ColSpec("double", "prediction")])
    else:
        outputs = Schema([ColSpec("string", "label"), ColSpec(Map("double"), "probabilities")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def save_member_model(
    path: Path, manifest: dict[str, Any], member: str, model_dir: Path, example: MemberExample
) -> dict[str, Any]:
    """Save ``member`` (its extracted folder ``model_dir``) as a pyfunc at ``path``; returns its model_config."""
    import mlflow

    entry = manifest["members"][member]
    config = {
        "model": MEMBER,
        "release": manifest["release"],
        "version": manifest["version"],
        "member": member,
        "kind": entry["kind"],
        "digest": entry["digest"],
        "files": {f["path"].split("/", 1)[1]: f["sha256"] for f in entry["files"]},
    }
    check_member_files(model_dir, config)  # what is saved is exactly what the bundle verified
    predictor = MODEL_KINDS[entry["kind"]].load(model_dir)
    onnx = (model_dir / "model.onnx").is_file()
    mlflow.pyfunc.save_model(
        str(path),
        python_model=str(CODE_FILE),
        artifacts={"model": str(model_dir)},
        model_config=config,
        signature=_member_signature(predictor, example),
        input_example=example.rows or None,
        pip_requirements=requirements(*(["onnx"] if onnx else [])),
        metadata={"release_assets": {"release": manifest["release"], "version": manifest["version"]}},
    )
    return config


# -- a release -------------------------------------------------------------------------------------------------


class ReleaseModel:
    """A release version from its bundle: extracted (served members only) and verified into a folder of its own,
    answered by :class:`LoadedRelease`, the server's own loader."""

    def __init__(self, config: dict[str, Any], bundle: Path) -> None:
        members = served_members(read_manifest(bundle))
        target = Path(tempfile.mkdtemp(prefix=f"release-assets-{config['release']}-{config['version']}-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, target, True)
        manifest = extract_bundle(bundle, target, members=members)  # re-hashes every entry, ties the version
        if (manifest["release"], manifest["version"]) != (config["release"], config["version"]):
            raise BundleError(
                f"{bundle}: holds {manifest['release']} {manifest['version']}, not the registered "
                f"{config['release']} {config['version']}"
            )
        self.loaded = LoadedRelease(manifest["release"], manifest["version"], target, manifest)

    def predict(self, model_input: Any) -> list[dict[str, Any]]:
        answers = []
        for i, request in enumerate(records(model_input)):
            try:
                answers.append(self.loaded.predict(request, variant=VARIANT, request_id=str(uuid.uuid4())))
            except RequestError as exc:
                raise InvalidInput(f"row {i}: {exc}") from None
        return answers


def serves(manifest: dict[str, Any]) -> bool:
    """Whether :class:`LoadedRelease` answers for this release: it has a chain, or exactly one model."""
    members = manifest["members"].values()
    return any(m["kind"] == "prompt_chain" for m in members) or sum(m["kind"] in MODEL_KINDS for m in members) == 1


def _release_signature(kind: str, columns: dict[str, dict[str, Any]] | None, regression: bool):
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, Array, ColSpec, Map, Object, Property, Schema

    head = [ColSpec("string", "release"), ColSpec("string", "version"), ColSpec("string", "variant")]
    user = ColSpec("string", "user_id", required=False)
    if kind == CHAIN:
        inputs = Schema([ColSpec("string", "message"), user, ColSpec(AnyType(), "attachment", required=False)])
        answer = [
            ColSpec("string", "intent", required=False),
            ColSpec("double", "confidence", required=False),
            ColSpec(Map("string"), "entities"),
            ColSpec("string", "reply", required=False),
            ColSpec("boolean", "escalate"),
            ColSpec("boolean", "abstained"),
            ColSpec(Map("double"), "latency_ms"),
        ]
    elif kind == TABLE:
        properties = [
            Property(name, TABLE_TYPES.get(spec.get("dtype", ""), "string"), required=not spec.get("nullable"))
            for name, spec in (columns or {}).items()
        ]
        inputs = Schema([ColSpec(Object(properties), "features"), user])
        answer = [ColSpec("double", "prediction")] if regression else []
    else:
        inputs = Schema([ColSpec(Array("double"), "features"), user])
        answer = []
    if not answer:
        answer = [ColSpec("string", "label"), ColSpec(Map("double"), "probabilities")]
    return ModelSignature(inputs=inputs, outputs=Schema([*head, *answer, ColSpec("string", "request_id")]))


def release_example(
    manifest: dict[str, Any], fetch: FetchFile, members: dict[str, MemberExample]
) -> list[dict[str, Any]]:
    """Requests as ``serve`` takes them: a chain's first golden message; a model's first test rows."""
    chains = [n for n, m in manifest["members"].items() if m["kind"] == "prompt_chain"]
    if chains:
        golden = sorted(
            f["path"] for m in manifest["members"].values() for f in m["files"] if f["path"].endswith("/golden.jsonl")
        )
        for path in golden:
            local = fetch(path)
            rows = _jsonl_head(local, 1) if local is not None else []
            if rows and isinstance(rows[0].get("message"), str):
                return [{"message": rows[0]["message"]}]
        return [{"message": "Hello"}]
    if len(members) == 1:
        [example] = members.values()
        return [{"features": r["features"]} for r in example.model_rows if "features" in r]
    return []


def save_release_model(path: Path, manifest: dict[str, Any], bundle: Path, example: list[dict[str, Any]]) -> None:
    """Save the release version in ``bundle`` as a pyfunc at ``path``; its signature is the one of what it serves
    (a chain, a classifier on features, a table model), checked by loading it as MLflow will."""
    import mlflow

    config = {"model": RELEASE, "release": manifest["release"], "version": manifest["version"]}
    loaded = ReleaseModel(config, bundle).loaded
    model = getattr(loaded, "_model", None)
    columns = getattr(model, "features", None)
    signature = _release_signature(
        loaded.kind, columns if isinstance(columns, dict) else None, task_of(model) == "regression"
    )
    mlflow.pyfunc.save_model(
        str(path),
        python_model=str(CODE_FILE),
        artifacts={"bundle": str(bundle)},
        model_config=config,
        signature=signature,
        input_example=example or None,
        pip_requirements=requirements("onnx", "serve"),
        metadata={"release_assets": {"release": manifest["release"], "version": manifest["version"]}},
    )


def open_model(config: dict[str, Any], artifacts: dict[str, str]) -> MemberModel | ReleaseModel:
    """What ``mlflow_pyfunc.py`` loads: the member or the release its ``model_config`` names."""
    if config.get("model") == MEMBER:
        return MemberModel(config, Path(artifacts["model"]))
    if config.get("model") == RELEASE:
        return ReleaseModel(config, Path(artifacts["bundle"]))
    raise BundleError(f"model_config names no release_assets model: {sorted(config)}")
