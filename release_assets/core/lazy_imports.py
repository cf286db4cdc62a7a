"""Imports made inside functions, and why: the one list ``release_assets_tests/test_layers.py`` reads.

DESIGN.md: imports inside functions are for heavy optional libraries only, never to hide a cycle. A function may
import a library named in ``HEAVY``, or a project module named in ``DEFERRED`` (one that loads a ``HEAVY`` library
as it is imported); every other import is at the top of its module. The test keeps both lists honest: each entry
is still used, each ``DEFERRED`` module does load a library of ``HEAVY``, and loading the definitions loads none.
Nothing imports this module.
"""

# Third-party packages (top-level names) imported only inside the functions that need them.
HEAVY: dict[str, str] = {
    "torch": "training, and the torch runtime the ONNX parity check compares with; serving runs ONNX (~1.3 s)",
    "transformers": "training the text model and the llm:transformers binding (~0.8 s)",
    "tokenizers": "the text model's WordPiece vocabulary, when that model trains or answers",
    "safetensors": "the vision model's weights, when it trains or loads for torch",
    "onnx": "exporting a trained model (~0.8 s)",
    "onnxruntime": "a model answering through ONNX, at evaluation and serving",
    "mlflow": "the registry: a release run never imports it, a registry sync does (~1.4 s)",
    "sklearn": "training the tabular model; iris and, without the shipped CSV, digits (~1.3 s)",
    "scipy": "the statistical tests, when a drift or regression is decided",
    "evidently": "the live drift report only (~4 s)",
    "pandas": "the live drift report, reading `table` datasets and handing a table model its feature frame",
    "pandera": "checking a `table` dataset against its declared schema",
    "skops": "storing and loading a scikit-learn model of a python_model or imported_model member (never pickle)",
    "PIL": "decoding an image attached to a request",
    "model_signing": "signing a published unit and checking its signature (with sigstore, ~0.5 s to import)",
    "sigstore": "keyless signing of attestations in CI only",
    "cryptography": "the signing key and the DSSE envelopes of attestations, when a unit is signed or checked",
    "cyclonedx": "the SBOM of the building environment, when a new bundle is written",
    "packageurl": "the SBOM's package URLs, with cyclonedx",
    "matplotlib": "drawing the plots of reports, failed checks, the canary and triage (~0.3 s); never at load",
    "httpx": "llm:openai steps only",
    "requests": "checking an MLflow tracking server, and wording its failures (sqlite users never load it)",
    "urllib3": "wording a tracking server's failures, with requests",
    "boto3": "S3 only: the release store, an environment's region, a table read from s3://",
    "botocore": "S3 only: the release store, an environment's region, a table read from s3://",
    "prometheus_client": "the server's metrics, and reading a server's /metrics for the canary",
    "opentelemetry": "traces of served requests and golden runs; the OTLP exporter only when sending to a collector",
    "openfeature": "flag routing (OpenFeature with flagd's in-process provider): `serve` and the canary's moves",
    "starlette": "the ASGI app, built by `serve` only",
    "dagster_celery": "optional extra (scale): the Celery executor, only when RELEASE_ASSETS_EXECUTOR=celery",
    "dagster_k8s": "optional extra (k8s): the K8s job executor, only when RELEASE_ASSETS_EXECUTOR=k8s",
    "dagster": "Dagster's private gRPC and serdes APIs, with dagster_celery, only when the Celery executor is chosen",
}

# Project modules that load a HEAVY library (or serving's stack) as they are imported, so their importers defer them.
DEFERRED: dict[str, str] = {
    "release_assets.serving.app": "starlette and prometheus_client: the ASGI app, built by `serve` only",
    "release_assets.serving.metrics": "prometheus_client: the server's metrics, built by `serve` only",
    "release_assets.serving.flags": "OpenFeature and its flagd provider: routing, and the canary's flag file moves",
    "release_assets.serving.flag_reads": "OpenFeature, through serving.flags: the shadow report's flag reads",
    "release_assets.serving.traces": "OpenTelemetry: serve's traces and the chain evaluation's golden-run traces",
    "release_assets.serving.trace_export": "OpenTelemetry: the redactor the live drift report shares with traces",
    "release_assets.serving.golden_traces": "OpenTelemetry: the chain evaluation's golden-run traces",
}

# Packages whose function-level imports this list does not hold yet, and why.
NOT_CHECKED: dict[str, str] = {
    "release_assets.cli": "each command module imports what only its commands need inside them, so "
    "`release-assets --help` starts without Dagster or MLflow; sorting those against this list is the CLI's part "
    "of issue #29",
}
