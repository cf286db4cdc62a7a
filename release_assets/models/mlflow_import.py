"""An ``imported_model`` named by an MLflow model URI (``models:/name@alias``, ``models:/name/3``,
``runs:/<run id>/<path>``): resolved in the configured tracking server, downloaded, and taken only in a format that
loads without running code, the ``onnx`` flavor or a scikit-learn model MLflow saved through skops. A pickled
flavor is refused with what to do instead. Only the model file enters the bundle: the ``MLmodel`` file around it
carries a creation time and a UUID that would make every import a new version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from release_assets.manifest.external_models import MLFLOW_SCHEMES, StoredFormat
from release_assets.models.table_predictor import ModelFileError


def is_mlflow_uri(path: str) -> bool:
    return path.startswith(MLFLOW_SCHEMES)


def _client(tracking_uri: str):
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.MlflowClient(tracking_uri=tracking_uri)


def resolve(uri: str, tracking_uri: str) -> dict[str, Any]:
    """What ``uri`` names right now (the registered version an alias points at): the build's input, so moving an
    alias to another version imports again, and an unchanged one reuses the build."""
    if uri.startswith("runs:/"):
        return {"uri": uri}
    reference = uri[len("models:/") :]
    client = _client(tracking_uri)
    try:
        if "@" in reference:
            name, alias = reference.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, _, number = reference.partition("/")
            version = client.get_model_version(name, number)
    except Exception as exc:  # MLflow raises MlflowException, or a connection error for a server that is down
        raise ModelFileError(f"{uri}: not found in MLflow at {tracking_uri} ({str(exc).splitlines()[0]})") from None
    return {
        "uri": uri,
        "name": name,
        "version": str(version.version),
        "run_id": version.run_id,
        "source": version.source,
    }


def fetch(uri: str, tracking_uri: str, work: Path) -> tuple[Path, StoredFormat]:
    """The model file behind ``uri`` and its format ("onnx" or "sklearn"), downloaded under ``work``."""
    import mlflow

    _client(tracking_uri)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(work)))
    except Exception as exc:  # as above
        raise ModelFileError(f"{uri}: cannot be downloaded from MLflow ({str(exc).splitlines()[0]})") from None
    mlmodel = local / "MLmodel"
    if not mlmodel.is_file():
        raise ModelFileError(f"{uri}: not an MLflow model (no MLmodel file)")
    flavors = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {})
    if "onnx" in flavors:
        return local / flavors["onnx"]["data"], "onnx"
    sklearn = flavors.get("sklearn", {})
    if sklearn.get("serialization_format") == "skops":
        return local / sklearn["pickled_model"], "sklearn"
    raise ModelFileError(
        f"{uri}: flavors {', '.join(sorted(flavors)) or 'none'} load by unpickling (running code); import an onnx "
        "model, or a scikit-learn model logged with serialization_format='skops'"
    )
