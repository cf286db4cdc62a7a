"""An IO manager that hands assets their upstream :class:`ArtifactRef` as JSON: nothing is ever pickled."""

from pathlib import Path

import dagster as dg

from release_assets.artifacts import ArtifactRef
from release_assets.atomic import write_atomic


class ArtifactRefIOManager(dg.ConfigurableIOManager):
    """Stores the latest reference per asset key under ``<root>/refs/``; the files stay in the artifact store."""

    root: str = ".release_store"

    def _path(self, key: dg.AssetKey) -> Path:
        return Path(self.root) / "refs" / Path(*key.path).with_suffix(".json")

    def handle_output(self, context: dg.OutputContext, obj: ArtifactRef) -> None:
        if not isinstance(obj, ArtifactRef):
            raise TypeError(f"{context.asset_key.to_user_string()}: expected an ArtifactRef, got {type(obj).__name__}")
        # A reader sees the old reference or the new one, never half of one.
        write_atomic(self._path(context.asset_key), obj.model_dump_json(indent=1).encode())

    def load_input(self, context: dg.InputContext) -> ArtifactRef:
        path = self._path(context.asset_key)
        if not path.exists():
            raise dg.Failure(
                f"{context.asset_key.to_user_string()} has not been materialized into {self.root} yet "
                f"(no {path}); materialize it first"
            )
        return ArtifactRef.model_validate_json(path.read_text())
