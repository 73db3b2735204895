"""Several workers, one exposition: merging, dead workers' counts kept, fresh totals."""

from __future__ import annotations

import json
import multiprocessing
import os
import warnings
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fastmango.collector.app_registry import LAYOUT, Metrics, render
from fastmango.collector.app_workers import (
    ProcessMetrics,
    SharedDir,
    default_dir,
    prune_stale_dirs,
    secure_dir,
)

COUNT = (
    "http_server_request_duration_seconds_count",
    (("http_request_method", "GET"), ("http_response_status_code", "200"), ("http_route", "/a")),
)


def values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def metrics_with(requests: int, active: int = 0) -> Metrics:
    m = Metrics()
    rec = m.new_http_record(("GET", "/a", 200))
    rec[0] = float(requests)  # all in the first bucket
    m.active["GET"] = active
    return m


class World:
    """Fake pids: which "workers" are alive is up to the test."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.alive: set[tuple[int, float]] = set()

    def worker(self, pid: int, started: float = 1.0) -> SharedDir:
        self.alive.add((pid, started))
        return SharedDir(self.path, f"{pid}-x{started}", pid, started,
                         alive=lambda p, s: (p, s) in self.alive)  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def total(shared: SharedDir) -> float:
    return values(render(shared.collect()))[COUNT]


def test_live_workers_are_summed(world: World) -> None:
    a, b = world.worker(101), world.worker(102)
    a.write(metrics_with(3, active=1).dump())
    b.write(metrics_with(4, active=2).dump())
    m = values(render(a.collect()))
    assert m[COUNT] == 7
    assert m["http_server_active_requests", (("http_request_method", "GET"),)] == 3
    assert m["fastmango_app_workers", ()] == 2


def test_a_dead_workers_counts_survive_and_counters_never_go_back(world: World) -> None:
    a, b = world.worker(101), world.worker(102)
    a.write(metrics_with(3, active=1).dump())
    b.write(metrics_with(4, active=5).dump())
    assert total(a) == 7
    world.alive.discard((102, 1.0))  # b died (gunicorn recycled it)
    m = values(render(a.collect()))
    assert m[COUNT] == 7  # its 4 requests are in the archive now
    assert m["http_server_active_requests", (("http_request_method", "GET"),)] == 1
    assert m["fastmango_app_workers", ()] == 1
    assert not b.file.exists() and (world.path / "archive.json").exists()
    # its replacement reuses the pid (a recycled pid is a different process)
    c = world.worker(102, started=2.0)
    c.write(metrics_with(1).dump())
    a.write(metrics_with(10).dump())
    assert total(c) == 4 + 10 + 1
    assert total(a) == 15  # merging again does not count the archive twice


def test_a_crash_between_archive_and_unlink_does_not_double_count(world: World) -> None:
    a, b = world.worker(101), world.worker(102)
    a.write(metrics_with(1).dump())
    b.write(metrics_with(4).dump())
    saved = b.file.read_text()
    world.alive.discard((102, 1.0))
    assert total(a) == 5
    b.file.write_text(saved)  # as if the unlink never happened
    assert total(a) == 5
    assert not b.file.exists()


def test_files_of_another_layout_or_garbage_are_ignored(world: World) -> None:
    a = world.worker(101)
    a.write(metrics_with(2).dump())
    (world.path / "w-999-old.json").write_text(json.dumps({"v": "0:old", "http": []}))
    (world.path / "w-998-bad.json").write_text("{not json")
    assert total(a) == 2


@pytest.mark.parametrize("folder", ["short", "long-" + "x" * 120])  # past sun_path's 108
def test_exposition_waits_for_fresh_totals_of_the_other_workers(
    tmp_path: Path, folder: str
) -> None:
    """Two real ProcessMetrics in one folder: the asked one flushes at once, not in 60 s."""
    one, two = ProcessMetrics(flush_interval=60), ProcessMetrics(flush_interval=60)
    try:
        one.bind(tmp_path / folder, check_owner=False)
        two.bind(tmp_path / folder, check_owner=False)
        two.metrics.new_http_record(("GET", "/a", 200))[0] += 5  # not written yet
        one.metrics.new_http_record(("GET", "/a", 200))[0] += 1
        assert values(one.exposition())[COUNT] == 6
    finally:
        one.close()
        two.close()


def _child(path: str, n: int) -> None:
    p = ProcessMetrics(flush_interval=60)
    p.bind(Path(path), check_owner=False)
    p.metrics.new_http_record(("GET", "/a", 200))[0] += n
    p.close()  # a last write, as the lifespan shutdown does


def test_real_worker_processes_merged_after_they_exit(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")  # as uvicorn --workers starts them
    children = [ctx.Process(target=_child, args=(str(tmp_path), n)) for n in (3, 4)]
    for c in children:
        c.start()
    for c in children:
        c.join(30)
        assert c.exitcode == 0
    me = ProcessMetrics(flush_interval=60)
    try:
        me.bind(tmp_path, check_owner=False)
        m = values(me.exposition())
        assert m[COUNT] == 7  # both children are dead: their totals went to the archive
        assert m["fastmango_app_workers", ()] == 1
        assert me.shared is not None
        assert [p.name for p in tmp_path.glob("w-*.json")] == [me.shared.file.name]
    finally:
        me.close()


def test_a_forked_child_starts_from_zero(tmp_path: Path) -> None:
    p = ProcessMetrics(flush_interval=60)
    try:
        p.bind(tmp_path, check_owner=False)
        p.metrics.new_http_record(("GET", "/a", 200))[0] += 2
        r, w = os.pipe()
        with warnings.catch_warnings():  # 3.12+ warns of fork() beside threads: that is us
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: fresh state, a folder bound anew on first use
            os.close(r)
            ok = not p.bound and not p.metrics.http and p.shared is None
            os.write(w, b"1" if ok else b"0")
            os._exit(0)
        os.close(w)
        assert os.read(r, 1) == b"1"
        os.close(r)
        os.waitpid(pid, 0)
        assert values(p.exposition())[COUNT] == 2
    finally:
        p.close()


def test_default_folder_is_per_master_and_port_and_private(tmp_path: Path) -> None:
    d = default_dir(str(tmp_path), 1000, 4242, 8000)
    assert d == tmp_path / "fastmango-app-1000-4242-8000"
    assert default_dir("/t", 0, 1, "/run/app.sock").name == "fastmango-app-0-1-_run_app_sock"
    assert secure_dir(d, check_owner=True)
    assert d.stat().st_mode & 0o777 == 0o700
    link = tmp_path / "link"
    link.symlink_to(d)
    assert not secure_dir(link, check_owner=True)


def test_folders_of_dead_masters_are_pruned(tmp_path: Path) -> None:
    uid = os.getuid()
    dead, alive = (
        tmp_path / f"fastmango-app-{uid}-999999-8000",
        default_dir(str(tmp_path), uid, os.getpid(), 8000),
    )
    dead.mkdir()
    alive.mkdir()
    prune_stale_dirs(tmp_path, uid)
    assert not dead.exists() and alive.exists()


def test_environment_folder_wins_and_unbound_serves_own_totals(tmp_path: Path) -> None:
    p = ProcessMetrics(flush_interval=60)
    try:
        p.metrics.new_http_record(("GET", "/a", 200))[0] += 1
        assert values(p.exposition())[COUNT] == 1  # no folder yet: this process alone
        p.bind_default({"FASTMANGO_METRICS_DIR": str(tmp_path / "env")}, ("127.0.0.1", 80))
        assert p.shared is not None and p.shared.path == tmp_path / "env"
        assert json.loads(p.shared.file.read_text())["v"] == LAYOUT
    finally:
        p.close()


def test_render_escapes_label_values() -> None:
    m = Metrics()
    m.new_http_record(("GET", '/a"b\\c\nd', 200))[0] = 1
    parsed = values(render(m))
    routes = {dict(k[1]).get("http_route") for k in parsed}
    assert '/a"b\\c\nd' in routes
