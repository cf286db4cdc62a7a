"""release_assets: CI/CD for ML artifacts and prompt chains as a Dagster asset graph.

``release_assets.ReleaseComponent`` and ``release_assets.ReleasePlatformComponent`` are the Dagster Components a
``dg`` project declares in its ``defs/``. They are imported on first use, not with the package: serving and the
pure modules must not pay for (or depend on) importing Dagster.
"""

import importlib

# Module names relative to this package, deliberately not spelled out in full: code versions follow quoted
# dotted names as imports (hashing.imported_modules), and every module's closure includes this __init__, so full
# names here would make every asset's code version cover the whole package (any edit would retrain every model).
_COMPONENTS = {"ReleaseComponent": "component.component", "ReleasePlatformComponent": "component.component"}

__all__ = sorted(_COMPONENTS)


def __getattr__(name: str):
    if name in _COMPONENTS:
        return getattr(importlib.import_module(f"{__name__}.{_COMPONENTS[name]}"), name)
    raise AttributeError(f"module 'release_assets' has no attribute {name!r}")


def __dir__() -> list[str]:
    # `dg` lists a registry module's components from dir(module).
    return sorted([*globals(), *_COMPONENTS])
