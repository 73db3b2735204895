"""Which adapter serves which platform; adapters are imported only when used."""

from __future__ import annotations

import importlib
from typing import Any

from fastmango.deployer.errors import DeployError
from fastmango.deployer.platform import Target

#: platform name → module with ``connect(target, **client_options)``
ADAPTERS = {
    "fly": "fastmango.deployer.fly",
    "railway": "fastmango.deployer.railway",
    "render": "fastmango.deployer.render",
    "kubernetes": "fastmango.deployer.kubernetes",
    "cloudrun": "fastmango.deployer.cloudrun",
    "ecs": "fastmango.deployer.ecs",
    "azure": "fastmango.deployer.azure",
}


def connect(target: Target, **client_options: Any) -> Any:
    """An adapter for ``target`` (Platform + Rollouts); ``aclose()`` it when done.

    ``client_options`` go to :func:`fastmango.deployer.http.make_client` (``retry``,
    ``timeout``, ``transport``…).
    """
    module = ADAPTERS.get(target.platform)
    if module is None:
        known = ", ".join(sorted(ADAPTERS))
        raise DeployError(f"no deploy adapter for platform {target.platform!r} (known: {known})")
    return importlib.import_module(module).connect(target, **client_options)
