"""The agent's own container: its cgroup's CPU, memory, pids and pressure, cAdvisor names.

Inside a container psutil sees the host: every CPU and all of its memory. The limits
that count, and the usage charged against them, live in the process's cgroup.

How the cgroup is found: ``<proc_root>/<pid>/cgroup`` lists, per hierarchy, the
process's path; the path is relative to that hierarchy's mount under ``cgroup_root``:
``<cgroup_root>/<controller>`` for cgroup v1 (``cpu``, ``cpuacct``, ``memory``,
``pids``; co-mounted ``cpu,cpuacct`` too), ``<cgroup_root>`` for a unified cgroup v2
host, ``<cgroup_root>/unified`` for the cgroup2 tree of a hybrid host. In a container
with its own cgroup namespace the path is ``/`` and the mount root is the container's
cgroup. In a container without one the path names the host's cgroup, which does not
exist under the container's mount; then the mount root is the container's cgroup too.

Files read, cgroup v1: ``cpu.cfs_quota_us``, ``cpu.cfs_period_us``, ``cpu.stat``
(nr_periods, nr_throttled, throttled_time in ns), ``cpuacct.usage`` (ns),
``cpuacct.stat`` (USER_HZ ticks), ``memory.usage_in_bytes``, ``memory.limit_in_bytes``,
``memory.stat`` (total_* and hierarchical_memory_limit), ``memory.failcnt``,
``memory.oom_control``, ``pids.current``, ``pids.max``. cgroup v2: ``cpu.max``,
``cpu.stat`` (µs), ``memory.current``, ``memory.max``, ``memory.stat``,
``memory.events``, ``pids.current``, ``pids.max``, and ``{cpu,memory,io}.pressure``
(also read from the cgroup2 tree of a hybrid host). A missing file skips its series;
a missing cgroup raises :class:`~fastmango.errors.CollectorError`.

Unlimited values follow cAdvisor: ``container_spec_memory_limit_bytes`` is 0,
``container_spec_cpu_quota`` is absent. The ``fastmango_container_*`` gauges give what
a reader wants instead: the effective limits (host memory and allowed CPUs when the
cgroup sets none) and utilization against them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import ClassVar

from fastmango.collector.base import Clock
from fastmango.collector.host import parse_meminfo, read_text
from fastmango.errors import CollectorError
from fastmango.series import Kind, MetricSpec, Sample, SampleBuilder, spec_index, unit_of

#: values above this mean "no limit" (cAdvisor's maxMemorySize: the kernel rounds LONG_MAX)
UNLIMITED = 1 << 62
V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")


def _spec(name: str, kind: Kind, help: str) -> MetricSpec:
    source = "fastmango" if name.startswith("fastmango_") else "cadvisor"
    return MetricSpec(name, kind, help, (), unit_of(name), source=source)


def _psi_specs() -> list[MetricSpec]:
    out = []
    for resource in ("cpu", "memory", "io"):
        for name, share in (("waiting", "some"), ("stalled", "full")):
            out.append(
                _spec(
                    f"container_pressure_{resource}_{name}_seconds_total",
                    "counter",
                    f"Total time duration {share} tasks were stalled on {resource} (PSI).",
                )
            )
    return out


SPECS: list[MetricSpec] = [
    _spec("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed."),
    _spec("container_cpu_user_seconds_total", "counter", "Cumulative user cpu time consumed."),
    _spec("container_cpu_system_seconds_total", "counter", "Cumulative system cpu time."),
    _spec("container_cpu_cfs_periods_total", "counter", "Number of elapsed enforcement periods."),
    _spec("container_cpu_cfs_throttled_periods_total", "counter", "Number of throttled periods."),
    _spec("container_cpu_cfs_throttled_seconds_total", "counter", "Total time throttled."),
    _spec("container_spec_cpu_quota", "gauge", "CPU quota in µs per period; absent if none."),
    _spec("container_spec_cpu_period", "gauge", "CPU period of the container, in µs."),
    _spec("container_memory_usage_bytes", "gauge", "Current memory usage, including cache."),
    _spec("container_memory_working_set_bytes", "gauge", "Usage minus inactive file cache."),
    _spec("container_memory_rss", "gauge", "Anonymous memory (RSS), in bytes."),
    _spec("container_memory_cache", "gauge", "Page cache memory, in bytes."),
    _spec("container_memory_failcnt", "gauge", "Times the memory limit was hit (cgroup v1)."),
    _spec("container_spec_memory_limit_bytes", "gauge", "Memory limit; 0 when unlimited."),
    _spec("container_oom_events_total", "counter", "Processes killed by the OOM killer."),
    *_psi_specs(),
    _spec("fastmango_container_pids_current", "gauge", "Tasks in the cgroup."),
    _spec("fastmango_container_pids_limit", "gauge", "Task limit of the cgroup; 0 = none."),
    _spec("fastmango_container_cgroup_version", "gauge", "1 for cgroup v1 or hybrid, 2 for v2."),
    _spec(
        "fastmango_container_cpu_limit_cores",
        "gauge",
        "CPU quota over period, in cores; 0 when the cgroup sets no quota.",
    ),
    _spec(
        "fastmango_container_cpu_utilization_ratio",
        "gauge",
        "CPU used over the last interval / effective limit (quota, else allowed CPUs).",
    ),
    _spec(
        "fastmango_container_memory_limit_bytes",
        "gauge",
        "Effective memory limit: the cgroup's (and its parents' on v1), at most host memory.",
    ),
    _spec(
        "fastmango_container_memory_utilization_ratio",
        "gauge",
        "Memory working set / effective memory limit.",
    ),
]
_INDEX = spec_index(SPECS)


# -- parse: pure functions of a file's text ------------------------------------------------


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """Parse ``/proc/<pid>/cgroup``: controller field ("memory", "cpu,cpuacct"…) -> path.

    The cgroup2 hierarchy's entry (``0::/path``) has the key ``""``.
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            out[parts[1]] = parts[2]
    return out


def parse_keyed(text: str) -> dict[str, int]:
    """Parse "key value" lines: cpu.stat, memory.stat, memory.events, oom_control…"""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value:
            out[key] = int(value)
    return out


def parse_limit(text: str) -> int | None:
    """A limit file (memory.max, pids.max, cfs_quota_us…); None for "max", -1 or huge."""
    value = text.strip()
    return None if value == "max" else _limit(int(value))


def _limit(n: int | None) -> int | None:
    return None if n is None or n < 0 or n > UNLIMITED else n


def parse_cpu_max(text: str) -> tuple[int | None, int]:
    """Parse cgroup v2 ``cpu.max``: (quota µs or None when "max", period µs)."""
    quota, period = text.split()
    return parse_limit(quota), int(period)


def parse_psi(text: str) -> dict[str, float]:
    """Parse a PSI file: {"some": seconds, "full": seconds} from the µs ``total=`` fields."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        for field in rest.split():
            key, _, value = field.partition("=")
            if key == "total":
                out[kind] = int(value) / 1e6
    return out


def parse_cpus_allowed(status_text: str) -> int | None:
    """Count the CPUs in ``Cpus_allowed_list`` of ``/proc/<pid>/status`` ("0-3,8")."""
    for line in status_text.splitlines():
        if line.startswith("Cpus_allowed_list:"):
            count = 0
            for part in line.partition(":")[2].strip().split(","):
                first, _, last = part.partition("-")
                count += int(last or first) - int(first) + 1
            return count
    return None


# -- fetch ----------------------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        return read_text(path)
    except OSError:
        return None


def _join(mount: str, path: str) -> str:
    """The cgroup directory for ``path`` of /proc/<pid>/cgroup in the hierarchy at ``mount``.

    Falls back to the mount root when the path does not exist below it: a container
    without a cgroup namespace sees its host path, but its mount root is its cgroup.
    """
    d = os.path.normpath(os.path.join(mount, path.lstrip("/")))
    inside = d == mount or d.startswith(mount + os.sep)  # "/../x": outside our namespace
    return d if inside and os.path.isdir(d) else mount


@dataclass(frozen=True, slots=True)
class CgroupDirs:
    """Where one process's cgroup files are."""

    v1: dict[str, str]  # controller of V1_CONTROLLERS -> its directory on a v1 hierarchy
    unified: str | None  # the process's cgroup2 directory, if it has one

    @property
    def version(self) -> int:
        return 1 if self.v1 else 2


def resolve_cgroup(proc_cgroup_text: str, cgroup_root: str) -> CgroupDirs:
    """Find the directories of the cgroup that ``/proc/<pid>/cgroup`` names.

    Raises CollectorError when none of them exists under ``cgroup_root``.
    """
    cgroup_root = os.path.normpath(cgroup_root)
    v1: dict[str, str] = {}
    unified: str | None = None
    for field, path in parse_proc_cgroup(proc_cgroup_text).items():
        if field == "":
            is_root = os.path.exists(os.path.join(cgroup_root, "cgroup.controllers"))
            mount = cgroup_root if is_root else os.path.join(cgroup_root, "unified")
            if os.path.isdir(mount):
                unified = _join(mount, path)
            continue
        for controller in field.split(","):
            if controller not in V1_CONTROLLERS:
                continue
            for name in (field, controller):  # "cpu,cpuacct" is often co-mounted
                mount = os.path.join(cgroup_root, name)
                if os.path.isdir(mount):
                    v1[controller] = _join(mount, path)
                    break
    if not v1 and unified is None:
        raise CollectorError(
            f"container: no cgroup of {proc_cgroup_text.strip()!r} found under {cgroup_root}"
        )
    return CgroupDirs(v1, unified)


@dataclass(slots=True)
class _Cpu:
    usage: float | None = None  # seconds
    user: float | None = None
    system: float | None = None
    periods: int | None = None
    throttled_periods: int | None = None
    throttled_seconds: float | None = None
    quota: int | None = None  # µs per period; None = unlimited
    period: int | None = None  # µs; None = no cpu controller


@dataclass(slots=True)
class _Memory:
    usage: int
    limit: int | None  # None = unlimited
    inherited_limit: int | None  # the smallest limit of the cgroup and its parents (v1)
    inactive_file: int | None
    rss: int | None
    cache: int | None
    failcnt: int | None
    oom_kills: int | None


def _cpu_v1(cpu: str | None, cpuacct: str | None, ticks: int) -> _Cpu:
    r = _Cpu()
    if cpuacct is not None:
        if (text := _read(f"{cpuacct}/cpuacct.usage")) is not None:
            r.usage = int(text) / 1e9
        if (text := _read(f"{cpuacct}/cpuacct.stat")) is not None:
            ticks_used = parse_keyed(text)
            r.user, r.system = ticks_used["user"] / ticks, ticks_used["system"] / ticks
    if cpu is not None:
        if (text := _read(f"{cpu}/cpu.stat")) is not None:
            st = parse_keyed(text)
            r.periods, r.throttled_periods = st["nr_periods"], st["nr_throttled"]
            r.throttled_seconds = st["throttled_time"] / 1e9
        quota, period = _read(f"{cpu}/cpu.cfs_quota_us"), _read(f"{cpu}/cpu.cfs_period_us")
        if quota is not None and period is not None:
            r.quota, r.period = parse_limit(quota), int(period)
    return r


def _cpu_v2(d: str) -> _Cpu:
    r = _Cpu()
    if (text := _read(f"{d}/cpu.stat")) is not None:
        st = parse_keyed(text)
        r.usage, r.user, r.system = (
            st[k] / 1e6 for k in ("usage_usec", "user_usec", "system_usec")
        )
        if "nr_periods" in st:  # only with the cpu controller enabled
            r.periods, r.throttled_periods = st["nr_periods"], st["nr_throttled"]
            r.throttled_seconds = st["throttled_usec"] / 1e6
    if (text := _read(f"{d}/cpu.max")) is not None:
        r.quota, r.period = parse_cpu_max(text)
    return r


def _memory_v1(d: str) -> _Memory | None:
    usage, limit = _read(f"{d}/memory.usage_in_bytes"), _read(f"{d}/memory.limit_in_bytes")
    if usage is None or limit is None:
        return None
    st = parse_keyed(_read(f"{d}/memory.stat") or "")
    failcnt, oom = _read(f"{d}/memory.failcnt"), _read(f"{d}/memory.oom_control")
    return _Memory(
        usage=int(usage),
        limit=parse_limit(limit),
        inherited_limit=_limit(st.get("hierarchical_memory_limit")),
        inactive_file=st.get("total_inactive_file", st.get("inactive_file")),
        rss=st.get("total_rss"),
        cache=st.get("total_cache"),
        failcnt=None if failcnt is None else int(failcnt),
        oom_kills=None if oom is None else parse_keyed(oom).get("oom_kill"),
    )


def _memory_v2(d: str) -> _Memory | None:
    usage, limit = _read(f"{d}/memory.current"), _read(f"{d}/memory.max")
    if usage is None or limit is None:
        return None
    st = parse_keyed(_read(f"{d}/memory.stat") or "")
    events = parse_keyed(_read(f"{d}/memory.events") or "")
    return _Memory(
        usage=int(usage),
        limit=parse_limit(limit),
        inherited_limit=None,
        inactive_file=st.get("inactive_file"),
        rss=st.get("anon"),
        cache=st.get("file"),
        failcnt=None,
        oom_kills=events.get("oom_kill"),
    )


class ContainerCollector:
    """CPU, memory, pids and pressure of one process's cgroup (the agent's own by default)."""

    name: ClassVar[str] = "container"
    specs: ClassVar[list[MetricSpec]] = SPECS

    def __init__(
        self,
        proc_root: str = "/proc",
        cgroup_root: str = "/sys/fs/cgroup",
        pid: int | str = "self",
        clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
        ticks_per_second: int | None = None,
    ) -> None:
        self._proc = proc_root
        self._root = cgroup_root
        self._pid = pid
        self._clock = clock
        self._monotonic = monotonic
        self._ticks = ticks_per_second or os.sysconf("SC_CLK_TCK")
        self._last_cpu: tuple[float, float] | None = None  # (monotonic time, usage seconds)

    def start(self) -> None:
        self.dirs()

    def close(self) -> None:
        pass

    def dirs(self) -> CgroupDirs:
        """Resolve the process's cgroup directories now."""
        path = f"{self._proc}/{self._pid}/cgroup"
        text = _read(path)
        if text is None:
            raise CollectorError(f"container: cannot read {path}")
        return resolve_cgroup(text, self._root)

    def collect(self) -> list[Sample]:
        dirs = self.dirs()
        now = self._monotonic()
        b = SampleBuilder(_INDEX, self._clock())
        b.add("fastmango_container_cgroup_version", dirs.version)
        # a controller not on a v1 hierarchy is read from the cgroup2 tree, where its files
        # exist only if it is enabled there
        v2 = dirs.unified
        if "cpu" in dirs.v1 or "cpuacct" in dirs.v1:
            cpu = _cpu_v1(dirs.v1.get("cpu"), dirs.v1.get("cpuacct"), self._ticks)
        else:
            cpu = _cpu_v2(v2) if v2 is not None else _Cpu()
        self._emit_cpu(b, cpu, now)
        if "memory" in dirs.v1:
            mem = _memory_v1(dirs.v1["memory"])
        else:
            mem = _memory_v2(v2) if v2 is not None else None
        if mem is not None:
            self._emit_memory(b, mem)
        pids_dir = dirs.v1.get("pids", v2)
        if pids_dir is not None:
            current, limit = _read(f"{pids_dir}/pids.current"), _read(f"{pids_dir}/pids.max")
            if current is not None and limit is not None:
                b.add("fastmango_container_pids_current", int(current))
                b.add("fastmango_container_pids_limit", parse_limit(limit) or 0)
        if dirs.unified is not None:  # PSI is in the cgroup2 tree, on hybrid hosts too
            for resource in ("cpu", "memory", "io"):
                psi = parse_psi(_read(f"{dirs.unified}/{resource}.pressure") or "")
                for share, name in (("some", "waiting"), ("full", "stalled")):
                    if share in psi:
                        b.add(f"container_pressure_{resource}_{name}_seconds_total", psi[share])
        return b.samples

    def _emit_cpu(self, b: SampleBuilder, cpu: _Cpu, now: float) -> None:
        for name, value in (
            ("container_cpu_usage_seconds_total", cpu.usage),
            ("container_cpu_user_seconds_total", cpu.user),
            ("container_cpu_system_seconds_total", cpu.system),
            ("container_cpu_cfs_periods_total", cpu.periods),
            ("container_cpu_cfs_throttled_periods_total", cpu.throttled_periods),
            ("container_cpu_cfs_throttled_seconds_total", cpu.throttled_seconds),
            ("container_spec_cpu_quota", cpu.quota),
            ("container_spec_cpu_period", cpu.period),
        ):
            if value is not None:
                b.add(name, value)
        limit = cpu.quota / cpu.period if cpu.quota is not None and cpu.period else 0.0
        b.add("fastmango_container_cpu_limit_cores", limit)
        if cpu.usage is None:
            return
        allowed = self._cpus_allowed()
        effective = min(limit, allowed) if limit else allowed
        last, self._last_cpu = self._last_cpu, (now, cpu.usage)
        if last is not None and now > last[0] and cpu.usage >= last[1] and effective > 0:
            rate = (cpu.usage - last[1]) / (now - last[0])
            b.add("fastmango_container_cpu_utilization_ratio", rate / effective)

    def _emit_memory(self, b: SampleBuilder, mem: _Memory) -> None:
        working_set = max(mem.usage - (mem.inactive_file or 0), 0)
        b.add("container_memory_usage_bytes", mem.usage)
        b.add("container_memory_working_set_bytes", working_set)
        b.add("container_spec_memory_limit_bytes", mem.limit or 0)
        for name, value in (
            ("container_memory_rss", mem.rss),
            ("container_memory_cache", mem.cache),
            ("container_memory_failcnt", mem.failcnt),
            ("container_oom_events_total", mem.oom_kills),
        ):
            if value is not None:
                b.add(name, value)
        limits = [x for x in (mem.limit, mem.inherited_limit, self._host_memory()) if x]
        if limits:
            effective = min(limits)
            b.add("fastmango_container_memory_limit_bytes", effective)
            b.add("fastmango_container_memory_utilization_ratio", working_set / effective)

    def _cpus_allowed(self) -> int:
        status = _read(f"{self._proc}/{self._pid}/status")
        return (parse_cpus_allowed(status) if status else None) or os.cpu_count() or 1

    def _host_memory(self) -> int | None:
        meminfo = _read(f"{self._proc}/meminfo")
        return parse_meminfo(meminfo).get("MemTotal") if meminfo else None
