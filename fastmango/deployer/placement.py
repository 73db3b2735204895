"""Where an app can run: each platform's GPU offering and its region names.

``--gpu=t4|l4|a10|a100`` maps to the platform's own word for that GPU, or to a clear
refusal naming what the platform does offer. ``--regions=us-west,eu-west`` maps portable
region names to each platform's; a platform's own region names pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastmango.deployer.errors import DeployError

GPUS = ("t4", "l4", "a10", "a100")


@dataclass(frozen=True)
class GpuOffer:
    """One GPU as a platform names it."""

    platform: str
    gpu: str  # t4 | l4 | a10 | a100
    kind: str  # the platform's word (accelerator, gpu_kind, node label value)
    min_cpu: float = 0.0  # vCPUs the platform requires beside this GPU
    min_memory_gib: float = 0.0
    note: str = ""


def _offers(platform: str, table: dict[str, tuple[str, float, float, str]]) -> dict[str, GpuOffer]:
    return {g: GpuOffer(platform, g, k, c, m, n) for g, (k, c, m, n) in table.items()}


#: platform → gpu → offer; a GPU missing here is refused with REFUSALS[platform]
OFFERS: dict[str, dict[str, GpuOffer]] = {
    # GPU Feature Discovery's node label nvidia.com/gpu.product; resource nvidia.com/gpu
    "kubernetes": _offers(
        "kubernetes",
        {
            "t4": ("Tesla-T4", 0, 0, ""),
            "l4": ("NVIDIA-L4", 0, 0, ""),
            "a10": ("NVIDIA-A10G", 0, 0, ""),
            "a100": ("NVIDIA-A100-SXM4-40GB", 0, 0, ""),
        },
    ),
    # Cloud Run: template.nodeSelector.accelerator + limits nvidia.com/gpu (≥ 4 CPU, 16 GiB)
    "cloudrun": _offers("cloudrun", {"l4": ("nvidia-l4", 4, 16, "instance-based billing")}),
    # Fly Machines: [[vm]] gpu_kind
    "fly": _offers(
        "fly",
        {"a10": ("a10", 8, 32, ""), "a100": ("a100-pcie-40gb", 8, 32, "")},
    ),
}
REFUSALS = {
    "cloudrun": "Cloud Run offers the NVIDIA L4 (--gpu=l4) and no {gpu}",
    "fly": "Fly Machines offer --gpu=a10 and --gpu=a100 (also L40S), no {gpu}",
    "ecs": "ECS on Fargate has no GPUs; run the service on ECS with EC2 capacity "
    "(g4dn = T4, g6 = L4, g5 = A10G, p4d = A100) instead",
    "azure": "Azure Container Instances offers no {gpu} (its K80/P100/V100 SKUs are "
    "retired); Azure Container Apps' serverless GPUs (T4, A100) are the Azure choice",
    "render": "Render has no GPU instances",
    "railway": "Railway has no GPU instances",
}


def gpu_offer(platform: str, gpu: str | None) -> GpuOffer | None:
    """The platform's offer for ``gpu`` (None when no GPU was asked for).

    Raises :class:`DeployError` naming what the platform offers when it has no such GPU.
    """
    if not gpu:
        return None
    g = gpu.strip().lower()
    if g not in GPUS:
        raise DeployError(f"--gpu={gpu!r}: expected one of {', '.join(GPUS)}")
    offer = OFFERS.get(platform, {}).get(g)
    if offer is None:
        why = REFUSALS.get(platform, f"{platform} has no GPU offering known to fastmango")
        raise DeployError(f"--gpu={g} on {platform}: {why.format(gpu=g.upper())}")
    return offer


#: portable region → platform → the platform's region
REGIONS: dict[str, dict[str, str]] = {
    "us-east": {
        "cloudrun": "us-east1",
        "ecs": "us-east-1",
        "azure": "eastus",
        "fly": "iad",
        "render": "virginia",
    },
    "us-central": {
        "cloudrun": "us-central1",
        "ecs": "us-east-2",
        "azure": "centralus",
        "fly": "ord",
        "render": "ohio",
    },
    "us-west": {
        "cloudrun": "us-west1",
        "ecs": "us-west-2",
        "azure": "westus2",
        "fly": "sjc",
        "render": "oregon",
    },
    "eu-west": {
        "cloudrun": "europe-west1",
        "ecs": "eu-west-1",
        "azure": "westeurope",
        "fly": "ams",
        "render": "frankfurt",
    },
    "eu-central": {
        "cloudrun": "europe-west3",
        "ecs": "eu-central-1",
        "azure": "germanywestcentral",
        "fly": "fra",
        "render": "frankfurt",
    },
    "ap-southeast": {
        "cloudrun": "asia-southeast1",
        "ecs": "ap-southeast-1",
        "azure": "southeastasia",
        "fly": "sin",
        "render": "singapore",
    },
    "ap-northeast": {
        "cloudrun": "asia-northeast1",
        "ecs": "ap-northeast-1",
        "azure": "japaneast",
        "fly": "nrt",
    },
}
#: platforms that run one app in several regions at once (a service per region, or
#: machines in each); the others take exactly one
MULTI_REGION = frozenset({"cloudrun", "fly", "kubernetes"})


def region_names(platform: str, regions: Sequence[str]) -> tuple[str, ...]:
    """Each portable name mapped to ``platform``'s; its own names pass through."""
    out: list[str] = []
    for r in regions:
        r = r.strip()
        if not r:
            continue
        mapped = REGIONS.get(r.lower(), {}).get(platform)
        if r.lower() in REGIONS and mapped is None:
            raise DeployError(f"region {r!r} has no {platform} equivalent; name one of its own")
        name = mapped or r
        if name not in out:
            out.append(name)
    if len(out) > 1 and platform not in MULTI_REGION:
        raise DeployError(
            f"{platform} runs one app in one region; got {len(out)} ({', '.join(out)}): "
            "make an environment per region"
        )
    return tuple(out)


#: platforms whose adapter applies ``--gpu`` at deploy time (others: in their manifest)
GPU_AT_DEPLOY = frozenset({"cloudrun", "ecs", "azure"})
_MANIFEST = {"kubernetes": "k8s", "fly": "fly"}


def gpu_options(platform: str, gpu: str | None, fail: Callable[[str], Any]) -> dict[str, Any]:
    """The adapter options for ``fastmango deploy --gpu``: ``{"gpu": …}`` for platforms
    whose adapter sets the GPU; ``fail`` with the reason otherwise."""
    if not gpu:
        return {}
    try:
        gpu_offer(platform, gpu)
    except DeployError as exc:
        fail(str(exc))
    if platform not in GPU_AT_DEPLOY:
        how = _MANIFEST.get(platform)
        where = f"fastmango generate {how} --gpu={gpu}" if how else "the platform's dashboard"
        fail(f"--gpu on {platform} is set in its manifest, not at deploy time: {where}")
    return {"gpu": gpu}
