"""``--set RELEASE:PATH=VALUE``: a manifest field changed for one run, validated exactly like the file."""

from __future__ import annotations

import yaml

from release_assets.manifest import ManifestError, ReleaseManifest, parse_manifest


def apply_overrides(manifest: ReleaseManifest, overrides: list[str]) -> ReleaseManifest:
    """``member.params.C=1e-4``-style edits for one run (e.g. train a deliberately worse candidate), validated
    exactly like the file: a typo in a path or value is an error naming the override."""
    data = manifest.model_dump(mode="json", by_alias=True, exclude={"source"})
    for item in overrides:
        path, sep, raw = item.partition("=")
        if not sep or not path:
            raise ManifestError(f"--set {item!r}: expected PATH=VALUE, e.g. members.classifier.params.C=0.0001")
        if path == "name":
            raise ManifestError(f"--set {item!r}: a release's name comes from its file and cannot be overridden")
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            if not isinstance(node, dict) or part not in node:
                raise ManifestError(f"--set {item!r}: {manifest.name} has no field {path!r}")
            node = node[part]
        node[leaf] = yaml.safe_load(raw)
    where = f"{manifest.source or manifest.name} with --set {' '.join(overrides)}"
    return parse_manifest(data, where).model_copy(update={"source": manifest.source})


def apply_release_overrides(manifests: list[ReleaseManifest], overrides: list[str]) -> list[ReleaseManifest]:
    """Apply ``RELEASE:PATH=VALUE`` overrides to the named releases."""
    by_release: dict[str, list[str]] = {}
    for item in overrides:
        release, sep, edit = item.partition(":")
        if not sep:
            raise ManifestError(f"--set {item!r}: expected RELEASE:PATH=VALUE")
        by_release.setdefault(release, []).append(edit)
    unknown = set(by_release) - {m.name for m in manifests}
    if unknown:
        raise ManifestError(f"--set names release(s) not being run: {sorted(unknown)}")
    return [apply_overrides(m, by_release[m.name]) if m.name in by_release else m for m in manifests]
