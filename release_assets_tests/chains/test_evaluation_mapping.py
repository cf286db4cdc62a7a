"""The chain's `evaluation:` mapping decides which step output each golden field is scored against: a chain whose
steps are named differently is scored exactly like the one it was renamed from, and a mapping that names a step
or field the chain lacks is refused when the chain loads."""

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from release_assets.chains.build import build_chain
from release_assets.chains.knowledge import load_knowledge_base
from release_assets.chains.runner import ChainRunner
from release_assets.chains.spec import ChainSpecError, load_chain
from release_assets.evaluation.chain_evaluation import build_chain_evaluation
from release_assets.evaluation.golden import repeat_outcomes, score
from release_assets.evaluation.golden_inputs import GoldenSuiteError, load_cases, to_requests
from release_assets.models import trainers as registry
from release_assets_tests.chains.test_repeats import CoinFlipIntents
from release_assets_tests.fakes import KeywordIntents, PixelSumDigits

REPO = Path(__file__).resolve().parents[2]
KB = REPO / "data" / "support" / "knowledge_base.yaml"
GOLDEN = REPO / "data" / "golden" / "helpdesk.jsonl"
# The helpdesk chain's steps and models under other names: nothing in evaluation may know the old ones.
RENAMES = {
    "classify_intent": "route",
    "extract_entities": "slots",
    "generate_response": "compose",
    "intent_model": "router_model",
    "vision_model": "ocr_model",
}


def _rename(text: str) -> str:
    for old, new in RENAMES.items():
        text = text.replace(old, new)
    return text


@pytest.fixture
def chains(tmp_path) -> tuple[Path, Path]:
    """The shipped helpdesk chain, and a copy whose steps, fields, files and models are all named differently."""
    original = tmp_path / "helpdesk"
    shutil.copytree(REPO / "prompts" / "helpdesk", original)
    renamed = tmp_path / "renamed"
    for path in sorted(original.rglob("*")):
        if path.is_file():
            target = renamed / _rename(path.relative_to(original).as_posix())
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(_rename(path.read_text()))
    # The classifier's label field gets another name too, so `intent` is found through the mapping alone.
    chain = renamed / "chain.yaml"
    chain.write_text(
        chain.read_text()
        .replace("      intent: {type: enum", "      topic: {type: enum")
        .replace("route.intent", "route.topic")
    )
    return original, renamed


def _runner(chain_dir: Path, intents=None, names=("intent_model", "vision_model")) -> ChainRunner:
    predictors = dict(zip(names, (intents or KeywordIntents(), PixelSumDigits()), strict=True))
    spec, schemas = load_chain(chain_dir, {k: v.labels for k, v in predictors.items()})
    return ChainRunner(spec, schemas, predictors, load_knowledge_base(KB))


RENAMED_MODELS = ("router_model", "ocr_model")


def test_a_chain_with_other_step_names_is_scored_through_its_mapping(chains):
    original, renamed = chains
    spec = yaml.safe_load((renamed / "chain.yaml").read_text())
    assert [s["id"] for s in spec["steps"]] == ["route", "slots", "compose"]
    assert spec["evaluation"] == {
        "intent": "route.topic",
        "entities": "slots",
        "reply": "compose.reply",
        "abstained": "compose.abstained",
    }
    cases = load_cases(GOLDEN)[:60]
    before = _runner(original)
    after = _runner(renamed, names=RENAMED_MODELS)
    want = score(cases, before.run(to_requests(cases)), before.spec.evaluation)
    got = score(cases, after.run(to_requests(cases)), after.spec.evaluation)
    assert got == want
    assert {
        "intent_accuracy",
        "entity_f1",
        "required_facts",
        "forbidden_absent",
        "reply_similarity",
        "abstain_rate",
        "confident_wrong_rate",
    } <= set(got["metrics"])
    assert 0 < got["metrics"]["intent_accuracy"] < 1 and got["examples"]  # a real comparison, not all-pass


def test_an_unmapped_field_is_not_measured(chains):
    _, renamed = chains
    chain = renamed / "chain.yaml"
    data = yaml.safe_load(chain.read_text())
    data["evaluation"] = {"reply": "compose.reply"}
    chain.write_text(yaml.safe_dump(data, sort_keys=False))
    runner = _runner(renamed, names=RENAMED_MODELS)
    cases = load_cases(GOLDEN)[:20]
    metrics = score(cases, runner.run(to_requests(cases)), runner.spec.evaluation)["metrics"]
    assert "intent_accuracy" not in metrics and "entity_f1" not in metrics
    assert {"format_valid", "required_facts", "forbidden_absent", "reply_similarity", "cases"} <= set(metrics)
    # Nothing mapped: only format validity is measured.
    assert set(score(cases, runner.run(to_requests(cases)))["metrics"]) == {"format_valid", "cases"}


def test_flaky_outcomes_follow_the_mapping(chains):
    original, renamed = chains
    cases = load_cases(GOLDEN)[:40]
    outcomes = []
    for chain_dir, names in ((original, ("intent_model", "vision_model")), (renamed, RENAMED_MODELS)):
        runner = _runner(chain_dir, CoinFlipIntents(seed=3), names)
        outcomes.append(repeat_outcomes(runner, cases, runner.run(to_requests(cases)), repeats=3))
    assert outcomes[0] == outcomes[1]
    assert outcomes[1]["metrics_extra"]["flaky_rate"] > 0.2  # the renamed intent step is the one compared


def test_build_chain_evaluation_reads_the_mapping(chains, tmp_path, monkeypatch):
    _, renamed = chains
    fakes = {"router_model": KeywordIntents(), "ocr_model": PixelSumDigits()}
    monkeypatch.setitem(registry.MODEL_KINDS, "fake", SimpleNamespace(load=lambda path: fakes[path.name]))
    # helpdesk judges its replies with its release's judge_model, which these fakes do not include: the judge is
    # not what this test measures, so the chain is evaluated without its judge section (with the section and no
    # judge_model, the evaluation refuses the chain, as it should for a real release).
    chain = renamed / "chain.yaml"
    data = yaml.safe_load(chain.read_text())
    del data["judge"]
    chain.write_text(yaml.safe_dump(data, sort_keys=False))
    artifact, out = tmp_path / "artifact", tmp_path / "out"
    artifact.mkdir(), out.mkdir()
    build_chain(renamed, KB, {k: v.labels for k, v in fakes.items()}, artifact)
    golden = tmp_path / "golden.jsonl"
    golden.write_text("".join(GOLDEN.read_text().splitlines(keepends=True)[:30]))
    summary = build_chain_evaluation(artifact, {name: ("fake", Path(name)) for name in fakes}, golden, out)
    m = summary["metrics"]
    assert m["cases"] == 30 and m["format_valid"] == 1.0
    assert 0 < m["intent_accuracy"] < 1 and 0 < m["entity_f1"] <= 1 and 0 < m["required_facts"] <= 1
    worst = summary["examples"][0]
    assert worst["problems"] and worst["expected"] and worst["got"]
    assert "| intent_accuracy |" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    ("evaluation", "message"),
    [
        ({"intent": "route.label"}, r"evaluation\.intent: 'route\.label': step route has no output field 'label'"),
        ({"reply": "write.reply"}, r"evaluation\.reply: 'write\.reply': no step 'write' \(steps: route, slots, comp"),
        ({"entities": "slots.order_id"}, r"evaluation\.entities: 'slots\.order_id': expected a step id"),
        ({"intent": "route"}, r"evaluation\.intent: 'route': expected <step>\.<output field>"),
        ({"reply": "compose.escalate"}, r"evaluation\.reply: .*compose\.escalate is a bool, a reply must be a str"),
        ({"intnet": "route.topic"}, r"chain\.yaml: evaluation\.intnet: Extra inputs are not permitted"),
    ],
)
def test_a_wrong_mapping_is_a_load_time_error_naming_the_field(chains, evaluation, message):
    _, renamed = chains
    chain = renamed / "chain.yaml"
    data = yaml.safe_load(chain.read_text())
    data["evaluation"] = evaluation
    chain.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ChainSpecError, match=message) as info:
        load_chain(renamed, {"router_model": KeywordIntents.labels, "ocr_model": PixelSumDigits.labels})
    assert str(info.value).startswith(str(chain)) and "\n" not in str(info.value)


def test_the_golden_suite_needs_an_expected_intent_only_when_intent_is_mapped(chains, tmp_path):
    _, renamed = chains
    runner = _runner(renamed, names=RENAMED_MODELS)
    golden = tmp_path / "golden.jsonl"
    golden.write_text('{"id": "a", "message": "where is my refund", "must_contain": ["30 days"]}\n')
    with pytest.raises(GoldenSuiteError, match=r"golden\.jsonl:1: not a golden case \(KeyError: 'expected'\)"):
        load_cases(golden, runner.spec.evaluation)
    runner.spec.evaluation.intent = None
    runner.spec.evaluation.entities = None
    cases = load_cases(golden, runner.spec.evaluation)
    summary = score(cases, runner.run(to_requests(cases)), runner.spec.evaluation)
    assert summary["metrics"]["required_facts"] == 1.0


def test_shipped_helpdesk_variants_map_the_same_steps():
    shared = {"intent": "classify_intent.intent", "entities": "extract_entities", "reply": "generate_response.reply"}
    for variant, abstains in (("chain.yaml", True), ("chain.llm.yaml", False)):
        data = yaml.safe_load((REPO / "prompts" / "helpdesk" / variant).read_text())
        # The LLM's reply step has no clarify path, so only the template chain maps `abstained`.
        assert data["evaluation"] == {
            **shared,
            **({"abstained": "generate_response.abstained"} if abstains else {}),
        }, variant
        load_chain(REPO / "prompts" / "helpdesk", {"intent_model": KeywordIntents.labels, "vision_model": []}, variant)
