"""Latency summaries and target checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def summarise_ms(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/mean/max of wall-clock samples in milliseconds."""
    if not samples_ms:
        return {"n": 0}
    values = np.asarray(samples_ms, dtype=np.float64)
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "n": len(values),
        "p50_ms": round(float(p50), 3),
        "p95_ms": round(float(p95), 3),
        "p99_ms": round(float(p99), 3),
        "mean_ms": round(float(values.mean()), 3),
        "max_ms": round(float(values.max()), 3),
    }


@dataclass(frozen=True)
class Target:
    """One number the product promises: `value <= limit` (or >= when `at_least`)."""

    key: str
    label: str
    limit: float
    unit: str
    at_least: bool = False

    def check(self, value: float) -> dict[str, Any]:
        passed = value >= self.limit if self.at_least else value <= self.limit
        return {
            "metric": self.key,
            "label": self.label,
            "value": value,
            "target": f"{'≥' if self.at_least else '≤'} {self.limit:g} {self.unit}",
            "limit": self.limit,
            "pass": bool(passed),
        }
