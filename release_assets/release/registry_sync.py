"""MLflow follows the ledger: every published release unit registered, and its model members beside it.

Registration is a follow-up to publishing, never part of the release run: importing MLflow and opening its
database cost seconds that a prompt edit or a CI job would otherwise wait for. The ledger is the source of truth,
so whatever runs the sync (``release-assets registry sync``, the ``registry_sync`` job its sensor launches, or any
promotion, rollback or canary move, which sync before pointing aliases) brings MLflow to the same state, and a sync
that died half way is completed by the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from release_assets.models.trainers import MODEL_KINDS
from release_assets.release.bundle import BundleError, extract_bundle, is_referenced
from release_assets.release.store import ReleaseStore, StoreError


@dataclass(frozen=True)
class Registered:
    """One release version newly registered: its MLflow run and the model and prompt versions registered with it."""

    release: str
    version: str
    mlflow_run_id: str
    models: list[str] = field(default_factory=list)  # newly registered: "<release>.<member> v<n>"
    model_members: list[str] = field(default_factory=list)  # the bundle's model members, registered now or before
    prompts: list[str] = field(default_factory=list)  # newly registered prompt versions: "<prompt> v<n>"

    def models_text(self) -> str:
        if not self.model_members:
            return "no model members"
        return ", ".join(self.models) or "none new (the same digests were registered before)"

    def prompts_text(self) -> str:
        return ", ".join(self.prompts) or "none new"


@dataclass(frozen=True)
class UnitFiles:
    """One release version's files as the registry reads them: the verified bundle extracted under ``root``, and a
    file the bundle holds by reference (a test split, the golden suite) fetched from the store when asked for,
    checked against its sha256. The registry reads a few of those to make its models' input examples."""

    root: Path
    manifest: dict[str, Any]
    fetch_data: Callable[[str, Path], Path] | None = None

    def file(self, path: str) -> Path | None:
        """The file at ``path`` in the bundle, or None when it is neither extracted nor fetchable."""
        local = (self.root / path).resolve()
        if not local.is_relative_to(self.root.resolve()):
            return None
        if local.is_file():
            return local
        entry = next(
            (f for m in self.manifest["members"].values() for f in m["files"] if f["path"] == path),
            None,
        )
        if entry is None or not is_referenced(entry) or self.fetch_data is None:
            return None
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self.fetch_data(entry["sha256"], local)
        except StoreError:  # an input example is not worth refusing a verified version over
            return None


def published_versions(events: list[dict[str, Any]]) -> list[str]:
    """Every version published, in ledger order (environment moves are not publishes)."""
    seen: dict[str, None] = {}
    for e in events:
        if e.get("action") == "published" and e.get("environment") is None:
            seen.setdefault(e["to_version"], None)
    return list(seen)


@contextlib.contextmanager
def _one_sync_at_a_time(tracking_uri: str) -> Iterator[None]:
    """Two syncs on one machine (the CLI and the sensor's job) must not both see a version missing and register it
    twice: they take turns on a lock named after the tracking URI."""
    if tracking_uri.startswith("sqlite:///"):  # beside the database it guards
        lock = Path(tracking_uri.removeprefix("sqlite:///") + ".sync.lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
    else:  # a server: syncs on this machine take turns (on several machines they can race: see the README)
        lock = (
            Path(tempfile.gettempdir())
            / f"release-assets-registry-{hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]}.lock"
        )
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class SyncResult:
    registered: list[Registered] = field(default_factory=list)
    # Version -> why it could not be registered (a bundle that fails its digests, a store that lost it). The
    # others are registered anyway: one bad old bundle must not keep every later version out of MLflow.
    failed: dict[str, str] = field(default_factory=dict)


def register_published(releases: ReleaseStore, registry: Any, release: str) -> SyncResult:
    """Register in MLflow every published version of ``release`` that is not there yet, oldest first.

    Each is one MLflow run (member metrics, manifest, the release as a pyfunc over the bundle as fetched from the
    store and verified) and a version of the registered model ``<release>``; each model member becomes a pyfunc
    version of ``<release>.<member>`` unless one with its digest exists already (a model reused by the next release
    version is one version), and each chain template a prompt version unless one with its sha256 exists.
    """

    result = SyncResult()
    with _one_sync_at_a_time(registry.tracking_uri):
        for version in published_versions(releases.events(release)):
            if registry.has_version(release, version):
                continue
            with tempfile.TemporaryDirectory(prefix="registry-sync-") as tmp:
                try:
                    bundle = releases.fetch_bundle(release, version, Path(tmp) / "bundle.tar.gz")
                    manifest = extract_bundle(bundle, Path(tmp) / "unit")  # refuses a bundle failing its digests
                except (BundleError, StoreError) as exc:
                    result.failed[version] = str(exc)
                    continue
                models = {
                    name: Path(tmp) / "unit" / name
                    for name, member in manifest["members"].items()
                    if member["kind"] in MODEL_KINDS
                }
                dagster_run_id = manifest.get("lineage", {}).get("dagster_run_id") or ""  # the run that built it
                files = UnitFiles(Path(tmp) / "unit", manifest, releases.fetch_data)
                run_id, model_versions, prompt_versions = registry.log_release_unit(
                    release, manifest, bundle, dagster_run_id, models=models, files=files
                )
            result.registered.append(
                Registered(release, version, run_id, model_versions, sorted(models), prompt_versions)
            )
    return result
