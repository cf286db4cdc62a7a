"""The project's ordered environments (``environments.yaml``): where each keeps its release units, and what a
promotion into it needs (an approval, a soak in the environment before).

The first environment is where ``release-assets release`` publishes: the configured release store, which also
holds the one ledger per release. Each later environment has its own store, a local folder or an S3 bucket in one
or more regions, that a promotion copies the verified bundle into (``rollout.environment_promotion``).
Without the file there is one implicit environment, and everything behaves as before environments existed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from release_assets.core.s3_client import bounded_client
from release_assets.core.settings import get_settings
from release_assets.provenance.keys import SignatureError, Trust, TrustedKey, read_trusted_keys
from release_assets.provenance.signing import KeySigner, configured_signer
from release_assets.release.s3_store import S3ReleaseStore
from release_assets.release.store import LocalReleaseStore, ReleaseStore
from release_assets.serving.flag_source import FlagSource, store_flags

IMPLICIT = "default"  # the one environment of a project without environments.yaml
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")  # it becomes an MLflow alias (`<name>-champion`) and a ledger field


class EnvironmentsError(ValueError):
    """environments.yaml is unreadable or invalid; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)  # a misspelt key is an error, not a silent default


class Region(_Strict):
    name: str = Field(min_length=1)  # the AWS region (also the client's region_name)
    endpoint_url: str | None = None  # MinIO, LocalStack, moto: any S3-compatible endpoint; None = AWS


class S3Spec(_Strict):
    bucket: str = Field(min_length=3)
    prefix: str = "release_assets"
    regions: list[Region] = Field(min_length=1)

    @field_validator("regions")
    @classmethod
    def _unique(cls, regions: list[Region]) -> list[Region]:
        names = [r.name for r in regions]
        if len(set(names)) != len(names):
            raise ValueError(f"region names must be unique, got {names}")
        return regions


class StoreSpec(_Strict):
    local: str | None = None  # a folder, relative to the project root unless absolute
    s3: S3Spec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> StoreSpec:
        if (self.local is None) == (self.s3 is None):
            raise ValueError("give exactly one of `local` (a folder) or `s3` (bucket, prefix, regions)")
        return self


class Soak(_Strict):
    min_minutes: float | None = Field(default=None, ge=0)  # time as champion of the environment before
    # or: real users judged it through a canary: one completed in the environment before (the monitor promoted it
    # there), or a canary in this environment itself (`canary start RELEASE VERSION --env NAME`), whose completion is
    # the promotion. The environment's first champion has no champion to judge a canary against and enters without.
    canary: bool = False

    @model_validator(mode="after")
    def _one_rule(self) -> Soak:
        if (self.min_minutes is None) == (not self.canary):
            raise ValueError("give exactly one of `min_minutes: N` or `canary: true`")
        return self


class Environment(_Strict):
    name: str
    store: StoreSpec | None = None  # None only for the first: the configured release store
    approval: bool = False  # promotion into it needs --approved-by and --reason
    soak: Soak | None = None
    # Flag file folder of this environment's servers (`serve --env NAME` reads it; its canaries write it), relative
    # to the project root unless absolute. Default: beside its store's releases (a `flags` folder, or the `flags/`
    # objects of an S3 store, which every server of the environment polls).
    flags: str | None = None
    # Where the canary monitor reads this environment's servers: Prometheus, or their /metrics URLs. Default (both
    # unset): RELEASE_ASSETS_PROMETHEUS_URL / RELEASE_ASSETS_METRICS_URLS, as for the first environment.
    prometheus_url: str | None = None
    metrics_urls: list[str] = Field(default_factory=list)
    # Public keys (PEM files, relative to the project root unless absolute): a unit enters only signed by one of
    # them, its attestations too (provenance/). Empty: signatures are not required.
    trusted_keys: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(f"{name!r} is not an environment name (lower-case letters, digits, '-' and '_')")
        return name

    @field_validator("prometheus_url", "metrics_urls")
    @classmethod
    def _http(cls, value: str | list[str] | None) -> str | list[str] | None:
        for url in [value] if isinstance(value, str) else value or []:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return value

    def regions(self) -> list[str]:
        """Where a promotion copies to, in wave order; a local store is one region called ``local``."""
        if self.store is None or self.store.s3 is None:
            return ["local"]
        return [r.name for r in self.store.s3.regions]


class Environments(_Strict):
    environments: list[Environment] = Field(min_length=1)

    @property
    def first(self) -> Environment:
        return self.environments[0]

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.environments]

    def get(self, name: str) -> Environment | None:
        return next((e for e in self.environments if e.name == name), None)

    def index(self, name: str) -> int:
        return self.names.index(name)


def _location(loc: tuple[Any, ...]) -> str:
    """pydantic's ``("environments", 2, "store", "s3", "bucket")`` as ``environments[2].store.s3.bucket``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _order_problem(envs: Environments) -> tuple[str, str] | None:
    """The rules between environments, as (field, problem): unique names, the first publishes, the rest copy."""
    seen: set[str] = set()
    for i, e in enumerate(envs.environments):
        if e.name in seen:
            return f"environments[{i}].name", f"{e.name!r} is declared twice"
        seen.add(e.name)
        if i == 0 and e.store is not None:
            return "environments[0].store", (
                f"the first environment ({e.name}) is where `release-assets release` publishes: its store is the "
                "configured release store (RELEASE_ASSETS_STORE_*), so it takes no `store`"
            )
        if i == 0 and (e.approval or e.soak):
            return f"environments[0].{'approval' if e.approval else 'soak'}", (
                f"the first environment ({e.name}) is entered by publishing: it takes no approval or soak"
            )
        if i > 0 and e.store is None:
            return f"environments[{i}].store", f"{e.name!r} needs a store (`local: FOLDER` or `s3: ...`)"
    return None


def parse_environments(data: Any, where: str = "environments.yaml") -> Environments:
    if not isinstance(data, dict):
        raise EnvironmentsError(f"{where}: expected a mapping with `environments:` (a list), got {type(data).__name__}")
    try:
        envs = Environments.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        raise EnvironmentsError(f"{where}: {_location(first['loc'])}: {message}") from None
    problem = _order_problem(envs)
    if problem:
        raise EnvironmentsError(f"{where}: {problem[0]}: {problem[1]}")
    return envs


def load_environments(path: Path) -> Environments:
    """``path`` validated; a missing file is one implicit environment (the configured release store)."""
    if not path.exists():
        return Environments(environments=[Environment(name=IMPLICIT)])
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise EnvironmentsError(f"{path.name}: cannot be read: {exc}") from None
    return parse_environments(data, path.name)


def project_environments() -> Environments:
    return load_environments(get_settings().environments_path)


def trust_of(env: Environment, settings: Any = None) -> Trust | None:
    """Whose signatures ``env`` accepts (None: it requires none); an unreadable key file is an
    :class:`EnvironmentsError` naming it."""
    if not env.trusted_keys:
        return None
    root = (settings or get_settings()).project_root
    paths = [Path(k) if Path(k).is_absolute() else root / k for k in env.trusted_keys]
    try:
        keys = read_trusted_keys(paths)
    except SignatureError as exc:
        raise EnvironmentsError(f"environments.yaml: {env.name}.trusted_keys: {exc}") from None
    return Trust(keys, f"environment {env.name}")


def checking_trust(key_files: list[str] | None = None, settings: Any = None) -> Trust | None:
    """Whose signatures ``verify`` and ``serve --signed-only`` accept: the ``key_files`` given (``--trusted-key``),
    else every key an environment of environments.yaml trusts, else the public half of the signing key configured
    here (RELEASE_ASSETS_SIGNING_KEY(_FILE)); None when there is none of these (nothing to check against)."""
    settings = settings or get_settings()
    if key_files:
        try:
            return Trust(read_trusted_keys(Path(k) for k in key_files), "--trusted-key")
        except SignatureError as exc:
            raise EnvironmentsError(str(exc)) from None
    keys: dict[str, TrustedKey] = {}
    for env in load_environments(settings.environments_path).environments:
        keys |= (trust_of(env, settings) or Trust({}, "")).keys
    if keys:
        return Trust(keys, "the trusted_keys of environments.yaml")
    signer = configured_signer(settings)
    if isinstance(signer, KeySigner):
        return Trust({signer.key.key_id: signer.key.public}, f"the signing key ({signer.key.where})")
    return None


def flags_dir_of(env: Environment, first_store: ReleaseStore, first: bool, settings: Any = None) -> Path | FlagSource:
    """Where ``env``'s flag documents live: its ``flags`` folder, else beside its store's releases (``first_store``,
    the configured release store, for the first environment): the store's ``flags`` folder, or its ``flags/``
    objects in S3, which every server of the environment reads."""
    settings = settings or get_settings()
    if env.flags is not None:
        folder = Path(env.flags)
        return folder if folder.is_absolute() else settings.project_root / folder
    return store_flags(first_store if first else store_for(env, None, settings))


def store_for(env: Environment, region: str | None = None, settings: Any = None) -> ReleaseStore:
    """The release store of ``env`` in ``region`` (default: its first). Not for the first environment, whose store
    is the configured release store (``resources_for(settings)["store"].releases()``)."""

    settings = settings or get_settings()
    if env.store is None:
        raise EnvironmentsError(f"environment {env.name!r} uses the configured release store, not its own")
    if env.store.local is not None:
        if region not in (None, "local"):
            raise EnvironmentsError(f"environment {env.name!r} is a local folder: it has no region {region!r}")
        root = Path(env.store.local)
        return LocalReleaseStore(root if root.is_absolute() else settings.project_root / root)
    spec = env.store.s3
    assert spec is not None, "a store is exactly one of local and s3 (StoreSpec)"
    chosen = spec.regions[0] if region is None else next((r for r in spec.regions if r.name == region), None)
    if chosen is None:
        raise EnvironmentsError(f"environment {env.name!r} has no region {region!r} (regions: {env.regions()})")

    return S3ReleaseStore(_s3_client(chosen, settings), spec.bucket, spec.prefix)


def _s3_client(region: Region, settings: Any) -> Any:
    """A boto3 client bounded like the release store's (timeouts, standard retries): an unreachable region fails
    in seconds. Credentials come from boto3's usual chain (environment, profile, instance role)."""
    return bounded_client(
        endpoint_url=region.endpoint_url,
        region_name=region.name,
        connect_timeout=settings.s3_connect_timeout,
        read_timeout=settings.s3_read_timeout,
        max_attempts=settings.s3_max_attempts,
    )
