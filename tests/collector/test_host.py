"""HostCollector: parsers on recorded /proc files, the collector over a fixture tree and
on this machine."""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path

import psutil
import pytest

from fastmango.collector.base import Collector
from fastmango.collector.host import (
    CPU_MODES,
    SPECS,
    DiskStats,
    HostCollector,
    Mount,
    parse_diskstats,
    parse_file_nr,
    parse_loadavg,
    parse_meminfo,
    parse_net_dev,
    parse_proc_stat,
    psutil_partitions,
    select_mounts,
)
from fastmango.errors import CollectorError
from fastmango.series import Sample, spec_index

FIXTURES = Path(__file__).parent.parent / "fixtures" / "host"
PROC = FIXTURES / "proc"


def by_key(samples: list[Sample]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, s.labels): s.value for s in samples}


def assert_declared(samples: list[Sample]) -> None:
    index = spec_index(SPECS)
    for s in samples:
        assert s.name in index, s.name
        assert [k for k, _ in s.labels] == sorted(index[s.name].labels), s


# -- parsers --------------------------------------------------------------------------------


def test_parse_proc_stat_recorded() -> None:
    st = parse_proc_stat((PROC / "stat").read_text(), ticks_per_second=100)
    assert set(st.cpu_seconds) == {"0", "1"}  # the "cpu" sum line is not a core
    assert st.cpu_seconds["0"] == (32.68, 0.0, 16.39, 661.77, 2.22, 0.0, 0.16, 5.12)
    assert st.context_switches == 322818
    assert st.forks == 4881
    assert (st.procs_running, st.procs_blocked) == (1, 0)
    assert st.boot_time == 1795749476


def test_parse_proc_stat_pads_short_cpu_lines() -> None:
    text = "cpu  1 2 3 4\ncpu0 100 0 50 1000 5\nctxt 1\nbtime 2\nprocesses 3\n"
    text += "procs_running 4\nprocs_blocked 5\n"
    st = parse_proc_stat(text, ticks_per_second=100)
    assert st.cpu_seconds == {"0": (1.0, 0.0, 0.5, 10.0, 0.05, 0.0, 0.0, 0.0)}


def test_parse_meminfo_recorded() -> None:
    info = parse_meminfo((PROC / "meminfo").read_text())
    assert info["MemTotal"] == 24684096 * 1024
    assert info["MemAvailable"] == 24344736 * 1024
    assert info["Cached"] == 160556 * 1024
    assert info["SwapTotal"] == 0
    assert info["HugePages_Total"] == 0  # a count, no kB
    assert info["Hugepagesize"] == 2048 * 1024


def test_parse_loadavg_and_file_nr() -> None:
    assert parse_loadavg((PROC / "loadavg").read_text()) == (0.19, 0.16, 0.10)
    assert parse_file_nr((PROC / "sys/fs/file-nr").read_text()) == (345, 2466193)


def test_parse_diskstats_recorded() -> None:
    disks = parse_diskstats((PROC / "diskstats").read_text())
    assert disks["vda"] == DiskStats(34405, 2436938 * 512, 13606, 4347448 * 512, 13.768)
    assert {"loop0", "zram0"} <= set(disks)  # excluded by the collector, not the parser


def test_parse_net_dev_recorded() -> None:
    dev = parse_net_dev((PROC / "net/dev").read_text())
    assert set(dev) == {"lo", "ifb0", "ifb1", "eth0"}
    assert dev["eth0"] == (183346558, 3710, 0, 0, 178796, 1953, 0, 0)


def test_select_mounts_follows_node_exporter_defaults() -> None:
    rows = [
        ("proc", "/proc", "proc", "rw"),
        ("tmpfs", "/dev/shm", "tmpfs", "rw"),
        ("/dev/vda1", "/", "ext4", "rw,relatime"),
        ("/dev/vda1", "/", "ext4", "rw,relatime"),  # mounted twice: once
        ("/dev/vda2", "/boot", "ext4", "ro,relatime"),
        ("overlay", "/var/lib/docker/overlay2/abc/merged", "overlay", "rw"),
        ("/dev/vda1", "/var/lib/docker", "ext4", "rw"),  # the directory itself stays
        ("tmpfs", "/run/credentials/systemd-journald.service", "tmpfs", "ro"),
        ("tmpfs", "/run", "tmpfs", "rw"),
        ("cgroup2", "/sys/fs/cgroup", "cgroup2", "rw"),
        ("nsfs", "/run/netns/x", "nsfs", "rw"),
        ("server:/export", "/mnt/data", "nfs4", "rw"),
        ("/dev/loop0", "/snap/core/1", "squashfs", "ro"),
    ]
    assert select_mounts(rows) == [
        Mount("/dev/vda1", "/", "ext4", False),
        Mount("/dev/vda2", "/boot", "ext4", True),
        Mount("/dev/vda1", "/var/lib/docker", "ext4", False),
        Mount("tmpfs", "/run", "tmpfs", False),
        Mount("server:/export", "/mnt/data", "nfs4", False),
    ]


# -- the collector over the fixture tree ----------------------------------------------------


def fixture_collector(partitions: list[tuple[str, str, str, str]]) -> HostCollector:
    return HostCollector(
        proc_root=str(PROC),
        sys_root=str(FIXTURES / "sys"),
        clock=lambda: 1234.5,
        partitions=lambda: partitions,
        ticks_per_second=100,
    )


def test_collect_over_fixture_tree(tmp_path: Path) -> None:
    bad = str(tmp_path / "gone")  # statvfs fails: reported, the rest goes on
    c = fixture_collector([("/dev/vda", "/", "ext4", "rw"), ("srv:/x", bad, "nfs", "rw")])
    assert isinstance(c, Collector)
    samples = c.collect()
    assert_declared(samples)
    assert {s.timestamp for s in samples} == {1234.5}
    v = by_key(samples)
    assert v[("node_cpu_seconds_total", (("cpu", "1"), ("mode", "idle")))] == 628.63
    assert len([s for s in samples if s.name == "node_cpu_seconds_total"]) == 16
    assert v[("node_memory_MemTotal_bytes", ())] == 24684096 * 1024
    assert v[("node_load15", ())] == 0.10
    assert v[("node_filefd_allocated", ())] == 345
    assert v[("node_context_switches_total", ())] == 322818
    assert v[("node_boot_time_seconds", ())] == 1795749476
    assert v[("node_processes_pids", ())] == 0  # no pid directories in the fixture
    disks = {s.label_dict["device"] for s in samples if s.name.startswith("node_disk_")}
    assert disks == {"vda"}  # loop* and zram* are excluded
    assert v[("node_disk_io_time_seconds_total", (("device", "vda"),))] == 13.768
    assert v[("node_network_receive_bytes_total", (("device", "eth0"),))] == 183346558
    assert v[("node_network_up", (("device", "eth0"),))] == 1
    assert v[("node_network_up", (("device", "lo"),))] == 0  # operstate "unknown"
    root = (("device", "/dev/vda"), ("fstype", "ext4"), ("mountpoint", "/"))
    gone = (("device", "srv:/x"), ("fstype", "nfs"), ("mountpoint", bad))
    assert v[("node_filesystem_device_error", root)] == 0
    assert v[("node_filesystem_size_bytes", root)] > 0
    assert v[("node_filesystem_device_error", gone)] == 1
    assert ("node_filesystem_size_bytes", gone) not in v


def test_hanging_statvfs_is_skipped_while_it_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    real_statvfs = os.statvfs
    entered, release = threading.Event(), threading.Event()

    def statvfs(path: str) -> os.statvfs_result:
        if path == "/hangs":
            entered.set()
            release.wait(5)
        return real_statvfs("/")

    monkeypatch.setattr(os, "statvfs", statvfs)
    c = fixture_collector([("srv:/x", "/hangs", "nfs", "rw"), ("/dev/vda", "/", "ext4", "rw")])
    hangs = (("device", "srv:/x"), ("fstype", "nfs"), ("mountpoint", "/hangs"))
    first: list[Sample] = []
    worker = threading.Thread(target=lambda: first.extend(c.collect()))
    worker.start()
    try:
        assert entered.wait(5)
        v = by_key(c.collect())  # the first collection is still stuck in statvfs
        assert v[("node_filesystem_device_error", hangs)] == 1
        assert ("node_filesystem_size_bytes", hangs) not in v
        root = (("device", "/dev/vda"), ("fstype", "ext4"), ("mountpoint", "/"))
        assert v[("node_filesystem_device_error", root)] == 0
    finally:
        release.set()
        worker.join(5)
    assert by_key(first)[("node_filesystem_device_error", hangs)] == 0  # it did return
    assert by_key(c.collect())[("node_filesystem_device_error", hangs)] == 0


def test_missing_proc_file_raises_collector_error(tmp_path: Path) -> None:
    c = HostCollector(proc_root=str(tmp_path), partitions=list)
    with pytest.raises(CollectorError, match="not found"):
        c.start()
    with pytest.raises(CollectorError, match="cannot read"):
        c.collect()


# -- the collector on this machine ----------------------------------------------------------


def test_real_collect_matches_psutil() -> None:
    c = HostCollector()
    c.start()
    samples = c.collect()
    c.close()
    assert_declared(samples)
    v = by_key(samples)

    cpu = [s.label_dict for s in samples if s.name == "node_cpu_seconds_total"]
    assert {d["mode"] for d in cpu} == set(CPU_MODES)
    assert {d["cpu"] for d in cpu} == {str(i) for i in range(psutil.cpu_count() or 0)}

    assert v[("node_memory_MemTotal_bytes", ())] == psutil.virtual_memory().total
    assert v[("node_memory_SwapTotal_bytes", ())] == psutil.swap_memory().total
    assert abs(v[("node_processes_pids", ())] - len(psutil.pids())) < 20
    assert v[("node_boot_time_seconds", ())] == pytest.approx(psutil.boot_time(), abs=2)

    mounts = select_mounts(psutil_partitions())
    assert mounts, "no real filesystem mounted?"
    for m in mounts:
        labels = (("device", m.device), ("fstype", m.fstype), ("mountpoint", m.mountpoint))
        assert ("node_filesystem_device_error", labels) in v
    root = next((m for m in mounts if m.mountpoint == "/"), None)
    if root is not None:
        labels = (("device", root.device), ("fstype", root.fstype), ("mountpoint", "/"))
        st = os.statvfs("/")
        assert v[("node_filesystem_size_bytes", labels)] == st.f_blocks * st.f_frsize
        assert v[("node_filesystem_readonly", labels)] in (0, 1)


def test_real_collect_is_fast() -> None:
    c = HostCollector()
    c.collect()
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        c.collect()
        times.append(time.perf_counter() - t0)
    assert statistics.median(times) < 0.05  # a few ms here; a loose bound for slow CI
