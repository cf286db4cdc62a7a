import numpy as np
import pytest

from release_assets.promotion.stats import mcnemar, paired_bootstrap_ci, regression_verdict

N = 400


def _expected() -> dict[str, str]:
    return {f"r{i:03d}": "a" if i % 2 else "b" for i in range(N)}


def _predictions(expected: dict[str, str], wrong: set[int]) -> dict[str, str]:
    flip = {"a": "b", "b": "a"}
    return {rid: flip[lab] if i in wrong else lab for i, (rid, lab) in enumerate(expected.items())}


def _wrong(seed: int, k: int) -> set[int]:
    return set(np.random.default_rng(seed).choice(N, size=k, replace=False).tolist())


def _verdict(candidate, champion, tolerance=0.01, **kw):
    return regression_verdict("intent", candidate, champion, _expected(), tolerance, "cand-1", "champ-0", **kw)


def test_bootstrap_ci_brackets_the_difference_and_is_deterministic():
    cand = [True] * 90 + [False] * 10
    champ = [True] * 80 + [False] * 20
    diff, low, high = paired_bootstrap_ci(cand, champ, seed=3)
    assert diff == pytest.approx(0.10)
    assert low < diff < high and low > 0
    assert paired_bootstrap_ci(cand, champ, seed=3) == (diff, low, high)
    assert paired_bootstrap_ci(cand, cand) == (0.0, 0.0, 0.0)


def test_mcnemar_exact_for_few_discordant_rows_and_chi_square_for_many():
    assert mcnemar([True] * 10, [True] * 10) == (0.0, 1.0)
    stat, p = mcnemar([True] * 5 + [False] * 5, [False] * 5 + [True] * 5)
    assert stat == 5.0 and p == pytest.approx(1.0)
    stat, p = mcnemar([False] * 40 + [True] * 60, [True] * 100)
    assert stat == pytest.approx(39**2 / 40) and p < 1e-6
    with pytest.raises(ValueError):
        mcnemar([True], [True, False])


@pytest.mark.parametrize(("only_cand", "only_champ"), [(0, 1), (3, 9), (7, 7), (12, 2), (0, 24), (20, 50), (31, 30)])
def test_mcnemar_p_values_equal_scipys(only_cand, only_champ):
    """The closed forms (exact sign test, chi-square with one degree of freedom) agree with scipy's tests."""
    from scipy import stats

    both = 5
    cand = [True] * only_cand + [False] * only_champ + [True] * both
    champ = [False] * only_cand + [True] * only_champ + [True] * both
    _, p = mcnemar(cand, champ)
    n = only_cand + only_champ
    expected = (
        stats.binomtest(only_cand, n, 0.5).pvalue
        if n < 25
        else stats.chi2.sf((abs(only_cand - only_champ) - 1) ** 2 / n, 1)
    )
    assert p == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_candidate_worse_beyond_noise_fails():
    exp = _expected()
    v = _verdict(_predictions(exp, _wrong(1, 80)), _predictions(exp, _wrong(2, 20)))
    assert v.status == "failed"
    assert v.observed == pytest.approx(0.80) and v.champion == pytest.approx(0.95)
    assert "worse beyond noise" in v.reason and "McNemar p=" in v.reason and "CI" in v.reason
    assert v.examples and all(e["champion"] == e["expected"] != e["candidate"] for e in v.examples)


def test_same_accuracy_on_different_rows_passes():
    exp = _expected()
    v = _verdict(_predictions(exp, _wrong(3, 40)), _predictions(exp, _wrong(4, 40)))
    assert v.status == "passed" and v.observed == v.champion


def test_slightly_worse_within_noise_passes():
    exp = _expected()
    champion_wrong = _wrong(5, 40)
    extra = sorted(set(range(N)) - champion_wrong)[:6]  # 1.5 points worse on 400 rows: within noise
    v = _verdict(_predictions(exp, champion_wrong | set(extra)), _predictions(exp, champion_wrong))
    assert v.observed < v.champion
    assert v.status == "passed", v.reason


def test_no_champion_is_inconclusive():
    v = regression_verdict("intent", _expected(), None, _expected(), 0.01, "cand-1", None)
    assert v.status == "inconclusive" and "no champion" in v.reason


def test_comparing_a_model_with_itself_is_impossible():
    with pytest.raises(ValueError, match="same model"):
        regression_verdict("intent", _expected(), _expected(), _expected(), 0.01, "m-1", "m-1")


def test_too_few_shared_rows_is_inconclusive():
    exp = _expected()
    champion = {k: v for k, v in list(exp.items())[:10]}
    v = _verdict(exp, champion)
    assert v.status == "inconclusive" and "share only 10" in v.reason
