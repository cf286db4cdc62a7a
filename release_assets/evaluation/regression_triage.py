"""Triage of a build the gates held, against the champion, before anything is published.

The chain evaluation that failed a gate names (by digest) the chain and models it ran; they are found in the
artifact cache, the champion is extracted from the release store, and :func:`triage.triage_sides` scores every
mix. The result is itself a cached artifact (``triage.json``, ``triage.md``), keyed by the triage code and the
digests it combined, so the failed check that computes it first and the ``regression_triage`` asset that shows it
share one computation.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from release_assets.artifacts import ArtifactRef, LocalArtifactStore, fingerprint
from release_assets.core.hashing import CodeInputs
from release_assets.evaluation.triage import build_side, published_side, triage_sides
from release_assets.evaluation.triage_mix import TriageError
from release_assets.release.bundle import BundleError
from release_assets.release.store import ReleaseStore, StoreError

# The modules whose code decides a triage: its code version (asset) and cache fingerprint (check) hash them.
TRIAGE_MODULES = ["release_assets.evaluation.regression_triage", "release_assets.evaluation.triage"]
MEMBER = "regression_triage"
MARKDOWN_FILE = "triage.md"
JSON_FILE = "triage.json"
THIS_BUILD = "this build"  # the candidate's name in the table: a held build has no version yet


def triage_code_version() -> str:
    return CodeInputs(TRIAGE_MODULES).version()


def evaluated_members(cache: LocalArtifactStore, evaluation: ArtifactRef) -> dict[str, ArtifactRef]:
    """The evaluation and the members it was built from (by the digests it recorded), by member name."""
    refs = {evaluation.member: evaluation}
    for key, digest in sorted(evaluation.upstream.items()):
        member = key.split("/")[-1]
        ref = cache.find(evaluation.release, member, digest)
        if ref is None:
            raise TriageError(
                f"{key} {digest[:12]}: the artifact {evaluation.member} was built from is no longer in the artifact "
                f"cache ({cache.root}); rematerialize {evaluation.release}/{evaluation.member}"
            )
        refs[member] = ref
    return refs


def triage_build(
    cache: LocalArtifactStore,
    releases: ReleaseStore,
    evaluation: ArtifactRef,
    baseline: str,
    code_version: str,
    llm_cache_dir: Path | None = None,
) -> tuple[ArtifactRef, bool]:
    """Triage the build ``evaluation`` scored against the published ``baseline`` (the champion); the cached
    artifact and whether it was reused."""
    refs = evaluated_members(cache, evaluation)
    fp = fingerprint(code_version, {name: ref.digest for name, ref in sorted(refs.items())}, {"baseline": baseline})

    def builder(out: Path) -> dict[str, Any]:
        candidate = build_side(THIS_BUILD, refs, cache.root)
        with tempfile.TemporaryDirectory(prefix="triage-", dir=cache.root) as tmp:
            try:
                champion = published_side(releases, evaluation.release, baseline, Path(tmp), None)
                note = None
            except TriageError:  # a champion published before evaluations carried their golden suite
                champion = published_side(releases, evaluation.release, baseline, Path(tmp), candidate.golden)
                note = f"{baseline} carries no golden suite: both sides are scored on this build's."
            result = triage_sides(evaluation.release, candidate, champion, llm_cache_dir)
        if note:
            result.notes.append(note)
        markdown = result.markdown()
        (out / MARKDOWN_FILE).write_text(markdown)
        (out / JSON_FILE).write_text(json.dumps(result.as_dict(), indent=1, sort_keys=True))
        return {
            "baseline": baseline,
            "factors": result.factors,
            "lines": [m.line() for m in result.metrics if m.change or any(m.shares.values())],
            "blamed": {m.metric: result.blamed(m.metric) for m in result.metrics if result.blamed(m.metric)},
            "seconds": round(result.seconds, 3),
            "mixes": len(result.mixes),
        }

    upstream = {f"{evaluation.release}/{name}": ref.digest for name, ref in sorted(refs.items())}
    return cache.build(
        release=evaluation.release, member=MEMBER, kind=MEMBER, fingerprint=fp, builder=builder, upstream=upstream
    )


def markdown(cache: LocalArtifactStore, ref: ArtifactRef) -> str:
    return ref.path(cache.root, MARKDOWN_FILE).read_text()


def headline(ref: ArtifactRef) -> str:
    """What a failed gate's description adds: against which champion, and each moved metric's shares."""
    lines = ref.summary["lines"] or ["no quality metric moved on the golden suite"]
    return f"Regression triage against champion {ref.summary['baseline']}:\n" + "\n".join(f"- {x}" for x in lines)


def explain_held(
    cache: LocalArtifactStore, releases: ReleaseStore, evaluation: ArtifactRef, champion: str | None
) -> tuple[str, str]:
    """(headline, markdown) of the triage of a held build against ``champion``; when it cannot run (no champion,
    members gone from the cache, a champion that cannot be read) both say why, so the gate's own verdict stands."""

    if champion is None:
        text = "Regression triage: no champion yet, so nothing to compare this build with."
        return text, text
    try:
        ref, _ = triage_build(cache, releases, evaluation, champion, triage_code_version(), cache.root / "llm_cache")
    except (TriageError, BundleError, StoreError, OSError) as exc:
        text = f"Regression triage against champion {champion} could not run: {exc}"
        return text, text
    return headline(ref), markdown(cache, ref)
