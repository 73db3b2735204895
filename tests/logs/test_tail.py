"""The tailer, step by step on real files: each rotation kind, copies, restarts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fastmango.collector.logs.tail import Tailer


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def texts(tailer: Tailer, clock: Clock, step: float = 1.0) -> list[str]:
    clock.t += step
    return [e[0] for _s, events in tailer.poll() for e in events]


def make(tmp_path: Path, pattern: str, **kw: object) -> tuple[Tailer, Clock]:
    clock = Clock()
    t = Tailer([str(tmp_path / pattern)], clock=clock, multiline=False, **kw)  # type: ignore[arg-type]
    return t, clock


def write(path: Path, *lines: str) -> None:
    with path.open("a") as f:
        f.write("".join(line + "\n" for line in lines))


def test_rename_rotation_drains_the_old_file(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "a1", "a2")
    t, clock = make(tmp_path, "app.log")
    assert texts(t, clock) == ["a1", "a2"]
    write(log, "a3")
    log.rename(tmp_path / "app.log.1")  # out of the glob, still open
    write(tmp_path / "app.log.1", "a4")  # the app writes on until it reopens
    write(log, "b1")
    assert sorted(texts(t, clock)) == ["a3", "a4", "b1"]
    assert texts(t, clock, 10) == []  # the old file lingered, then was let go
    assert len(t.streams) == 1 and t.forgotten
    t.close()


def test_copytruncate_reads_the_rest_from_the_copy(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "a1")
    t, clock = make(tmp_path, "app.log*")
    assert texts(t, clock) == ["a1"]
    write(log, "a2", "a3")  # not read yet when the rotation happens
    shutil.copyfile(log, tmp_path / "app.log.1")
    with log.open("r+b") as f:
        f.truncate(0)
    write(log, "b1")
    assert sorted(texts(t, clock)) == ["a2", "a3", "b1"]
    assert texts(t, clock) == []
    t.close()


def test_a_copy_is_not_read_twice(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "a1", "a2")
    t, clock = make(tmp_path, "*.log*")
    assert texts(t, clock) == ["a1", "a2"]
    shutil.copyfile(log, tmp_path / "backup.log")
    write(log, "a3")
    assert texts(t, clock) == ["a3"]
    t.close()


def test_delete_and_recreate(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "a1")
    t, clock = make(tmp_path, "app.log")
    assert texts(t, clock) == ["a1"]
    write(log, "a2")
    log.unlink()
    write(log, "b1")
    assert sorted(texts(t, clock)) == ["a2", "b1"]
    t.close()


def test_truncated_and_rewritten_past_the_offset(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "old 1", "old 2")
    t, clock = make(tmp_path, "app.log")
    assert texts(t, clock) == ["old 1", "old 2"]
    with log.open("r+b") as f:
        f.truncate(0)
    write(log, "new line one", "new line two", "new 3")  # longer than before
    assert texts(t, clock) == ["new line one", "new line two", "new 3"]
    t.close()


def test_restart_resumes_from_checkpoints(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "a1", "a2")
    t, clock = make(tmp_path, "app.log")
    assert texts(t, clock) == ["a1", "a2"]
    saved = t.checkpoints()
    t.close()
    write(log, "a3")
    again, clock2 = make(tmp_path, "app.log", checkpoints=saved)
    assert texts(again, clock2) == ["a3"]
    # a rotation while stopped: the old file (same head) is found under its new name
    log.rename(tmp_path / "app.log.1")
    write(tmp_path / "app.log.1", "a4")
    write(log, "b1")
    saved = again.checkpoints()
    again.close()
    third, clock3 = make(tmp_path, "app.log*", checkpoints=saved)
    assert sorted(texts(third, clock3)) == ["a4", "b1"]
    third.close()


def test_partial_first_line_waits(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"no newline yet")
    t, clock = make(tmp_path, "app.log")
    assert texts(t, clock) == [] and not t.streams
    with log.open("ab") as f:
        f.write(b" - now\n")
    assert texts(t, clock) == ["no newline yet - now"]
    assert os.path.getsize(log) == t.checkpoints()[next(iter(t.streams))][1]
    t.close()


def test_behind_counts_what_the_writer_is_ahead(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "a1", "a2")
    t, clock = make(tmp_path, "app.log", read_chunk=4)
    texts(t, clock)  # opens the file, reads 4 bytes: "a1\na" (one line handed out)
    (fp,) = t.streams
    assert t.behind() == {fp: log.stat().st_size - 3}
    while texts(t, clock):
        pass
    assert t.behind() == {fp: 0}  # caught up
    write(log, "a3" * 10)
    assert t.behind() == {fp: 21}  # written, not read yet
    t.close()
    assert t.behind() == {}  # nothing open
