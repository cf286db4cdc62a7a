"""Typed settings, read from the environment (``RELEASE_ASSETS_*``) when first asked for, never at import."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _project_root() -> Path:
    # An editable install runs from the checkout; the releases live next to the package.
    return Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELEASE_ASSETS_", extra="ignore")

    project_root: Path = Field(default_factory=_project_root)
    releases_dir: Path | None = None  # default: <project_root>/releases
    store_root: Path | None = None  # default: <project_root>/.release_store

    @property
    def releases_path(self) -> Path:
        return self.releases_dir or self.project_root / "releases"

    @property
    def store_path(self) -> Path:
        return self.store_root or self.project_root / ".release_store"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
