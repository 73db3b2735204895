"""Evaluate an exported :class:`~fastmango.scaler.forecast.PeakForecaster` in plain
Python: a few hundred shallow trees walked per call, no numpy, no scikit-learn, so the
resident agent stays small."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _walk(model: dict[str, Any], row: Sequence[float]) -> float:
    total = 0.0
    for feature, threshold, left, right, value in model["trees"]:
        node = 0
        while left[node] != -1:
            node = left[node] if row[feature[node]] <= threshold[node] else right[node]
        total += value[node]
    return float(model["init"] + model["learning_rate"] * total)


class Compiled:
    """``predict_row(row) -> (median, quantile)`` log-ratios of the coming peak."""

    def __init__(self, exported: dict[str, Any]) -> None:
        self.exported = exported
        self.quantile = float(exported["quantile"])
        self.n_features = int(exported["n_features"])

    def predict_row(self, row: Sequence[float]) -> tuple[float, float]:
        if len(row) != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got {len(row)}")
        return _walk(self.exported["band"], row), _walk(self.exported["model"], row)
