import shutil
from pathlib import Path

import pytest

from release_assets.chains.spec import ChainSpecError, load_chain

REPO = Path(__file__).resolve().parents[2]
LABELS = {
    "intent_model": [
        "account_access",
        "cancel_order",
        "change_address",
        "complaint",
        "order_status",
        "other",
        "product_question",
        "refund",
    ],
    "vision_model": [str(i) for i in range(10)],
}


@pytest.fixture
def chain_dir(tmp_path) -> Path:
    target = tmp_path / "helpdesk"
    shutil.copytree(REPO / "prompts" / "helpdesk", target)
    return target


def test_shipped_chain_loads_with_one_schema_per_step(chain_dir):
    spec, schemas = load_chain(chain_dir, LABELS)
    assert [s.id for s in spec.steps] == ["classify_intent", "extract_entities", "generate_response"]
    assert schemas["extract_entities"].model_validate({"amount": "12.50"}).amount == 12.5
    with pytest.raises(ValueError):
        schemas["classify_intent"].model_validate({"intent": "teleport", "confidence": 0.5})


def test_missing_per_intent_template_fails_at_load(chain_dir):
    (chain_dir / "responses" / "refund.j2").unlink()
    with pytest.raises(ChainSpecError, match=r"generate_response.*responses/refund\.j2: template not found"):
        load_chain(chain_dir, LABELS)


def test_template_reading_an_undeclared_variable_fails_at_load(chain_dir):
    (chain_dir / "classify_intent.j2").write_text("{{ mesage }}\n")
    with pytest.raises(ChainSpecError, match=r"classify_intent\.j2:1: undefined variable 'mesage' \(available: "):
        load_chain(chain_dir, LABELS)


def test_template_reading_a_later_step_fails_at_load(chain_dir):
    (chain_dir / "classify_intent.j2").write_text("{{ message }} {{ generate_response.reply }}\n")
    with pytest.raises(ChainSpecError, match=r"classify_intent\.j2:1: undefined variable 'generate_response' "):
        load_chain(chain_dir, LABELS)


def test_syntax_error_names_file_and_line(chain_dir):
    (chain_dir / "extract_entities.j2").write_text("line one\n{% if message %}\n")
    with pytest.raises(ChainSpecError, match=r"extract_entities\.j2:\d+: "):
        load_chain(chain_dir, LABELS)


def test_binding_to_a_model_the_release_lacks(chain_dir):
    text = (chain_dir / "chain.yaml").read_text().replace("classifier:intent_model", "classifier:sentiment_model")
    (chain_dir / "chain.yaml").write_text(text)
    with pytest.raises(ChainSpecError, match=r"names no model of this release"):
        load_chain(chain_dir, LABELS)


def test_unknown_binding_and_bad_pattern(chain_dir):
    original = (chain_dir / "chain.yaml").read_text()
    (chain_dir / "chain.yaml").write_text(original.replace("binding: template", "binding: telepathy"))
    with pytest.raises(ChainSpecError, match=r"unknown binding 'telepathy'"):
        load_chain(chain_dir, LABELS)
    (chain_dir / "chain.yaml").write_text(original.replace("order_id: '", "order_id: '(("))
    with pytest.raises(ChainSpecError, match=r"patterns\.order_id: invalid regular expression"):
        load_chain(chain_dir, LABELS)


def test_unknown_output_type(chain_dir):
    text = (chain_dir / "chain.yaml").read_text().replace("date: str?", "date: datetime?")
    (chain_dir / "chain.yaml").write_text(text)
    with pytest.raises(ChainSpecError, match=r"output\.date: unknown type 'datetime\?'"):
        load_chain(chain_dir, LABELS)
