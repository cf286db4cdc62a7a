import json

import numpy as np

from release_assets.datasets.profile import build_profile
from release_assets.promotion.drift import compare_profiles, drift_verdict

WORDS = [f"w{i}" for i in range(80)]
NEW_WORDS = [f"z{i}" for i in range(80)]


def _iris(seed: int, n: int = 300, shift: float = 0.0, labels=("a", "b", "c"), p=None) -> list[dict]:
    rng = np.random.default_rng(seed)
    x = rng.normal([5.8, 3.0, 3.7, 1.2], [0.8, 0.4, 1.7, 0.7], size=(n, 4))
    x[:, 0] += shift * 0.8
    y = rng.choice(labels, size=n, p=p)
    return [{"id": f"r{i}", "features": x[i].tolist(), "label": str(y[i])} for i in range(n)]


def _texts(seed: int, n: int = 300, words=WORDS) -> list[dict]:
    rng = np.random.default_rng(seed)
    weights = 1 / np.arange(1, len(words) + 1)
    weights /= weights.sum()
    return [
        {
            "id": f"m{i}",
            "text": " ".join(rng.choice(words, size=rng.integers(5, 15), p=weights)),
            "label": str(rng.choice(["refund", "cancel_order"])),
            "channel": str(rng.choice(["email", "chat"])),
        }
        for i in range(n)
    ]


def _images(seed: int, n: int = 300, scale: float = 1.0) -> list[dict]:
    rng = np.random.default_rng(seed)
    px = (rng.integers(0, 17, size=(n, 64)) * (rng.random((n, 64)) < 0.45) * scale).astype(int)
    return [{"id": f"d{i}", "pixels": row.tolist(), "label": str(i % 10)} for i, row in enumerate(px)]


def _drifted(ref_rows, cur_rows) -> set[str]:
    return {d.feature for d in compare_profiles(build_profile(ref_rows), build_profile(cur_rows)) if d.drifted}


def test_profile_is_json_serialisable_and_capped():
    profile = build_profile(_iris(0, n=2500))
    assert json.loads(json.dumps(profile)) == profile
    feature = profile["numeric"]["features[0]"]
    assert len(feature["quantiles"]) == 21 and len(feature["sample"]) == 2000 and feature["n"] == 2500
    assert feature["sample"] == sorted(feature["sample"])
    text = build_profile(_texts(0))["text"]
    assert len(text["tokens"]) <= 500 and set(text["tokens"]) <= set(text["vocab"])
    assert set(build_profile(_images(0))["images"]) == {"mean_intensity", "ink_ratio"}


def test_samples_from_the_same_distribution_do_not_drift():
    assert _drifted(_iris(1), _iris(2)) == set()
    assert _drifted(_texts(1), _texts(2)) == set()
    assert _drifted(_images(1), _images(2)) == set()
    v = drift_verdict("iris", build_profile(_texts(3)), build_profile(_texts(4)), {})
    assert v.status == "passed" and v.observed == 0.0


def test_numeric_mean_shifted_by_one_sd_drifts():
    assert _drifted(_iris(1), _iris(2, shift=1.0)) == {"features[0]"}


def test_label_proportions_changed_drift():
    assert _drifted(_iris(1), _iris(2, p=[0.6, 0.2, 0.2])) == {"label"}


def test_label_missing_on_one_side_is_drift_not_an_error():
    assert "label" in _drifted(_iris(1), _iris(2, labels=("a", "b")))


def test_new_vocabulary_drifts():
    assert _drifted(_texts(1), _texts(2, words=NEW_WORDS)) == {"text.oov_rate", "text.tokens"}


def test_darkened_images_drift():
    assert _drifted(_images(1), _images(2, scale=0.5)) == {"image.mean_intensity", "image.ink_ratio"}


def test_drift_verdict_without_champion_is_inconclusive():
    v = drift_verdict("iris", None, build_profile(_iris(1)), {})
    assert v.status == "inconclusive" and v.holds_release
    assert "no reference profile (no champion)" in v.reason


def test_drift_verdict_lists_drifted_features():
    v = drift_verdict("iris", build_profile(_iris(1)), build_profile(_iris(2, shift=1.0)), {"alpha": 0.01})
    assert v.status == "failed" and v.observed == 1.0
    assert "features[0] (ks statistic" in v.reason and "1 of 5 features drifted" in v.reason
    row = next(e for e in v.examples if e["feature"] == "features[0]")
    assert set(row) == {"feature", "test", "statistic", "p_value_or_psi", "threshold", "drifted"}
    assert row["drifted"] and row["p_value_or_psi"] < 0.01
    assert len(v.examples) == 5
