"""The team's own Dagster assets: a feature table its other pipelines already build. A release takes it as a member
(`asset: features/flats` in releases/flat_prices.yaml), loaded through this asset's own IO manager.
Loaded beside the releases with RELEASE_ASSETS_PROJECT_DEFINITIONS=your_models.definitions:defs."""

from __future__ import annotations

import csv
from pathlib import Path

import dagster as dg
import pandas as pd

DATA = Path(__file__).resolve().parents[1] / "data"


@dg.asset(key=["features", "flats"], group_name="features", kinds={"pandas"})
def flats() -> pd.DataFrame:
    """Flats with their size, rooms, district and rent, cleaned by the team's own feature pipeline."""
    with (DATA / "rents.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    frame = pd.DataFrame(rows)
    return frame.astype({"area_m2": float, "rooms": int, "rent": float})


defs = dg.Definitions(assets=[flats])
