"""Asset keys and groups, named in one place so lineage, checks, tests and the CLI agree.

Keys are prefixed by release (``helpdesk/intent_model``); groups are ``<release>_<stage>`` so the UI shows one
box per stage of each release.
"""

from __future__ import annotations

from release_assets.manifest import ReleaseManifest, family

STAGES = ("data", "models", "prompts", "evaluation", "release")


def group(release: str, stage: str) -> str:
    assert stage in STAGES, stage
    return f"{release}_{stage}"


def raw(release: str, member: str) -> list[str]:
    return [release, member]


def split(release: str, member: str) -> list[str]:
    return [release, f"{member}_split"]


def model(release: str, member: str) -> list[str]:
    return [release, member]


def report(release: str, member: str) -> list[str]:
    return [release, f"{member}_report"]


def chain(release: str, member: str) -> list[str]:
    return [release, member]


def chain_evaluation(release: str, member: str) -> list[str]:
    return [release, f"{member}_evaluation"]


def release_unit(release: str) -> list[str]:
    return [release, "release_unit"]


def shadow_comparison(release: str) -> list[str]:
    """Recorded traffic replayed through candidate and champion, pair by pair (evaluation stage, evidence)."""
    return [release, "shadow_comparison"]


def rollout_group(release: str) -> str:
    """Live evidence and the canary: outside ``STAGES``, so the release job never waits on live traffic."""
    return f"{release}_rollout"


def triage_group(release: str) -> str:
    """Regression triage: outside ``STAGES``, run when gates hold a build (failed-gate sensor, ``release`` CLI)."""
    return f"{release}_triage"


def regression_triage(release: str) -> list[str]:
    return [release, "regression_triage"]


def triage_job(release: str) -> str:
    return f"{release}_triage"


def shadow_report(release: str) -> list[str]:
    return [release, "shadow_report"]


def live_drift(release: str) -> list[str]:
    return [release, "live_drift"]


def rollout(release: str) -> list[str]:
    return [release, "rollout"]


EVIDENCE_SUFFIXES = ("_report", "_evaluation")
SHADOW_COMPARISON = "shadow_comparison"  # its bundle name


def is_evidence(bundle_name: str) -> bool:
    """Evaluation reports travel in the bundle as evidence but do not define the release: their latency figures
    differ on every run, and re-measuring the same models must not mint a new version. The shadow comparison too:
    it changes with the champion it was compared with, not with what the release is."""
    return bundle_name.endswith(EVIDENCE_SUFFIXES) or bundle_name == SHADOW_COMPARISON


def traffic_chain(manifest: ReleaseManifest) -> str | None:
    """The chain member whose recorded ``traffic`` the shadow comparison replays: the one serving answers with
    (the first chain by name, as in the bundle), when it declares traffic."""
    chains = sorted(name for name, m in manifest.members.items() if family(m.kind) == "chain")
    return chains[0] if chains and getattr(manifest.members[chains[0]], "traffic", None) else None


def bundled(manifest: ReleaseManifest) -> dict[str, list[str]]:
    """Every asset whose files go into the release unit, by name inside the bundle."""
    out: dict[str, list[str]] = {}
    for name, member in manifest.members.items():
        if family(member.kind) == "dataset":
            out[f"{name}_split"] = split(manifest.name, name)
            out[name] = raw(manifest.name, name)
        elif family(member.kind) == "model":
            out[name] = model(manifest.name, name)
            if member.upstream:  # evaluated on its dataset's test split; pre-trained embeddings have no report
                out[f"{name}_report"] = report(manifest.name, name)
        else:
            out[name] = chain(manifest.name, name)
            out[f"{name}_evaluation"] = chain_evaluation(manifest.name, name)
    if traffic_chain(manifest):
        out[SHADOW_COMPARISON] = shadow_comparison(manifest.name)
    return out
