"""An IO manager that hands assets their upstream :class:`ArtifactRef` as JSON: nothing is ever pickled.

References are kept per run (``<root>/refs/runs/<run_id>/<asset key>.json``): two runs of one release at once (two
pull requests, a push and a schedule) each hand their own builds downstream, so a run's release unit bundles what
that run built, never a concurrent run's. An asset loaded from outside the run (a partial selection) is the one its
latest materialization recorded, as Dagster's own IO managers resolve it. ``<root>/refs/<asset key>.json`` keeps the
latest reference too, for a store whose instance has no record of it.
"""

from pathlib import Path

import dagster as dg

from release_assets.artifacts import ArtifactRef
from release_assets.core.atomic import write_atomic


class ArtifactRefIOManager(dg.ConfigurableIOManager):
    """Stores each run's reference per asset key under ``<root>/refs/``; the files stay in the artifact store."""

    root: str = ".release_store"

    def _latest(self, key: dg.AssetKey) -> Path:
        return Path(self.root) / "refs" / Path(*key.path).with_suffix(".json")

    def _of_run(self, key: dg.AssetKey, run_id: str) -> Path:
        return Path(self.root) / "refs" / "runs" / run_id / Path(*key.path).with_suffix(".json")

    def handle_output(self, context: dg.OutputContext, obj: ArtifactRef) -> None:
        if not isinstance(obj, ArtifactRef):
            raise TypeError(f"{context.asset_key.to_user_string()}: expected an ArtifactRef, got {type(obj).__name__}")
        data = obj.model_dump_json(indent=1).encode()
        # A reader sees the old reference or the new one, never half of one.
        write_atomic(self._of_run(context.asset_key, context.run_id), data)
        write_atomic(self._latest(context.asset_key), data)

    def _producing_run(self, context: dg.InputContext) -> str | None:
        """The run whose output this input is: this run (or the parent a re-execution reuses) when the upstream step
        is in the plan; otherwise the run of the asset's latest materialization."""
        if context.upstream_output is not None:
            try:
                return context.upstream_output.run_id
            except dg.DagsterInvariantViolationError:  # built for an asset outside the plan: it has no run
                pass
        event = context.instance.get_latest_materialization_event(context.asset_key)
        return event.run_id if event is not None else None

    def load_input(self, context: dg.InputContext) -> ArtifactRef:
        run_id = self._producing_run(context)
        path = self._of_run(context.asset_key, run_id) if run_id else None
        if path is None or not path.exists():
            path = self._latest(context.asset_key)
        if not path.exists():
            raise dg.Failure(
                f"{context.asset_key.to_user_string()} has not been materialized into {self.root} yet "
                f"(no {path}); materialize it first"
            )
        return ArtifactRef.model_validate_json(path.read_text())
