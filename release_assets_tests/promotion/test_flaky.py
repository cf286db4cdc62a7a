from release_assets.promotion.flaky import flakiness_verdict, flaky_cases

RUNS = {
    "c1": [True, True, True],
    "c2": ["refund", "refund", "refund"],
    "c3": [True, False, True],
    "c4": ["refund", "cancel_order", "refund"],
}


def test_flaky_cases_are_those_whose_outcomes_differ():
    assert flaky_cases(RUNS) == ["c3", "c4"]


def test_stable_runs_pass():
    v = flakiness_verdict("chain", {"c1": RUNS["c1"], "c2": RUNS["c2"]}, max_flaky_rate=0.0)
    assert v.status == "passed" and v.observed == 0.0 and not v.examples


def test_too_many_flaky_cases_fail():
    v = flakiness_verdict("chain", RUNS, max_flaky_rate=0.25)
    assert v.status == "failed" and v.observed == 0.5
    assert "2 of 4 repeated cases" in v.reason
    assert v.examples[1] == {"case": "c4", "runs": 3, "outcomes": ["refund", "cancel_order", "refund"], "distinct": 2}
    assert flakiness_verdict("chain", RUNS, max_flaky_rate=0.5).status == "passed"


def test_cases_run_once_cannot_show_flakiness():
    assert flakiness_verdict("chain", {"c1": [True]}, max_flaky_rate=0.0).status == "inconclusive"
    v = flakiness_verdict("chain", {"c1": [True], "c3": [True, False]}, max_flaky_rate=0.0)
    assert v.status == "failed" and "1 cases run once were not judged" in v.reason
