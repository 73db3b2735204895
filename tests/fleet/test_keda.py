"""``/api/keda`` (the shape KEDA's metrics-api scaler reads) and ``/api/fleet`` of a
fleet of one; the load comes from real agents scraping real (small) apps."""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from fastmango.agent.fleet.keda import answer, pick, quantity, scaling_views
from fastmango.agent.fleet.rollups import FleetSignal
from fastmango.series import Sample
from tests.fleet.conftest import fleet_of, wait_for

#: a Kubernetes quantity as KEDA parses a string value (decimal form, optional suffix)
QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?$")


def gjson(doc: dict[str, Any], path: str) -> Any:
    """What KEDA's GJSON ``valueLocation`` finds for a plain dotted path."""
    cur: Any = doc
    for part in path.split("."):
        cur = cur[int(part)] if isinstance(cur, list) else cur[part]
    return cur


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (4, "4"), (4.0, "4"), (12.5, "12.5"), (0.1234, "0.123"), (1e-9, "0"),
     (59.99999, "60"), (123456.75, "123456.75"), (-2.5, "-2.5")],
)  # fmt: skip
def test_quantity(value: float, text: str) -> None:
    assert quantity(value) == text
    assert QUANTITY.match(text)


def test_quantity_refuses_nan() -> None:
    with pytest.raises(ValueError, match="finite"):
        quantity(math.nan)


def test_answer_with_a_scaler_and_without() -> None:
    load = FleetSignal("http_requests_per_second", 62.5, 20.833, 30, 3, {})
    doc = answer(load, "fleet", 3, "web-1",
                 {"desired_replicas": 3.2, "forecast_requests_per_second": 80.0,
                  "forecast_replicas": 4, "forecast_horizon_seconds": 600},
                 "leader web-1", 60, 1.0)  # fmt: skip
    assert gjson(doc, "load.requests_per_second") == "62.5"
    assert gjson(doc, "desired.replicas") == "4"  # rounded up: never fewer than asked
    assert gjson(doc, "forecast.requests_per_second") == "80"
    assert gjson(doc, "forecast.replicas") == "4"
    assert gjson(doc, "fleet.instances") == "3"
    assert "missing" not in doc
    bare = answer(None, "local", 1, None, None, None, 60, 1.0)
    assert set(bare["missing"]) == {"load", "desired", "forecast"}
    assert "load" not in bare and "desired" not in bare  # never a made-up 0
    assert bare["missing"]["desired"] == "no scaler runs"


def test_scaling_views_read_the_scalers_status() -> None:
    class Scaler:
        def status(self) -> dict[str, Any]:
            return {"environments": {
                "production": {"desired": 5, "forecast": {"peak": 120.5, "low": 80.0,
                               "replicas": 6, "horizon_seconds": 900}},
                "staging": {"desired": 1, "forecast": None},
                "new": {"desired": None, "forecast": None},
            }}  # fmt: skip

    assert scaling_views(None) == {}
    assert scaling_views(object()) == {}
    views = scaling_views(Scaler())
    assert views == {
        "production": {"desired_replicas": 5, "forecast_requests_per_second": 120.5,
                       "forecast_replicas": 6, "forecast_horizon_seconds": 900},
        "staging": {"desired_replicas": 1},
    }  # fmt: skip
    assert pick(views, None) == ("production", views["production"])
    assert pick(views, "staging") == ("staging", {"desired_replicas": 1})
    assert pick({}, None) == (None, {})
    with pytest.raises(KeyError):
        pick(views, "qa")
    doc = answer(None, "fleet", 2, "a", views["production"], "leader a", 60, 1.0,
                 env="production", environments=list(views))  # fmt: skip
    assert doc["desired"] == {"replicas": "5"}
    assert doc["forecast"] == {"requests_per_second": "120.5", "replicas": "6",
                               "horizon_seconds": "900"}  # fmt: skip
    assert doc["env"] == "production" and doc["environments"] == ["production", "staging"]


class _App:
    """A small app's /metrics (FastmangoMiddleware names) whose request counter grows at
    ``rate`` per second from the start."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.t0 = time.monotonic()
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                n = int(app.rate * (time.monotonic() - app.t0))
                lbl = (
                    'http_request_method="GET",http_route="/items",http_response_status_code="200"'
                )
                body = (
                    "# TYPE http_server_request_duration_seconds histogram\n"
                    f'http_server_request_duration_seconds_bucket{{{lbl},le="0.025"}} 0\n'
                    f'http_server_request_duration_seconds_bucket{{{lbl},le="0.05"}} {n}\n'
                    f'http_server_request_duration_seconds_bucket{{{lbl},le="+Inf"}} {n}\n'
                    f"http_server_request_duration_seconds_sum{{{lbl}}} {n * 0.03}\n"
                    f"http_server_request_duration_seconds_count{{{lbl}}} {n}\n"
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def apps() -> Iterator[list[_App]]:
    made = [_App(20.0), _App(40.0)]
    yield made
    for a in made:
        a.close()


def test_keda_answers_the_fleets_load_on_every_agent(start_fleet: Any, apps: list[_App]) -> None:
    agents = start_fleet(2, tomls=[f'[collectors.app]\nmetrics_urls = ["{a.url}"]\n' for a in apps])

    def fleet_load() -> dict[str, Any] | None:
        doc = httpx.get(agents[0].url + "/api/keda", params={"window": "10s"}).json()
        load = doc.get("load")
        if load and load["instances_reporting"] == "2" and abs(
            float(load["requests_per_second"]) - 60) < 6:  # fmt: skip
            return doc
        return None

    doc = wait_for("the fleet's 20 + 40 req/s on /api/keda", fleet_load, 40, every=0.5)
    assert QUANTITY.match(gjson(doc, "load.requests_per_second"))
    assert float(gjson(doc, "load.per_instance")) == pytest.approx(30, rel=0.15)
    assert doc["source"]["load"] == "fleet"
    assert doc["fleet"]["instances"] == "2"
    assert doc["fleet"]["leader"] in {fleet_of(a)["instance"] for a in agents}
    # no environment to scale: desired and forecast are left out, and the reason given
    assert "desired" not in doc and "scaler" in doc["missing"]["desired"]
    # the other agent answers the same fleet figure (KEDA may reach either)
    other = httpx.get(agents[1].url + "/api/keda", params={"window": "10s"}).json()
    assert float(other["load"]["requests_per_second"]) == pytest.approx(60, rel=0.15)
    bad = httpx.get(agents[0].url + "/api/keda", params={"window": "soon"})
    assert bad.status_code == 400 and "window" in bad.json()["detail"]
    assert httpx.get(agents[0].url + "/api/keda", params={"window": "1s"}).status_code == 400


def test_fleet_of_one_without_a_database(start_agent: Any, agent_env: dict[str, str]) -> None:
    agent_env["FASTMANGO_COLLECTORS__GPU__ENABLED"] = "false"
    agent = start_agent()
    view = fleet_of(agent)
    assert view["mode"] == "single" and view["is_leader"] and view["connected"]
    assert view["leader"] == view["instance"] and view["instances_up"] == 1
    [me] = view["instances"]
    assert me["self"] and me["leader"] and me["state"] == "up"
    text = httpx.get(agent.url + "/metrics").text
    assert "fastmango_fleet_leader 1.0" in text and "fastmango_fleet_instances 1.0" in text
    doc = httpx.get(agent.url + "/api/keda").json()
    assert doc["fleet"]["instances"] == "1" and doc["source"]["load"] == "local"
    assert "load" in doc["missing"]  # no app metrics configured: no load, not a made-up 0
    assert httpx.get(agent.url + "/api/fleet/claims").json() == []


async def test_a_follower_answers_what_the_leader_shared(fleet_db: Any) -> None:
    """The leader's scaler decides; KEDA may ask any agent: a follower answers the
    desired replicas and forecast the leader shared through PostgreSQL."""
    from types import SimpleNamespace

    from fastapi import FastAPI

    from fastmango.agent.fleet import api as fleet_api
    from fastmango.agent.fleet.service import FleetService
    from fastmango.agent.settings import Settings
    from fastmango.agent.settings_fleet import FleetSettings

    def service(name: str) -> FleetService:
        return FleetService(
            Settings(database_url=fleet_db.dsn, fleet=FleetSettings(instance_id=name))
        )

    leader, follower = service("web-1"), service("web-2")
    try:
        await leader.put_shared("scaling", {"environments": {
            "production": {"desired_replicas": 7, "forecast_requests_per_second": 300.0,
                           "forecast_replicas": 8, "forecast_horizon_seconds": 600}}})  # fmt: skip
        await leader.write_rollup([Sample("http_requests_per_second", (), 42.0, time.time() - 15)])
        app = FastAPI()
        fleet_api.mount(app, SimpleNamespace(services={"fleet": follower}, specs={},
                                             store=None, clock=time.time))  # fmt: skip
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            doc = (await client.get("/api/keda")).json()
            assert gjson(doc, "desired.replicas") == "7"
            assert gjson(doc, "forecast.replicas") == "8"
            assert gjson(doc, "forecast.requests_per_second") == "300"
            assert gjson(doc, "load.requests_per_second") == "42"
            assert doc["env"] == "production" and doc["source"]["scaling"] == "leader web-1"
            missing = await client.get("/api/keda", params={"env": "qa"})
            assert missing.status_code == 404 and "production" in missing.json()["detail"]
    finally:
        await leader.stop()
        await follower.stop()
