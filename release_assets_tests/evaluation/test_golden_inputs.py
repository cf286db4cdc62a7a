"""Bad golden suites and knowledge bases are refused with the file and line a person must fix."""

import pytest

from release_assets.chains.knowledge import load_knowledge_base
from release_assets.chains.schema import EvaluationSpec
from release_assets.evaluation.golden import score, token_f1
from release_assets.evaluation.golden_inputs import GoldenSuiteError, load_cases


def test_a_broken_golden_line_names_file_and_line(tmp_path):
    path = tmp_path / "golden.jsonl"
    path.write_text('{"id": "g1", "message": "hi", "expected": {"intent": "other"}}\n{"id": "g2", "message": "x"}\n')
    # expected.intent is required only by a chain that maps `intent` to one of its steps.
    with pytest.raises(GoldenSuiteError, match=r"golden\.jsonl:2: not a golden case \(KeyError: 'expected'"):
        load_cases(path, EvaluationSpec(intent="classify_intent.intent"))
    assert [c["id"] for c in load_cases(path, EvaluationSpec(reply="answer.reply"))] == ["g1", "g2"]
    path.write_text('{"id": "g1", "expected": {"intent": "other"}}\n')
    with pytest.raises(GoldenSuiteError, match=r"golden\.jsonl:1: not a golden case \(KeyError: 'message'"):
        load_cases(path)
    path.write_text("{not json\n")
    with pytest.raises(GoldenSuiteError, match=r"golden\.jsonl:1: not a golden case \(JSONDecodeError"):
        load_cases(path)


def test_a_knowledge_base_without_facts_is_refused(tmp_path):
    path = tmp_path / "kb.yaml"
    path.write_text("products: [lamp]\n")
    with pytest.raises(GoldenSuiteError, match=r"kb\.yaml: expected a mapping with `facts"):
        load_knowledge_base(path)


def test_token_f1_is_bag_of_words_overlap():
    assert token_f1("Refunds take 30 days.", "refunds take 30 days") == 1.0
    assert token_f1("nothing in common", "refunds take 30 days") == 0.0
    assert 0 < token_f1("refunds take a while", "refunds take 30 days") < 1


GOOD_CASE = b'{"id": "g1", "message": "caf\xc3\xa9", "expected": {"intent": "other"}}\n'


def test_invalid_utf8_in_the_golden_suite_names_line_and_column(tmp_path):
    path = tmp_path / "golden.jsonl"
    path.write_bytes(GOOD_CASE + b'{"id": "g2", "message": "bad \xff"}\n')
    with pytest.raises(GoldenSuiteError, match=r"golden\.jsonl:2: not valid UTF-8 \(byte 0xff at column 30\)$"):
        load_cases(path)


def test_golden_lines_split_on_newlines_only(tmp_path):
    # U+2028 is legal inside a JSON string; str.splitlines() used to cut the case in two there.
    path = tmp_path / "golden.jsonl"
    path.write_bytes(GOOD_CASE.replace(b"caf\xc3\xa9", b"a\xe2\x80\xa8b"))
    assert load_cases(path)[0]["message"] == "a\u2028b"


def test_invalid_utf8_or_yaml_in_the_knowledge_base(tmp_path):
    path = tmp_path / "kb.yaml"
    path.write_bytes(b"facts:\n  a: ok\n  b: caf\xe9\n")
    with pytest.raises(GoldenSuiteError, match=r"kb\.yaml:3: not valid UTF-8 \(byte 0xe9 at column 9\)$"):
        load_knowledge_base(path)
    path.write_text("facts:\n  a: [unclosed\n")
    with pytest.raises(GoldenSuiteError, match=r"kb\.yaml line 3, column 1: .*expected ',' or ']'"):
        load_knowledge_base(path)


def test_score_summarises_the_most_common_format_errors():
    from release_assets.chains.runner import CaseResult

    security = "SecurityError in responses/refund.j2: access to attribute '__class__' of 'str' object is unsafe."
    errors = (
        [{"generate_response": security}] * 3
        + [{"extract_entities": "amount: Input should be a valid integer"}] * 2
        + [{"classify_intent": f"rare {i}"} for i in range(5)]
        + [{}] * 2
    )
    cases = [{"id": str(i), "message": "m", "expected": {"intent": "other"}} for i in range(len(errors))]
    results = [CaseResult(str(i), errors=e) for i, e in enumerate(errors)]
    summary = score(cases, results)
    assert summary["metrics"]["format_valid"] == 2 / 12
    assert set(summary) == {"metrics", "examples", "failed_cases", "format_errors", "case_scores"}
    # Nothing mapped: each case scores format validity alone, 0.0 for each case with an error.
    assert summary["case_scores"] == {str(i): {"format_valid": 0.0 if e else 1.0} for i, e in enumerate(errors)}
    assert summary["format_errors"] == [
        {"step": "generate_response", "message": security, "count": 3},
        {"step": "extract_entities", "message": "amount: Input should be a valid integer", "count": 2},
        {"step": "classify_intent", "message": "rare 0", "count": 1},
        {"step": "classify_intent", "message": "rare 1", "count": 1},
        {"step": "classify_intent", "message": "rare 2", "count": 1},
    ]
    assert score(cases[-2:], results[-2:])["format_errors"] == []
