"""What a version must be before it answers users: a real published version whose bundle verifies and whose
gates all passed. One check for promotion, canary routing and environment promotion alike."""

from __future__ import annotations

from typing import Any

from release_assets.core.git_base import provenance_problems
from release_assets.core.settings import get_settings
from release_assets.provenance.keys import SignatureError, Trust
from release_assets.record.verified import verified_manifest
from release_assets.release.bundle import BundleError
from release_assets.release.store import ReleaseStore, StoreError, check_release_name, check_version
from release_assets.verdict import Verdict


class PromotionError(ValueError):
    """A promotion or rollback that must not happen; the message says why."""


def _blocking_verdicts(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The recorded verdicts that hold a release (the same rule as ``Verdict.holds_release``)."""
    fields = set(Verdict.__dataclass_fields__)
    recorded = [
        {"observed": None, "threshold": {}, **{k: v for k, v in g.items() if k in fields}}
        for g in manifest.get("gates", [])
    ]
    return [g for g in recorded if Verdict(**g).holds_release]


def check_names(release: str, version: str | None = None) -> None:
    """Names reach store paths: refuse anything that is not a release name or a version digest."""
    try:
        check_release_name(release)
        if version is not None:
            check_version(version)
    except StoreError as exc:
        raise PromotionError(str(exc)) from None


def verified(
    store: ReleaseStore, release: str, version: str, action: str, trust: Trust | None = None
) -> dict[str, Any]:
    """The bundle's own manifest, verified (with ``trust``: signed by a key it holds); a corrupt or missing bundle,
    or one whose signature ``trust`` does not accept, refuses the move with the store's words."""

    try:
        return verified_manifest(store, release, version, trust)
    except SignatureError as exc:
        raise PromotionError(f"{release} {version} cannot be {action}: its signature is not accepted: {exc}") from None
    except (BundleError, StoreError) as exc:
        raise PromotionError(f"{release} {version} cannot be {action}: its bundle does not verify: {exc}") from None


def overridden_controls(manifest: dict[str, Any]) -> dict[str, list[str]]:
    """What promoting this build goes around, each needing the explicit override that the ledger then records
    (``override`` on the ``approved``/``promoted`` events): gates weakened from the default branch
    (``weakened_gates``), and where it was built (``provenance``: uncommitted changes, a commit off the default
    branch; with ``RELEASE_ASSETS_REQUIRE_GIT_PROVENANCE``, also a build whose git facts are unknown).
    Empty when there is nothing to override."""

    weakened = list(manifest.get("weakened_gates") or [])
    git = (manifest.get("lineage") or {}).get("git")
    provenance = provenance_problems(git, require_known=get_settings().require_git_provenance)
    if not weakened and not provenance:
        return {}
    # `weakened_gates` is always there, so readers of older events (`override.weakened_gates`) keep working.
    return {"weakened_gates": weakened, **({"provenance": provenance} if provenance else {})}


def override_text(override: dict[str, Any] | None) -> str:
    """One line naming what an override went around (history, logs, the asset page)."""
    parts = []
    for key, label in (("weakened_gates", "weakened gates"), ("provenance", "provenance")):
        value = (override or {}).get(key)
        if value:  # a list of what was gone around; a canary start records `true` (whatever needed it)
            parts.append(f"{label}: {'; '.join(map(str, value))}" if isinstance(value, list) else label)
    return " | ".join(parts)


def check_servable(
    store: ReleaseStore,
    release: str,
    version: str,
    override_weakened_gates: bool = False,
    action: str = "served",
    trust: Trust | None = None,
) -> dict[str, Any]:
    """What a version must be before it answers users, as champion (``promote``) or canary (``flags``): published,
    its bundle verified, every gate passed, and weakened gates or a dirty or off-branch build only with an explicit
    override (``override_weakened_gates``: one override for every control, recorded by the caller); with ``trust``
    (an environment's ``trusted_keys``), signed by one of its keys. Returns the bundle's own manifest."""
    check_names(release, version)
    if store.manifest(release, version) is None:
        known = ", ".join(sorted(store.versions(release))) or "none"
        raise PromotionError(f"{release} {version} was never published (published versions: {known})")
    manifest = verified(store, release, version, action, trust)
    holding = _blocking_verdicts(manifest)
    if holding:
        listed = "; ".join(f"{g['member']}.{g['gate']}: {g['status']} ({g['reason']})" for g in holding)
        raise PromotionError(f"{release} {version} did not pass all its gates: {listed}")
    if override_weakened_gates:
        return manifest
    controls = overridden_controls(manifest)
    problems = []
    if controls.get("weakened_gates"):
        # "committed manifest": the default branch's (git_base.py); the wording people and scripts already match.
        problems.append(
            f"was built with gates weakened from the committed manifest ({'; '.join(controls['weakened_gates'])})"
        )
    if controls.get("provenance"):
        problems.append(f"was {'; '.join(controls['provenance'])}")
    if problems:
        raise PromotionError(
            f"{release} {version} {' and '.join(problems)}; it can be {action} only with an explicit override "
            "(`--override-weakened-gates` with `--approved-by` and `--reason`"
            + ("; the one override covers where it was built too" if controls.get("provenance") else "")
            + ")"
        )
    return manifest
