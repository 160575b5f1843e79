"""The brain seen from the main process: phrases and commands go to its worker, and a prompt always comes.

`BrainStage` numbers the phrases it sends and keeps the fallback builder: while the worker loads,
restarts or cannot run, when it dies with phrases in hand, or when it does not answer within its
time budget (`check`, run by the supervisor's thread), the fallback makes the prompt, saying why.
Every answer (a prompt, a summary, a status) goes to the one sink `attach` gave it (the outbox).
The settings change in one place: a command gives the new settings (`brain.core.configured`), which
the fallback here and the worker (`BrainConfigure`, whole) both apply with `Brain.configure`.
The worker's side is brain/worker.py, which only the worker process imports.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from voicevibe.brain.assets import AssetError, load_assets
from voicevibe.brain.core import Brain, configured, merge
from voicevibe.config import NO_MODEL, BrainConfig, Config, ConfigError
from voicevibe.events import BrainCommand, ImagePrompt, MakeSummary, PauseBrain, Phrase, ResetMemory, Status, Summary
from voicevibe.workers.messages import BrainAnswer, BrainConfigure, BrainPhrase, BrainSummary, BrainTook, FromWorker
from voicevibe.workers.stage import Loader, Report, Stage

log = logging.getLogger(__name__)

OVERDUE_GRACE_SECONDS = 2.0  # past its time budget and this, a phrase gets its fallback prompt from the main process
DEFAULT_LOADER = "voicevibe.brain.loading:load_prompt_model"  # a local GGUF, the bundled 270M, or a server
Answer = ImagePrompt | Summary | Status
Sink = Callable[[Answer], None]


@dataclass
class _Sent:
    phrase: Phrase
    sent_at: float
    fallback_sent: bool = False  # the main process already answered it (overdue)


class BrainStage(Stage):
    """The brain seen from the main process: `put` phrases, `command`s; answers go to the attached sink."""

    stage, label, target = "brain", "brain", "voicevibe.brain.worker:run_brain_worker"

    def __init__(self, config: Config, report: Report, loader: Loader = DEFAULT_LOADER) -> None:
        self.config = config.brain  # the live settings: commands change style, vibe, history, rate
        self.hang_seconds = config.supervisor.hang_seconds
        self.assets = load_assets(self.config.blocklist_file)
        self.fallback = Brain(None, self.config, self.assets)
        self.paused = False
        self._sink: Sink | None = None
        super().__init__(config.supervisor, report, loader, self.config)
        self._fallback_lock = threading.Lock()
        self._sent: dict[int, _Sent] = {}
        self._took = (0, 0.0)  # the newest phrase the worker started on, and when
        self._last_answer = 0.0

    def attach(self, sink: Sink) -> None:
        """Where every answer goes (the controls' outbox), for as long as those controls live; given once."""
        if self._sink is not None:
            raise RuntimeError("the brain's answers already have their sink")
        self._sink = sink

    def detach(self) -> None:
        """The controls closed: answers from now on are dropped (logged at debug)."""
        self._sink = None

    def _deliver(self, item: Answer) -> None:
        if self._sink is None:
            log.debug("brain answer with no sink attached: %s dropped", type(item).__name__)
        else:
            self._sink(item)

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
                seq = self.next_seq()
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
            self._settle(configured(self.config, command), reset=isinstance(command, ResetMemory))
        except (ConfigError, AssetError) as e:
            self._deliver(Status("brain", f"{type(command).__name__} refused: {e}", "warning"))
            return
        if isinstance(command, PauseBrain):
            self.paused = self.fallback.paused = command.on
        if isinstance(command, (PauseBrain, ResetMemory, MakeSummary)):
            self.worker.send(command)

    def configure(self, config: BrainConfig) -> None:
        """New settings that need no reload (engines.reconfigure); the worker gets them too."""
        self._settle(config)

    def _settle(self, config: BrainConfig, *, reset: bool = False) -> None:
        """Apply settings to the fallback here (raises, changing nothing, for an unknown style), then to the worker."""
        with self._fallback_lock:
            self.fallback.configure(config)
            if reset:
                self.fallback.reset()
        if config != self.config:
            self.config = config
            self.worker.send(BrainConfigure(config))

    def wait_ready(self, stop: threading.Event) -> bool:
        """Wait until the model answers (True), or cannot (False: the fallback will), or `stop`: a script's first
        line should not go to the fallback just because the model is still loading."""
        while self.enabled and not stop.is_set() and self.worker.state in ("starting", "loading"):
            stop.wait(0.1)
        return self.worker.ready

    def idle(self) -> bool:
        """No phrase is waiting for an answer."""
        with self._cond:
            return all(s.fallback_sent for s in self._sent.values())

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every phrase got its prompt (True), or `timeout` (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: all(s.fallback_sent for s in self._sent.values()), timeout)

    def check(self, now: float) -> None:
        """Run by the supervisor's thread: an overdue phrase gets its fallback; a brain that hangs is killed."""
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
            waited = budget + OVERDUE_GRACE_SECONDS
            self._fall_back([s.phrase for s in late], f"brain did not answer within {waited:g} s")
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
            self._deliver(prompt)

    def on_ready(self) -> None:
        """A restarted worker gets the show's settings back (its memory starts empty)."""
        self.worker.send(BrainConfigure(self.config))
        if self.paused:
            self.worker.send(PauseBrain(True))

    def on_message(self, message: FromWorker) -> None:
        """The worker's answers, its progress and its statuses."""
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
                self._deliver(message.prompt)
            elif message.error and answered:
                self._fall_back([s.phrase for s in answered], message.error)
        elif isinstance(message, BrainTook):
            with self._cond:
                self._took = (message.seq, time.monotonic())
        elif isinstance(message, BrainSummary):
            self._deliver(message.summary)
        elif isinstance(message, Status):
            self._deliver(message)
        else:
            log.warning("brain sent an unexpected %s", type(message).__name__)

    def on_down(self, cause: str) -> None:
        """The worker is gone (died, or stopped for a reload): every phrase it had and did not answer gets
        the fallback."""
        with self._cond:
            lost = [s.phrase for s in self._sent.values() if not s.fallback_sent]
            self._sent.clear()
            self._cond.notify_all()
        if lost:
            self._fall_back(lost, f"brain {'restarting' if self.enabled else 'off'} (stopped: {cause})")
