"""The code-change sensor on a copy of the project: skips, exact run requests, dedupe, deleted files."""

import json

import dagster as dg
import pytest

from bench.support.project import edit_manifest
from release_assets.definitions import build_defs
from release_assets.manifest import load_manifests
from release_assets.manifest.judge_model import JudgeModel
from release_assets_tests.conftest import local_resources


@pytest.fixture
def defs(project, tmp_path) -> dg.Definitions:
    return build_defs(load_manifests(project / "releases"), project, local_resources(project, tmp_path / "store"))


def tick(defs: dg.Definitions, cursor: str | None):
    sensor = defs.get_sensor_def("code_change_sensor")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
        result = sensor(context)
    return result, context.cursor


def keys_of(request: dg.RunRequest) -> set[str]:
    return {k.to_user_string() for k in request.asset_selection}


def test_baseline_then_no_change_skips(defs):
    result, cursor = tick(defs, None)
    assert isinstance(result, dg.SkipReason) and "baseline recorded" in result.skip_message
    result, cursor2 = tick(defs, cursor)
    assert isinstance(result, dg.SkipReason) and "no change" in result.skip_message
    assert json.loads(cursor2)["files"] == json.loads(cursor)["files"]


def test_prompt_edit_requests_exactly_the_chain_and_downstream_once(defs, project):
    _, cursor = tick(defs, None)
    template = project / "prompts" / "helpdesk" / "responses" / "refund.j2"
    template.write_text(template.read_text().replace("Thanks for getting in touch", "Thank you for writing"))
    request, cursor2 = tick(defs, cursor)
    assert isinstance(request, dg.RunRequest)
    # The release stages only: helpdesk/rollout is downstream of the release unit but is the canary monitor's.
    assert keys_of(request) == {
        "helpdesk/chain",
        "helpdesk/chain_evaluation",
        "helpdesk/shadow_comparison",
        "helpdesk/release_unit",
    }
    assert "refund.j2" in request.tags["release_assets/trigger"]
    again, _ = tick(defs, cursor2)  # the same change on the next tick: no second run
    assert isinstance(again, dg.SkipReason)
    replay, _ = tick(defs, cursor)  # had the cursor update been lost, the run key dedupes the request
    assert replay.run_key == request.run_key


def test_data_edit_requests_that_datas_descendants_only(defs, project):
    _, cursor = tick(defs, None)
    golden = "data/golden/helpdesk.jsonl"
    path = project / golden
    path.write_text(path.read_text() + "\n")
    request, _ = tick(defs, cursor)
    # The golden suite is helpdesk's evaluation input, and both releases' judges generate training rows from it
    # (members.judge.generated_from): each judge is retrained, and so its chain and everything downstream of it.
    judged = {
        manifest.name
        for manifest in load_manifests(project / "releases")
        for member in manifest.members.values()
        if isinstance(member, JudgeModel) and any(s.golden == golden for s in member.generated_from)
    }
    assert judged == {"helpdesk", "kbqa"}
    downstream_of_judge = {"judge", "chain", "chain_evaluation", "release_unit"}
    assert keys_of(request) == {"helpdesk/shadow_comparison"} | {
        f"{r}/{k}" for r in judged for k in downstream_of_judge
    }


def test_manifest_edit_touches_only_the_edited_member_of_that_release(defs, project):
    _, cursor = tick(defs, None)
    edit_manifest(project, "iris", lambda d: d["members"]["classifier"]["params"].update({"C": 0.5}))
    request, _ = tick(defs, cursor)
    assert keys_of(request) == {"iris/classifier", "iris/classifier_report", "iris/release_unit"}
    assert "iris.yaml: members.classifier" in request.tags["release_assets/trigger"]


def test_deleted_file_is_a_clear_skip_and_edits_meanwhile_are_not_lost(defs, project):
    _, cursor = tick(defs, None)
    golden = project / "data" / "golden" / "helpdesk.jsonl"
    content = golden.read_text()
    golden.unlink()
    template = project / "prompts" / "helpdesk" / "responses" / "other.j2"
    template.write_text(template.read_text() + "\n")  # edited while the golden suite is missing
    result, cursor2 = tick(defs, cursor)
    assert isinstance(result, dg.SkipReason)
    assert "watched file is missing" in result.skip_message and "helpdesk.jsonl" in result.skip_message
    assert cursor2 == cursor  # nothing was taken as the new baseline
    golden.write_text(content)
    request, _ = tick(defs, cursor2)
    assert isinstance(request, dg.RunRequest)
    assert "helpdesk/chain" in keys_of(request)


def test_broken_manifest_is_reported_not_raised(defs, project):
    _, cursor = tick(defs, None)
    (project / "releases" / "iris.yaml").write_text("name: iris\nmembers: [oops\n")
    result, _ = tick(defs, cursor)
    assert isinstance(result, dg.SkipReason) and "not valid YAML" in result.skip_message


def test_release_unit_automation_waits_for_blocking_checks(defs):
    graph = defs.get_repository_def().asset_graph
    for key in graph.get_all_asset_keys():
        condition = graph.get(key).automation_condition
        if key.path[-1] == "release_unit":
            assert condition is not None
            assert "all_deps_blocking_checks_passed" in str(condition.get_label() or "") + repr(condition)
