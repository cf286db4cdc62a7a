"""Promotion decides from the bundle itself, verified, never from the loose ``manifest.json`` beside it.

The store keeps each version's manifest twice: inside the bundle (covered by the digests ``verify`` recomputes)
and beside it (so listing versions does not download bundles). Only the copy inside a verified bundle is
evidence; the one beside it must agree with it, or someone edited one of them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from release_assets.provenance.attest import UnitCheck, check_unit
from release_assets.provenance.keys import Trust
from release_assets.release.bundle import BundleError, verify_bundle
from release_assets.release.store import BUNDLE, ReleaseStore


def manifest_differences(stored: dict[str, Any], own: dict[str, Any]) -> list[str]:
    """Top-level fields (and, for gates, which verdicts) where the store's manifest differs from the bundle's."""
    out = []
    for key in sorted(set(stored) | set(own)):
        if stored.get(key) == own.get(key):
            continue
        if key == "gates" and isinstance(stored.get(key), list) and isinstance(own.get(key), list):
            inside = {(g.get("member"), g.get("gate")): g for g in own[key]}
            beside = {(g.get("member"), g.get("gate")): g for g in stored[key]}
            changed = sorted(
                f"{m}.{g}" for m, g in set(inside) | set(beside) if inside.get((m, g)) != beside.get((m, g))
            )
            out.append(f"gates ({', '.join(changed)})")
        else:
            out.append(key)
    return out


def check_agreement(stored: dict[str, Any] | None, own: dict[str, Any], where: str) -> None:
    if stored is None:
        return
    differences = manifest_differences(stored, own)
    if differences:
        raise BundleError(
            f"{where}: the manifest beside the bundle differs from the bundle's own in {', '.join(differences)}; "
            "the bundle's copy is the verified one, so the store copy was edited or the bundle replaced"
        )


def verified_manifest(store: ReleaseStore, release: str, version: str, trust: Trust | None = None) -> dict[str, Any]:
    """The manifest inside ``release``/``version``'s bundle, after every digest was recomputed and the store's
    copy compared with it; with ``trust``, also its signature and attestations (``verified_unit``). Raises
    :class:`BundleError` (``SignatureError``, a kind of it, for the signature) or ``StoreError`` when the bundle
    cannot be fetched."""
    return verified_unit(store, release, version, trust)[0]


def verified_unit(
    store: ReleaseStore, release: str, version: str, trust: Trust | None = None
) -> tuple[dict[str, Any], UnitCheck | None]:
    """``verified_manifest``, and with ``trust`` the check of the unit's signature and attestations by a key it
    holds (refused unsigned, signed by another key, or changed since signing: the reason names the file)."""
    stored = store.manifest(release, version)
    where = store.bundle_uri(release, version)
    with tempfile.TemporaryDirectory(prefix=f"verify-{release}-") as tmp:
        bundle = store.fetch_bundle(release, version, Path(tmp) / BUNDLE)
        try:
            own = verify_bundle(bundle)
        except BundleError as exc:  # name the bundle where it is stored, not the temporary copy
            raise BundleError(str(exc).replace(str(bundle), where)) from None
        # The digests first: a changed member is named by them; the signature then refuses a consistent rewrite.
        check = None
        if trust is not None:
            check = check_unit(bundle, lambda name: store.beside(release, version, name), trust, where)
    if own.get("release") != release or own.get("version") != version:
        raise BundleError(f"{where}: the bundle is {own.get('release')} {own.get('version')}, not {release} {version}")
    check_agreement(stored, own, where)
    return own, check
