"""Regression triage: which member moved a chain metric between two published versions of a release.

Both versions are extracted from the release store and verified; the members the golden evaluation reads (the
chain and its models) whose digests differ, and the golden suite when its file differs, are the factors. The golden
suite runs on mixed releases (``triage_mix``), each taking some factors from the candidate and the rest from the
baseline, and each metric's change is shared between the factors (``triage_attribution``) so the shares plus an
interaction term add up to the observed change. Nothing retrains: the mixes reuse the bundles' own members.

Each side is scored on the golden suite its chain evaluation carries (``golden.jsonl``), so a change of the test
data is a factor like any member. A golden file given instead is checked against the digest the version's own
evaluation recorded; a mismatch is reported in ``notes``, and triage scores the file given.

A side is a published version (:func:`published_side`) or a build the gates held (:func:`build_side`): the
``regression_triage`` asset triages what was just built against the champion before anything is published.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from release_assets.artifacts import ArtifactRef
from release_assets.core.hashing import sha256_file
from release_assets.evaluation.triage_attribution import SHAPLEY, attribute, subsets_to_evaluate
from release_assets.evaluation.triage_mix import (
    GOLDEN,
    Mixer,
    MixResult,
    Side,
    TriageError,
    bundled_golden,
    extract_verified,
    recorded_golden_sha,
)
from release_assets.models.trainers import MODEL_KINDS
from release_assets.release.store import ReleaseStore

SKIPPED_METRICS = ("cases",)  # a count, not a quality: a golden suite with more cases is not a regression
FLIPS_SHOWN = 5  # case ids per member and direction in the markdown (all of them are in ``flipped``)


def _signed(x: float) -> str:
    """``−0.061``, ``+0.012``, ``0.000``: the sign is the point of the table, and a rounding zero has none."""
    text = f"{x:+.3f}"
    return "0.000" if text in ("+0.000", "-0.000") else text.replace("-", "\u2212")


@dataclass
class MetricChange:
    metric: str
    baseline: float
    candidate: float
    shares: dict[str, float]  # factor -> its share of the change
    interaction: float  # change minus the shares: zero (up to rounding) for Shapley values

    @property
    def change(self) -> float:
        return self.candidate - self.baseline

    def line(self) -> str:
        parts = [f"{f} {_signed(v)}" for f, v in self.shares.items()] + [f"interaction {_signed(self.interaction)}"]
        return f"{self.metric} {_signed(self.change)}: " + ", ".join(parts)


@dataclass
class Triage:
    release: str
    candidate: str
    baseline: str
    factors: list[str]  # members (and the golden suite) that differ and that the golden evaluation reads
    changed: dict[str, tuple[str, str]]  # factor -> (baseline digest, candidate digest); golden: file sha256
    not_evaluated: list[str]  # members that differ but that the golden run does not read (data, evidence)
    method: str  # triage_attribution.SHAPLEY or ONE_AT_A_TIME
    metrics: list[MetricChange]
    # factor -> {"pass->fail": {case id: the candidate's problems}, "fail->pass": {case id: the baseline's}}, each
    # between the candidate and the candidate with that factor swapped back to the baseline's.
    flipped: dict[str, dict[str, dict[str, str]]]
    mixes: list[dict[str, Any]]  # lineage: what each mixed evaluation combined, by digest, and what it scored
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def metric(self, name: str) -> MetricChange:
        return next(m for m in self.metrics if m.metric == name)

    def blamed(self, metric: str) -> str | None:
        """The factor with the largest share of ``metric``'s change, in the direction it moved (None: no change)."""
        m = self.metric(metric)
        if not m.shares or m.change == 0:
            return None
        return max(m.shares, key=lambda f: m.shares[f] * math.copysign(1, m.change))

    def as_dict(self) -> dict[str, Any]:
        """The whole result as JSON-ready data, each metric with its change."""
        out = asdict(self)
        for row, m in zip(out["metrics"], self.metrics, strict=True):
            row["change"] = m.change
        return out

    def markdown(self) -> str:
        method = (
            "Shapley values: each factor's effect averaged over every order of swapping factors in"
            if self.method == SHAPLEY
            else "one at a time: what swapping each factor back undoes; the rest is the interaction"
        )
        out = [
            f"## Regression triage: {self.release} {self.candidate} (candidate) against {self.baseline} (baseline)",
            "",
            "Changed: "
            + (", ".join(f"{f} ({b[:8]} \u2192 {c[:8]})" for f, (b, c) in self.changed.items()) or "nothing")
            + f". {len(self.mixes)} mixed evaluations, {self.seconds:.1f} s. Attribution: {method}.",
        ]
        if self.not_evaluated:
            out.append(f"Also changed, not read by the golden evaluation: {', '.join(self.not_evaluated)}.")
        out += ["", *(f"- {m.line()}" for m in self.metrics if m.change or any(m.shares.values())), ""]
        head = ["metric", "baseline", "candidate", "change", *self.factors, "interaction"]
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for m in self.metrics:
            row = [m.metric, f"{m.baseline:.3f}", f"{m.candidate:.3f}", _signed(m.change)]
            row += [_signed(m.shares[f]) for f in self.factors] + [_signed(m.interaction)]
            out.append("| " + " | ".join(row) + " |")
        out += ["", "| factor | pass\u2192fail | fail\u2192pass |", "|---|---|---|"]
        for f in self.factors:
            cells = []
            for direction in ("pass->fail", "fail->pass"):
                cases = self.flipped[f][direction]
                shown = ", ".join(f"{i} ({p})" if p else i for i, p in list(cases.items())[:FLIPS_SHOWN])
                more = f" and {len(cases) - FLIPS_SHOWN} more" if len(cases) > FLIPS_SHOWN else ""
                cells.append(f"{len(cases)}: {shown}{more}" if cases else "0")
            out.append(f"| {f} | {cells[0]} | {cells[1]} |")
        out += ["", *(f"> {n}" for n in self.notes)] if self.notes else []
        return "\n".join(out).rstrip() + "\n"


def _chain_and_models(manifest: dict[str, Any], where: str) -> tuple[str, list[str]]:
    members = manifest["members"]
    chains = sorted(n for n, m in members.items() if m["kind"] == "prompt_chain")
    if not chains:
        raise TriageError(f"{where}: no prompt_chain member; triage runs a chain's golden suite")
    return chains[0], sorted(n for n, m in members.items() if m["kind"] in MODEL_KINDS)


def _flips(before: MixResult, after: MixResult) -> dict[str, dict[str, str]]:
    """Cases (present in both) that pass in ``before`` and fail in ``after``, and the other way round."""
    out: dict[str, dict[str, str]] = {"pass->fail": {}, "fail->pass": {}}
    for case_id in after.ids:
        if case_id not in before.problems:
            continue
        was, now = before.problems[case_id], after.problems[case_id]
        if not was and now:
            out["pass->fail"][case_id] = now
        elif was and not now:
            out["fail->pass"][case_id] = was
    return out


def _quality_metrics(mixes: dict[frozenset[str], MixResult]) -> list[str]:
    """Metrics every mix measured as a finite number, in the order the golden report lists them."""
    first = next(iter(mixes.values())).metrics
    return [
        k
        for k, v in first.items()
        if k not in SKIPPED_METRICS
        and all(isinstance(r.metrics.get(k), int | float) and math.isfinite(r.metrics[k]) for r in mixes.values())
        and isinstance(v, int | float)
    ]


def published_side(store: ReleaseStore, release: str, version: str, dest: Path, golden: Path | None) -> Side:
    """A published version, extracted under ``dest`` and verified; scored on ``golden``, else on the golden suite
    its own chain evaluation carries."""
    manifest = extract_verified(store, release, version, dest)
    dirs = {name: dest / "files" / name for name in manifest["members"]}
    where = store.bundle_uri(release, version)
    chain, _ = _chain_and_models(manifest, where)
    return Side(version, manifest, dirs, _golden(golden, bundled_golden(dirs, chain), f"{release} {version}"))


def build_side(label: str, refs: dict[str, ArtifactRef], store_root: Path, golden: Path | None = None) -> Side:
    """A build that was not published (its gates hold it): its members as built in the artifact cache, by member
    name (``chain``, ``intent_model``, ``chain_evaluation``...)."""
    members = {
        name: {"kind": ref.kind, "digest": ref.digest}
        | ({"chain_file": ref.summary.get("chain_file", "chain.yaml")} if ref.kind == "prompt_chain" else {})
        for name, ref in refs.items()
    }
    dirs = {name: ref.path(store_root) for name, ref in refs.items()}
    chain, _ = _chain_and_models({"members": members}, label)
    return Side(label, {"members": members}, dirs, _golden(golden, bundled_golden(dirs, chain), label))


def _golden(given: Path | None, bundled: Path | None, where: str) -> Path:
    golden = given or bundled
    if golden is None:
        raise TriageError(
            f"{where}: its chain evaluation carries no golden suite (built before they were bundled); "
            "pass the golden file it was scored on (--golden)"
        )
    if not Path(golden).is_file():
        raise TriageError(f"{golden}: no such golden file ({where})")
    return Path(golden)


def triage(
    store: ReleaseStore,
    release: str,
    candidate: str,
    baseline: str,
    candidate_golden: Path | None = None,
    baseline_golden: Path | None = None,
    work_dir: Path | None = None,
    llm_cache_dir: Path | None = None,
    fallback_golden: Path | None = None,
) -> Triage:
    """Triage ``candidate`` against ``baseline`` (published versions of ``release`` in ``store``).

    Each side is scored on the golden suite its own chain evaluation carries, unless a file is given for it
    (``candidate_golden``, ``baseline_golden``); a version built before evaluations carried their suite is scored
    on ``fallback_golden`` (noted). ``work_dir`` holds the extracted bundles (default: a temporary folder, removed
    on return)."""
    notes = []
    with tempfile.TemporaryDirectory(prefix=f"triage-{release}-", dir=work_dir) as tmp:
        sides = []
        for key, version, golden in (
            ("candidate", candidate, candidate_golden),
            ("baseline", baseline, baseline_golden),
        ):
            try:
                sides.append(published_side(store, release, version, Path(tmp) / key, golden))
            except TriageError:
                if golden is not None or fallback_golden is None:
                    raise
                sides.append(published_side(store, release, version, Path(tmp) / key, fallback_golden))
                notes.append(f"{key} {version} carries no golden suite: scored on {fallback_golden}.")
        cand_side, base_side = sides
        result = triage_sides(release, cand_side, base_side, llm_cache_dir)
    result.notes += notes
    return result


def triage_sides(release: str, cand: Side, base: Side, llm_cache_dir: Path | None = None) -> Triage:
    """The triage of ``cand`` against ``base``: every mix scored, each metric's change attributed."""

    start = time.perf_counter()
    chain, models = _chain_and_models(cand.manifest, f"{release} {cand.version}")
    if _chain_and_models(base.manifest, f"{release} {base.version}") != (chain, models):
        raise TriageError(
            f"{release} {base.version} and {cand.version}: different chain or model members; nothing to swap back"
        )
    # The chain and the models are members of both sides (checked above), so both digests exist.
    changed = {
        n: (base.digest(n) or "", cand.digest(n) or "") for n in [chain, *models] if base.digest(n) != cand.digest(n)
    }
    sides = {"candidate": cand, "baseline": base}
    golden_sha = {k: sha256_file(s.golden) for k, s in sides.items()}
    if golden_sha["baseline"] != golden_sha["candidate"]:
        changed[GOLDEN] = (golden_sha["baseline"], golden_sha["candidate"])
    notes = []
    for key, side in sides.items():
        recorded = recorded_golden_sha(side, chain)
        if recorded and recorded != golden_sha[key][: len(recorded)]:
            notes.append(
                f"{key} {side.version}: its own chain evaluation scored golden suite {recorded}, not the file "
                f"given ({side.golden}, {golden_sha[key][:16]}); triage scores the file given."
            )
    everything = set(cand.manifest["members"]) | set(base.manifest["members"])
    not_evaluated = sorted(n for n in everything if n not in changed and base.digest(n) != cand.digest(n))
    factors = list(changed)
    method, subsets = subsets_to_evaluate(factors)
    mixer = Mixer(cand, base, chain, models, llm_cache_dir)
    mixes = {s: mixer.evaluate(s) for s in subsets}
    full = frozenset(factors)
    metrics = []
    for name in _quality_metrics(mixes):
        value = {s: float(r.metrics[name]) for s, r in mixes.items()}
        shares, interaction = attribute(factors, value, method)
        metrics.append(MetricChange(name, value[frozenset()], value[full], shares, interaction))
    return Triage(
        release=release,
        candidate=cand.version,
        baseline=base.version,
        factors=factors,
        changed=changed,
        not_evaluated=not_evaluated,
        method=method,
        metrics=metrics,
        flipped={f: _flips(mixes[full - {f}], mixes[full]) for f in factors},
        mixes=[
            {
                "from_candidate": sorted(r.from_candidate),
                "digests": r.digests,
                "metrics": {m.metric: r.metrics[m.metric] for m in metrics},
                "seconds": round(r.seconds, 3),
            }
            for r in mixes.values()
        ],
        notes=notes,
        seconds=time.perf_counter() - start,
    )
