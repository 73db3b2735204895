"""Series the scaling loop publishes (so the dashboard charts them over time)."""

from __future__ import annotations

from fastmango.series import MetricSpec

SPECS = [
    MetricSpec("fastmango_scaling_current_replicas", "gauge",
               "Instances of the environment when the scaling loop last looked.", ("env",)),
    MetricSpec("fastmango_scaling_desired_replicas", "gauge",
               "Instances the scaling loop last decided on (applied or dry-run).", ("env",)),
    MetricSpec("fastmango_scaling_dry_run", "gauge",
               "1 while the environment's decisions are recorded but not applied.", ("env",)),
    MetricSpec("fastmango_scaling_load_requests_per_second", "gauge",
               "The whole app's load the loop used (requests per second).", ("env",)),
    MetricSpec("fastmango_scaling_capacity_requests_per_second", "gauge",
               "Requests per second the current instances serve at the target.", ("env",)),
    MetricSpec("fastmango_scaling_forecast_requests_per_second", "gauge",
               "Forecast peak load within the horizon: bound=low (median) or high "
               "(the policy's quantile).", ("env", "bound")),
    MetricSpec("fastmango_scaling_forecast_error_ratio", "gauge",
               "Recent relative error of the median forecast (weighted, last hour).", ("env",)),
]  # fmt: skip
