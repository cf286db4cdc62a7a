"""The pieces regression triage mixes: two published versions, extracted and verified, and the golden suite run on
a release assembled from members of either side.

Members are reused from the extracted bundles as they are (nothing is rebuilt or retrained), each loaded once per
side and digest; a member with the same digest on both sides is one member.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from release_assets.chains.build import chain_knowledge
from release_assets.chains.runner import ChainRunner
from release_assets.chains.spec import load_chain
from release_assets.core.hashing import sha256_file
from release_assets.evaluation.chain_evaluation import GOLDEN_FILE
from release_assets.evaluation.golden import score
from release_assets.evaluation.golden_inputs import load_cases, to_requests
from release_assets.models.trainers import MODEL_KINDS
from release_assets.record.verified import check_agreement
from release_assets.release.bundle import BundleError, extract_bundle
from release_assets.release.store import BUNDLE, ReleaseStore

GOLDEN = "golden suite"  # the factor name of the golden file, beside the bundle's member names


class TriageError(ValueError):
    """Two versions that cannot be triaged against each other; the message names the release, version or member."""


@dataclass
class Side:
    """One side of a triage: a published version, extracted, or a build not published (held by its gates): its
    members (``manifest["members"]``: kind, digest, chain_file), each member's folder and its golden file."""

    version: str
    manifest: dict[str, Any]
    dirs: dict[str, Path]
    golden: Path

    def member_dir(self, name: str) -> Path:
        return self.dirs[name]

    def digest(self, name: str) -> str | None:
        member = self.manifest["members"].get(name)
        return member["digest"] if member else None


def bundled_golden(dirs: dict[str, Path], chain: str) -> Path | None:
    """The golden suite a chain evaluation scored, as it carries it (None: built before evaluations carried it)."""

    folder = dirs.get(f"{chain}_evaluation")
    path = folder / GOLDEN_FILE if folder is not None else None
    return path if path is not None and path.is_file() else None


@dataclass
class MixResult:
    """The golden suite on one mix: its metrics, each case's problems ('' when it passed), what it combined."""

    from_candidate: frozenset[str]
    metrics: dict[str, Any]
    problems: dict[str, str]
    digests: dict[str, str]
    seconds: float
    ids: list[str] = field(default_factory=list)


def extract_verified(store: ReleaseStore, release: str, version: str, dest: Path) -> dict[str, Any]:
    """Fetch ``release``/``version`` and extract it into ``dest``: every file re-hashed against the bundle's own
    manifest (``extract_bundle``), which must be the version asked for and agree with the store's copy."""

    dest.mkdir(parents=True, exist_ok=True)
    bundle = store.fetch_bundle(release, version, dest / BUNDLE)
    where = store.bundle_uri(release, version)
    try:
        # With the data it holds by reference: a side is scored on the golden suite its evaluation carries.
        own = extract_bundle(bundle, dest / "files", fetch_data=store.fetch_data)
    except BundleError as exc:  # name the bundle where it is stored, not the temporary copy
        raise BundleError(str(exc).replace(str(bundle), where)) from None
    finally:
        bundle.unlink(missing_ok=True)
    if own.get("release") != release or own.get("version") != version:
        raise BundleError(f"{where}: the bundle is {own.get('release')} {own.get('version')}, not {release} {version}")
    check_agreement(store.manifest(release, version), own, where)
    return own


def recorded_golden_sha(side: Side, chain: str) -> str | None:
    """The golden file's digest (16 hex) the version's own chain evaluation recorded in its traces, if any: the
    golden suite is not bundled, so this is how a golden file given for a version is checked against it."""
    folder = side.dirs.get(f"{chain}_evaluation")
    traces = folder / "traces.jsonl" if folder is not None else None
    if traces is None or not traces.is_file():
        return None
    with traces.open() as fh:
        for line in fh:
            raw = json.loads(line).get("attributes", {}).get("metadata")
            found = json.loads(raw).get("golden_sha256") if isinstance(raw, str) else None
            if found:
                return found
    return None


class Mixer:
    """Runs the golden suite on releases mixed from ``candidate`` and ``baseline``; loads each member once."""

    def __init__(
        self, candidate: Side, baseline: Side, chain: str, models: list[str], llm_cache_dir: Path | None = None
    ) -> None:
        self.sides = {True: candidate, False: baseline}
        self.chain, self.models, self.llm_cache_dir = chain, models, llm_cache_dir
        self._predictors: dict[tuple[str, bool], Any] = {}

    def _predictor(self, name: str, candidate_side: bool) -> Any:
        side = self.sides[candidate_side]
        if side.digest(name) == self.sides[True].digest(name):
            candidate_side = True  # the same bytes on both sides: one member, loaded once
        key = (name, candidate_side)
        if key not in self._predictors:
            kind = self.sides[candidate_side].manifest["members"][name]["kind"]
            self._predictors[key] = MODEL_KINDS[kind].load(self.sides[candidate_side].member_dir(name))
        return self._predictors[key]

    def evaluate(self, from_candidate: frozenset[str]) -> MixResult:
        """The golden suite scored on the mix taking ``from_candidate`` (member names, or :data:`GOLDEN`) from
        the candidate and everything else from the baseline."""

        start = time.perf_counter()
        predictors = {m: self._predictor(m, m in from_candidate) for m in self.models}
        chain_side = self.sides[self.chain in from_candidate]
        golden = self.sides[GOLDEN in from_candidate].golden
        chain_dir = chain_side.member_dir(self.chain)
        chain_file = chain_side.manifest["members"][self.chain].get("chain_file", "chain.yaml")
        labels = {name: p.labels for name, p in predictors.items()}
        spec, schemas = load_chain(chain_dir / "chain", labels, chain_file)
        kb = chain_knowledge(chain_dir)
        cases = load_cases(golden, spec.evaluation)
        runner = ChainRunner(spec, schemas, predictors, kb, llm_cache_dir=self.llm_cache_dir)
        results = runner.run(to_requests(cases))
        summary = score(cases, results, spec.evaluation)
        problems = {}
        for case, res in zip(cases, results, strict=True):
            one = score([case], [res], spec.evaluation)
            problems[str(case["id"])] = one["examples"][0]["problems"] if one["failed_cases"] else ""
        digests = {m: self.sides[m in from_candidate].digest(m) or "" for m in [self.chain, *self.models]}
        digests[GOLDEN] = sha256_file(golden)
        return MixResult(
            from_candidate=from_candidate,
            metrics=summary["metrics"],
            problems=problems,
            digests=digests,
            seconds=time.perf_counter() - start,
            ids=[str(c["id"]) for c in cases],
        )
