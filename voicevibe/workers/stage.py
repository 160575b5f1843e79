"""The main-process side of one model's worker: its process, the settings every new process gets, numbered work.

`Stage` is what the speech engine's and the brain's sides share: a supervised `Worker` running
`target(link, loader, settings, ...)` in its own process, a condition guarding the stage's state,
a sequence number for the work it hands over, and three hooks: `on_ready` (a new process is
ready: send it what it must know), `on_message` (the worker's own messages, on the pipe's reader
thread) and `on_down` (the process is gone: the work it had is answered otherwise).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar

from voicevibe.config import SupervisorConfig
from voicevibe.events import Status, WorkerState
from voicevibe.workers.messages import FromWorker, WorkerFailed, WorkerReady
from voicevibe.workers.supervisor import Worker, WorkerSpec

Loader = str | Callable[..., Any]  # "module:function" (imported by the worker) or a picklable callable
Report = Callable[[WorkerState | Status], None]


class Stage:
    """One model's worker seen from the main process; subclasses name it and handle its messages."""

    stage: ClassVar[str]  # "stt" or "brain": the name in status events
    label: ClassVar[str]  # how the operator calls it
    target: ClassVar[str]  # the worker's function, "module:function"

    def __init__(self, supervisor: SupervisorConfig, report: Report, loader: Loader, settings: object) -> None:
        self._loader = loader
        self._cond = threading.Condition()  # the stage's state; notified when the worker's state changes
        self._seq = 0  # the last number given to a piece of work
        self.worker = Worker(self.spec(settings), supervisor, on_message=self._received, on_down=self.on_down,
                             report=report)

    def spec(self, settings: object) -> WorkerSpec:
        """What the worker process runs for these settings."""
        return WorkerSpec(self.stage, self.label, self.target, (self._loader, settings, *self.worker_args()))

    def worker_args(self) -> tuple[object, ...]:
        """More arguments for the worker's function, after the loader and the settings."""
        return ()

    @property
    def ready(self) -> bool:
        """True when the model is loaded and takes work."""
        return self.worker.ready

    def wait_ready(self, stop: threading.Event) -> bool:
        """Wait until the model is loaded (True), or it cannot be (False: `worker.failure` says why), or `stop`."""
        with self._cond:
            while not stop.is_set():
                if self.worker.ready:
                    return True
                if self.worker.failure:
                    return False
                self._cond.wait(0.1)
        return False

    def next_seq(self) -> int:
        """A number for the next piece of work (call with `_cond` held)."""
        self._seq += 1
        return self._seq

    def _received(self, message: FromWorker) -> None:
        if isinstance(message, (WorkerReady, WorkerFailed)):
            with self._cond:
                self._cond.notify_all()
            if isinstance(message, WorkerReady):
                self.on_ready()
            return
        self.on_message(message)

    def on_ready(self) -> None:
        """A new worker process loaded its model: send it what it must know (the stream, the settings)."""

    def on_message(self, message: FromWorker) -> None:
        """One of the worker's own messages (on the pipe's reader thread)."""
        raise NotImplementedError

    def on_down(self, cause: str) -> None:
        """The worker died or was stopped for a reload: the work it had must be answered otherwise."""
        raise NotImplementedError
