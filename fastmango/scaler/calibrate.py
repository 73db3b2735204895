"""Keep the forecast honest: an online (conformal-style) correction and the recent error.

The quantile model says "the coming peak stays under P with probability q". Traffic
drifts, so that promise is checked on the windows that have closed: the factor is the
q-quantile of actual peak / forecast peak over the last ``window`` closed forecasts, and
the forecast used is ``P × factor``; too many misses raise it, too much room lowers it.
The recent error (for the fallback rule) is the weighted absolute error of the median
forecast over the last ``error_window`` closed windows.
"""

from __future__ import annotations

import bisect
from collections import deque


class Calibrator:
    """Feed it closed windows with :meth:`add`; read :meth:`factor` and :meth:`error`."""

    def __init__(self, quantile: float = 0.9, window: int = 1440, error_window: int = 60,
                 min_count: int = 30,
                 bounds: tuple[float, float] = (0.5, 3.0)) -> None:  # fmt: skip
        self.quantile = quantile
        self.window = window
        self.error_window = error_window
        self.min_count = min_count
        self.bounds = bounds
        self._ratios: deque[float] = deque()
        self._sorted: list[float] = []
        self._errors: deque[tuple[float, float]] = deque()
        self._num = 0.0
        self._den = 0.0

    def add(self, median: float, peak: float, actual: float) -> None:
        """One closed window: the median and peak forecast made for it, and what came."""
        if peak > 0:
            r = actual / peak
            self._ratios.append(r)
            bisect.insort(self._sorted, r)
            if len(self._ratios) > self.window:
                old = self._ratios.popleft()
                del self._sorted[bisect.bisect_left(self._sorted, old)]
        e = abs(median - actual)
        self._errors.append((e, actual))
        self._num += e
        self._den += actual
        if len(self._errors) > self.error_window:
            e0, a0 = self._errors.popleft()
            self._num -= e0
            self._den -= a0

    def factor(self) -> float:
        """What to multiply the peak forecast by (1.0 until enough windows closed)."""
        n = len(self._sorted)
        if n < self.min_count:
            return 1.0
        k = min(n - 1, max(0, int(self.quantile * n)))
        lo, hi = self.bounds
        return min(hi, max(lo, self._sorted[k]))

    def error(self) -> float | None:
        """Weighted absolute error of the median over the recent windows (None: too few)."""
        if len(self._errors) < self.min_count or self._den <= 0:
            return None
        return max(self._num, 0.0) / self._den
