"""Fit the forecaster in a worker process that exits, so scikit-learn (~1 s, ~95 MB)
never lives in the resident agent.

The agent runs ``python -m fastmango.agent.scaling.trainer``, writes the history as JSON
on its stdin (``{"start": unix_seconds, "values": [per-minute load], "horizon": minutes,
"quantile": q}``) and reads the exported model as JSON from its stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any


class TrainError(Exception):
    """The worker failed or ran too long; the message says which."""


def fit(job: dict[str, Any]) -> dict[str, Any]:
    """Fit on one job (runs in the worker)."""
    from fastmango.scaler import features
    from fastmango.scaler.forecast import PeakForecaster

    values = [float(v) for v in job["values"]]
    horizon = int(job["horizon"])
    t0 = time.perf_counter()
    every = max(1, len(values) // 20000)
    x, y, _ = features.dataset(values, float(job["start"]), horizon, every=every,
                               zone=job.get("zone", "UTC"))  # fmt: skip
    model = PeakForecaster(quantile=float(job.get("quantile", 0.9))).fit(x, y)
    return {
        "model": model.export(),
        "rows": len(y),
        "horizon": horizon,
        "history_seconds": 60.0 * len(values),
        "fit_seconds": round(time.perf_counter() - t0, 3),
    }


def main() -> None:
    job = json.load(sys.stdin)
    json.dump(fit(job), sys.stdout)


async def train(job: dict[str, Any], limit: float = 600.0) -> dict[str, Any]:
    """Run :func:`fit` in a fresh interpreter; raises :class:`TrainError`."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fastmango.agent.scaling.trainer",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(job).encode()), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise TrainError(f"the forecaster fit ran over {limit:.0f}s and was stopped") from None
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise TrainError(f"the forecaster fit failed (exit {proc.returncode}): {tail[0]}")
    try:
        result: dict[str, Any] = json.loads(out)
    except ValueError as exc:
        raise TrainError(f"the forecaster fit answered no JSON: {exc}") from None
    return result


if __name__ == "__main__":
    main()
