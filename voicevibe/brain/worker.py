"""The brain in its own process: phrases in, image prompts out, and a prompt always comes.

In the worker process, `BrainThread` loads the language model itself (llama.cpp objects never
leave the thread that made them) and answers the newest phrase: phrases that wait while it is
busy merge into the newest one, and a generation stops between two tokens as soon as a newer
phrase arrives (latest wins across the process boundary: the pipe's reader thread hands the
phrase to the brain thread at once). When idle and a summary is due it runs the slow brain.

In the main process, `BrainStage` sends phrases and commands, and keeps the fallback builder:
while the worker loads, restarts or cannot run, when it crashes with phrases in hand, or when
it does not answer within its time budget, the fallback makes the prompt, saying why.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable

from voicevibe.brain.core import Brain, LoadedModel, load_prompt_model
from voicevibe.config import BrainConfig, Config, ConfigError
from voicevibe.events import (BRAIN_COMMANDS, BrainAnswer, BrainCommand, BrainConfigure, BrainPhrase, BrainSummary, BrainTook,
                     ImagePrompt, MakeSummary, PauseBrain, Phrase, ResetMemory, SetHistory, SetRate, SetStyle,
                     SetVibe, Shutdown, Status, Summary, WorkerFailed, WorkerLoading, WorkerReady)
from voicevibe.brain.fallback import AssetError, Assets, load_assets
from voicevibe.hub import ModelError
from voicevibe.brain.llama import NO_MODEL, Reporting
from voicevibe.workers.supervisor import EXIT_FAILED, Link, Worker, WorkerSpec

log = logging.getLogger(__name__)

MERGED_CHARS = 400  # phrases merged while the brain was busy keep their last 400 characters
JOIN_SECONDS = 5.0
OVERDUE_GRACE_SECONDS = 2.0  # past its time budget and this, a phrase gets its fallback prompt from the main process

Loader = Callable[[BrainConfig, Assets], LoadedModel]


def merge(older: Phrase, newer: Phrase) -> Phrase:
    """Two phrases as one: the newer one's end and close time, the last MERGED_CHARS characters."""
    return Phrase(f"{older.text} {newer.text}"[-MERGED_CHARS:], older.t_start, newer.t_end, newer.reason,
                  newer.closed_at)


def updated(config: BrainConfig, command: BrainCommand) -> BrainConfig:
    """The brain's settings after a command (ConfigError for a value out of range)."""
    if isinstance(command, SetStyle):
        return dataclasses.replace(config, style=command.name)
    if isinstance(command, SetVibe):
        return dataclasses.replace(config, vibe=command.text)
    if isinstance(command, SetHistory):
        return dataclasses.replace(config, history_seconds=float(command.seconds))
    if isinstance(command, SetRate):
        return dataclasses.replace(config, prompt_interval_seconds=float(command.seconds))
    if isinstance(command, ResetMemory):
        return dataclasses.replace(config, vibe="")
    return config


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
        self._commands: deque[BrainCommand | BrainConfigure] = deque()
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

    def command(self, command: BrainCommand | BrainConfigure) -> None:
        """An operator command or new settings, applied between two answers (any thread)."""
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

    def _take(self) -> tuple[list[BrainCommand | BrainConfigure], tuple[int, Phrase] | None, bool]:
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

    def _apply(self, brain: Brain, command: BrainCommand | BrainConfigure) -> None:
        if isinstance(command, BrainConfigure):
            brain.set_style(command.config.style)
            brain.config, brain.vibe = command.config, command.config.vibe
        elif isinstance(command, PauseBrain):
            brain.paused = command.on
        elif isinstance(command, SetStyle):
            brain.set_style(command.name)
        elif isinstance(command, SetVibe):
            brain.vibe = command.text
        elif isinstance(command, ResetMemory):
            brain.reset()
            self._schedule_summary(brain)
        elif isinstance(command, MakeSummary):
            self._next_summary = time.monotonic()
        if isinstance(command, (SetHistory, SetRate, BrainConfigure)):
            brain.config = updated(brain.config, command) if not isinstance(command, BrainConfigure) else brain.config
            self._schedule_summary(brain) if isinstance(command, BrainConfigure) else None

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
                prompt, error = self._guarded(brain.step, phrase, self._interrupted)
                if self._stopping:
                    return  # the main process answers what was in flight (BrainStage._on_down)
                if prompt is not None:
                    self._next_allowed = time.monotonic() + brain.config.prompt_interval_seconds
                self.post(BrainAnswer(seq, prompt, error))  # type: ignore[arg-type]
            elif summary_due and not commands:
                summary, _ = self._guarded(brain.summarize, self._summary_interrupted)
                if summary is not None:
                    self.post(BrainSummary(summary))  # type: ignore[arg-type]
                if summary is not None or not self._summary_interrupted():
                    self._schedule_summary(brain)  # made, or nothing to summarise; an interrupted one is retried

    def _guarded(self, step: Callable[..., ImagePrompt | Summary | None],
                 *args: object) -> tuple[ImagePrompt | Summary | None, str]:
        """Run one brain step: (its result, ""), or (None, what failed): logged and reported, the show goes on."""
        try:
            return step(*args), ""
        except Exception as e:  # top of the brain's loop: log it, tell the operator, keep going
            log.exception("brain step failed")
            error = f"brain error ({type(e).__name__}: {e})"
            self.post(Status("brain", f"{error}; continuing", "error"))
            return None, error


def run_brain_worker(link: Link, loader: Loader, config: BrainConfig) -> int:
    """The worker process: the brain thread, fed by the pipe until Shutdown."""
    thread = BrainThread(config, link.send, loader)
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
        elif isinstance(message, (BrainConfigure, *BRAIN_COMMANDS)):
            thread.command(message)
        else:
            log.warning("brain worker ignores %s", type(message).__name__)
    return EXIT_FAILED if thread.failed else 1


# ---- in the main process ------------------------------------------------------------------------


@dataclasses.dataclass
class _Sent:
    phrase: Phrase
    sent_at: float
    fallback_sent: bool = False  # the main process already answered it (overdue)


class BrainStage:
    """The brain seen from the main process: `put` phrases, `command`s; answers go to `deliver`."""

    def __init__(self, config: Config, report: Callable[[object], None], loader: Loader = load_prompt_model) -> None:
        self.config = config.brain  # the live settings: commands change style, vibe, history, rate
        self.hang_seconds = config.supervisor.hang_seconds
        self.assets = load_assets(self.config.blocklist_file)
        self.fallback = Brain(None, self.config, self.assets)
        self.paused = False
        self.deliver: Callable[[object], None] = self._undelivered  # a running pipeline's dispatcher
        self._loader = loader
        self.worker = Worker(self.spec(self.config), config.supervisor, on_message=self._on_message,
                             on_down=self._on_down, report=report)
        self._cond = threading.Condition()
        self._fallback_lock = threading.Lock()
        self._seq = 0
        self._sent: dict[int, _Sent] = {}
        self._took = (0, 0.0)  # the newest phrase the worker started on, and when
        self._last_answer = 0.0

    def _undelivered(self, item: object) -> None:
        log.debug("no show running: %s dropped", type(item).__name__)

    def spec(self, config: BrainConfig) -> WorkerSpec:
        """What the worker process runs for these settings."""
        return WorkerSpec("brain", "brain", run_brain_worker, (self._loader, config))

    @property
    def enabled(self) -> bool:
        """False when brain.model is "none": no worker, the fallback builder makes every prompt."""
        return self.config.model != NO_MODEL

    def absent_reason(self) -> str:
        """Why the fallback builder answers when the worker does not."""
        worker = self.worker
        if not self.enabled:
            return 'brain.model is "none": fallback prompts only'
        if worker.failure:
            return f"brain unavailable ({worker.failure})"
        if worker.state == "restarting":
            return f"brain restarting ({worker.cause})"
        return "brain model loading"

    def put(self, phrase: Phrase) -> None:
        """A phrase for the brain; the fallback answers at once when the worker cannot."""
        if self.enabled and self.worker.ready:
            with self._cond:
                self._seq += 1
                seq = self._seq
                self._sent[seq] = _Sent(phrase, time.monotonic())
            if self.worker.send(BrainPhrase(seq, phrase)):
                return
            with self._cond:
                self._sent.pop(seq, None)
                self._cond.notify_all()
        self._fall_back([phrase], self.absent_reason())

    def command(self, command: BrainCommand) -> None:
        """An operator command: checked here (a refusal is reported), then applied on both sides."""
        try:
            config = updated(self.config, command)
            with self._fallback_lock:
                self.fallback.set_style(config.style)
                self.fallback.config, self.fallback.vibe = config, config.vibe
                if isinstance(command, ResetMemory):
                    self.fallback.reset()
        except (ConfigError, AssetError) as e:
            self.deliver(Status("brain", f"{type(command).__name__} refused: {e}", "warning"))
            return
        self.config = config
        if isinstance(command, PauseBrain):
            self.paused = self.fallback.paused = command.on
        self.worker.send(command)

    def configure(self, config: BrainConfig) -> None:
        """New settings that need no reload; the worker gets them too."""
        with self._fallback_lock:
            self.fallback.set_style(config.style)
            self.fallback.config, self.fallback.vibe = config, config.vibe
        self.config = config
        self.worker.send(BrainConfigure(config))

    def wait_ready(self, stop: threading.Event) -> None:
        """Wait until the model answers (or cannot: the fallback will), or `stop`: a script's first line
        should not go to the fallback just because the model is still loading."""
        while self.enabled and not stop.is_set() and self.worker.state in ("starting", "loading"):
            stop.wait(0.1)

    def idle(self) -> bool:
        """No phrase is waiting for an answer."""
        with self._cond:
            return all(s.fallback_sent for s in self._sent.values())

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every phrase got its prompt (True), or `timeout` (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: all(s.fallback_sent for s in self._sent.values()), timeout)

    def check(self, now: float) -> None:
        """Called about every 0.1 s: an overdue phrase gets its fallback; a brain that hangs is killed."""
        with self._cond:
            if not self._sent:
                return
            first = min(self._sent)
            took_seq, took_at = self._took
            wait_rate = self._last_answer + self.config.prompt_interval_seconds
            start = took_at if took_seq >= first else max(self._sent[first].sent_at, wait_rate)
            budget = self.config.time_budget_seconds
            late = [s for s in self._sent.values() if not s.fallback_sent] if now > start + budget + \
                OVERDUE_GRACE_SECONDS else []
            for s in late:
                s.fallback_sent = True
            hung = now > start + budget + self.hang_seconds and self.worker.ready
            self._cond.notify_all()
        if late:
            self._fall_back([s.phrase for s in late], f"brain did not answer within {budget + OVERDUE_GRACE_SECONDS:g} s")
        if hung:
            self.worker.kill(f"no answer to a phrase for {now - start:.0f} s")

    def _fall_back(self, phrases: list[Phrase], reason: str) -> None:
        phrase = phrases[0]
        for newer in phrases[1:]:
            phrase = merge(phrase, newer)
        with self._fallback_lock:
            self.fallback.absent_reason = reason
            prompt = self.fallback.step(phrase)
        if prompt is not None:
            self.deliver(prompt)

    def _on_message(self, message: object) -> None:
        if isinstance(message, BrainAnswer):
            with self._cond:
                answered = [self._sent.pop(s) for s in sorted(self._sent) if s <= message.seq]
                self._last_answer = time.monotonic()
                self._cond.notify_all()
            if any(s.fallback_sent for s in answered):
                return  # answered already (overdue)
            if message.prompt is not None:
                with self._fallback_lock:
                    self.fallback.previous_prompt = message.prompt.text
                self.deliver(message.prompt)
            elif message.error and answered:
                self._fall_back([s.phrase for s in answered], message.error)
        elif isinstance(message, BrainTook):
            with self._cond:
                self._took = (message.seq, time.monotonic())
        elif isinstance(message, BrainSummary):
            self.deliver(message.summary)
        elif isinstance(message, WorkerReady):  # a restarted worker gets the show's settings back
            self.worker.send(BrainConfigure(self.config))
            if self.paused:
                self.worker.send(PauseBrain(True))
        elif isinstance(message, (Status, WorkerFailed)):
            if isinstance(message, Status):
                self.deliver(message)
        else:
            log.warning("brain sent an unexpected %s", type(message).__name__)

    def _on_down(self, cause: str) -> None:
        """The worker is gone (died, or stopped for a reload): every phrase it had and did not answer gets
        the fallback."""
        with self._cond:
            lost = [s.phrase for s in self._sent.values() if not s.fallback_sent]
            self._sent.clear()
            self._cond.notify_all()
        if lost:
            self._fall_back(lost, f"brain {'restarting' if self.enabled else 'off'} (stopped: {cause})")
