"""Promotion from one environment to the next (``release-assets promote RELEASE VERSION --to ENV``).

A version moves only from the environment just before: into the second once it is published and servable in the
first, into any later one once it is the champion of the one before, after its soak there. Its verified bundle is
copied to each region of the target's store in waves (the first region, verified back, then the rest), and only
when every region holds it verified are ``approved`` + ``promoted`` appended, with ``environment`` and ``regions``,
to the release's one ledger (in the first environment's store). A failed region stops the wave and records
nothing; a retry skips the regions that already hold the verified bundle.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from release_assets.core.settings import get_settings
from release_assets.provenance.attest import ATTESTATIONS
from release_assets.provenance.keys import Trust
from release_assets.provenance.signing import SIGNATURE, configured_signer, signed_sha256
from release_assets.provenance.statements import verification_file, verification_summary
from release_assets.record.ledger import PromotionError, check_servable, default_actor, event, replay
from release_assets.record.servable import overridden_controls
from release_assets.record.verified import verified_manifest
from release_assets.release.bundle import verify_bundle
from release_assets.release.store import BUNDLE, ReleaseStore, event_hash
from release_assets.rollout.environments import Environment, Environments, store_for, trust_of

MONITOR = "canary_monitor"  # rollout.canary.MONITOR: a promotion the canary monitor made when the canary completed


def ledger_key(envs: Environments, name: str) -> str | None:
    """The ``environment`` field of ``name``'s events: the first environment's carry none (as before)."""
    return None if name == envs.first.name else name


def environment_of(envs: Environments, e: dict[str, Any]) -> str:
    return e.get("environment") or envs.first.name


def champions(envs: Environments, events: list[dict[str, Any]]) -> dict[str, str | None]:
    """Environment name -> its champion, replayed from the one ledger."""
    return {n: replay(events, ledger_key(envs, n)).champion for n in envs.names}


def champion_since(events: list[dict[str, Any]], key: str | None, version: str) -> datetime | None:
    """When ``version`` last became the champion of the environment ``key`` (None if it is not its champion)."""
    since, before = None, None
    for i, e in enumerate(events):
        if e.get("environment") != key or e["action"] not in ("promoted", "rolled_back"):
            continue
        now = replay(events[: i + 1], key).champion  # replay decides which moves took effect
        if now == version and before != version:
            since = datetime.fromisoformat(e["time"])
        before = now
    return since if before == version else None


def _target(envs: Environments, name: str) -> tuple[Environment, Environment]:
    env = envs.get(name)
    if env is None:
        raise PromotionError(f"unknown environment {name!r} (environments.yaml declares: {', '.join(envs.names)})")
    index = envs.index(name)
    if index == 0:
        raise PromotionError(
            f"{name} is the first environment: versions enter it by `release-assets release`, and become its "
            "champion by `release-assets promote RELEASE VERSION` without `--to`"
        )
    return env, envs.environments[index - 1]


def _check_previous(
    envs: Environments, events: list[dict[str, Any]], release: str, version: str, env: Environment, prev: Environment
) -> None:
    """Skipping an environment is refused: later than the second, the version must be the previous one's champion."""
    if envs.index(env.name) == 1:
        return  # published and servable in the first environment is enough (checked by check_servable)
    current = replay(events, ledger_key(envs, prev.name)).champion
    if current != version:
        raise PromotionError(
            f"{release} {version} cannot go to {env.name}: it is not the champion of {prev.name}, the environment "
            f"before (champion there: {current or 'none'}); promote it with `--to {prev.name}` first"
        )


def _check_soak(
    envs: Environments, events: list[dict[str, Any]], release: str, version: str, env: Environment, now: datetime
) -> None:
    prev = envs.environments[envs.index(env.name) - 1]
    key = ledger_key(envs, prev.name)
    if env.soak is None:
        return
    if env.soak.canary:
        if replay(events, env.name).champion is None:
            return  # its first champion: no champion there to judge a canary against (see environments.Soak)
        if not any(
            e.get("environment") == key
            and e["action"] == "promoted"
            and e["to_version"] == version
            and e.get("via") == MONITOR
            for e in events
        ):
            raise PromotionError(
                f"{release} {version} cannot go to {env.name}: its soak needs a completed canary in {prev.name} "
                f"(promoted by the canary monitor), and the ledger has none; or enter {env.name} through a canary "
                f"there: `canary start {release} {version} --env {env.name}`"
            )
        return
    assert env.soak.min_minutes is not None, "a soak is exactly one of canary and min_minutes (Soak)"
    since = champion_since(events, key, version)
    if since is None:
        raise PromotionError(
            f"{release} {version} cannot go to {env.name}: its soak needs it to be the champion of {prev.name} for "
            f"{env.soak.min_minutes:g} min, and it is not the champion there"
        )
    minutes = (now - since).total_seconds() / 60
    if minutes < env.soak.min_minutes:
        raise PromotionError(
            f"{release} {version} cannot go to {env.name}: its soak needs {env.soak.min_minutes:g} min as champion of "
            f"{prev.name}, and it has had {minutes:.1f} min (since {since.isoformat(timespec='seconds')})"
        )


def _copy(
    target: ReleaseStore,
    release: str,
    version: str,
    bundle: Path,
    manifest: dict[str, Any],
    beside: dict[str, bytes],
    trust: Trust | None,
) -> str:
    """Publish into one region with the files beside the bundle (signature, attestations), then verify it back
    there. A region already holding it verified is left alone."""

    if target.manifest(release, version) is not None:
        verified_manifest(target, release, version, trust)  # a copy that does not verify is named, never trusted
        return "already there"
    # Bundle, the files beside it, manifest last: visible only when whole, and never unsigned when it was signed.
    target.publish(release, version, bundle, manifest, beside=beside)
    verified_manifest(target, release, version, trust)
    return "copied"


def copy_to_regions(
    source: ReleaseStore,
    env: Environment,
    release: str,
    version: str,
    stores: Callable[[Environment, str], ReleaseStore] = store_for,
    trust: Trust | None = None,
) -> dict[str, str]:
    """Copy the verified bundle, and the files beside it, to every region of ``env`` in order (the first region is
    the first wave, so a broken setup fails there before touching the others); each copy is verified back, with
    ``trust`` its signature too. Returns region -> "copied" | "already there"; the first failure raises
    :class:`PromotionError` naming the region and what the earlier regions hold."""

    done: dict[str, str] = {}
    beside = {
        n: b for n in source.names_beside(release, version) if (b := source.beside(release, version, n)) is not None
    }
    with tempfile.TemporaryDirectory(prefix=f"promote-{release}-") as tmp:
        bundle = source.fetch_bundle(release, version, Path(tmp) / BUNDLE)
        verify_bundle(bundle)  # what is uploaded is what was verified, not a second download
        manifest = source.manifest(release, version)
        if manifest is None:
            raise PromotionError(
                f"{release} {version} was not promoted to {env.name}: the source store has no manifest for it"
            )
        for region in env.regions():
            try:
                done[region] = _copy(stores(env, region), release, version, bundle, manifest, beside, trust)
            except Exception as exc:  # any failure (endpoint, bucket, credentials, digest) stops the wave here
                earlier = f" (regions before it hold the bundle: {', '.join(done)})" if done else ""
                raise PromotionError(
                    f"{release} {version} was not promoted to {env.name}: region {region} failed: "
                    f"{type(exc).__name__}: {exc}{earlier}. Nothing was recorded in the ledger; run the promotion "
                    "again once it is fixed (regions that hold the verified bundle are skipped)"
                ) from None
    return done


def admit_canary(
    store: ReleaseStore,
    envs: Environments,
    release: str,
    version: str,
    environment: str,
    override_weakened_gates: bool = False,
    *,
    stores: Callable[[Environment, str], ReleaseStore] = store_for,
    now: datetime | None = None,
) -> list[str]:
    """Before a canary of ``version`` starts in ``environment`` (not the first): what a promotion there would need
    (servable, signed when the environment trusts keys, the champion of the environment before, its soak there:
    a ``canary`` soak is this canary itself), then the bundle copied to every region of the environment, so its
    servers can load it. Returns the regions; records nothing (the canary's start does, and its completion is the
    promotion). ``store`` is the first environment's."""
    env, prev = _target(envs, environment)
    check_servable(
        store,
        release,
        version,
        override_weakened_gates,
        action=f"sent canary traffic in {env.name}",
        trust=trust_of(env),
    )
    events = store.events(release)
    current = replay(events, env.name).champion
    if current is None:
        raise PromotionError(
            f"{release} has no champion in {env.name} to judge a canary against: promote a first one "
            f"(`release-assets promote {release} VERSION --to {env.name}`)"
        )
    if current == version:
        raise PromotionError(f"{release} {version} is already the champion of {env.name}")
    _check_previous(envs, events, release, version, env, prev)
    if env.soak is not None and not env.soak.canary:
        _check_soak(envs, events, release, version, env, now or datetime.now(UTC))
    return list(copy_to_regions(store, env, release, version, stores, trust_of(env)))


def promote_to(
    store: ReleaseStore,
    envs: Environments,
    release: str,
    version: str,
    environment: str,
    approved_by: str = "",
    reason: str = "",
    override_weakened_gates: bool = False,
    *,
    stores: Callable[[Environment, str], ReleaseStore] = store_for,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Promote ``version`` of ``release`` into ``environment``; ``store`` is the first environment's (the ledger's
    and the source of the bundle). Returns the ``approved`` and ``promoted`` events written."""
    env, prev = _target(envs, environment)
    if env.approval and not (approved_by.strip() and reason.strip()):
        missing = " and ".join(f for f, v in (("--approved-by", approved_by), ("--reason", reason)) if not v.strip())
        raise PromotionError(f"promotion to {env.name} needs an approval: {missing} missing")
    trust = trust_of(env)
    manifest = check_servable(
        store, release, version, override_weakened_gates, action=f"promoted to {env.name}", trust=trust
    )
    events = store.events(release)
    _check_previous(envs, events, release, version, env, prev)
    _check_soak(envs, events, release, version, env, now or datetime.now(UTC))
    current = replay(events, env.name).champion
    if current == version:
        raise PromotionError(f"{release} {version} is already the champion of {env.name}")
    copies = copy_to_regions(store, env, release, version, stores, trust)
    actor = approved_by.strip() or default_actor()
    why = reason.strip() or f"promoted from {prev.name}"
    extra: dict[str, Any] = {"environment": env.name, "regions": list(copies)}
    overridden = overridden_controls(manifest)
    if overridden:
        extra["override"] = overridden
    moves = [
        event(action, release, actor=actor, reason=why, from_version=current, to_version=version, **extra)
        for action in ("approved", "promoted")
    ]
    written = [store.append_event(release, e) for e in moves]
    if replay(store.events(release), env.name).champion != version:
        raise PromotionError(
            f"{release} {version} was not promoted to {env.name}: another promotion moved its champion at the same "
            "time (see `release-assets history`)"
        )
    if trust is not None:
        summary = verification_summary_file(store, manifest, env, written[0], trust)
        if summary is not None:  # beside the unit in the ledger's store and in every region it was copied to
            name, body = summary
            for target in [store, *(stores(env, region) for region in copies)]:
                target.put_beside(release, version, name, body)
    return written


def verification_summary_file(
    store: ReleaseStore, manifest: dict[str, Any], env: Environment, approved: dict[str, Any], trust: Trust
) -> tuple[str, bytes] | None:
    """The promotion into ``env`` as a signed SLSA verification summary (file name, envelope), citing the
    attestations checked and the ledger's ``approved`` event; None when no signer is configured here (the ledger
    event still records the move)."""
    signer = configured_signer(get_settings())
    if signer is None:
        return None
    release, version = manifest["release"], manifest["version"]
    read = {n: b for n in ATTESTATIONS if (b := store.beside(release, version, n)) is not None}
    policy = json.dumps({**env.model_dump(mode="json"), "trusted_key_ids": sorted(trust.keys)}, sort_keys=True)
    statement = verification_summary(
        manifest,
        signed_sha256(store.beside(release, version, SIGNATURE) or b"") or "",
        environment=env.name,
        policy_sha256=hashlib.sha256(policy.encode()).hexdigest(),
        approval=approved,
        approval_uri=f"ledger/{release}#seq={approved['seq']}",
        approval_sha256=event_hash(approved),
        input_attestations={n: hashlib.sha256(b).hexdigest() for n, b in read.items()},
        time_verified=approved["time"],
        resource_uri=store.bundle_uri(release, version),
    )
    return verification_file(env.name), signer.sign_statement(statement)
