from release_assets.promotion.flaky import flaky_cases

RUNS = {
    "c1": [True, True, True],
    "c2": ["refund", "refund", "refund"],
    "c3": [True, False, True],
    "c4": ["refund", "cancel_order", "refund"],
}


def test_flaky_cases_are_those_whose_outcomes_differ():
    assert flaky_cases(RUNS) == ["c3", "c4"]


def test_a_case_run_once_cannot_be_flaky():
    assert flaky_cases({"c1": [True], "c2": []}) == []
