"""Host metrics under node_exporter's names and labels, so existing dashboards work.

What it reads, under ``proc_root`` (default ``/proc``):

- ``stat``: CPU time per core and mode, context switches, forks, running and blocked
  processes, boot time (node_exporter's ``cpu`` and ``stat`` collectors);
- ``meminfo``, ``loadavg``, ``sys/fs/file-nr``, ``diskstats``, ``net/dev``;
- the numeric directories of ``proc_root`` itself, for ``node_processes_pids``;

under ``sys_root`` (default ``/sys``): ``class/net/<device>/operstate`` for
``node_network_up``. Mounted filesystems come from ``psutil.disk_partitions(all=True)``
(the ``partitions`` parameter), filtered with node_exporter's default excludes, and
``os.statvfs``. A mount whose ``statvfs`` fails, or is still hanging from an earlier
collection (a dead NFS server), is reported as ``node_filesystem_device_error`` = 1 and
skipped; the rest of the collection goes on.

Each file has a pure parse function taking its text; :class:`HostCollector` only reads
files and turns the parsed values into samples. The files are per namespace: inside a
container, ``net/dev`` and the mounts are the container's own.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import psutil

from fastmango.collector.base import Clock
from fastmango.errors import CollectorError
from fastmango.series import Kind, MetricSpec, Sample, SampleBuilder, spec_index, unit_of

#: /proc/stat's CPU columns, in file order, as node_exporter names the modes
CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
MEMINFO_FIELDS = (
    "MemTotal",
    "MemAvailable",
    "MemFree",
    "Buffers",
    "Cached",
    "SwapTotal",
    "SwapFree",
)
#: the series of parse_net_dev's columns, in order
NET_DEV_SERIES = tuple(
    f"node_network_{direction}_{field}_total"
    for direction in ("receive", "transmit")
    for field in ("bytes", "packets", "errs", "drop")
)

# node_exporter's defaults (collector/filesystem_linux.go, collector/diskstats_linux.go)
MOUNT_POINTS_EXCLUDE = re.compile(
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
FS_TYPES_EXCLUDE = re.compile(
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs"
    r"|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs"
    r"|squashfs|erofs|sysfs|tracefs)$"
)
DISK_DEVICES_EXCLUDE = re.compile(r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$")

SECTOR_BYTES = 512  # /proc/diskstats counts 512-byte sectors whatever the device's size

_FS = ("device", "fstype", "mountpoint")


def _spec(name: str, kind: Kind, help: str, *labels: str) -> MetricSpec:
    return MetricSpec(name, kind, help, labels, unit_of(name), source="node_exporter")


SPECS: list[MetricSpec] = [
    _spec(
        "node_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.", "cpu", "mode"
    ),
    _spec("node_load1", "gauge", "1m load average."),
    _spec("node_load5", "gauge", "5m load average."),
    _spec("node_load15", "gauge", "15m load average."),
    _spec("node_context_switches_total", "counter", "Total number of context switches."),
    _spec("node_forks_total", "counter", "Total number of forks."),
    _spec("node_procs_running", "gauge", "Number of processes in runnable state."),
    _spec("node_procs_blocked", "gauge", "Number of processes blocked waiting for I/O."),
    _spec("node_boot_time_seconds", "gauge", "Node boot time, in unixtime."),
    _spec("node_processes_pids", "gauge", "Number of PIDs."),
    _spec("node_filefd_allocated", "gauge", "File descriptor statistics: allocated."),
    _spec("node_filefd_maximum", "gauge", "File descriptor statistics: maximum."),
    *(
        _spec(f"node_memory_{field}_bytes", "gauge", f"Memory information field {field}_bytes.")
        for field in MEMINFO_FIELDS
    ),
    _spec("node_filesystem_size_bytes", "gauge", "Filesystem size in bytes.", *_FS),
    _spec("node_filesystem_free_bytes", "gauge", "Filesystem free space in bytes.", *_FS),
    _spec(
        "node_filesystem_avail_bytes",
        "gauge",
        "Filesystem space available to non-root users in bytes.",
        *_FS,
    ),
    _spec("node_filesystem_files", "gauge", "Filesystem total file nodes.", *_FS),
    _spec("node_filesystem_files_free", "gauge", "Filesystem total free file nodes.", *_FS),
    _spec("node_filesystem_readonly", "gauge", "Filesystem read-only status.", *_FS),
    _spec(
        "node_filesystem_device_error",
        "gauge",
        "Whether an error occurred while getting statistics for the given device.",
        *_FS,
    ),
    _spec("node_disk_reads_completed_total", "counter", "Reads completed.", "device"),
    _spec("node_disk_writes_completed_total", "counter", "Writes completed.", "device"),
    _spec("node_disk_read_bytes_total", "counter", "Bytes read.", "device"),
    _spec("node_disk_written_bytes_total", "counter", "Bytes written.", "device"),
    _spec("node_disk_io_time_seconds_total", "counter", "Seconds spent doing I/Os.", "device"),
    _spec("node_network_receive_bytes_total", "counter", "Bytes received.", "device"),
    _spec("node_network_receive_packets_total", "counter", "Packets received.", "device"),
    _spec("node_network_receive_errs_total", "counter", "Receive errors.", "device"),
    _spec("node_network_receive_drop_total", "counter", "Received packets dropped.", "device"),
    _spec("node_network_transmit_bytes_total", "counter", "Bytes transmitted.", "device"),
    _spec("node_network_transmit_packets_total", "counter", "Packets transmitted.", "device"),
    _spec("node_network_transmit_errs_total", "counter", "Transmit errors.", "device"),
    _spec("node_network_transmit_drop_total", "counter", "Transmit packets dropped.", "device"),
    _spec("node_network_up", "gauge", "1 if the operstate is 'up', 0 otherwise.", "device"),
]
_INDEX = spec_index(SPECS)


# -- parse: pure functions of a file's text ------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcStat:
    """What node_exporter takes from ``/proc/stat``."""

    cpu_seconds: dict[str, tuple[float, ...]]  # "0", "1"… -> seconds per CPU_MODES
    context_switches: int
    forks: int
    procs_running: int
    procs_blocked: int
    boot_time: int


def parse_proc_stat(text: str, ticks_per_second: int = 100) -> ProcStat:
    """Parse ``/proc/stat``; CPU times are in USER_HZ ticks (``SC_CLK_TCK``)."""
    cpus: dict[str, tuple[float, ...]] = {}
    fields: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(" ")
        if key.startswith("cpu") and key != "cpu":  # "cpu" alone is the sum of all cores
            ticks = [int(t) / ticks_per_second for t in rest.split()[: len(CPU_MODES)]]
            cpus[key[3:]] = tuple(ticks + [0.0] * (len(CPU_MODES) - len(ticks)))
        elif key in ("ctxt", "processes", "procs_running", "procs_blocked", "btime"):
            fields[key] = int(rest)
    return ProcStat(
        cpus,
        fields["ctxt"],
        fields["processes"],
        fields["procs_running"],
        fields["procs_blocked"],
        fields["btime"],
    )


def parse_meminfo(text: str) -> dict[str, int]:
    """Parse ``/proc/meminfo`` into bytes per field (``kB`` values are multiplied)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            value = int(parts[0])
            out[key] = value * 1024 if parts[1:] == ["kB"] else value
    return out


def parse_loadavg(text: str) -> tuple[float, float, float]:
    """Parse ``/proc/loadavg``: the 1, 5 and 15 minute load averages."""
    one, five, fifteen = text.split()[:3]
    return float(one), float(five), float(fifteen)


def parse_file_nr(text: str) -> tuple[int, int]:
    """Parse ``/proc/sys/fs/file-nr``: (allocated, maximum) file handles."""
    allocated, _unused, maximum = text.split()
    return int(allocated), int(maximum)


class DiskStats(NamedTuple):
    reads: int
    read_bytes: int
    writes: int
    written_bytes: int
    io_time_seconds: float


def parse_diskstats(text: str) -> dict[str, DiskStats]:
    """Parse ``/proc/diskstats`` (every device; the collector applies the excludes)."""
    out: dict[str, DiskStats] = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 14:
            out[f[2]] = DiskStats(
                int(f[3]),
                int(f[5]) * SECTOR_BYTES,
                int(f[7]),
                int(f[9]) * SECTOR_BYTES,
                int(f[12]) / 1000,
            )
    return out


def parse_net_dev(text: str) -> dict[str, tuple[int, ...]]:
    """Parse ``/proc/net/dev``: per device, receive then transmit bytes, packets, errs, drop."""
    out: dict[str, tuple[int, ...]] = {}
    for line in text.splitlines()[2:]:
        device, sep, rest = line.partition(":")
        f = rest.split()
        if sep and len(f) >= 12:
            out[device.strip()] = tuple(int(v) for v in f[0:4] + f[8:12])
    return out


class Mount(NamedTuple):
    device: str
    mountpoint: str
    fstype: str
    readonly: bool


def select_mounts(partitions: Iterable[tuple[str, str, str, str]]) -> list[Mount]:
    """Keep the mounts node_exporter's default excludes keep, each once.

    ``partitions`` are (device, mountpoint, fstype, options) rows as ``/proc/self/mounts``
    lists them; a filesystem mounted twice at one place is reported once.
    """
    seen: set[tuple[str, str, str]] = set()
    out: list[Mount] = []
    for device, mountpoint, fstype, opts in partitions:
        key = (device, mountpoint, fstype)
        if key in seen or MOUNT_POINTS_EXCLUDE.match(mountpoint) or FS_TYPES_EXCLUDE.match(fstype):
            continue
        seen.add(key)
        out.append(Mount(device, mountpoint, fstype, "ro" in opts.split(",")))
    return out


# -- fetch ----------------------------------------------------------------------------------


def psutil_partitions() -> list[tuple[str, str, str, str]]:
    """Every mount, pseudo filesystems included, as (device, mountpoint, fstype, options)."""
    return [(p.device, p.mountpoint, p.fstype, p.opts) for p in psutil.disk_partitions(all=True)]


def read_text(path: str) -> str:
    """A whole /proc, /sys or cgroup file; raw ``os.read`` is 2-3x faster than ``open()``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")


class HostCollector:
    """Host CPU, memory, load, filesystems, disks, network and process counts."""

    name: ClassVar[str] = "host"
    specs: ClassVar[list[MetricSpec]] = SPECS

    def __init__(
        self,
        proc_root: str = "/proc",
        sys_root: str = "/sys",
        clock: Clock = time.time,
        partitions: Callable[[], Iterable[tuple[str, str, str, str]]] = psutil_partitions,
        ticks_per_second: int | None = None,
    ) -> None:
        self._proc = proc_root
        self._sys = sys_root
        self._clock = clock
        self._partitions = partitions
        self._ticks = ticks_per_second or os.sysconf("SC_CLK_TCK")
        # mount points whose statvfs has not returned yet (node_exporter's "stuck mounts")
        self._statfs_pending: set[str] = set()

    def start(self) -> None:
        if not os.path.exists(f"{self._proc}/stat"):
            raise CollectorError(f"host: {self._proc}/stat not found; is proc_root right?")

    def close(self) -> None:
        pass

    def collect(self) -> list[Sample]:
        b = SampleBuilder(_INDEX, self._clock())
        try:
            self._stat(b)
            self._memory(b)
            self._network(b)
            self._disks(b)
        except OSError as e:
            raise CollectorError(f"host: cannot read {e.filename}: {e.strerror}") from e
        self._filesystems(b)
        return b.samples

    def _stat(self, b: SampleBuilder) -> None:
        st = parse_proc_stat(read_text(f"{self._proc}/stat"), self._ticks)
        for cpu, seconds in st.cpu_seconds.items():
            for mode, value in zip(CPU_MODES, seconds, strict=True):
                b.add("node_cpu_seconds_total", value, cpu=cpu, mode=mode)
        b.add("node_context_switches_total", st.context_switches)
        b.add("node_forks_total", st.forks)
        b.add("node_procs_running", st.procs_running)
        b.add("node_procs_blocked", st.procs_blocked)
        b.add("node_boot_time_seconds", st.boot_time)
        load = parse_loadavg(read_text(f"{self._proc}/loadavg"))
        for name, value in zip(("node_load1", "node_load5", "node_load15"), load, strict=True):
            b.add(name, value)
        allocated, maximum = parse_file_nr(read_text(f"{self._proc}/sys/fs/file-nr"))
        b.add("node_filefd_allocated", allocated)
        b.add("node_filefd_maximum", maximum)
        b.add("node_processes_pids", sum(n.isdigit() for n in os.listdir(self._proc)))

    def _memory(self, b: SampleBuilder) -> None:
        info = parse_meminfo(read_text(f"{self._proc}/meminfo"))
        for field in MEMINFO_FIELDS:
            if field in info:
                b.add(f"node_memory_{field}_bytes", info[field])

    def _disks(self, b: SampleBuilder) -> None:
        for device, d in parse_diskstats(read_text(f"{self._proc}/diskstats")).items():
            if DISK_DEVICES_EXCLUDE.match(device):
                continue
            b.add("node_disk_reads_completed_total", d.reads, device=device)
            b.add("node_disk_read_bytes_total", d.read_bytes, device=device)
            b.add("node_disk_writes_completed_total", d.writes, device=device)
            b.add("node_disk_written_bytes_total", d.written_bytes, device=device)
            b.add("node_disk_io_time_seconds_total", d.io_time_seconds, device=device)

    def _network(self, b: SampleBuilder) -> None:
        for device, values in parse_net_dev(read_text(f"{self._proc}/net/dev")).items():
            for name, value in zip(NET_DEV_SERIES, values, strict=True):
                b.add(name, value, device=device)
            try:
                state = read_text(f"{self._sys}/class/net/{device}/operstate").strip()
            except OSError:
                continue
            b.add("node_network_up", state == "up", device=device)

    def _filesystems(self, b: SampleBuilder) -> None:
        for m in select_mounts(self._partitions()):
            labels = {"device": m.device, "fstype": m.fstype, "mountpoint": m.mountpoint}
            st = self._statvfs(m.mountpoint)
            b.add("node_filesystem_device_error", st is None, **labels)
            if st is None:
                continue
            b.add("node_filesystem_size_bytes", st.f_blocks * st.f_frsize, **labels)
            b.add("node_filesystem_free_bytes", st.f_bfree * st.f_frsize, **labels)
            b.add("node_filesystem_avail_bytes", st.f_bavail * st.f_frsize, **labels)
            b.add("node_filesystem_files", st.f_files, **labels)
            b.add("node_filesystem_files_free", st.f_ffree, **labels)
            b.add("node_filesystem_readonly", m.readonly, **labels)

    def _statvfs(self, mountpoint: str) -> os.statvfs_result | None:
        """``os.statvfs``, or None when it fails or an earlier call on it still hangs."""
        if mountpoint in self._statfs_pending:
            return None
        self._statfs_pending.add(mountpoint)
        try:
            return os.statvfs(mountpoint)
        except OSError:
            return None
        finally:
            self._statfs_pending.discard(mountpoint)
