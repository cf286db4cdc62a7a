"""The golden evaluation's circuit breaker (#27 item 4): a chain whose early cases fail validation stops after
`min_cases`, the cases left are never run, the gate sees the cases run, and an alert reaches the webhook."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from release_assets.chains.knowledge import load_knowledge_base
from release_assets.chains.runner import ChainRunner
from release_assets.chains.spec import load_chain
from release_assets.evaluation.breaker import BreakerSettings
from release_assets.evaluation.golden import evaluate
from release_assets.evaluation.golden_inputs import load_cases
from release_assets.manifest import Threshold
from release_assets.manifest.models import PromptChain
from release_assets.promotion.policy import threshold_verdict
from release_assets_tests.fakes import KeywordIntents, PixelSumDigits
from release_assets_tests.webhooks import webhook_receiver

REPO = Path(__file__).resolve().parents[2]


class CountingRunner(ChainRunner):
    """The helpdesk chain, counting the requests it runs; with ``broken`` every reply fails its schema."""

    def __init__(self, *args, broken: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.broken, self.seen = broken, set()

    def run(self, requests, observer=None):
        self.seen |= {r.id for r in requests}
        results = super().run(requests, observer)
        if self.broken:
            for res in results:
                res.errors["generate_response"] = "reply: Field required"
        return results


def _runner(tmp_path: Path, broken: bool) -> tuple[CountingRunner, list[dict]]:
    chain = tmp_path / "helpdesk"
    shutil.copytree(REPO / "prompts" / "helpdesk", chain)
    predictors = {"intent_model": KeywordIntents(), "vision_model": PixelSumDigits()}
    spec, schemas = load_chain(chain, {k: v.labels for k, v in predictors.items()})
    kb = load_knowledge_base(REPO / "data" / "support" / "knowledge_base.yaml")
    cases = load_cases(REPO / "data" / "golden" / "helpdesk.jsonl")[:100]
    return CountingRunner(spec, schemas, predictors, kb, broken=broken), cases


def test_the_breaker_stops_an_evaluation_whose_early_cases_fail(tmp_path):
    runner, cases = _runner(tmp_path, broken=True)
    summary, results = evaluate(runner, cases, BreakerSettings(max_failure_rate=0.5, min_cases=20, batch=10))
    assert len(results) == 20 and summary["metrics"]["cases"] == 20
    assert summary["breaker"] == {
        "tripped": True,
        "cases_run": 20,
        "cases_skipped": 80,
        "failure_rate": 1.0,
        "max_failure_rate": 0.5,
        "min_cases": 20,
    }
    # (evaluate also times some of the cases it ran, one by one: only those, never a case after the stop)
    assert runner.seen == {c["id"] for c in cases[:20]}, "a case after the breaker tripped was run"
    assert summary["metrics"]["stopped_early"] == 1.0 and summary["metrics"]["format_valid"] == 0.0
    for gate, t in (("stopped_early", Threshold(max=0)), ("format_valid", Threshold(min=0.99))):
        assert threshold_verdict("chain", gate, summary["metrics"][gate], t).status == "failed"


def test_a_healthy_evaluation_runs_every_case(tmp_path):
    runner, cases = _runner(tmp_path, broken=False)
    summary, results = evaluate(runner, cases, BreakerSettings(max_failure_rate=0.5, min_cases=20, batch=10))
    assert len(results) == 100 and "breaker" not in summary and summary["metrics"]["stopped_early"] == 0.0


def test_a_stopped_evaluation_alerts_the_webhook(monkeypatch):
    from release_assets.evaluation.assets import _alert_stopped

    logged: list[str] = []
    context = SimpleNamespace(run_id="run-1", log=SimpleNamespace(warning=logged.append))
    stopped = {"breaker": {"cases_run": 20, "cases_skipped": 80, "failure_rate": 1.0, "max_failure_rate": 0.5}}
    with webhook_receiver() as (url, received):
        monkeypatch.setenv("RELEASE_ASSETS_GATE_WEBHOOK", url)
        _alert_stopped(context, "helpdesk", "chain", stopped)
        _alert_stopped(context, "helpdesk", "chain", {"metrics": {}})  # ran to the end: no alert
    assert len(received) == 1 and received[0]["breaker"]["cases_skipped"] == 80
    assert "stopped after 20 cases" in received[0]["text"] and logged == [received[0]["text"]]


def test_the_breaker_settings_are_checked():
    member = {"kind": "prompt_chain", "path": "p", "uses": [], "golden": "g"}
    with pytest.raises(ValueError, match="max_failure_rate"):
        PromptChain.model_validate({**member, "breaker": {"max_failure_rate": 1.5}})
    chain = PromptChain.model_validate({**member, "breaker": {"max_failure_rate": 0.3}})
    assert chain.breaker is not None and chain.breaker.min_cases == 20
