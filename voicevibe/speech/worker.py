"""The speech engine in its own process: conditioned blocks in, transcript events out.

`run_stt_worker` runs in the worker process and owns every MLX and rustymimi object: it loads
the model once, then steps a fresh `SttEngine` per stream (`SttBegin`), one `AudioBlock` at
a time. `SttStage` is its main-process side: `feed` never blocks a live input (a block that
would put more than `audio.queue_seconds` in flight, or that arrives while the engine is
down, is dropped and counted), and the events come back on the pipe's reader thread.
"""

from __future__ import annotations

import logging
import multiprocessing
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from voicevibe.config import FRAME_SECONDS, Config, SttConfig
from voicevibe.events import (AudioBlock, PhraseEnd, SegmentReset, Shutdown, Status, SttBegin, SttCounters, SttFlush,
                     SttStepped, WorkerFailed, WorkerLoading, WorkerReady, Word)
from voicevibe.hub import ModelError, locate_stt
from voicevibe.workers.supervisor import EXIT_FAILED, EXIT_STEP_ERRORS, Link, Worker, WorkerSpec

log = logging.getLogger(__name__)

RTF_BLOCKS = 25  # real-time factor averaged over the last 2 s of blocks
STEP_ERRORS = 3  # step exceptions within STEP_ERROR_SECONDS: the worker restarts instead of looping
STEP_ERROR_SECONDS = 10.0
FLUSH_SECONDS = 30.0  # the end of a stream waits this long for the last words
STOP_FLUSH_SECONDS = 2.0  # at Stop, this long

Progress = Callable[[str, float], None]
SttLoader = Callable[[SttConfig, Progress], Any]  # -> stt.SttModel, in the worker process


def load_stt(config: SttConfig, progress: Progress) -> Any:
    """The default loader: the configured checkpoint from a folder or the hub cache, never downloading."""
    from voicevibe.speech.engine import load_model

    return load_model(locate_stt(config.model, allow_download=False), config.dtype, progress=progress)


# ---- in the worker process ----------------------------------------------------------------------


def run_stt_worker(link: Link, loader: SttLoader, config: SttConfig, skip: Any) -> int:
    """Load the model, then step one engine per stream until Shutdown.

    Blocks and flushes numbered `skip.value` or lower (a shared counter the main process sets at
    Stop) are answered without being stepped, so a backlog never delays a Stop.
    """
    from voicevibe.speech.engine import SttEngine  # MLX is imported in the worker only

    link.send(WorkerLoading(f"loading speech model {config.model} ({config.dtype})", 0.0))
    try:
        model = loader(config, lambda message, fraction: link.send(WorkerLoading(message, fraction)))
    except ModelError as e:
        link.send(WorkerFailed(str(e)))
        return EXIT_FAILED
    engine = SttEngine(model, config)
    vad = "with" if engine.use_vad else "without"
    link.send(WorkerReady(f"speech model ready: {config.model}, {vad} pause detection"))
    errors: deque[float] = deque()  # when the recent step errors happened
    step_errors = 0  # in this stream
    while True:
        message = link.recv()
        if isinstance(message, Shutdown):
            return 0
        if isinstance(message, SttBegin):
            engine.close()
            engine = SttEngine(model, message.config)
            step_errors = 0
        elif isinstance(message, (AudioBlock, SttFlush)) and message.seq <= skip.value:
            link.send(SttStepped(message.seq, (), 0.0, engine.counters(step_errors), flushed=isinstance(message, SttFlush),
                                 stepped=False, sent_at=time.monotonic()))
        elif isinstance(message, AudioBlock):
            start = time.perf_counter()
            try:
                events = engine.step(message.samples())
            except Exception as e:  # the model's step: fresh state, and the show goes on
                log.exception("STT step failed")
                now = time.monotonic()
                errors.append(now)
                while errors and now - errors[0] > STEP_ERROR_SECONDS:
                    errors.popleft()
                if len(errors) >= STEP_ERRORS:
                    return EXIT_STEP_ERRORS  # the supervisor restarts the process, with backoff
                step_errors += 1
                engine.close()
                engine = SttEngine(model, engine.config)
                events = [Status("stt", f"speech recognition failed ({type(e).__name__}: {e}); "
                                 "restarted with fresh state", "error")]
            link.send(SttStepped(message.seq, tuple(events), time.perf_counter() - start,
                                 engine.counters(step_errors), sent_at=time.monotonic()))
        elif isinstance(message, SttFlush):
            start = time.perf_counter()
            events = engine.flush()
            link.send(SttStepped(message.seq, tuple(events), time.perf_counter() - start,
                                 engine.counters(step_errors), flushed=True, sent_at=time.monotonic()))


# ---- in the main process ------------------------------------------------------------------------

Sink = Callable[[tuple[Word | PhraseEnd | SegmentReset | Status, ...]], None]


class SttStage:
    """The speech engine seen from the main process: `begin` a stream, `feed` blocks, `finish`."""

    def __init__(self, config: Config, report: Callable[[object], None], loader: SttLoader = load_stt) -> None:
        # Blocks numbered up to this are dropped unstepped by the worker (a Stop skips the backlog); shared,
        # so it reaches the worker at once, past the blocks already in the pipe, and outlives restarts.
        self._skip = multiprocessing.get_context("spawn").RawValue("Q", 0)
        self._loader = loader
        self.worker = Worker(self.spec(config.stt), config.supervisor, on_message=self._on_message,
                             on_down=self._on_down, report=report)
        self._cond = threading.Condition()
        self._stream: SttConfig | None = None
        self._sink: Sink | None = None
        self._bound = 1
        self._in_flight: deque[int] = deque()
        self._seq = 0
        self._flushed = 0
        self._seconds: deque[float] = deque(maxlen=RTF_BLOCKS)
        self.counters = SttCounters()
        self.behind = 0  # blocks not sent: queue_seconds of audio already in flight (the engine too slow)
        self.down = 0  # blocks not sent: the engine not running (loading, restarting, failed)
        self.lost = 0  # blocks sent to a worker that died before answering
        self.restarts = 0  # worker processes restarted during a stream

    def spec(self, config: SttConfig) -> WorkerSpec:
        """What the worker process runs for these settings."""
        return WorkerSpec("stt", "speech engine", run_stt_worker, (self._loader, config, self._skip))

    @property
    def ready(self) -> bool:
        """True when the model is loaded and takes blocks."""
        return self.worker.ready

    def rtf(self) -> float:
        """Compute per block over the last 2 s of blocks, against the 80 ms of audio each holds."""
        with self._cond:
            return statistics.fmean(self._seconds) / FRAME_SECONDS if self._seconds else 0.0

    def wait_ready(self, stop: threading.Event) -> bool:
        """Wait until the model is loaded (True), or it cannot be (False: `worker.failure` says why), or `stop`."""
        while not stop.is_set():
            with self._cond:
                if self.worker.ready:
                    return True
                if self.worker.failure:
                    return False
                self._cond.wait(0.1)
        return False

    def begin(self, config: SttConfig, sink: Sink, *, queue_seconds: float) -> None:
        """Start a stream: fresh model state, these settings; events go to `sink` (the reader thread)."""
        with self._cond:
            self._stream, self._sink = config, sink
            self._bound = max(1, round(queue_seconds / FRAME_SECONDS))
            self._in_flight.clear()
            self._seconds.clear()  # the real-time factor of this stream only
            self.counters = SttCounters()
            self.behind = self.down = self.lost = self.restarts = 0
        self.worker.send(SttBegin(config))  # not ready yet: sent again when it is

    def feed(self, block: np.ndarray, *, wait: bool = False, stop: threading.Event | None = None) -> bool:
        """Send one block; False when it was dropped. `wait`: a file played as fast as possible waits
        for the engine (while it is up or restarting) instead of dropping."""
        with self._cond:
            while wait and not (stop is not None and stop.is_set()) and not self.worker.failure and not (
                    self.worker.ready and len(self._in_flight) < self._bound):
                self._cond.wait(0.1)
            if not self.worker.ready or self._stream is None:
                self.down += 1
                return False
            if len(self._in_flight) >= self._bound:
                self.behind += 1
                return False
            self._seq += 1
            seq = self._seq
            self._in_flight.append(seq)
        if not self.worker.send(AudioBlock.of(seq, block)):
            with self._cond:
                if seq in self._in_flight:
                    self._in_flight.remove(seq)
                    self.down += 1
            return False
        return True

    def finish(self, *, stopping: bool = False) -> None:
        """End the stream: the last words come out through the sink, then the sink is let go.

        `stopping` (the operator pressed Stop): blocks still waiting in the worker are skipped and the
        flush gets STOP_FLUSH_SECONDS, so a slow model never holds up a Stop.
        """
        with self._cond:
            if stopping:
                self._skip.value = self._seq
            self._seq += 1
            seq = self._seq
        if self.worker.send(SttFlush(seq)):
            with self._cond:
                self._cond.wait_for(lambda: self._flushed >= seq or not self.worker.ready,
                                    STOP_FLUSH_SECONDS if stopping else FLUSH_SECONDS)
        with self._cond:
            self._skip.value = max(self._skip.value, seq)  # a flush not done in time is dropped too
            self._stream = self._sink = None

    def _on_message(self, message: object) -> None:
        if isinstance(message, WorkerReady):
            with self._cond:
                stream = self._stream
                self._cond.notify_all()
            if stream is not None:
                self.worker.send(SttBegin(stream))  # a restarted worker carries on with the stream
        elif isinstance(message, WorkerFailed):
            with self._cond:
                self._cond.notify_all()
        elif isinstance(message, SttStepped):
            with self._cond:
                sink = self._sink
            if sink is not None and message.events:
                sink(message.events)
            with self._cond:
                while self._in_flight and self._in_flight[0] <= message.seq:
                    self._in_flight.popleft()
                if message.flushed:
                    self._flushed = message.seq
                elif message.stepped:
                    self._seconds.append(message.seconds)
                self.counters = message.counters
                self._cond.notify_all()
        else:
            log.warning("speech engine sent an unexpected %s", type(message).__name__)

    def _on_down(self, cause: str) -> None:
        with self._cond:
            if self._stream is not None:
                self.restarts += 1
            self.lost += len(self._in_flight)
            self._in_flight.clear()
            self._cond.notify_all()
