"""What a version must be before it answers users: a real published version whose bundle verifies and whose
gates all passed. One check for promotion, canary routing and environment promotion alike."""

from __future__ import annotations

from typing import Any

from release_assets.release.store import ReleaseStore, StoreError, check_release_name, check_version


class PromotionError(ValueError):
    """A promotion or rollback that must not happen; the message says why."""


def _blocking_verdicts(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The recorded verdicts that hold a release (the same rule as ``Verdict.holds_release``)."""
    from release_assets.promotion.policy import Verdict

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


def verified(store: ReleaseStore, release: str, version: str, action: str) -> dict[str, Any]:
    """The bundle's own manifest, verified; a corrupt or missing bundle refuses the move with the store's words."""
    from release_assets.release.bundle import BundleError
    from release_assets.rollout.verified import verified_manifest

    try:
        return verified_manifest(store, release, version)
    except (BundleError, StoreError) as exc:
        raise PromotionError(f"{release} {version} cannot be {action}: its bundle does not verify: {exc}") from None


def check_servable(
    store: ReleaseStore,
    release: str,
    version: str,
    override_weakened_gates: bool = False,
    action: str = "served",
) -> dict[str, Any]:
    """What a version must be before it answers users, as champion (``promote``) or canary (``flags``): published,
    its bundle verified, every gate passed, and weakened gates only with an explicit override. Returns the
    bundle's own manifest."""
    check_names(release, version)
    if store.manifest(release, version) is None:
        known = ", ".join(sorted(store.versions(release))) or "none"
        raise PromotionError(f"{release} {version} was never published (published versions: {known})")
    manifest = verified(store, release, version, action)
    holding = _blocking_verdicts(manifest)
    if holding:
        listed = "; ".join(f"{g['member']}.{g['gate']}: {g['status']} ({g['reason']})" for g in holding)
        raise PromotionError(f"{release} {version} did not pass all its gates: {listed}")
    weakened = manifest.get("weakened_gates") or []
    if weakened and not override_weakened_gates:
        raise PromotionError(
            f"{release} {version} was built with gates weakened from the committed manifest "
            f"({'; '.join(weakened)}); it can be {action} only with an explicit override "
            "(`--override-weakened-gates` with `--approved-by` and `--reason`)"
        )
    return manifest
