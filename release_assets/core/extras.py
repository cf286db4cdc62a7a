"""Which extra of the package installs each optional library, and the one line a person reads when it is missing.

The core (pyproject.toml's ``dependencies``) releases a scikit-learn model through the asset graph and the CLI;
the image and text models, serving, MLflow, Evidently, S3, ... are extras. A command or a Dagster step that needs a
library of an extra that is not installed fails with ``ModuleNotFoundError``; the CLI (``cli/main.py``) and the run
summary (``release/summary.py``'s ``error_text``, which every step failure a person reads goes through) turn it
into :func:`missing_extra`'s line instead of a traceback. ``release_assets_tests/test_extras.py`` checks this map
against pyproject.toml and ``core/lazy_imports.py``: each library imported inside a function is in the core or here.
"""

from __future__ import annotations

import re
from importlib.util import find_spec

PACKAGE = "release_assets"

# An importable name (a top-level module, or a dotted prefix where the core has the package and an extra adds a
# part of it) -> the extra that installs it. A library in two extras is listed under the smaller one.
EXTRAS: dict[str, str] = {
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "tokenizers": "onnx",
    "torch": "torch",
    "transformers": "torch",
    "safetensors": "torch",
    "starlette": "serve",
    "uvicorn": "serve",
    "prometheus_client": "serve",
    "openfeature": "serve",
    "PIL": "serve",
    "opentelemetry.exporter": "serve",  # the SDK is core (a chain's golden-run traces); the OTLP exporter is not
    "evidently": "drift",
    "mlflow": "mlflow",
    "requests": "mlflow",
    "urllib3": "mlflow",
    "httpx": "llm",
    "boto3": "s3",
    "botocore": "s3",
    "dagster_webserver": "ui",
    "matplotlib": "plots",
    "model_signing": "provenance",
    "sigstore": "provenance",
    "cryptography": "provenance",
    "cyclonedx": "provenance",
    "packageurl": "provenance",
    "dagster_celery": "scale",
    "dagster_k8s": "k8s",
}

# What each extra is for: the first words of the line.
PURPOSE: dict[str, str] = {
    "onnx": "an ONNX model answering (the image and text models, an ONNX imported_model)",
    "torch": "training the image and text models (and the llm:transformers binding)",
    "serve": "serving (`serve`, flag routing, the canary and the shadow report)",
    "drift": "the live drift report",
    "mlflow": "the MLflow registry",
    "llm": "llm:openai steps",
    "s3": "S3 (the release store, s3:// tables, an environment's region)",
    "ui": "the Dagster UI",
    "plots": "plots in reports and failed checks",
    "provenance": "signing release units, their attestations and SBOM (and checking signatures)",
    "scale": "the Celery executor (RELEASE_ASSETS_EXECUTOR=celery)",
    "k8s": "the Kubernetes executor (RELEASE_ASSETS_EXECUTOR=k8s)",
}

_NO_MODULE = re.compile(r"No module named '([\w.]+)'")


def extra_for(module: str) -> str | None:
    """The extra that installs ``module`` (a dotted name), by the longest name of :data:`EXTRAS` it starts with."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        extra = EXTRAS.get(".".join(parts[:n]))
        if extra is not None:
            return extra
    return None


def _line(module: str, extra: str) -> str:
    return (
        f"{PURPOSE[extra]} needs the '{extra}' extra ({module.split('.')[0]} is not installed): "
        f"pip install '{PACKAGE}[{extra}]'"
    )


def not_installed(module: str) -> str | None:
    """:func:`missing_extra`'s line when the top-level ``module`` (a key of :data:`EXTRAS`) cannot be imported,
    else None; for code that would rather skip than fail (finding a module imports nothing)."""
    extra = extra_for(module)
    if extra is None:
        raise KeyError(f"{module} is not in EXTRAS")
    return None if find_spec(module) is not None else _line(module, extra)


def missing_extra(error: BaseException | str) -> str | None:
    """The line for a ``ModuleNotFoundError`` (or its message, as Dagster's error info keeps a step's) of a library
    an extra installs, naming the extra and the command that installs it; None for any other error."""
    if isinstance(error, BaseException):
        module = error.name if isinstance(error, ModuleNotFoundError) else None
    else:
        found = _NO_MODULE.search(error)
        module = found.group(1) if found else None
    extra = extra_for(module) if module else None
    return _line(module, extra) if module and extra else None
