"""Deterministic stand-ins for trained models, so chain logic is tested without training anything."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

KEYWORDS = {
    "refund": "refund",
    "where": "order_status",
    "cancel": "cancel_order",
    "address": "change_address",
    "password": "account_access",
    "unacceptable": "complaint",
    "warranty": "product_question",
}


class KeywordIntents:
    labels: ClassVar[list[str]] = sorted({*KEYWORDS.values(), "other"})

    def predict_proba(self, rows):
        out = np.full((len(rows), len(self.labels)), 0.01)
        for i, row in enumerate(rows):
            label = next((v for k, v in KEYWORDS.items() if k in row["text"].lower()), "other")
            out[i, self.labels.index(label)] = 0.93
        return out


class PixelSumDigits:
    """Reads a digit from the first pixel: tests build images whose first pixel is the digit."""

    labels: ClassVar[list[str]] = [str(i) for i in range(10)]

    def predict_proba(self, rows):
        out = np.zeros((len(rows), 10))
        for i, row in enumerate(rows):
            out[i, int(row["pixels"][0]) % 10] = 1.0
        return out
