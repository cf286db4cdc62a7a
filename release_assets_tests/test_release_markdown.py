"""`release-assets release --summary markdown`: the gate table against the champion, for pull requests and job
summaries."""

from dataclasses import dataclass, field

from release_assets.cli import main as cli
from release_assets.release.markdown import champion_value, github_outputs, observed_values, render_markdown
from release_assets.release.summary import GateLine, ReleaseSummary
from release_assets_tests.test_cli import env  # noqa: F401  (the throwaway project, store and instance)


@dataclass
class Key:
    path: list[str]


@dataclass
class Evaluation:  # the fields of Dagster's AssetCheckEvaluation that observed_values reads
    asset_key: Key
    check_name: str
    metadata: dict = field(default_factory=dict)


def _summary() -> ReleaseSummary:
    return ReleaseSummary(
        "helpdesk",
        version="b" * 16,
        published=True,
        gates=[
            GateLine("intent_model_report", "accuracy_gate", True, "ERROR", "ok", "helpdesk"),
            GateLine("vision_model_report", "accuracy_gate", False, "WARN", "accuracy = 0.9 is below 0.95", "helpdesk"),
            GateLine("shadow_comparison", "shadow_intent_agreement_gate", True, "WARN", "ok", "helpdesk"),
        ],
    )


CHAMPION_GATES = [
    {"member": "intent_model", "gate": "accuracy", "observed": 0.70},
    {"member": "vision_model", "gate": "accuracy", "observed": 0.97},
    {"member": "chain", "gate": "shadow_intent_agreement", "observed": None},
]
OBSERVED = {
    ("helpdesk", "intent_model_report", "accuracy_gate"): 0.75,
    ("helpdesk", "vision_model_report", "accuracy_gate"): 0.90,
}


def _rows(text: str) -> dict[str, list[str]]:
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| helpdesk")]
    return {cells[1].strip(): [c.strip() for c in cells] for cells in rows}


def test_each_gate_is_a_row_with_candidate_champion_difference_and_verdict():
    text = render_markdown([_summary()], OBSERVED, {"helpdesk": ("a" * 16, CHAMPION_GATES)})
    assert "| release | metric | candidate | champion | difference | verdict |" in text
    assert f"**helpdesk** `{'b' * 16}`: published, 2/3 gates passed, against champion `{'a' * 16}`" in text
    rows = _rows(text)
    assert rows["intent_model.accuracy"][2:] == ["0.75", "0.7", "+0.05", "✅ pass"]
    # Same gate name on two members: each row is matched to its own member's champion value.
    assert rows["vision_model.accuracy"][2:] == ["0.9", "0.97", "-0.07", "⚠️ warn"]
    assert rows["shadow_comparison.shadow_intent_agreement"][2:] == ["–", "–", "–", "✅ pass"]
    # A gate that did not pass says why under the table.
    assert "- `vision_model.accuracy`: accuracy = 0.9 is below 0.95" in text


def test_a_first_release_has_no_champion_column_values():
    text = render_markdown([_summary()], OBSERVED, {"helpdesk": (None, [])})
    assert "against no champion yet" in text
    assert _rows(text)["intent_model.accuracy"][2:5] == ["0.75", "–", "–"]


def test_held_back_and_failed_releases_say_so():
    held = _summary()
    held.gates[1].severity = "ERROR"
    assert "**held back**" in render_markdown([held], OBSERVED, {})
    assert "❌ **fail**" in render_markdown([held], OBSERVED, {})
    failed = ReleaseSummary("kbqa", failures=["kbqa__chain: chain.yaml | line 3"])
    text = render_markdown([failed], {}, {})
    assert "**kbqa** no version: **failed**" in text and "- error: kbqa__chain: chain.yaml \\| line 3" in text


def test_champion_value_ignores_ambiguous_matches():
    line = GateLine("chain_evaluation", "p95_ms_gate", True, "ERROR", "ok", "helpdesk")
    gates = [{"member": "a", "gate": "p95_ms", "observed": 1.0}, {"member": "b", "gate": "p95_ms", "observed": 2.0}]
    assert champion_value(line, gates) is None
    assert champion_value(line, [*gates, {"member": "chain", "gate": "p95_ms", "observed": 3.0}]) == 3.0


def test_observed_values_and_github_outputs():
    evaluations = [
        Evaluation(Key(["iris", "classifier_report"]), "accuracy_gate", {"observed": 0.9}),
        Evaluation(Key(["iris", "classifier_report"]), "consistency_gate", {}),
    ]
    assert observed_values(evaluations) == {("iris", "classifier_report", "accuracy_gate"): 0.9}
    assert github_outputs([_summary(), ReleaseSummary("kbqa")]) == f"helpdesk_version={'b' * 16}\n"


def test_the_release_command_writes_the_table_and_the_version_outputs(env, tmp_path, monkeypatch, capsys):  # noqa: F811
    job_summary, outputs = tmp_path / "step_summary.md", tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(job_summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    assert cli.main(["release", "iris", "--summary", "markdown"]) == 0
    version = outputs.read_text().strip().removeprefix("iris_version=")
    assert f"**iris** `{version}`: published" in job_summary.read_text()
    assert "against no champion yet" in job_summary.read_text()
    assert cli.main(["promote", "iris", version, "--approved-by", "alice", "--reason", "first"]) == 0

    # A new candidate (another C) is compared with the champion just promoted; --summary-file wins over the job
    # summary, which is left as it was.
    table = tmp_path / "table.md"
    before = job_summary.read_text()
    argv = ["release", "iris", "--summary", "markdown", "--summary-file", str(table)]
    assert cli.main([*argv, "--set", "iris:members.classifier.params.C=0.5"]) == 0
    text = table.read_text()
    assert f"against champion `{version}`" in text and job_summary.read_text() == before
    accuracy = _rows(text.replace("| iris", "| helpdesk"))["classifier.accuracy"]
    assert accuracy[3] != "–" and accuracy[5] == "✅ pass", text
    capsys.readouterr()
