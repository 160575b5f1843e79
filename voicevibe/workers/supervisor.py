"""Model workers seen from the main process, and the supervisor that keeps them running.

Each model lives in a worker process (the spawn start method, so it behaves the same on macOS
and Linux) that owns every object of that model; the main process never loads one, and never
imports the modules that do: a `WorkerSpec` names the worker's function as "module:function",
imported in the worker only (workers/process.py is the worker's side). The two talk over one
pipe, in frozen dataclasses from workers/messages.py.

The supervisor thread notices a worker that exits, is killed or stops beating, says so in
plain words ("speech engine stopped (signal 9): restarting in 0.5 s"), restarts it with
backoff, and gives up after `supervisor.max_restarts` deaths within
`supervisor.restart_window_seconds`, saying what to do.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from voicevibe.config import SupervisorConfig
from voicevibe.events import WorkerState, WorkerStateName
from voicevibe.workers.messages import FromWorker, Shutdown, WorkerFailed, WorkerLoading, WorkerReady
from voicevibe.workers.process import EXIT_STEP_ERRORS, worker_main

log = logging.getLogger(__name__)

LOAD_HANG_SECONDS = 120.0  # while a worker starts and loads its model, silence is allowed this long
CHECK_SECONDS = 0.1  # the supervisor looks at every worker (and runs the stages' checks) this often
BACKOFF_SECONDS = (0.5, 1.0, 2.0, 4.0, 8.0)  # waits before restarts 1, 2, 3...; the last repeats
STABLE_SECONDS = 60.0  # a worker up this long starts again from the shortest backoff
STOP_SECONDS = 5.0  # a worker asked to shut down gets this long before it is killed
_CLOSE = object()  # ends a pipe's sender thread


@dataclass(frozen=True)
class WorkerSpec:
    """What to run in a worker process: `target(link, *args)`, target a "module:function" that only the worker
    imports (so that the main process never imports a model's code)."""

    stage: str  # "stt" or "brain": the stage name in status events
    label: str  # how the operator calls it: "speech engine", "brain"
    target: str
    args: tuple[object, ...] = ()


def describe_exit(code: int | None) -> str:
    """A worker's exit status in plain words: "signal 9 (SIGKILL)", "repeated step errors"..."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"signal {-code}"
    return {EXIT_STEP_ERRORS: "repeated errors in its model step", 1: "an error (see the log)"}.get(
        code, f"exit code {code}")


class Worker:
    """One model's worker process; the supervisor restarts it when it dies or hangs.

    `on_message(msg)` gets the worker's own messages on the pipe's reader thread;
    `on_down(cause)` is called when it died (work sent to it is lost); `report(WorkerState)`
    tells the front end. `send` never blocks: a sender thread writes to the pipe, so a worker that
    stops reading (SIGSTOPped, or its Python lock held for seconds; a pipe's buffer is 8 KB on macOS)
    holds up neither the audio thread nor the supervisor, which sees the hang and kills it.
    """

    def __init__(self, spec: WorkerSpec, config: SupervisorConfig, *, on_message: Callable[[FromWorker], None],
                 on_down: Callable[[str], None], report: Callable[[WorkerState], None]) -> None:
        self.spec, self.config = spec, config
        self.on_message, self.on_down, self.report = on_message, on_down, report
        self.state: WorkerStateName = "stopped"
        self.restarts = 0
        self.cause = ""  # why it last died
        self.failure = ""  # why it is not running and will not be restarted ("" unless state is "failed")
        self._lock = threading.RLock()  # the state; never held while writing to the pipe
        self._send_lock = threading.Lock()  # held while the pipe is written to or closed
        self._wake: threading.Event | None = None  # the supervisor's, set on a worker's EOF
        self._process: Any = None
        self._reader: threading.Thread | None = None
        self._sender: threading.Thread | None = None
        self._outbox: queue.SimpleQueue | None = None  # what the sender thread writes, in order
        self._beat: Any = None
        self._beat_seen = (0, 0.0)  # (counter, when it last changed)
        self._deaths: deque[float] = deque()
        self._restart_at = 0.0
        self._up_since = 0.0
        self._unready_deaths = 0  # deaths in a row before the model was loaded
        self._kill_reason = ""
        self._failure = ""  # the WorkerFailed message: the model cannot load, restarting will not help

    @property
    def pid(self) -> int | None:
        """The current worker process's id."""
        process = self._process
        return process.pid if process is not None else None

    @property
    def ready(self) -> bool:
        """True when the model is loaded and the worker takes work."""
        return self.state == "ready"

    def start(self) -> None:
        """Start the worker process (again, after a failure or a stop)."""
        with self._lock:
            if self.state in ("starting", "loading", "ready"):
                return
            self._deaths.clear()
            self._unready_deaths = 0
            self.failure = ""
            self._spawn()

    def send(self, message: object) -> bool:
        """Queue a message for the worker (never blocks); False when it is not running."""
        with self._lock:
            if self._outbox is None or self.state not in ("starting", "loading", "ready"):
                return False
            self._outbox.put(message)
            return True

    def respawn(self, spec: WorkerSpec, cause: str = "") -> None:
        """Stop the worker and start it again with another spec (a model setting changed); see `stop`."""
        self.stop(cause=cause)
        self.spec = spec
        self.restarts = 0
        self.start()

    def kill(self, reason: str) -> None:
        """Kill a worker that misbehaves (hung); the supervisor restarts it, saying `reason`."""
        with self._lock:
            if self._process is not None and self._process.exitcode is None:
                self._kill_reason = reason
                self._process.kill()

    def stop(self, timeout: float = STOP_SECONDS, *, cause: str = "") -> None:
        """Ask the worker to exit, kill it if it does not; no restart follows. With a `cause` (the show goes
        on: a reload, a switch), the work it had is given up like a death's: `on_down(cause)`."""
        with self._lock:
            self.state = "stopped"
            process = self._process
            if self._outbox is not None:
                self._outbox.put(Shutdown())  # after what is queued; a worker that does not read is killed
        if process is not None:
            process.join(timeout)
            if process.exitcode is None:
                process.kill()
                process.join(timeout)
        with self._lock:
            self._close_pipe()
            self._process = None
            threads = (self._reader, self._sender)
        for thread in threads:
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)  # the process is gone: EOF, or a broken pipe, has come or comes at once
        if cause and process is not None:
            self.on_down(cause)

    # -- the supervisor's part --

    def _spawn(self) -> None:
        """Start a process (call with the lock held)."""
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        beat = context.RawValue("Q", 0)
        # daemon: should the app exit without stopping it, multiprocessing ends it instead of waiting on it
        process = context.Process(target=worker_main, name=f"voicevibe-{self.spec.stage}", daemon=True,
                                  args=(child, beat, logging.getLogger().getEffectiveLevel(), self.spec.target,
                                        self.spec.args))
        self._failure = self._kill_reason = ""
        try:
            process.start()
        except OSError as e:  # no process could be made (out of memory, too many processes)
            parent.close()
            child.close()
            self.state = "failed"
            self.failure = (f"{self.spec.label} cannot start a process: {e}. Close other applications, "
                            "then press Start to try again")
            log.error("%s", self.failure)
            self.report(WorkerState(self.spec.stage, "failed", self.failure))
            return
        self.state = "starting"
        child.close()  # the worker's end lives in the worker only: its death closes the pipe
        self._process, self._beat = process, beat
        self._beat_seen = (0, time.monotonic())
        # The reader owns its end of the pipe: it closes it at EOF (the worker gone), so no other thread ever
        # closes a connection under a recv() in progress; the sender writes what send() queued.
        self._outbox = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read, args=(parent,), name=f"{self.spec.stage}-link",
                                        daemon=True)
        self._sender = threading.Thread(target=self._write, args=(parent, self._outbox),
                                        name=f"{self.spec.stage}-send", daemon=True)
        self._reader.start()
        self._sender.start()
        note = f" (restart {self.restarts})" if self.restarts else ""
        self.report(WorkerState(self.spec.stage, "starting", f"{self.spec.label} starting{note}", pid=process.pid))

    def _read(self, conn: Connection) -> None:
        """The pipe's reader thread: the worker's messages, until its end closes."""
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                with self._send_lock:  # never under a write in progress
                    conn.close()
                break
            try:
                if isinstance(message, (WorkerLoading, WorkerReady, WorkerFailed)):
                    self._lifecycle(message)
                else:
                    self.on_message(message)
            except Exception:  # the reader must outlive a bad message: it is the stage's only ear
                log.exception("handling the %s's %s failed", self.spec.label, type(message).__name__)
        if self._wake is not None:
            self._wake.set()

    def _write(self, conn: Connection, outbox: queue.SimpleQueue) -> None:
        """The pipe's sender thread: writes what `send` queued, in order, until the pipe is let go."""
        while (message := outbox.get()) is not _CLOSE:
            with self._send_lock:
                if conn.closed:
                    return
                try:
                    conn.send(message)
                except (OSError, EOFError, ValueError):
                    return  # it died: the supervisor sees the exit

    def _lifecycle(self, message: WorkerLoading | WorkerReady | WorkerFailed) -> None:
        with self._lock:
            if self.state not in ("starting", "loading", "ready"):
                return
            if isinstance(message, WorkerLoading):
                self.state = "loading"
                state = WorkerState(self.spec.stage, "loading", message.message, message.progress, self.pid)
            elif isinstance(message, WorkerReady):
                self.state = "ready"
                self._up_since = time.monotonic()
                self._unready_deaths = 0
                state = WorkerState(self.spec.stage, "ready", message.detail, 1.0, self.pid)
            else:
                self._failure = message.message
                state = None
        if state is not None:
            self.report(state)
        if isinstance(message, (WorkerReady, WorkerFailed)):
            self.on_message(message)

    def check(self, now: float) -> None:
        """Called by the supervisor: notice a death or a hang, restart when the backoff is over."""
        with self._lock:
            if self.state == "restarting" and now >= self._restart_at:
                self.restarts += 1
                self._spawn()
                return
            process = self._process
            if self.state not in ("starting", "loading", "ready") or process is None:
                return
            code = process.exitcode
            if code is None:
                count = self._beat.value
                if count != self._beat_seen[0]:
                    self._beat_seen = (count, now)
                limit = self.config.hang_seconds if self.state == "ready" else LOAD_HANG_SECONDS
                silent = now - self._beat_seen[1]
                if silent <= limit:
                    return
                self._kill_reason = f"stopped answering (no heartbeat for {silent:.1f} s)"
                process.kill()
                process.join(STOP_SECONDS)
                code = process.exitcode
        self._died(process, code, now)

    def _died(self, process: Any, code: int | None, now: float) -> None:
        with self._lock:
            if process is not self._process or self.state not in ("starting", "loading", "ready"):
                return  # stopped or respawned meanwhile (a setting changed): that is not a death
            cause = self._kill_reason or describe_exit(code)
            self.cause = cause
            self._close_pipe()
            if self._failure:
                self.state = "failed"
                message = f"{self.spec.label} cannot start: {self._failure}"
                note = None
            else:
                if self._up_since and now - self._up_since >= STABLE_SECONDS:
                    self._deaths.clear()
                self._deaths.append(now)
                while self._deaths and now - self._deaths[0] > self.config.restart_window_seconds:
                    self._deaths.popleft()
                if not self._up_since:  # reset to 0 when a model loads (_lifecycle) and at Start
                    self._unready_deaths += 1
                give_up = "Check the model and the log (voicevibe doctor), then press Start to try again"
                if len(self._deaths) >= self.config.max_restarts:
                    self.state = "failed"
                    message = (f"{self.spec.label} stopped {len(self._deaths)} times within "
                               f"{self.config.restart_window_seconds:g} s (last: {cause}): not restarting it. "
                               + give_up)
                elif self._unready_deaths >= self.config.max_restarts:  # a slow load that always dies
                    self.state = "failed"
                    message = (f"{self.spec.label} stopped {self._unready_deaths} times in a row before its model "
                               f"was loaded (last: {cause}): not restarting it. " + give_up)
                else:
                    wait = BACKOFF_SECONDS[min(len(self._deaths), len(BACKOFF_SECONDS)) - 1]
                    self.state = "restarting"
                    self._restart_at = now + wait
                    message = f"{self.spec.label} stopped ({cause}): restarting in {wait:g} s"
                note = cause
            self._up_since = 0.0
            if self.state == "failed":
                self.failure = message
        log.warning("%s", message)
        self.report(WorkerState(self.spec.stage, self.state, message))
        if note is not None:
            self.on_down(note)

    def _close_pipe(self) -> None:
        """Stop sending (the sender thread ends); the reader closes the connection when the worker's end is gone."""
        if self._outbox is not None:
            self._outbox.put(_CLOSE)
            self._outbox = None


class Supervisor:
    """One thread that watches every worker (exits, hangs, restarts with backoff) and runs the stages' own
    periodic `checks(now)` (a brain answer overdue) beside it: never on a thread they deliver to."""

    def __init__(self, workers: list[Worker], checks: list[Callable[[float], None]] | None = None) -> None:
        self.workers = workers
        self.checks = checks or []
        self._wake = threading.Event()
        self._stop = threading.Event()
        for worker in workers:
            worker._wake = self._wake
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def start(self) -> None:
        """Start watching (workers are started by their owners)."""
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(CHECK_SECONDS)
            self._wake.clear()
            now = time.monotonic()
            for worker in self.workers:
                try:
                    worker.check(now)
                except Exception:  # top of the supervisor: it must keep watching the others
                    log.exception("supervising the %s failed", worker.spec.label)
            for check in self.checks:
                try:
                    check(now)
                except Exception:  # the same: one stage's check never stops the watching
                    log.exception("a periodic stage check failed")

    def close(self) -> None:
        """Stop watching, then stop every worker (each killed if it does not exit in time)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(STOP_SECONDS)
        for worker in self.workers:
            worker.stop()
