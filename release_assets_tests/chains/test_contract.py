"""What a chain expects of its models, derived from chain.yaml and the templates alone."""

from __future__ import annotations

import shutil
from pathlib import Path

from release_assets.chains.contract import chain_expectations
from release_assets.chains.spec_checks import read_spec

REPO = Path(__file__).resolve().parents[2]


def _expected(directory: Path) -> dict[tuple[str, str, str], str]:
    spec = read_spec(directory / "chain.yaml", directory)
    return {(e.producer, e.what, e.name): e.because for e in chain_expectations(spec, directory)}


def test_helpdesk_expects_every_label_it_answers_and_two_classifiers():
    found = _expected(REPO / "prompts" / "helpdesk")
    labels = {name for (producer, what, name) in found if what == "label"}
    answered = {p.stem for p in (REPO / "prompts/helpdesk/responses").glob("*.j2") if not p.stem.startswith("_")}
    assert labels == answered  # the partial _order.j2 answers no label
    assert found[("intent_model", "label", "refund")] == "generate_response answers it with responses/refund.j2"
    assert ("intent_model", "classifier", "") in found
    assert found[("vision_model", "classifier", "")] == "attachment vision:vision_model"


def test_a_chain_without_models_expects_nothing():
    assert _expected(REPO / "prompts" / "kbqa") == {}


CHAIN = """\
name: tiny
steps:
  - id: classify
    template: ask.j2
    binding: classifier:topic_model
    output:
      topic: {type: enum, enum_from: topic_model.labels}
      confidence: float
  - id: reply
    template: "answers/{{ classify.topic }}.txt.j2"
    binding: template
    escalate_intents: [legal]
    output:
      reply: str
      escalate: bool
"""


def _tiny_chain(tmp_path: Path, answers: dict[str, str]) -> Path:
    d = tmp_path / "chain"
    (d / "answers").mkdir(parents=True)
    (d / "chain.yaml").write_text(CHAIN)
    (d / "ask.j2").write_text("{{ message.text }}")
    for name, text in answers.items():
        (d / "answers" / name).write_text(text)
    return d


def test_values_come_from_file_names_escalation_and_comparisons_in_any_template(tmp_path):
    d = _tiny_chain(
        tmp_path,
        {
            "billing.txt.j2": "{% include 'answers/footer.j2' %}",
            "shipping.txt.j2": "{% if classify.topic in ['shipping', 'returns'] %}Parcel{% endif %}",
            "footer.j2": "{% if classify['topic'] == 'vip' %}Priority{% endif %}",
        },
    )
    found = _expected(d)
    labels = {name: why for (producer, what, name), why in found.items() if what == "label"}
    assert set(labels) == {"billing", "shipping", "returns", "vip", "legal"}
    # footer.j2 is included by another template: a piece of an answer, not an answer to a topic called "footer"
    assert "footer" not in labels
    assert labels["legal"] == "reply's escalate_intents names it"
    assert labels["vip"] == "answers/footer.j2 tests it"
    assert {producer for producer, _, _ in found} == {"topic_model"}


def test_a_template_name_that_cannot_be_inverted_adds_no_file_labels(tmp_path):
    d = _tiny_chain(tmp_path, {"billing.txt.j2": "x"})
    chain = d / "chain.yaml"
    chain.write_text(chain.read_text().replace("{{ classify.topic }}", "{{ classify.topic | lower }}"))
    labels = {name for (_, what, name) in _expected(d) if what == "label"}
    assert labels == {"legal"}


def test_a_listed_enum_on_a_classifier_step_is_expected_of_its_model(tmp_path):
    d = tmp_path / "c"
    shutil.copytree(_tiny_chain(tmp_path, {"a.txt.j2": "x"}), d)
    chain = d / "chain.yaml"
    chain.write_text(chain.read_text().replace("enum_from: topic_model.labels", "enum: [a, b]"))
    found = _expected(d)
    assert found[("topic_model", "label", "b")] == "output.topic lists it"
