"""Bad golden suites and knowledge bases are refused with the file and line a person must fix."""

import pytest

from release_assets.evaluation.golden import GoldenSuiteError, load_cases, load_knowledge_base, token_f1


def test_a_broken_golden_line_names_file_and_line(tmp_path):
    path = tmp_path / "golden.jsonl"
    path.write_text('{"id": "g1", "message": "hi", "expected": {"intent": "other"}}\n{"id": "g2", "message": "x"}\n')
    with pytest.raises(GoldenSuiteError, match=r"golden\.jsonl:2: not a golden case \(KeyError"):
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
