"""A show's audio: the input (a microphone, looked for again while unplugged, or a recording) through the
DSP to the speech engine, on the audio thread.

The microphone is found by the input's name at Start; after an unplug the same device (its name and
host API) is looked for again, never whatever now has its index or is the default: until it comes
back, the status says it is missing and lists the inputs there are.

The audio thread records, conditions, meters and sends each 80 ms block; the speech engine never
slows it down (the speech stage drops and counts what it cannot take in time). A live input of
exact zeros for a second is reported (a denied microphone permission on macOS). When the input
ends the engine is flushed, so the last words come out, and an open phrase is closed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from voicevibe.audio import AudioError, MicSource, Source, describe, open_source, rescan_devices
from voicevibe.config import Config
from voicevibe.dsp import Dsp
from voicevibe.events import Status
from voicevibe.miccheck import DigitalSilence, silence_status
from voicevibe.runtime.feed import EventFeed
from voicevibe.runtime.phrase_gate import PhraseGate
from voicevibe.show.transitions import TransitionSender
from voicevibe.speech.stage import SttStage

log = logging.getLogger(__name__)

MIC_RETRY_SECONDS = 2.0  # an unplugged microphone is looked for again this often
SourceOpener = Callable[[str, Config], Source]


class AudioFeed:
    """Source -> DSP -> speech engine until the input ends or `stopping` is set; `run` on the audio thread."""

    def __init__(self, config: Config, spec: str, *, stt: SttStage, dsp: Dsp, osc: TransitionSender, feed: EventFeed,
                 gate: PhraseGate, stopping: threading.Event, record: Callable[[np.ndarray], None] | None = None,
                 opener: SourceOpener | None = None) -> None:
        self.config, self.spec = config, spec
        self.stt, self.dsp, self.osc, self.feed, self.gate = stt, dsp, osc, feed, gate
        self.stopping, self.record = stopping, record
        self.opener = opener
        self.error: str | None = None  # why the show could not hear its input (None: it did, or was stopped)
        self._source: Source | None = None
        self._dropped_before = 0  # blocks dropped by sources already closed

    @property
    def dropped_blocks(self) -> int:
        """Blocks the input itself dropped (the audio thread did not read them in time), all sources together."""
        return self._dropped_before + getattr(self._source, "dropped_blocks", 0)

    def stop_source(self) -> None:
        """End the current input now (any thread): its blocks() returns."""
        source = self._source
        if source is not None:
            source.stop()

    def run(self) -> None:
        """Wait for the speech model, then feed it until the input ends or the show stops."""
        stt = self.stt
        if not stt.ready:
            self.feed.post(Status("stt", "waiting for the speech model to load"))
        if not stt.wait_ready(self.stopping):
            if stt.worker.failure:
                self.error = stt.worker.failure
                self.feed.post(Status("stt", f"{stt.worker.failure} — typed text still reaches the brain", "error"))
            return
        is_file = self.opener is None and bool(self.spec) and Path(self.spec).expanduser().is_file()
        wait = not self.config.audio.realtime and (is_file or self.opener is not None)
        stt.begin(self.config.stt, self.gate.put, queue_seconds=self.config.audio.queue_seconds)
        try:
            self._listen_with_retries(is_file, wait)
        finally:
            stt.finish(stopping=self.stopping.is_set())
            self.gate.end_of_input(stt.counters.frames_in)

    def _listen_with_retries(self, is_file: bool, wait: bool) -> None:
        opener = self.opener or open_source
        spec = self.spec
        while not self.stopping.is_set():
            try:
                with opener(spec, self.config) as source:
                    self._source = source
                    if isinstance(source, MicSource):
                        spec = self._pin(spec, source)
                    self.feed.post(Status("audio", f"listening to {describe(source)}"))
                    self._listen(source, wait)
                return  # the file ended, or the show stopped
            except AudioError as e:
                if is_file:
                    self.error = str(e)
                    self.feed.post(Status("audio", str(e), "error"))
                    return
                self.feed.post(Status("audio", f"{e} — retrying every {MIC_RETRY_SECONDS:g} s", "error"))
                if self.stopping.wait(MIC_RETRY_SECONDS):
                    return
                rescan_devices()
            finally:
                if self._source is not None:
                    self._dropped_before += self._source.dropped_blocks
                self._source = None

    def _pin(self, spec: str, mic: MicSource) -> str:
        """The microphone opened is the one reopened after an unplug: by its name and host API, never by an index
        or "the default", which may be another device by then (AirPods take both)."""
        if spec.strip().isdigit() and spec.strip() != mic.device.key:
            self.feed.post(Status("audio", f"input {spec.strip()} is a device index, and indices change when devices "
                                  f"come and go: set audio.input to {mic.device.key!r} (the window saves the name)",
                                  "warning"))
        return mic.device.key

    def _listen(self, source: Source, wait: bool) -> None:
        """The audio loop: record, condition, meter, send; the speech engine never slows it down."""
        send_level = self.config.osc.send_level
        mic = source if isinstance(source, MicSource) else None
        silence = DigitalSilence()  # a microphone's exact zeros: a denied mic on macOS
        for block in source.blocks():
            if self.stopping.is_set():
                break
            if mic is not None and silence.step(block):
                self.feed.post(silence_status(describe(mic), mic.channel))
            if self.record is not None:
                self.record(block)
            out, levels = self.dsp.process(block)
            self.feed.post(levels)
            if send_level:
                self.osc.send_level(levels.peak_out)
            self.stt.feed(out, wait=wait, stop=self.stopping)
