"""The series the cost service publishes (listed in the agent's catalogue)."""

from __future__ import annotations

from fastmango.series import MetricSpec

SPECS: list[MetricSpec] = [
    MetricSpec(
        "fastmango_cost_month_to_date_dollars",
        "gauge",
        "Spend of the environment this calendar month so far (known lines; absent while its "
        "instance history or price is unknown).",
        ("env",),
        source="fastmango",
    ),
    MetricSpec(
        "fastmango_cost_month_projected_dollars",
        "gauge",
        "Spend of the environment projected to the end of the month (seasonal projection).",
        ("env",),
        source="fastmango",
    ),
    MetricSpec(
        "fastmango_cost_budget_dollars",
        "gauge",
        "The environment's monthly budget (cost.budgets).",
        ("env",),
        source="fastmango",
    ),
]
