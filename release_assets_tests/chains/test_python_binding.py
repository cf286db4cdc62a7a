"""The python binding (issue #25, item 7): a step whose binding is ``python:package.module:function`` calls a
function of the team's own package (fixtures/chain_steps) with the rendered text and the context; its answer is
validated against the step's output schema like any binding's, what it raises is that step's error, a reference
that cannot be found is refused at load naming file, step and field, the function is imported only when the
chain is built or run, its module's closure is the chain's code version, and the chain is evaluated on its golden
suite and served from a bundle like any other."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from release_assets.artifacts import LocalArtifactStore
from release_assets.chains import bindings
from release_assets.chains.assets import chain_assets
from release_assets.chains.build import PYTHON_STEPS_FILE, build_chain
from release_assets.chains.runner import ChainRequest, ChainRunner, KnowledgeBase
from release_assets.chains.spec import ChainSpecError, load_chain
from release_assets.core import hashing
from release_assets.evaluation.chain_evaluation import build_chain_evaluation
from release_assets.evaluation.golden import score
from release_assets.keys import chain as chain_key
from release_assets.manifest import parse_manifest
from release_assets.release.publish import build_manifest, publish_release
from release_assets.release.store import LocalReleaseStore
from release_assets.serving.loader import StepFailed, load_release, release_from_dirs

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "chain_steps"  # holds the package chain_steps
STEPS = "chain_steps.steps"

CLASSIFY = {
    "id": "classify",
    "template": "message.j2",
    "binding": f"python:{STEPS}:classify",
    "output": {"intent": {"type": "enum", "enum": ["refund", "order_status", "other"]}, "confidence": "float"},
}
EXTRACT = {
    "id": "extract",
    "template": "message.j2",
    "binding": f"python:{STEPS}:extract",
    "output": {"order_id": "str?", "amount": "float?"},
}
REPLY = {"id": "reply", "template": "reply.j2", "binding": "template", "output": {"reply": "str"}}
EVALUATION = {"intent": "classify.intent", "entities": "extract", "reply": "reply.reply"}
KB = KnowledgeBase(facts={"refunds": "Refunds reach your card within 5 days."}, products=[])


def _forget_sources() -> None:
    """The hashing module reads each module once per process; a test that moves or edits one starts afresh."""
    for cached in (hashing.module_file, hashing.module_source, hashing.imported_modules, hashing._closure_of):
        cached.cache_clear()


@pytest.fixture
def on_path(monkeypatch):
    """The team's package importable, as installing it would make it."""
    monkeypatch.syspath_prepend(str(FIXTURE))
    _forget_sources()
    yield
    _forget_sources()


def _chain(folder: Path, steps: list[dict[str, Any]], evaluation: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "message.j2").write_text("{{ message }}\n")
    (folder / "reply.j2").write_text(
        "{% if classify.intent == 'refund' %}Refund of ${{ extract.amount }} for order {{ extract.order_id }} "
        "started. {{ kb.refunds }}{% elif extract.order_id %}Order {{ extract.order_id }} is on its way."
        "{% else %}How can I help?{% endif %}\n"
    )
    spec = {"name": "team_desk", "steps": steps, **({"evaluation": evaluation} if evaluation else {})}
    (folder / "chain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def _runner(folder: Path) -> ChainRunner:
    spec, schemas = load_chain(folder, {})
    return ChainRunner(spec, schemas, {}, KB)


class _Observer:
    def __init__(self) -> None:
        self.steps: list[tuple[str, str, Any, dict[str, Any] | None, str | None, str]] = []

    def on_step(self, request_id, step_id, rendered, raw, output, error, latency_ms, binding) -> None:
        self.steps.append((request_id, step_id, raw, output, error, binding))


# -- the binding --


def test_a_python_step_gets_the_rendered_text_and_the_earlier_outputs_and_answers_schema_valid(on_path, tmp_path):
    spec, schemas = load_chain(_chain(tmp_path, [CLASSIFY, EXTRACT]), {})
    function = bindings.import_step_function(f"{STEPS}:extract")
    context = {"message": "A refund of $12.50 for 12345", "attachment": False, "kb": {}, "products": []}
    value, error = bindings.call_python(
        spec.step("extract"), function, "A refund of $12.50 for 12345", {**context, "classify": {"intent": "refund"}}
    )
    assert error is None
    assert schemas["extract"].model_validate(value).model_dump() == {"order_id": "12345", "amount": 12.5}

    results = ChainRunner(spec, schemas, {}, KB).run(
        [ChainRequest("1", "A refund of $12.50 for order 12345"), ChainRequest("2", "Where is 54321? I paid $3")]
    )
    assert all(r.format_valid for r in results), [r.errors for r in results]
    assert results[0].outputs == {
        "classify": {"intent": "refund", "confidence": 1.0},
        "extract": {"order_id": "12345", "amount": 12.5},
    }
    # The second step read the first one's decision: not a refund, so no amount is read.
    assert results[1].outputs["extract"] == {"order_id": "54321", "amount": None}
    assert set(results[0].usage) == {"classify", "extract"}  # latency recorded like any offline step


def test_the_context_a_function_gets_is_a_copy(on_path, tmp_path):
    mutating = {**EXTRACT, "binding": f"python:{STEPS}:mutates"}
    runner = _runner(_chain(tmp_path, [CLASSIFY, mutating, REPLY]))
    [result] = runner.run([ChainRequest("1", "refund order 12345 of $5")])
    assert result.format_valid, result.errors
    assert result.outputs["classify"]["intent"] == "refund"
    assert "Refunds reach your card" in result.outputs["reply"]["reply"]  # the knowledge base is intact too
    assert runner.kb.facts == KB.facts


@pytest.mark.parametrize(
    ("function", "problem"),
    [
        ("wrong_type", "amount: Input should be a valid number, unable to parse string as a number"),
        ("not_a_dict", "Input should be a valid dictionary"),
        ("returns_none", f"{STEPS}:returns_none returned None, not a dict of the step's output fields"),
    ],
)
def test_a_wrong_output_is_a_schema_failure_of_that_step(on_path, tmp_path, function, problem):
    runner = _runner(_chain(tmp_path, [CLASSIFY, {**EXTRACT, "binding": f"python:{STEPS}:{function}"}, REPLY]))
    observer = _Observer()
    [result] = runner.run([ChainRequest("1", "refund 12345")], observer=observer)
    assert set(result.errors) == {"extract"} and problem in result.errors["extract"], result.errors
    assert "\n" not in result.errors["extract"]
    assert not result.format_valid and set(result.outputs) == {"classify"}  # the reply step never ran
    # Traced like every step: the observer (serving's spans, the golden run's) sees the failure of this binding.
    [(_, step, _, output, error, binding)] = [s for s in observer.steps if s[1] == "extract"]
    assert (step, output, error, binding) == ("extract", None, result.errors["extract"], f"python:{STEPS}:{function}")
    # Counted like every schema failure: format_valid, and the most common format errors by step.
    summary = score([{"id": "1", "message": "refund 12345"}], [result])
    assert summary["metrics"]["format_valid"] == 0.0
    assert summary["format_errors"] == [{"step": "extract", "message": result.errors["extract"], "count": 1}]


def test_what_the_function_raises_is_that_steps_error_and_the_other_cases_run_on(on_path, tmp_path):
    runner = _runner(_chain(tmp_path, [CLASSIFY, {**EXTRACT, "binding": f"python:{STEPS}:broken"}, REPLY]))
    failed, fine = runner.run([ChainRequest("a", "where is 12345"), ChainRequest("b", "where is my parcel")])
    assert failed.errors == {
        "extract": f"{STEPS}:broken raised ConnectionError: the order service is unreachable"  # one line
    }
    assert set(failed.outputs) == {"classify"}
    assert fine.format_valid and fine.outputs["reply"] == {"reply": "How can I help?"}


# -- load, build and run-time checks --


def _load_error(folder: Path) -> str:
    with pytest.raises(ChainSpecError) as info:
        load_chain(folder, {})
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


@pytest.mark.parametrize(
    ("binding", "problem"),
    [
        ("python:not a dotted", "binding: 'python:not a dotted' is not `python:package.module:function`"),
        (f"python:{STEPS}", f"binding: 'python:{STEPS}' is not `python:package.module:function`"),
        ("python", "binding: 'python' is not `python:package.module:function`"),
        (
            "python:no_such_team_pkg.steps:extract",
            "binding: 'python:no_such_team_pkg.steps:extract' names no module 'no_such_team_pkg.steps' that can be "
            "found (is its package installed, or on PYTHONPATH?)",
        ),
        (
            "python:chain_steps.stepz:extract",  # the package is found, the module in it is not
            "binding: 'python:chain_steps.stepz:extract' names no module 'chain_steps.stepz' that can be found "
            "(is its package installed, or on PYTHONPATH?)",
        ),
    ],
)
def test_a_bad_reference_is_one_line_naming_file_step_and_field(on_path, tmp_path, binding, problem):
    folder = _chain(tmp_path, [CLASSIFY, {**EXTRACT, "binding": binding}])
    assert _load_error(folder) == f"{folder / 'chain.yaml'}: steps[1] (extract): {problem}"


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        (
            "chain_steps.explodes:extract",
            "'chain_steps.explodes:extract' does not import: RuntimeError: this module needs a database connection "
            "at import",
        ),
        (f"{STEPS}:nope", f"'{STEPS}:nope': module {STEPS} has no function 'nope'"),
        (f"{STEPS}:NOT_A_FUNCTION", f"'{STEPS}:NOT_A_FUNCTION': module {STEPS} has no function 'NOT_A_FUNCTION'"),
        (f"{STEPS}:no_arguments", f"'{STEPS}:no_arguments' cannot be called as no_arguments(text, context)"),
    ],
)
def test_the_function_is_imported_when_the_chain_is_built_or_run_not_when_it_loads(on_path, tmp_path, ref, problem):
    folder = _chain(tmp_path / "chain", [CLASSIFY, {**EXTRACT, "binding": f"python:{ref}"}])
    spec, schemas = load_chain(folder, {})  # found, not imported: checking a chain runs none of the team's code
    assert "chain_steps.explodes" not in sys.modules
    expected = f"{folder / 'chain.yaml'}: steps[1] (extract): binding: {problem}"
    for attempt in (
        lambda: ChainRunner(spec, schemas, {}, KB),
        lambda: build_chain(folder, None, {}, tmp_path / "out"),
    ):
        with pytest.raises(ChainSpecError) as info:
            attempt()
        assert str(info.value).startswith(expected), str(info.value)
        assert "\n" not in str(info.value)


def test_a_variant_chain_file_is_named_in_run_time_errors(on_path, tmp_path):
    folder = _chain(tmp_path, [CLASSIFY, {**EXTRACT, "binding": f"python:{STEPS}:nope"}])
    (folder / "chain.yaml").rename(folder / "chain.team.yaml")
    spec, schemas = load_chain(folder, {}, "chain.team.yaml")
    with pytest.raises(ChainSpecError, match=r"chain\.team\.yaml: steps\[1\] \(extract\): binding: "):
        ChainRunner(spec, schemas, {}, KB)


# -- code version --


def test_editing_the_step_functions_package_changes_the_chains_code_version(tmp_path, monkeypatch):
    team = tmp_path / "team"
    shutil.copytree(FIXTURE / "chain_steps", team / "chain_steps", ignore=shutil.ignore_patterns("__pycache__"))
    for name in [m for m in sys.modules if m == "chain_steps" or m.startswith("chain_steps.")]:
        monkeypatch.delitem(sys.modules, name)  # find_spec answers from sys.modules: this copy is the one found
    monkeypatch.syspath_prepend(str(team))
    project = tmp_path / "project"
    _chain(project / "prompts" / "desk", [CLASSIFY, EXTRACT, REPLY], EVALUATION)
    (project / "golden.jsonl").write_text("")
    manifest = parse_manifest(
        {
            "name": "desk",
            "owners": ["team@example.com"],
            "members": {
                "chain": {"kind": "prompt_chain", "path": "prompts/desk", "uses": [], "golden": "golden.jsonl"}
            },
        },
        "desk.yaml",
    )

    def version() -> tuple[str, list[str]]:
        _forget_sources()
        [asset] = chain_assets(manifest, project)
        key = dg.AssetKey(chain_key("desk", "chain"))
        return asset.code_versions_by_key[key], asset.metadata_by_key[key]["code_inputs"]["files"]

    try:
        before, watched = version()
        # The step module, its package and the helper it imports are watched (the code-change sensor reads this).
        for module in ("__init__.py", "steps.py", "money.py"):
            assert str((team / "chain_steps" / module).resolve()) in watched
        assert str((team / "chain_steps" / "explodes.py").resolve()) not in watched  # not imported by steps
        steps = team / "chain_steps" / "steps.py"
        steps.write_text(steps.read_text().replace('"refund" in lowered', '"refund" in lowered or "money" in lowered'))
        edited, _ = version()
        assert edited != before
        money = team / "chain_steps" / "money.py"
        money.write_text(money.read_text() + "\n# a helper the step imports is part of it too\n")
        assert version()[0] not in (before, edited)
    finally:
        _forget_sources()


# -- golden evaluation and serving, end to end --

CASES = [
    {
        "id": "refund",
        "message": "I want a refund of $12.50 for order 12345",
        "expected": {"intent": "refund", "entities": {"order_id": "12345", "amount": 12.5}},
        "must_contain": ["Refund of $12.5 for order 12345", "within 5 days"],
    },
    {
        "id": "status",
        "message": "Where is order 54321?",
        "expected": {"intent": "order_status", "entities": {"order_id": "54321"}},
        "must_contain": ["Order 54321 is on its way"],
    },
    {"id": "hello", "message": "hello there", "expected": {"intent": "other", "entities": {}}},
]


def test_a_chain_with_python_steps_is_evaluated_on_its_golden_suite_and_served_from_its_bundle(on_path, tmp_path):
    folder = _chain(tmp_path / "prompts" / "desk", [CLASSIFY, EXTRACT, REPLY], EVALUATION)
    kb = tmp_path / "kb.yaml"
    kb.write_text(yaml.safe_dump({"facts": KB.facts, "products": []}))
    golden = tmp_path / "golden.jsonl"
    golden.write_text("".join(json.dumps(c) + "\n" for c in CASES))

    cache = LocalArtifactStore(tmp_path / "cache")
    ref, _ = cache.build(
        release="desk",
        member="chain",
        kind="prompt_chain",
        fingerprint="python-steps",
        builder=lambda out: build_chain(folder, kb, {}, out),
    )
    built = ref.path(cache.root)
    # The code is referenced, with the digests of the source it was built from; nothing of it is copied or pickled.
    recorded = json.loads((built / PYTHON_STEPS_FILE).read_text())
    assert recorded["extract"]["function"] == f"{STEPS}:extract"
    assert set(recorded["extract"]["modules"]) == {"chain_steps", STEPS, "chain_steps.money"}
    assert {Path(p).suffix for p in ref.files} <= {".yaml", ".j2", ".json"}

    out = tmp_path / "evaluation"
    out.mkdir()
    summary = build_chain_evaluation(built, {}, golden, out)
    metrics = summary["metrics"]
    assert metrics["format_valid"] == metrics["intent_accuracy"] == metrics["entity_f1"] == 1.0, summary
    assert metrics["required_facts"] == 1.0, summary["examples"]
    spans = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
    assert f"python:{STEPS}:extract" in json.dumps(spans)  # each python step is a span of the golden run

    store = LocalReleaseStore(tmp_path / "store")
    manifest = build_manifest("desk", {"chain": ref}, [], {})
    publish_release(cache, store, "desk", {"chain": ref}, manifest)
    loaded = load_release(store, "desk", version=manifest["version"], cache_dir=tmp_path / "serving")
    answer = loaded.predict({"message": "I want a refund of $12.50 for order 12345"}, request_id="r-1")
    assert answer["intent"] == "refund" and answer["entities"] == {"order_id": "12345", "amount": 12.5}
    assert answer["reply"].startswith("Refund of $12.5 for order 12345 started.")
    assert {"classify", "extract", "reply", "total"} <= set(answer["latency_ms"])

    # A step function that raises while serving fails that request (a 500 naming the step), not the server.
    broken_steps = [CLASSIFY, {**EXTRACT, "binding": f"python:{STEPS}:broken"}, REPLY]
    broken = _chain(tmp_path / "broken", broken_steps, EVALUATION)
    (tmp_path / "broken_built").mkdir()
    build_chain(broken, None, {}, tmp_path / "broken_built")
    served = release_from_dirs("desk", "v-broken", {"chain": ("prompt_chain", tmp_path / "broken_built")})
    with pytest.raises(StepFailed) as failed:
        served.predict({"message": "where is 12345"})
    raised = f"{STEPS}:broken raised ConnectionError: the order service is unreachable"
    assert failed.value.errors == {"extract": raised}
    assert served.predict({"message": "where is my parcel"})["reply"] == "How can I help?"
