"""Traces: request span -> step spans from the chain runner's observer, in a rotated JSONL file and over OTLP/HTTP
to a receiver on 127.0.0.1, with emails, order ids and keys redacted; nothing at all when tracing is off."""

from __future__ import annotations

import gzip
import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from release_assets.chains.knowledge import load_knowledge_base
from release_assets.chains.runner import ChainRequest, ChainRunner
from release_assets.chains.spec import load_chain
from release_assets.serving.golden_traces import trace_golden_run
from release_assets.serving.traces import REDACT_ENV, Redactor, Tracing
from release_assets_tests.fakes import KeywordIntents, PixelSumDigits

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-live-4f9a8b7c6d5e4f3a2b1c"
MESSAGE = f"I want a refund for order 12345, mail me at jo.doe@example.com. My key is {KEY}, Bearer abcdefgh12345678"
SECRETS = ("12345", "jo.doe@example.com", "jo.doe", KEY, "abcdefgh12345678")
STEPS = ("classify_intent", "extract_entities", "generate_response")


@pytest.fixture
def chain_dir(tmp_path) -> Path:
    shutil.copytree(REPO / "prompts" / "helpdesk", tmp_path / "helpdesk")
    return tmp_path / "helpdesk"


def _runner(chain_dir: Path, chain_file: str = "chain.yaml") -> ChainRunner:
    predictors = {"intent_model": KeywordIntents(), "vision_model": PixelSumDigits()}
    spec, schemas = load_chain(chain_dir, {k: v.labels for k, v in predictors.items()}, chain_file)
    kb = load_knowledge_base(REPO / "data" / "support" / "knowledge_base.yaml")
    return ChainRunner(spec, schemas, predictors, kb)


@pytest.fixture
def runner(chain_dir) -> ChainRunner:
    return _runner(chain_dir)


@pytest.fixture(autouse=True)
def _no_collector_from_env(monkeypatch):
    # A developer's own collector or redaction file must not leak into these tests.
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv(REDACT_ENV, raising=False)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _served(tracing: Tracing, runner: ChainRunner, request_id: str, message: str, **span_kwargs) -> dict:
    with tracing.request_span("helpdesk", "0123abcd4567ef89", "champion", request_id, **span_kwargs) as rs:
        [res] = runner.run([ChainRequest(request_id, message)], observer=tracing.observer(rs))
        rs.set_output(res.outputs.get("generate_response"))
    return res


def test_request_span_has_one_child_per_step_in_jsonl(runner, tmp_path):
    path = tmp_path / "traces" / "spans.jsonl"
    tracing = Tracing(jsonl_path=path, otlp_endpoint=None)
    try:
        res = _served(
            tracing, runner, "r1", "refund please", input_value="refund please", session_id="s-1", user_id="u-1"
        )
        assert tracing.force_flush()
    finally:
        tracing.shutdown()
    records = _records(path)
    assert len(records) == 4  # one line per span: the request and its three steps
    by_name = {r["name"]: r for r in records}
    root = by_name["helpdesk request"]
    assert root["parent_id"] is None and root["status"]["code"] == "UNSET" and root["service"] == "release-assets"
    for step in STEPS:
        span = by_name[step]
        assert span["parent_id"] == root["span_id"] and span["trace_id"] == root["trace_id"]
        assert root["start_time"] <= span["start_time"] <= span["end_time"] <= root["end_time"]
    attrs = root["attributes"]
    assert attrs["openinference.span.kind"] == "CHAIN"
    assert attrs["input.value"] == "refund please"
    assert attrs["session.id"] == "s-1" and attrs["user.id"] == "u-1"
    assert json.loads(attrs["metadata"]) == {
        "release": "helpdesk",
        "version": "0123abcd4567ef89",
        "variant": "champion",
        "request_id": "r1",
        "kind": "prompt_chain",
    }
    assert json.loads(attrs["output.value"])["reply"] == res.outputs["generate_response"]["reply"]

    classify = by_name["classify_intent"]["attributes"]
    assert classify["openinference.span.kind"] == "TOOL" and classify["tool.name"] == "classifier:intent_model"
    assert "refund please" in classify["input.value"]  # the rendered template, not the bare message
    assert json.loads(classify["output.value"])["intent"] == "refund"  # the binding's raw answer
    assert json.loads(classify["step.output"]) == res.outputs["classify_intent"]  # what validation kept
    assert classify["step.latency_ms"] >= 0
    assert json.loads(classify["metadata"]) == {
        "request_id": "r1",
        "step": "classify_intent",
        "binding": "classifier:intent_model",
    }
    reply = by_name["generate_response"]["attributes"]
    assert json.loads(reply["step.output"])["reply"] == res.outputs["generate_response"]["reply"]
    assert {by_name[s]["status"]["code"] for s in STEPS} == {"OK"}


def test_a_failed_step_is_an_error_span_and_fails_its_request(chain_dir, tmp_path):
    (chain_dir / "responses" / "other.j2").write_text("{{ kb.no_such_fact }}\n")
    path = tmp_path / "spans.jsonl"
    tracing = Tracing(jsonl_path=path, otlp_endpoint=None)
    try:
        res = _served(tracing, _runner(chain_dir), "r8", "what are your opening hours")
        tracing.force_flush()
    finally:
        tracing.shutdown()
    assert "generate_response" in res.errors
    by_name = {r["name"]: r for r in _records(path)}
    failed = by_name["generate_response"]
    assert failed["status"]["code"] == "ERROR" and "no_such_fact" in failed["status"]["description"]
    assert "input.value" not in failed["attributes"] and "step.output" not in failed["attributes"]
    root = by_name["helpdesk request"]["status"]
    assert root["code"] == "ERROR" and root["description"].startswith("generate_response: ")


def test_emails_order_ids_and_keys_never_reach_the_file(runner, tmp_path):
    path = tmp_path / "spans.jsonl"
    tracing = Tracing(jsonl_path=path, otlp_endpoint=None)
    try:
        res = _served(tracing, runner, "r2", MESSAGE, input_value=MESSAGE)
        assert res.outputs["extract_entities"]["order_id"] == "12345"  # the chain itself still sees everything
        with pytest.raises(ValueError), tracing.request_span("helpdesk", "v", "champion", "r3"):
            raise ValueError(f"cannot reach jo.doe@example.com about 12345 with {KEY}")
        tracing.force_flush()
    finally:
        tracing.shutdown()
    text = path.read_text()
    for secret in SECRETS:
        assert secret not in text
    assert "[REDACTED]" in text
    failed = next(r for r in _records(path) if json.loads(r["attributes"]["metadata"])["request_id"] == "r3")
    assert failed["status"]["code"] == "ERROR" and "[REDACTED]" in failed["status"]["description"]
    assert failed["events"][0]["name"] == "exception"  # recorded by the SDK, redacted all the same


def test_jsonl_rotates_at_the_size_limit_and_keeps_n_files(tmp_path):
    path = tmp_path / "spans.jsonl"
    tracing = Tracing(jsonl_path=path, otlp_endpoint=None, max_bytes=4096, backups=2)
    try:
        for n in range(80):
            tracing.shadow_span({"request_id": f"s{n}", "message": "x" * 200, "champion": "a", "shadow": "b"})
        tracing.force_flush()
    finally:
        tracing.shutdown()
    files = [path, path.with_name("spans.jsonl.1"), path.with_name("spans.jsonl.2")]
    assert all(f.exists() for f in files) and not path.with_name("spans.jsonl.3").exists()
    kept = []
    for f in files:
        assert 0 < f.stat().st_size <= 4096
        kept.append([json.loads(r["attributes"]["metadata"])["request_id"] for r in _records(f)])
    assert kept[0][-1] == "s79"  # newest in the live file, older ones shifted along
    assert int(kept[2][-1][1:]) < int(kept[1][0][1:]) and int(kept[1][-1][1:]) < int(kept[0][0][1:])
    assert len(kept[0] + kept[1] + kept[2]) < 80  # the oldest file was dropped


def test_a_lone_surrogate_in_a_request_is_written_escaped_and_keeps_its_batch(tmp_path):
    path = tmp_path / "spans.jsonl"
    tracing = Tracing(jsonl_path=path, otlp_endpoint=None)
    try:
        tracing.shadow_span({"request_id": "bad", "message": "order \ud800 lost", "champion": "a", "shadow": "b"})
        tracing.shadow_span({"request_id": "fine", "message": "café", "champion": "a", "shadow": "b"})
        tracing.force_flush()
    finally:
        tracing.shutdown()
    text = path.read_bytes().decode("utf-8")  # the file stays valid UTF-8
    assert "café" in text and "\\ud800" in text
    ids = [json.loads(r["attributes"]["metadata"])["request_id"] for r in _records(path)]
    assert ids == ["bad", "fine"]


def test_each_shadow_pair_is_one_span(tmp_path):
    path = tmp_path / "spans.jsonl"
    tracing = Tracing(jsonl_path=path, otlp_endpoint=None)
    base = {"release": "helpdesk", "request_id": "r9", "primary_version": "aaaa", "shadow_version": "bbbb"}
    try:
        tracing.shadow_span({**base, "agreement": {"intent": True}, "reply_similarity": 0.8, "shadow_error": None})
        tracing.shadow_span({**base, "agreement": {}, "shadow_error": "ValueError: order 12345 unreadable"})
        tracing.force_flush()
    finally:
        tracing.shutdown()
    ok, failed = sorted(_records(path), key=lambda r: r["start_time"])
    assert ok["name"] == "helpdesk shadow" and ok["status"]["code"] == "OK" and ok["parent_id"] is None
    assert ok["attributes"]["openinference.span.kind"] == "CHAIN"
    meta = json.loads(ok["attributes"]["metadata"])
    assert meta["agreement"] == {"intent": True} and meta["shadow_version"] == "bbbb"
    assert failed["status"] == {"code": "ERROR", "description": "ValueError: order [REDACTED] unreadable"}


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, list[tuple[str, ExportTraceServiceRequest]]]]:
    """A minimal OTLP/HTTP collector on a free 127.0.0.1 port: decodes each protobuf export request it gets."""
    received: list[tuple[str, ExportTraceServiceRequest]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            received.append((self.path, request))
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _attrs(span) -> dict:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in span.attributes}


def test_otlp_http_receiver_gets_the_spans_redacted(runner, monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with otlp_receiver() as (url, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)  # the default endpoint comes from the environment
        tracing = Tracing(service_name="helpdesk-serve")
        try:
            _served(tracing, runner, "r4", MESSAGE, input_value=MESSAGE, session_id="s-9")
            assert tracing.force_flush()
        finally:
            tracing.shutdown()
    assert received and {p for p, _ in received} == {"/v1/traces"}
    spans, services = [], set()
    for _, request in received:
        for payload in SECRETS:
            assert payload.encode() not in request.SerializeToString()
        for resource_spans in request.resource_spans:
            services |= {kv.value.string_value for kv in resource_spans.resource.attributes if kv.key == "service.name"}
            spans += [s for scope in resource_spans.scope_spans for s in scope.spans]
    assert services == {"helpdesk-serve"}
    by_name = {s.name: s for s in spans}
    assert set(by_name) == {"helpdesk request", *STEPS}
    root = by_name["helpdesk request"]
    assert all(by_name[s].parent_span_id == root.span_id and by_name[s].trace_id == root.trace_id for s in STEPS)
    attrs = _attrs(root)
    assert attrs["openinference.span.kind"] == "CHAIN" and attrs["session.id"] == "s-9"
    assert "[REDACTED]" in attrs["input.value"] and json.loads(attrs["metadata"])["request_id"] == "r4"
    extract = _attrs(by_name["extract_entities"])
    assert extract["openinference.span.kind"] == "TOOL" and extract["tool.name"] == "patterns"
    assert json.loads(extract["step.output"])["order_id"] == "[REDACTED]"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_step(self, *args) -> None:
        self.calls.append(args)


def test_runner_reports_each_step_each_request_ran(chain_dir):
    (chain_dir / "responses" / "other.j2").write_text("{{ kb.no_such_fact }}\n")
    runner = _runner(chain_dir)
    requests = [ChainRequest("ok", "refund for 54321"), ChainRequest("bad", "what are your opening hours")]
    recorder = Recorder()
    observed = runner.run(requests, observer=recorder)
    plain = runner.run(requests)
    assert [(r.outputs, r.errors) for r in observed] == [(r.outputs, r.errors) for r in plain]
    by_request = {rid: [c for c in recorder.calls if c[0] == rid] for rid in ("ok", "bad")}
    assert [c[1] for c in by_request["ok"]] == list(STEPS) == [c[1] for c in by_request["bad"]]
    _, _, rendered, raw, output, error, latency, binding = by_request["ok"][1]
    assert "54321" in rendered and raw["order_id"] == "54321" and output["order_id"] == "54321"
    assert error is None and latency >= 0 and binding == "patterns"
    _, step, rendered, raw, output, error, _, binding = by_request["bad"][2]
    assert (step, rendered, raw, output, binding) == ("generate_response", None, None, None, "template")
    assert "no_such_fact" in error


def test_tracing_off_adds_no_spans_and_no_observer(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    tracing = Tracing()  # no path, no endpoint in the environment: off
    assert not tracing.enabled and tracing.provider is None
    with tracing.request_span("helpdesk", "v", "champion", "r5", input_value="refund") as rs:
        assert not rs.span.is_recording()
        assert not hasattr(rs, "on_step")  # so an app looking for an observer on the span finds none
        assert tracing.observer(rs) is None
        [res] = runner.run([ChainRequest("r5", "refund")], observer=tracing.observer(rs))
        rs.set_output(res.outputs)
    tracing.shadow_span({"request_id": "r5"})
    assert trace_golden_run(tracing, "helpdesk", "v", [res]) == 0
    assert tracing.force_flush()
    tracing.shutdown()
    assert res.format_valid and sorted(tmp_path.rglob("*")) == before  # no file written anywhere


def test_golden_run_spans_carry_the_case_lineage(runner, tmp_path):
    cases = [
        {"id": "g1", "message": "refund for 54321", "expected": {"intent": "refund"}},
        {"id": "g2", "message": "where is my parcel", "expected": {"intent": "order_status"}},
    ]
    results = runner.run([ChainRequest(c["id"], c["message"]) for c in cases])
    path = tmp_path / "golden.jsonl"
    tracing = Tracing(jsonl_path=path, otlp_endpoint=None)
    try:
        n = trace_golden_run(
            tracing, "helpdesk", "0123abcd", results, cases=cases, spec=runner.spec, metadata={"golden": "sha256:ab12"}
        )
        tracing.force_flush()
    finally:
        tracing.shutdown()
    assert n == 2
    records = _records(path)
    roots = {json.loads(r["attributes"]["metadata"])["request_id"]: r for r in records if r["parent_id"] is None}
    assert set(roots) == {"g1", "g2"}
    meta = json.loads(roots["g2"]["attributes"]["metadata"])
    assert (
        meta["variant"] == "golden"
        and meta["expected"] == {"intent": "order_status"}
        and meta["golden"] == "sha256:ab12"
    )
    assert roots["g1"]["attributes"]["input.value"] == "refund for [REDACTED]"
    children = [r for r in records if r["parent_id"] == roots["g2"]["span_id"]]
    assert [c["name"] for c in sorted(children, key=lambda c: c["start_time"])] == list(STEPS)
    assert children[0]["attributes"]["tool.name"] == "classifier:intent_model"


def test_redaction_rules_from_a_file_named_by_the_environment(tmp_path, monkeypatch):
    config = tmp_path / "redact.yaml"
    config.write_text(yaml.safe_dump({"rules": {"order_id": None, "ticket": r"TICKET-\d+"}}))
    monkeypatch.setenv(REDACT_ENV, str(config))
    assert Redactor.from_env().text("order 12345, TICKET-77, jo@example.com") == "order 12345, [REDACTED], [REDACTED]"
    only = tmp_path / "only.json"
    only.write_text(json.dumps({"defaults": False, "rules": {"ticket": r"TICKET-\d+"}}))
    assert Redactor.from_file(only).text("TICKET-1 jo@example.com") == "[REDACTED] jo@example.com"
    (tmp_path / "bad.yaml").write_text("rules: {broken: '(unclosed'}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: rule 'broken'"):
        Redactor.from_file(tmp_path / "bad.yaml")
    assert (
        Redactor().text(f"Authorization: Bearer {KEY} for jo@example.com") == "Authorization: [REDACTED] for [REDACTED]"
    )


def test_llm_steps_are_llm_spans_with_model_tokens_and_the_raw_answer(chain_dir, tmp_path, monkeypatch):
    from release_assets_tests.chains.llm_fakes import FakeLLM, serve

    monkeypatch.setenv("RELEASE_ASSETS_TEST_LLM_KEY", KEY)
    path = tmp_path / "spans.jsonl"
    with serve(FakeLLM()) as fake:
        data = yaml.safe_load((chain_dir / "chain.llm.yaml").read_text())
        for step in data["steps"]:
            if step["binding"].startswith("llm:"):
                step["llm"].update(base_url=fake.base_url, api_key_env="RELEASE_ASSETS_TEST_LLM_KEY", timeout_s=5)
        (chain_dir / "chain.test.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        tracing = Tracing(jsonl_path=path, otlp_endpoint=None)
        try:
            res = _served(tracing, _runner(chain_dir, "chain.test.yaml"), "r7", "refund for 12345, jo.doe@example.com")
            tracing.force_flush()
        finally:
            tracing.shutdown()
    assert res.format_valid, res.errors
    text = path.read_text()
    assert KEY not in text and "12345" not in text and "jo.doe" not in text
    by_name = {r["name"]: r for r in _records(path)}
    extract = by_name["extract_entities"]["attributes"]
    assert extract["openinference.span.kind"] == "LLM" and extract["llm.model_name"] == "gpt-4o-mini"
    assert extract["llm.token_count.prompt"] > 0 and extract["llm.token_count.completion"] > 0
    assert extract["output.value"].startswith("Here you go:")  # what the model said, prose and all
    assert extract["llm.output_messages.0.message.content"] == extract["output.value"]
    assert extract["llm.input_messages.0.message.role"] == "user"
    assert json.loads(extract["step.output"])["order_id"] == "[REDACTED]"
    assert by_name["generate_response"]["attributes"]["openinference.span.kind"] == "LLM"
    assert by_name["generate_response"]["parent_id"] == by_name["helpdesk request"]["span_id"]


def test_redaction_is_bounded_and_finds_order_ids_next_to_escapes():
    import time as _time

    from release_assets.serving.trace_export import MAX_ATTRIBUTE_CHARS, Redactor, _redact_value

    redactor = Redactor()
    start = _time.perf_counter()
    out = _redact_value("a-" * 32_768, redactor.text)  # a 64 KiB client payload with no "@" anywhere
    assert _time.perf_counter() - start < 1.0
    assert len(out) <= MAX_ATTRIBUTE_CHARS + len("...[truncated]")
    assert redactor.text('{"message": "hi\\n12345 and ord67890"}').count("[REDACTED]") == 2


def test_the_default_rules_shortcut_and_memory_redact_exactly_what_the_rules_do():
    import random

    from release_assets.serving.trace_export import DEFAULT_RULES

    fast = Redactor()  # the default rules: strings no rule could match skip the regex, short ones are remembered
    # One more rule that never matches: the same redaction, with every string through the combined regex.
    every_string = Redactor([*DEFAULT_RULES, ("never", r"(?!x)x")])
    pieces = [
        "bearer ",
        "Bearer abcdefgh12345678",
        "sk-",
        "sk-live-4f9a8b7c6d5e4f3a2b1c",
        "api_key: ",
        "API-KEY=",
        "token=",
        "secret ",
        "password:",
        "@",
        "jo.doe@example.com",
        "12345",
        "1234",
        "ord67890",
        "\\n12345",
        "a" * 31,
        "b" * 33,
        "0123456789abcdef" * 2,
        "Ab3" * 11,
        "ab3" * 11,
        "AB3" * 11,
        "Abc" * 11,
        "5b8b5920-1aae-4f25-9d62-abd67e7a47b2",  # a request id: not a secret, yet a 36-character run
        "2e850f0905691e28",
        "0.29004",
        "0.",
        "no.",
        "123456",
        "aB-" * 6,
        "9/" * 9,
        "-",
        "_",
        "+",
        "/",
        "=",
        " ",
        ".",
        "\n",
        '"',
        "'",
        ":",
        "x",
        "7",
        "ſecret=abcdefgh",
        "\u212aey: hunter22",
        "１２３４５",
        "ünïcode",
        "café@bar.fr",
    ]
    rng = random.Random(7)
    texts = [MESSAGE, *SECRETS, *pieces]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))) for _ in range(1500)]
    for text in texts * 2:  # the second time, short strings come from memory
        assert fast.text(text) == every_string.text(text), text
    assert fast.text("order 12345 from jo.doe@example.com") == "order [REDACTED] from [REDACTED]"
    # A probability's fraction is no order number; one after "no." is.
    redacted = fast.text('{"virginica": 0.29004, "order": "no.12345"}')
    assert redacted == '{"virginica": 0.29004, "order": "no.[REDACTED]"}'


WRITER = """
import sys
from pathlib import Path
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext
from release_assets.serving.trace_export import JsonlSpanExporter

path, worker, batches = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
exporter = JsonlSpanExporter(path, max_bytes=16_384, backups=200)
for b in range(batches):
    spans = [
        ReadableSpan(f"{worker}-{b}-{i}", SpanContext(1, 1 + i, False), attributes={"pad": "x" * (100 + 37 * i)})
        for i in range(16)
    ]
    assert exporter.export(spans).name == "SUCCESS"
exporter.shutdown()
"""


def test_two_processes_share_one_span_file_without_interleaving_or_losing_a_generation(tmp_path):
    """``serve --workers 2``: both workers export to the same file and rotate it. Every line parses, no file
    passes the limit, and every span of both is in exactly one generation (none overwritten by a second rotation)."""
    import subprocess
    import sys

    path, batches = tmp_path / "serve.jsonl", 60
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), worker, str(batches)], cwd=REPO)
        for worker in ("a", "b")
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    files = [path, *sorted(tmp_path.glob("serve.jsonl.[0-9]*"), key=lambda f: int(f.suffix[1:]))]
    names = []
    for f in files:
        assert f.stat().st_size <= 16_384
        names += [record["name"] for record in _records(f)]  # a line cut by the other writer would not parse
    assert sorted(names) == sorted(f"{w}-{b}-{i}" for w in "ab" for b in range(batches) for i in range(16))
    assert len(files) < 200  # nothing aged out, so a missing span was lost, not rotated away
    # The lock is the folder's: no lock file beside the spans (a golden run's folder is a bundled artifact).
    assert {f.name for f in tmp_path.iterdir()} == {f.name for f in files}


def test_the_order_id_rule_is_five_digits_alone_whatever_its_form():
    """The rule is written to start with a digit (so the regex engine skips to digits); it must match exactly what
    the plain form matches: five digits, not after a digit or a digit and a dot, not before a digit."""
    import random
    import re

    from release_assets.serving.trace_export import DEFAULT_RULES

    fast = re.compile(dict(DEFAULT_RULES)["order_id"])
    plain = re.compile(r"(?<!\d)(?<!\d\.)\d{5}(?!\d)")
    rng = random.Random(3)
    for _ in range(20_000):
        text = "".join(rng.choice("0123456789..a \n٣") for _ in range(rng.randint(0, 20)))
        assert fast.sub("R", text) == plain.sub("R", text), text
