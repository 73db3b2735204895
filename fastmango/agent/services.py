"""Long-running parts of the agent beside the collectors: the log tailer and index,
alert evaluation and delivery, the scaler's loop, the deploy health gate, cost figures.

Each is a :class:`Service`: the daemon starts them after the store opens and the
collectors run, and stops them (in reverse order) before the store closes. A service
reaches the rest of the agent through the :class:`Host` it is given; it publishes
samples like a collector does (their specs must be in the catalogue) and records events
in the store. A service that fails to start is logged and left out; the agent keeps
running. Heavy imports happen inside ``start()`` or later, never at module import, so
the agent's start-up and memory stay small.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from fastmango.agent.exporter import Exporter
    from fastmango.agent.settings import Settings
    from fastmango.agent.store import Store
    from fastmango.series import MetricSpec, Sample

log = logging.getLogger("fastmango.agent")


class Host(Protocol):
    """What a service may use of the agent."""

    settings: Settings
    store: Store
    exporter: Exporter
    specs: dict[str, MetricSpec]
    clock: Callable[[], float]
    url: str
    services: dict[str, Service]

    def publish(self, source: str, samples: list[Sample] | None) -> None: ...

    def subscribe(self) -> asyncio.Queue[tuple[str, float]]: ...

    def unsubscribe(self, q: asyncio.Queue[tuple[str, float]]) -> None: ...


class Service(Protocol):
    name: str

    async def start(self, host: Host) -> None: ...

    async def stop(self) -> None: ...


#: (name, module, factory) of each built-in service; the factory takes the settings and
#: returns a Service, or None when the settings leave it off
BUILTIN: list[tuple[str, str, str]] = [
    ("fleet", "fastmango.agent.fleet.service", "create"),  # first: the others consult it
    ("logs", "fastmango.agent.logs.service", "create"),
    ("alerts", "fastmango.agent.alerts.service", "create"),
    ("scaling", "fastmango.agent.scaling.service", "create"),
    ("deploys", "fastmango.agent.deploys.service", "create"),
    ("cost", "fastmango.agent.cost.service", "create"),
]


def default_services(settings: Settings) -> dict[str, Service]:
    out: dict[str, Service] = {}
    for name, module, factory in BUILTIN:
        make: Any = getattr(importlib.import_module(module), factory)
        service = make(settings)
        if service is not None:
            out[name] = service
    return out


async def start_all(services: dict[str, Service], host: Host) -> None:
    for name, service in list(services.items()):
        try:
            await service.start(host)
        except Exception as exc:  # one part failing must not stop the agent
            log.error("service %s failed to start: %s", name, exc, exc_info=exc)
            services.pop(name)


async def stop_all(services: dict[str, Service]) -> None:
    for name, service in reversed(list(services.items())):
        try:
            await service.stop()
        except Exception as exc:
            log.error("service %s failed to stop cleanly: %s", name, exc, exc_info=exc)
