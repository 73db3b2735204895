"""NVIDIA GPUs through NVML (``pynvml``), under dcgm-exporter's names and labels.

Per device, labelled like dcgm-exporter (``gpu``, ``UUID``, ``pci_bus_id``, ``device``,
``modelName``, ``Hostname``): utilization, framebuffer memory in MiB, temperatures,
power in W, energy in mJ, clocks in MHz, the clock throttle reason bitmask (and a 1/0
breakdown per reason), volatile ECC error counts where ECC is on, the last XID error,
and PCIe throughput. Per process: the GPU memory each process holds, with the container
it runs in, read from ``<proc_root>/<pid>/cgroup`` (which dcgm-exporter cannot do
outside Kubernetes). The PIDs are those NVML reports, the host's; attribution needs the
agent to see the host's ``/proc`` (``pid: host``, ``hostPID``, or ``proc_root`` on a
mount of it). A PID whose cgroup file cannot be read gets ``container="unknown"``.

Where values come from, and how they differ from dcgm-exporter's:

- ``DCGM_FI_DEV_FB_*``: ``nvmlDeviceGetMemoryInfo`` version 2 (``used`` excludes the
  driver's reservation, reported as ``FB_RESERVED``), or version 1 on older drivers
  (``used`` then includes it and ``FB_RESERVED`` is absent); whole MiB, as DCGM.
- ``DCGM_FI_DEV_MEMORY_TEMP``: field ``NVML_FI_DEV_MEMORY_TEMP``; HBM boards only.
- ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION``: mJ since the driver was loaded. DCGM types it
  a counter; our counters must end in ``_total``, so it is a gauge that only grows.
- ``DCGM_FI_PROF_PCIE_{TX,RX}_BYTES``: DCGM reads a profiling counter over its sample
  period; NVML's ``nvmlDeviceGetPcieThroughput`` samples a byte counter over 20 ms and
  answers in KB/s (1024 bytes), converted here to bytes/s. Each call takes those 20 ms.
- ``DCGM_FI_DEV_XID_ERRORS``: the last XID seen since the agent started (0 before any),
  from an NVML event set registered for XID events in ``start()`` and polled without
  waiting at each collection; ``fastmango_gpu_xid_errors_total{xid}`` counts them.

An NVML call that answers NotSupported, NoPermission or FunctionNotFound drops only its
own series (the device's reading lists it under ``not_supported``); any other NVML error
fails the collection (the agent marks the collector down and retries).

No GPU is not an error. When ``pynvml`` is not installed, when ``nvmlInit`` raises
LibraryNotFound or DriverNotLoaded, or when NVML counts zero devices, ``start()``
succeeds, logs "no NVIDIA GPU/driver found; GPU metrics off" once at info level, and
``collect()`` returns ``[]`` from then on (``fastmango_collector_up`` stays 1). Other
``nvmlInit`` failures (a driver/library version mismatch, no permission) mean a GPU
that cannot be read: ``start()`` raises :class:`~fastmango.errors.CollectorError`.

:func:`read_devices` does the NVML calls and returns plain JSON-able readings (the shape
of ``tests/fixtures/nvml/*.json``); :func:`parse` turns them into samples.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import re
import socket
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

from fastmango.collector.base import Clock
from fastmango.collector.host import read_text
from fastmango.errors import CollectorError
from fastmango.series import Kind, MetricSpec, Sample, SampleBuilder, spec_index, unit_of

log = logging.getLogger(__name__)

MiB = 1 << 20
NVML_KB = 1024

# NVML's C ABI values (nvml.h); a test holds them equal to pynvml's
NVML_SUCCESS = 0
NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_MEMORY_ERROR_TYPE_CORRECTED = 0
NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
NVML_VOLATILE_ECC = 0
NVML_PCIE_UTIL_TX_BYTES = 0
NVML_PCIE_UTIL_RX_BYTES = 1
NVML_FI_DEV_MEMORY_TEMP = 82
NVML_MEMORY_V2 = 0x02000028
NVML_EVENT_XID_CRITICAL_ERROR = 0x8
#: nvmlValue_t member per nvmlValueType_t, for field values
VALUE_MEMBERS = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")

#: nvmlClocksEventReason* bits (the bitmask DCGM exports), by our reason label
THROTTLE_REASONS = {
    "gpu_idle": 0x1,
    "applications_clocks": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal": 0x20,
    "hw_thermal": 0x40,
    "hw_power_brake": 0x80,
}
#: errors that mean "this reading is not available here": drop the one series
UNAVAILABLE = ("NotSupported", "NoPermission", "FunctionNotFound", "ArgumentVersionMismatch")
#: nvmlInit errors that mean "no NVIDIA GPU or driver on this machine"
ABSENT = ("LibraryNotFound", "DriverNotLoaded")

DEVICE_LABELS = ("gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname")


def _spec(name: str, kind: Kind, help: str, *labels: str) -> MetricSpec:
    source = "fastmango" if name.startswith("fastmango_") else "dcgm-exporter"
    return MetricSpec(name, kind, help, labels or DEVICE_LABELS, unit_of(name), source=source)


SPECS: list[MetricSpec] = [
    _spec("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    _spec("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %)."),
    _spec("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB)."),
    _spec("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB)."),
    _spec("DCGM_FI_DEV_FB_TOTAL", "gauge", "Framebuffer memory total (in MiB)."),
    _spec("DCGM_FI_DEV_FB_RESERVED", "gauge", "Framebuffer memory reserved (in MiB)."),
    _spec("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    _spec("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C); HBM boards only."),
    _spec("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    _spec("DCGM_FI_DEV_POWER_MGMT_LIMIT", "gauge", "Power management limit (in W)."),
    _spec(
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "gauge",
        "Total energy consumption since the driver was loaded (in mJ); monotonic, "
        "a counter in dcgm-exporter.",
    ),
    _spec("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz)."),
    _spec("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz)."),
    _spec(
        "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
        "gauge",
        "Current clock throttle reasons, NVML's bitmask.",
    ),
    _spec("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "gauge", "Single-bit volatile ECC errors."),
    _spec("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "gauge", "Double-bit volatile ECC errors."),
    _spec("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error seen (0: none)."),
    _spec(
        "DCGM_FI_PROF_PCIE_TX_BYTES",
        "gauge",
        "PCIe transmit throughput (bytes/s), NVML's 20 ms sample.",
    ),
    _spec(
        "DCGM_FI_PROF_PCIE_RX_BYTES",
        "gauge",
        "PCIe receive throughput (bytes/s), NVML's 20 ms sample.",
    ),
    _spec(
        "fastmango_gpu_throttle_reason",
        "gauge",
        "1 if the clocks are held down for this reason now, else 0.",
        "gpu",
        "UUID",
        "reason",
    ),
    _spec(
        "fastmango_gpu_xid_errors_total",
        "counter",
        "XID errors seen since the agent started, per XID.",
        "gpu",
        "UUID",
        "xid",
    ),
    _spec(
        "fastmango_gpu_process_memory_bytes",
        "gauge",
        'GPU memory used by a process; container: its short id, "" on the host, '
        '"unknown" if its cgroup cannot be read.',
        "gpu",
        "UUID",
        "pid",
        "container",
    ),
]
_INDEX = spec_index(SPECS)

#: (series, reading key, conversion) for the per-device gauges that map one to one
_DEVICE_SERIES: tuple[tuple[str, str, Callable[[float], float]], ...] = (
    ("DCGM_FI_DEV_GPU_UTIL", "utilization.gpu", float),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "utilization.memory", float),
    ("DCGM_FI_DEV_FB_USED", "memory.used", lambda b: b // MiB),
    ("DCGM_FI_DEV_FB_FREE", "memory.free", lambda b: b // MiB),
    ("DCGM_FI_DEV_FB_TOTAL", "memory.total", lambda b: b // MiB),
    ("DCGM_FI_DEV_FB_RESERVED", "memory.reserved", lambda b: b // MiB),
    ("DCGM_FI_DEV_GPU_TEMP", "temperature_gpu", float),
    ("DCGM_FI_DEV_MEMORY_TEMP", "temperature_memory", float),
    ("DCGM_FI_DEV_POWER_USAGE", "power_usage_mw", lambda mw: mw / 1000),
    ("DCGM_FI_DEV_POWER_MGMT_LIMIT", "power_limit_mw", lambda mw: mw / 1000),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "energy_mj", float),
    ("DCGM_FI_DEV_SM_CLOCK", "clock_sm_mhz", float),
    ("DCGM_FI_DEV_MEM_CLOCK", "clock_mem_mhz", float),
    ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "throttle_reasons", float),
    ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "ecc_sbe_volatile", float),
    ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "ecc_dbe_volatile", float),
    ("DCGM_FI_PROF_PCIE_TX_BYTES", "pcie_tx_kbps", lambda kb: kb * NVML_KB),
    ("DCGM_FI_PROF_PCIE_RX_BYTES", "pcie_rx_kbps", lambda kb: kb * NVML_KB),
)


# -- parse: pure ----------------------------------------------------------------------------

# a path component naming a container: Docker (cgroupfs or systemd), containerd, CRI-O,
# Podman, nerdctl; Kubernetes' cgroupfs driver puts the bare id under .../pod<uid>/
_CONTAINER_PART = re.compile(
    r"^(?:(?:docker|cri-containerd|crio|libpod|nerdctl)-)?([0-9a-f]{64})(?:\.scope)?$"
)


def container_id(proc_cgroup: str) -> str:
    """The 12-character short id of the container in ``/proc/<pid>/cgroup``, or "" on the host.

    The cgroup2 line (``0::``) is read first, then the v1 hierarchies in file order; in
    each path the innermost component that names a container wins.
    """
    entries = [line.split(":", 2) for line in proc_cgroup.splitlines() if line.count(":") >= 2]
    for _hierarchy, _controllers, path in sorted(entries, key=lambda e: e[0] != "0"):
        for part in reversed(path.split("/")):
            if m := _CONTAINER_PART.match(part):
                return m.group(1)[:12]
    return ""


@dataclass
class XidHistory:
    """XID errors seen so far: the last per GPU UUID, and counts per (UUID, XID)."""

    last: dict[str, int] = field(default_factory=dict)
    counts: dict[tuple[str, int], int] = field(default_factory=dict)

    def record(self, devices: Sequence[Mapping[str, Any]]) -> None:
        for d in devices:
            for xid in d.get("xid_events", ()):
                self.last[d["uuid"]] = int(xid)
                key = (d["uuid"], int(xid))
                self.counts[key] = self.counts.get(key, 0) + 1


def _lookup(reading: Mapping[str, Any], key: str) -> Any:
    value: Any = reading
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def parse(
    devices: Sequence[Mapping[str, Any]],
    *,
    timestamp: float,
    hostname: str,
    cgroups: Mapping[int, str] | None = None,
    xids: XidHistory | None = None,
) -> list[Sample]:
    """Samples from :func:`read_devices`' readings.

    ``cgroups`` maps a PID to the text of its ``/proc/<pid>/cgroup`` (a PID missing from
    it gets ``container="unknown"``). ``xids`` is the history kept across collections;
    without it, the readings' own ``xid_events`` are the whole history.
    """
    if xids is None:
        xids = XidHistory()
        xids.record(devices)
    cgroups = cgroups or {}
    b = SampleBuilder(_INDEX, timestamp)
    for d in devices:
        gpu, uuid = str(d["index"]), str(d["uuid"])
        labels = {
            "gpu": gpu,
            "UUID": uuid,
            "pci_bus_id": str(d["pci_bus_id"]),
            "device": f"nvidia{d.get('minor_number', d['index'])}",
            "modelName": str(d["name"]),
            "Hostname": hostname,
        }
        for name, key, convert in _DEVICE_SERIES:
            value = _lookup(d, key)
            if value is not None:
                b.add(name, convert(value), **labels)
        mask = d.get("throttle_reasons")
        if mask is not None:
            for reason, bit in THROTTLE_REASONS.items():
                b.add(
                    "fastmango_gpu_throttle_reason",
                    bool(mask & bit),
                    gpu=gpu,
                    UUID=uuid,
                    reason=reason,
                )
        if "xid_events" in d:
            b.add("DCGM_FI_DEV_XID_ERRORS", xids.last.get(uuid, 0), **labels)
            for (xid_uuid, xid), n in sorted(xids.counts.items()):
                if xid_uuid == uuid:
                    b.add("fastmango_gpu_xid_errors_total", n, gpu=gpu, UUID=uuid, xid=str(xid))
        memory: dict[int, int] = {}
        for p in d.get("processes", ()):
            if p.get("used_memory") is not None:  # None: NVML cannot say (e.g. under vGPU)
                memory[p["pid"]] = max(memory.get(p["pid"], 0), int(p["used_memory"]))
        for pid, used in sorted(memory.items()):
            text = cgroups.get(pid)
            container = "unknown" if text is None else container_id(text)
            b.add(
                "fastmango_gpu_process_memory_bytes",
                used,
                gpu=gpu,
                UUID=uuid,
                pid=str(pid),
                container=container,
            )
    return b.samples


# -- fetch ----------------------------------------------------------------------------------


def _errors(nvml: Any, names: Sequence[str]) -> tuple[type[BaseException], ...]:
    return tuple(c for n in names if (c := getattr(nvml, f"NVMLError_{n}", None)) is not None)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _DeviceReader:
    """Reads one device, recording the readings its driver cannot give."""

    def __init__(self, nvml: Any, out: dict[str, Any]) -> None:
        self.out = out
        self.unavailable = _errors(nvml, UNAVAILABLE)

    def get(self, key: str, *calls: Callable[[], Any]) -> Any:
        """The first call's answer that is available, or None (``key`` is noted)."""
        for call in calls:
            try:
                return call()
            except self.unavailable:
                continue
        self.out["not_supported"].append(key)
        return None

    def put(self, key: str, *calls: Callable[[], Any]) -> None:
        value = self.get(key, *calls)
        if value is not None:
            self.out[key] = int(value)


def _read_device(nvml: Any, index: int, h: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"index": index, "not_supported": []}
    out["uuid"] = _text(nvml.nvmlDeviceGetUUID(h))
    out["name"] = _text(nvml.nvmlDeviceGetName(h))
    out["pci_bus_id"] = _text(nvml.nvmlDeviceGetPciInfo(h).busId)
    r = _DeviceReader(nvml, out)
    r.put("minor_number", lambda: nvml.nvmlDeviceGetMinorNumber(h))
    if (util := r.get("utilization", lambda: nvml.nvmlDeviceGetUtilizationRates(h))) is not None:
        out["utilization"] = {"gpu": int(util.gpu), "memory": int(util.memory)}
    mem = r.get(
        "memory",
        lambda: nvml.nvmlDeviceGetMemoryInfo(h, version=NVML_MEMORY_V2),
        lambda: nvml.nvmlDeviceGetMemoryInfo(h),
    )
    if mem is not None:
        out["memory"] = {k: int(getattr(mem, k)) for k in ("total", "free", "used")}
        if hasattr(mem, "reserved"):
            out["memory"]["reserved"] = int(mem.reserved)
    r.put("temperature_gpu", lambda: nvml.nvmlDeviceGetTemperature(h, NVML_TEMPERATURE_GPU))
    fields = r.get(
        "temperature_memory", lambda: nvml.nvmlDeviceGetFieldValues(h, [NVML_FI_DEV_MEMORY_TEMP])
    )
    if fields is not None:
        fv = fields[0]
        if fv.nvmlReturn == NVML_SUCCESS:
            out["temperature_memory"] = getattr(fv.value, VALUE_MEMBERS[fv.valueType])
        else:
            out["not_supported"].append("temperature_memory")
    r.put("power_usage_mw", lambda: nvml.nvmlDeviceGetPowerUsage(h))
    r.put("power_limit_mw", lambda: nvml.nvmlDeviceGetPowerManagementLimit(h))
    r.put("energy_mj", lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(h))
    r.put("clock_sm_mhz", lambda: nvml.nvmlDeviceGetClockInfo(h, NVML_CLOCK_SM))
    r.put("clock_mem_mhz", lambda: nvml.nvmlDeviceGetClockInfo(h, NVML_CLOCK_MEM))
    reasons = [
        getattr(nvml, n)
        for n in (
            "nvmlDeviceGetCurrentClocksEventReasons",
            "nvmlDeviceGetCurrentClocksThrottleReasons",
        )
        if hasattr(nvml, n)
    ]
    r.put("throttle_reasons", *(partial(fn, h) for fn in reasons))
    ecc = r.get("ecc_mode", lambda: nvml.nvmlDeviceGetEccMode(h))
    if ecc is not None:
        out["ecc_mode"] = int(ecc[0])
        if out["ecc_mode"]:
            for key, error_type in (
                ("ecc_sbe_volatile", NVML_MEMORY_ERROR_TYPE_CORRECTED),
                ("ecc_dbe_volatile", NVML_MEMORY_ERROR_TYPE_UNCORRECTED),
            ):
                count = partial(nvml.nvmlDeviceGetTotalEccErrors, h, error_type, NVML_VOLATILE_ECC)
                r.put(key, count)
    r.put("pcie_tx_kbps", lambda: nvml.nvmlDeviceGetPcieThroughput(h, NVML_PCIE_UTIL_TX_BYTES))
    r.put("pcie_rx_kbps", lambda: nvml.nvmlDeviceGetPcieThroughput(h, NVML_PCIE_UTIL_RX_BYTES))
    processes: list[dict[str, Any]] = []
    for kind, fn in (
        ("compute", nvml.nvmlDeviceGetComputeRunningProcesses),
        ("graphics", nvml.nvmlDeviceGetGraphicsRunningProcesses),
    ):
        for p in r.get(f"processes_{kind}", partial(fn, h)) or ():
            used = p.usedGpuMemory
            processes.append(
                {
                    "pid": int(p.pid),
                    "used_memory": None if used is None else int(used),
                    "type": kind,
                }
            )
    out["processes"] = processes
    return out


def poll_xids(nvml: Any, event_set: Any, limit: int = 256) -> list[tuple[str, int]]:
    """(GPU UUID, XID) of each XID event waiting in ``event_set``, without waiting."""
    timeout = _errors(nvml, ("Timeout",))
    out: list[tuple[str, int]] = []
    for _ in range(limit):
        try:
            data = nvml.nvmlEventSetWait(event_set, 0)
        except timeout:
            break
        if data.eventType & NVML_EVENT_XID_CRITICAL_ERROR:
            out.append((_text(nvml.nvmlDeviceGetUUID(data.device)), int(data.eventData)))
    return out


def read_devices(
    nvml: Any, event_set: Any = None, watched: Collection[str] = ()
) -> list[dict[str, Any]]:
    """Every device's readings, as plain JSON-able values.

    ``event_set`` is an NVML event set with XID events registered for the GPUs whose
    UUIDs are in ``watched``: those devices get ``xid_events``, the XIDs polled now.
    """
    devices = [
        _read_device(nvml, i, nvml.nvmlDeviceGetHandleByIndex(i))
        for i in range(nvml.nvmlDeviceGetCount())
    ]
    if event_set is not None:
        by_uuid = {d["uuid"]: d for d in devices}
        for uuid in watched:
            if uuid in by_uuid:
                by_uuid[uuid]["xid_events"] = []
        for uuid, xid in poll_xids(nvml, event_set):
            if uuid in by_uuid:
                by_uuid[uuid].setdefault("xid_events", []).append(xid)
    return devices


class GpuCollector:
    """NVIDIA GPUs and the processes on them; quiet where there is no GPU."""

    name: ClassVar[str] = "gpu"
    specs: ClassVar[list[MetricSpec]] = SPECS

    def __init__(
        self,
        nvml: Any = None,
        proc_root: str = "/proc",
        clock: Clock = time.time,
        hostname: str | None = None,
    ) -> None:
        self._nvml = nvml  # None: the real pynvml, imported in start()
        self._proc = proc_root
        self._clock = clock
        self._hostname = socket.gethostname() if hostname is None else hostname
        self._lib: Any = None  # the NVML module once initialised
        self._events: Any = None
        self._watched: set[str] = set()
        self._xids = XidHistory()
        self._last: list[dict[str, Any]] = []
        #: why GPU metrics are off (no library, no driver, no device); None while on
        self.off_reason: str | None = None

    def start(self) -> None:
        if self._lib is not None or self.off_reason is not None:
            return  # started already (a retried start), or off for good
        nvml: Any = self._nvml
        if nvml is None:
            try:
                nvml = importlib.import_module("pynvml")
            except ImportError:
                return self._turn_off("the pynvml module (nvidia-ml-py) is not installed")
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            if isinstance(exc, _errors(nvml, ABSENT)):
                return self._turn_off(f"nvmlInit: {exc}")
            raise CollectorError(f"gpu: nvmlInit failed: {exc}") from exc
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as exc:
            with contextlib.suppress(Exception):
                nvml.nvmlShutdown()
            raise CollectorError(f"gpu: nvmlDeviceGetCount failed: {exc}") from exc
        if count == 0:
            with contextlib.suppress(Exception):
                nvml.nvmlShutdown()
            return self._turn_off("NVML found no devices")
        self._lib = nvml
        self._watch_xids(count)

    def _turn_off(self, reason: str) -> None:
        self.off_reason = reason
        log.info("no NVIDIA GPU/driver found; GPU metrics off")

    def _watch_xids(self, count: int) -> None:
        """Register every GPU that allows it for XID events; the rest go without."""
        nvml = self._lib
        try:
            self._events = nvml.nvmlEventSetCreate()
        except nvml.NVMLError as exc:
            log.debug("gpu: no NVML event set, no XID events: %s", exc)
            return
        for i in range(count):
            try:
                h = nvml.nvmlDeviceGetHandleByIndex(i)
                nvml.nvmlDeviceRegisterEvents(h, NVML_EVENT_XID_CRITICAL_ERROR, self._events)
                self._watched.add(_text(nvml.nvmlDeviceGetUUID(h)))
            except nvml.NVMLError as exc:
                log.debug("gpu %d: XID events not available: %s", i, exc)
        if not self._watched:
            with contextlib.suppress(Exception):
                nvml.nvmlEventSetFree(self._events)
            self._events = None

    def collect(self) -> list[Sample]:
        nvml = self._lib
        if nvml is None:
            return []
        try:
            devices = read_devices(nvml, self._events, self._watched)
        except nvml.NVMLError as exc:
            raise CollectorError(f"gpu: NVML: {exc}") from exc
        self._xids.record(devices)
        self._last = devices
        return parse(
            devices,
            timestamp=self._clock(),
            hostname=self._hostname,
            cgroups=self._cgroups(devices),
            xids=self._xids,
        )

    def _cgroups(self, devices: Sequence[Mapping[str, Any]]) -> dict[int, str]:
        out: dict[int, str] = {}
        for pid in {p["pid"] for d in devices for p in d.get("processes", ())}:
            with contextlib.suppress(OSError):
                out[pid] = read_text(f"{self._proc}/{pid}/cgroup")
        return out

    def details(self) -> dict[str, Any]:
        """What the API shows: why metrics are off, or each GPU and what it cannot report."""
        return {
            "off_reason": self.off_reason,
            "devices": [
                {
                    "gpu": d["index"],
                    "UUID": d["uuid"],
                    "modelName": d["name"],
                    "not_supported": d["not_supported"],
                    "xid_events": d["uuid"] in self._watched,
                }
                for d in self._last
            ],
        }

    def close(self) -> None:
        nvml, self._lib = self._lib, None
        if nvml is None:
            return
        if self._events is not None:
            with contextlib.suppress(Exception):
                nvml.nvmlEventSetFree(self._events)
            self._events = None
        self._watched.clear()
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()
