"""One show, from Start to Stop: wiring only, on the controls and the model workers that outlive it.

A `Pipeline` opens the session log and starts a show's parts: the audio feed (runtime/audio_feed.py)
on the audio thread, the phrase gate (runtime/phrase_gate.py) on its own, a script thread, the
health thread (runtime/health.py), and OSC control in. Commands go to `Controls.apply`, the same
with or without a show. Without `controls` a pipeline makes its own engines and controls, and
closes them at stop (a one-off run: the headless command, tests).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from voicevibe.config import Config, ConfigError
from voicevibe.control import ControlServer
from voicevibe.dsp import Dsp
from voicevibe.events import Command, Event, PipelineStats, Status, Stopped
from voicevibe.macos import Activity
from voicevibe.runtime.audio_feed import AudioFeed, SourceOpener
from voicevibe.runtime.controls import Controls
from voicevibe.runtime.engines import Engines
from voicevibe.runtime.health import Health
from voicevibe.runtime.latency import LatencyStats
from voicevibe.runtime.memory import MemoryWatch
from voicevibe.runtime.phrase_gate import PhraseGate
from voicevibe.runtime.session import SessionLog
from voicevibe.show.control import ShowControl
from voicevibe.show.transitions import TransitionSender
from voicevibe.speech.stage import SttStage
from voicevibe.workers.stage import Loader

log = logging.getLogger(__name__)

JOIN_SECONDS = 10.0


def script_lines(lines: Iterable[str]) -> Iterator[str]:
    """The phrases of a script: stripped lines, blank lines and `#` comments skipped."""
    for line in lines:
        text = line.strip()
        if text and not text.startswith("#"):
            yield text


class Pipeline:
    """One show: start(), `apply(command)` from any thread, events out, stop().

    `input_spec`: a device or a recording (None: no audio); `script`: phrases for the brain, each after the
    previous one's prompt went out; `source_opener(spec, config)` replaces `audio.open_source`.
    """

    def __init__(self, config: Config, *, controls: Controls | None = None, input_spec: str | None = None,
                 script: Iterable[str] | None = None, record_audio: bool = False,
                 source_opener: SourceOpener | None = None, stt_loader: Loader | None = None,
                 brain_loader: Loader | None = None) -> None:
        self._owns_controls = controls is None
        if controls is None:
            loaders = {k: v for k, v in (("stt_loader", stt_loader), ("brain_loader", brain_loader)) if v is not None}
            engines = Engines(config, **loaders)  # type: ignore[arg-type]
            try:
                controls = Controls(config, engines)
            except BaseException:
                engines.close()
                raise
        self.controls = controls
        self.engines = controls.engines
        self.config = config
        self.input_spec = config.audio.input if input_spec is None and script is None else input_spec
        self.script = script
        self.record_audio = record_audio
        self.gate = PhraseGate(config, controls)
        self.log: SessionLog | None = None
        self.audio: AudioFeed | None = None
        self.health: Health | None = None
        self.memory: MemoryWatch | None = None  # the memory log of the running show
        self.control_server: ControlServer | None = None
        self.latency = LatencyStats()
        self.error: str | None = None
        self.started = False
        self._source_opener = source_opener
        self._stopping = threading.Event()
        self._stopped = False
        self._threads: list[threading.Thread] = []
        self._inputs_done = threading.Event()
        self._feeders = 0
        self._feeders_lock = threading.Lock()
        self._activity = Activity()  # macOS: no App Nap while the show runs

    # ---- what front ends and tests read -------------------------------------------------------

    @property
    def events(self) -> queue.Queue[Event]:
        """The front end's event queue."""
        return self.controls.feed.events

    @property
    def stt(self) -> SttStage:
        """The speech engine's main-process side (counters, real-time factor)."""
        return self.engines.stt

    @property
    def osc(self) -> TransitionSender:
        """The OSC sender (it outlives the show)."""
        return self.controls.osc

    @property
    def cues(self) -> ShowControl:
        """Show control (it outlives the show)."""
        return self.controls.cues

    @property
    def dsp(self) -> Dsp:
        """The input conditioning (its settings outlive the show)."""
        return self.controls.dsp

    @property
    def log_path(self) -> Path | None:
        """The session's JSONL log, once started."""
        return self.log.path if self.log is not None else None

    def apply(self, command: Command) -> None:
        """Carry out an operator's command (any thread): the controls' one path."""
        self.controls.apply(command)

    def stats(self) -> PipelineStats:
        """The current health figures."""
        if self.health is None:
            return PipelineStats(self.stt.rtf(), 0, 0.0, str(self.log_path or ""))
        return self.health.stats()

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
        feed = self.controls.feed
        self.log = SessionLog.open(self.config.session, record_audio=self.record_audio, report=feed.post,
                                   app_config=self.config)
        feed.attach_log(self.log)
        self.log.write({"type": "session_start", "input": self.input_spec or "", "script": self.script is not None})
        self.latency = self.controls.outbox.new_show()
        self.controls.dsp.reset()  # a new input: no signal history, the same settings
        self._open_control_in()
        if self.input_spec is not None:
            self.audio = AudioFeed(self.config, self.input_spec, stt=self.stt, dsp=self.controls.dsp, osc=self.osc,
                                   feed=feed, gate=self.gate, stopping=self._stopping,
                                   record=self.log.record if self.record_audio else None, opener=self._source_opener)
        audio, engines = self.audio, self.engines
        self.memory = MemoryWatch(self.config.supervisor.memory_log_seconds, self.stt,
                                  lambda: {"stt": engines.stt.worker.pid, "brain": engines.brain.worker.pid}, feed.log)
        self.health = Health(self.config, feed, self.osc, self.stt, self.controls.outbox,
                             unread=(lambda: audio.dropped_blocks) if audio is not None else (lambda: 0),
                             log_path=str(self.log_path or ""), memory=self.memory)
        self.gate.start()
        self.health.start()
        stages = [(name, target) for name, target in (("audio", audio.run if audio is not None else None),
                                                      ("script", self._run_script if self.script is not None else None))
                  if target is not None]
        self._feeders = len(stages)
        if not stages:
            self._inputs_done.set()
        for name, target in stages:
            thread = threading.Thread(target=self._stage_thread(name, target), name=name)
            self._threads.append(thread)
            thread.start()

    def _open_control_in(self) -> None:
        if not self.config.control.enabled:
            return
        control = self.config.control
        feed = self.controls.feed
        try:
            self.control_server = ControlServer(control, self.apply, on_reject=lambda why: feed.post(
                Status("control", f"ignored: {why}", "warning")))
            host, port = self.control_server.address
            feed.post(Status("control", f"OSC control in on {host}:{port}, allowed: {control.allow}"))
        except ConfigError as e:  # a busy port: the show goes on without control in
            feed.post(Status("control", f"{e} — OSC control in is off for this show", "error"))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the inputs ended and the last phrase's prompt went out; True if so."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        return (self._inputs_done.wait(left()) and self.gate.wait_idle(left())
                and self.engines.brain.wait_idle(left()) and self.controls.outbox.wait_empty(left()))

    def stop(self) -> None:
        """Stop every part, join every thread, release the device and close the log (idempotent)."""
        if not self.started or self._stopped:
            return
        self._stopping.set()
        if self.audio is not None:
            self.audio.stop_source()
        for thread in self._threads:
            thread.join(JOIN_SECONDS)
        self._close()
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.error("threads still running after stop: %s", ", ".join(alive))
        self.controls.feed.post(Stopped(self.error))

    def _close(self) -> None:
        """Undo what start() did, whatever it got to (the controls and engines outlive the show unless ours)."""
        self._stopped = True
        self.gate.stop()
        if self.health is not None:
            self.health.stop()
        if self.control_server is not None:
            self.control_server.close()
        if self.log is not None:
            self.controls.outbox.wait_empty(JOIN_SECONDS)  # the prompts already made are logged with this show
            self.log.write({"type": "session_end", "latency": self.latency.summary(), "error": self.error})
            self.controls.feed.attach_log(None)
            self.log.close()
        if self._owns_controls:
            self.controls.close()
            self.engines.close()
        self._activity.end()

    def _stage_thread(self, name: str, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
                if name == "audio" and self.audio is not None and self.audio.error and self.error is None:
                    self.error = self.audio.error
            except Exception as e:  # top of a stage's thread: report, never die silently
                log.exception("%s stage failed", name)
                self.error = f"{name}: {type(e).__name__}: {e}"
                self.controls.feed.post(Status(name, f"{name} stopped: {type(e).__name__}: {e}", "error"))
            finally:
                with self._feeders_lock:
                    self._feeders -= 1
                    if self._feeders <= 0:
                        self._inputs_done.set()
        return run

    def _run_script(self) -> None:
        """Each script line is a phrase; the next one waits until the brain has answered."""
        assert self.script is not None
        self.engines.brain.wait_ready(self._stopping)
        for text in script_lines(self.script):
            if self._stopping.is_set():
                return
            self.controls.say(text)
            while not self.engines.brain.wait_idle(0.2):
                if self._stopping.is_set():
                    return

