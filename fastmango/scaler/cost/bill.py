"""The month's bill per environment: month-to-date, projection to month end, budget.

Pure: an :class:`EnvInput` per environment (its replica history, measured egress and
requests per hour), the price catalogue and the clock come in; a JSON-friendly dict goes
out. Each line (compute, GPU, egress, requests) is priced per hour of the month, so the
same numbers give the month-to-date total, the projection and the spend-over-the-month
chart. A line whose usage or price is missing is ``unknown`` (``dollars: null`` and the
reason): totals then sum only the known lines and say ``complete: false``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastmango.scaler.cost import projection
from fastmango.scaler.cost.pricing import Catalogue, Rate
from fastmango.scaler.cost.usage import (
    HOUR,
    Change,
    hourly_replicas,
    month_bounds,
    month_label,
    segments,
    state_at,
)

HISTORY = 28 * 86400.0  # how far back the projection looks
GB = 1e9


@dataclass(frozen=True)
class EnvInput:
    """One environment as the bill sees it."""

    name: str
    platform: str = "none"
    size: str = ""
    service: str = ""
    production: bool = False
    changes: tuple[Change, ...] = ()
    budget: float | None = None
    gpu: str | None = None
    gpus: int = 0
    billing: str = "instance"  # Cloud Run: instance | request
    #: (hour start, bytes sent) per hour; None = not measured for this environment
    egress: tuple[tuple[float, float], ...] | None = None
    #: (hour start, requests) per hour; None = not measured
    requests: tuple[tuple[float, float], ...] | None = None
    #: GPUs the agent sees on this environment's instance (NVML), priced or not
    gpus_seen: int = 0


@dataclass
class _Allowance:
    left: float

    def take(self, quantity: float) -> float:
        """The billable part of ``quantity`` after what is left free."""
        free = min(self.left, quantity)
        self.left -= free
        return quantity - free


@dataclass
class Line:
    item: str  # compute | gpu | egress | requests
    unit: str
    actual: list[float] = field(default_factory=list)  # dollars per hour of the month
    projected: list[float] = field(default_factory=list)
    projected_quantity: list[float] = field(default_factory=list)  # per hour
    quantity_mtd: float = 0.0
    quantity_projected: float = 0.0
    unknown: str | None = None
    prices: set[str] = field(default_factory=set)
    method: str = ""

    def as_dict(self) -> dict[str, Any]:
        known = self.unknown is None
        return {
            "item": self.item,
            "unit": self.unit,
            "quantity_month_to_date": round(self.quantity_mtd, 4),
            "quantity_projected": round(self.quantity_mtd + self.quantity_projected, 4),
            "month_to_date": round(sum(self.actual), 4) if known else None,
            "projected": round(sum(self.actual) + sum(self.projected), 4) if known else None,
            "unknown": self.unknown,
            "prices": sorted(self.prices),
            "method": self.method,
        }


def _pieces(start: float, end: float, m0: float) -> Iterator[tuple[int, float, float]]:
    """(hour index in the month, piece start, piece length) over [start, end)."""
    t = start
    while t < end:
        nxt = min(end, (t // HOUR + 1) * HOUR)
        yield int((t - m0) // HOUR), t, nxt - t
        t = nxt


class _Biller:
    """Prices instance time, GPU time, egress and requests for one environment, keeping
    the month's free allowances (Cloud Run request-based billing)."""

    def __init__(self, cat: Catalogue, env: EnvInput, month_seconds: float) -> None:
        self.cat = cat
        self.env = env
        self.month_seconds = month_seconds
        self.request_billing = env.platform == "cloudrun" and env.billing == "request"
        free = {q: cat.unit(f"cloudrun/free/{q}")[0] or 0.0
                for q in ("vcpu_second", "gib_second", "request")}  # fmt: skip
        self.free = {q: _Allowance(v if self.request_billing else 0.0) for q, v in free.items()}
        self._rates: dict[tuple[str, str], Rate] = {}

    def compute(self, platform: str, size: str, inst_seconds: float) -> tuple[float | None, str]:
        """(dollars or None, unknown reason or the price keys joined)."""
        if self.request_billing and platform == "cloudrun":
            shape = self.cat.size_of(platform, size)
            cpu, k1 = self.cat.unit("cloudrun/vcpu_second")
            mem, k2 = self.cat.unit("cloudrun/gib_second")
            if shape is None or cpu is None or mem is None:
                return None, f"no Cloud Run request-based price for size {size!r}"
            billable_cpu = self.free["vcpu_second"].take(inst_seconds * shape.vcpu)
            billable_mem = self.free["gib_second"].take(inst_seconds * shape.memory_gb)
            return billable_cpu * cpu + billable_mem * mem, f"{k1},{k2}"
        rate = self._rates.get((platform, size))
        if rate is None:
            rate = self._rates[(platform, size)] = self.cat.rate(platform, size, self.env.billing)
        if not rate.known:
            return None, rate.unknown or "unknown"
        return rate.dollars(inst_seconds, self.month_seconds), ",".join(rate.entries)

    def requests(self, count: float) -> tuple[float | None, str]:
        price, key = self.cat.unit(f"{self.env.platform}/request")
        if price is None or key is None:
            return None, f"no request price on {self.env.platform}"
        return self.free["request"].take(count) * price, key


def _compute_line(env: EnvInput, b: _Biller, m0: float, m1: float, now: float, n: int) -> Line:
    line = Line("compute", "instance-hours", [0.0] * n, [0.0] * n, [0.0] * n)
    changes = list(env.changes)
    if not changes:
        line.unknown = f"no replicas events for {env.name}: its instance history is unknown"
        return line
    used: dict[tuple[int, str, str], float] = {}  # (hour, platform, size) → instance-s
    for seg in segments(changes, m0, min(now, m1)):
        for h, _t, dur in _pieces(seg.start, seg.end, m0):
            key = (h, seg.platform, seg.size)
            used[key] = used.get(key, 0.0) + seg.replicas * dur
    for (h, platform, size), inst_seconds in sorted(used.items()):
        dollars, why = b.compute(platform, size, inst_seconds)
        line.quantity_mtd += inst_seconds / HOUR
        if dollars is None:
            line.unknown = why
        else:
            line.actual[h] += dollars
            line.prices.update(why.split(","))
    current = state_at(changes, now)
    profile = projection.fit(hourly_replicas(changes, max(changes[0].ts, now - HISTORY), now))
    line.method = profile.describe()
    if current is not None and now < m1:
        for t0, t1, replicas in projection.project(profile, max(now, m0), m1):
            r = current.replicas if replicas is None else replicas
            h = int((t0 - m0) // HOUR)
            dollars, why = b.compute(current.platform, current.size, r * (t1 - t0))
            line.quantity_projected += r * (t1 - t0) / HOUR
            line.projected_quantity[h] += r * (t1 - t0) / HOUR
            if dollars is None:
                line.unknown = why
            else:
                line.projected[h] += dollars
                line.prices.update(why.split(","))
    return line


def _gpu_line(env: EnvInput, cat: Catalogue, compute: Line, m0: float, now: float) -> Line:
    n = len(compute.actual)
    line = Line("gpu", "GPU-hours", [0.0] * n, [0.0] * n, method=compute.method)
    assert env.gpu is not None
    key = cat.gpu_key(env.platform, env.gpu)
    entry = cat.get(key)
    line.quantity_mtd = compute.quantity_mtd * env.gpus
    line.quantity_projected = compute.quantity_projected * env.gpus
    if not env.changes:
        line.unknown = compute.unknown
    elif entry is None:
        line.unknown = f'no price for GPU {env.gpu!r} (set cost.prices."{key}")'
    else:
        line.prices.add(key)
        # GPU time follows instance time hour by hour
        hours = _instance_hours(env, m0, now, n)
        for h in range(n):
            line.actual[h] = hours[0][h] * env.gpus * entry.value
        line.projected = [q * env.gpus * entry.value for q in compute.projected_quantity]
    return line


def _instance_hours(env: EnvInput, m0: float, now: float, n: int) -> tuple[list[float], float]:
    hours = [0.0] * n
    for seg in segments(list(env.changes), m0, now):
        for h, _t, dur in _pieces(seg.start, seg.end, m0):
            if 0 <= h < n:
                hours[h] += seg.replicas * dur / HOUR
    return hours, sum(hours)


def _metered_line(
    item: str,
    unit: str,
    points: Sequence[tuple[float, float]] | None,
    scale: float,
    price: Any,
    m0: float,
    m1: float,
    now: float,
    n: int,
    missing: str,
) -> Line:
    """A usage line from an hourly measured series (egress bytes, requests)."""
    line = Line(item, unit, [0.0] * n, [0.0] * n)
    if points is None:
        line.unknown = missing
        return line
    past = [(t, v) for t, v in points if t < now]
    month = [(t, v) for t, v in past if t >= m0]
    profile = projection.fit(past[-int(HISTORY // HOUR) :])
    line.method = profile.describe()
    for t, v in month:
        h = int((t - m0) // HOUR)
        line.quantity_mtd += v / scale
        dollars, why = price(v)
        if dollars is None:
            line.unknown = why
        elif 0 <= h < n:
            line.actual[h] += dollars
            line.prices.update(why.split(","))
    seen = {t for t, _ in month}
    start = max(now, m0)
    for t0, t1, value in projection.project(profile, start, m1):
        if t0 // HOUR * HOUR in seen and t0 < now + HOUR:
            continue  # this hour was already measured
        v = (value or 0.0) * (t1 - t0) / HOUR
        h = int((t0 - m0) // HOUR)
        line.quantity_projected += v / scale
        dollars, why = price(v)
        if dollars is None:
            line.unknown = why
        elif 0 <= h < n:
            line.projected[h] += dollars
            line.prices.update(why.split(","))
    return line


def env_bill(env: EnvInput, cat: Catalogue, now: float) -> dict[str, Any]:
    m0, m1 = month_bounds(now)
    n = round((m1 - m0) / HOUR)
    b = _Biller(cat, env, m1 - m0)
    compute = _compute_line(env, b, m0, m1, now, n)
    lines = [compute]
    if env.gpu and env.gpus > 0:
        lines.append(_gpu_line(env, cat, compute, m0, now))
    elif env.gpus_seen > 0:
        gpu = Line("gpu", "GPU-hours", [0.0] * n, [0.0] * n)
        gpu.unknown = (f"{env.gpus_seen} GPU(s) seen on the instance, but "
                       f"cost.environments.{env.name}.gpu names no GPU model to price")  # fmt: skip
        lines.append(gpu)
    egress_price, egress_key = cat.unit(f"{env.platform}/egress_gb")

    def price_egress(v: float) -> tuple[float | None, str]:
        if egress_price is None or egress_key is None:
            return None, (f"no egress price on {env.platform} "
                          f"(set cost.prices.\"{env.platform}/egress_gb\")")  # fmt: skip
        return v / GB * egress_price, egress_key

    lines.append(_metered_line(
        "egress", "GB", env.egress, GB, price_egress, m0, m1, now, n,
        f"egress of {env.name} is not measured here (the agent measures the environment in "
        "cost.environment)",
    ))  # fmt: skip
    if b.request_billing:
        missing = f"requests of {env.name} are not measured"
        lines.append(
            _metered_line(
                "requests", "requests", env.requests, 1.0, b.requests, m0, m1, now, n, missing
            )
        )
    known = [ln for ln in lines if ln.unknown is None]
    mtd = sum(sum(ln.actual) for ln in known)
    rest = sum(sum(ln.projected) for ln in known)
    covered_from = env.changes[0].ts if env.changes else None
    current = state_at(list(env.changes), now) if env.changes else None
    notes = []
    if covered_from is not None and covered_from > m0:
        notes.append("instance history starts mid-month; earlier usage is not counted")
    for key in {p for ln in lines for p in ln.prices}:
        e = cat.get(key)
        if e is not None and e.deprecated(now):
            notes.append(f"{key} is deprecated since {e.deprecated_after}")
    return {
        "env": env.name,
        "service": env.service or env.name,
        "platform": env.platform,
        "size": current.size if current else env.size,
        "replicas": current.replicas if current else None,
        "production": env.production,
        "month": month_label(now),
        "month_start": m0,
        "month_end": m1,
        "month_to_date": round(mtd, 2) if compute.unknown is None else None,
        "projected": round(mtd + rest, 2) if compute.unknown is None else None,
        "known_month_to_date": round(mtd, 2),
        "known_projected": round(mtd + rest, 2),
        "budget": env.budget,
        "over_budget": (
            env.budget is not None and compute.unknown is None and mtd + rest > env.budget
        ),
        "complete": all(ln.unknown is None for ln in lines),
        "unknown": [f"{ln.item}: {ln.unknown}" for ln in lines if ln.unknown],
        "lines": [ln.as_dict() for ln in lines],
        "projection": compute.method,
        "covered_from": covered_from,
        "notes": notes,
        "series": _series(lines, m0, n, now),
        "prices_used": sorted({p for ln in lines for p in ln.prices}),
    }


def _series(lines: list[Line], m0: float, n: int, now: float) -> dict[str, list[Any]]:
    """Cumulative spend at each hour boundary (known lines), actual up to now, projected
    from now on; one extra point at ``now`` joins the two."""
    known = [ln for ln in lines if ln.unknown is None]
    per_hour_actual = [sum(ln.actual[h] for ln in known) for h in range(n)]
    per_hour_proj = [sum(ln.projected[h] for ln in known) for h in range(n)]
    x: list[float] = []
    actual: list[float | None] = []
    proj: list[float | None] = []
    run = 0.0
    for k in range(n + 1):
        t = m0 + k * HOUR
        if t > now and (not x or x[-1] < now):
            mtd = sum(per_hour_actual)
            x.append(round(now, 3))
            actual.append(round(mtd, 4))
            proj.append(round(mtd, 4))
            run = mtd
        if t <= now:
            run = sum(per_hour_actual[:k])
            x.append(t)
            actual.append(round(run, 4))
            proj.append(None)
        else:
            run += per_hour_proj[k - 1] if k >= 1 else 0.0
            x.append(t)
            actual.append(None)
            proj.append(round(run, 4))
    return {"t": x, "actual": actual, "projected": proj}


def bill(envs: Sequence[EnvInput], cat: Catalogue, now: float) -> dict[str, Any]:
    rows = [env_bill(e, cat, now) for e in envs]
    keys = {k for r in rows for k in r["prices_used"]}
    m0, m1 = month_bounds(now)
    return {
        "generated_at": now,
        "month": month_label(now),
        "month_start": m0,
        "month_end": m1,
        "environments": rows,
        "total": {
            "month_to_date": round(sum(r["known_month_to_date"] for r in rows), 2),
            "projected": round(sum(r["known_projected"] for r in rows), 2),
            "budget": (
                round(sum(r["budget"] for r in rows if r["budget"] is not None), 2)
                if any(r["budget"] is not None for r in rows)
                else None
            ),
            "complete": all(r["complete"] for r in rows),
        },
        "stale_prices": cat.stale_entries(now, keys),
        "stale_after_days": cat.stale_days,
    }
