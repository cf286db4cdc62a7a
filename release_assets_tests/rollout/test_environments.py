"""environments.yaml: its schema, errors that name the file and field, and the stores it describes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from release_assets.core.settings import Settings
from release_assets.release.s3_store import S3ReleaseStore
from release_assets.release.store import LocalReleaseStore
from release_assets.rollout.environments import (
    IMPLICIT,
    EnvironmentsError,
    load_environments,
    parse_environments,
    store_for,
)

REPO = Path(__file__).resolve().parents[2]
DEV = {"name": "dev"}
STAGING = {"name": "staging", "store": {"local": "envs/staging"}}


def _error(data) -> str:
    with pytest.raises(EnvironmentsError) as caught:
        parse_environments(data)
    return str(caught.value)


@pytest.mark.parametrize(
    "environments, expected",
    [
        (
            [DEV, STAGING, {"name": "prod", "store": {"s3": {"prefix": "p", "regions": [{"name": "eu-west-1"}]}}}],
            "environments.yaml: environments[2].store.s3.bucket: Field required",
        ),
        ([DEV, {"name": "staging"}], "environments.yaml: environments[1].store: 'staging' needs a store"),
        ([{"name": "dev", "store": {"local": "x"}}], "environments.yaml: environments[0].store: the first environment"),
        ([{"name": "dev", "approval": True}], "environments.yaml: environments[0].approval: the first environment"),
        ([DEV, STAGING, STAGING], "environments.yaml: environments[2].name: 'staging' is declared twice"),
        ([{"name": "Prod"}], "environments.yaml: environments[0].name: 'Prod' is not an environment name"),
        (
            [DEV, {"name": "s", "store": {"local": "x", "s3": {"bucket": "abc", "regions": [{"name": "a"}]}}}],
            "environments.yaml: environments[1].store: give exactly one of `local`",
        ),
        (
            [DEV, {**STAGING, "soak": {"min_minutes": 5, "canary": True}}],
            "environments.yaml: environments[1].soak: give exactly one of `min_minutes: N` or `canary: true`",
        ),
        ([DEV, {**STAGING, "soak": {"min_minutes": -1}}], "environments.yaml: environments[1].soak.min_minutes:"),
        ([DEV, {**STAGING, "aproval": True}], "environments.yaml: environments[1].aproval: Extra inputs"),
        (
            [DEV, {"name": "p", "store": {"s3": {"bucket": "abc", "regions": []}}}],
            "environments.yaml: environments[1].store.s3.regions: List should have at least 1 item",
        ),
        (
            [DEV, {"name": "p", "store": {"s3": {"bucket": "abc", "regions": [{"name": "a"}, {"name": "a"}]}}}],
            "environments.yaml: environments[1].store.s3.regions: region names must be unique, got ['a', 'a']",
        ),
        ([], "environments.yaml: environments: List should have at least 1 item"),
    ],
)
def test_schema_errors_name_the_file_and_field(environments, expected):
    assert _error({"environments": environments}).startswith(expected)


def test_not_a_mapping_and_unreadable_yaml(tmp_path):
    assert _error([1]).startswith("environments.yaml: expected a mapping with `environments:`")
    bad = tmp_path / "environments.yaml"
    bad.write_text("environments: [\n")
    with pytest.raises(EnvironmentsError, match=r"^environments.yaml: cannot be read"):
        load_environments(bad)


def test_missing_file_is_one_implicit_environment(tmp_path):
    envs = load_environments(tmp_path / "environments.yaml")
    assert envs.names == [IMPLICIT] and envs.first.store is None


def test_settings_default_is_the_project_root(tmp_path):
    assert Settings(project_root=tmp_path).environments_path == tmp_path / "environments.yaml"
    assert Settings(project_root=tmp_path, environments_file=tmp_path / "e.yaml").environments_path.name == "e.yaml"


def test_the_sample_file_and_its_documented_s3_form_are_valid():
    text = (REPO / "environments.yaml").read_text()
    envs = load_environments(REPO / "environments.yaml")
    assert envs.names == ["dev", "staging", "prod"]
    prod = envs.get("prod")
    assert prod.approval and prod.soak.canary and prod.store.local.startswith(".release_store/")
    assert prod.flags == ".release_store/environments/prod/flags"
    # The commented S3 form is a valid environment too: the documentation cannot drift from the schema.
    block = "\n".join(line[3:] for line in text.splitlines() if re.match(r"^#   ", line))
    documented = parse_environments({"environments": [DEV, *yaml.safe_load(block)]})
    assert documented.get("prod").regions() == ["eu-west-1", "us-east-1"]


def test_store_for_local_is_relative_to_the_project_root(tmp_path):
    envs = parse_environments({"environments": [DEV, STAGING, {"name": "abs", "store": {"local": str(tmp_path)}}]})
    settings = Settings(project_root=tmp_path / "project")
    staging = store_for(envs.get("staging"), settings=settings)
    assert isinstance(staging, LocalReleaseStore) and staging.root == (tmp_path / "project" / "envs" / "staging")
    assert store_for(envs.get("abs"), "local", settings).root == tmp_path
    assert envs.get("staging").regions() == ["local"]
    with pytest.raises(EnvironmentsError, match="is a local folder: it has no region 'eu-west-1'"):
        store_for(envs.get("staging"), "eu-west-1", settings)
    with pytest.raises(EnvironmentsError, match="'dev' uses the configured release store"):
        store_for(envs.first, settings=settings)


def test_store_for_s3_is_one_client_per_region(tmp_path):
    regions = [{"name": "eu-west-1", "endpoint_url": "http://127.0.0.1:9"}, {"name": "us-east-1"}]
    prod = {"name": "prod", "store": {"s3": {"bucket": "rel-prod", "prefix": "team", "regions": regions}}}
    envs = parse_environments({"environments": [DEV, prod]})
    settings = Settings(project_root=tmp_path, s3_connect_timeout=1.5)
    first = store_for(envs.get("prod"), settings=settings)
    assert isinstance(first, S3ReleaseStore) and (first.bucket, first.prefix) == ("rel-prod", "team")
    assert first.client.meta.endpoint_url == "http://127.0.0.1:9" and first.client.meta.region_name == "eu-west-1"
    assert first.client.meta.config.connect_timeout == 1.5
    second = store_for(envs.get("prod"), "us-east-1", settings)
    assert second.client.meta.region_name == "us-east-1" and "amazonaws.com" in second.client.meta.endpoint_url
    with pytest.raises(
        EnvironmentsError, match=r"has no region 'ap-south-1' \(regions: \['eu-west-1', 'us-east-1'\]\)"
    ):
        store_for(envs.get("prod"), "ap-south-1", settings)
