"""Every gate a manifest may name, declared once: which member kinds may have it, which asset it reads, the bound it
takes and the range of that bound. (When a gate cannot decide, every gate holds unless its manifest entry says
`on_inconclusive: warn`: one safe default, in ``manifest.Threshold``, rather than a per-gate one to remember.)

Manifest validation (names, bounds, ranges: :func:`check_thresholds`), the checks (which asset each is attached
to) and the release unit all read these rules; how each gate decides is attached to its rule in
``promotion/gate_table.py``. Adding a gate is one rule here, one decide function there (or none: a metric the
member's summary reports is compared with the bound), and a fixture that makes it fail. A model member that names
its own ``metrics:`` function may also gate any metric that function returns (:func:`user_metric_rule`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from release_assets.manifest.errors import ManifestError
from release_assets.manifest.kinds import Family, Task, member_kind

if TYPE_CHECKING:
    from release_assets.manifest.models import Threshold

CLASSIFICATION: frozenset[Task] = frozenset({"multiclass", "binary"})

UNIT = (0.0, 1.0)  # rates, shares, accuracies, F1, similarity
NON_NEGATIVE = (0.0, None)  # latencies, throughput, tokens, cost, calls, row counts
RATE_DIFF = (-1.0, 1.0)  # a rate's change, candidate minus champion
LATENCY_DIFF = (-60_000.0, 60_000.0)  # ms, faster is negative; a minute either way would be a unit mistake


@dataclass(frozen=True)
class GateRule:
    name: str
    family: Family  # the family that reports it (latency: models and chains); which kinds support it, each declares
    # The asset the gate reads, so the one its check is attached to: raw rows, the split, the model's report, the
    # chain's evaluation; "summary" is whichever of those reports the member's metrics (raw, report, evaluation).
    # "built" is the member's own built artifact (a model, a chain), before anything evaluates it.
    reads: Literal["summary", "raw", "split", "model", "report", "evaluation", "shadow", "built"]
    range: tuple[float | None, float | None] = UNIT
    needs: Literal["min", "max", "any"] = "any"  # the bound the manifest must give
    whole: bool = False  # counts rows: compared as integers, so `max: 0.5` would silently mean 0
    fixed_max: float | None = None  # drift: any drifted feature fails, so the only meaningful `max` is 0
    # A member field the gate's input needs (shadow gates replay the chain's recorded `traffic`).
    requires: str | None = None
    tasks: frozenset[Task] | None = None  # models: the tasks whose evaluation reports it (None: every task)
    # A metric the member's own `metrics:` function returns (any name, any bound): not measured fails the gate.
    user_metric: bool = False

    def role(self, kind: str) -> str:
        if self.reads == "built":
            return {"dataset": "split", "model": "model", "chain": "chain"}[member_kind(kind).family]
        if self.reads != "summary":
            return self.reads
        return {"dataset": "raw", "model": "report", "chain": "evaluation"}[member_kind(kind).family]


def _metrics(
    family: Family, names: tuple[str, ...], rng=UNIT, tasks: frozenset[Task] | None = None, needs="any"
) -> list[GateRule]:
    return [GateRule(n, family, "summary", rng, needs, tasks=tasks) for n in names]


def _shadow(name: str, rng: tuple[float | None, float | None], needs: Literal["min", "max"]) -> GateRule:
    return GateRule(name, "chain", "shadow", rng, needs, requires="traffic")


_RULES: list[GateRule] = [
    # what a consumer expects of the members it is built from, against what they offer (manifest/contracts.py):
    # the number of unmet expectations. On by default for every member that has any (``default_gates``).
    GateRule("contract", "chain", "built", NON_NEGATIVE, "max", True),
    # data: raw rows, then the split
    GateRule("invalid_rows", "dataset", "summary", NON_NEGATIVE, whole=True),
    GateRule("rows", "dataset", "summary", NON_NEGATIVE),
    GateRule("duplicates", "dataset", "raw", NON_NEGATIVE, "max", True),
    GateRule("leakage", "dataset", "split", NON_NEGATIVE, "max", True),
    # every label in every split: classification data only (a regression target has no labels to cover)
    GateRule("label_coverage", "dataset", "split", NON_NEGATIVE, "min", True, tasks=CLASSIFICATION),
    GateRule("drift", "dataset", "split", NON_NEGATIVE, "max", True, fixed_max=0),
    # models: their evaluation report, by task
    *_metrics("model", ("accuracy", "macro_f1", "min_class_recall"), tasks=CLASSIFICATION),
    *_metrics("model", ("invariance_rate", "directional_rate", "mft_accuracy")),
    # binary classification: ranking quality and the calibration of the positive class's probability
    *_metrics("model", ("roc_auc", "pr_auc"), tasks=frozenset({"binary"})),
    *_metrics("model", ("calibration_error",), tasks=frozenset({"binary"}), needs="max"),
    # regression: errors in the target's own unit, and the share of its variance explained
    *_metrics("model", ("rmse", "mae"), NON_NEGATIVE, frozenset({"regression"}), "max"),
    *_metrics("model", ("r2",), (None, 1.0), frozenset({"regression"})),
    # the model trained a second time from the same data, params and seed: 0 when the stored bytes are the same,
    # else the largest difference of their predictions (probabilities, or values) on the test split
    GateRule("reproducibility", "model", "model", NON_NEGATIVE, "max"),
    # accuracy points the worst slice may trail overall accuracy by
    GateRule("slice_gap", "model", "report", UNIT, "max", tasks=CLASSIFICATION),
    # a tolerated worsening against the champion on the same test rows, so never positive: a classifier's drop in
    # accuracy (paired bootstrap on per-row correctness), a regression model's relative change of MAE,
    # (champion - candidate) / champion (paired bootstrap on per-row absolute errors)
    GateRule("regression", "model", "report", (-1.0, 0.0), "min"),
    # chains: the golden-suite evaluation
    GateRule("format_valid", "chain", "summary"),
    *_metrics(
        "chain",
        (
            "intent_accuracy",
            "entity_f1",
            "required_facts",
            "forbidden_absent",
            "reply_similarity",
            "semantic_similarity",
            "flaky_rate",
        ),
    ),
    *_metrics("chain", ("tokens_in", "tokens_out", "cost_usd", "llm_calls", "cases_per_second"), NON_NEGATIVE),
    # share of golden cases the chain acted on (did not ask) with a wrong intent: only an upper bound makes sense
    GateRule("confident_wrong_rate", "chain", "summary", UNIT, "max"),
    # every metric the golden cases score against the champion's scores on the same unchanged cases (paired
    # bootstrap per metric, as `regression` for models): a tolerated worsening, so never positive
    GateRule("golden_regression", "chain", "evaluation", (-1.0, 0.0), "min"),
    # share of golden cases answered with a clarifying question: either bound (too timid, or never asks)
    GateRule("abstain_rate", "chain", "summary", UNIT),
    # single-request service latency, of a model or of the whole chain (evaluation/latency.py)
    *_metrics("model", ("p50_ms", "p95_ms"), NON_NEGATIVE),
    # chains: the candidate against the champion on the same recorded requests (shadow_comparison) or live ones
    # (shadow_report); diffs are candidate minus champion, latency the median of per-request differences
    _shadow("shadow_intent_agreement", UNIT, "min"),
    _shadow("shadow_entity_agreement", UNIT, "min"),
    _shadow("shadow_reply_similarity", UNIT, "min"),
    _shadow("shadow_reply_semantic_similarity", UNIT, "min"),  # needs the chain to use a sentence_embedder
    _shadow("shadow_abstain_rate_diff", RATE_DIFF, "max"),
    _shadow("shadow_escalation_rate_diff", RATE_DIFF, "max"),
    _shadow("shadow_latency_diff_ms", LATENCY_DIFF, "max"),
    # chains with a `judge:` section (evaluation/judge.py): the share of golden replies the judge passes, on every
    # rubric and per rubric of the built-in judge model; inconclusive when the judge could not answer a case
    *_metrics("chain", ("judge_pass_rate", "judge_factual_consistency", "judge_tone"), needs="min"),
    # the judge against the labelled set's held-out half: a judge that disagrees with people cannot gate a release
    GateRule("judge_agreement", "chain", "summary", UNIT, "min"),
    GateRule("judge_kappa", "chain", "summary", (-1.0, 1.0), "min"),
    # 1 when the evaluation's circuit breaker stopped the golden run early (members.<chain>.breaker)
    GateRule("stopped_early", "chain", "summary", UNIT, "max", requires="breaker"),
]
RULES: dict[str, GateRule] = {g.name: g for g in _RULES}
assert len(RULES) == len(_RULES), "a gate is declared twice"


# The gates each family's built-in kinds support (plugins name theirs, e.g. ``gates=DATASET_GATES``).
DATASET_GATES = frozenset(n for n, g in RULES.items() if g.family == "dataset")
MODEL_GATES = frozenset(
    {"accuracy", "macro_f1", "min_class_recall", "slice_gap", "regression", "p50_ms", "p95_ms", "contract"}
)
TABLE_MODEL_GATES = MODEL_GATES | {"roc_auc", "pr_auc", "calibration_error", "rmse", "mae", "r2"}
TRAINED_MODEL_GATES = TABLE_MODEL_GATES | {"reproducibility"}  # a model this package trains can be retrained
CHAIN_GATES = frozenset(n for n, g in RULES.items() if g.family == "chain") | {"p50_ms", "p95_ms"}


def rules_for(kind: str, task: Task | None = None) -> dict[str, GateRule]:
    """The gates a member of ``kind`` may name: the shared gates its kind declares (those reported for ``task``,
    the task its data sets) and the metrics the kind reports itself, each compared with its bound."""
    declared = member_kind(kind)
    undeclared = sorted(declared.gates - set(RULES))
    if undeclared:
        raise ManifestError(f"member kind {kind!r} declares gates that do not exist: {', '.join(undeclared)}")
    out = {name: RULES[name] for name in declared.gates}
    out |= {name: GateRule(name, declared.family, "summary", rng) for name, rng in declared.metrics.items()}
    return {n: r for n, r in sorted(out.items()) if task is None or r.tasks is None or task in r.tasks}


# A gate on a user metric becomes a Dagster check named `<gate>_gate`: letters, digits and underscores.
_USER_METRIC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def user_metric_rule(kind: str, gate: str, spec_of: Any) -> GateRule | None:
    """The gate on a metric of the member's own ``metrics:`` function: any name the shared table does not hold
    (those stay the table's, with their tasks and ranges), on a model member that names such a function. It is
    compared with its bound like any summary metric, whatever the bound."""
    if gate in RULES or getattr(spec_of, "metrics", None) is None or family_of(kind) != "model":
        return None
    return GateRule(gate, "model", "summary", (None, None), user_metric=True)


def family_of(kind: str) -> Family:
    return member_kind(kind).family


def _range_text(low: float | None, high: float | None) -> str:
    return f"[{low:g}, {high:g}]" if high is not None else f"[{low:g}, ∞)"


def check_thresholds(
    member: str,
    kind: str,
    gates: dict[str, Threshold],
    where: str,
    spec_of: Any = None,
    task: Task | None = None,
) -> None:
    """Names, required bounds and their ranges, from this table, when a manifest loads: a typo in a gate name must
    fail here (at run time it would be "not measured"), and so must a bound nothing can meet (`min: 1.5`).
    ``spec_of``: the member's manifest entry, for gates that need one of its fields (``requires``) and the metrics
    of its own ``metrics:`` function (any name outside the table); ``task``: what the member's data sets it to
    learn, which decides the metrics its evaluation reports."""
    known = rules_for(kind, task)
    for gate, t in gates.items():
        at = f"{where}: gates.{member}.{gate}"
        spec = known.get(gate) or user_metric_rule(kind, gate, spec_of)
        if spec is None:
            what = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}" + (
                f" on a {task} task" if task and family_of(kind) != "chain" else ""
            )
            own = ""
            if hasattr(spec_of, "metrics") and gate not in RULES:  # a kind that takes a `metrics:` function
                own = f"; to gate a metric of your own, name its function in `members.{member}.metrics`"
            raise ManifestError(f"{at}: unknown gate for {what} (known: {', '.join(sorted(known))}){own}")
        if spec.user_metric and not _USER_METRIC_NAME.match(gate):
            raise ManifestError(f"{at}: a gated metric's name is letters, digits and underscores")
        if spec.requires and spec_of is not None and getattr(spec_of, spec.requires, None) is None:
            raise ManifestError(
                f"{at}: needs `members.{member}.{spec.requires}` (a file of recorded requests to replay through the "
                "candidate and the champion), which the member does not set"
            )
        if spec.needs != "any" and getattr(t, spec.needs) is None:
            raise ManifestError(f"{at}: needs `{spec.needs}`")
        if spec.fixed_max is not None and t.max is not None and t.max != spec.fixed_max:
            raise ManifestError(f"{at}: `max` must be {spec.fixed_max:g} (any drifted feature fails)")
        low, high = spec.range
        for op in ("min", "max"):
            value = getattr(t, op)
            if value is None:
                continue
            if not math.isfinite(value):
                raise ManifestError(f"{at}.{op}: {value} is not a finite number")
            if (low is not None and value < low) or (high is not None and value > high):
                raise ManifestError(f"{at}.{op}: {value:g} is outside {gate}'s range {_range_text(low, high)}")
            if spec.whole and not float(value).is_integer():
                raise ManifestError(f"{at}.{op}: {value:g} is not a whole number of rows")
        if t.min is not None and t.max is not None and t.min > t.max:
            raise ManifestError(f"{at}: min {t.min:g} is above max {t.max:g}, nothing can pass")
