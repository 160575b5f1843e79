"""The brain's worker process: phrases in, image prompts out.

`BrainThread` loads the language model itself (llama.cpp objects never leave the thread that
made them) and answers the newest phrase: phrases that wait while it is busy merge into the
newest one, and a generation stops between two tokens as soon as a newer phrase arrives
(latest wins across the process boundary: the pipe's reader thread hands the phrase to the
brain thread at once). When idle and a summary is due it runs the slow brain. Only the worker
imports this module (brain/stage.py, its main-process side, names it by "module:function").
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable

from voicevibe.brain.assets import AssetError, Assets, load_assets
from voicevibe.brain.core import Brain, merge
from voicevibe.brain.loading import load_prompt_model
from voicevibe.brain.prompting import LoadedModel, Reporting
from voicevibe.config import BrainConfig, ConfigError
from voicevibe.events import ImagePrompt, MakeSummary, PauseBrain, Phrase, ResetMemory, Status, Summary
from voicevibe.hub import ModelError
from voicevibe.workers.messages import (
    BrainAnswer,
    BrainConfigure,
    BrainPhrase,
    BrainSummary,
    BrainTook,
    Shutdown,
    ToBrain,
    WorkerFailed,
    WorkerLoading,
    WorkerReady,
)
from voicevibe.workers.process import EXIT_FAILED, Link, resolve

log = logging.getLogger(__name__)

JOIN_SECONDS = 5.0

Loader = Callable[[BrainConfig, Assets], LoadedModel]


class BrainThread(threading.Thread):
    """The brain's thread: loads the model itself, then answers the newest phrase; `post` gets its messages."""

    def __init__(self, config: BrainConfig, post: Callable[[object], None], loader: Loader = load_prompt_model) -> None:
        super().__init__(name="brain")
        self.config, self.post, self.loader = config, post, loader
        self.assets = load_assets(config.blocklist_file)
        self.assets.style(config.style)  # an unknown style fails now, not in the thread
        self.failed = False  # the model could not load (WorkerFailed was posted)
        self.merged = 0  # phrases merged into a newer one while the brain was busy
        self._cond = threading.Condition()
        self._pending: tuple[int, Phrase] | None = None
        self._commands: deque[ToBrain] = deque()
        self._stopping = False
        self._next_allowed = 0.0  # monotonic time of the next prompt the rate allows
        self._next_summary = math.inf  # monotonic time the next summary is due

    def put(self, seq: int, phrase: Phrase) -> None:
        """A phrase to answer; one still waiting is merged into it."""
        with self._cond:
            if self._pending is not None:
                self.merged += 1
                phrase = merge(self._pending[1], phrase)
            self._pending = (seq, phrase)
            self._cond.notify_all()

    def command(self, command: ToBrain) -> None:
        """New settings or a command (pause, reset, summary), applied between two answers (any thread)."""
        with self._cond:
            self._commands.append(command)
            self._cond.notify_all()

    def stop(self) -> None:
        """Finish the current answer (a newer phrase-like stop interrupts it) and end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self.join(JOIN_SECONDS)

    def run(self) -> None:
        """Load, then serve phrases (and summaries when idle) until stopped; an error never ends the show."""
        self.post(WorkerLoading(f"loading brain model {self.config.model}"))
        try:
            loaded = self.loader(self.config, self.assets)
        except ModelError as e:
            self.failed = True
            self.post(WorkerFailed(f"no language model: {e}"))
            return
        if loaded.note:
            self.post(Status("brain", loaded.note, "warning"))
        if isinstance(loaded.model, Reporting):  # a server: its state reaches the operator from this thread
            loaded.model.attach(self.post)
        brain = Brain(loaded.model, self.config, self.assets)
        brain.warm_up()
        self.post(WorkerReady(f"brain model: {loaded.model.name}" if loaded.model else
                              "no language model: fallback prompts only"))
        self._serve(brain)

    def _interrupted(self) -> bool:
        with self._cond:
            return self._stopping or self._pending is not None

    def _summary_interrupted(self) -> bool:
        """A summary gives way to any phrase the rate allows and to any command."""
        with self._cond:
            return self._stopping or self._phrase_ready() or bool(self._commands)

    def _phrase_ready(self) -> bool:
        """A phrase waits and the prompt rate lets it go (call under the lock)."""
        return self._pending is not None and time.monotonic() >= self._next_allowed

    def _schedule_summary(self, brain: Brain) -> None:
        interval = brain.config.summary_seconds if brain.config.summary else math.inf
        self._next_summary = time.monotonic() + interval

    def _take(self) -> tuple[list[ToBrain], tuple[int, Phrase] | None, bool]:
        """Wait for commands, a phrase the prompt rate allows, or a summary falling due; take them."""
        with self._cond:
            while not self._stopping and not self._commands and not self._phrase_ready():
                now = time.monotonic()
                if now >= self._next_summary:
                    break
                wake = min(self._next_summary, self._next_allowed if self._pending is not None else math.inf)
                self._cond.wait(None if wake == math.inf else wake - now)
            commands, self._commands = list(self._commands), deque()
            taken = None
            if self._phrase_ready():
                taken, self._pending = self._pending, None
            return commands, taken, time.monotonic() >= self._next_summary

    def _apply(self, brain: Brain, command: ToBrain) -> None:
        """Settings arrive whole (`Brain.configure` applies them); the other commands act on the brain's state."""
        if isinstance(command, BrainConfigure):
            summary_was = (brain.config.summary, brain.config.summary_seconds)
            brain.configure(command.config)
            if (brain.config.summary, brain.config.summary_seconds) != summary_was:
                self._schedule_summary(brain)
        elif isinstance(command, PauseBrain):
            brain.paused = command.on
        elif isinstance(command, ResetMemory):
            brain.reset()
            self._schedule_summary(brain)
        elif isinstance(command, MakeSummary):
            self._next_summary = time.monotonic()

    def _serve(self, brain: Brain) -> None:
        self._schedule_summary(brain)
        while True:
            commands, taken, summary_due = self._take()
            if self._stopping:
                return
            for command in commands:
                try:
                    self._apply(brain, command)
                except (ConfigError, AssetError) as e:
                    self.post(Status("brain", f"{type(command).__name__} refused: {e}", "warning"))
            if taken is not None:
                seq, phrase = taken
                self.post(BrainTook(seq))
                prompt, error = self._attempt(brain.step, phrase, self._interrupted)
                if self._stopping:
                    return  # the main process answers what was in flight (BrainStage._on_down)
                if prompt is not None:
                    self._next_allowed = time.monotonic() + brain.config.prompt_interval_seconds
                self.post(BrainAnswer(seq, prompt, error))  # type: ignore[arg-type]
            elif summary_due and not commands:
                summary, _ = self._attempt(brain.summarize, self._summary_interrupted)
                if summary is not None:
                    self.post(BrainSummary(summary))  # type: ignore[arg-type]
                if summary is not None or not self._summary_interrupted():
                    self._schedule_summary(brain)  # made, or nothing to summarise; an interrupted one is retried

    def _attempt(self, step: Callable[..., ImagePrompt | Summary | None],
                 *args: object) -> tuple[ImagePrompt | Summary | None, str]:
        """Run one brain step: (its result, ""), or (None, what failed): logged and reported, the show goes on."""
        try:
            return step(*args), ""
        except Exception as e:  # top of the brain's loop: log it, tell the operator, keep going
            log.exception("brain step failed")
            error = f"brain error ({type(e).__name__}: {e})"
            self.post(Status("brain", f"{error}; continuing", "error"))
            return None, error


def run_brain_worker(link: Link, loader: Loader | str, config: BrainConfig) -> int:
    """The worker process: the brain thread, fed by the pipe until Shutdown (`loader`: a callable, or its
    "module:function")."""
    thread = BrainThread(config, link.send, resolve(loader))
    thread.start()
    while thread.is_alive():
        try:
            message = link.recv(timeout=0.5)
        except queue.Empty:
            continue
        if isinstance(message, Shutdown):
            thread.stop()
            return 0
        if isinstance(message, BrainPhrase):
            thread.put(message.seq, message.phrase)
        elif isinstance(message, (BrainConfigure, PauseBrain, ResetMemory, MakeSummary)):
            thread.command(message)
        else:
            log.warning("brain worker ignores %s", type(message).__name__)
    return EXIT_FAILED if thread.failed else 1
