"""``/openapi.json``: the OpenAPI 3.1 document of what ``serve`` answers, generated from the pydantic models that
validate it (serving/schemas.py), so the document is what the server checks, not a description beside it.

Each served release gets its own paths (``/v1/iris/predict``, ``/v2/models/iris/infer``, ...) because each takes
its own body: iris exactly 4 features, a table model its columns. A release configured but not loaded is left out
(it answers 503 until it loads). The document follows the champions: a new champion (the ledger's, followed by
serving/champion_watch.py) is described from the next request on; a canary of other columns is not described.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from release_assets.serving import oip
from release_assets.serving.schemas import (
    ErrorBody,
    FeedbackAnswer,
    FeedbackRequest,
    Health,
    InferResponse,
    ModelMetadata,
    Readiness,
    ServerMetadata,
    Signature,
    V2Error,
)

REF = "#/components/schemas/{model}"
V1_ERRORS = {
    "400": "The body is not JSON, or not UTF-8; an attached image does not decode.",
    "413": "The body is larger than the server's --max-body.",
    "415": "The Content-Type is not application/json (UTF-8).",
    "422": "A field is wrong: `field` names it (message, features[1], features.age, ...).",
    "500": "A step failed; the request id finds it in the log.",
    "503": "The release is not loaded.",
}
V2_ERRORS = {
    "400": "The body is not JSON, or its binary tensor data does not add up.",
    "413": "The body is larger than the server's --max-body.",
    "415": "A Content-Type other than JSON (or octet-stream), or a compressed body.",
    "422": "An input is unknown, missing, of the wrong datatype or shape, or holds a value the release refuses.",
    "500": "A step failed; the request id (X-Request-Id) finds it in the log.",
    "503": "The release is not loaded.",
}


class Documents:
    """The document for the releases served now, rebuilt only when a champion changes."""

    def __init__(self, protected: bool) -> None:
        self.protected = protected
        self._lock = threading.Lock()
        self._key: tuple[Any, ...] | None = None
        self._body = b""

    def get(self, releases: dict[str, Any], version: str) -> bytes:
        served = {name: loaded.signature for name, loaded in releases.items() if hasattr(loaded, "signature")}
        key = tuple(sorted((name, getattr(releases[name], "version", ""), id(sig)) for name, sig in served.items()))
        with self._lock:
            if key != self._key:
                doc = document(served, version, protected=self.protected)
                self._body, self._key = json.dumps(doc, separators=(",", ":")).encode(), key
            return self._body


def _json_body(ref: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def _request_body(ref: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": ref}}}


TEXT = {"text/plain": {"schema": {"type": "string"}}}


def document(served: dict[str, Signature], version: str, *, protected: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``served`` (release name -> its signature)."""
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (ErrorBody, "serialization"),
        (V2Error, "serialization"),
        (Health, "serialization"),
        (Readiness, "serialization"),
        (InferResponse, "serialization"),
        (ModelMetadata, "serialization"),
        (ServerMetadata, "serialization"),
        (FeedbackRequest, "validation"),
        (FeedbackAnswer, "serialization"),
    ]
    for sig in served.values():
        wanted += [(sig.request, "validation"), (sig.answer, "serialization"), (oip.infer_request(sig), "validation")]
    refs, defs = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF)

    def ref(model: type[BaseModel], mode: JsonSchemaMode = "serialization") -> dict[str, Any]:
        return refs[(model, mode)]

    security: dict[str, Any] = {"security": [{"bearer": []}]} if protected else {}
    unauthorized = {"401": _json_body(ref(ErrorBody), "Missing or wrong bearer token.")} if protected else {}
    unauthorized_v2 = {"401": _json_body(ref(V2Error), "Missing or wrong bearer token.")} if protected else {}
    no_body, not_ready = {"description": "No body: the status is the answer."}, {"description": "Not ready."}
    paths: dict[str, Any] = {}
    for name, sig in sorted(served.items()):
        v1_errors = {code: _json_body(ref(ErrorBody), text) for code, text in V1_ERRORS.items()}
        v2_errors = {code: _json_body(ref(V2Error), text) for code, text in V2_ERRORS.items()}
        paths[f"/v1/{name}/predict"] = {
            "post": {
                "operationId": f"predict_{name}",
                "summary": f"{name}: one prediction ({sig.kind})",
                "tags": [name],
                "requestBody": _request_body(ref(sig.request, "validation")),
                "responses": {"200": _json_body(ref(sig.answer), "The answer."), **v1_errors, **unauthorized},
                **security,
            }
        }
        paths[f"/v1/{name}/feedback"] = {
            "post": {
                "operationId": f"feedback_{name}",
                "summary": f"{name}: an outcome for one answer, named by its request_id (counted once)",
                "tags": [name],
                "requestBody": _request_body(ref(FeedbackRequest, "validation")),
                "responses": {
                    "200": _json_body(ref(FeedbackAnswer), "Counted against the version and variant that answered."),
                    **{code: v1_errors[code] for code in ("400", "413", "415", "422", "503")},
                    "404": _json_body(ref(ErrorBody), "Unknown release, or no recent answer has this request_id."),
                    "409": _json_body(ref(ErrorBody), "Feedback for this request_id was already taken."),
                    **unauthorized,
                },
                **security,
            }
        }
        paths[f"/v2/models/{name}"] = {
            "get": {
                "operationId": f"model_metadata_{name}",
                "summary": f"{name}: its input and output tensors (Open Inference Protocol)",
                "tags": [name],
                "responses": {
                    "200": _json_body(ref(ModelMetadata), "The model's tensors."),
                    "503": v2_errors["503"],
                    **unauthorized_v2,
                },
                **security,
            }
        }
        paths[f"/v2/models/{name}/ready"] = {
            "get": {
                "operationId": f"model_ready_{name}",
                "summary": f"{name}: ready to answer? (no body: 200 yes, 400 no)",
                "tags": [name],
                "responses": {"200": no_body, "400": not_ready, **unauthorized_v2},
                **security,
            }
        }
        paths[f"/v2/models/{name}/infer"] = {
            "post": {
                "operationId": f"infer_{name}",
                "summary": f"{name}: one prediction, tensors in and out (Open Inference Protocol)",
                "description": "Routed, shadowed, measured and traced as /v1 is. Tensors may also come as Triton's "
                "binary tensor data (Inference-Header-Content-Length); answers are JSON.",
                "tags": [name],
                "requestBody": _request_body(ref(oip.infer_request(sig), "validation")),
                "responses": {"200": _json_body(ref(InferResponse), "Output tensors."), **v2_errors, **unauthorized_v2},
                **security,
            }
        }
    paths |= {
        "/healthz": {"get": {"operationId": "healthz", "responses": {"200": _json_body(ref(Health), "Alive.")}}},
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "responses": {
                    "200": _json_body(ref(Readiness), "Every release's champion is loaded and verified."),
                    "503": _json_body(ref(Readiness), "Not ready: what is missing."),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "responses": {"200": {"description": "Prometheus text format.", "content": TEXT}},
            }
        },
        "/v2/health/live": {"get": {"operationId": "server_live", "responses": {"200": no_body}}},
        "/v2/health/ready": {"get": {"operationId": "server_ready", "responses": {"200": no_body, "400": not_ready}}},
        "/v2": {
            "get": {
                "operationId": "server_metadata",
                "responses": {"200": _json_body(ref(ServerMetadata), "The server's name, version and extensions.")},
            }
        },
    }
    components: dict[str, Any] = {"schemas": defs.get("$defs", {})}
    if protected:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "release-assets serve",
            "version": version,
            "description": "Published release units: /v1 (each release's own JSON) and the Open Inference Protocol "
            "(/v2, tensors). Generated from the pydantic models that validate every request.",
        },
        "paths": paths,
        "components": components,
    }
