"""Wiring: audio source -> DSP -> STT in one worker thread, typed events out to a front end.

The worker owns every MLX and rustymimi object (it loads them itself). Front ends read
the bounded event queue; they never touch a model.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import AudioError, FileSource, MicSource
from .config import Config
from .dsp import Dsp, Levels
from .events import Event, Status
from .hub import ModelError, locate_stt
from .stt import SttEngine, load_model

log = logging.getLogger(__name__)

EVENT_QUEUE_SIZE = 1000  # a front end that stops reading loses the oldest events, never blocks audio
JOIN_SECONDS = 5.0


@dataclass(frozen=True)
class Stopped:
    """The worker has finished (end of file, error or stop request); nothing follows."""

    error: str | None = None


def transcribe(blocks: Iterable[np.ndarray], engine: SttEngine, dsp: Dsp | None = None,
               on_levels: Callable[[Levels], None] | None = None) -> Iterator[Event]:
    """Run blocks through DSP (optional) and the engine, then flush: the offline pipeline."""
    for block in blocks:
        if dsp is not None:
            block, levels = dsp.process(block)
            if on_levels is not None:
                on_levels(levels)
        yield from engine.step(block)
    yield from engine.flush()


def open_source(spec: str, config: Config) -> FileSource | MicSource:
    """An existing path is a rehearsal file; anything else names a microphone."""
    if spec and Path(spec).expanduser().is_file():
        return FileSource(Path(spec).expanduser(), realtime=config.audio.realtime)
    return MicSource(spec or None, channel=config.audio.channel, queue_seconds=config.audio.queue_seconds)


class SttWorker(threading.Thread):
    """Loads the STT model in its own thread, then source -> DSP -> engine until stopped."""

    def __init__(self, config: Config, dsp: Dsp, *, input_spec: str | None = None,
                 events: queue.Queue | None = None):
        super().__init__(name="stt-worker")
        self.config = config
        self.dsp = dsp
        self.input_spec = config.audio.input if input_spec is None else input_spec
        self.events: queue.Queue = events or queue.Queue(EVENT_QUEUE_SIZE)
        self._stop_requested = threading.Event()

    def post(self, item: object) -> None:
        """Queue an item for the front end, dropping the oldest one if it is not keeping up."""
        while True:
            try:
                self.events.put_nowait(item)
                return
            except queue.Full:
                try:
                    self.events.get_nowait()
                except queue.Empty:
                    pass

    def stop(self) -> None:
        """Ask the worker to finish after the current block, and wait for it."""
        self._stop_requested.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(JOIN_SECONDS)

    def run(self) -> None:
        error = None
        try:
            self._run()
        except (AudioError, ModelError) as e:
            error = str(e)
            self.post(Status("stt", error, "error"))
        except Exception as e:  # top of the worker loop: report, never die silently
            log.exception("STT worker failed")
            error = f"{type(e).__name__}: {e}"
            self.post(Status("stt", f"STT stopped: {error}", "error"))
        finally:
            self.post(Stopped(error))

    def _run(self) -> None:
        stt = self.config.stt
        self.post(Status("stt", f"loading speech model {stt.model} ({stt.dtype})"))
        model = load_model(locate_stt(stt.model, allow_download=False), stt.dtype)
        engine = SttEngine(model, stt)
        vad = "with" if engine.use_vad else "without"
        self.post(Status("stt", f"speech model ready: {stt.model}, {vad} pause detection"))
        with open_source(self.input_spec, self.config) as source:
            self.post(Status("audio", f"listening to {describe(source)}"))
            for block in source.blocks():
                if self._stop_requested.is_set():
                    break
                out, levels = self.dsp.process(block)
                self.post(levels)
                for event in engine.step(out):
                    self.post(event)
        for event in engine.flush():
            self.post(event)


def describe(source: FileSource | MicSource) -> str:
    """A short name of the input for status lines."""
    if isinstance(source, MicSource):
        return f"microphone {source.device.index} '{source.device.name}' at {source.device_rate} Hz"
    return f"file {source.path} ({source.duration_seconds:.1f} s)"
