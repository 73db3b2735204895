"""decide(): one control-loop step, table by table, and over time."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from fastmango.scaler.decide import Forecast, Observations, State, decide
from fastmango.scaler.hpa import Pod
from fastmango.scaler.policy import Policy, Predictive, Targets

NOW = 1_800_000_000.0
DAY = 86400.0


def obs(replicas: int, cpu: float | None = None, rps: float | None = None,
        p95: float | None = None, forecast: Forecast | None = None) -> Observations:  # fmt: skip
    metrics = {} if cpu is None else {"cpu": cpu}
    pods = tuple(Pod(f"p{i}", started_at=NOW - 3600, ready_changed_at=NOW - 3600,
                     metrics=metrics, sampled_at=NOW) for i in range(replicas))  # fmt: skip
    return Observations(replicas, pods, rps=rps, p95=p95, forecast=forecast)


CPU70 = Policy(min=1, max=10, targets=Targets(cpu=70))
MULTI = Policy(min=1, max=20, targets=Targets(cpu=70, rps=100, p95=0.2))
PRED = Policy(min=1, max=20, targets=Targets(cpu=70), predictive=Predictive(enabled=True))

# (name, policy, observations, expected replicas, reason, driver)
CASES = [
    ("cpu above target", CPU70, obs(3, cpu=90), 4, "ScaleUp", "cpu"),
    ("within tolerance", CPU70, obs(3, cpu=75), 3, "NoChange", "cpu"),
    ("largest proposal wins", MULTI, obs(3, cpu=90, rps=550, p95=0.1), 6, "ScaleUp", "rps"),
    ("p95 drives", MULTI, obs(4, cpu=70, rps=400, p95=0.3), 6, "ScaleUp", "p95"),
    ("rate limit from 1", CPU70.with_(max=50), obs(1, cpu=700), 5, "ScaleUpLimit", "cpu"),
    ("max clamp", CPU70, obs(8, cpu=140), 10, "TooManyReplicas", "cpu"),
    ("above max already", CPU70, obs(12, cpu=10), 10, "TooManyReplicas", None),
    ("below min", CPU70.with_(min=3), obs(2, cpu=10), 3, "TooFewReplicas", None),
    ("missing metric blocks scale-down", MULTI, obs(5, cpu=20), 5, "FailedGetMetrics", None),
    ("missing metric allows scale-up", MULTI, obs(3, cpu=140), 6, "ScaleUp", "cpu"),
    ("no metric at all", CPU70, obs(3), 3, "FailedGetMetrics", None),
    ("forecast raises ahead", PRED,
     obs(5, cpu=70, forecast=Forecast(900, 180, 100, 7 * DAY)), 9, "PredictiveScaleUp",
     "forecast"),
    ("forecast below reactive: reactive wins", PRED,
     obs(3, cpu=140, forecast=Forecast(100, 180, 100, 7 * DAY)), 6, "ScaleUp", "cpu"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "observations", "replicas", "reason", "driver"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decide(policy: Policy, observations: Observations, replicas: int, reason: str,
                driver: str | None) -> None:  # fmt: skip
    d = decide(State(), observations, policy, NOW)
    assert (d.replicas, d.reason, d.driver) == (replicas, reason, driver)
    assert d.message
    assert d.current == observations.replicas


# (name, forecast, policy, expected status)
FALLBACKS = [
    ("short history", Forecast(900, 180, 100, 0.5 * DAY), PRED, "ForecastHistoryShort"),
    ("high error", Forecast(900, 180, 100, 7 * DAY, error=0.9), PRED, "ForecastErrorHigh"),
    ("unknown capacity", Forecast(900, 180, None, 7 * DAY), PRED, "ForecastNoCapacity"),
    ("no forecast", None, PRED, "NoForecast"),
    ("predictive off", Forecast(900, 180, 100, 7 * DAY), CPU70, "off"),
]


@pytest.mark.parametrize(
    ("forecast", "policy", "status"), [c[1:] for c in FALLBACKS], ids=[c[0] for c in FALLBACKS]
)
def test_forecast_fallback(forecast: Forecast | None, policy: Policy, status: str) -> None:
    d = decide(State(), obs(5, cpu=70, forecast=forecast), policy, NOW)
    assert d.forecast_status == status
    assert d.replicas == 5  # the reactive answer: within tolerance
    assert "forecast" not in d.proposals
    if status not in ("off",):
        assert status in d.message or status == "NoForecast"


def test_scale_down_waits_for_the_window() -> None:
    state, current = State(), 3
    t = NOW
    d = decide(state, obs(current, cpu=140), CPU70, t)  # → 6
    state, current = d.state, d.replicas
    assert current == 6
    seen = []
    for _ in range(40):  # 10 minutes of low load, every 15 s
        t += 15
        d = decide(state, obs(current, cpu=20), CPU70, t)
        state, current = d.state, d.replicas
        seen.append((t - NOW, current, d.reason))
    first_drop = next(s for s in seen if s[1] < 6)
    assert 300 <= first_drop[0] <= 315
    assert any(r == "ScaleDownStabilized" for _, _, r in seen)
    assert dict((a, n) for a, n, _ in seen)[450] == 2  # ceil(20/70 × 6), held for 5 min
    assert seen[-1][1] == 1  # the next step down waits its own window


def test_state_is_not_mutated() -> None:
    state = State()
    d = decide(state, obs(3, cpu=90), CPU70, NOW)
    assert state == State()
    assert d.state.recommendations == ((NOW, 4),)
    assert d.state.up_events == ((NOW, 1),)


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Berlin")).timestamp()


DEV = Policy(min=0, max=4, targets=Targets(cpu=70),
             schedule="Mon-Fri 08:00-20:00 Europe/Berlin min=1; otherwise 0")  # fmt: skip


@pytest.mark.parametrize(
    ("when", "current", "cpu", "rps", "replicas", "reason"),
    [
        ("2026-11-28 12:00", 2, 50, None, 0, "ScheduledOff"),  # Saturday
        ("2026-11-30 08:00", 0, None, None, 1, "ScheduledStart"),  # Monday morning
        ("2026-11-30 12:00", 1, 140, None, 2, "ScaleUp"),
        ("2026-11-30 20:01", 1, 10, None, 0, "ScheduledOff"),
    ],
)
def test_schedule(when: str, current: int, cpu: float | None, rps: float | None,
                  replicas: int, reason: str) -> None:  # fmt: skip
    d = decide(State(), obs(current, cpu=cpu, rps=rps), DEV, ts(when))
    assert (d.replicas, d.reason) == (replicas, reason)


def test_scale_to_zero_activation() -> None:
    pol = Policy(min=0, max=4, targets=Targets(rps=50))
    assert decide(State(), obs(0, rps=0.0), pol, NOW).replicas == 0
    d = decide(State(), obs(0, rps=3.0), pol, NOW)
    assert (d.replicas, d.reason) == (1, "Activated")


def test_inputs_summary() -> None:
    o = obs(2, cpu=55.5555, rps=10.0, p95=0.12)
    assert o.inputs() == {"replicas": 2, "rps": 10.0, "p95": 0.12, "ready": 2, "cpu": 55.56,
                          "gpu": None}  # fmt: skip


@pytest.mark.parametrize(
    ("history", "wait"),
    [(7 * DAY, 60), (0.5 * DAY, 300)],  # trusted forecast: short window; else the HPA's
)
def test_short_window_only_under_a_trusted_forecast(history: float, wait: float) -> None:
    from fastmango.scaler import hpa

    short = hpa.Behavior(scale_down=hpa.Rules(60, "Max", (hpa.RatePolicy("Percent", 100, 15),)))
    pol = Policy(min=1, max=20, targets=Targets(cpu=70), predictive=Predictive(enabled=True),
                 behavior=short)  # fmt: skip
    fc = Forecast(100, 180, 100, history)  # asks for 1 instance
    state, current, t = State(), 6, NOW
    d = decide(state, obs(current, cpu=70, forecast=fc), pol, t)
    state = d.state
    for _ in range(30):
        t += 15
        d = decide(state, obs(current, cpu=10, forecast=fc), pol, t)
        state, current = d.state, d.replicas
        if current < 6:
            break
    assert wait <= t - NOW <= wait + 15
