"""/openapi.json: generated from the pydantic models that validate each request, and checked against the live
server by schemathesis (no 5xx; every answer, error or not, matches the document; what the document forbids is
refused)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from starlette.testclient import TestClient

from bench.support.fakes import TABLE_COLUMNS, FakeRelease
from bench.support.live import serving
from release_assets.serving.app import create_app
from release_assets.serving.schemas import ChainAnswer, ClassAnswer, ErrorBody

# Server errors, status codes and content types the document lists, bodies matching their schemas, and bodies the
# document forbids refused with a 4xx. (positive_data_acceptance is left out: a JSON schema cannot say that an
# inference request must hold every required input, nor that binary data adds up; those are refused as 422/400.)
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
    "negative_data_rejection"
)
MAX_EXAMPLES = 15  # per operation and phase: ~1,800 requests over the 21 operations in ~10 s


def releases() -> dict:
    return {
        "helpdesk": FakeRelease(),
        "iris": FakeRelease("iris", kind="classifier"),
        "loans": FakeRelease("loans", kind="table"),
    }


def schemathesis(base: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The schemathesis CLI against ``base``'s /openapi.json, bounded (examples per operation, a time limit)."""
    command = [str(Path(sys.executable).with_name("schemathesis")), "run", f"{base}/openapi.json"]
    command += ["--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--request-timeout", "10", *args]
    # cwd: hypothesis keeps its example database under the working directory
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(tmp_path):
    with serving(create_app(releases())) as base:
        started = time.monotonic()
        run = schemathesis(base, tmp_path)
        took = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert "21 selected / 21 total" in run.stdout and "generated" in run.stdout, run.stdout[-3000:]
    assert took < 60, f"schemathesis took {took:.0f} s"


def test_the_document_is_each_releases_models():
    doc = TestClient(create_app({**releases(), "kbqa": None})).get("/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    schemas = doc["components"]["schemas"]
    paths = doc["paths"]
    assert "/v1/kbqa/predict" not in paths  # not loaded: not described (it answers 503)
    body = paths["/v1/iris/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    iris = schemas[body["$ref"].rsplit("/", 1)[-1]]
    assert iris["additionalProperties"] is False and iris["required"] == ["features"]
    features = iris["properties"]["features"]
    assert (features["minItems"], features["maxItems"], features["items"]["maximum"]) == (4, 4, 1e6)
    row = schemas["LoansFeatures"]
    assert list(row["properties"]) == list(TABLE_COLUMNS)
    assert row["properties"]["age"] == {"type": "integer", "minimum": 18.0, "maximum": 120.0, "title": "Age"}
    assert row["properties"]["region"]["enum"] == ["north", "south"]
    assert set(row["required"]) == {"income", "age", "region", "member"}  # joined is nullable
    chain = schemas["ChainPredictRequest"]["properties"]["message"]
    assert (chain["minLength"], chain["maxLength"], chain["pattern"]) == (1, 4000, r"\S")
    answers = {
        p: paths[p]["post"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        for p in paths
        if "predict" in p
    }
    assert answers == {
        "/v1/helpdesk/predict": "#/components/schemas/ChainAnswer",
        "/v1/iris/predict": "#/components/schemas/ClassAnswer",
        "/v1/loans/predict": "#/components/schemas/ClassAnswer",
    }
    infer = paths["/v2/models/loans/infer"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert infer == "#/components/schemas/LoansInferRequest"
    age = schemas["LoansInput_age"]["properties"]
    assert age["shape"]["prefixItems"] == [{"const": 1, "type": "integer"}] and "INT64" in age["datatype"]["enum"]
    assert "security" not in paths["/v1/iris/predict"]["post"]


def test_the_document_needs_the_token_and_says_so():
    c = TestClient(create_app(releases(), token="s3cret"))
    assert c.get("/openapi.json").status_code == 401
    doc = c.get("/openapi.json", headers={"Authorization": "Bearer s3cret"}).json()
    assert doc["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    assert doc["paths"]["/v1/iris/predict"]["post"]["security"] == [{"bearer": []}]
    assert "401" in doc["paths"]["/v2/models/iris/infer"]["post"]["responses"]


def test_the_document_follows_a_new_champion():
    served = releases()
    c = TestClient(create_app(served))
    assert "/v1/iris/predict" in c.get("/openapi.json").json()["paths"]
    served["iris"] = None  # what serving/champion_watch.py does, in place, when a champion cannot be loaded
    assert "/v1/iris/predict" not in c.get("/openapi.json").json()["paths"]


def test_v1_answers_and_errors_are_the_documented_models():
    c = TestClient(create_app(releases()))
    ChainAnswer.model_validate(c.post("/v1/helpdesk/predict", json={"message": "refund"}).json())
    ClassAnswer.model_validate(c.post("/v1/iris/predict", json={"features": [5.1, 3.5, 1.4, 0.2]}).json())
    row = {"income": 52000, "age": 34.0, "region": "north", "member": False}  # 34.0: a whole number is an int
    ClassAnswer.model_validate(c.post("/v1/loans/predict", json={"features": row}).json())
    refused = c.post("/v1/loans/predict", json={"features": {**row, "age": 7}})
    assert refused.status_code == 422
    error = ErrorBody.model_validate(refused.json())
    assert (error.field, error.error) == ("features.age", "features.age: 7 is outside [18, 120]")
