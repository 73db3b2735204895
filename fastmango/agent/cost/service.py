"""The cost service: recomputes the month's figures every ``cost.interval`` and publishes
``fastmango_cost_month_to_date_dollars``, ``fastmango_cost_month_projected_dollars`` and
``fastmango_cost_budget_dollars`` per environment (the CostOverBudget alert compares the
last two). The API reads its latest figures (recomputed when older than ``MAX_AGE``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from fastmango.agent.settings import Settings

if TYPE_CHECKING:
    from fastmango.agent.services import Host, Service

log = logging.getLogger("fastmango.cost")
MAX_AGE = 30.0  # seconds an API answer may reuse the last figures
SAVINGS_MAX_AGE = 120.0
FIRST_DELAY = 1.0  # seconds after start before the first figures


class CostService:
    name = "cost"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.host: Host | None = None
        self.latest: dict[str, Any] | None = None
        self.latest_at = float("-inf")
        self.savings_latest: dict[str, Any] | None = None
        self.savings_at = float("-inf")
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self, host: Host) -> None:
        self.host = host
        self._task = asyncio.create_task(self._loop(), name="cost")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        await asyncio.sleep(FIRST_DELAY)  # let the agent's start-up and first scrape go first
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # keep the agent and the loop running
                from fastmango.redact import redact_secrets

                self.last_error = redact_secrets(str(exc))
                log.error("cost figures failed: %s", self.last_error)
            await asyncio.sleep(self.settings.cost.interval)

    async def refresh(self) -> dict[str, Any]:
        assert self.host is not None
        from fastmango.agent.cost.report import compute_bill

        host = self.host
        async with self._lock:
            now = host.clock()
            report = await asyncio.to_thread(compute_bill, self.settings, host.store, now)
            self.latest, self.latest_at, self.last_error = report, now, None
        host.publish("cost", samples_of(report, now))
        return report

    async def report(self, max_age: float = MAX_AGE) -> dict[str, Any]:
        assert self.host is not None
        if self.latest is not None and self.host.clock() - self.latest_at <= max_age:
            return self.latest
        return await self.refresh()

    async def savings(self, max_age: float = SAVINGS_MAX_AGE) -> dict[str, Any]:
        assert self.host is not None
        now = self.host.clock()
        if self.savings_latest is not None and now - self.savings_at <= max_age:
            return self.savings_latest
        from fastmango.agent.cost.optimize import compute_savings

        bill_doc = await self.report()
        out = await asyncio.to_thread(
            compute_savings, self.settings, self.host.store, now, bill_doc
        )
        self.savings_latest, self.savings_at = out, now
        return out


def samples_of(report: dict[str, Any], now: float) -> list[Any]:
    """The cost gauges: an environment whose instance history or price is unknown gets
    no month-to-date or projected sample (absent, never zero)."""
    from fastmango.series import Sample, labels_of

    out = []
    for row in report["environments"]:
        labels = labels_of(env=row["env"])
        if row["month_to_date"] is not None:
            out.append(Sample("fastmango_cost_month_to_date_dollars", labels,
                              row["known_month_to_date"], now))  # fmt: skip
            out.append(Sample("fastmango_cost_month_projected_dollars", labels,
                              row["known_projected"], now))  # fmt: skip
        if row["budget"] is not None:
            out.append(Sample("fastmango_cost_budget_dollars", labels, row["budget"], now))
    return out


def create(settings: Settings) -> Service | None:
    """The service for these settings, or None when they leave it off."""
    if not settings.cost.enabled:
        return None
    return CostService(settings)
