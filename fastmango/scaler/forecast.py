"""The peak forecaster: a scikit-learn estimator, and its export to plain Python.

:class:`PeakForecaster` follows the estimator contract (``__init__`` stores parameters,
``fit(X, y)`` learns, ``predict(X)`` has no side effects): gradient boosting with
quantile loss on the rows of :mod:`fastmango.scaler.features`, one model for the chosen
quantile of the coming peak and one for the median (the lower edge of the band).

Importing this module imports scikit-learn (~1 s, ~95 MB): the agent does so only in a
worker process that fits, exports the trees with :meth:`PeakForecaster.export` and exits;
the resident agent evaluates the export with :class:`fastmango.scaler.compiled.Compiled`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin  # type: ignore[import-untyped]
from sklearn.ensemble import GradientBoostingRegressor  # type: ignore[import-untyped]
from sklearn.utils.validation import check_is_fitted  # type: ignore[import-untyped]


class PeakForecaster(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """Quantile gradient boosting of the log-ratio of the coming peak to the recent level."""

    def __init__(
        self,
        quantile: float = 0.9,
        band_quantile: float = 0.5,
        n_estimators: int = 120,
        max_depth: int = 3,
        learning_rate: float = 0.1,
        subsample: float = 0.8,
        max_rows: int = 20000,
        random_state: int = 0,
    ) -> None:
        self.quantile = quantile
        self.band_quantile = band_quantile
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.max_rows = max_rows
        self.random_state = random_state

    def _model(self, alpha: float) -> GradientBoostingRegressor:
        return GradientBoostingRegressor(
            loss="quantile",
            alpha=alpha,
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            subsample=self.subsample,
            random_state=self.random_state,
        )

    def fit(self, X: Any, y: Any) -> PeakForecaster:
        x_arr = np.asarray(X, dtype=float)
        y_arr = np.asarray(y, dtype=float)
        if x_arr.ndim != 2 or len(x_arr) != len(y_arr) or len(y_arr) < 10:
            raise ValueError("need a 2-D X with at least 10 rows and a y of the same length")
        if len(y_arr) > self.max_rows:  # the most recent rows matter most
            x_arr, y_arr = x_arr[-self.max_rows :], y_arr[-self.max_rows :]
        self.n_features_in_ = x_arr.shape[1]
        self.model_ = self._model(self.quantile).fit(x_arr, y_arr)
        self.band_model_ = self._model(self.band_quantile).fit(x_arr, y_arr)
        return self

    def predict(self, X: Any) -> Any:
        check_is_fitted(self, "model_")
        return self.model_.predict(np.asarray(X, dtype=float))

    def predict_band(self, X: Any) -> tuple[Any, Any]:
        """(median, chosen quantile) of the coming peak's log-ratio."""
        check_is_fitted(self, "model_")
        x_arr = np.asarray(X, dtype=float)
        return self.band_model_.predict(x_arr), self.model_.predict(x_arr)

    def export(self) -> dict[str, Any]:
        """The fitted trees as plain lists (JSON-ready) for :class:`Compiled`."""
        check_is_fitted(self, "model_")
        return {
            "quantile": self.quantile,
            "band_quantile": self.band_quantile,
            "n_features": int(self.n_features_in_),
            "model": _export(self.model_, self.n_features_in_),
            "band": _export(self.band_model_, self.n_features_in_),
        }


def _export(model: GradientBoostingRegressor, n_features: int) -> dict[str, Any]:
    trees = []
    zero = np.zeros((1, n_features))
    total = 0.0
    for est in model.estimators_[:, 0]:
        t = est.tree_
        trees.append([
            t.feature.tolist(), t.threshold.tolist(), t.children_left.tolist(),
            t.children_right.tolist(), t.value[:, 0, 0].tolist(),
        ])  # fmt: skip
        total += float(est.predict(zero)[0])
    init = float(model.predict(zero)[0]) - model.learning_rate * total
    return {"init": init, "learning_rate": float(model.learning_rate), "trees": trees}
