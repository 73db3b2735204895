"""The app as the agent's child (``fastmango agent -- uvicorn app:app``).

The agent starts the command with its stdout and stderr on pipes; the logs service
reads them as the sources ``app:stdout`` and ``app:stderr`` (and copies them to the
agent's own stdout and stderr, so ``docker logs`` still shows them). Signals the agent
receives (SIGTERM, SIGINT) are passed on; when the child exits, the agent stops and
exits with the child's code (128 + N when a signal N ended it, as a shell reports).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from typing import Any


class Child:
    def __init__(self, argv: list[str], proc: subprocess.Popen[bytes]) -> None:
        self.argv = argv
        self.proc = proc
        self.code: int | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, agent: Any, argv: list[str]) -> Child:
        """Start ``argv``; its output becomes a log source of the agent's logs service
        (started here if the settings had no files to follow)."""
        from fastmango.agent.logs.service import LogsService

        svc = agent.services.get("logs")
        if svc is None and agent.settings.logs.enabled:
            svc = LogsService(agent.settings)
            await svc.start(agent)
            agent.services["logs"] = svc
        if svc is None:
            # logs off: the output goes straight through
            proc = subprocess.Popen(argv, start_new_session=True)  # noqa: ASYNC220 - returns at once
        else:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            try:
                proc = subprocess.Popen(  # noqa: ASYNC220 - fork+exec returns at once
                    argv, stdout=out_w, stderr=err_w, start_new_session=True
                )
            except OSError:
                for fd in (out_r, out_w, err_r, err_w):
                    os.close(fd)
                raise
            os.close(out_w)
            os.close(err_w)
            svc.add_pipe(out_r, "app:stdout", echo=1)
            svc.add_pipe(err_r, "app:stderr", echo=2)
        child = cls(argv, proc)
        child._task = asyncio.create_task(child._wait(agent), name="child")
        return child

    async def _wait(self, agent: Any) -> None:
        rc = await asyncio.to_thread(self.proc.wait)
        self.code = 128 - rc if rc < 0 else rc
        agent.request_exit()

    def forward(self, sig: int) -> None:
        """Pass a signal the agent received on to the child."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    async def stop(self, deadline: float) -> None:
        """Wait for the child to exit (SIGTERM if it still runs, SIGKILL after
        ``deadline`` seconds)."""
        if self.proc.poll() is None:
            self.forward(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(self.proc.wait), max(0.1, deadline * 0.8))
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await asyncio.to_thread(self.proc.wait)
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
