"""Settings of the cost section (`[cost]` in fastmango.toml, `FASTMANGO_COST__*`).

```toml
[cost]
environment = "production"            # the environment this agent runs in
budgets = { production = 300, staging = 40 }   # dollars per month

[cost.prices]                          # override or add any catalogue price
"fly/size/shared-cpu-1x-1gb" = 6.79    # e.g. the sjc regional price
"kubernetes/vcpu_hour" = 0.031
"kubernetes/gb_hour" = 0.004

[cost.environments.production]
gpu = "a100-80gb"                      # a key under <platform>/gpu/, or a full key
gpus = 1
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from fastmango.agent.settings_base import Duration, Model


class CostEnvironmentSettings(Model):
    """Cost details of one environment (``[cost.environments.<name>]``)."""

    service: str = Field(
        "", description="Service name the bill groups this environment under (default: its app)."
    )
    gpu: str | None = Field(
        None,
        description="GPU model each instance has, priced from <platform>/gpu/<gpu> "
        "(or a full price key such as ecs/gpu/a100-40gb).",
    )
    gpus: int = Field(1, ge=0, le=64, description="GPUs per instance (with gpu).")
    cloudrun_billing: Literal["instance", "request"] = Field(
        "instance",
        description="Cloud Run billing mode: instance (every running instance second) or "
        "request (request-based rates on instance time, plus requests, after the free tier).",
    )


class CostSettings(Model):
    """The cost section: prices, budgets, and how spend is estimated."""

    enabled: bool = Field(True, description="Compute cost figures and publish the cost gauges.")
    interval: Duration = Field(
        300.0, ge=5, description="Seconds between recomputations of the month's figures."
    )
    environment: str | None = Field(
        None,
        description="The environment this agent runs in: its network and CPU/memory series "
        "count as that environment's egress and load (default: the only environment).",
    )
    # None rather than {} by default: the generated sample config has no inline tables
    budgets: dict[str, float] | None = Field(
        None,
        description="Budget per environment in dollars per month, e.g. { production = 300 }; "
        "the CostOverBudget alert fires when the projection exceeds it.",
    )
    prices: dict[str, float] | None = Field(
        None,
        description='Price overrides or additions by catalogue key, e.g. { "railway/vcpu_minute" '
        '= 0.0005, "render/size/standard" = 25 } (see fastmango billing --prices).',
    )
    environments: dict[str, CostEnvironmentSettings] = Field(
        default_factory=dict, description="Per-environment cost details (GPU, service name)."
    )
    stale_after: Duration = Field(
        180 * 86400.0, ge=86400, description="Prices read longer ago than this are flagged."
    )
    window: Duration = Field(
        7 * 86400.0,
        ge=3600,
        description="History --optimize measures (p95 CPU and memory, idle hours, load).",
    )
    target_utilization: float = Field(
        0.7, gt=0, le=1, description="Right-sizing target utilisation (Kubecost's default)."
    )
    production_target_utilization: float = Field(
        0.65, gt=0, le=1, description="Right-sizing target utilisation for production."
    )
    idle_rps: float = Field(
        0.01, ge=0, description="Requests per second under which an hour counts as idle."
    )

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        for env, dollars in (v or {}).items():
            if dollars < 0:
                raise ValueError(f"budget of {env} must be 0 or more dollars")
        return v

    @field_validator("prices")
    @classmethod
    def _prices(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        from fastmango.scaler.cost.pricing import check_override

        for key, value in (v or {}).items():
            check_override(key, value)
        return v
