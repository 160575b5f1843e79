"""A model worker's own side: the first function its process runs, its end of the pipe, its heartbeat.

A worker:
- ignores Ctrl-C (the main process decides when it ends) and exits as soon as its pipe
  closes, so a main process that dies, even by `kill -9`, leaves no worker holding 2 GB;
- bumps a shared heartbeat counter from a thread of its own, so a worker that is SIGSTOPped,
  or wedged with Python's lock held, is seen as hung;
- imports its model's code itself (`resolve`), so the main process never imports MLX or llama.cpp.
"""

from __future__ import annotations

import importlib
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from voicevibe.macos import Activity

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 0.25  # how often a worker's heartbeat thread bumps the counter
EXIT_SHUTDOWN, EXIT_FAILED, EXIT_STEP_ERRORS = 0, 3, 4  # worker exit codes with a meaning


def resolve(target: str | Callable[..., Any]) -> Callable[..., Any]:
    """A function named "package.module:function" (imported now, in this process), or a callable as is."""
    if not isinstance(target, str):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return,unused-ignore]


class Link:
    """A worker's end of the pipe: `recv` from the reader thread's queue, `send` from any thread."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._send_lock = threading.Lock()
        self._inbox: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, name="link-reader", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                os._exit(EXIT_SHUTDOWN)  # the main process is gone: never outlive it, whatever is running
            self._inbox.put(message)

    def recv(self, timeout: float | None = None) -> Any:
        """The next message from the main process; queue.Empty after `timeout`."""
        return self._inbox.get(timeout=timeout)

    def send(self, message: object) -> None:
        """Send one message to the main process (thread-safe)."""
        try:
            with self._send_lock:
                self._conn.send(message)
        except (OSError, EOFError):
            os._exit(EXIT_SHUTDOWN)


def _beat(counter: Any) -> None:
    while True:
        counter.value += 1
        time.sleep(HEARTBEAT_SECONDS)


def worker_main(conn: Connection, heartbeat: Any, log_level: int, target: str, args: tuple[object, ...]) -> None:
    """The first function a worker process runs: heartbeat, pipe, then `target(link, *args)` (target:
    "module:function", imported here)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s [worker %(process)d]: %(message)s")
    threading.Thread(target=_beat, args=(heartbeat,), name="heartbeat", daemon=True).start()
    activity = Activity("VoiceVibe model worker: steps must run on time")  # macOS: no App Nap; held until exit
    activity.begin()
    link = Link(conn)
    try:
        code = resolve(target)(link, *args) or EXIT_SHUTDOWN
    except Exception:  # top of the worker: say what broke; the supervisor restarts it
        log.exception("worker failed")
        code = 1
    os._exit(code)  # no interpreter teardown: native libraries' threads must not delay the exit
