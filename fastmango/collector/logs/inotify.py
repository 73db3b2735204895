"""Linux inotify through ctypes: a file descriptor that becomes readable when a watched
folder changes, so an idle tailer sleeps in ``select`` instead of polling.

Where inotify is missing (not Linux, or the watch limit is reached) :func:`open_inotify`
returns None and the tailer falls back to polling once per ``poll_interval``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
DIR_MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
)
_HEADER = struct.Struct("iIII")


class Inotify:
    """Watches folders; :meth:`read` drains the queued events (names of changed files)."""

    def __init__(self, libc: ctypes.CDLL, fd: int) -> None:
        self._libc = libc
        self.fd = fd
        self._watches: dict[str, int] = {}

    def watch(self, folder: str) -> bool:
        if folder in self._watches:
            return True
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(folder), DIR_MASK)
        if wd < 0:
            return False
        self._watches[folder] = wd
        return True

    def read(self) -> list[str]:
        try:
            data = os.read(self.fd, 64 * 1024)
        except BlockingIOError:
            return []
        names: list[str] = []
        pos = 0
        while pos + _HEADER.size <= len(data):
            _wd, _mask, _cookie, length = _HEADER.unpack_from(data, pos)
            pos += _HEADER.size
            names.append(data[pos : pos + length].rstrip(b"\0").decode("utf-8", "replace"))
            pos += length
        return names

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_inotify() -> Inotify | None:
    """An inotify instance, or None where the system has none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    return Inotify(libc, fd)
