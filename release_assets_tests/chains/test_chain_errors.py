"""Every way a chain can be broken is refused at load time with the file, the line and the reason, and what can
only fail while rendering is recorded per case with the template it came from."""

import shutil
from pathlib import Path

import pytest

from release_assets.chains.build import build_chain
from release_assets.chains.knowledge import load_knowledge_base
from release_assets.chains.runner import ChainRequest, ChainRunner
from release_assets.chains.spec import ChainSpecError, load_chain
from release_assets.evaluation.golden_inputs import GoldenSuiteError
from release_assets_tests.chains.test_spec import LABELS
from release_assets_tests.fakes import KeywordIntents, PixelSumDigits

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def chain_dir(tmp_path) -> Path:
    target = tmp_path / "helpdesk"
    shutil.copytree(REPO / "prompts" / "helpdesk", target)
    return target


def _error(chain_dir: Path, chain_file: str = "chain.yaml") -> str:
    with pytest.raises(ChainSpecError) as info:
        load_chain(chain_dir, LABELS, chain_file)
    message = str(info.value)
    print(message)  # the exact text a person sees; `pytest -s` shows it
    assert "\n" not in message and "Traceback" not in message
    return message


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_shipped_chains_load_without_false_positives(chain_dir):
    # Every static check below runs on the shipped templates, both variants, and must find nothing.
    load_chain(chain_dir, LABELS)
    load_chain(chain_dir, LABELS, "chain.llm.yaml")


# 1. YAML syntax


def test_yaml_syntax_error_names_line_and_column(chain_dir):
    _replace(chain_dir / "chain.yaml", "binding: patterns", "binding: patterns: twice")
    message = _error(chain_dir)
    line = next(i for i, t in enumerate((chain_dir / "chain.yaml").read_text().splitlines(), 1) if "twice" in t)
    assert f"chain.yaml line {line}, column 22: mapping values are not allowed here" in message


def test_yaml_that_is_not_a_mapping_is_refused(chain_dir):
    (chain_dir / "chain.yaml").write_text("- just\n- a list\n")
    assert "chain.yaml: expected a mapping with `name` and `steps`" in _error(chain_dir)


# 2. A template file that does not exist


def test_missing_template_names_step_path_and_chain_folder(chain_dir):
    _replace(chain_dir / "chain.yaml", "template: extract_entities.j2", "template: extract_entites.j2")
    message = _error(chain_dir)
    assert "steps[1] (extract_entities): extract_entites.j2: template not found in chain folder" in message
    assert message.endswith(str(chain_dir))


def test_missing_included_template_is_caught_at_load(chain_dir):
    _replace(chain_dir / "responses" / "refund.j2", "responses/_order.j2", "responses/_oder.j2")
    message = _error(chain_dir)
    assert "(generate_response): responses/refund.j2:1: included template 'responses/_oder.j2' not found" in message


def test_missing_per_intent_template_names_the_value_that_needs_it(chain_dir):
    (chain_dir / "responses" / "complaint.j2").unlink()
    message = _error(chain_dir)
    assert "responses/complaint.j2: template not found in chain folder" in message
    assert "classify_intent.intent = 'complaint'" in message


# 3. Undefined variables, statically


def test_undefined_variable_names_template_line_and_what_is_available(chain_dir):
    (chain_dir / "responses" / "refund.j2").write_text("Thanks\n\nDear {{ custmer_name }}, {{ kb.refund_window }}\n")
    message = _error(chain_dir)
    assert (
        "steps[2] (generate_response): responses/refund.j2:3: undefined variable 'custmer_name' "
        "(available: attachment, classify_intent, extract_entities, kb, message, products)"
    ) in message


def test_undefined_variable_in_an_included_template(chain_dir):
    (chain_dir / "responses" / "_order.j2").write_text("{% if extract_entities.order_id %}\n{{ oder }}{% endif %}\n")
    assert "responses/_order.j2:2: undefined variable 'oder'" in _error(chain_dir)


def test_a_near_miss_gets_a_suggestion_and_a_later_step_is_explained(chain_dir):
    (chain_dir / "classify_intent.j2").write_text("{{ mesage }}\n")
    assert "classify_intent.j2:1: undefined variable 'mesage' (available: " in (m := _error(chain_dir))
    assert "did you mean 'message'?" in m
    (chain_dir / "classify_intent.j2").write_text("{{ message }}\n{{ generate_response.reply }}\n")
    assert "classify_intent.j2:2: undefined variable 'generate_response' (a step that has not run yet" in _error(
        chain_dir
    )


def test_loop_and_set_variables_are_not_undefined(chain_dir):
    (chain_dir / "responses" / "other.j2").write_text(
        "{% set n = products | length %}{% for p in products %}{{ loop.index }} {{ p }}{% endfor %}"
        "{% for k, v in kb.items() %}{{ k }}{{ v }}{% endfor %}{{ n }} {{ range(2) | list }}\n"
    )
    load_chain(chain_dir, LABELS)


# 4. Jinja syntax


def test_jinja_syntax_error_names_template_relative_to_the_chain_and_line(chain_dir):
    (chain_dir / "responses" / "refund.j2").write_text("Thanks\n\n{% if extract_entities.order_id %}\n")
    message = _error(chain_dir)
    assert "(generate_response): responses/refund.j2:3: Unexpected end of template" in message
    assert str(chain_dir / "responses") not in message  # relative to the chain folder, not an absolute path


def test_unknown_filter_or_test_is_caught_at_load(chain_dir):
    (chain_dir / "responses" / "other.j2").write_text("Hello\n{{ kb.support_hours | shout }}\n")
    assert "responses/other.j2:2: No filter named 'shout'." in _error(chain_dir)
    (chain_dir / "responses" / "other.j2").write_text("{% if message is loud %}!{% endif %}\n")
    assert "responses/other.j2:1: No test named 'loud'." in _error(chain_dir)


def test_syntax_error_in_a_templated_template_name(chain_dir):
    _replace(chain_dir / "chain.yaml", "{{ classify_intent.intent }}", "{{ classify_intent.intent }")
    assert "(generate_response): template: 'responses/{{ classify_intent.intent }.j2':1: " in _error(chain_dir)


# 5. Invalid UTF-8 in a template


def test_invalid_utf8_in_a_template_names_line_and_column(chain_dir):
    (chain_dir / "classify_intent.j2").write_bytes(b"{# ok #}\n{{ m\xc3\xa9ssage }} caf\xff\n")
    assert "classify_intent.j2:2: not valid UTF-8 (byte 0xff at column 18)" in _error(chain_dir)


def test_invalid_utf8_in_chain_yaml(chain_dir):
    path = chain_dir / "chain.yaml"
    path.write_bytes(path.read_bytes().replace(b"name: helpdesk", b"name: helpd\xe9sk"))
    assert "chain.yaml line 4: not valid UTF-8 (byte 0xe9 at column 12)" in _error(chain_dir)


def test_building_a_chain_refuses_a_knowledge_base_that_is_not_utf8(chain_dir, tmp_path):
    kb = tmp_path / "knowledge_base.yaml"
    kb.write_bytes((REPO / "data" / "support" / "knowledge_base.yaml").read_bytes().replace(b"30 days", b"30\xa0days"))
    with pytest.raises(
        GoldenSuiteError, match=r"knowledge_base\.yaml:\d+: not valid UTF-8 \(byte 0xa0 at column \d+\)$"
    ):
        build_chain(chain_dir, kb, LABELS, tmp_path / "out")


# 6. Step output fields, checked against the declared output schema


@pytest.mark.parametrize("access", ["classify_intent.no_such_attr", 'classify_intent["no_such_attr"]'])
def test_unknown_output_field_is_refused_at_load(chain_dir, access):
    (chain_dir / "responses" / "refund.j2").write_text(f"Thanks\n\n{{{{ {access} }}}}\n")
    assert (
        "responses/refund.j2:3: classify_intent has no output field 'no_such_attr' (fields: intent, confidence, unsure)"
        in _error(chain_dir)
    )


def test_unknown_output_field_in_the_llm_variant(chain_dir):
    _replace(chain_dir / "generate_response.llm.j2", "extract_entities.product }}", "extract_entities.produkt }}")
    message = _error(chain_dir, "chain.llm.yaml")
    assert "generate_response.llm.j2:16: extract_entities has no output field 'produkt'" in message


def test_unknown_output_field_in_a_templated_template_name(chain_dir):
    _replace(chain_dir / "chain.yaml", "{{ classify_intent.intent }}", "{{ classify_intent.intnet }}")
    message = _error(chain_dir)
    assert "template: 'responses/{{ classify_intent.intnet }}.j2':1: classify_intent has no output field 'intnet'" in (
        message
    )


def test_every_file_a_free_form_template_name_can_reach_is_checked(chain_dir):
    # A non-enum field can resolve to any file in the folder: every one of them is checked, not only the enum's.
    _replace(chain_dir / "chain.yaml", "{{ classify_intent.intent }}", "{{ extract_entities.product }}")
    (chain_dir / "responses" / "unused.j2").write_text("{{ extract_entities.colour }}\n")
    assert "responses/unused.j2:1: extract_entities has no output field 'colour'" in _error(chain_dir)


# Sandbox violations visible in the source


@pytest.mark.parametrize(
    "expr", ["''.__class__", "message.__class__.__mro__", "kb|attr('__class__')", "kb['__class__']"]
)
def test_private_attribute_access_is_refused_at_load(chain_dir, expr):
    (chain_dir / "responses" / "refund.j2").write_text(f"Thanks\n{{{{ {expr} }}}}\n")
    assert "responses/refund.j2:2: attribute '__class__' is refused by the sandbox" in _error(chain_dir)


# 7. Sandbox refusals while rendering are recorded with the template


def _runner(chain_dir: Path) -> ChainRunner:
    predictors = {"intent_model": KeywordIntents(), "vision_model": PixelSumDigits()}
    spec, schemas = load_chain(chain_dir, {k: v.labels for k, v in predictors.items()})
    kb = load_knowledge_base(REPO / "data" / "support" / "knowledge_base.yaml")
    return ChainRunner(spec, schemas, predictors, kb)


def test_sandbox_refusal_while_rendering_is_a_security_error_of_that_template(chain_dir):
    # A format string reaches an attribute the static check cannot see; the sandbox refuses it while rendering.
    (chain_dir / "responses" / "refund.j2").write_text("Thanks\n{{ '{0.__class__}'.format(message) }}\n")
    runner = _runner(chain_dir)
    refund, other = runner.run([ChainRequest("a", "refund please"), ChainRequest("b", "hello")])
    print(refund.errors)
    assert refund.errors == {
        "generate_response": "SecurityError in responses/refund.j2: "
        "access to attribute '__class__' of 'str' object is unsafe. (line 2)"
    }
    assert other.format_valid


def test_runtime_errors_name_the_included_template(chain_dir):
    runner = _runner(chain_dir)
    # Edited after loading, so only rendering can find it.
    (chain_dir / "responses" / "_order.j2").write_text("\n{{ ''.__class__ }}\n")
    [res] = runner.run([ChainRequest("a", "refund please")])
    assert res.errors["generate_response"].startswith("SecurityError in responses/_order.j2: access to attribute")


def test_every_name_the_load_check_allows_is_in_the_runners_context(chain_dir):
    from release_assets.chains.spec import BASE_CONTEXT

    (chain_dir / "responses" / "other.j2").write_text(
        "".join(f"{{{{ {name} is defined }}}}" for name in sorted(BASE_CONTEXT)) + "{{ classify_intent.confidence }}"
    )
    [res] = _runner(chain_dir).run([ChainRequest("a", "hello")])
    assert res.format_valid, res.errors
    assert res.outputs["generate_response"]["reply"].startswith("TrueTrueTrueTrue")
