"""Release stage: re-decide every gate, then bundle and publish the release unit atomically."""

from pathlib import Path

import dagster as dg

from release_assets import keys
from release_assets.artifacts import ArtifactRef
from release_assets.evaluation.report import markdown_table
from release_assets.hashing import CodeInputs
from release_assets.manifest import ReleaseManifest
from release_assets.promotion.policy import bounds_text
from release_assets.resources.artifact_store import versioned

RELEASE_UNIT_AUTOMATION = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()

MODULES = [
    "release_assets.release.bundle",
    "release_assets.release.publish",
    "release_assets.promotion.policy",
]


def _verdict_table(verdicts) -> str:
    return markdown_table(
        ["member", "gate", "status", "observed", "threshold", "reason"],
        [
            [
                v.member,
                v.gate,
                v.status,
                "" if v.observed is None else v.observed,
                bounds_text(v.threshold),
                v.reason,
            ]
            for v in verdicts
        ],
    )


def release_unit_asset(
    manifest: ReleaseManifest, project_root: Path, code_versions: dict[str, str | None]
) -> dg.AssetsDefinition:
    """``code_versions`` maps each bundled member to its asset's code version, recorded in the lineage."""
    members = keys.bundled(manifest)

    @dg.asset(
        key=keys.release_unit(manifest.name),
        ins={name: dg.AssetIn(key) for name, key in members.items()},
        group_name=keys.group(manifest.name, "release"),
        **versioned(CodeInputs(MODULES, [manifest.source] if manifest.source else []), manifest, None),
        description=(
            f"The `{manifest.name}` release unit: every member bundled into one content-addressed tar.gz with a "
            "manifest (digests, metrics, gate verdicts, lineage), published only if every blocking gate passes."
        ),
        owners=manifest.owners,
        kinds={"python", "mlflow"},
        required_resource_keys={"store", "registry"},
        # For teams that turn on declarative automation: `eager()` alone would publish past failed blocking
        # checks (dagster#17332), so the condition also requires every dependency's blocking checks to pass.
        automation_condition=RELEASE_UNIT_AUTOMATION,
    )
    def release_unit(context: dg.AssetExecutionContext, **refs: ArtifactRef) -> dg.Output:
        from release_assets.promotion.gates import MemberInputs, consistency_verdicts, member_roles, member_verdicts
        from release_assets.promotion.policy import release_decision
        from release_assets.promotion.weakened import committed_manifest, weakened_gates
        from release_assets.release.publish import build_manifest, git_commit, publish_release
        from release_assets.rollout.champion import ChampionView
        from release_assets.rollout.ledger import record_published, replay

        store = context.resources.store
        local, releases = store.local(), store.releases()
        by_key = {tuple(key): refs[name] for name, key in members.items()}
        champion = ChampionView(releases, local.root, manifest.name)
        # Blocking checks stop downstream steps only within one run; decide again, with the same function the
        # checks use, so materializing this asset alone can never publish past a failed gate.
        verdicts = consistency_verdicts({"/".join(key): by_key[tuple(key)] for key in members.values()}) + [
            v
            for m in sorted(manifest.gates)
            for v in member_verdicts(
                manifest,
                m,
                MemberInputs(
                    refs={role: by_key[tuple(key)] for role, key in member_roles(manifest, m).items()},
                    store_root=local.root,
                    champion=champion,
                ),
            )
        ]
        ok, holding = release_decision(verdicts)
        if not ok:
            raise dg.Failure(
                description=f"{manifest.name}: held back by {len(holding)} gate(s): "
                + "; ".join(f"{v.member}.{v.gate}: {v.reason}" for v in holding),
                metadata={"gates": dg.MetadataValue.md(_verdict_table(verdicts))},
            )
        lineage = {
            "dagster_run_id": context.run.run_id,
            "git": git_commit(project_root),
            "code_versions": code_versions,
            "data_versions": {name: ref.digest[:16] for name, ref in refs.items()},
            "fingerprints": {name: ref.fingerprint for name, ref in refs.items()},
        }
        committed, committed_from = committed_manifest(manifest)
        weakened = weakened_gates(committed, manifest)
        lineage["committed_manifest"] = committed_from
        if weakened:
            context.log.warning(f"{manifest.name}: gates weakened from the committed manifest: {'; '.join(weakened)}")
        candidate = build_manifest(manifest.name, refs, verdicts, lineage, weakened)
        bundle, published_manifest, published = publish_release(local, releases, manifest.name, refs, candidate)
        version = published_manifest["version"]
        registry = context.resources.registry.get()
        # Each follow-up is idempotent, so a run that died after publishing completes them on retry.
        if version not in replay(releases.events(manifest.name)).published:
            record_published(
                releases,
                manifest.name,
                version,
                actor="dagster",
                run_id=context.run.run_id,
                weakened_gates=published_manifest.get("weakened_gates"),
            )
        # Registered means done; a run logged but never registered (a crash in between) is logged again.
        if registry.has_version(manifest.name, version):
            run_id = registry.release_run(manifest.name, version)
        else:
            run_id = registry.log_release_unit(manifest.name, published_manifest, bundle, context.run.run_id)
        state = replay(releases.events(manifest.name))
        registry.mirror(manifest.name, {"candidate": state.candidate, "champion": state.champion})
        uri = releases.bundle_uri(manifest.name, version)
        context.log.info(f"{manifest.name} {version}: {'published' if published else 'already published'} at {uri}")
        member_rows = [
            [
                name,
                m["digest"][:12],
                m["size"],
                ", ".join(
                    f"{k}={v:.3g}"
                    for k, v in m["metrics"].items()
                    if k in ("accuracy", "macro_f1", "intent_accuracy", "format_valid")
                ),
            ]
            for name, m in published_manifest["members"].items()
        ]
        ref = ArtifactRef(
            release=manifest.name,
            member="release_unit",
            kind="release_unit",
            fingerprint=version,
            location=bundle.parent.relative_to(local.root).as_posix(),
            files={},
            summary={"version": version, "published": published, "gates": [v.as_dict() for v in verdicts]},
        )
        return dg.Output(
            ref,
            data_version=dg.DataVersion(version),
            metadata={
                "version": version,
                "published": published,
                "bundle": dg.MetadataValue.path(uri),
                "champion": state.champion or "none yet",
                "mlflow_run_id": run_id,
                **({"mlflow_run": dg.MetadataValue.url(link)} if (link := registry.run_link(run_id)) else {}),
                "members": dg.MetadataValue.md(markdown_table(["member", "sha256", "size", "metrics"], member_rows)),
                "gates": dg.MetadataValue.md(_verdict_table(verdicts)),
                # Empty when built with the committed gates; otherwise promotion needs an explicit override.
                "weakened_gates": dg.MetadataValue.json(published_manifest.get("weakened_gates") or []),
            },
        )

    return release_unit
