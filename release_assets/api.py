"""The Python API: run releases, load a published one, promote, roll back, read the ledger and the versions.

The ``release-assets`` commands call these same functions and print what they return: as text, or with ``--json``
as each result's :meth:`as_dict` (the shapes README.md documents). Everything is configured as the CLI is, by the
``RELEASE_ASSETS_*`` settings (``core/settings.py``); promotions and rollbacks run the same Dagster jobs as the
launchpad, so each is a run with its config and an observation on the release unit's asset page.

    from release_assets import api

    run = api.release(["iris"])                       # materialize, gate and publish
    [iris] = run.releases
    if iris.published_ok:
        api.promote("iris", iris.version, approved_by="you@example.com", reason="first release")
    champion = api.load_release("iris")               # verified, ready to answer
    champion.predict({"features": [6.7, 3.0, 5.2, 2.3]})  # {"label": "virginica", ...}
    api.history("iris").events[-1].action             # "promoted"
    api.rollback("iris", reason="p99 regressed")

Errors are the package's own, written for people (one line naming the file, field, version or endpoint):
``ManifestError`` (a manifest or override that does not load, a release with no manifest), ``StoreError`` (the
store unreachable or misconfigured, a name that is not a release name, a version or alias it does not have),
``LedgerError`` (a ledger edited outside the tool), ``PromotionError`` (a promotion or rollback refused: never
published, gates not passed, bundle does not verify, nothing to roll back to), ``BaseRefError`` (the default branch
does not resolve), :class:`UsageError`, :class:`RunFailed`. A held release is not an error: its summary says so; a
move MLflow could not follow is not one either (:attr:`Move.mlflow_pending`).

Importing this module loads Dagster through the definitions it runs (``definitions.py``: the instance, the jobs);
``release-assets``'s commands import it only when they run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from release_assets.core.git_base import configured_base_ref, resolve_base
from release_assets.core.settings import Settings, get_settings
from release_assets.definitions import definitions, resources_for, run_job
from release_assets.manifest import ManifestError, ReleaseManifest, load_each
from release_assets.manifest.overrides import apply_release_overrides
from release_assets.record.ledger import PromotionError, default_actor, replay
from release_assets.record.servable import override_text
from release_assets.release.input_stamp import record, unchanged
from release_assets.release.store import ReleaseStore, StoreError, check_release_name
from release_assets.release.summary import ReleaseSummary, error_text, summarise_run
from release_assets.resources.artifact_store import store_unavailable
from release_assets.rollout.environment_promotion import champions, environment_of
from release_assets.rollout.environments import Environments, project_environments
from release_assets.serving.loader import LoadedRelease
from release_assets.serving.loader import load_release as _load_release

__all__ = [
    "History",
    "LedgerEntry",
    "Move",
    "ReleaseRun",
    "ReleaseVersions",
    "RunFailed",
    "UsageError",
    "VersionInfo",
    "history",
    "load_release",
    "promote",
    "release",
    "release_status",
    "rollback",
    "versions",
]

# A context manager around a job while it runs: given the job, it yields the job to execute (the CLI's progress
# display adds its logger this way).
Display = Callable[[Any], AbstractContextManager[Any]]


class UsageError(ValueError):
    """A call that cannot be made as asked (a promotion without an approver); nothing was done."""


class RunFailed(RuntimeError):
    """A job failed for a reason other than a refusal (a step raised); the message is the run's failure lines."""


# -- results: plain dataclasses; as_dict() is what --json prints -----------------------------------------------


@dataclass(frozen=True)
class ReleaseRun:
    """What :func:`release` did: each release it ran (``releases``, the run's summaries), the ones proven unchanged
    without a run (``unchanged``: release -> its published version), and the manifests that did not load."""

    releases: list[ReleaseSummary]
    unchanged: dict[str, str]
    run_id: str | None  # None when nothing had to run
    seconds: float
    publish: bool  # False: gated and reported only; nothing was published, no ledger event written
    manifest_errors: list[str]
    ok: bool  # every release published (or unchanged) and, when none was named, every manifest loaded
    # The Dagster run's result and definitions, for callers that read more of the run (asset check evaluations).
    result: Any = field(default=None, repr=False, compare=False)
    definitions: Any = field(default=None, repr=False, compare=False)
    manifests: list[ReleaseManifest] = field(default_factory=list, repr=False, compare=False)  # as run

    @property
    def held_back(self) -> list[str]:
        return [s.release for s in self.releases if s.held_back]

    def as_dict(self) -> dict[str, Any]:
        rows = [_unchanged_row(name, version) for name, version in self.unchanged.items()]
        rows += [_summary_row(s) for s in self.releases]
        return {
            "releases": rows,
            "run_id": self.run_id,
            "seconds": round(self.seconds, 3),
            "publish": self.publish,
            "manifest_errors": self.manifest_errors,
        }


def release_status(s: ReleaseSummary) -> str:
    """published, unchanged (already published, nothing new), evaluated (publishing off), held_back or failed."""
    if s.held_back:
        return "held_back"
    if not s.version or s.failures:
        return "failed"
    if s.evaluated_only:
        return "evaluated"
    return "published" if s.published else "unchanged"


def _summary_row(s: ReleaseSummary) -> dict[str, Any]:
    gates = [{k: v for k, v in asdict(g).items() if k != "release"} for g in s.gates]
    return {
        "release": s.release,
        "status": release_status(s),
        "version": s.version,
        "bundle": s.bundle,
        "gates": gates,
        "recorded_gates": s.recorded_gates,
        "weakened_gates": s.weakened_gates,
        "errors": s.failures,
    }


def _unchanged_row(name: str, version: str) -> dict[str, Any]:
    return {
        "release": name,
        "status": "unchanged",
        "version": version,
        "bundle": None,
        "gates": None,  # no run: the published version's verdicts are in its manifest (`versions`)
        "recorded_gates": None,
        "weakened_gates": [],
        "errors": [],
    }


@dataclass(frozen=True)
class VersionInfo:
    version: str
    created_at: str
    gates_passed: int
    gates_total: int
    aliases: list[str]  # champion, candidate
    weakened_gates: list[str]  # gates loosened from the default branch's manifest: promotion needs the override
    provenance: list[str]  # "DIRTY tree", "OFF origin/main": promotion needs the override
    champion_of: list[str]  # the environments running it


@dataclass(frozen=True)
class ReleaseVersions:
    release: str
    champion: str | None
    candidate: str | None
    versions: list[VersionInfo]  # oldest first
    errors: list[str]  # versions whose stored manifest cannot be read (the others are still listed)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LedgerEntry:
    time: str
    environment: str
    action: str  # published, approved, promoted, rolled_back, canary_*, ...
    actor: str  # who it claims
    run_by: str | None  # who ran the command (the OS user, or the CI actor)
    from_version: str | None
    to_version: str | None
    reason: str
    override: dict[str, Any] | None  # what a promotion's override went around
    weakened_gates: list[str]  # a published build's gates loosened from the default branch's manifest


@dataclass(frozen=True)
class History:
    release: str
    champion: str | None
    candidate: str | None
    events: list[LedgerEntry]  # in ledger order

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Move:
    """A promotion or rollback as the ledger recorded it."""

    release: str
    action: str  # promoted, rolled_back
    champion: str | None  # after the move (of ``environment`` when given)
    from_version: str | None
    environment: str | None
    regions: list[str]
    actor: str
    reason: str
    override: dict[str, Any] | None
    # Why MLflow's aliases do not follow the move yet (the tracking server could not be reached), else None: the
    # move stands (the ledger is the truth); the next `registry sync` points them.
    mlflow_pending: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the API ------------------------------------------------------------------------------------------------------


def release(
    names: Sequence[str] | None = None,
    *,
    overrides: Sequence[str] = (),
    publish: bool | None = None,
    force: bool = False,
    log_level: str = "CRITICAL",
    display: Display | None = None,
) -> ReleaseRun:
    """Materialize, gate and publish ``names`` (default: every manifest that loads) in one Dagster run.

    ``overrides``: ``RELEASE:PATH=VALUE`` manifest fields for this run (validated like the file). ``publish``:
    False gates and reports only (default: ``RELEASE_ASSETS_PUBLISH``). A release whose inputs equal those of the
    run that published it is not run again (``unchanged``) unless ``force``, an override or publishing off.
    """
    start = time.perf_counter()
    settings = get_settings()
    manifests, errors = load_manifests(names)
    if overrides:
        manifests = apply_release_overrides(manifests, list(overrides))
    if not manifests:
        raise ManifestError(
            "no release to run: " + ("; ".join(errors) if errors else f"no manifest in {settings.releases_path}")
        )
    broken = bool(errors) and not names
    # Before any work: a base ref that does not resolve would only fail the release units after training.
    resolve_base(settings.project_root, configured_base_ref())
    publish = settings.publish if publish is None else publish
    done = {} if force or overrides or not publish else unchanged_releases(manifests, settings)
    todo = [m for m in manifests if m.name not in done]
    if not todo:
        return ReleaseRun([], done, None, time.perf_counter() - start, publish, errors, not broken)
    # Before any work: an unreachable store is one line naming the endpoint, not a failure after training.
    resources_for(settings)["store"].preflight()
    defs = definitions(todo)
    config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if not publish:  # in the run's own config, so the Dagster run records that it was an evaluation
        config["ops"] = {f"{m.name}__release_unit": {"config": {"publish": False}} for m in todo}
    result = run_job("release_all", config, defs=defs, display=display)
    unusable = store_unavailable(result)
    if unusable:  # the store went away between the preflight and the run
        raise StoreError(unusable)
    summaries = summarise_run(result, [m.name for m in todo])
    if not overrides:  # a build with overrides is not what the manifest on disk builds
        stamp_published(defs, summaries, todo, settings)
    ok = all(s.published_ok for s in summaries) and not broken
    seconds = time.perf_counter() - start
    return ReleaseRun(
        summaries, done, result.run_id, seconds, publish, errors, ok, result=result, definitions=defs, manifests=todo
    )


def load_release(release: str, version: str | None = None, alias: str | None = None) -> LoadedRelease:
    """``release`` at ``version``, or the version ``alias`` (champion, candidate, canary) points at (default: the
    champion), fetched from the store and verified: ``.predict(request)`` answers as ``serve`` would."""
    return _load_release(release_store(), release, version, alias, cache_dir=serving_cache())


def promote(
    release: str,
    version: str,
    *,
    approved_by: str = "",
    reason: str = "",
    environment: str | None = None,
    override_weakened_gates: bool = False,
) -> Move:
    """Approve ``version`` and make it the champion (of ``environment`` in environments.yaml, from the one before).

    Raises :class:`PromotionError` when refused (the ledger is unchanged). When MLflow cannot be reached the move
    still stands and :attr:`Move.mlflow_pending` says so."""
    if not environment and not (approved_by and reason):  # an environment says itself whether it needs them
        raise UsageError("promote needs approved_by and reason, unless an environment that needs no approval")
    config = {
        "release": release,
        "version": version,
        "approved_by": approved_by,
        "reason": reason,
        "override_weakened_gates": override_weakened_gates,
        "environment": environment,
    }
    moved, events, pending = _move("promote_release", "promote", config, release)
    last = next(e for e in reversed(moved) if e["action"] == "promoted")
    champion = champions(environments(), events)[environment] if environment else replay(events).champion
    return _as_move(release, last, champion, environment, pending)


def rollback(release: str, *, reason: str, by: str | None = None) -> Move:
    """Move the champion back to the previous champion (``by``: default ``RELEASE_ASSETS_ACTOR`` or the OS user).

    Raises :class:`PromotionError` when refused (nothing to roll back to, a target that does not verify)."""
    config = {"release": release, "requested_by": by or default_actor(), "reason": reason}
    moved, events, pending = _move("rollback_release", "rollback", config, release)
    last = next(e for e in reversed(moved) if e["action"] == "rolled_back")
    return _as_move(release, last, replay(events).champion, None, pending)


def history(release: str) -> History:
    """``release``'s promotion ledger, every event in order (its hash chain verified as it is read)."""
    events = release_store().events(release)
    envs = environments()
    state = replay(events)
    entries = [
        LedgerEntry(
            time=e["time"],
            environment=environment_of(envs, e),
            action=e["action"],
            actor=e["actor"],
            run_by=e.get("run_by"),
            from_version=e["from_version"],
            to_version=e["to_version"],
            reason=e["reason"],
            override=e["override"] if isinstance(e.get("override"), dict) else None,
            weakened_gates=list(e.get("weakened_gates") or []),
        )
        for e in events
    ]
    return History(release, state.champion, state.candidate, entries)


def versions(names: Sequence[str] | None = None) -> list[ReleaseVersions]:
    """The published versions of ``names`` (default: every manifest that loads), with their gate counts, aliases,
    weakened gates, build provenance and the environments running them."""
    store = release_store()
    envs = environments()
    out = []
    for name in names or [m.name for m in load_manifests()[0]]:
        events = store.events(name)
        state = replay(events)
        running = champions(envs, events)  # environment -> its champion
        rows, errors = [], []
        for version in store.versions(name):
            try:
                m = store.manifest(name, version) or {}
            except StoreError as exc:  # one unreadable manifest must not hide the other versions
                errors.append(str(exc))
                continue
            gates = m.get("gates", [])
            rows.append(
                VersionInfo(
                    version=version,
                    created_at=m.get("created_at", ""),
                    gates_passed=sum(g["status"] == "passed" for g in gates),
                    gates_total=len(gates),
                    aliases=[
                        a for a, v in (("champion", state.champion), ("candidate", state.candidate)) if v == version
                    ],
                    weakened_gates=list(m.get("weakened_gates") or []),
                    provenance=_provenance_marks((m.get("lineage") or {}).get("git")),
                    champion_of=[env for env, v in running.items() if v == version],
                )
            )
        rows.sort(key=lambda r: r.created_at)
        out.append(ReleaseVersions(name, state.champion, state.candidate, rows, errors))
    return out


# -- what the CLI shares with the API (not part of the documented API) --------------------------------------------


def load_manifests(names: Sequence[str] | None = None) -> tuple[list[ReleaseManifest], list[str]]:
    """The manifests asked for (default: all that load) and one error line per manifest that did not load. A
    broken manifest does not stop the others; asking for it, or for a release with no manifest, is an error."""
    settings = get_settings()
    manifests, errors = load_each(settings.releases_path, settings.project_root)
    if not names:
        return manifests, errors
    known = {m.name: m for m in manifests}
    missing = [n for n in names if n not in known]
    if missing:
        theirs = [e for e in errors if Path(e.split(":", 1)[0]).stem in missing]
        if set(missing) <= {Path(e.split(":", 1)[0]).stem for e in theirs}:
            raise ManifestError(f"release(s) {', '.join(missing)} cannot be loaded: {'; '.join(theirs)}")
        raise ManifestError(f"release(s) {', '.join(missing)} not found; known: {sorted(known)}")
    return [known[n] for n in names], errors


def release_store() -> ReleaseStore:
    """The configured release store (local folder or S3), checked first: an unreachable store is one line naming
    the endpoint (``StoreError``), not a botocore traceback."""
    store = resources_for(get_settings())["store"]
    store.preflight()
    return store.releases()


def environments() -> Environments:
    return project_environments()


def serving_cache() -> Path:
    """Extracted, verified release versions for serving: beside the store's build cache, reused across runs."""
    return get_settings().store_path / "serving"


def failure_messages(result: Any) -> list[str]:
    """A failed run's reasons, one line each: an unusable store, then each failed step's error."""
    unusable = store_unavailable(result)
    return ([unusable] if unusable else []) + [
        error_text(e.step_failure_data.error) if e.step_failure_data.error else e.step_key
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    ]


def quiet_run_config(log_level: str = "CRITICAL") -> dict[str, Any]:
    # A refusal is reported once, cleanly, by the caller; Dagster's step-failure traceback is noise here.
    return {"loggers": {"console": {"config": {"log_level": log_level}}}}


REFUSALS = ("promotion refused: ", "rollback refused: ", "canary start refused: ", "canary abort refused: ")


def run_move(
    job: str, op: str, op_config: dict[str, Any], release: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Run a one-op job that moves ``release``'s ledger (promote, rollback, canary start or abort): the events it
    appended, the whole ledger after it, and the run's failure lines (none when it succeeded). Appended events with
    failures: the move stands and MLflow's aliases are pending. Failures alone: refused (a line starting with one
    of :data:`REFUSALS`), or failed before recording anything."""
    store = release_store()  # checked before the run: an unreachable store is one line, not a failed run
    before = len(store.events(check_release_name(release)))
    result = run_job(job, {**quiet_run_config(), "ops": {op: {"config": op_config}}})
    failures = [] if result.success else failure_messages(result)
    events = store.events(release)
    return events[before:], events, failures


def unchanged_releases(manifests: list[ReleaseManifest], settings: Settings) -> dict[str, str]:
    """Release name -> published version, for each release whose inputs equal those of the run that published it
    (``release/input_stamp.py``): proven without running anything. Only the local store keeps stamps."""
    if settings.store_backend != "local":
        return {}
    found = {m.name: unchanged(settings.store_path, m, settings.tracking_uri) for m in manifests}
    return {name: version for name, version in found.items() if version}


def stamp_published(
    defs: Any, summaries: list[ReleaseSummary], manifests: list[ReleaseManifest], settings: Settings
) -> None:
    """After a run: remember the inputs of every release it published (or found published), for
    :func:`unchanged_releases`."""
    if settings.store_backend != "local":
        return
    files: dict[str, set[Path]] = {}
    for spec in defs.resolve_all_asset_specs():
        watched = (spec.metadata.get("code_inputs") or {}).get("files", [])
        files.setdefault(spec.key.path[0], set()).update(Path(f) for f in watched)
    by_name = {m.name: m for m in manifests}
    for s in summaries:
        # A build evaluated without publishing left nothing to be "unchanged" from: the next run must publish.
        if s.version and s.published_ok and not s.evaluated_only and s.release in by_name:
            record(
                settings.store_path,
                by_name[s.release],
                s.version,
                sorted(files.get(s.release, ())),
                settings.tracking_uri,
            )


def _move(
    job: str, op: str, config: dict[str, Any], release: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
    """(the events the move appended, the ledger after it, why MLflow's aliases are pending or None)."""
    moved, events, failures = run_move(job, op, config, release)
    text = "; ".join(failures)
    if not moved:
        if failures and all(f.startswith(REFUSALS) for f in failures):
            raise PromotionError(text)
        raise RunFailed(text or f"{job}: nothing was recorded")
    return moved, events, text or None


def _as_move(
    release: str, e: dict[str, Any], champion: str | None, environment: str | None, pending: str | None
) -> Move:
    return Move(
        release=release,
        action=e["action"],
        champion=champion,
        from_version=e["from_version"],
        environment=environment,
        regions=list(e.get("regions") or []),
        actor=e["actor"],
        reason=e["reason"],
        override=e["override"] if isinstance(e.get("override"), dict) else None,
        mlflow_pending=pending,
    )


def _provenance_marks(git: dict[str, Any] | None) -> list[str]:
    """What `list` shows of where a version was built, when promoting it will need an override."""
    git = git or {}
    marks = ["DIRTY tree"] if git.get("dirty") else []
    if git.get("on_default_branch") is False:
        marks.append(f"OFF {git.get('base_ref') or 'the default branch'}")
    return marks


def override_note(entry: LedgerEntry) -> str:
    """What a history row must not hide: a promotion over weakened gates or a dirty or off-branch build (the
    override), a release built with weakened gates."""
    if entry.override and override_text(entry.override):
        return f" [OVERRIDE of {override_text(entry.override)}]"
    if entry.weakened_gates:
        return f" [built with weakened gates: {'; '.join(entry.weakened_gates)}]"
    return ""
