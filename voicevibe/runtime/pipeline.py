"""Wiring for one show from Start to Stop (`Pipeline`), on the model workers of engines.py.

The main process never runs a model. A `Pipeline` is one show: the audio thread (source ->
DSP -> speech engine), phrase assembly on the speech engine's reader thread, the brain, the
dispatcher (OSC, session log, front end), an optional script thread. Front ends read `events`
and call `apply(command)`; they never touch a model.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from voicevibe.audio import AudioError, FileSource, MicSource, describe, open_source, rescan_devices
from voicevibe.brain.core import PhraseAssembler
from voicevibe.config import FRAME_SECONDS, Config, ConfigError
from voicevibe.control import ControlServer
from voicevibe.show.control import ShowControl, ShowHooks
from voicevibe.runtime.outbox import Dispatcher
from voicevibe.dsp import Dsp
from voicevibe.runtime.engines import Engines, post_latest
from voicevibe.events import (BRAIN_COMMANDS, SHOW_COMMANDS, Command, Freeze, Panic, Phrase, PhraseDropped, PhraseEnd,
                     PipelineStats, SayText, SendPrompt, SetAgc, SetGain, SetGate, Status, Stopped, WorkerState, Word,
                     snake_name)
from voicevibe.show.transitions import ShowSender
from voicevibe.macos import Activity
from voicevibe.miccheck import DigitalSilence, silence_status
from voicevibe.osc import OscSender
from voicevibe.runtime.session import SessionLog
from voicevibe.speech.worker import SttStage
from voicevibe.show.triggers import parse_word_list, phrase_problem

log = logging.getLogger(__name__)

JOIN_SECONDS = 10.0
MIC_RETRY_SECONDS = 2.0  # an unplugged microphone is looked for again this often
DROP_WARNING_SECONDS = 10.0  # a dropped-audio warning for the same cause is shown at most this often


def script_lines(lines: Iterable[str]) -> Iterator[str]:
    """The phrases of a script: stripped lines, blank lines and `#` comments skipped."""
    for line in lines:
        text = line.strip()
        if text and not text.startswith("#"):
            yield text


class Pipeline:
    """One show: start(), `apply(command)` from any thread, events out, stop().

    Without `engines` the pipeline starts its own and closes them at stop (a one-off run).
    `osc`: a sender the front end owns (kept open at stop); `show`: its show control (cues, seeds,
    transitions), else one is made here and `show.file` loaded (ShowError before anything starts).
    `source_opener(spec, config)` replaces `open_source`: any context manager with blocks(), stop()
    and dropped_blocks.
    """

    def __init__(self, config: Config, *, engines: Engines | None = None, input_spec: str | None = None,
                 script: Iterable[str] | None = None, record_audio: bool = False, events: queue.Queue | None = None,
                 osc: OscSender | None = None, source_opener: Callable[[str, Config], Any] | None = None,
                 stt_loader: Callable | None = None, brain_loader: Callable | None = None,
                 show: ShowControl | None = None) -> None:
        self._owns_engines = engines is None
        loaders = {k: v for k, v in (("stt_loader", stt_loader), ("brain_loader", brain_loader)) if v is not None}
        self.engines = engines or Engines(config, events=events, **loaders)
        self.events = self.engines.events
        self.config = config
        self.input_spec = config.audio.input if input_spec is None and script is None else input_spec
        self.script = script
        self.record_audio = record_audio
        self.source_opener = source_opener
        self.dsp = Dsp(config.dsp)
        self.assembler = PhraseAssembler(config.brain)
        self.osc = osc
        self._owns_osc = osc is None
        self.show = show or ShowControl(config, styles=self.engines.brain.assets.styles)
        if show is None and config.show.file:
            self.show.load(config.show.file)
        self._ignored = parse_word_list(config.show.ignore_phrases)
        self._cue_in_phrase = False  # the phrase being spoken fired a cue: it does not go to the brain
        self.log: SessionLog | None = None
        self.control_server: ControlServer | None = None
        self.dispatcher: Dispatcher | None = None
        self._stopping = threading.Event()
        self._stopped = False
        self._threads: list[threading.Thread] = []
        self._inputs_done = threading.Event()
        self._feeders = 0
        self._feeders_lock = threading.Lock()
        self._source: Any = None
        self._dropped_before = 0  # blocks dropped by sources already closed
        self._dropped_warned = (0, 0, 0)  # _drops() at the last warning
        self._next_drop_warning: dict[str, float] = {}  # by cause: when it may be named again
        self.error: str | None = None
        self.started = False
        self._activity = Activity()  # macOS: no App Nap while the show runs

    @property
    def stt(self) -> SttStage:
        """The speech engine's main-process side (counters, real-time factor)."""
        return self.engines.stt

    @property
    def log_path(self) -> Path | None:
        """The session's JSONL log, once started."""
        return self.log.path if self.log is not None else None

    @property
    def latency(self) -> Any:
        """Per-stage latency of this show's prompts."""
        return self.dispatcher.latency if self.dispatcher is not None else None

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start everything, or (on an error) nothing: what was opened is closed again before raising."""
        if self.started:
            raise RuntimeError("a Pipeline runs once; make a new one")
        self.started = True
        try:
            self._start()
        except BaseException:
            self._stopping.set()
            self._close()
            raise

    def _start(self) -> None:
        self._activity.begin()
        self.engines.start()
        self.engines.ensure_running()
        self.log = SessionLog.open(self.config.session, record_audio=self.record_audio, report=self._post,
                                   app_config=self.config)
        self.log.write({"type": "session_start", "input": self.input_spec or "", "script": self.script is not None})
        if self.osc is None:
            self.osc = ShowSender(self.config.osc, report=self._post, show=self.config.show)
            self.show.bind_sender(self.osc)
        self.show.attach(ShowHooks(self._post, self._log, self.engines.brain.command, self._cue_phrase),
                         self.osc if isinstance(self.osc, ShowSender) else None)
        if self.config.control.enabled:
            control = self.config.control
            try:
                self.control_server = ControlServer(control, self.apply, on_reject=self._control_rejected)
                host, port = self.control_server.address
                self._post(Status("control", f"OSC control in on {host}:{port}, allowed: {control.allow}"))
            except ConfigError as e:  # a busy port: the show goes on without control in
                self._post(Status("control", f"{e} — OSC control in is off for this show", "error"))
        self.dispatcher = Dispatcher(self.config, self.osc, self.log, self._post, tick=self._tick,
                                     stats_tick=self._stats_tick)
        self.engines.attach(self._post)
        self.engines.brain.deliver = self.dispatcher.put
        self.dispatcher.start()
        stages = [(name, target) for name, target, wanted in (("audio", self._run_audio, self.input_spec is not None),
                                                               ("script", self._run_script, self.script is not None))
                  if wanted]
        self._feeders = len(stages)
        if not stages:
            self._inputs_done.set()
        for name, target in stages:
            thread = threading.Thread(target=self._guarded(name, target), name=name)
            self._threads.append(thread)
            thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the inputs ended and the last phrase's prompt went out; True if so."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        return (self._inputs_done.wait(left()) and self.engines.brain.wait_idle(left())
                and self.dispatcher is not None and self.dispatcher.wait_empty(left()))

    def stop(self) -> None:
        """Stop every stage, join every thread, release the device and close the log (idempotent)."""
        if not self.started or self._stopped:
            return
        self._stopping.set()
        if self._source is not None:
            self._source.stop()
        for thread in self._threads:
            thread.join(JOIN_SECONDS)
        self._close()
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.error("threads still running after stop: %s", ", ".join(alive))
        self._post(Stopped(self.error))

    def _close(self) -> None:
        """Undo what start() did, whatever it got to (the engines keep their models unless they are ours)."""
        self._stopped = True
        self.show.attach(None)
        self.engines.brain.deliver = self.engines.brain._undelivered
        self.engines.attach(None)
        if self.dispatcher is not None and self.dispatcher._thread.is_alive():
            self.dispatcher.stop()
        if self.control_server is not None:
            self.control_server.close()
        if self.osc is not None and self._owns_osc:
            self.osc.close()
        if self.log is not None:
            self.log.write({"type": "session_end", "latency": self.latency.summary() if self.latency else "",
                            "error": self.error})
            self.log.close()
        if self._owns_engines:
            self.engines.close()
        self._activity.end()

    def _guarded(self, name: str, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception as e:  # top of a stage's thread: report, never die silently
                log.exception("%s stage failed", name)
                self.error = f"{name}: {type(e).__name__}: {e}"
                self._post(Status(name, f"{name} stopped: {type(e).__name__}: {e}", "error"))
            finally:
                with self._feeders_lock:
                    self._feeders -= 1
                    if self._feeders <= 0:
                        self._inputs_done.set()
        return run

    # ---- commands (any thread) -----------------------------------------------------------------

    def apply(self, command: Command) -> None:
        """Carry out an operator's command, the same from every surface; each one is logged."""
        handler = {SetGain: lambda c: self.dsp.update(gain_db=c.db),
                   SetGate: lambda c: self.dsp.update(gate_threshold=c.threshold),
                   SetAgc: lambda c: self.dsp.update(agc=c.on),
                   Freeze: lambda c: self.osc.freeze(c.on) if self.osc is not None else None,
                   Panic: lambda c: self.osc.panic(c.on) if self.osc is not None else None,
                   SendPrompt: self._send_prompt,
                   SayText: lambda c: self._typed(c.text)}.get(type(command))
        if handler is None and isinstance(command, BRAIN_COMMANDS):
            handler = self.engines.brain.command
        if handler is None and isinstance(command, SHOW_COMMANDS):
            handler = self.show.apply
        if handler is None:
            raise TypeError(f"not a command: {command!r}")
        handler(command)
        if not isinstance(command, (SendPrompt, SayText)):  # those log their own line
            self._log({"type": "control", "action": snake_name(type(command)), **dataclasses.asdict(command)})

    def _send_prompt(self, command: SendPrompt) -> None:
        text = command.text.strip()
        if text and self.osc is not None:
            sent = self.osc.send_text(text)
            self._log({"type": "manual_prompt", "text": text, "sent": sent is not None})

    def _typed(self, line: str) -> None:
        text = line.strip()
        if text:
            self._phrase(Phrase(text, 0.0, 0.0, "typed", closed_at=time.monotonic()))

    def _control_rejected(self, why: str) -> None:
        self._post(Status("control", f"ignored: {why}", "warning"))

    # ---- events --------------------------------------------------------------------------------

    def _post(self, item: object) -> None:
        """Queue an item for the front end; statuses and worker states also go to the log."""
        post_latest(self.events, item)
        if isinstance(item, (Status, WorkerState)):
            log.debug("%s", item)  # front ends show it
            self._log(item)

    def _log(self, item: object, **extra: Any) -> None:
        if self.log is not None:
            self.log.write(item, **extra)

    def _cue_phrase(self, text: str) -> None:
        self._phrase(Phrase(text, 0.0, 0.0, "cue", closed_at=time.monotonic()))

    def _phrase(self, phrase: Phrase) -> None:
        if phrase.reason not in ("typed", "cue"):  # spoken: noise, fillers and a cue's trigger words stop here
            why = "it fired a cue" if self._cue_in_phrase else phrase_problem(
                phrase.text, self._ignored, self.config.show.min_phrase_words)
            self._cue_in_phrase = False
            if why is not None:
                dropped = PhraseDropped(phrase.text, why)
                self._post(dropped)
                self._log(dropped)
                return
        self._post(phrase)
        self._log(phrase)
        if self.osc is not None and self.config.osc.send_transcript:
            self.osc.send_phrase(phrase)
        self.engines.brain.put(phrase)

    def _from_stt(self, events: tuple) -> None:
        """The speech engine's events (on its reader thread): shown, logged, assembled into phrases."""
        for event in events:
            self._post(event)
            if not isinstance(event, Status):
                self._log(event)
            if isinstance(event, (Word, PhraseEnd)):
                fire = self.show.hear(event)
                if fire is not None:
                    self._cue_in_phrase = True
                    self.apply(fire)
                phrase = self.assembler.step(event)
                if phrase is not None:
                    self._phrase(phrase)

    # ---- stages --------------------------------------------------------------------------------

    def _run_audio(self) -> None:
        """Wait for the speech model, then source -> DSP -> speech engine until the input ends or stop()."""
        stt = self.engines.stt
        if not stt.ready:
            self._post(Status("stt", "waiting for the speech model to load"))
        if not stt.wait_ready(self._stopping):
            if stt.worker.failure:
                self.error = stt.worker.failure
                self._post(Status("stt", f"{stt.worker.failure} — typed text still reaches the brain", "error"))
            return
        spec = self.input_spec or ""
        is_file = self.source_opener is None and bool(spec) and Path(spec).expanduser().is_file()
        wait = not self.config.audio.realtime and (is_file or self.source_opener is not None)
        stt.begin(self.config.stt, self._from_stt, queue_seconds=self.config.audio.queue_seconds)
        try:
            self._listen_with_retries(spec, is_file, wait)
        finally:
            stt.finish(stopping=self._stopping.is_set())
            if self.assembler.words:  # a model without pause detection: the end of input closes the phrase
                counters = stt.counters
                self._from_stt((PhraseEnd(counters.frames_in, counters.frames_in * FRAME_SECONDS, 1.0, "end"),))

    def _listen_with_retries(self, spec: str, is_file: bool, wait: bool) -> None:
        opener = self.source_opener or open_source
        while not self._stopping.is_set():
            try:
                with opener(spec, self.config) as source:
                    self._source = source
                    self._post(Status("audio", f"listening to {describe(source)}"))
                    self._listen(source, wait)
                return  # the file ended, or stop()
            except AudioError as e:
                if is_file:
                    self.error = str(e)
                    self._post(Status("audio", str(e), "error"))
                    return
                self._post(Status("audio", f"{e} — retrying every {MIC_RETRY_SECONDS:g} s", "error"))
                if self._stopping.wait(MIC_RETRY_SECONDS):
                    return
                rescan_devices()
            finally:
                if self._source is not None:
                    self._dropped_before += self._source.dropped_blocks
                self._source = None

    def _listen(self, source: FileSource | MicSource, wait: bool) -> None:
        """The audio loop: record, condition, meter, send; the speech engine never slows it down."""
        record = self.log.record if self.log is not None and self.record_audio else None
        send_level = self.osc is not None and self.config.osc.send_level
        silence = DigitalSilence() if isinstance(source, MicSource) else None  # a denied mic on macOS
        for block in source.blocks():
            if self._stopping.is_set():
                break
            if silence is not None and silence.step(block):
                self._post(silence_status(describe(source), source.channel))  # type: ignore[union-attr]
            if record is not None:
                record(block)
            out, levels = self.dsp.process(block)
            self._post(levels)
            if send_level:
                self.osc.send_level(levels.peak_out)  # type: ignore[union-attr]
            self.engines.stt.feed(out, wait=wait, stop=self._stopping)

    def _run_script(self) -> None:
        """Each script line is a phrase; the next one waits until the brain has answered."""
        assert self.script is not None
        self.engines.brain.wait_ready(self._stopping)
        for text in script_lines(self.script):
            if self._stopping.is_set():
                return
            self._typed(text)
            while not self.engines.brain.wait_idle(0.2):
                if self._stopping.is_set():
                    return

    # ---- periodic work (the dispatcher's thread) -----------------------------------------------

    def _tick(self, now: float) -> None:
        self.engines.brain.check(now)
        if self.osc is not None:
            self.osc.heartbeat()

    def _stats_tick(self) -> None:
        if self.osc is not None:
            for status in self.osc.statuses():
                self._post(status)
        stats = self.stats()
        self._post(stats)
        self._warn_dropped(stats)

    def _warn_dropped(self, stats: PipelineStats) -> None:
        """Backpressure made visible: a warning naming why input blocks were dropped, at most one per
        cause every DROP_WARNING_SECONDS (a new cause, such as a state reset turning into an engine
        slower than real time, is news and is said at once)."""
        counts = self._drops()
        behind, down, unread = (count - warned for count, warned in zip(counts, self._dropped_warned))
        slow = stats.stt_rtf >= 1.0
        why = {"slow": f"the speech engine is {stats.stt_rtf:.1f} x slower than real time",
               "behind": "the speech engine fell behind (a slow step or a state reset)",
               "down": "the speech engine was not running (loading or restarting)",
               "unread": "the audio thread did not read the input in time"}
        causes = [cause for cause, new in (("slow" if slow else "behind", behind), ("down", down), ("unread", unread))
                  if new > 0]
        now = time.monotonic()
        if not any(now >= self._next_drop_warning.get(cause, 0.0) for cause in causes):
            return  # nothing new to say yet: these drops are counted into the next warning
        self._dropped_warned = counts
        self._next_drop_warning.update((cause, now + DROP_WARNING_SECONDS) for cause in causes)
        new = behind + down + unread
        self._post(Status("stt", f"{'; '.join(why[cause] for cause in causes)}: dropped {new} blocks "
                          f"({new * FRAME_SECONDS:.1f} s of audio, {stats.dropped_blocks} in all) to stay within "
                          f"audio.queue_seconds = {self.config.audio.queue_seconds:g} s", "warning"))

    def _drops(self) -> tuple[int, int, int]:
        """Blocks dropped so far, by cause: the engine behind, the engine down, the input not read in time."""
        stt = self.engines.stt
        return (stt.behind, stt.down + stt.lost,
                self._dropped_before + getattr(self._source, "dropped_blocks", 0))

    def stats(self) -> PipelineStats:
        """The current health figures."""
        stt = self.engines.stt
        dropped = sum(self._drops())
        return PipelineStats(stt.rtf(), dropped, self.dispatcher.last_brain_ms if self.dispatcher else 0.0,
                             str(self.log_path or ""), stt.restarts + stt.counters.step_errors)
