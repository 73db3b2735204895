"""An open-loop load generator: ``python loadgen.py URL RATE SECONDS OUT.json``.

Sends GET ``URL`` at a steady ``RATE`` per second for ``SECONDS``: request ``i`` is due at
``t0 + i / RATE`` whatever the earlier ones do, and goes out on the first free one of
``THREADS`` threads, each with its own keep-alive connection (``http.client``: little
client-side CPU, so the latency measured is the server's plus the loopback). Connections
are opened before ``t0``. Writes one record per request to ``OUT.json``: wall-clock start
and end, latency (s), status (0 for a transport error).
"""

from __future__ import annotations

import http.client
import json
import queue
import sys
import threading
import time
from urllib.parse import urlsplit

THREADS = 32


def main() -> None:
    url, rate, seconds, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    parts = urlsplit(url)
    n = int(rate * seconds)
    due: queue.Queue[float | None] = queue.Queue()
    records: list[dict[str, float]] = []
    lock = threading.Lock()
    ready = threading.Barrier(THREADS + 1)

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        conn.connect()
        ready.wait()
        while (at := due.get()) is not None:
            delay = at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            start, t = time.time(), time.perf_counter()
            try:
                conn.request("GET", parts.path)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
                status = 0
            latency = time.perf_counter() - t
            with lock:
                records.append({"start": start, "end": start + latency, "latency": latency,
                                "status": status})  # fmt: skip
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    ready.wait()
    t0 = time.perf_counter() + 0.05
    for i in range(n):
        due.put(t0 + i / rate)
    for _ in threads:
        due.put(None)
    for t in threads:
        t.join()
    with open(out, "w") as f:
        json.dump(records, f)


if __name__ == "__main__":
    main()
