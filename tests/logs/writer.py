"""A log-writing process for the tests: ``python writer.py PATH COUNT RATE``.

Writes COUNT numbered lines at about RATE lines/s with O_APPEND, as an app's file handler
does: it reopens the path when it was renamed or deleted (like logging's
WatchedFileHandler), and holds a shared flock on PATH.lock around each write, so a
rotator holding the exclusive lock can copy and truncate without losing a line.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time


def main() -> None:
    path, count, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    lock = os.open(path + ".lock", os.O_CREAT | os.O_RDWR, 0o644)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
    started = time.monotonic()
    for i in range(count):
        fcntl.flock(lock, fcntl.LOCK_SH)
        try:
            try:
                moved = os.stat(path).st_ino != os.fstat(fd).st_ino
            except FileNotFoundError:
                moved = True
            if moved:
                os.close(fd)
                fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            os.write(fd, f"{stamp}Z INFO writer: seq={i} payload {'x' * (i % 50)}\n".encode())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
        ahead = (i + 1) / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    os.close(fd)


if __name__ == "__main__":
    main()
