"""A published release, loaded for serving: verified, cached per version, answering requests."""

import base64
import io
import json

import numpy as np
import pytest

from release_assets.record.ledger import promote
from release_assets.release.bundle import BundleError
from release_assets.release.store import LocalReleaseStore, StoreError
from release_assets.serving.loader import StepFailed, load_release
from release_assets.serving.requests import RequestError, image_to_digits
from release_assets_tests.conftest import REPO
from release_assets_tests.serving.published import publish_tiny


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    store, versions = publish_tiny(root)
    return LocalReleaseStore(store), versions, root / "cache"


def test_helpdesk_answers_a_message_with_the_chain_it_was_built_with(published):
    store, versions, cache = published
    loaded = load_release(store, "helpdesk", version=versions["helpdesk"], cache_dir=cache)
    assert loaded.manifest["members"]["chain"]["chain_file"] == "chain.yaml" == loaded.chain_file
    answer = loaded.predict({"message": "Where is my order 12345? I paid $49.99", "user_id": "u1"}, request_id="r1")
    assert answer["release"] == "helpdesk" and answer["version"] == versions["helpdesk"]
    assert answer["variant"] == "champion" and answer["request_id"] == "r1"
    assert answer["intent"] in loaded._predictors["intent_model"].labels
    assert 0 <= answer["confidence"] <= 1 and isinstance(answer["reply"], str) and answer["reply"]
    assert answer["entities"]["order_id"] == "12345"
    assert {"classify_intent", "extract_entities", "generate_response", "total"} <= set(answer["latency_ms"])
    assert isinstance(answer["escalate"], bool) and isinstance(answer["abstained"], bool)
    assert loaded.signature.kind == "chain"
    loaded.signature.answer.model_validate(answer)  # the answer /openapi.json documents (ChainAnswer)


def test_iris_answers_features_with_probabilities(published):
    store, versions, cache = published
    loaded = load_release(store, "iris", version=versions["iris"], cache_dir=cache)
    answer = loaded.predict({"features": [5.1, 3.5, 1.4, 0.2]})
    assert answer["label"] == "setosa"
    assert abs(sum(answer["probabilities"].values()) - 1) < 1e-4
    signature = loaded.signature
    assert (signature.kind, signature.n_features, signature.labels) == ("classifier", 4, tuple(answer["probabilities"]))
    signature.answer.model_validate(answer)  # ClassAnswer
    with pytest.raises(RequestError) as bad:
        loaded.predict({"features": [5.1, "x", 1.4, 0.2]})
    assert bad.value.field == "features[1]" and bad.value.status == 422


def test_kbqa_a_chain_with_other_step_names_answers_through_its_mapping(published):
    store, versions, cache = published
    loaded = load_release(store, "kbqa", version=versions["kbqa"], cache_dir=cache)
    answer = loaded.predict({"message": "How long do I have to send something back?"})
    assert isinstance(answer["reply"], str) and answer["reply"]
    loaded.signature.answer.model_validate(answer)
    assert set(answer["latency_ms"]) >= {"retrieve", "answer", "total"}


def test_aliases_follow_the_ledger(published):
    store, versions, cache = published
    with pytest.raises(StoreError, match="iris has no champion"):
        load_release(store, "iris", cache_dir=cache)
    assert load_release(store, "iris", alias="candidate", cache_dir=cache).version == versions["iris"]
    promote(store, "iris", versions["iris"], "alice", "serve it")
    assert load_release(store, "iris", cache_dir=cache).version == versions["iris"]


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ({}, "message"),
        ({"message": ""}, "message"),
        ({"message": 42}, "message"),
        ({"message": "hi", "attachment": {"digits": [[1] * 63]}}, "attachment.digits[0]"),
        ({"message": "hi", "attachment": {"url": "http://x"}}, "attachment"),
        ({"message": "hi", "surprise": 1}, "surprise"),
        (["not", "an", "object"], "<body>"),
    ],
)
def test_bad_requests_name_the_field(published, request_body, field):
    store, versions, cache = published
    loaded = load_release(store, "helpdesk", version=versions["helpdesk"], cache_dir=cache)
    with pytest.raises(RequestError) as bad:
        loaded.predict(request_body)
    assert bad.value.field == field and bad.value.status == 422


def test_a_tampered_bundle_is_refused_naming_the_file(tmp_path, published):
    store, versions, _ = published
    bundle = store.root / "releases" / "iris" / versions["iris"] / "bundle.tar.gz"
    original = bundle.read_bytes()
    try:
        data = bytearray(original)
        data[len(data) // 2] ^= 0xFF
        bundle.write_bytes(bytes(data))
        with pytest.raises(BundleError, match=str(bundle)):
            load_release(store, "iris", version=versions["iris"], cache_dir=tmp_path / "fresh")
    finally:
        bundle.write_bytes(original)


def test_an_edited_extracted_copy_is_refused_on_the_next_load(tmp_path, published):
    store, versions, _ = published
    cache = tmp_path / "cache"
    load_release(store, "iris", version=versions["iris"], cache_dir=cache)
    [model_file] = list((cache / "iris" / versions["iris"] / "files" / "classifier").glob("model.json"))
    model_file.write_text(json.dumps({**json.loads(model_file.read_text()), "intercept": [9, 9, 9]}))
    with pytest.raises(BundleError, match=r"model\.json: does not match the verified bundle"):
        load_release(store, "iris", version=versions["iris"], cache_dir=cache)


def _photo_of(digit_images: list[np.ndarray]) -> bytes:
    """Dark ink on white paper, each 8x8 digit drawn at 4x with white gaps: how a customer photographs a number."""
    from PIL import Image

    tiles = [np.kron(255 - img * 255 / 16, np.ones((4, 4))) for img in digit_images]
    gap = np.full((32, 6), 255.0)
    strip = np.hstack([gap, *[x for tile in tiles for x in (tile, gap)]])
    page = np.pad(strip, 10, constant_values=255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(page).save(out, format="PNG")
    return out.getvalue()


def test_a_photo_becomes_one_8x8_image_per_digit_as_the_digits_model_was_trained():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    digits = load_digits()
    read = image_to_digits(_photo_of(list(digits.images[:10])))
    assert len(read) == 10 and all(len(d) == 64 and min(d) >= 0 and max(d) <= 16 for d in read)
    for got, want in zip(read, digits.images[:10], strict=True):
        a, b = np.asarray(got, dtype=float), want.ravel()
        assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.8
    # A classifier trained on the other digits reads the photographed ones: the preprocessing matches training.
    model = LogisticRegression(max_iter=2000).fit(digits.data[10:], digits.target[10:])
    assert (model.predict(np.asarray(read)) == digits.target[:10]).sum() >= 8


def test_predict_reads_a_png_attachment(published):
    from sklearn.datasets import load_digits

    store, versions, cache = published
    loaded = load_release(store, "helpdesk", version=versions["helpdesk"], cache_dir=cache)
    images = load_digits().images[:5]
    photo = base64.b64encode(_photo_of(list(images))).decode()
    answer = loaded.predict({"message": "Here is the photo of my order number", "attachment": {"image_b64": photo}})
    assert answer["entities"].get("order_id") is not None and len(answer["entities"]["order_id"]) == 5
    with pytest.raises(RequestError) as bad:
        loaded.predict({"message": "photo", "attachment": {"image_b64": base64.b64encode(b"not an image").decode()}})
    assert bad.value.status == 400 and bad.value.field == "attachment.image_b64"


def test_a_failing_step_is_reported_as_a_step_failure(published, monkeypatch):
    store, versions, cache = published
    loaded = load_release(store, "helpdesk", version=versions["helpdesk"], cache_dir=cache)
    from release_assets.chains import bindings

    def broken(*args, **kwargs):
        raise RuntimeError("model exploded")

    monkeypatch.setattr(bindings, "extract", broken)
    with pytest.raises((StepFailed, RuntimeError), match="model exploded"):
        loaded.predict({"message": "Where is my order 12345?"})


def test_the_golden_run_is_traced_with_the_same_spans_as_serving(published):
    store, _, _ = published
    [path] = list(store.root.glob("artifacts/helpdesk/chain_evaluation/*/traces.jsonl"))
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    cases = [s for s in spans if s["parent_id"] is None]
    golden = (REPO / "data" / "golden" / "helpdesk.jsonl").read_text().splitlines()
    assert len(cases) == len([line for line in golden if line.strip()])
    steps = {s["name"] for s in spans if s["parent_id"] is not None}
    assert {"classify_intent", "extract_entities", "generate_response"} <= steps
    assert all(s["attributes"]["openinference.span.kind"] == "CHAIN" for s in cases)
    assert '"golden_sha256"' in cases[0]["attributes"]["metadata"]
    import re

    # The golden suite has order ids and emails; none may reach a trace's inputs or outputs.
    texts = " ".join(str(s["attributes"].get(k, "")) for s in spans for k in ("input.value", "output.value"))
    assert "[REDACTED]" in texts
    assert not re.search(r"[\w.+-]+@[\w-]+\.[a-z]{2,}", texts)
    assert not re.search(r"\b\d{5}\b", texts)


def test_inputs_that_used_to_reach_a_500_are_refused_by_field():
    from release_assets.serving.requests import parse_chain_request, parse_features

    with pytest.raises(RequestError) as bad:
        parse_chain_request({"message": "\ud800 hello"})
    assert (bad.value.field, bad.value.status) == ("message", 422)
    with pytest.raises(RequestError) as bad:
        parse_features({"features": [1e308, -1e308, 1e308, 1e308]}, 4)
    assert (bad.value.field, bad.value.status) == ("features[0]", 422)


def test_an_image_bomb_is_refused_before_it_is_decoded():
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (5000, 5000), 255).save(out, format="PNG")  # 25 MP of white: tiny as a PNG
    assert len(out.getvalue()) < 200_000
    with pytest.raises(RequestError) as bad:
        image_to_digits(out.getvalue())
    assert bad.value.status == 400 and "pixels" in str(bad.value)
    gif = io.BytesIO()
    Image.new("L", (40, 20), 255).save(gif, format="GIF")
    with pytest.raises(RequestError, match="not a readable PNG or JPEG"):
        image_to_digits(gif.getvalue())


def test_a_template_edited_after_loading_is_never_served(tmp_path, published):
    store, versions, _ = published
    cache = tmp_path / "cache"
    loaded = load_release(store, "helpdesk", version=versions["helpdesk"], cache_dir=cache)
    before = loaded.predict({"message": "I want a refund for order 12345"})["reply"]
    for template in (cache / "helpdesk" / versions["helpdesk"] / "files" / "chain" / "chain").rglob("*.j2"):
        template.write_text("INJECTED {{ message }}")
    after = loaded.predict({"message": "I want a refund for order 12345"})["reply"]
    assert "INJECTED" not in after and after == before
    with pytest.raises(BundleError, match="does not match the verified bundle"):
        load_release(store, "helpdesk", version=versions["helpdesk"], cache_dir=cache)


def test_a_cached_copy_of_another_version_or_with_extra_files_is_refused(tmp_path, published):
    import shutil

    store, versions, _ = published
    cache = tmp_path / "cache"
    load_release(store, "iris", version=versions["iris"], cache_dir=cache)
    extracted = cache / "iris" / versions["iris"]
    (extracted / "files" / "classifier" / "extra.py").write_text("print('not in the bundle')")
    with pytest.raises(BundleError, match=r"extra\.py: not in the verified bundle"):
        load_release(store, "iris", version=versions["iris"], cache_dir=cache)
    (extracted / "files" / "classifier" / "extra.py").unlink()
    # A copy of one version's folder under another version's name vouches for the wrong version.
    other = "0123456789abcdef"
    shutil.copytree(extracted, cache / "iris" / other)
    from release_assets.serving.loader import _extract

    with pytest.raises(BundleError, match=f"not {other}"):
        _extract(store, "iris", other, cache)


def test_a_batch_of_helpdesk_requests_answers_each_as_predict_alone_would(published):
    """predict_many runs the chain once over every request; each answer (or error) is the one predict gives that
    request alone, in order, even when two requests share an id or one of them is refused."""
    from release_assets.serving.requests import PredictCall

    store, versions, cache = published
    loaded = load_release(store, "helpdesk", version=versions["helpdesk"], cache_dir=cache)
    assert loaded.batchable
    messages = [
        {"message": "Where is my order 12345? I paid $49.99", "user_id": "u1"},
        {"message": "I want a refund for my blender"},
        {"note": "no message at all"},  # refused: RequestError, for this request only
        {"message": "How do I reset my password?"},
        {"message": "I want a refund for my blender"},
    ]
    calls = [
        PredictCall(m, "canary" if i % 2 else "champion", "same-id" if i < 2 else f"r{i}")
        for i, m in enumerate(messages)
    ]
    answers = loaded.predict_many(calls)
    assert len(answers) == len(calls) and isinstance(answers[2], RequestError)
    for call, answer in zip(calls, answers, strict=True):
        if isinstance(answer, Exception):
            with pytest.raises(RequestError):
                loaded.predict(call.request, variant=call.variant, request_id=call.request_id)
            continue
        alone = loaded.predict(call.request, variant=call.variant, request_id=call.request_id)
        assert set(answer) == set(alone) and set(answer["latency_ms"]) == set(alone["latency_ms"])
        # A batch pads each message to the longest: the same logits up to float rounding, so the same decisions.
        assert answer["confidence"] == pytest.approx(alone["confidence"], abs=1e-5)
        skip = {"latency_ms", "confidence"}
        assert {k: v for k, v in answer.items() if k not in skip} == {k: v for k, v in alone.items() if k not in skip}
    assert answers[0]["entities"]["order_id"] == "12345" and answers[1]["variant"] == "canary"


def test_a_step_failing_for_one_request_of_a_batch_fails_that_request_alone(published, monkeypatch):
    from release_assets.serving.requests import PredictCall

    store, versions, cache = published
    loaded = load_release(store, "helpdesk", version=versions["helpdesk"], cache_dir=cache)
    runner = loaded._runner
    real_run = runner.run

    def run(requests, observer=None):  # the second request's reply step fails validation
        results = real_run(requests, observer=observer)
        results[1].errors["generate_response"] = "reply: field required"
        return results

    monkeypatch.setattr(runner, "run", run)
    calls = [PredictCall({"message": f"refund please {i}"}, "champion", f"r{i}") for i in range(3)]
    first, failed, last = loaded.predict_many(calls)
    assert (
        isinstance(failed, StepFailed)
        and "request r1" in str(failed)
        and failed.errors == {"generate_response": "reply: field required"}
    )
    assert first["request_id"] == "r0" and last["request_id"] == "r2"


def test_iris_is_not_batched_and_answers_each_call_through_predict(published):
    from release_assets.serving.requests import PredictCall

    store, versions, cache = published
    loaded = load_release(store, "iris", version=versions["iris"], cache_dir=cache)
    assert not loaded.batchable
    good, bad = loaded.predict_many(
        [
            PredictCall({"features": [5.1, 3.5, 1.4, 0.2]}, "champion", "a"),
            PredictCall({"features": []}, "champion", "b"),
        ]
    )
    assert good == loaded.predict({"features": [5.1, 3.5, 1.4, 0.2]}, request_id="a")
    assert isinstance(bad, RequestError)


def test_a_model_that_raises_for_a_batch_fails_only_the_request_that_makes_it_raise(published, monkeypatch):
    from release_assets.serving.requests import PredictCall

    store, versions, cache = published
    loaded = load_release(store, "helpdesk", version=versions["helpdesk"], cache_dir=cache)
    runner = loaded._runner
    real_run = runner.run

    def run(requests, observer=None):  # a binding that raises on one message, taking its whole batch with it
        if any("boom" in r.message for r in requests):
            raise ValueError("the tokenizer choked")
        return real_run(requests, observer=observer)

    monkeypatch.setattr(runner, "run", run)
    calls = [PredictCall({"message": m}, "champion", f"r{i}") for i, m in enumerate(["refund please", "boom", "hi"])]
    first, failed, last = loaded.predict_many(calls)
    assert isinstance(failed, ValueError) and str(failed) == "the tokenizer choked"
    assert first["request_id"] == "r0" and last["request_id"] == "r2"
    assert first == {**loaded.predict({"message": "refund please"}, request_id="r0"), "latency_ms": first["latency_ms"]}
