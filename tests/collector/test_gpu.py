"""GpuCollector: parse on NVML readings of three boards, the cgroup → container table, a
fake NVML driving read_devices → parse end to end, the quiet no-GPU path, and (marker
``gpu``) the real collector against a real NVML."""

from __future__ import annotations

import copy
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml
import pytest

from fastmango.collector import gpu
from fastmango.collector.base import Collector
from fastmango.collector.gpu import (
    SPECS,
    THROTTLE_REASONS,
    GpuCollector,
    XidHistory,
    container_id,
    parse,
    read_devices,
)
from fastmango.errors import CollectorError
from fastmango.series import Sample, spec_index

FIXTURES = Path(__file__).parent.parent / "fixtures" / "nvml"
MiB = 1 << 20
HOST = "gpu-node-1"
OFF_MESSAGE = "no NVIDIA GPU/driver found; GPU metrics off"

Key = tuple[str, frozenset[tuple[str, str]]]


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return doc


def cgroups_of(doc: Mapping[str, Any]) -> dict[int, str]:
    return {int(pid): text for pid, text in doc["proc_cgroup"].items()}


def series(samples: list[Sample]) -> dict[Key, float]:
    """Samples by (name, labels), checking each against its declaration."""
    index = spec_index(SPECS)
    out: dict[Key, float] = {}
    for s in samples:
        assert s.name in index, s
        assert [k for k, _ in s.labels] == sorted(index[s.name].labels), s
        key = (s.name, frozenset(s.labels))
        assert key not in out, f"{key} appears twice"
        out[key] = s.value
    return out


def by_name(samples: list[Sample], name: str) -> list[Sample]:
    return [s for s in samples if s.name == name]


def device_labels(d: Mapping[str, Any]) -> dict[str, str]:
    return {
        "gpu": str(d["index"]),
        "UUID": d["uuid"],
        "pci_bus_id": d["pci_bus_id"],
        "device": f"nvidia{d['minor_number']}",
        "modelName": d["name"],
        "Hostname": HOST,
    }


def key(name: str, **labels: str) -> Key:
    return (name, frozenset(labels.items()))


def parse_fixture(name: str) -> tuple[dict[str, Any], dict[Key, float]]:
    doc = load(name)
    samples = parse(doc["devices"], timestamp=99.0, hostname=HOST, cgroups=cgroups_of(doc))
    assert {s.timestamp for s in samples} == {99.0}
    return doc["devices"][0], series(samples)


def test_fixtures_say_they_are_not_recordings() -> None:
    for path in sorted(FIXTURES.glob("*.json")):
        comment = json.loads(path.read_text())["_comment"]
        assert "not recorded from a device" in comment, path


# -- parse on each board ----------------------------------------------------------------


def test_parse_h100_under_load() -> None:
    d, got = parse_fixture("h100_sxm_load")
    lab = device_labels(d)
    assert lab["modelName"] == "NVIDIA H100 80GB HBM3" and lab["device"] == "nvidia0"
    expected = {
        "DCGM_FI_DEV_GPU_UTIL": 98,
        "DCGM_FI_DEV_MEM_COPY_UTIL": 61,
        "DCGM_FI_DEV_FB_TOTAL": 81559,  # MiB, as nvidia-smi and DCGM show an H100 80GB
        "DCGM_FI_DEV_FB_RESERVED": 552,
        "DCGM_FI_DEV_FB_USED": 77830,
        "DCGM_FI_DEV_FB_FREE": 3177,
        "DCGM_FI_DEV_GPU_TEMP": 67,
        "DCGM_FI_DEV_MEMORY_TEMP": 79,
        "DCGM_FI_DEV_POWER_USAGE": 652.318,  # mW → W
        "DCGM_FI_DEV_POWER_MGMT_LIMIT": 700.0,
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": 414725318822,  # mJ, as NVML gives it
        "DCGM_FI_DEV_SM_CLOCK": 1980,
        "DCGM_FI_DEV_MEM_CLOCK": 2619,
        "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS": 0,
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": 0,
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": 0,
        "DCGM_FI_DEV_XID_ERRORS": 0,
        "DCGM_FI_PROF_PCIE_TX_BYTES": 412350 * 1024,  # KB/s → bytes/s
        "DCGM_FI_PROF_PCIE_RX_BYTES": 2871200 * 1024,
    }
    for name, value in expected.items():
        assert got.pop(key(name, **lab)) == pytest.approx(value), name
    for reason in THROTTLE_REASONS:
        assert (
            got.pop(key("fastmango_gpu_throttle_reason", gpu="0", UUID=d["uuid"], reason=reason))
            == 0
        )
    proc = {"gpu": "0", "UUID": d["uuid"]}
    name = "fastmango_gpu_process_memory_bytes"
    assert got.pop(key(name, **proc, pid="48213", container="3f4e8a9c21b7")) == 73728 * MiB
    assert got.pop(key(name, **proc, pid="51877", container="")) == 4096 * MiB
    assert got == {}, "unexpected series"


def test_parse_a10g_idle_with_ecc() -> None:
    d, got = parse_fixture("a10g_idle_ecc")
    lab = device_labels(d)
    value = {name: v for (name, labels), v in got.items() if dict(labels) == lab}
    assert value["DCGM_FI_DEV_FB_TOTAL"] == 23028
    assert value["DCGM_FI_DEV_FB_USED"] == 0
    assert value["DCGM_FI_DEV_FB_FREE"] == 22731
    assert value["DCGM_FI_DEV_FB_RESERVED"] == 297
    assert value["DCGM_FI_DEV_POWER_USAGE"] == pytest.approx(9.183)
    assert value["DCGM_FI_DEV_POWER_MGMT_LIMIT"] == 300.0
    assert (value["DCGM_FI_DEV_SM_CLOCK"], value["DCGM_FI_DEV_MEM_CLOCK"]) == (210, 405)
    assert value["DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"] == 2
    assert value["DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"] == 0
    assert value["DCGM_FI_PROF_PCIE_RX_BYTES"] == 1024
    assert value["DCGM_FI_DEV_CLOCK_THROTTLE_REASONS"] == 1
    assert "DCGM_FI_DEV_MEMORY_TEMP" not in value  # GDDR6: NotSupported
    reasons = {
        dict(labels)["reason"]: v
        for (name, labels), v in got.items()
        if name == "fastmango_gpu_throttle_reason"
    }
    assert reasons == {r: float(r == "gpu_idle") for r in THROTTLE_REASONS}
    assert not any(name == "fastmango_gpu_process_memory_bytes" for name, _ in got)


def test_parse_t4_throttled_with_a_not_supported_field() -> None:
    d, got = parse_fixture("t4_throttled")
    lab = device_labels(d)
    value = {name: v for (name, labels), v in got.items() if dict(labels) == lab}
    assert d["not_supported"] == ["temperature_memory"]
    assert "DCGM_FI_DEV_MEMORY_TEMP" not in value
    # ECC is off on this board: no ECC series at all
    assert "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL" not in value
    assert "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL" not in value
    # 9001.375 MiB used, 6108.6 MiB free: whole MiB, rounded down like DCGM
    assert (value["DCGM_FI_DEV_FB_USED"], value["DCGM_FI_DEV_FB_FREE"]) == (9001, 6108)
    assert value["DCGM_FI_DEV_FB_TOTAL"] == 15360
    assert value["DCGM_FI_DEV_POWER_MGMT_LIMIT"] == 70.0
    assert value["DCGM_FI_DEV_POWER_USAGE"] == pytest.approx(61.287)
    assert value["DCGM_FI_DEV_GPU_TEMP"] == 86
    assert value["DCGM_FI_DEV_SM_CLOCK"] == 795
    assert value["DCGM_FI_DEV_CLOCK_THROTTLE_REASONS"] == 0x28
    reasons = {
        dict(labels)["reason"]
        for (name, labels), v in got.items()
        if name == "fastmango_gpu_throttle_reason" and v == 1
    }
    assert reasons == {"hw_slowdown", "sw_thermal"}
    [(labels, used)] = [
        (dict(lb), v)
        for (name, lb), v in got.items()
        if name == "fastmango_gpu_process_memory_bytes"
    ]
    assert labels == {"gpu": "0", "UUID": d["uuid"], "pid": "30512", "container": "8d1b7e2f4c6a"}
    assert used == 9000 * MiB


def test_fixture_samples_expose_in_text_and_openmetrics() -> None:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
    from prometheus_client.parser import text_string_to_metric_families

    from fastmango.agent import catalogue
    from fastmango.agent.exporter import Exporter

    samples: list[Sample] = []
    for name in ("h100_sxm_load", "a10g_idle_ecc", "t4_throttled"):
        doc = load(name)
        samples += parse(doc["devices"], timestamp=1.0, hostname=HOST, cgroups=cgroups_of(doc))
    t4 = {**load("t4_throttled")["devices"][0], "index": 1, "uuid": "GPU-other", "xid_events": [79]}
    samples += parse([t4], timestamp=1.0, hostname=HOST)
    exporter = Exporter(catalogue.index())
    exporter.update("gpu", samples)
    index = catalogue.index()
    for accept, parser in (("", text_string_to_metric_families),
                           ("application/openmetrics-text", om_parse)):  # fmt: skip
        body, _, _ = exporter.body(accept)
        seen = 0
        for fam in parser(body.decode()):
            for s in fam.samples:
                spec = index[s.name]
                assert fam.type == spec.kind and set(s.labels) == set(spec.labels), s.name
                seen += 1
        assert seen == len(samples)


def test_parse_process_without_readable_cgroup_or_memory() -> None:
    d = copy.deepcopy(load("h100_sxm_load")["devices"][0])
    d["processes"] = [
        {"pid": 7, "used_memory": 1 * MiB, "type": "compute"},
        {"pid": 7, "used_memory": 1 * MiB, "type": "graphics"},  # one process, both lists
        {"pid": 8, "used_memory": None, "type": "compute"},  # NVML cannot say
    ]
    got = series(parse([d], timestamp=1.0, hostname=HOST))
    procs = {k: v for k, v in got.items() if k[0] == "fastmango_gpu_process_memory_bytes"}
    assert procs == {
        key(
            "fastmango_gpu_process_memory_bytes",
            gpu="0",
            UUID=d["uuid"],
            pid="7",
            container="unknown",
        ): MiB,
    }


def test_xid_history_keeps_last_and_counts() -> None:
    h = XidHistory()
    h.record([{"uuid": "GPU-a", "xid_events": [13, 79]}, {"uuid": "GPU-b"}])
    h.record([{"uuid": "GPU-a", "xid_events": [79]}])
    assert h.last == {"GPU-a": 79}
    assert h.counts == {("GPU-a", 13): 1, ("GPU-a", 79): 2}


# -- container ids from /proc/<pid>/cgroup -------------------------------------------------

DOCKER_ID = "f1e2d3c4b5a6978877665544332211aabbccddeeff00112233445566778899aa"
CTR_ID = "0a9b8c7d6e5f40312233445566778899aabbccddeeff0011223344556677889a"
POD = "pod7d3e1c2a-4b5f-4e6d-8a9b-0c1d2e3f4a5b"
POD_SLICE = "kubepods-burstable-pod7d3e1c2a_4b5f_4e6d_8a9b_0c1d2e3f4a5b.slice"

V1_DOCKER = "".join(
    f"{n}:{ctl}:/docker/{DOCKER_ID}\n"
    for n, ctl in [
        (11, "pids"),
        (10, "memory"),
        (9, "devices"),
        (4, "cpu,cpuacct"),
        (1, "name=systemd"),
    ]
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(V1_DOCKER, DOCKER_ID[:12], id="docker-cgroup-v1"),
        pytest.param(V1_DOCKER + "0::/\n", DOCKER_ID[:12], id="docker-v1-on-hybrid-host"),
        pytest.param(
            f"0::/system.slice/docker-{DOCKER_ID}.scope\n",
            DOCKER_ID[:12],
            id="docker-cgroup-v2-systemd",
        ),
        pytest.param(f"0::/docker/{DOCKER_ID}\n", DOCKER_ID[:12], id="docker-cgroup-v2-cgroupfs"),
        pytest.param(
            f"0::/system.slice/docker-{DOCKER_ID}.scope/init.scope\n",
            DOCKER_ID[:12],
            id="docker-systemd-inside",
        ),
        pytest.param(
            f"0::/kubepods.slice/kubepods-burstable.slice/{POD_SLICE}/cri-containerd-{CTR_ID}.scope\n",
            CTR_ID[:12],
            id="kubernetes-containerd-v2",
        ),
        pytest.param(
            f"0::/kubepods.slice/kubepods-burstable.slice/{POD_SLICE}/crio-{CTR_ID}.scope\n",
            CTR_ID[:12],
            id="kubernetes-crio-v2",
        ),
        pytest.param(
            f"12:memory:/kubepods/burstable/{POD}/{CTR_ID}\n"
            f"3:cpu,cpuacct:/kubepods/burstable/{POD}/{CTR_ID}\n"
            f"1:name=systemd:/kubepods/burstable/{POD}/{CTR_ID}\n",
            CTR_ID[:12],
            id="kubernetes-cgroupfs-v1",
        ),
        pytest.param(
            f"0::/system.slice/cri-containerd-{CTR_ID}.scope\n", CTR_ID[:12], id="containerd-plain"
        ),
        pytest.param(
            "0::/user.slice/user-1000.slice/user@1000.service/user.slice/"
            f"libpod-{CTR_ID}.scope/container\n",
            CTR_ID[:12],
            id="podman-rootless",
        ),
        pytest.param("0::/user.slice/user-1000.slice/session-3.scope\n", "", id="host-session"),
        pytest.param(
            "12:memory:/system.slice/nvidia-persistenced.service\n"
            "1:name=systemd:/system.slice/nvidia-persistenced.service\n0::/\n",
            "",
            id="host-service-v1",
        ),
        pytest.param(f"0::/system.slice/crio-conmon-{CTR_ID}.scope\n", "", id="crio-conmon"),
        pytest.param(
            f"0::/kubepods.slice/kubepods-burstable.slice/{POD_SLICE}\n", "", id="pod-level-cgroup"
        ),
        pytest.param("", "", id="empty"),
    ],
)
def test_container_id(text: str, expected: str) -> None:
    assert container_id(text) == expected


# -- a fake NVML, answering from a fixture's readings --------------------------------------


class NVMLError(Exception):
    def __init__(self, value: int = 999) -> None:
        super().__init__(value)
        self.value = value


# pynvml's class names
class NVMLError_NotSupported(NVMLError):
    pass


class NVMLError_FunctionNotFound(NVMLError):
    pass


class NVMLError_Timeout(NVMLError):
    pass


class NVMLError_LibraryNotFound(NVMLError):
    pass


class NVMLError_DriverNotLoaded(NVMLError):
    pass


class NVMLError_LibRmVersionMismatch(NVMLError):
    pass


class NVMLError_GpuIsLost(NVMLError):
    pass


class Handle:
    def __init__(self, index: int) -> None:
        self.index = index


class FakeNVML:
    """pynvml's functions over readings: NotSupported for whatever a reading lacks.

    Constants arriving as arguments are checked against pynvml's own, so the collector's
    copies of NVML's ABI values are held to the real ones.
    """

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_FunctionNotFound = NVMLError_FunctionNotFound
    NVMLError_Timeout = NVMLError_Timeout
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_LibRmVersionMismatch = NVMLError_LibRmVersionMismatch
    NVMLError_GpuIsLost = NVMLError_GpuIsLost

    def __init__(
        self,
        devices: list[dict[str, Any]],
        init_error: NVMLError | None = None,
        event_reasons: bool = True,
    ) -> None:
        self.devices = copy.deepcopy(devices)
        self.init_error = init_error
        self.event_reasons = event_reasons
        self.handles = [Handle(i) for i in range(len(devices))]
        self.pending: list[tuple[int, int]] = []  # (device index, xid)
        self.registered: set[int] = set()
        self.calls: list[str] = []
        self.fail: dict[str, NVMLError] = {}  # function name → error it raises

    def _d(self, h: Handle, fn: str, key: str | None = None) -> Any:
        if fn in self.fail:
            raise self.fail[fn]
        d = self.devices[h.index]
        if key is None:
            return d
        if key not in d:
            raise NVMLError_NotSupported(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return d[key]

    def nvmlInit(self) -> None:
        self.calls.append("nvmlInit")
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self) -> None:
        self.calls.append("nvmlShutdown")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> Handle:
        return self.handles[i]

    def nvmlDeviceGetUUID(self, h: Handle) -> str:
        return str(self._d(h, "uuid", "uuid"))

    def nvmlDeviceGetName(self, h: Handle) -> str:
        return str(self._d(h, "name", "name"))

    def nvmlDeviceGetPciInfo(self, h: Handle) -> SimpleNamespace:
        return SimpleNamespace(busId=self._d(h, "pci", "pci_bus_id").encode())  # bytes, as ctypes

    def nvmlDeviceGetMinorNumber(self, h: Handle) -> int:
        return int(self._d(h, "minor", "minor_number"))

    def nvmlDeviceGetUtilizationRates(self, h: Handle) -> SimpleNamespace:
        return SimpleNamespace(**self._d(h, "nvmlDeviceGetUtilizationRates", "utilization"))

    def nvmlDeviceGetMemoryInfo(self, h: Handle, version: int | None = None) -> SimpleNamespace:
        mem = dict(self._d(h, "nvmlDeviceGetMemoryInfo", "memory"))
        if version is None or "reserved" not in mem:
            if version is not None:
                raise NVMLError_FunctionNotFound(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
            mem.pop("reserved", None)
            return SimpleNamespace(**mem)
        assert version == pynvml.nvmlMemory_v2
        return SimpleNamespace(version=version, **mem)

    def nvmlDeviceGetTemperature(self, h: Handle, sensor: int) -> int:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        return int(self._d(h, "nvmlDeviceGetTemperature", "temperature_gpu"))

    def nvmlDeviceGetFieldValues(self, h: Handle, ids: list[int]) -> list[SimpleNamespace]:
        assert ids == [pynvml.NVML_FI_DEV_MEMORY_TEMP]
        d = self._d(h, "nvmlDeviceGetFieldValues")
        if "temperature_memory" not in d:
            return [
                SimpleNamespace(
                    nvmlReturn=pynvml.NVML_ERROR_NOT_SUPPORTED,
                    valueType=0,
                    value=SimpleNamespace(dVal=0.0),
                )
            ]
        return [
            SimpleNamespace(
                nvmlReturn=pynvml.NVML_SUCCESS,
                valueType=pynvml.NVML_VALUE_TYPE_UNSIGNED_INT,
                value=SimpleNamespace(uiVal=d["temperature_memory"]),
            )
        ]

    def nvmlDeviceGetPowerUsage(self, h: Handle) -> int:
        return int(self._d(h, "nvmlDeviceGetPowerUsage", "power_usage_mw"))

    def nvmlDeviceGetPowerManagementLimit(self, h: Handle) -> int:
        return int(self._d(h, "nvmlDeviceGetPowerManagementLimit", "power_limit_mw"))

    def nvmlDeviceGetTotalEnergyConsumption(self, h: Handle) -> int:
        return int(self._d(h, "nvmlDeviceGetTotalEnergyConsumption", "energy_mj"))

    def nvmlDeviceGetClockInfo(self, h: Handle, clock: int) -> int:
        key = {pynvml.NVML_CLOCK_SM: "clock_sm_mhz", pynvml.NVML_CLOCK_MEM: "clock_mem_mhz"}
        return int(self._d(h, "nvmlDeviceGetClockInfo", key[clock]))

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: Handle) -> int:
        if not self.event_reasons:  # a driver older than 535
            raise NVMLError_FunctionNotFound(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        return int(self._d(h, "nvmlDeviceGetCurrentClocksEventReasons", "throttle_reasons"))

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: Handle) -> int:
        self.calls.append("nvmlDeviceGetCurrentClocksThrottleReasons")
        return int(self._d(h, "nvmlDeviceGetCurrentClocksThrottleReasons", "throttle_reasons"))

    def nvmlDeviceGetEccMode(self, h: Handle) -> list[int]:
        mode = int(self._d(h, "nvmlDeviceGetEccMode", "ecc_mode"))
        return [mode, mode]

    def nvmlDeviceGetTotalEccErrors(self, h: Handle, error_type: int, counter: int) -> int:
        assert counter == pynvml.NVML_VOLATILE_ECC
        key = {
            pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED: "ecc_sbe_volatile",
            pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED: "ecc_dbe_volatile",
        }
        assert self._d(h, "ecc")["ecc_mode"] == 1, "ECC counts read while ECC is off"
        return int(self._d(h, "nvmlDeviceGetTotalEccErrors", key[error_type]))

    def nvmlDeviceGetPcieThroughput(self, h: Handle, counter: int) -> int:
        key = {
            pynvml.NVML_PCIE_UTIL_TX_BYTES: "pcie_tx_kbps",
            pynvml.NVML_PCIE_UTIL_RX_BYTES: "pcie_rx_kbps",
        }
        return int(self._d(h, "nvmlDeviceGetPcieThroughput", key[counter]))

    def _processes(self, h: Handle, kind: str) -> list[SimpleNamespace]:
        procs = self._d(h, f"processes_{kind}", "processes")
        return [
            SimpleNamespace(pid=p["pid"], usedGpuMemory=p["used_memory"])
            for p in procs
            if p["type"] == kind
        ]

    def nvmlDeviceGetComputeRunningProcesses(self, h: Handle) -> list[SimpleNamespace]:
        return self._processes(h, "compute")

    def nvmlDeviceGetGraphicsRunningProcesses(self, h: Handle) -> list[SimpleNamespace]:
        return self._processes(h, "graphics")

    def nvmlEventSetCreate(self) -> str:
        return "event-set"

    def nvmlDeviceRegisterEvents(self, h: Handle, types: int, event_set: str) -> None:
        assert types == pynvml.nvmlEventTypeXidCriticalError and event_set == "event-set"
        self._d(h, "nvmlDeviceRegisterEvents")
        self.registered.add(h.index)

    def nvmlEventSetWait(self, event_set: str, timeout_ms: int) -> SimpleNamespace:
        assert timeout_ms == 0, "collect must not wait for events"
        while self.pending:
            index, xid = self.pending.pop(0)
            if index in self.registered:
                return SimpleNamespace(
                    device=self.handles[index],
                    eventType=0x8,
                    eventData=xid,
                    gpuInstanceId=0,
                    computeInstanceId=0,
                )
        raise NVMLError_Timeout(pynvml.NVML_ERROR_TIMEOUT)

    def nvmlEventSetFree(self, event_set: str) -> None:
        self.calls.append("nvmlEventSetFree")


def test_collector_constants_are_nvmls() -> None:
    assert pynvml.nvmlMemory_v2 == gpu.NVML_MEMORY_V2
    assert pynvml.nvmlEventTypeXidCriticalError == gpu.NVML_EVENT_XID_CRITICAL_ERROR
    assert pynvml.NVML_FI_DEV_MEMORY_TEMP == gpu.NVML_FI_DEV_MEMORY_TEMP
    nvml_names = {
        "gpu_idle": "GpuIdle",
        "applications_clocks": "ApplicationsClocksSetting",
        "sw_power_cap": "SwPowerCap",
        "hw_slowdown": "HwSlowdown",
        "sync_boost": "SyncBoost",
        "sw_thermal": "SwThermalSlowdown",
        "hw_thermal": "HwThermalSlowdown",
        "hw_power_brake": "HwPowerBrakeSlowdown",
    }
    assert set(nvml_names) == set(THROTTLE_REASONS)
    for reason, attr in nvml_names.items():
        assert THROTTLE_REASONS[reason] == getattr(pynvml, f"nvmlClocksEventReason{attr}")
    members = [name for name, _ in pynvml.c_nvmlValue_t._fields_]
    assert list(gpu.VALUE_MEMBERS) == members


@pytest.mark.parametrize("name", ["h100_sxm_load", "a10g_idle_ecc", "t4_throttled"])
def test_read_devices_returns_the_readings_nvml_gives(name: str) -> None:
    devices = load(name)["devices"]
    fake = FakeNVML(devices)
    fake.registered = set(range(len(devices)))
    got = read_devices(fake, "event-set", [d["uuid"] for d in devices])
    assert got == devices
    json.dumps(got)  # plain values only


def test_read_devices_on_a_driver_without_event_reasons_or_memory_v2() -> None:
    d = copy.deepcopy(load("h100_sxm_load")["devices"][0])
    del d["memory"]["reserved"]  # this fake then answers version 2 with FunctionNotFound
    fake = FakeNVML([d], event_reasons=False)
    [got] = read_devices(fake)
    assert got["throttle_reasons"] == 0
    assert "nvmlDeviceGetCurrentClocksThrottleReasons" in fake.calls
    assert set(got["memory"]) == {"total", "free", "used"}
    assert "xid_events" not in got  # no event set: no XID series
    names = {s.name for s in parse([got], timestamp=1.0, hostname=HOST)}
    assert "DCGM_FI_DEV_FB_RESERVED" not in names and "DCGM_FI_DEV_XID_ERRORS" not in names
    assert "DCGM_FI_DEV_FB_USED" in names


@pytest.fixture
def proc_root(tmp_path: Path) -> Path:
    for pid, text in {
        48213: f"0::/system.slice/docker-{DOCKER_ID}.scope\n",
        51877: "0::/user.slice/user-1000.slice/session-7.scope\n",
    }.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cgroup").write_text(text)
    return tmp_path


@pytest.fixture
def two_gpus() -> Iterator[FakeNVML]:
    h100 = load("h100_sxm_load")["devices"][0]
    t4 = copy.deepcopy(load("t4_throttled")["devices"][0])
    t4["index"], t4["minor_number"] = 1, 1
    del t4["power_limit_mw"]  # nvmlDeviceGetPowerManagementLimit answers NotSupported
    t4["processes"].append({"pid": 999999, "used_memory": 2 * MiB, "type": "graphics"})
    yield FakeNVML([h100, t4])


def test_fake_nvml_end_to_end_with_xid_and_not_supported(
    two_gpus: FakeNVML, proc_root: Path
) -> None:
    fake = two_gpus
    c = GpuCollector(nvml=fake, proc_root=str(proc_root), clock=lambda: 5.0, hostname=HOST)
    assert isinstance(c, Collector)
    c.start()
    c.start()  # a retried start does not initialise twice
    assert fake.calls.count("nvmlInit") == 1 and fake.registered == {0, 1}
    h100, t4 = (device_labels(d) for d in fake.devices)
    u0, u1 = h100["UUID"], t4["UUID"]

    fake.pending = [(0, 79)]
    got = series(c.collect())
    assert got[key("DCGM_FI_DEV_XID_ERRORS", **h100)] == 79
    assert got[key("DCGM_FI_DEV_XID_ERRORS", **t4)] == 0
    assert got[key("fastmango_gpu_xid_errors_total", gpu="0", UUID=u0, xid="79")] == 1
    assert not any(k[0] == "fastmango_gpu_xid_errors_total" and ("UUID", u1) in k[1] for k in got)
    # the one call that is not supported drops its series only
    assert key("DCGM_FI_DEV_POWER_MGMT_LIMIT", **h100) in got
    assert key("DCGM_FI_DEV_POWER_MGMT_LIMIT", **t4) not in got
    assert got[key("DCGM_FI_DEV_POWER_USAGE", **t4)] == pytest.approx(61.287)
    assert got[key("DCGM_FI_DEV_GPU_UTIL", **t4)] == 100
    assert t4["device"] == "nvidia1"
    # processes: container from <proc_root>/<pid>/cgroup; a PID it cannot see is "unknown"
    mem = "fastmango_gpu_process_memory_bytes"
    assert got[key(mem, gpu="0", UUID=u0, pid="48213", container=DOCKER_ID[:12])] == 73728 * MiB
    assert got[key(mem, gpu="0", UUID=u0, pid="51877", container="")] == 4096 * MiB
    assert got[key(mem, gpu="1", UUID=u1, pid="999999", container="unknown")] == 2 * MiB
    assert c.details()["devices"][1]["not_supported"] == ["temperature_memory", "power_limit_mw"]

    got = series(c.collect())  # nothing new: the last XID stays, the count too
    assert got[key("DCGM_FI_DEV_XID_ERRORS", **h100)] == 79
    assert got[key("fastmango_gpu_xid_errors_total", gpu="0", UUID=u0, xid="79")] == 1
    fake.pending = [(1, 48), (0, 79), (0, 13)]
    got = series(c.collect())
    assert got[key("DCGM_FI_DEV_XID_ERRORS", **h100)] == 13
    assert got[key("DCGM_FI_DEV_XID_ERRORS", **t4)] == 48
    assert got[key("fastmango_gpu_xid_errors_total", gpu="0", UUID=u0, xid="79")] == 2
    assert got[key("fastmango_gpu_xid_errors_total", gpu="0", UUID=u0, xid="13")] == 1
    assert got[key("fastmango_gpu_xid_errors_total", gpu="1", UUID=u1, xid="48")] == 1

    c.close()
    assert fake.calls[-2:] == ["nvmlEventSetFree", "nvmlShutdown"]
    c.close()  # twice is harmless


def test_a_device_without_xid_events_has_no_xid_series(two_gpus: FakeNVML) -> None:
    two_gpus.fail["nvmlDeviceRegisterEvents"] = NVMLError_NotSupported(3)
    c = GpuCollector(nvml=two_gpus, proc_root="/nonexistent", hostname=HOST)
    c.start()
    names = {s.name for s in c.collect()}
    assert "DCGM_FI_DEV_XID_ERRORS" not in names and "DCGM_FI_DEV_GPU_UTIL" in names
    c.close()


def test_other_nvml_errors_fail_the_collection(two_gpus: FakeNVML) -> None:
    c = GpuCollector(nvml=two_gpus, hostname=HOST)
    c.start()
    two_gpus.fail["nvmlDeviceGetPowerUsage"] = NVMLError_GpuIsLost(15)
    with pytest.raises(CollectorError, match="gpu: NVML"):
        c.collect()
    c.close()


def test_a_broken_driver_is_an_error_not_absence() -> None:
    fake = FakeNVML([], init_error=NVMLError_LibRmVersionMismatch(18))
    with pytest.raises(CollectorError, match="nvmlInit"):
        GpuCollector(nvml=fake, hostname=HOST).start()


# -- no GPU: quiet, logged once ------------------------------------------------------------


def off_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "fastmango.collector.gpu"]


def assert_quietly_off(c: GpuCollector, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="fastmango.collector.gpu")
    for _ in range(3):
        c.start()
        assert c.collect() == []
    c.close()
    assert c.collect() == []
    [record] = off_records(caplog)
    assert record.levelno == logging.INFO and record.getMessage() == OFF_MESSAGE
    assert c.off_reason


def test_no_driver_with_the_real_pynvml(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The collector as the agent builds it, over the real pynvml module. This machine has
    no libnvidia-ml; the loader is made to fail too, so the test means the same on a GPU
    machine."""

    def no_library(*args: object, **kwargs: object) -> object:
        raise OSError("libnvidia-ml.so.1: cannot open shared object file")

    monkeypatch.setattr(pynvml, "nvmlLib", None)
    monkeypatch.setattr(pynvml, "CDLL", no_library)
    with pytest.raises(pynvml.NVMLError_LibraryNotFound):
        pynvml.nvmlInit()
    c = GpuCollector()
    assert_quietly_off(c, caplog)
    assert "NVML Shared Library Not Found" in (c.off_reason or "")


def test_no_pynvml_module(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    assert_quietly_off(GpuCollector(hostname=HOST), caplog)


@pytest.mark.parametrize("error", [NVMLError_LibraryNotFound(12), NVMLError_DriverNotLoaded(9)])
def test_no_driver(error: NVMLError, caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeNVML([], init_error=error)
    assert_quietly_off(GpuCollector(nvml=fake, hostname=HOST), caplog)
    assert fake.calls == ["nvmlInit"]


def test_no_devices(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeNVML([])
    c = GpuCollector(nvml=fake, hostname=HOST)
    assert_quietly_off(c, caplog)
    assert fake.calls == ["nvmlInit", "nvmlShutdown"]
    assert c.details() == {"off_reason": "NVML found no devices", "devices": []}


# -- a real GPU ----------------------------------------------------------------------------


@pytest.mark.gpu
def test_real_nvml() -> None:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pytest.skip("no NVIDIA GPU/driver")
    try:
        count = pynvml.nvmlDeviceGetCount()
    finally:
        pynvml.nvmlShutdown()
    c = GpuCollector()
    c.start()
    try:
        samples = c.collect()
        details = c.details()
    finally:
        c.close()
    assert c.off_reason is None
    got = series(samples)
    for index in range(count):
        values = {name: v for (name, labels), v in got.items() if ("gpu", str(index)) in labels}
        for name in (
            "DCGM_FI_DEV_GPU_UTIL",
            "DCGM_FI_DEV_FB_USED",
            "DCGM_FI_DEV_FB_FREE",
            "DCGM_FI_DEV_FB_TOTAL",
            "DCGM_FI_DEV_GPU_TEMP",
            "DCGM_FI_DEV_SM_CLOCK",
            "DCGM_FI_DEV_MEM_CLOCK",
            "DCGM_FI_DEV_POWER_USAGE",
            "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
        ):
            assert name in values, (index, name, details)
        assert 0 <= values["DCGM_FI_DEV_GPU_UTIL"] <= 100
        assert values["DCGM_FI_DEV_FB_TOTAL"] > 1000  # MiB
        assert values["DCGM_FI_DEV_FB_USED"] <= values["DCGM_FI_DEV_FB_TOTAL"]
        assert 0 < values["DCGM_FI_DEV_POWER_USAGE"] < 2000  # W, not mW
        assert values["DCGM_FI_DEV_SM_CLOCK"] > 0
    for s in by_name(samples, "DCGM_FI_DEV_GPU_UTIL"):
        labels = s.label_dict
        assert labels["UUID"].startswith(("GPU-", "MIG-")) and labels["device"].startswith("nvidia")
        assert labels["pci_bus_id"].count(":") == 2
