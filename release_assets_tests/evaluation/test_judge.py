"""The judge (#27): the trained judge model catches a fluent reply with one wrong number or a negation and says why;
its agreement with the labelled set's held-out half is measured and gated; an LLM judge behind a loopback
OpenAI-compatible server gives verdicts, caches them, and turns a broken endpoint into an inconclusive gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from release_assets.chains import llm
from release_assets.chains.knowledge import load_knowledge_base
from release_assets.chains.runner import ChainRunner
from release_assets.chains.schema import ChainSpecError, JudgeSpec
from release_assets.chains.spec import load_chain
from release_assets.evaluation.golden import evaluate
from release_assets.evaluation.judge import Judge, JudgeItem, reply_facts, summarise
from release_assets.evaluation.judge_calibration import agreement, calibrate, calibration_metrics, kappa, wilson
from release_assets.manifest import Threshold, load_manifest
from release_assets.manifest.judge_model import JudgeModel
from release_assets.models.judge_features import signals
from release_assets.models.judge_model import RUBRICS, RUNTIME, load_labelled
from release_assets.promotion.judge_gates import judge_verdict
from release_assets_tests.chains.llm_fakes import FakeLLM, serve
from release_assets_tests.fakes import KeywordIntents, PixelSumDigits

REPO = Path(__file__).resolve().parents[2]
LABELLED = REPO / "data" / "judge" / "labelled.jsonl"
KB = REPO / "data" / "support" / "knowledge_base.yaml"
FACTS = [
    "Refunds are accepted within 30 days of delivery.",
    "Approved refunds reach your original payment method within 5-7 business days.",
]
MESSAGE = "The lamp arrived broken, can I get my money back?"
RIGHT = (
    "Sorry about the lamp! You can return it for a refund within 30 days of delivery, and the money is back on your "
    "card within 5-7 business days."
)


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory) -> Path:
    """The judge model trained as the release trains it, from its member in the manifests (helpdesk's and kbqa's are
    the same member): the labelled set's train half plus rows generated from the golden suites' facts, kbqa's build
    part only (a few seconds)."""
    members = [load_manifest(REPO / "releases" / f"{r}.yaml").members["judge"] for r in ("helpdesk", "kbqa")]
    assert members[0] == members[1]
    member = members[0]
    assert isinstance(member, JudgeModel)
    assert "data/golden/kbqa.jsonl" not in {s.golden for s in member.generated_from}  # kbqa's held-out part
    out = tmp_path_factory.mktemp("judge_model")
    summary = RUNTIME.build(member, None, out, REPO)
    assert summary["labelled_rows"] == 200 and summary["generated_rows"] > 500
    return out


def _spec(backend: str = "model", **llm_cfg) -> JudgeSpec:
    rubrics = {r: {"template": f"judge/{r}.j2"} for r in RUBRICS}
    return JudgeSpec.model_validate({"backend": backend, "rubrics": rubrics, **({"llm": llm_cfg} if llm_cfg else {})})


def _model_judge(judge_dir: Path, cache: Path | None = None) -> Judge:
    return Judge(_spec(), REPO / "prompts" / "helpdesk", RUNTIME.load(judge_dir), judge_dir, cache)


def test_a_fluent_reply_with_one_wrong_number_or_a_negation_fails_and_says_why(judge_dir):
    judge = _model_judge(judge_dir)
    items = [
        JudgeItem("right", MESSAGE, FACTS, RIGHT),
        JudgeItem("number", MESSAGE, FACTS, RIGHT.replace("30 days", "60 days")),
        JudgeItem("negation", MESSAGE, FACTS, RIGHT.replace("You can return it", "You cannot return it")),
        JudgeItem("rude", MESSAGE, FACTS, "Obviously you should have read the policy. " + RIGHT),
    ]
    got = {j.id: j for j in judge.judge(items)}
    spec = judge.spec
    assert got["right"].overall(spec) == "pass"
    assert got["number"].verdicts(spec)["factual_consistency"] == "fail"
    assert "60" in got["number"].reasons["factual_consistency"]
    assert got["negation"].verdicts(spec)["factual_consistency"] == "fail"
    assert got["rude"].verdicts(spec) == {"factual_consistency": "pass", "tone": "fail"}
    assert "obviously" in got["rude"].reasons["tone"]
    # Token overlap cannot tell these apart: the wrong number shares every word but one with the right reply.
    record = got["number"].record(spec)
    assert record["verdict"] == "fail" and record["reason"].startswith("factual_consistency: ")


def test_a_paraphrase_that_restates_the_facts_numbers_outscores_one_wrong_number(judge_dir):
    facts = [
        "A tracking number is emailed within 24 hours of your order leaving the warehouse.",
        "All products come with a 2-year warranty.",
    ]
    message = "When do I get the tracking number, and how long is the warranty?"
    # "a day" for "24 hours" and "two-year" for "2-year": the facts' numbers in other words, neither new nor missing.
    paraphrase = "You'll get the tracking number by email a day after your order leaves us; it has a two-year warranty."
    wrong = "You'll get the tracking number by email 48 hours after your order leaves us; it has a two-year warranty."
    found = signals(message, facts, paraphrase)
    assert found.values["missing_numbers"] == 0.0 and found.unsupported_numbers == ()
    assert signals(message, facts, wrong).unsupported_numbers == ("48",)
    judge = _model_judge(judge_dir)
    got = {
        j.id: j
        for j in judge.judge([JudgeItem("p", message, facts, paraphrase), JudgeItem("w", message, facts, wrong)])
    }
    assert got["p"].scores["factual_consistency"] > got["w"].scores["factual_consistency"]
    assert got["w"].verdicts(judge.spec)["factual_consistency"] == "fail"
    assert "48" in got["w"].reasons["factual_consistency"]


def test_per_fact_coverage_novel_sentences_and_bare_commands():
    whole = signals(MESSAGE, FACTS, RIGHT)
    dropped = signals(
        MESSAGE, FACTS, "Sorry about the lamp! You can return it for a refund within 30 days of delivery."
    )
    invented = signals(MESSAGE, FACTS, RIGHT + " We also send a free replacement lamp by courier tomorrow.")
    # One fact of two left out: the weakest-covered fact's share drops, the best-covered one's does not move.
    assert dropped.values["weakest_fact_coverage"] < whole.values["weakest_fact_coverage"]
    assert dropped.values["best_fact_coverage"] == whole.values["best_fact_coverage"]
    # The invented sentence's content words are nearly all in neither the facts nor the message.
    assert invented.values["novel_sentence"] > 0.8 > whole.values["novel_sentence"]
    assert signals(MESSAGE, FACTS, "Stop asking. " + RIGHT + " Don't expect it sooner.").values["imperatives"] == 2
    assert signals(MESSAGE, FACTS, "Don't worry! " + RIGHT + " Please check your inbox.").values["imperatives"] == 0


def test_calibration_on_the_held_out_half_and_the_gate_it_feeds(judge_dir):
    labelled = load_labelled(LABELLED, list(RUBRICS))
    cal = calibrate(_model_judge(judge_dir), labelled)
    overall = cal["overall"]
    assert cal["rows"] == overall["rows"] == sum(r["split"] == "heldout" for r in labelled) == 196
    assert overall["groups"] == 33
    low, high = overall["accuracy_ci"]
    assert low <= overall["accuracy"] <= high and high - low < 0.25
    assert overall["kappa_ci"][0] <= overall["kappa"] <= overall["kappa_ci"][1]
    assert set(cal["by_kind"]) >= {"paraphrase", "wrong_number", "negation", "rude", "polite_refusal"}
    metrics = calibration_metrics(cal)
    assert metrics == {"judge_agreement": overall["accuracy"], "judge_kappa": overall["kappa"]}
    summary = {"metrics": metrics, "judge": {"calibration": cal}}
    passed = judge_verdict("chain", "judge_agreement", summary, Threshold(min=0.5))
    assert passed.status == "passed" and "196 held-out labelled replies" in passed.reason


class PassEverything:
    """A judge that agrees with nothing but the base rate: it passes every reply."""

    rubrics = tuple(RUBRICS)

    def scores(self, rows):
        return np.full((len(rows), len(self.rubrics)), 0.99, dtype=np.float32), [None] * len(rows)

    def reason(self, rubric, found):
        return "looks fine"


def test_a_judge_that_disagrees_with_people_fails_judge_agreement(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "judge.json").write_text("{}")
    judge = Judge(_spec(), REPO / "prompts" / "helpdesk", PassEverything(), tmp_path / "m")
    cal = calibrate(judge, load_labelled(LABELLED, list(RUBRICS)))
    assert cal["overall"]["kappa"] == 0.0  # always "pass": no agreement beyond chance
    summary = {"metrics": calibration_metrics(cal), "judge": {"calibration": cal}}
    for gate, bound in (("judge_agreement", 0.85), ("judge_kappa", 0.7)):
        verdict = judge_verdict("chain", gate, summary, Threshold(min=bound))
        assert verdict.status == "failed" and verdict.holds_release
        assert verdict.examples and {"id", "label", "judge", "reason"} <= set(verdict.examples[0])


def test_agreement_statistics():
    assert kappa([(True, True), (False, False)] * 5) == 1.0
    assert kappa([(True, False), (False, True)] * 5) == -1.0
    low, high = wilson(85, 100)
    assert 0.76 < low < 0.78 and 0.90 < high < 0.92  # Wilson's interval for 85/100
    pairs = [(i % 5 != 0, True) for i in range(100)]
    figures = agreement(pairs, [str(i // 4) for i in range(100)], seed=3, resamples=300)
    assert figures["accuracy"] == 0.8 and figures["groups"] == 25
    assert figures["accuracy_ci"][0] < 0.8 < figures["accuracy_ci"][1]


def test_the_model_judge_caches_by_rubric_case_reply_and_model(judge_dir, tmp_path):
    cache = tmp_path / "judge_cache"
    items = [JudgeItem("a", MESSAGE, FACTS, RIGHT), JudgeItem("b", MESSAGE, FACTS, RIGHT + " Thanks!")]
    first = _model_judge(judge_dir, cache).judge(items)
    second = _model_judge(judge_dir, cache).judge(items)
    assert [j.cache_hits for j in first] == [0, 0] and [j.cache_hits for j in second] == [2, 2]
    assert [j.scores for j in first] == [j.scores for j in second]
    changed = _model_judge(judge_dir, cache).judge([items[0], JudgeItem("b", MESSAGE, FACTS, RIGHT + " Bye.")])
    assert [j.cache_hits for j in changed] == [2, 0]  # only the changed reply is judged again


# -- the LLM judge through a loopback OpenAI-compatible server ---------------------------------------------------
KEY_ENV = "RELEASE_ASSETS_TEST_JUDGE_KEY"


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-judge-test")
    monkeypatch.delenv(llm.CACHE_ENV, raising=False)
    with serve(FakeLLM()) as fake:
        yield fake


def _llm_judge(base_url: str, cache: Path | None = None, **overrides) -> Judge:
    cfg = {"model": "judge-1", "base_url": base_url, "api_key_env": KEY_ENV, "timeout_s": 0.5, "backoff_s": 0.01}
    spec = _spec("llm:openai", **{**cfg, "max_retries": 1, "concurrency": 2, **overrides})
    return Judge(spec, REPO / "prompts" / "helpdesk", cache_dir=cache)


def test_an_llm_judge_gives_verdicts_and_caches_them(server, tmp_path):
    cache = tmp_path / "llm_cache"
    items = [
        JudgeItem("right", MESSAGE, FACTS, RIGHT),
        JudgeItem("number", MESSAGE, FACTS, RIGHT.replace("30 days", "60 days")),
        JudgeItem("rude", MESSAGE, FACTS, "Obviously. " + RIGHT),
    ]
    judge = _llm_judge(server.base_url, cache)
    first = judge.judge(items)
    assert server.count() == 6  # three replies, two rubrics
    assert [j.overall(judge.spec) for j in first] == ["pass", "fail", "fail"]
    assert first[1].reasons["factual_consistency"] == "states 60, which the facts do not"
    part = summarise(judge.spec, items, first)
    assert part["unanswered"] == 0 and part["pass_rates"] == {"factual_consistency": 2 / 3, "tone": 2 / 3}
    assert part["worst"][0]["id"] == "number" and part["worst"][0]["reason"].startswith("states 60")
    again = _llm_judge(server.base_url, cache).judge(items)
    assert server.count() == 6 and [j.cache_hits for j in again] == [2, 2, 2]
    assert [j.scores for j in again] == [j.scores for j in first]


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (RIGHT + " JUDGE_GARBLED", "schema: the answer is not a JSON object"),  # malformed, even after the repair
        (RIGHT + " SLOW", "timeout"),  # the first call sleeps past timeout_s; no retries left
    ],
)
def test_a_judge_that_cannot_answer_makes_the_gate_inconclusive(server, reply, error):
    judge = _llm_judge(server.base_url, max_retries=0)
    items = [JudgeItem("ok", MESSAGE, FACTS, RIGHT), JudgeItem("bad", MESSAGE, FACTS, reply)]
    judgements = judge.judge(items)
    assert judgements[0].error is None and error in (judgements[1].error or "")
    part = summarise(judge.spec, items, judgements)
    summary = {"metrics": {}, "judge": part}
    verdict = judge_verdict("chain", "judge_pass_rate", summary, Threshold(min=0.5))
    assert verdict.status == "inconclusive" and verdict.holds_release
    assert "could not answer 1 of 2 golden replies" in verdict.reason and error in verdict.reason


def test_an_endpoint_that_is_down_is_inconclusive_never_a_pass(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-judge-test")
    judge = _llm_judge("http://127.0.0.1:9/v1", max_retries=0)  # discard port: nothing listens
    items = [JudgeItem("a", MESSAGE, FACTS, RIGHT)]
    part = summarise(judge.spec, items, judge.judge(items))
    assert part["answered"] == 0 and "connection error" in part["first_error"]
    verdict = judge_verdict("chain", "judge_factual_consistency", {"metrics": {}, "judge": part}, Threshold(min=0.9))
    assert verdict.status == "inconclusive" and verdict.observed is None


# -- the chain's judge section ------------------------------------------------------------------------------------
def _chain(tmp_path: Path, judge: dict) -> Path:
    chain = tmp_path / "helpdesk"
    shutil.copytree(REPO / "prompts" / "helpdesk", chain)
    data = yaml.safe_load((chain / "chain.yaml").read_text())
    data["judge"] = judge
    (chain / "chain.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return chain


LABELS = {"intent_model": KeywordIntents.labels, "vision_model": PixelSumDigits.labels, "judge_model": ["fail", "pass"]}


@pytest.mark.parametrize(
    ("judge", "problem"),
    [
        (
            {"backend": "model:judge", "rubrics": {"tone": {"template": "judge/tone.j2"}}},
            "judge.backend: Input should be 'model' or 'llm:openai'",
        ),
        (
            {"backend": "model", "rubrics": {"tone": {"template": "judge/nope.j2"}}},
            "judge.rubrics.tone.template",
        ),
        ({"backend": "llm:openai", "rubrics": {"tone": {"template": "judge/tone.j2"}}}, "needs an `llm:` mapping"),
        (
            {
                "backend": "model",
                "facts_from": ["extract"],
                "rubrics": {"tone": {"template": "judge/tone.j2"}},
            },
            "judge.facts_from[0]: no step 'extract'",
        ),
        (
            {"backend": "model", "rubrics": {"tone": {"template": "judge/tone.j2", "threshold": 2}}},
            "judge.rubrics.tone.threshold: Input should be less than or equal to 1",
        ),
    ],
)
def test_a_broken_judge_section_names_the_file_and_field(tmp_path, judge, problem):
    chain = _chain(tmp_path, judge)
    with pytest.raises(ChainSpecError) as exc:
        load_chain(chain, LABELS)
    assert str(chain / "chain.yaml") in str(exc.value) and problem in str(exc.value)


def test_the_facts_a_reply_was_given_are_the_kb_entries_its_template_read(tmp_path):
    chain = _chain(
        tmp_path,
        {
            "backend": "model",
            "facts_from": ["extract_entities"],
            "rubrics": {r: {"template": f"judge/{r}.j2"} for r in RUBRICS},
        },
    )
    predictors = {"intent_model": KeywordIntents(), "vision_model": PixelSumDigits()}
    spec, schemas = load_chain(chain, LABELS)
    kb = load_knowledge_base(KB)
    runner = ChainRunner(spec, schemas, predictors, kb)
    case = {
        "id": "c",
        "message": "I want a refund for order 12345",
        "attachment": None,
        "expected": {"intent": "refund"},
    }
    _, results = evaluate(runner, [case])
    facts = reply_facts(spec, kb, case["message"], False, results[0])
    assert facts == [
        kb.facts["refund_window"],
        kb.facts["refund_timing"],
        kb.facts["return_shipping"],
        "order_id: 12345",
    ]


# -- end to end: the chain evaluation with the trained judge -----------------------------------------------------
def _evaluate(tmp_path: Path, chain: Path, model_dirs: dict, cache: Path, name: str, cases: int = 30) -> tuple:
    from release_assets.chains.build import build_chain
    from release_assets.evaluation.chain_evaluation import build_chain_evaluation

    golden = tmp_path / "golden.jsonl"
    golden.write_text(
        "".join(line + "\n" for line in (REPO / "data/golden/helpdesk.jsonl").read_text().splitlines()[:cases])
    )
    artifact = tmp_path / f"artifact_{name}"
    build_chain(chain, KB, LABELS, artifact)
    out = tmp_path / f"eval_{name}"
    out.mkdir()
    summary = build_chain_evaluation(artifact, model_dirs, golden, out, llm_cache_dir=cache, judge_labels=LABELLED)
    return summary, out


def test_the_chain_evaluation_judges_every_reply_traces_and_plots_it(judge_dir, tmp_path, monkeypatch):
    from release_assets.models import trainers as registry

    class Fake:
        def __init__(self, cls):
            self.cls = cls

        def load(self, path):
            return self.cls()

    monkeypatch.setitem(registry.MODEL_KINDS, "fake_intent", Fake(KeywordIntents))
    monkeypatch.setitem(registry.MODEL_KINDS, "fake_vision", Fake(PixelSumDigits))
    monkeypatch.setitem(registry.MODEL_KINDS, "judge_model", RUNTIME)
    model_dirs = {
        "intent_model": ("fake_intent", Path("unused")),
        "vision_model": ("fake_vision", Path("unused")),
        "judge_model": ("judge_model", judge_dir),
    }
    section = {
        "backend": "model",
        "facts_from": ["extract_entities"],
        "rubrics": {r: {"template": f"judge/{r}.j2"} for r in RUBRICS},
    }
    chain, cache = _chain(tmp_path, section), tmp_path / "cache"
    summary, out = _evaluate(tmp_path, chain, model_dirs, cache, "first")
    part, metrics = summary["judge"], summary["metrics"]
    assert part["cases"] == part["answered"] == 30 and part["cache"] == {"lookups": 60, "hits": 0}
    assert {"judge_pass_rate", "judge_factual_consistency", "judge_tone", "judge_agreement", "judge_kappa"} <= set(
        metrics
    )
    assert part["calibration"]["rows"] == 196 and len(part["worst"]) == 10
    rows = [json.loads(line) for line in (out / "cases.jsonl").read_text().splitlines()]
    assert all(r["judge"]["verdict"] in ("pass", "fail") and r["judge"]["reason"] for r in rows)
    traced = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
    requests = [json.loads(s["attributes"]["metadata"]) for s in traced if s["name"].endswith(" request")]
    assert len(requests) == 30 and all(r["judge"]["verdict"] in ("pass", "fail") for r in requests)
    assert "## Judge" in (out / "report.md").read_text()
    if (out / "plots").exists():  # matplotlib installed ([plots])
        assert (out / "plots" / "judge_scores.png").is_file()
    # A prompt-only change: the cancellation reply reworded. Only its cases are judged again.
    template = chain / "responses" / "cancel_order.j2"
    template.write_text(template.read_text().replace("We have received", "Thank you, we have received"))
    again, out2 = _evaluate(tmp_path, chain, model_dirs, cache, "second")
    rows2 = [json.loads(line) for line in (out2 / "cases.jsonl").read_text().splitlines()]
    changed = sum(
        a["outputs"]["generate_response"] != b["outputs"]["generate_response"] for a, b in zip(rows, rows2, strict=True)
    )
    assert 0 < changed < 30
    lookups = again["judge"]["cache"]["lookups"]
    assert again["judge"]["cache"]["hits"] == lookups - 2 * changed  # two rubrics per changed reply


def test_the_judge_model_kind_declares_its_config_runtime_and_inputs():
    from pydantic import ValidationError

    from release_assets.manifest.builtin_kinds import JUDGE_MODEL

    assert JUDGE_MODEL.family == "model" and JUDGE_MODEL.load_runtime() is RUNTIME
    entry = {
        "kind": "judge_model",
        "labelled": "data/judge/labelled.jsonl",
        "generated_from": [
            {"golden": "data/golden/kbqa_build.jsonl", "knowledge_base": "data/kbqa/knowledge_base.yaml"}
        ],
    }
    member = JudgeModel.model_validate(entry)
    assert member.upstream == () and not member.from_data
    # What it trains from is an input of its build: an edited label or golden case retrains it.
    assert [p.relative_to(REPO).as_posix() for p in RUNTIME.source_files(member, REPO)] == [
        "data/judge/labelled.jsonl",
        "data/golden/kbqa_build.jsonl",
        "data/kbqa/knowledge_base.yaml",
    ]
    with pytest.raises(ValidationError, match="data"):
        JudgeModel.model_validate({**entry, "data": "messages"})
    with pytest.raises(ValidationError, match="generated_from"):
        JudgeModel.model_validate({**entry, "generated_from": []})


def test_a_model_judge_needs_a_judge_model_among_the_chains_models(tmp_path, monkeypatch):
    from release_assets.models import trainers as registry

    class Fake:
        def __init__(self, cls):
            self.cls = cls

        def load(self, path):
            return self.cls()

    monkeypatch.setitem(registry.MODEL_KINDS, "fake_intent", Fake(KeywordIntents))
    monkeypatch.setitem(registry.MODEL_KINDS, "fake_vision", Fake(PixelSumDigits))
    models = {"intent_model": ("fake_intent", Path("unused")), "vision_model": ("fake_vision", Path("unused"))}
    section = {"backend": "model", "rubrics": {"tone": {"template": "judge/tone.j2"}}}
    chain = _chain(tmp_path, section)
    with pytest.raises(ChainSpecError, match=r"judge\.backend: model needs exactly one judge_model .*\(found none"):
        _evaluate(tmp_path, chain, models, tmp_path / "cache", "none", cases=3)


def test_the_judge_score_histogram_is_a_small_deterministic_png():
    from release_assets.plots.chain import judge_scores

    part = {"thresholds": {"factual_consistency": 0.5, "tone": 0.6}, "backend": "model", "pass_rate": 0.9}
    scores = [0.1, 0.45, 0.55, 0.7, 0.9, 0.95, 0.99]
    first, again = judge_scores(scores, part), judge_scores(scores, part)
    assert first is not None and again is not None
    assert first.name == "judge_scores" and first.png.startswith(b"\x89PNG") and len(first.png) < 60_000
    assert first.png == again.png  # no clock, no software chunk: the same evidence, the same bytes
    assert judge_scores([], part) is None
