"""One app, several worker processes: each worker's totals, merged on a metrics request.

``uvicorn --workers N`` and gunicorn start N workers from one master; each has its own
memory, and a scrape reaches just one of them. So each worker's
:class:`ProcessMetrics` keeps its totals in memory (the request path takes no lock)
and a thread of its own writes them into a small JSON file in a folder all workers
share (:class:`SharedDir`): ``$FASTMANGO_METRICS_DIR``, or by default
``<tmp>/fastmango-app-<uid>-<ppid>-<port>``, where ``ppid`` is the master (the same in
every worker of uvicorn and gunicorn) and ``port`` the listening port the first
request names (so two apps started from one shell never mix).

The thread writes every ``flush_interval`` seconds, and at once when asked: each
worker binds a Unix datagram socket named after the folder and its worker id (an
abstract socket on Linux, a file in the folder elsewhere), and the worker that answers
a metrics request sends every other worker a request number, then waits (at most
``FRESH_WAIT`` seconds) until each file it reached acknowledges that number. So a
scrape sees every worker's counts as of the scrape, not as of the last periodic write.
A datagram can only make a worker write its file sooner; it carries nothing else.

Merging holds an ``flock`` on the folder: a worker still alive (same pid *and* same
process start time, so a recycled pid is not mistaken for it) is added in; a dead
worker's totals are folded into ``archive.json`` (which remembers the folded worker
ids, so a crash between writing it and removing the file never counts twice) and its
files removed. Counters never go backwards when gunicorn recycles a worker; only a
worker killed with SIGKILL loses what it recorded since its last write. Requests in
flight are summed over live workers only. Uvicorn's spawned workers leave with
``os._exit()`` (atexit does not run), so the middleware also writes on lifespan shutdown.

The default folder is created ``0700`` and refused if it is not ours or is a symlink
(the worker then serves its own totals only); default folders of dead masters are
removed when a new one is made.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import socket
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from fastmango.collector.app_registry import LAYOUT, Metrics, render

log = logging.getLogger("fastmango.app")

try:  # Linux and macOS; elsewhere merging is unlocked (one worker per app there)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

#: seconds a metrics request waits for the other workers' fresh totals
FRESH_WAIT = 0.25
_SUN_PATH_MAX = 100  # sockaddr_un.sun_path is 104 (macOS) or 108 (Linux) bytes
#: Linux has abstract Unix sockets: no file, no length limit from the folder's path
ABSTRACT = sys.platform.startswith("linux")


def process_alive(pid: int, started: float) -> bool:
    """Whether process ``pid`` runs and is the one that started at ``started``."""
    import psutil  # imported on a metrics request, not at the app's start

    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - started) < 0.05 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def default_dir(tmp: str, uid: int, ppid: int, port: object) -> Path:
    """``<tmp>/fastmango-app-<uid>-<ppid>-<port>``: one folder per master and port."""
    tag = "".join(c if c.isalnum() else "_" for c in str(port))[-40:]
    return Path(tmp) / f"fastmango-app-{uid}-{ppid}-{tag}"


def secure_dir(path: Path, check_owner: bool) -> bool:
    """Create ``path`` (0700); whether it is a usable folder (ours, not a symlink)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        log.warning("fastmango: metrics folder %s unusable: %s", path, exc)
        return False
    ok = stat.S_ISDIR(st.st_mode)
    if check_owner:
        ok = ok and st.st_uid == os.getuid() and not st.st_mode & 0o022
    if not ok:
        log.warning("fastmango: refusing metrics folder %s (not a private folder of ours)", path)
    return ok


def prune_stale_dirs(tmp: Path, uid: int) -> None:
    """Remove default folders of this user whose master process is gone (old runs)."""
    import psutil

    for path in tmp.glob(f"fastmango-app-{uid}-*-*"):
        try:
            ppid = int(path.name.split("-")[3])
        except (IndexError, ValueError):
            continue
        if ppid > 1 and not psutil.pid_exists(ppid):
            shutil.rmtree(path, ignore_errors=True)


class SharedDir:
    """The folder of worker files; see the module docstring."""

    ARCHIVE = "archive.json"
    MAX_FOLDED_IDS = 1000

    def __init__(
        self,
        path: Path,
        worker_id: str,
        pid: int,
        started: float,
        alive: Callable[[int, float], bool] = process_alive,
    ) -> None:
        self.path = Path(path)
        self.worker_id = worker_id
        self.pid = pid
        self.started = started
        self.alive = alive
        self.file = self.path / f"w-{worker_id}.json"
        self._written = ""
        self._tag = hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:24]

    def address(self, worker_id: str) -> str | None:
        """The flush-request socket of a worker: abstract on Linux, else a file if it fits."""
        if ABSTRACT:
            return f"\0fastmango-{self._tag}-{worker_id}"
        path = str(self.path / f"s-{worker_id}.sock")
        return path if len(path) <= _SUN_PATH_MAX else None

    # -- files ---------------------------------------------------------------------
    def _write_json(self, target: Path, data: Mapping[str, Any]) -> None:
        self._write_text(target, json.dumps(data, separators=(",", ":")))

    def _write_text(self, target: Path, text: str) -> None:
        tmp = target.with_name(f".{target.name}.{self.worker_id}.tmp")
        tmp.write_text(text)
        os.replace(tmp, target)  # readers see the old file or the new one, never a part

    def write(self, data: dict[str, Any], ack: int = 0) -> None:
        """Write this worker's dumped :class:`Metrics`, acknowledging request ``ack``
        (not when nothing changed since the last write: an idle app writes nothing)."""
        data.update(v=LAYOUT, id=self.worker_id, pid=self.pid, started=self.started, ack=ack)
        text = json.dumps(data, separators=(",", ":"))
        if text != self._written or not self.file.exists():
            self._write_text(self.file, text)
            self._written = text

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("v") == LAYOUT else None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover
            yield
            return
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    # -- fresh totals ------------------------------------------------------------------
    def request_flush(self, request: int) -> list[Path]:
        """Ask every other worker to write now; the files of those reached."""
        reached: list[Path] = []
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            for path in self.path.glob("w-*.json"):
                address = self.address(path.name[2:-5])
                if path == self.file or address is None:
                    continue
                try:
                    sock.sendto(str(request).encode(), address)
                except OSError:  # a dead worker's socket, or its queue is full
                    continue
                reached.append(path)
        return reached

    def wait_acks(self, files: list[Path], request: int, timeout: float = FRESH_WAIT) -> bool:
        """Wait until each file acknowledges ``request``; False at the timeout."""
        deadline = time.monotonic() + timeout
        pending = list(files)
        while pending:
            pending = [f for f in pending if int((self._read(f) or {}).get("ack", 0)) < request]
            if not pending:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def collect(self) -> Metrics:
        """Totals over the archive and the live workers; dead workers go to the archive."""
        with self._locked():
            archive_path = self.path / self.ARCHIVE
            archive = self._read(archive_path) or {"v": LAYOUT, "folded": []}
            folded: list[str] = list(archive.get("folded", []))
            totals = Metrics()
            totals.add(archive, active=False)
            dead: list[tuple[Path, dict[str, Any]]] = []
            for path in sorted(self.path.glob("w-*.json")):
                data = self._read(path)
                if data is None:
                    continue
                wid = str(data.get("id"))
                if wid in folded:  # folded, but the unlink did not happen
                    path.unlink(missing_ok=True)
                    continue
                if wid == self.worker_id or self.alive(int(data["pid"]), float(data["started"])):
                    totals.add(data)
                    totals.workers += 1
                else:
                    dead.append((path, data))
            if dead:
                fold = Metrics()
                fold.add(archive, active=False)
                for _, data in dead:
                    fold.add(data, active=False)
                    totals.add(data, active=False)
                    folded.append(str(data["id"]))
                new_archive = fold.dump()
                new_archive.pop("active")
                new_archive.update(v=LAYOUT, folded=folded[-self.MAX_FOLDED_IDS :])
                self._write_json(archive_path, new_archive)
                for path, data in dead:
                    path.unlink(missing_ok=True)
                    (self.path / f"s-{data['id']}.sock").unlink(missing_ok=True)  # not Linux
        return totals


# -- one process ---------------------------------------------------------------------
def _process_start_time() -> float:
    import psutil

    return float(psutil.Process().create_time())


class ProcessMetrics:
    """The metric state of this process, its shared folder and its flusher thread.

    The request path checks :attr:`bound` and writes into :attr:`metrics`; inference
    tracking writes under :attr:`lock`, since it may run in any thread. After a fork the
    child starts afresh (a new worker id, zero totals, a folder bound on first use).
    """

    def __init__(
        self,
        flush_interval: float = 1.0,
        alive: Callable[[int, float], bool] = process_alive,
    ) -> None:
        self.flush_interval = flush_interval
        self.alive = alive
        self._sock: socket.socket | None = None
        self._reset()
        with contextlib.suppress(AttributeError):  # no fork on this platform
            os.register_at_fork(after_in_child=self._reset)
        atexit.register(self.flush)

    def _reset(self) -> None:
        if self._sock is not None:  # the parent's socket, inherited over a fork
            self._sock.close()
        self.metrics = Metrics()
        self.shared: SharedDir | None = None
        self.bound = False  # a folder was chosen (or refused): the request path checks this
        self.lock = threading.Lock()
        self._bind_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = None
        self._ack = 0

    # -- binding ---------------------------------------------------------------------
    def bind(self, path: Path | None, check_owner: bool = True) -> None:
        """Use ``path`` as the shared folder (None: serve this process only). Once."""
        with self._bind_lock:
            if not self.bound:
                self._bind(path, check_owner)
                self.bound = True

    def _bind(self, path: Path | None, check_owner: bool) -> None:
        if path is None or not secure_dir(path, check_owner):
            return
        pid = os.getpid()
        shared = SharedDir(
            path, f"{pid}-{secrets.token_hex(4)}", pid, _process_start_time(), self.alive
        )
        address = shared.address(shared.worker_id)
        if address is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.bind(address)
                sock.settimeout(self.flush_interval)
                self._sock = sock
            except OSError as exc:
                sock.close()
                log.debug("fastmango: no flush socket in %s: %s", path, exc)
        self.shared = shared
        self.flush()  # the folder knows this worker from now on
        threading.Thread(target=self._flush_loop, name="fastmango-metrics-flush",
                         daemon=True).start()  # fmt: skip

    def bind_environ(self, environ: Mapping[str, str]) -> None:
        """Bind ``$FASTMANGO_METRICS_DIR`` if set (inference tracked outside any request)."""
        explicit = environ.get("FASTMANGO_METRICS_DIR")
        if explicit:
            self.bind(Path(explicit), check_owner=False)

    def bind_default(self, environ: Mapping[str, str], server: object, tmp: str = "") -> None:
        """Bind ``$FASTMANGO_METRICS_DIR``, else the default folder of this master and port."""
        if environ.get("FASTMANGO_METRICS_DIR"):
            self.bind_environ(environ)
            return
        port = server
        if isinstance(server, (tuple, list)) and server:  # (host, port), or (unix path, None)
            port = server[1] if len(server) > 1 and server[1] is not None else server[0]
        tmp = tmp or tempfile.gettempdir()
        self.bind(default_dir(tmp, os.getuid(), os.getppid(), port))
        if self.shared is not None:
            threading.Thread(target=prune_stale_dirs, args=(Path(tmp), os.getuid()),
                             name="fastmango-metrics-prune", daemon=True).start()  # fmt: skip

    # -- writing -----------------------------------------------------------------------
    def _flush_loop(self) -> None:
        sock, stop = self._sock, self._stop
        while not stop.is_set():
            if sock is None:
                stop.wait(self.flush_interval)
            else:
                try:
                    self._take_request(sock.recv(64))
                    sock.setblocking(False)
                    with contextlib.suppress(OSError):  # more requests queued: one write
                        while True:
                            self._take_request(sock.recv(64))
                except TimeoutError:
                    pass
                except OSError:  # closed (fork, close): stop
                    return
                finally:
                    with contextlib.suppress(OSError):
                        sock.settimeout(self.flush_interval)
            if not stop.is_set():
                self.flush()

    def _take_request(self, data: bytes) -> None:
        with contextlib.suppress(ValueError):
            self._ack = max(self._ack, int(data))

    def flush(self) -> None:
        """Write this worker's file now (the flusher does it every ``flush_interval``)."""
        shared = self.shared
        if shared is None or shared.pid != os.getpid():
            return
        # the flusher, a metrics request and atexit may race: dump and write as one, so an
        # older dump is never written over a newer one (counters must not go back)
        with self._flush_lock:
            with self.lock:  # inference threads write under it; the loop thread needs none
                data = self.metrics.dump()
            try:
                shared.write(data, self._ack)
            except OSError as exc:
                log.debug("fastmango: cannot write %s: %s", shared.file, exc)

    def close(self) -> None:
        """Stop the flusher after a last write (tests; workers just exit)."""
        self._stop.set()
        self.flush()
        if self._sock is not None:
            self._sock.close()
            address = self.shared.address(self.shared.worker_id) if self.shared else None
            if address is not None and not ABSTRACT:
                Path(address).unlink(missing_ok=True)

    def exposition(self) -> str:
        """The whole app's exposition: every worker's fresh totals merged (blocking I/O)."""
        shared = self.shared
        if shared is None:
            totals = Metrics()
            with self.lock:
                totals.add(self.metrics.dump())
            totals.workers = 1
            return render(totals)
        request = time.time_ns()
        reached = shared.request_flush(request)
        self.flush()
        shared.wait_acks(reached, request)
        return render(shared.collect())


_default: ProcessMetrics | None = None
_default_lock = threading.Lock()


def default_process_metrics() -> ProcessMetrics:
    """This process's metric state, shared by the middleware and inference tracking."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = ProcessMetrics()
    return _default
