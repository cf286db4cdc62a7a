"""The Open Inference Protocol (v2) routes: Triton's own HTTP client against a live server, and the v2 request going
down the very path /v1 takes (routing, shadow, metrics, traces), with its errors named by input."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from bench.support.fakes import EXPLODE, FakeRelease, FakeRouter, FakeShadow, FakeTracing
from bench.support.live import serving
from release_assets.serving.app import create_app
from release_assets.serving.metrics import PREFIX, ServingMetrics

INFER = "/v2/models/{}/infer"
FLOWER = [5.1, 3.5, 1.4, 0.2]
ROW = {"income": 52000.0, "age": 34, "region": "north", "member": True}


def releases() -> dict:
    return {
        "helpdesk": FakeRelease(),
        "iris": FakeRelease("iris", kind="classifier"),
        "loans": FakeRelease("loans", kind="table"),
    }


def tensor(name: str, datatype: str, data: list, shape: list[int] | None = None) -> dict:
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


def flower(data: list | None = None, **extra) -> dict:
    return {"inputs": [tensor("features", "FP32", data or FLOWER, [1, 4])], **extra}


def count(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def auth() -> dict[str, str]:
    # A new dict per call: tritonclient writes Inference-Header-Content-Length into the headers it is given.
    return {"Authorization": "Bearer t0ken"}


def test_tritonclient_against_the_live_server():
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    metrics = ServingMetrics()
    app = create_app(releases(), metrics=metrics, token="t0ken")
    with serving(app) as base:
        client = triton.InferenceServerClient(url=base.removeprefix("http://"), network_timeout=10)
        try:
            assert client.is_server_live() and client.is_server_ready()  # health stays open
            assert client.get_server_metadata()["name"] == "release_assets"
            assert client.is_model_ready("iris", headers=auth()) and not client.is_model_ready("iris")  # 401: false
            meta = client.get_model_metadata("iris", headers=auth())
            assert meta["inputs"][0] == {"name": "features", "datatype": "FP32", "shape": [1, 4]}
            assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities", "classes"]

            # The client's defaults: binary tensor data in, binary outputs asked for (answered as JSON).
            features = triton.InferInput("features", [1, 4], "FP32")
            features.set_data_from_numpy(np.asarray([FLOWER], dtype=np.float32))
            result = client.infer("iris", [features], headers=auth(), request_id="req-7")
            assert result.as_numpy("label").tolist() == ["setosa"]
            assert result.as_numpy("probabilities").shape == (1, 3)
            assert result.as_numpy("classes").tolist() == ["setosa", "versicolor", "virginica"]
            response = result.get_response()
            assert response["id"] == "req-7" and response["parameters"] == {
                "variant": "champion",
                "request_id": "req-7",
            }

            # JSON tensors, an FP64 array for the FP32 input, and only the output asked for.
            features = triton.InferInput("features", [1, 4], "FP64")
            features.set_data_from_numpy(np.asarray([[6.1, 2.8, 4.7, 1.2]]), binary_data=False)
            only = [triton.InferRequestedOutput("label", binary_data=False)]
            result = client.infer("iris", [features], outputs=only, headers=auth())
            assert [o["name"] for o in result.get_response()["outputs"]] == ["label"]
            assert result.as_numpy("label").tolist() == ["versicolor"]

            message = triton.InferInput("message", [1], "BYTES")
            message.set_data_from_numpy(np.asarray(["I want a refund for order 12345"], dtype=object))
            user = triton.InferInput("user_id", [1], "BYTES")
            user.set_data_from_numpy(np.asarray([b"u-42"], dtype=object), binary_data=False)
            result = client.infer("helpdesk", [message, user], headers=auth())
            assert result.as_numpy("intent").tolist() == ["refund"]
            assert result.as_numpy("escalate").tolist() == [False]
            assert json.loads(result.as_numpy("latency_ms")[0])["total"] == 2.0

            columns = []
            for name, (datatype, value) in {
                "income": ("FP64", 52000.0),
                "age": ("INT64", 34),
                "region": ("BYTES", "north"),
                "member": ("BOOL", True),
            }.items():  # joined is nullable: left out
                column = triton.InferInput(name, [1], datatype)
                column.set_data_from_numpy(np.asarray([value], dtype=object if datatype == "BYTES" else None))
                columns.append(column)
            result = client.infer("loans", columns, headers=auth())
            assert result.as_numpy("label").tolist() == ["approve"]

            age = triton.InferInput("age", [1], "INT64")
            age.set_data_from_numpy(np.asarray([7], dtype=np.int64))
            with pytest.raises(InferenceServerException) as refused:
                client.infer("loans", [columns[0], age, *columns[2:]], headers=auth())
            assert refused.value.status() == "422" and refused.value.message() == "age: 7 is outside [18, 120]"
            with pytest.raises(InferenceServerException) as refused:
                client.infer("nope", [age], headers=auth())
            assert refused.value.status() == "404" and "known: helpdesk, iris, loans" in refused.value.message()
            with pytest.raises(InferenceServerException) as refused:
                client.infer("iris", [features])
            assert refused.value.status() == "401"
        finally:
            client.close()
    text = metrics.render().decode()
    iris = {"release": "iris", "version": "v1", "variant": "champion"}
    assert count(text, f"{PREFIX}_requests_total", **iris, status_class="2xx") == 2
    assert count(text, f"{PREFIX}_requests_total", release="loans", status_class="4xx") == 1
    assert count(text, f"{PREFIX}_intents_total", release="helpdesk", intent="refund") == 1


def test_v2_goes_down_the_v1_path_routing_shadow_traces_metrics():
    router, shadow, tracing, metrics = (
        FakeRouter("canary", "v2", shadow_version="v3"),
        FakeShadow(),
        FakeTracing(),
        ServingMetrics(),
    )
    loaded = []

    def load(release, version):
        loaded.append(version)
        return FakeRelease(release, version)

    app = create_app(releases(), router=router, shadow=shadow, tracing=tracing, metrics=metrics, loader=load)
    app.state.versions.preload("helpdesk", "v2")  # as serve's version keeper does before any user reaches it
    c = TestClient(app)
    body = {"id": "t-1", "inputs": [tensor("message", "BYTES", ["refund please"]), tensor("user_id", "BYTES", ["u-9"])]}
    r = c.post(INFER.format("helpdesk"), json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["model_version"], out["parameters"]["variant"], out["id"]) == ("v2", "canary", "t-1")
    assert r.headers["x-request-id"] == "t-1" == out["parameters"]["request_id"]
    assert router.keys == ["u-9"] and loaded == ["v2"]
    payload = {"message": "refund please", "user_id": "u-9"}  # what /v1 would have been sent
    [(release, answer, request, version)] = shadow.submitted
    assert (release, request, version) == ("helpdesk", payload, "v3") and answer["intent"] == "refund"
    [span] = tracing.spans
    assert span["args"] == ("helpdesk", "v2", "canary", "t-1", "chain") and span["input"] == payload
    text = c.get("/metrics").text
    labels = {"release": "helpdesk", "version": "v2", "variant": "canary"}
    assert count(text, f"{PREFIX}_requests_total", **labels, status_class="2xx") == 1
    assert count(text, f"{PREFIX}_shadow_submitted_total", release="helpdesk", shadow_version="v3") == 1


def test_without_a_user_id_the_same_tensors_route_alike_whatever_their_id_or_encoding():
    router = FakeRouter()
    c = TestClient(create_app(releases(), router=router))
    assert c.post(INFER.format("iris"), json=flower(id="a")).status_code == 200
    assert c.post(INFER.format("iris"), json=flower(id="b")).status_code == 200
    header = json.dumps(
        {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}]}
    ).encode()
    binary = np.asarray(FLOWER, dtype="<f4").tobytes()
    headers = {"Inference-Header-Content-Length": str(len(header))}
    assert c.post(INFER.format("iris"), content=header + binary, headers=headers).status_code == 200
    as_sent = json.dumps({"features": FLOWER}, sort_keys=True, separators=(",", ":"))
    float32 = [float(x) for x in np.asarray(FLOWER, dtype=np.float32)]  # what FP32 binary data holds
    as_binary = json.dumps({"features": float32}, sort_keys=True, separators=(",", ":"))
    assert router.keys == [hashlib.sha256(as_sent.encode()).hexdigest()] * 2 + [
        hashlib.sha256(as_binary.encode()).hexdigest()
    ]


def _bytes_tensor(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(x)) + x for x in items)


@pytest.mark.parametrize(
    ("name", "body", "status", "error"),
    [
        ("iris", flower([5.1, "x", 1.4, 0.2]), 422, "inputs[0].features.data[1]: must be a finite number"),
        ("iris", flower([5.1, 1e9, 1.4, 0.2]), 422, "features[1]: 1e+09 is outside [-1e+06, 1e+06]"),
        (
            "iris",
            {"inputs": [tensor("features", "FP32", FLOWER * 2, [2, 4])]},
            422,
            "inputs[0].features.shape[0]: 2: expected 1",
        ),
        (
            "iris",
            {"inputs": [tensor("petals", "FP32", FLOWER, [1, 4])]},
            422,
            "inputs[0]: 'petals' is not one of 'features', 'user_id'",
        ),
        ("iris", {"inputs": [tensor("features", "BYTES", ["a"] * 4, [1, 4])]}, 422, "inputs[0].features.datatype"),
        ("iris", {"inputs": []}, 422, "inputs: expected"),
        ("iris", flower(outputs=[{"name": "logits"}]), 422, "outputs[0].name: 'logits': expected 'label'"),
        ("iris", flower(surprise=1), 422, "surprise: unknown field(s) ['surprise']"),
        ("iris", {"inputs": [tensor("features", "FP32", FLOWER, [1, 4])] * 2}, 422, "features: given twice"),
        ("helpdesk", {"inputs": [tensor("user_id", "BYTES", ["u"])]}, 422, "message: missing (required)"),
        ("helpdesk", {"inputs": [tensor("message", "BYTES", ["   "])]}, 422, "message: must not be empty"),
        (
            "helpdesk",
            {"inputs": [tensor("message", "BYTES", ["hi"]), tensor("digits", "INT32", [1] * 63 + [17], [1, 64])]},
            422,
            "digits[0][63]: 17 is outside [0, 16]",
        ),
        (
            "helpdesk",
            {"inputs": [tensor("message", "BYTES", ["hi"]), tensor("digits", "INT32", [1] * 60, [1, 64])]},
            422,
            "digits: shape [1, 64] holds 64 values, data has 60",
        ),
        (
            "helpdesk",
            {
                "inputs": [
                    tensor("message", "BYTES", ["hi"]),
                    tensor("digits", "INT32", [1] * 64, [1, 64]),
                    tensor("image_b64", "BYTES", ["AA=="]),
                ]
            },
            422,
            "digits: give image_b64 or digits, not both",
        ),
        ("loans", {"inputs": [tensor("income", "FP64", [1.0])]}, 422, "age: missing (the column is not nullable)"),
        (
            "loans",
            {
                "inputs": [
                    tensor("income", "FP64", [1.0]),
                    tensor("age", "FP64", [34.5]),
                    tensor("region", "BYTES", ["north"]),
                    tensor("member", "BOOL", [True]),
                ]
            },
            422,
            "age: must be a whole number",
        ),
        ("loans", {"inputs": [tensor("joined", "BYTES", ["last tuesday"])]}, 422, "income: missing"),
        (
            "helpdesk",
            {"inputs": [tensor("message", "BYTES", [f"refund {EXPLODE}"])]},
            500,
            "prediction failed (StepFailed)",
        ),
    ],
)
def test_v2_errors_name_the_input(name, body, status, error):
    r = TestClient(create_app(releases())).post(INFER.format(name), json=body)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"} and r.json()["error"].startswith(error), r.json()
    assert r.headers["x-request-id"]


@pytest.mark.parametrize(
    ("header", "body", "extra_headers", "status", "error"),
    [
        (
            {"inputs": [{"name": "message", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}}]},
            _bytes_tensor(b"hi"),
            {},
            200,
            "",
        ),
        (
            {"inputs": [{"name": "message", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 9}}]},
            _bytes_tensor(b"hi"),
            {},
            400,
            "message: binary_data_size 9 does not fit the 6 bytes sent",
        ),
        (
            {"inputs": [{"name": "message", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}}]},
            _bytes_tensor(b"hi") + b"??",
            {},
            400,
            "<body>: 2 bytes of binary data belong to no input",
        ),
        (
            {"inputs": [{"name": "message", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}}]},
            _bytes_tensor(b"\xff\xfe"),
            {},
            422,
            "message: not UTF-8 text",
        ),
        (
            {"inputs": [{"name": "message", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 5}}]},
            struct.pack("<I", 9) + b"h",
            {},
            400,
            "message: BYTES data cut short",
        ),
        (
            {"inputs": [{"name": "message", "datatype": "BYTES", "shape": [1]}]},
            b"",
            {},
            422,
            "inputs[0].message: no data",
        ),
        (
            {"inputs": []},
            b"",
            {"Inference-Header-Content-Length": "999"},
            400,
            "invalid Inference-Header-Content-Length",
        ),
        ({"inputs": []}, b"", {"content-type": "text/plain"}, 415, "expected Content-Type"),
        ({"inputs": []}, b"", {"content-encoding": "gzip"}, 415, "compressed request bodies"),
    ],
)
def test_binary_tensor_data_and_what_is_refused_before_it(header, body, extra_headers, status, error):
    raw = json.dumps(header).encode()
    headers = {"Inference-Header-Content-Length": str(len(raw)), **extra_headers}
    r = TestClient(create_app(releases())).post(INFER.format("helpdesk"), content=raw + body, headers=headers)
    assert r.status_code == status, r.text
    assert error in r.json().get("error", "") if error else r.json()["outputs"]


def test_v2_body_limit_unknown_and_unloaded_models_and_the_token():
    c = TestClient(create_app({**releases(), "kbqa": None}, max_body=1024, token="s3cret"))
    token = {"Authorization": "Bearer s3cret"}
    assert c.post(INFER.format("iris"), content=b"x" * 4096, headers=token).status_code == 413
    r = c.post(INFER.format("nope"), json=flower(), headers=token)
    assert (r.status_code, r.json()) == (404, {"error": "unknown model 'nope' (known: helpdesk, iris, kbqa, loans)"})
    assert c.post(INFER.format("kbqa"), json=flower(), headers=token).status_code == 503
    assert c.get("/v2/models/kbqa/ready", headers=token).status_code == 400  # not ready: a 4xx, no body
    assert c.get("/v2/models/kbqa", headers=token).status_code == 503
    assert c.get("/v2/health/ready").status_code == 400 and c.get("/v2/health/live").status_code == 200
    for path in ("/v2/models/iris", "/v2/models/iris/ready", "/v2/models/nope", "/openapi.json"):
        assert c.get(path).status_code == 401, path  # not even which models exist
        assert c.get(path, headers=token).status_code in (200, 404), path
    r = c.post(INFER.format("nope"), json=flower())
    assert (r.status_code, r.headers["www-authenticate"]) == (401, "Bearer")


def test_metadata_follows_each_kind():
    c = TestClient(create_app(releases()))
    chain = c.get("/v2/models/helpdesk").json()
    assert chain["platform"] == "release_assets_chain"
    assert [(t["name"], t["datatype"], t["shape"]) for t in chain["inputs"]] == [
        ("message", "BYTES", [1]),
        ("user_id", "BYTES", [1]),
        ("image_b64", "BYTES", [1]),
        ("digits", "INT32", [-1, 64]),
    ]
    assert [t["name"] for t in chain["outputs"]] == [
        "intent", "confidence", "entities", "reply", "escalate", "abstained", "latency_ms",
    ]  # fmt: skip
    table = c.get("/v2/models/loans").json()
    assert [(t["name"], t["datatype"]) for t in table["inputs"]] == [
        ("income", "FP64"),
        ("age", "INT64"),
        ("region", "BYTES"),
        ("member", "BOOL"),
        ("joined", "BYTES"),
        ("user_id", "BYTES"),
    ]
    assert c.get("/v2").json()["extensions"] == []


def test_a_chain_answer_drops_the_outputs_its_mapping_leaves_unset():
    release = FakeRelease()
    plain = release.predict
    release.predict = lambda request, **kw: {**plain(request, **kw), "intent": None, "confidence": None}
    r = TestClient(create_app({"helpdesk": release})).post(
        INFER.format("helpdesk"), json={"inputs": [tensor("message", "BYTES", ["what are your hours?"])]}
    )
    assert r.status_code == 200 and "intent" not in [o["name"] for o in r.json()["outputs"]]


def test_an_answer_that_is_not_its_tensors_is_a_counted_500():
    release, metrics = FakeRelease("iris", kind="classifier"), ServingMetrics()
    release.predict = lambda request, **kw: {"label": 3, "probabilities": {"a": 1.0}, "version": "v1"}
    c = TestClient(create_app({"iris": release}, metrics=metrics))
    r = c.post(INFER.format("iris"), json=flower())
    assert (r.status_code, r.json()) == (500, {"error": "prediction failed (TypeError)"})
    assert count(metrics.render().decode(), f"{PREFIX}_errors_total", release="iris", error="TypeError") == 1
