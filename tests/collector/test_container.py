"""ContainerCollector: parsers and the collector over recorded cgroup v1 trees and
cgroup v2 trees, and over a real cgroup made for the test (as root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fastmango.collector.base import Collector
from fastmango.collector.container import (
    SPECS,
    ContainerCollector,
    parse_cpu_max,
    parse_cpus_allowed,
    parse_keyed,
    parse_limit,
    parse_proc_cgroup,
    parse_psi,
    resolve_cgroup,
)
from fastmango.errors import CollectorError
from fastmango.series import Sample, spec_index

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cgroup"
V1_LIMITED, V1_HOST = FIXTURES / "v1" / "limited", FIXTURES / "v1" / "host"
V2_LIMITED, V2_UNLIMITED = FIXTURES / "v2" / "limited", FIXTURES / "v2" / "unlimited"
FIXTURE_MEMTOTAL = 24684096 * 1024  # MemTotal of the recorded proc/meminfo
MiB = 1 << 20


def values(samples: list[Sample]) -> dict[str, float]:
    index = spec_index(SPECS)
    for s in samples:
        assert s.name in index and s.labels == (), s
    out = {s.name: s.value for s in samples}
    assert len(out) == len(samples), "a series appears twice"
    return out


def collector(tree: Path, monotonic: Callable[[], float] = time.monotonic) -> ContainerCollector:
    return ContainerCollector(
        proc_root=str(tree / "proc"),
        cgroup_root=str(tree / "sys" / "fs" / "cgroup"),
        clock=lambda: 99.0,
        monotonic=monotonic,
        ticks_per_second=100,
    )


# -- parsers --------------------------------------------------------------------------------


def test_parse_proc_cgroup_v1_recorded() -> None:
    parsed = parse_proc_cgroup((V1_HOST / "proc/self/cgroup").read_text())
    assert parsed["memory"] == "/process_api/a7110677ee409b4751403582a2e0f859"
    assert parsed["cpu"] == parsed["cpuacct"] == parsed[""] == "/"
    assert parsed["name=systemd"] == "/"
    assert parse_proc_cgroup("0::/\n") == {"": "/"}
    assert parse_proc_cgroup("4:cpu,cpuacct:/docker/ab\n") == {"cpu,cpuacct": "/docker/ab"}


def test_parse_keyed_files() -> None:
    st = parse_keyed((V1_LIMITED / "sys/fs/cgroup/cpu/fastmango-fixture/cpu.stat").read_text())
    assert st == {
        "nr_periods": 17,
        "nr_throttled": 16,
        "throttled_time": 778823353,
        "nr_bursts": 0,
        "burst_time": 0,
    }
    mem = parse_keyed((V2_LIMITED / "sys/fs/cgroup/memory.stat").read_text())
    assert (mem["anon"], mem["file"], mem["inactive_file"]) == (98566144, 37748736, 25165824)
    oom = (V1_HOST / "sys/fs/cgroup/memory/process_api").glob("*/memory.oom_control")
    assert parse_keyed(next(oom).read_text())["oom_kill"] == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max\n", None),
        ("-1\n", None),  # cpu.cfs_quota_us
        ("9223372036854771712\n", None),  # memory.limit_in_bytes, 4 KiB pages
        ("9223372036854710272\n", None),  # the same on 64 KiB pages
        ("268435456\n", 268435456),
        ("50000", 50000),
        ("0\n", 0),
    ],
)
def test_parse_limit(text: str, expected: int | None) -> None:
    assert parse_limit(text) == expected


def test_parse_cpu_max() -> None:
    assert parse_cpu_max("50000 100000\n") == (50000, 100000)
    assert parse_cpu_max("max 100000\n") == (None, 100000)


def test_parse_psi_converts_microseconds_to_seconds() -> None:
    psi = parse_psi((V2_LIMITED / "sys/fs/cgroup/cpu.pressure").read_text())
    assert psi == {"some": 98.765432, "full": 91.234567}
    assert parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n") == {"some": 5e-6}
    assert parse_psi("") == {}


def test_parse_cpus_allowed() -> None:
    assert parse_cpus_allowed((V2_LIMITED / "proc/self/status").read_text()) == 8
    assert parse_cpus_allowed("Name:\tx\nCpus_allowed_list:\t0-3,8,10-11\n") == 7
    assert parse_cpus_allowed("Name:\tx\n") is None


# -- resolving /proc/<pid>/cgroup -----------------------------------------------------------


def test_resolve_v1_hybrid_recorded() -> None:
    root = V1_LIMITED / "sys/fs/cgroup"
    dirs = resolve_cgroup((V1_LIMITED / "proc/self/cgroup").read_text(), str(root))
    assert dirs.version == 1
    assert dirs.v1 == {
        c: str(root / c / "fastmango-fixture") for c in ("cpu", "cpuacct", "memory", "pids")
    }
    assert dirs.unified == str(root / "unified" / "fastmango-fixture")


def test_resolve_v2() -> None:
    dirs = resolve_cgroup("0::/\n", str(V2_LIMITED / "sys/fs/cgroup"))
    assert (dirs.version, dirs.v1, dirs.unified) == (2, {}, str(V2_LIMITED / "sys/fs/cgroup"))
    root = V2_UNLIMITED / "sys/fs/cgroup"
    dirs = resolve_cgroup((V2_UNLIMITED / "proc/self/cgroup").read_text(), str(root))
    assert dirs.unified == str(root / "system.slice" / "fastmango-agent.service")


def test_resolve_without_cgroup_namespace_reads_the_mount_root() -> None:
    # a container without its own cgroup namespace sees its host path; its mount root
    # is its cgroup
    root = str(V2_LIMITED / "sys/fs/cgroup")
    assert resolve_cgroup("0::/system.slice/docker-0a1b.scope\n", root).unified == root
    assert resolve_cgroup("0::/../../escape\n", root).unified == root


def test_resolve_co_mounted_cpu_cpuacct(tmp_path: Path) -> None:
    (tmp_path / "cpu,cpuacct" / "docker" / "ab").mkdir(parents=True)
    (tmp_path / "memory").mkdir()
    dirs = resolve_cgroup("4:cpu,cpuacct:/docker/ab\n3:memory:/docker/ab\n", str(tmp_path))
    assert dirs.v1 == {
        "cpu": str(tmp_path / "cpu,cpuacct/docker/ab"),
        "cpuacct": str(tmp_path / "cpu,cpuacct/docker/ab"),
        "memory": str(tmp_path / "memory"),  # no such child: the mount root
    }
    assert dirs.unified is None


def test_missing_cgroup_raises(tmp_path: Path) -> None:
    with pytest.raises(CollectorError, match="no cgroup"):
        resolve_cgroup("0::/\n1:cpu:/\n", str(tmp_path / "nothing-here"))
    with pytest.raises(CollectorError, match="cannot read"):
        ContainerCollector(proc_root=str(tmp_path), pid=123456).start()


# -- the collector over recorded trees ------------------------------------------------------


def test_v2_limited() -> None:
    c = collector(V2_LIMITED)
    assert isinstance(c, Collector)
    c.start()
    samples = c.collect()
    assert {s.timestamp for s in samples} == {99.0}
    v = values(samples)
    assert v["fastmango_container_cgroup_version"] == 2
    assert v["container_spec_cpu_quota"] == 50000
    assert v["container_spec_cpu_period"] == 100000
    assert v["fastmango_container_cpu_limit_cores"] == 0.5
    assert v["container_cpu_usage_seconds_total"] == 184.467213
    assert v["container_cpu_user_seconds_total"] == 151.203994
    assert v["container_cpu_system_seconds_total"] == 33.263219
    assert v["container_cpu_cfs_periods_total"] == 36412
    assert v["container_cpu_cfs_throttled_periods_total"] == 2118
    assert v["container_cpu_cfs_throttled_seconds_total"] == 98.423117
    assert v["container_memory_usage_bytes"] == 142606336
    assert v["container_memory_working_set_bytes"] == 142606336 - 25165824
    assert v["container_memory_rss"] == 98566144
    assert v["container_memory_cache"] == 37748736
    assert v["container_spec_memory_limit_bytes"] == 268435456
    assert v["fastmango_container_memory_limit_bytes"] == 268435456
    assert v["fastmango_container_memory_utilization_ratio"] == (142606336 - 25165824) / (268435456)
    assert v["container_oom_events_total"] == 1
    assert v["fastmango_container_pids_current"] == 23
    assert v["fastmango_container_pids_limit"] == 4096
    assert v["container_pressure_cpu_waiting_seconds_total"] == 98.765432
    assert v["container_pressure_cpu_stalled_seconds_total"] == 91.234567
    assert v["container_pressure_memory_waiting_seconds_total"] == 1.234567
    assert v["container_pressure_io_stalled_seconds_total"] == 4.0
    assert "container_memory_failcnt" not in v  # v1 only
    assert "fastmango_container_cpu_utilization_ratio" not in v  # needs a previous reading


def test_v2_unlimited() -> None:
    v = values(collector(V2_UNLIMITED).collect())
    assert "container_spec_cpu_quota" not in v  # as cAdvisor: no quota, no series
    assert v["container_spec_cpu_period"] == 100000
    assert v["fastmango_container_cpu_limit_cores"] == 0
    assert v["container_spec_memory_limit_bytes"] == 0
    assert v["fastmango_container_memory_limit_bytes"] == FIXTURE_MEMTOTAL
    assert v["container_memory_working_set_bytes"] == 52428800 - 10485760
    assert v["fastmango_container_pids_current"] == 7
    assert v["fastmango_container_pids_limit"] == 0
    assert v["container_pressure_io_waiting_seconds_total"] == 0


def test_v1_limited_recorded() -> None:
    v = values(collector(V1_LIMITED).collect())
    assert v["fastmango_container_cgroup_version"] == 1
    assert v["container_spec_cpu_quota"] == 50000
    assert v["container_spec_cpu_period"] == 100000
    assert v["fastmango_container_cpu_limit_cores"] == 0.5
    assert v["container_cpu_usage_seconds_total"] == 0.83038423
    assert v["container_cpu_user_seconds_total"] == 0.76  # cpuacct.stat, USER_HZ ticks
    assert v["container_cpu_system_seconds_total"] == 0.06
    assert v["container_cpu_cfs_periods_total"] == 17
    assert v["container_cpu_cfs_throttled_periods_total"] == 16
    assert v["container_cpu_cfs_throttled_seconds_total"] == 0.778823353
    assert v["container_memory_usage_bytes"] == 54001664
    assert v["container_memory_working_set_bytes"] == 54001664  # total_inactive_file 0
    assert v["container_memory_rss"] == 53706752
    assert v["container_memory_cache"] == 0
    assert v["container_memory_failcnt"] == 0
    assert v["container_oom_events_total"] == 0
    assert v["container_spec_memory_limit_bytes"] == 268435456
    assert v["fastmango_container_memory_limit_bytes"] == 268435456
    assert v["fastmango_container_pids_current"] == 1
    assert v["fastmango_container_pids_limit"] == 64
    # PSI of a hybrid host comes from the cgroup2 tree; CFS throttling shows there
    assert v["container_pressure_cpu_waiting_seconds_total"] == 0.779512


def test_v1_host_recorded_unlimited() -> None:
    """This agent's own cgroup on the machine the fixture was recorded on."""
    v = values(collector(V1_HOST).collect())
    assert v["fastmango_container_cgroup_version"] == 1
    assert "container_spec_cpu_quota" not in v  # cpu.cfs_quota_us is -1
    assert v["fastmango_container_cpu_limit_cores"] == 0
    assert v["container_spec_memory_limit_bytes"] == 0  # 9223372036854771712
    assert v["fastmango_container_memory_limit_bytes"] == FIXTURE_MEMTOTAL
    assert v["container_memory_working_set_bytes"] == 93958144 - 31752192
    assert "fastmango_container_pids_current" not in v  # the pids root has no pids.current
    assert "container_pressure_io_stalled_seconds_total" in v


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_cpu_utilization_over_two_readings(tmp_path: Path) -> None:
    tree = copy_tree(V2_LIMITED, tmp_path / "t")
    stat = tree / "sys/fs/cgroup/cpu.stat"
    ticks = iter([10.0, 11.0, 12.0])
    c = collector(tree, monotonic=lambda: next(ticks))
    assert "fastmango_container_cpu_utilization_ratio" not in values(c.collect())
    stat.write_text(stat.read_text().replace("usage_usec 184467213", "usage_usec 184867213"))
    v = values(c.collect())  # 0.4 s of CPU in 1 s, limit 0.5 cores
    assert v["fastmango_container_cpu_utilization_ratio"] == pytest.approx(0.8)
    stat.write_text(stat.read_text().replace("usage_usec 184867213", "usage_usec 1000"))
    assert "fastmango_container_cpu_utilization_ratio" not in values(c.collect())  # reset


def test_cpu_utilization_without_quota_uses_allowed_cpus(tmp_path: Path) -> None:
    tree = copy_tree(V2_UNLIMITED, tmp_path / "t")
    stat = tree / "sys/fs/cgroup/system.slice/fastmango-agent.service/cpu.stat"
    ticks = iter([0.0, 2.0])
    c = collector(tree, monotonic=lambda: next(ticks))
    c.collect()
    stat.write_text(stat.read_text().replace("usage_usec 5123456", "usage_usec 9123456"))
    v = values(c.collect())  # 4 s of CPU in 2 s: 2 of the 8 allowed CPUs
    assert v["fastmango_container_cpu_utilization_ratio"] == pytest.approx(0.25)


def test_working_set_is_floored_at_zero(tmp_path: Path) -> None:
    tree = copy_tree(V2_LIMITED, tmp_path / "t")
    (tree / "sys/fs/cgroup/memory.current").write_text("1000\n")
    v = values(collector(tree).collect())
    assert v["container_memory_working_set_bytes"] == 0


def test_missing_optional_files_are_skipped(tmp_path: Path) -> None:
    tree = copy_tree(V2_LIMITED, tmp_path / "t")
    for name in ("cpu.max", "memory.max", "pids.max", "io.pressure", "memory.events"):
        (tree / "sys/fs/cgroup" / name).unlink()
    v = values(collector(tree).collect())
    assert "container_spec_cpu_quota" not in v
    assert v["fastmango_container_cpu_limit_cores"] == 0
    assert "container_memory_usage_bytes" not in v
    assert "fastmango_container_pids_current" not in v
    assert "container_pressure_io_waiting_seconds_total" not in v
    assert v["container_cpu_usage_seconds_total"] == 184.467213
    assert v["container_pressure_cpu_waiting_seconds_total"] == 98.765432


# -- a real cgroup --------------------------------------------------------------------------

CGROUP_ROOT = Path("/sys/fs/cgroup")
MEMORY_LIMIT = 256 * MiB
CHILD = """
import sys
sys.stdin.readline()
ballast = b"x" * (50 << 20)
print("ready", flush=True)
while True:
    pass
"""


def make_cgroups(name: str) -> list[Path]:
    """Create a cgroup limited to 0.5 CPU, 256 MiB and 64 tasks; return its directories."""
    made: list[Path] = []
    try:
        if (CGROUP_ROOT / "cgroup.controllers").exists():  # unified cgroup v2
            d = CGROUP_ROOT / name
            d.mkdir()
            made.append(d)
            (d / "cpu.max").write_text("50000 100000")
            (d / "memory.max").write_text(str(MEMORY_LIMIT))
            (d / "pids.max").write_text("64")
            return made
        for controller in ("cpu", "cpuacct", "memory", "pids", "unified"):
            if controller == "unified" and not (CGROUP_ROOT / controller).is_dir():
                continue
            d = CGROUP_ROOT / controller / name
            d.mkdir()
            made.append(d)
        (CGROUP_ROOT / "cpu" / name / "cpu.cfs_period_us").write_text("100000")
        (CGROUP_ROOT / "cpu" / name / "cpu.cfs_quota_us").write_text("50000")
        (CGROUP_ROOT / "memory" / name / "memory.limit_in_bytes").write_text(str(MEMORY_LIMIT))
        (CGROUP_ROOT / "pids" / name / "pids.max").write_text("64")
        return made
    except OSError as e:
        remove_cgroups(made)
        pytest.fail(f"cannot create a test cgroup under {CGROUP_ROOT} as root: {e}")


def remove_cgroups(dirs: list[Path]) -> None:
    for d in reversed(dirs):
        for _ in range(50):  # a killed task leaves its cgroup asynchronously
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.01)


@pytest.fixture
def child_in_cgroup() -> Iterator[subprocess.Popen[str]]:
    # a real cgroup needs root: the suite runs as root (scripts/test.sh, CI); fail, never skip
    assert os.geteuid() == 0, "this test makes a real cgroup: run the suite as root"
    dirs = make_cgroups(f"fastmango-test-{os.getpid()}-{time.monotonic_ns()}")
    try:
        with subprocess.Popen(
            [sys.executable, "-c", CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as child:
            assert child.stdin is not None and child.stdout is not None
            try:
                for d in dirs:
                    (d / "cgroup.procs").write_text(str(child.pid))
                child.stdin.write("go\n")  # allocate only once inside the memory cgroup
                child.stdin.flush()
                assert child.stdout.readline().strip() == "ready"
                yield child
            finally:
                child.kill()
                child.wait()
    finally:
        remove_cgroups(dirs)


@pytest.mark.root
@pytest.mark.integration
def test_real_cgroup(child_in_cgroup: subprocess.Popen[str]) -> None:
    c = ContainerCollector(pid=child_in_cgroup.pid)
    c.start()
    first = values(c.collect())
    v2 = (CGROUP_ROOT / "cgroup.controllers").exists()
    assert first["fastmango_container_cgroup_version"] == (2 if v2 else 1)
    assert first["container_spec_cpu_quota"] == 50000
    assert first["container_spec_cpu_period"] == 100000
    assert first["fastmango_container_cpu_limit_cores"] == 0.5
    assert first["container_spec_memory_limit_bytes"] == MEMORY_LIMIT
    assert first["fastmango_container_memory_limit_bytes"] == MEMORY_LIMIT
    assert 45 * MiB <= first["container_memory_usage_bytes"] < MEMORY_LIMIT
    assert 45 * MiB <= first["container_memory_working_set_bytes"] < MEMORY_LIMIT
    assert first["fastmango_container_pids_current"] == 1
    assert first["fastmango_container_pids_limit"] == 64
    assert "container_cpu_cfs_throttled_periods_total" in first
    assert "fastmango_container_cpu_utilization_ratio" not in first

    time.sleep(1.0)
    second = values(c.collect())
    # busy, held to 0.5 cores by a 0.5 core quota
    assert 0.5 <= second["fastmango_container_cpu_utilization_ratio"] <= 1.3
    assert second["container_cpu_cfs_periods_total"] > first["container_cpu_cfs_periods_total"]
    assert second["container_cpu_cfs_throttled_periods_total"] > 0
    assert second["container_cpu_cfs_throttled_seconds_total"] > 0
    assert 0.3 <= second["container_cpu_usage_seconds_total"] < 2.0
    if v2 or (CGROUP_ROOT / "unified").is_dir():
        assert "container_pressure_cpu_waiting_seconds_total" in second
