"""Writes data/loans.csv and data/rents.csv: small synthetic tables with a known signal, the same bytes on every
run (a seeded generator), so the example releases are reproducible. Run: python make_data.py"""

from __future__ import annotations

import csv
import datetime as dt
import math
import random
from pathlib import Path

HERE = Path(__file__).parent
REGIONS = ["north", "south", "east", "west"]
DISTRICTS = ["centre", "harbour", "hills"]


def loans(n: int = 400) -> list[dict]:
    rng = random.Random(20261207)
    rows = []
    start = dt.date(2025, 1, 1)
    for i in range(n):
        income = round(rng.uniform(18_000, 120_000), 2)
        age = rng.randint(19, 75)
        region = rng.choice(REGIONS)
        amount = round(rng.uniform(1_000, 40_000), 2)
        risk = 2.2 * amount / income * 3 - income / 60_000 + (0.6 if region == "east" else 0.0) - (age - 40) / 60
        defaulted = int(rng.random() < 1 / (1 + math.exp(-3 * (risk - 0.3))))
        applied = start + dt.timedelta(days=i // 2)
        rows.append(
            {
                "loan_id": f"L{i:04d}",
                "income": income,
                "age": age,
                "region": region,
                "amount": amount,
                "applied": applied.isoformat(),
                "defaulted": defaulted,
            }
        )
    return rows


def rents(n: int = 300) -> list[dict]:
    rng = random.Random(7)
    rows = []
    for i in range(n):
        area = round(rng.uniform(20, 140), 1)
        rooms = max(1, min(6, int(area // 25) + rng.choice([-1, 0, 0, 1])))
        district = rng.choice(DISTRICTS)
        base = {"centre": 22.0, "harbour": 17.0, "hills": 13.0}[district]
        rent = round(area * base + rooms * 40 + rng.gauss(0, 60), 2)
        rows.append({"flat_id": f"F{i:04d}", "area_m2": area, "rooms": rooms, "district": district, "rent": rent})
    return rows


def write(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    write(HERE / "data" / "loans.csv", loans())
    write(HERE / "data" / "rents.csv", rents())
