"""Wiring and thread lifecycle: audio -> DSP -> STT -> brain -> OSC, typed events out to a front end.

Each model is owned by one thread, which loads it itself: the `stt` thread (every MLX and
rustymimi object), the brain's thread (llama.cpp). The `dispatch` thread takes the brain's
prompts to OSC and the session log. Front ends (terminal, window, tests) only read
`Pipeline.events` and call the control methods; they never touch a model.
"""

from __future__ import annotations

import logging
import queue
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .audio import AudioError, FileSource, MicSource, describe, open_source, rescan_devices
from .brain import BrainWorker, PhraseAssembler
from .config import FRAME_SECONDS, Config
from .dsp import Dsp
from .events import Event, ImagePrompt, Phrase, PhraseEnd, Status, Summary, Word
from .hub import ModelError, locate_stt
from .osc import ControlCommand, ControlServer, OscSender, TargetStatus
from .session import LatencyStats, SessionLog
from .stt import SttEngine, SttModel, load_model

log = logging.getLogger(__name__)

EVENT_QUEUE_SIZE = 2000  # a front end that stops reading loses the oldest events, never blocks a stage
BRAIN_QUEUE_SIZE = 100
JOIN_SECONDS = 10.0
STATS_SECONDS = 1.0
MIC_RETRY_SECONDS = 2.0  # an unplugged microphone is looked for again this often
RTF_BLOCKS = 25  # real-time factor averaged over the last 2 s of blocks
DROP_WARNING_SECONDS = 10.0  # dropped-audio warnings are shown at most this often
NOTHING = object()  # the dispatcher woke up for its once-a-second tick


@dataclass(frozen=True)
class Stopped:
    """The pipeline has finished (end of input, error or stop); nothing follows."""

    error: str | None = None


@dataclass(frozen=True)
class PipelineStats:
    """Health figures for the status bar, about once a second."""

    stt_rtf: float  # STT compute per block / 80 ms (above 1: slower than real time)
    dropped_blocks: int  # input blocks dropped because the STT fell behind (backpressure)
    brain_latency_ms: float  # the last prompt's brain time
    log_path: str
    stt_restarts: int = 0


def load_stt(config: Config) -> SttModel:
    """The default STT loader: the configured checkpoint from a folder or the hub cache, never downloading."""
    return load_model(locate_stt(config.stt.model, allow_download=False), config.stt.dtype)


def script_lines(lines: Iterable[str]) -> Iterator[str]:
    """The phrases of a script: stripped lines, blank lines and `#` comments skipped."""
    for line in lines:
        text = line.strip()
        if text and not text.startswith("#"):
            yield text


class Pipeline:
    """The whole show: start(), control methods from any thread, events out, stop()."""

    def __init__(self, config: Config, *, input_spec: str | None = None, script: Iterable[str] | None = None,
                 record_audio: bool = False, stt_loader: Callable[[Config], SttModel] | None = None,
                 brain_loader: Callable | None = None, events: queue.Queue | None = None,
                 osc: OscSender | None = None,
                 source_opener: Callable[[str, Config], Any] | None = None) -> None:
        """`osc`: a sender the front end owns (kept open at stop). `source_opener(spec, config)` replaces
        `open_source`: any context manager with blocks(), stop() and dropped_blocks (a fake device, a
        generated show); AudioError from it is retried."""
        self.config = config
        self.source_opener = source_opener
        self.input_spec = config.audio.input if input_spec is None and script is None else input_spec
        self.script = script
        self.record_audio = record_audio
        self.stt_loader = stt_loader or load_stt
        self.events: queue.Queue = events or queue.Queue(EVENT_QUEUE_SIZE)
        self.dsp = Dsp(config.dsp)
        self.latency = LatencyStats()
        self.log: SessionLog | None = None
        self.osc: OscSender | None = osc  # a front end may own it, so panic works while the engine is stopped
        self._owns_osc = osc is None
        self.control_server: ControlServer | None = None
        self._brain_out: queue.Queue = queue.Queue(BRAIN_QUEUE_SIZE)
        self.brain = BrainWorker(config.brain, self._brain_out,
                                 **({"loader": brain_loader} if brain_loader else {}))
        self._assembler = PhraseAssembler(config.brain)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._source: Any = None  # FileSource, MicSource or what source_opener gave
        self.engine: SttEngine | None = None  # the STT stage's current engine (counters for health checks)
        self._inputs_done = threading.Event()
        self._block_seconds: deque[float] = deque(maxlen=RTF_BLOCKS)
        self._last_brain_ms = 0.0
        self._dropped_before = 0  # blocks dropped by sources already closed
        self._feeders_lock = threading.Lock()
        self._next_heartbeat = 0.0
        self._dropped_warned = 0  # dropped blocks already reported to the operator
        self._next_drop_warning = 0.0
        self.stt_restarts = 0
        self.error: str | None = None
        self.started = False

    # ---- lifecycle -----------------------------------------------------------------------------

    @property
    def log_path(self) -> Path | None:
        """The session's JSONL log, once started."""
        return self.log.path if self.log is not None else None

    @property
    def running(self) -> bool:
        """True between start() and the end of stop()."""
        return self.started and not self._stopping.is_set()

    def start(self) -> None:
        """Open the log and the OSC sender, then start every stage's thread."""
        self.started = True
        self.log = SessionLog.open(self.config.session, record_audio=self.record_audio, report=self._post,
                                   app_config=self.config)
        self.log.write({"type": "session_start", "input": self.input_spec or "",
                        "script": self.script is not None})
        if self.osc is None:
            self.osc = OscSender(self.config.osc, report=self._post)
        if self.config.control.enabled:
            try:
                self.control_server = ControlServer(self.config.control, self.apply_command,
                                                    on_reject=self._control_rejected)
                self._post(Status("control", f"OSC control in on {self.control_server.address[0]}:"
                                  f"{self.control_server.address[1]}, allowed: {self.config.control.allow}"))
            except OSError as e:
                self._post(Status("control", f"OSC control in could not listen on {self.config.control.host}:"
                                  f"{self.config.control.port}: {e.strerror or e} — pick another control.port",
                                  "error"))
        self.brain.start()
        stages: list[tuple[str, Callable[[], None]]] = [("dispatch", self._run_dispatch)]
        if self.input_spec is not None:
            stages.append(("stt", self._run_stt))
        if self.script is not None:
            stages.append(("script", self._run_script))
        for name, target in stages:
            thread = threading.Thread(target=self._guarded(name, target), name=name)
            self._threads.append(thread)
        self._feeders = sum(1 for name, _ in stages if name != "dispatch")
        if not self._feeders:
            self._inputs_done.set()
        for thread in self._threads:
            thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the inputs ended and the last phrase's prompt went out; True if so."""
        if not self._inputs_done.wait(timeout) or not self.brain.wait_idle(timeout):
            return False
        done = self._brain_out.all_tasks_done  # Queue.join() with a timeout
        with done:
            return done.wait_for(lambda: not self._brain_out.unfinished_tasks, timeout)

    def stop(self) -> None:
        """Stop every stage, join every thread, release the device and close the log (idempotent)."""
        if not self.started or self._stopping.is_set() and not any(t.is_alive() for t in self._threads):
            return
        self._stopping.set()
        if self._source is not None:
            self._source.stop()
        for thread in self._threads:
            if thread.name != "dispatch":
                thread.join(JOIN_SECONDS)
        self.brain.stop()
        self._brain_out.put(None)  # the dispatcher's stop sentinel, after the brain's last prompt
        for thread in self._threads:
            thread.join(JOIN_SECONDS)
        if self.control_server is not None:
            self.control_server.close()
        if self.osc is not None and self._owns_osc:
            self.osc.close()
        if self.log is not None:
            self.log.write({"type": "session_end", "latency": self.latency.summary(), "error": self.error})
            self.log.close()
        alive = [t.name for t in [*self._threads, self.brain] if t.is_alive()]
        if alive:
            log.error("threads still running after stop: %s", ", ".join(alive))
        self._post(Stopped(self.error))

    def _guarded(self, name: str, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception as e:  # top of a stage's thread: report, never die silently
                log.exception("%s stage failed", name)
                self.error = f"{name}: {type(e).__name__}: {e}"
                self._post(Status(name, f"{name} stopped: {type(e).__name__}: {e}", "error"))
            finally:
                if name in ("stt", "script"):
                    self._feeder_done()
        return run

    def _feeder_done(self) -> None:
        with self._feeders_lock:
            self._feeders -= 1
            if self._feeders <= 0:
                self._inputs_done.set()

    # ---- controls (any thread) -----------------------------------------------------------------

    def set_dsp(self, **changes: Any) -> None:
        """Change DSP parameters live (gain_db, agc, gate_threshold...)."""
        self.dsp.update(**changes)
        self._note_control("dsp", changes)

    def brain_control(self, action: str, value: str | float = "") -> None:
        """pause, resume, reset, style, vibe, history or rate."""
        self.brain.control(action, value)
        self._note_control(action, value)

    def freeze(self, on: bool) -> None:
        """Hold the screen: nothing new is sent; on release the newest prompt goes out."""
        if self.osc is not None:
            self.osc.freeze(on)
        self._note_control("freeze", on)

    def panic(self, on: bool) -> None:
        """Send the safe prompt and a panic flag now; nothing else goes out until released."""
        if self.osc is not None:
            self.osc.panic(on)
        self._note_control("panic", on)

    def send_manual(self, text: str) -> None:
        """Send a prompt the operator typed straight to the screen, bypassing the brain."""
        text = text.strip()
        if text and self.osc is not None:
            sent = self.osc.send_text(text)
            self._log({"type": "manual_prompt", "text": text, "sent": sent is not None})

    def resend(self, prompt: ImagePrompt) -> None:
        """Send an earlier prompt again."""
        self.send_manual(prompt.text)

    def type_text(self, line: str) -> None:
        """A typed phrase goes straight to the brain, as if it had been spoken."""
        text = line.strip()
        if text:
            now = time.monotonic()
            self._phrase(Phrase(text, 0.0, 0.0, "typed", closed_at=now))

    def apply_command(self, command: ControlCommand) -> None:
        """An OSC control-in command, already type- and range-checked by the server."""
        action, value = command.action, command.value
        if action == "gain":
            self.set_dsp(gain_db=float(value))  # type: ignore[arg-type]
        elif action == "gate":
            self.set_dsp(gate_threshold=float(value))  # type: ignore[arg-type]
        elif action == "agc":
            self.set_dsp(agc=bool(value))
        elif action == "freeze":
            self.freeze(bool(value))
        elif action == "panic":
            self.panic(bool(value))
        elif action == "pause":
            self.brain_control("pause" if value else "resume")
        elif action in ("style", "vibe"):
            self.brain_control(action, str(value))
        elif action == "reset":
            self.brain_control("reset")
        else:
            self._control_rejected(f"unknown control {action!r} from {command.sender}")

    def _control_rejected(self, why: str) -> None:
        self._post(Status("control", f"ignored: {why}", "warning"))

    def _note_control(self, action: str, value: object) -> None:
        self._log({"type": "control", "action": action, "value": value})

    # ---- events --------------------------------------------------------------------------------

    def _post(self, item: object) -> None:
        """Queue an item for the front end, dropping the oldest if it is not keeping up."""
        while True:
            try:
                self.events.put_nowait(item)
                break
            except queue.Full:
                try:
                    self.events.get_nowait()
                except queue.Empty:
                    pass
        if isinstance(item, Status):
            log.debug("[%s] %s: %s", item.stage, item.level, item.message)  # front ends show it
            self._log(item)

    def _log(self, item: object) -> None:
        if self.log is not None:
            self.log.write(item)

    def _phrase(self, phrase: Phrase) -> None:
        self._post(phrase)
        self._log(phrase)
        if self.osc is not None and self.config.osc.send_transcript:
            self.osc.send_phrase(phrase)
        self.brain.put(phrase)

    def _from_stt(self, event: Event) -> None:
        self._post(event)
        self._log(event)
        if isinstance(event, (Word, PhraseEnd)):
            self._from_stt_phrase(event)

    def _from_stt_phrase(self, event: Word | PhraseEnd) -> None:
        phrase = self._assembler.step(event)
        if phrase is not None:
            self._phrase(Phrase(phrase.text, phrase.t_start, phrase.t_end, phrase.reason,
                                closed_at=time.monotonic()))

    # ---- stages --------------------------------------------------------------------------------

    def _run_stt(self) -> None:
        """Load the speech model, then source -> DSP -> STT until the input ends or stop()."""
        stt = self.config.stt
        self._post(Status("stt", f"loading speech model {stt.model} ({stt.dtype})"))
        try:
            model = self.stt_loader(self.config)
        except ModelError as e:
            self.error = str(e)
            self._post(Status("stt", f"{e} — typed text still reaches the brain", "error"))
            return
        engine = self.engine = SttEngine(model, stt)
        vad = "with" if engine.use_vad else "without"
        self._post(Status("stt", f"speech model ready: {stt.model}, {vad} pause detection"))
        spec = self.input_spec or ""
        is_file = self.source_opener is None and bool(spec) and Path(spec).expanduser().is_file()
        opener = self.source_opener or open_source
        try:
            while not self._stopping.is_set():
                try:
                    with opener(spec, self.config) as source:
                        self._source = source
                        self._post(Status("audio", f"listening to {describe(source)}"))
                        engine = self._listen(source, model, engine)
                    return  # the file ended, or stop()
                except AudioError as e:
                    if is_file:
                        raise
                    self._post(Status("audio", f"{e} — retrying every {MIC_RETRY_SECONDS:g} s", "error"))
                    if self._stopping.wait(MIC_RETRY_SECONDS):
                        return
                    rescan_devices()
                finally:
                    if self._source is not None:
                        self._dropped_before += self._source.dropped_blocks
                    self._source = None
        except AudioError as e:
            self.error = str(e)
            self._post(Status("audio", str(e), "error"))
        finally:
            for event in engine.flush():
                self._from_stt(event)
            if self._assembler.words:  # a model without pause detection: the end of input closes the phrase
                self._from_stt_phrase(PhraseEnd(engine.frames_in, engine.frames_in * FRAME_SECONDS, 1.0, "end"))

    def _listen(self, source: FileSource | MicSource, model: SttModel, engine: SttEngine) -> SttEngine:
        """The audio loop; an STT error restarts the stage with fresh state and the show goes on."""
        record = self.log.record if self.log is not None and self.record_audio else None
        send_level = self.osc is not None and self.config.osc.send_level
        for block in source.blocks():
            if self._stopping.is_set():
                break
            start = time.perf_counter()
            if record is not None:
                record(block)
            out, levels = self.dsp.process(block)
            self._post(levels)
            if send_level:
                self.osc.send_level(levels.peak_out)  # type: ignore[union-attr]
            try:
                for event in engine.step(out):
                    self._from_stt(event)
            except Exception as e:  # the model's step: restart the stage, keep the show going
                log.exception("STT step failed")
                self.stt_restarts += 1
                self._post(Status("stt", f"speech recognition failed ({type(e).__name__}: {e}); "
                                  "restarted with fresh state", "error"))
                engine = self.engine = SttEngine(model, self.config.stt)
            self._block_seconds.append(time.perf_counter() - start)
        return engine

    def _run_script(self) -> None:
        """Each script line is a phrase; the next one waits until the brain has answered."""
        assert self.script is not None
        for text in script_lines(self.script):
            if self._stopping.is_set():
                return
            self.type_text(text)
            while not self.brain.wait_idle(0.2):
                if self._stopping.is_set():
                    return

    def _run_dispatch(self) -> None:
        """Brain results -> OSC, log, latency, front end; health figures and heartbeat once a second."""
        next_stats = time.monotonic() + STATS_SECONDS
        while True:
            try:
                item = self._brain_out.get(timeout=max(0.0, next_stats - time.monotonic()))
            except queue.Empty:
                item = NOTHING
            if item is None:
                return
            if item is not NOTHING:
                try:
                    self._dispatch(item)
                finally:
                    self._brain_out.task_done()
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + STATS_SECONDS
                self._tick()

    def _dispatch(self, item: object) -> None:
        if isinstance(item, ImagePrompt):
            sent = self.osc.send_prompt(item) if self.osc is not None else None
            self.latency.add(item, sent)
            self._last_brain_ms = item.latency_ms
            self._post(item)
            if self.log is not None:
                self.log.write(item, sent_at=sent)
        elif isinstance(item, Summary):
            if self.osc is not None and self.config.osc.send_summary:
                self.osc.send_summary(item)
            self._post(item)
            self._log(item)
        else:
            self._post(item)

    def _tick(self) -> None:
        if self.osc is not None:
            now = time.monotonic()
            if self.config.osc.heartbeat_seconds and now >= self._next_heartbeat:
                self._next_heartbeat = now + self.config.osc.heartbeat_seconds
                self.osc.heartbeat()
            for status in self.osc.statuses():
                self._post(status)
        stats = self.stats()
        self._post(stats)
        self._warn_dropped(stats)

    def _warn_dropped(self, stats: PipelineStats) -> None:
        """Backpressure made visible: a rate-limited warning when input blocks were dropped."""
        new = stats.dropped_blocks - self._dropped_warned
        now = time.monotonic()
        if new <= 0 or now < self._next_drop_warning:
            return
        self._dropped_warned = stats.dropped_blocks
        self._next_drop_warning = now + DROP_WARNING_SECONDS
        self._post(Status("stt", f"STT is {stats.stt_rtf:.1f} x slower than real time: dropped {new} blocks "
                          f"({new * FRAME_SECONDS:.1f} s of audio, {stats.dropped_blocks} in all) to stay within "
                          f"audio.queue_seconds = {self.config.audio.queue_seconds:g} s", "warning"))

    def stats(self) -> PipelineStats:
        """The current health figures."""
        per_block = statistics.fmean(self._block_seconds) if self._block_seconds else 0.0
        dropped = self._dropped_before + getattr(self._source, "dropped_blocks", 0)
        return PipelineStats(per_block / FRAME_SECONDS, dropped,
                             self._last_brain_ms, str(self.log_path or ""), self.stt_restarts)


__all__ = ["Pipeline", "PipelineStats", "Stopped", "TargetStatus", "describe", "open_source"]
