"""The speech engine seen from the main process: a stream begins, blocks are fed, the stream finishes.

`feed` never blocks a live input: a block that would put more than `audio.queue_seconds` in
flight, or that arrives while the engine is down, is dropped and counted (`behind`, `down`,
`lost`). The answers come back on the pipe's reader thread, which only counts them and hands
their events to the stream's sink. The worker's side is speech/worker.py, which only the worker
process imports.
"""

from __future__ import annotations

import logging
import multiprocessing
import statistics
import threading
from collections import deque
from collections.abc import Callable

import numpy as np

from voicevibe.config import FRAME_SECONDS, Config, SttConfig
from voicevibe.events import PhraseEnd, SegmentReset, Status, Word
from voicevibe.workers.messages import (
    AudioBlock,
    FromWorker,
    SttBegin,
    SttCounters,
    SttFlush,
    SttMemory,
    SttMemoryQuery,
    SttStepped,
)
from voicevibe.workers.stage import Loader, Report, Stage

log = logging.getLogger(__name__)

RTF_BLOCKS = 25  # real-time factor averaged over the last 2 s of blocks
FLUSH_SECONDS = 30.0  # the end of a stream waits this long for the last words
STOP_FLUSH_SECONDS = 2.0  # at Stop, this long
DEFAULT_LOADER = "voicevibe.speech.worker:load_stt"  # the configured checkpoint, never downloading

SpeechEvents = tuple[Word | PhraseEnd | SegmentReset | Status, ...]
Sink = Callable[[SpeechEvents], None]  # takes a block's events at once, never blocks (a queue's put)


class SttStage(Stage):
    """The speech engine seen from the main process: `begin` a stream, `feed` blocks, `finish`."""

    stage, label, target = "stt", "speech engine", "voicevibe.speech.worker:run_stt_worker"

    def __init__(self, config: Config, report: Report, loader: Loader = DEFAULT_LOADER) -> None:
        # Blocks numbered up to this are dropped unstepped by the worker (a Stop skips the backlog); shared,
        # so it reaches the worker at once, past the blocks already in the pipe, and outlives restarts.
        self._skip = multiprocessing.get_context("spawn").RawValue("Q", 0)
        super().__init__(config.supervisor, report, loader, config.stt)
        self._stream: SttConfig | None = None
        self._sink: Sink | None = None
        self._bound = 1
        self._in_flight: deque[int] = deque()
        self._flushed = 0
        self._seconds: deque[float] = deque(maxlen=RTF_BLOCKS)
        self.counters = SttCounters()
        self.behind = 0  # blocks not sent: queue_seconds of audio already in flight (the engine too slow)
        self.down = 0  # blocks not sent: the engine not running (loading, restarting, failed)
        self.lost = 0  # blocks sent to a worker that died before answering
        self.restarts = 0  # worker processes restarted during a stream
        self.on_step: Callable[[float], None] | None = None  # each stepped block's compute time (doctor --speed)
        self.memory: SttMemory | None = None  # the worker's last answer to `ask_memory`
        self._memory_asked = 0

    def worker_args(self) -> tuple[object, ...]:
        """The shared skip counter."""
        return (self._skip,)

    def rtf(self) -> float:
        """Compute per block over the last 2 s of blocks, against the 80 ms of audio each holds."""
        with self._cond:
            return statistics.fmean(self._seconds) / FRAME_SECONDS if self._seconds else 0.0

    def begin(self, config: SttConfig, sink: Sink, *, queue_seconds: float) -> None:
        """Start a stream: fresh model state, these settings; each block's events go to `sink`."""
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
            seq = self.next_seq()
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
            seq = self.next_seq()
        if self.worker.send(SttFlush(seq)):
            with self._cond:
                self._cond.wait_for(lambda: self._flushed >= seq or not self.worker.ready,
                                    STOP_FLUSH_SECONDS if stopping else FLUSH_SECONDS)
        with self._cond:
            self._skip.value = max(self._skip.value, seq)  # a flush not done in time is dropped too
            self._stream = self._sink = None

    def ask_memory(self) -> int:
        """Ask the worker for MLX's memory figures; the question's number (`memory.seq` once answered), 0 when
        the worker is not running."""
        with self._cond:
            self._memory_asked += 1
            seq = self._memory_asked
        return seq if self.worker.ready and self.worker.send(SttMemoryQuery(seq)) else 0

    def on_ready(self) -> None:
        """A restarted worker carries on with the stream."""
        with self._cond:
            stream = self._stream
        if stream is not None:
            self.worker.send(SttBegin(stream))

    def on_message(self, message: FromWorker) -> None:
        """A block's answer: counted first (the engine answered), then its events handed on, in order, without
        waiting on what is done with them (the phrase gate's own thread does that)."""
        if isinstance(message, SttMemory):
            self.memory = message
            return
        if not isinstance(message, SttStepped):
            log.warning("speech engine sent an unexpected %s", type(message).__name__)
            return
        with self._cond:
            while self._in_flight and self._in_flight[0] <= message.seq:
                self._in_flight.popleft()
            if message.flushed:
                self._flushed = message.seq
            elif message.stepped:
                self._seconds.append(message.seconds)
                if self.on_step is not None:
                    self.on_step(message.seconds)
            self.counters = message.counters
            if self._sink is not None and message.events:
                self._sink(message.events)  # a queue's put, under the lock: a finished stream's last words come first
            self._cond.notify_all()

    def on_down(self, cause: str) -> None:
        """Blocks sent to a worker that died are lost: counted, never replayed."""
        with self._cond:
            if self._stream is not None:
                self.restarts += 1
            self.lost += len(self._in_flight)
            self._in_flight.clear()
            self._cond.notify_all()
