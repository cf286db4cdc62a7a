"""`make bench-your-model`: a team's `python_model` release from a CSV (examples/your_project, release `loans`)
against the same work as the team would do it without release_assets: its plain function in one process.

Both sides are whole processes in a fresh copy of the project, run as pairs (A then B, alternating order per pair),
and the ratio is taken pair by pair, so a busy machine moves both sides of a pair alike. The plain side reads the
CSV with pandas, splits it by time as the manifest does, calls `your_models.train.fit_default_risk`, and scores the
test split (ROC AUC): training and evaluation with no schema check, gates, bundle, ledger or Dagster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from run import RUNS, fmt, machine, replace_section, stats  # noqa: E402  (bench/ is not a package)

EXAMPLE = ROOT / "examples" / "your_project"
BEGIN, END = "<!-- your-model:begin -->", "<!-- your-model:end -->"

PLAIN = """
import sys, time
import pandas as pd
from sklearn.metrics import roc_auc_score
from your_models.train import fit_default_risk

frame = pd.read_csv("data/loans.csv", parse_dates=["applied"]).sort_values(["applied", "loan_id"])
cut = int(len(frame) * 0.75)
train, test = frame.iloc[:cut], frame.iloc[cut:]
features = ["income", "age", "region", "amount"]
model = fit_default_risk(train[features], train["defaulted"].astype(str), {"C": 1.0})
score = roc_auc_score(test["defaulted"].astype(str) == "1", model.predict_proba(test[features])[:, 1])
print(f"roc_auc {score:.4f}")
"""


def project() -> tuple[Path, dict[str, str]]:
    root = Path(tempfile.mkdtemp(prefix="bench-your-model-"))
    shutil.copytree(EXAMPLE, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", ".release_store"))
    (root / ".dagster").mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": f"{root}{os.pathsep}{ROOT}",
        "DAGSTER_HOME": str(root / ".dagster"),
        "RELEASE_ASSETS_PROJECT_ROOT": str(root),
        "RELEASE_ASSETS_STORE_ROOT": str(root / ".release_store"),
        "RELEASE_ASSETS_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "RELEASE_ASSETS_MLFLOW_ARTIFACT_ROOT": str(root / "mlartifacts"),
    }
    return root, env


def whole_process(args: list[str], root: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, check=True, timeout=600)
    return time.perf_counter() - start


def main() -> None:
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    release, plain = [], []
    for i in range(RUNS):
        root, env = project()
        sides = [
            (release, ["-m", "release_assets.cli.main", "release", "loans", "--quiet"]),
            (plain, ["-c", PLAIN]),
        ]
        for figures, args in sides if i % 2 == 0 else reversed(sides):
            figures.append(whole_process(args, root, env))
        shutil.rmtree(root, ignore_errors=True)
    ratio = stats([r / p for r, p in zip(release, plain, strict=True)])
    # What the release imports that the plain function does not, each alone in a fresh interpreter: where the
    # difference goes on a table this small.
    root, env = project()
    imports = {
        module: stats([whole_process(["-c", f"import {module}"], root, env) for _ in range(RUNS)])
        for module in ("skops.io", "dagster", "pandera.pandas", "sklearn.linear_model")
    }
    shutil.rmtree(root, ignore_errors=True)
    lines = [
        BEGIN,
        "## Your own model: a `python_model` release from a CSV against the plain function",
        "",
        f"Produced by `make bench-your-model` (`python bench/your_model.py`, {RUNS} pairs) on {started}.",
        f"Machine: {machine()}. Figures are min / median / max; the ratio is taken pair by pair.",
        "",
        "| figure | measured |",
        "|---|---|",
        "| `release-assets release loans` (examples/your_project: CSV read and checked against its schema, time "
        f"split, `fit_default_risk` trained, evaluated, 10 gates, bundle published), cold, whole process | "
        f"{fmt(stats(release))} |",
        "| the team's plain function in one process (pandas read, time split, `fit_default_risk`, ROC AUC), "
        f"whole process | {fmt(stats(plain))} |",
        f"| ratio release / plain, pair by pair | {fmt(ratio, 'x')} |",
        *(f"| `python -c 'import {module}'` alone, whole process | {fmt(took)} |" for module, took in imports.items()),
        "",
        "On a table this small (400 rows) the work itself takes milliseconds on both sides; the difference is what the "
        "release imports and does around it: skops (its trusted-type list imports every scikit-learn estimator "
        "module, and scikit-learn's array-API shim imports torch when torch is installed), Dagster, pandera, the "
        "single-request latency measurement of the report, and writing and hashing the bundle.",
        END,
    ]
    replace_section(BEGIN, END, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
