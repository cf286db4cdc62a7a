"""Repeated golden runs: a non-deterministic binding's unstable cases are reported as flaky."""

import random
import shutil
from pathlib import Path

import numpy as np

from release_assets.chains.knowledge import load_knowledge_base
from release_assets.chains.runner import ChainRunner
from release_assets.chains.spec import load_chain
from release_assets.evaluation.golden import repeat_outcomes
from release_assets.evaluation.golden_inputs import load_cases, to_requests
from release_assets_tests.fakes import KeywordIntents, PixelSumDigits

REPO = Path(__file__).resolve().parents[2]


class CoinFlipIntents(KeywordIntents):
    """Answers like a sampled LLM: right most of the time, different on some runs."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def predict_proba(self, rows):
        proba = super().predict_proba(rows)
        for row in proba:
            if self.rng.random() < 0.3:
                row[:] = 0.01
                row[self.rng.randrange(len(self.labels))] = 0.9
        return np.asarray(proba)


def _runner(tmp_path, intents) -> tuple[ChainRunner, list[dict]]:
    chain = tmp_path / "helpdesk"
    shutil.copytree(REPO / "prompts" / "helpdesk", chain)
    predictors = {"intent_model": intents, "vision_model": PixelSumDigits()}
    spec, schemas = load_chain(chain, {k: v.labels for k, v in predictors.items()})
    kb = load_knowledge_base(REPO / "data" / "support" / "knowledge_base.yaml")
    cases = load_cases(REPO / "data" / "golden" / "helpdesk.jsonl")[:40]
    return ChainRunner(spec, schemas, predictors, kb), cases


def test_deterministic_bindings_are_never_flaky(tmp_path):
    runner, cases = _runner(tmp_path, KeywordIntents())
    out = repeat_outcomes(runner, cases, runner.run(to_requests(cases)), repeats=3)
    assert out["metrics_extra"] == {"flaky_rate": 0.0, "repeats": 3}
    assert out["flaky_cases"] == []


def test_a_sampling_binding_reports_its_flaky_cases(tmp_path):
    runner, cases = _runner(tmp_path, CoinFlipIntents(seed=1))
    out = repeat_outcomes(runner, cases, runner.run(to_requests(cases)), repeats=4)
    assert out["metrics_extra"]["flaky_rate"] > 0.3
    assert out["flaky_cases"] and {"id", "message", "outcomes"} <= set(out["flaky_cases"][0])
