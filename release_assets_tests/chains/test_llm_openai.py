"""llm:openai against a real HTTP server on 127.0.0.1: retries, schema repair, cache, accounting, key hygiene."""

import json
import logging
import shutil
from pathlib import Path

import pytest
import yaml

from release_assets.chains import llm
from release_assets.chains.build import build_chain
from release_assets.chains.knowledge import load_knowledge_base
from release_assets.chains.runner import ChainRequest, ChainRunner
from release_assets.chains.spec import load_chain
from release_assets.evaluation.chain_evaluation import build_chain_evaluation
from release_assets.evaluation.golden import evaluate, score
from release_assets_tests.chains.llm_fakes import FakeLLM, serve
from release_assets_tests.fakes import KeywordIntents, PixelSumDigits

REPO = Path(__file__).resolve().parents[2]
KB = REPO / "data" / "support" / "knowledge_base.yaml"
KEY = "sk-test-V3ry-S3cret-0123456789"
KEY_ENV = "RELEASE_ASSETS_TEST_LLM_KEY"
VARIANT = "chain.test.yaml"
LLM_STEPS = ("extract_entities", "generate_response")


@pytest.fixture
def server():
    with serve(FakeLLM()) as fake:
        yield fake


@pytest.fixture
def chain_dir(tmp_path, server, monkeypatch) -> Path:
    """The shipped chain.llm.yaml, pointed at the fake server with test-sized timeouts."""
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.delenv(llm.CACHE_ENV, raising=False)
    target = tmp_path / "helpdesk"
    shutil.copytree(REPO / "prompts" / "helpdesk", target)
    write_variant(target, server.base_url)
    return target


def write_variant(chain_dir: Path, base_url: str, **overrides) -> None:
    data = yaml.safe_load((chain_dir / "chain.llm.yaml").read_text())
    for step in data["steps"]:
        if step["binding"].startswith("llm:"):
            step["llm"].update(
                base_url=base_url,
                api_key_env=KEY_ENV,
                timeout_s=0.5,
                backoff_s=0.01,
                max_retries=2,
                concurrency=2,
                **overrides,
            )
    (chain_dir / VARIANT).write_text(yaml.safe_dump(data, sort_keys=False))


def _runner(chain_dir: Path, cache_dir: Path | None = None) -> ChainRunner:
    predictors = {"intent_model": KeywordIntents(), "vision_model": PixelSumDigits()}
    spec, schemas = load_chain(chain_dir, {k: v.labels for k, v in predictors.items()}, VARIANT)
    return ChainRunner(spec, schemas, predictors, load_knowledge_base(KB), llm_cache_dir=cache_dir)


def _case(case_id: str, message: str, intent: str = "refund", **entities) -> dict:
    return {
        "id": case_id,
        "message": message,
        "expected": {"intent": intent, "entities": entities},
        "must_contain": ["30 days"],
        "must_not_contain": ["guarantee"],
    }


CASES = [
    _case(
        "a",
        "I want a refund of $49.99 for order 12345, mail me at jo.doe@example.com",
        "refund",
        order_id="12345",
        amount=49.99,
        email="jo.doe@example.com",
    ),
    _case("b", "refund please for 54321", "refund", order_id="54321"),
    _case("c", "I need a refund, no order number", "refund"),
]


def test_happy_path_extracts_replies_and_accounts_tokens(chain_dir, server):
    summary, results = evaluate(_runner(chain_dir), CASES)
    assert all(r.format_valid for r in results), [r.errors for r in results]
    a = results[0].outputs
    assert a["extract_entities"] == {
        "order_id": "12345",
        "email": "jo.doe@example.com",
        "product": None,
        "amount": 49.99,
        "date": None,
    }
    assert "order 12345" in a["generate_response"]["reply"] and a["generate_response"]["escalate"] is False
    m = summary["metrics"]
    assert m["format_valid"] == 1.0 and m["entity_f1"] == 1.0 and m["required_facts"] == 1.0
    assert m["llm_calls"] == 6 and m["cache_hits"] == 0 and server.count() == 6  # no extra latency re-runs
    assert m["tokens_in"] > 0 and m["tokens_out"] > 0
    assert m["cost_usd"] == pytest.approx((m["tokens_in"] * 0.00015 + m["tokens_out"] * 0.0006) / 1000)
    assert m["p95_ms"] > 0
    assert set(summary["llm_steps"]) == set(LLM_STEPS)
    # The schema went out as a JSON-schema response_format; the rendered prompt carried the KB facts.
    extract_req = next(r for r in server.requests if "Extract the entities" in r["messages"][0]["content"])
    rf = extract_req["response_format"]
    assert rf["type"] == "json_schema" and set(rf["json_schema"]["schema"]["properties"]) >= {"order_id", "amount"}
    reply_req = next(r for r in server.requests if "customer support agent" in r["messages"][0]["content"])
    assert "Refunds are accepted within 30 days" in reply_req["messages"][0]["content"]
    assert extract_req["temperature"] == 0.0 and extract_req["model"] == "gpt-4o-mini"
    assert set(server.auth) == {f"Bearer {KEY}"}
    # Per-case, per-step accounting and one trace per call.
    usage = results[0].usage["extract_entities"]
    assert usage["llm_calls"] == 1 and usage["tokens_in"] > 0 and usage["latency_ms"] > 0
    assert (
        results[0].usage["classify_intent"]["latency_ms"] >= 0
        and "tokens_in" not in results[0].usage["classify_intent"]
    )
    assert [t["step"] for t in results[0].traces] == list(LLM_STEPS)


def test_classify_step_on_an_llm_answers_an_enum(chain_dir, server):
    (chain_dir / "classify_intent.llm.j2").write_text(
        'Classify the customer message. Answer JSON {"intent": ..., "confidence": ...}.\n\n'
        "Customer message:\n{{ message }}\n"
    )
    data = yaml.safe_load((chain_dir / VARIANT).read_text())
    data["steps"][0].update(
        binding="llm:openai",
        template="classify_intent.llm.j2",
        llm={"model": "m", "base_url": server.base_url, "schema_retries": 0, "backoff_s": 0.01},
    )
    (chain_dir / VARIANT).write_text(yaml.safe_dump(data, sort_keys=False))
    ok, alien = _runner(chain_dir).run([ChainRequest("r", "refund 12345"), ChainRequest("x", "ALIEN refund")])
    assert ok.outputs["classify_intent"] == {"intent": "refund", "confidence": 0.9}
    assert "classify_intent" in alien.errors and alien.errors["classify_intent"].startswith("schema: intent")
    classify_req = next(r for r in server.requests if "Classify" in r["messages"][0]["content"])
    enum = classify_req["response_format"]["json_schema"]["schema"]["properties"]["intent"]["enum"]
    assert enum == KeywordIntents.labels


def test_429_then_success(chain_dir, server, caplog):
    with caplog.at_level(logging.WARNING, logger="release_assets.chains.llm"):
        [res] = _runner(chain_dir).run([ChainRequest("r", "RATE refund for 12345")])
    assert res.format_valid, res.errors
    assert server.count("RATE") == 4  # each step's prompt: a 429, then a 200
    assert "llm extract_entities: HTTP 429; retry 1/2" in caplog.text
    assert res.usage["extract_entities"]["llm_calls"] == 1


def test_timeout_then_success(chain_dir, server, caplog):
    with caplog.at_level(logging.WARNING, logger="release_assets.chains.llm"):
        [res] = _runner(chain_dir).run([ChainRequest("s", "SLOW refund for 12345")])
    assert res.format_valid, res.errors
    assert res.outputs["extract_entities"]["order_id"] == "12345"
    assert "timeout after 0.5s; retry 1/2" in caplog.text


def test_malformed_json_is_repaired_on_the_schema_retry(chain_dir, server):
    [res] = _runner(chain_dir).run([ChainRequest("m", "BROKEN refund for 12345")])
    assert res.format_valid, res.errors
    assert res.outputs["extract_entities"]["order_id"] == "12345"
    assert res.usage["extract_entities"]["llm_calls"] == 2
    first, second = [t for t in res.traces if t["step"] == "extract_entities"]
    assert first["error"] == "the answer is not a JSON object" and second["error"] is None
    follow_up = second["messages"]
    assert [m["role"] for m in follow_up] == ["user", "assistant", "user"]
    assert "did not match the required format: the answer is not a JSON object" in follow_up[2]["content"]


def test_never_valid_output_is_a_format_failure(chain_dir, server):
    cases = [_case("n", "NEVER refund 12345", order_id="12345"), CASES[1]]
    results = _runner(chain_dir).run([ChainRequest(c["id"], c["message"]) for c in cases])
    err = results[0].errors["extract_entities"]
    assert err.startswith("schema: amount: ") and "after 2 attempt(s)" in err
    assert "generate_response" not in results[0].outputs  # later steps skip a failed case
    summary = score(cases, results)
    assert summary["metrics"]["format_valid"] == 0.5
    assert "format: extract_entities: schema" in summary["examples"][0]["problems"]


def test_api_key_never_in_logs_traces_errors_or_reprs(chain_dir, server, caplog):
    runner = _runner(chain_dir)
    with caplog.at_level(logging.DEBUG):  # every logger, httpx and httpcore included
        results = runner.run(
            [ChainRequest("k", "LEAK my email is jo@example.com"), ChainRequest("r", "RATE refund for 12345")]
        )
    assert server.auth and all(a == f"Bearer {KEY}" for a in server.auth)  # the key was really sent
    leak = results[0].errors["extract_entities"]
    assert leak.startswith("llm: HTTP 401") and "[REDACTED]" in leak and KEY not in leak
    assert "jo@example.com" not in leak  # redact: [email] covers error text too
    dumped = json.dumps([r.traces for r in results]) + json.dumps([r.errors for r in results])
    assert KEY not in dumped and KEY not in caplog.text
    backend = llm.make_backend(runner.spec.step("extract_entities"))
    assert KEY not in repr(backend) and KEY not in repr(backend.__dict__) and KEY not in str(vars(backend))
    # A key written into the chain file is refused, and the refusal does not repeat it.
    data = yaml.safe_load((chain_dir / VARIANT).read_text())
    data["steps"][1]["llm"]["api_key"] = KEY
    (chain_dir / VARIANT).write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ValueError, match=r"chain\.test\.yaml: steps\.1\.llm.*api_key_env") as info:
        _runner(chain_dir)
    assert KEY not in str(info.value)


def test_missing_key_variable_names_the_variable(chain_dir, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(llm.LLMError, match=KEY_ENV):
        _runner(chain_dir).run([ChainRequest("r", "refund")])


def test_traces_redact_configured_fields(chain_dir, server):
    [res] = _runner(chain_dir).run([ChainRequest("e", "refund 12345, mail me at jo.doe@example.com")])
    assert res.outputs["extract_entities"]["email"] == "jo.doe@example.com"  # outputs are scored unredacted
    trace = next(t for t in res.traces if t["step"] == "extract_entities")
    assert trace["parsed"]["email"] == "[REDACTED]" and trace["parsed"]["order_id"] == "12345"
    text = json.dumps(res.traces)
    assert "jo.doe@example.com" not in text and "[REDACTED]" in trace["messages"][0]["content"]
    assert trace["tokens_in"] > 0 and trace["cache_hit"] is False and trace["latency_ms"] > 0


def _artifact(chain_dir: Path, tmp_path: Path) -> Path:
    artifact = tmp_path / "artifact"
    build_chain(chain_dir, KB, {"intent_model": KeywordIntents.labels, "vision_model": PixelSumDigits.labels}, artifact)
    return artifact


@pytest.fixture
def fake_model_kinds(monkeypatch):
    from release_assets.models import trainers as registry

    class Kind:
        def __init__(self, cls):
            self.cls = cls

        def load(self, path):
            return self.cls()

    monkeypatch.setitem(registry.MODEL_KINDS, "fake_intent", Kind(KeywordIntents))
    monkeypatch.setitem(registry.MODEL_KINDS, "fake_vision", Kind(PixelSumDigits))
    return {"intent_model": ("fake_intent", Path("unused")), "vision_model": ("fake_vision", Path("unused"))}


def test_cache_makes_the_second_evaluation_free_and_identical(chain_dir, server, tmp_path, fake_model_kinds):
    golden = tmp_path / "golden.jsonl"
    golden.write_text("".join(json.dumps(c) + "\n" for c in CASES))
    artifact, cache = _artifact(chain_dir, tmp_path), tmp_path / "llm_cache"
    runs = []
    for n in range(2):
        out = tmp_path / f"eval{n}"
        out.mkdir()
        summary = build_chain_evaluation(
            artifact, fake_model_kinds, golden, out, llm_cache_dir=cache, chain_file=VARIANT
        )
        runs.append((summary, (out / "cases.jsonl").read_text(), out))
    assert server.count() == 6  # the first evaluation only
    (first, cases1, out1), (second, cases2, out2) = runs
    assert first["metrics"]["llm_calls"] == 6 and first["metrics"]["cache_hits"] == 0
    assert second["metrics"]["llm_calls"] == 0 and second["metrics"]["cache_hits"] == 6
    volatile = {"llm_calls", "cache_hits", "cases_per_second", "p50_ms", "p95_ms"}  # p50/p95 include offline steps
    assert {k: v for k, v in first["metrics"].items() if k not in volatile} == {
        k: v for k, v in second["metrics"].items() if k not in volatile
    }
    assert cases1 == cases2 and first["examples"] == second["examples"]
    # Tokens, cost and model latency replay from the cache.
    assert [{k: v for k, v in s.items() if k not in volatile} for s in first["llm_steps"].values()] == [
        {k: v for k, v in s.items() if k not in volatile} for s in second["llm_steps"].values()
    ]
    entries = sorted(cache.iterdir())
    assert len(entries) == 6 and all(len(p.stem) == 64 and p.suffix == ".json" for p in entries)
    traces = [json.loads(line) for line in (out2 / "llm_traces.jsonl").read_text().splitlines()]
    assert len(traces) == 6 and all(t["cache_hit"] for t in traces)
    assert "jo.doe@example.com" not in (out1 / "llm_traces.jsonl").read_text()
    assert "tokens_in" in (out1 / "report.md").read_text()


def test_cache_bypass_by_env_and_by_step_config(chain_dir, server, tmp_path, monkeypatch):
    cache = tmp_path / "llm_cache"
    requests = [ChainRequest("r", "refund for 12345")]
    _runner(chain_dir, cache).run(requests)
    assert server.count() == 2
    monkeypatch.setenv(llm.CACHE_ENV, "off")
    _runner(chain_dir, cache).run(requests)
    assert server.count() == 4
    monkeypatch.delenv(llm.CACHE_ENV)
    _runner(chain_dir, cache).run(requests)
    assert server.count() == 4
    write_variant(chain_dir, server.base_url, cache=False)
    _runner(chain_dir, cache).run(requests)
    assert server.count() == 6


# Retry-After: a server that is rate limiting says when to come back, in seconds or as an HTTP-date (RFC 9110
# 10.2.3); the backend waits at least that long, at most MAX_BACKOFF_S.
NOW = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example date


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("2", 2.0),
        (" 3.5 ", 3.5),
        ("-1", 0.0),
        ("Sun, 06 Nov 1994 08:50:07 GMT", 30.0),  # IMF-fixdate
        ("Sunday, 06-Nov-94 08:50:07 GMT", 30.0),  # obsolete RFC 850 form
        ("Sun Nov  6 08:50:07 1994", 30.0),  # obsolete asctime form: no zone, GMT
        ("Sun, 06 Nov 1994 08:49:00 GMT", 0.0),  # already past
        ("soon", None),
        ("nan", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(header, seconds):
    from release_assets.chains.llm.openai_backend import _retry_after

    assert _retry_after(header, now=NOW) == (None if seconds is None else pytest.approx(seconds))


class RateLimitedOnce(FakeLLM):
    """Answers the first request with 429 and the given Retry-After (a callable: an HTTP-date is made at request
    time), every later one with a completion."""

    def __init__(self, retry_after) -> None:
        super().__init__()
        self.retry_after = retry_after
        self.times: list[float] = []

    def app(self):
        import time

        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def chat(request):
            body = await request.json()
            with self.lock:
                self.requests.append(body)
                self.times.append(time.monotonic())
                first = len(self.requests) == 1
            if first:
                headers = {"retry-after": self.retry_after()}
                return JSONResponse({"error": "slow down"}, status_code=429, headers=headers)
            message = {"role": "assistant", "content": '{"ok": true}'}
            return JSONResponse({"choices": [{"index": 0, "message": message}], "usage": {}})

        return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def _complete(base_url: str) -> str:
    from release_assets.chains.llm.openai_backend import OpenAIBackend
    from release_assets.chains.schema import LLMSpec

    spec = LLMSpec(model="m", base_url=base_url, timeout_s=5, backoff_s=0.01, max_retries=2, response_format="none")
    backend = OpenAIBackend(spec, "step")
    try:
        return backend.complete([{"role": "user", "content": "hi"}], {}).text
    finally:
        backend.close()


def _waited(fake: RateLimitedOnce) -> float:
    first, second = fake.times
    return second - first


def test_an_http_date_retry_after_is_waited_for(caplog):
    import email.utils
    import time

    # Two seconds ahead, at the date's whole-second precision: the wait is between one and two seconds.
    fake = RateLimitedOnce(lambda: email.utils.formatdate(time.time() + 2, usegmt=True))
    with serve(fake), caplog.at_level(logging.WARNING, logger="release_assets.chains.llm"):
        assert _complete(fake.base_url) == '{"ok": true}'
    assert 0.9 <= _waited(fake) <= 2.5, _waited(fake)  # our own backoff alone: 0.005-0.015 s
    assert "llm step: HTTP 429; retry 1/2 in " in caplog.text and "(Retry-After: " in caplog.text


def test_a_retry_after_in_seconds_is_waited_for():
    fake = RateLimitedOnce(lambda: "1")
    with serve(fake):
        assert _complete(fake.base_url) == '{"ok": true}'
    assert 0.9 <= _waited(fake) <= 2.0, _waited(fake)


@pytest.mark.parametrize("header", ["3600", "date an hour ahead"])
def test_a_long_retry_after_is_capped(monkeypatch, header):
    import email.utils
    import time

    from release_assets.chains.llm import openai_backend

    monkeypatch.setattr(openai_backend, "MAX_BACKOFF_S", 0.4)
    value = (lambda: "3600") if header == "3600" else (lambda: email.utils.formatdate(time.time() + 3600, usegmt=True))
    fake = RateLimitedOnce(value)
    with serve(fake):
        assert _complete(fake.base_url) == '{"ok": true}'
    assert 0.35 <= _waited(fake) <= 1.5, _waited(fake)
