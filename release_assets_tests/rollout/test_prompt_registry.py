"""A release's chain templates in MLflow's Prompt Registry: one version per template content, and the release's
aliases on the prompt versions it shipped. kbqa (its chain's templates, the judge's rubric templates among them)
is published three times in one store: as shipped, with only chain.yaml edited (no template changed), and with
answer.j2 edited."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from bench.support.project import copy_project
from release_assets.record.ledger import promote
from release_assets.release.registry_sync import register_published
from release_assets.release.store import LocalReleaseStore
from release_assets.resources.registry import Registry
from release_assets.rollout.aliases import point_aliases
from release_assets.rollout.prompt_registry import SHA_TAG, prompt_name
from release_assets_tests.conftest import REPO
from release_assets_tests.test_release_end_to_end import run_release

pytest.importorskip("mlflow")
QUESTION, ANSWER = "kbqa.chain.question_j2", "kbqa.chain.answer_j2"
# Every template of the shipped chain is a prompt (the judge's rubric templates too), each at version 1 until edited.
CHAIN = REPO / "prompts" / "kbqa"
FIRST = {prompt_name("kbqa", "chain", p.relative_to(CHAIN).as_posix()): 1 for p in sorted(CHAIN.rglob("*.j2"))}


def _publish(project: Path, store: Path) -> str:
    with dg.instance_for_test() as instance:
        result, summaries = run_release(project, store, instance, only=["kbqa"])
    assert result.success and summaries["kbqa"].published_ok, summaries["kbqa"].render()
    return summaries["kbqa"].version


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


@pytest.fixture(scope="module")
def kbqa(tmp_path_factory):
    """Three published versions of kbqa, registered after each publish, as the registry sync sensor would."""
    root = tmp_path_factory.mktemp("prompts")
    project, store_path = copy_project(root / "project"), root / "store"
    store = LocalReleaseStore(store_path)
    registry = Registry(f"sqlite:///{root / 'mlflow.db'}", str(root / "mlartifacts"))
    synced, cwd = [], root / "cwd"
    cwd.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)  # MLflow's process-wide defaults (./mlflow.db, ./mlruns) would land here
        first = _publish(project, store_path)
        synced.append(register_published(store, registry, "kbqa"))
        _append(project / "prompts" / "kbqa" / "chain.yaml", "# edited: the templates are not\n")
        same_templates = _publish(project, store_path)
        synced.append(register_published(store, registry, "kbqa"))
        _append(project / "prompts" / "kbqa" / "answer.j2", "{# edited: a comment renders nothing #}\n")
        edited = _publish(project, store_path)
        synced.append(register_published(store, registry, "kbqa"))
    assert len({first, same_templates, edited}) == 3
    return store, registry, [first, same_templates, edited], synced, cwd


def _versions(registry, name):
    return {int(v.version): v for v in registry.client.search_prompt_versions(name)}


def test_each_template_is_a_prompt_and_a_new_version_only_when_its_text_changes(kbqa):
    _, registry, versions, synced, _ = kbqa
    [[first], [unchanged], [edited]] = [s.registered for s in synced]
    assert {ANSWER, QUESTION} < set(FIRST)
    assert sorted(first.prompts) == sorted(f"{name} v1" for name in FIRST)
    assert unchanged.prompts == [] and unchanged.prompts_text() == "none new"
    assert edited.prompts == [f"{ANSWER} v2"]
    assert set(_versions(registry, QUESTION)) == {1}
    answers = _versions(registry, ANSWER)
    assert set(answers) == {1, 2}
    assert answers[2].template.endswith("{# edited: a comment renders nothing #}\n")  # the Jinja text, as is
    assert "{{ kb[retrieve.fact] }}" in answers[1].template
    assert answers[1].tags[SHA_TAG] != answers[2].tags[SHA_TAG]
    assert answers[2].tags["release_assets.release_version"] == versions[2]
    assert answers[1].tags["release_assets.template"] == "chain/chain/answer.j2"


def test_a_sync_with_nothing_new_registers_nothing(kbqa):
    store, registry, _, _, _ = kbqa
    assert register_published(store, registry, "kbqa").registered == []
    assert set(_versions(registry, ANSWER)) == {1, 2} and set(_versions(registry, QUESTION)) == {1}


def test_promotion_moves_the_prompt_aliases_with_the_release(kbqa):
    store, registry, versions, _, _ = kbqa
    client = registry.client
    promote(store, "kbqa", versions[0], "alice", "first champion")
    point_aliases(store, registry, "kbqa")
    assert client.get_prompt_version_by_alias(ANSWER, "champion").version == 1
    assert client.get_prompt_version_by_alias(QUESTION, "champion").version == 1
    assert client.get_prompt_version_by_alias(ANSWER, "candidate").version == 2  # the latest published

    promote(store, "kbqa", versions[2], "bob", "the edited answer")
    point_aliases(store, registry, "kbqa")
    assert client.get_prompt_version_by_alias(ANSWER, "champion").version == 2
    assert client.get_prompt_version_by_alias(QUESTION, "champion").version == 1  # shipped again, unchanged
    assert registry.aliases("kbqa")["champion"] == versions[2]

    registry.mirror("kbqa", {"canary": versions[1]})
    assert client.get_prompt_version_by_alias(ANSWER, "canary").version == 1
    registry.mirror("kbqa", {"canary": None})
    assert "canary" not in client.get_prompt_version(ANSWER, 1).aliases


def test_the_release_version_lists_the_prompt_versions_it_shipped(kbqa):
    _, registry, versions, _, _ = kbqa
    shipped = {}
    for v in versions:
        [mv] = registry.client.search_model_versions(f"name='kbqa' and tags.release_version='{v}'")
        shipped[v] = json.loads(mv.tags["prompt_versions"])
    assert [shipped[v] for v in versions] == [
        FIRST,
        FIRST,
        {**FIRST, ANSWER: 2},
    ]


def test_nothing_is_written_where_the_sync_ran(kbqa):
    assert list(kbqa[-1].iterdir()) == []  # no ./mlflow.db or ./mlruns of MLflow's process-wide defaults


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("answer.j2", "kbqa.chain.answer_j2"),
        ("responses/_order.j2", "kbqa.chain.responses__order_j2"),
        ("a b/ü.j2", "kbqa.chain.a_b___j2"),
    ],
)
def test_prompt_names_keep_to_mlflows_characters(path, name):
    assert prompt_name("kbqa", "chain", path) == name
