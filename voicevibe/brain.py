"""The prompt brain: transcript words -> phrases -> English image prompts for SDXL-Turbo.

`PhraseAssembler` turns Word/PhraseEnd events into phrases (pure, no model). `Brain` is the
stage: one phrase in, one `ImagePrompt` out, from the language model when it answers well
and in time, else from the fallback builder (the event says which, and why). `BrainWorker`
is its thread: it loads the model itself, merges phrases that wait into the newest one
(latest wins: nothing is rendered late), stops a generation when a newer phrase arrives,
and applies the operator's controls (pause, reset, freeze, style, vibe, history, rate).
When idle and a summary is due, it runs the slow brain (`Brain.summarize`: a `Summary` of the
session so far), which gives way to any phrase and is tried again after it.
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
from dataclasses import dataclass

from .config import BrainConfig, ConfigError
from .events import ImagePrompt, Phrase, PhraseEnd, Status, Summary, Word, join_words
from .fallback import (CLIP_USABLE_TOKENS, AssetError, Assets, clip_token_estimate, english_words, fallback_prompt,
                       finish_prompt, fit_clip, load_assets, repair_french, words_of)
from .hub import ModelError
from .llm import (NO_MODEL, SUMMARY_EXAMPLES, Abandoned, LlamaPromptModel, PromptModel, PromptRequest, SummaryRequest,
                  choose_model, load_llama, parse_answer, parse_summary)
from .summary import SessionDigest, fallback_summary

log = logging.getLogger(__name__)

JOIN_SECONDS = 5.0
SENTENCE_END = (".", "!", "?", "…")
COPIED_SHARE = 0.6  # a summary sharing this share of its words with a few-shot example copied it
FRENCH_SHARE = 4  # a prompt with more than 1 French word in 4 echoes the phrase rather than translating it
DISTINCT_SHARE = 0.5  # fewer distinct words than this share: a small model stuck in a loop
MERGED_CHARS = 400  # phrases merged while the brain was busy keep their last 400 characters
HISTORY_KEPT = 200  # phrases remembered; the history window (seconds) picks from these
SUMMARY_BUDGET_SECONDS = 30.0  # a summary is never urgent, and any phrase interrupts it
SUPERSEDED = "superseded"
# What llama.cpp (a C library behind ctypes) raises when a decode fails: the phrase gets a fallback prompt.
MODEL_ERRORS = (RuntimeError, OSError, MemoryError)
TIMEOUT = "timeout"


class PhraseAssembler:
    """Collects words until a pause, a full stop or the longest window closes a phrase."""

    def __init__(self, config: BrainConfig) -> None:
        self.config = config
        self.words: list[Word] = []

    def step(self, event: Word | PhraseEnd) -> Phrase | None:
        """Take one transcript event; return a phrase when one closes."""
        if isinstance(event, Word):
            self.words.append(event)
            long_enough = len(join_words(self.words)) >= self.config.phrase_min_chars
            if long_enough and event.text.rstrip().endswith(SENTENCE_END):
                return self._close("punctuation")
            if event.t - self.words[0].t >= self.config.phrase_max_seconds:
                return self._close("length")
            return None
        text = join_words(self.words)
        if len(text) >= self.config.phrase_min_chars or (event.reason == "end" and text):
            return self._close(event.reason)
        return None  # too short: it opens the next phrase

    def _close(self, reason: str) -> Phrase:
        words, self.words = self.words, []
        return Phrase(join_words(words), words[0].t, words[-1].t, reason,  # type: ignore[arg-type]
                      closed_at=time.monotonic())


class Brain:
    """Phrase in, ImagePrompt out; keeps the history, the previous prompt, the style and the vibe."""

    def __init__(self, model: PromptModel | None, config: BrainConfig, assets: Assets,
                 *, absent_reason: str = "no model") -> None:
        self.model, self.config, self.assets = model, config, assets
        self.absent_reason = absent_reason
        self.style = assets.style(config.style)
        self.vibe = config.vibe
        self.history: deque[Phrase] = deque(maxlen=HISTORY_KEPT)
        self.digest = SessionDigest()  # the slow brain's memory of the whole session
        self.previous_prompt = ""
        self.paused = False

    def reset(self) -> None:
        """Forget history, the previous prompt, the vibe and the session summary."""
        self.history.clear()
        self.digest.reset()
        self.previous_prompt = self.vibe = ""

    def warm_up(self) -> None:
        """One throw-away generation, so the first phrase of the show does not pay for the few-shot prefill."""
        if self.model is not None:
            try:
                self.model.generate(PromptRequest("warm up", self.style), lambda: "")
            except (Abandoned, ValueError) as e:
                log.debug("warm-up answer ignored: %s", e)
            except MODEL_ERRORS as e:  # the phrases will get fallback prompts if it keeps failing
                log.warning("brain model failed its warm-up (%s: %s)", type(e).__name__, e)

    def set_style(self, name: str) -> None:
        """Switch the style preset (AssetError for an unknown one)."""
        self.style = self.assets.style(name)

    def step(self, phrase: Phrase, newer_waiting: Callable[[], bool] = lambda: False) -> ImagePrompt | None:
        """The prompt for `phrase`; None when paused, stale, or made only of blocked words."""
        start = time.perf_counter()
        started_at = time.monotonic()
        since = phrase.t_start - self.config.history_seconds
        history = tuple(p.text for p in self.history if p.t_end >= since)
        self.history.append(phrase)
        self.digest.add(phrase.text, self.assets)
        if self.paused:
            return None
        if self.assets.blocked(phrase.text) and not english_words(phrase.text, self.assets):
            log.info("phrase made only of blocked words: no prompt")
            return None
        reason = self.absent_reason
        if self.model is not None:
            request = PromptRequest(phrase.text, self.style, history, self.previous_prompt, self.vibe)
            should_stop = _stopper(newer_waiting, start + self.config.time_budget_seconds)
            try:
                answer = parse_answer(self.model.generate(request, should_stop))
                prompt = self._compose(self._checked(answer.prompt))
                return self._result(prompt, phrase, answer.mood, "model", "", start, started_at)
            except Abandoned as e:
                if str(e) == SUPERSEDED:
                    log.debug("phrase %r dropped: a newer one is waiting", phrase.text)
                    return None
                reason = f"over the {self.config.time_budget_seconds:g} s time budget"
            except ValueError as e:
                reason = f"bad model output: {e}"
            except MODEL_ERRORS as e:
                log.warning("brain model failed on %r", phrase.text, exc_info=True)
                reason = f"model error ({type(e).__name__}: {e})"
        prompt = fallback_prompt(phrase.text, self.style, self.assets, vibe=self.vibe,
                                 previous=self.previous_prompt, max_words=self.config.max_words)
        log.debug("fallback prompt for %r: %s", phrase.text, reason)
        return self._result(prompt, phrase, "", "fallback", reason, start, started_at)

    def summarize(self, interrupted: Callable[[], bool] = lambda: False) -> Summary | None:
        """The slow brain: a summary of the session so far and an image prompt for it.

        None when paused, when nothing was said since the last summary, or when `interrupted()`
        turned true during the generation (a phrase goes first; the digest keeps what it had).
        """
        if self.paused or not self.digest.new_speech:
            return None
        start = time.perf_counter()
        reason = self.absent_reason
        if self.model is not None:
            request = SummaryRequest(self.digest.summary, self.digest.new_speech, self.style, self.vibe)
            try:
                should_stop = _stopper(interrupted, start + SUMMARY_BUDGET_SECONDS)
                answer = parse_summary(self.model.summarize(request, should_stop))
                text = self._checked_summary(answer.summary)
                return self._summary(text, self._compose(self._checked(answer.prompt)), "model", "", start)
            except Abandoned as e:
                if str(e) == SUPERSEDED:
                    log.debug("summary interrupted by a phrase or a control")
                    return None
                reason = f"over the {SUMMARY_BUDGET_SECONDS:g} s summary budget"
            except ValueError as e:
                reason = f"bad model output: {e}"
            except MODEL_ERRORS as e:
                log.warning("brain model failed on the summary", exc_info=True)
                reason = f"model error ({type(e).__name__}: {e})"
        text, prompt = fallback_summary(self.digest, self.style, self.assets, vibe=self.vibe,
                                        max_words=self.config.max_words)
        return self._summary(text, prompt, "fallback", reason, start)

    def _summary(self, text: str, prompt: str, source: str, reason: str, start: float) -> Summary:
        self.digest.settle(text)
        return Summary(text, prompt, source, reason, (time.perf_counter() - start) * 1000.0,  # type: ignore[arg-type]
                       self.model.name if self.model else "")

    def _checked_summary(self, text: str) -> str:
        """The model's summary made printable English; ValueError when it cannot be shown."""
        text = repair_french(" ".join("".join(c if c.isprintable() else " " for c in text).split()), self.assets)
        blocked = self.assets.blocked(text)
        if blocked:
            raise ValueError(f"blocklisted word {blocked[0]!r} in the summary")
        said = {w.lower() for w in words_of(text)}
        if len(said) < 3:
            raise ValueError("summary too short")
        for example in (e[2] for e in SUMMARY_EXAMPLES):
            shown = {w.lower() for w in words_of(example)}
            if len(said & shown) >= COPIED_SHARE * len(said | shown):
                raise ValueError("copied a few-shot example")
        return text

    def _result(self, prompt: str, phrase: Phrase, mood: str, source: str, reason: str, start: float,
                started_at: float) -> ImagePrompt:
        self.previous_prompt = prompt
        return ImagePrompt(prompt, phrase.text, self.style.name, mood, source, reason,  # type: ignore[arg-type]
                           (time.perf_counter() - start) * 1000.0, self.model.name if self.model else "",
                           phrase_closed_at=phrase.closed_at, brain_start=started_at, brain_end=time.monotonic())

    def _checked(self, prompt: str) -> str:
        """The model's prompt after repairs; ValueError when it cannot be used."""
        french = self.assets.french_words(prompt)
        if len(french) * FRENCH_SHARE > len(words_of(prompt)):
            raise ValueError(f"French left untranslated ({', '.join(french[:3])})")
        prompt = repair_french(prompt, self.assets)  # a few stray French words: swap or drop them
        scene = prompt.removeprefix(self.style.medium).strip(" ,").lower()
        if any(scene == e.scene.lower() for e in self.assets.examples):
            raise ValueError("copied a few-shot example")
        said = [w.lower() for w in words_of(scene)]
        if len(said) >= 6 and len(set(said)) < len(said) * DISTINCT_SHARE:
            raise ValueError("repetitive output")
        blocked = self.assets.blocked(prompt)
        if blocked:
            raise ValueError(f"blocklisted word {blocked[0]!r}")
        if not scene:
            raise ValueError("nothing but the style")
        return prompt

    def _compose(self, prompt: str) -> str:
        """Style first (added when an instruct model left it out), then the vibe and the preset's light."""
        if not prompt.lower().startswith(self.style.medium.lower()):
            prompt = f"{self.style.medium}, {prompt}"
        vibe = "" if self.assets.blocked(self.vibe) else repair_french(self.vibe, self.assets)
        tail = ", ".join(p for p in (vibe, self.style.light) if p)
        # The model's part gives way, so the vibe and the preset's light always fit.
        prompt = fit_clip(finish_prompt(prompt, self.config.max_words), self.config.max_words - len(tail.split()),
                          CLIP_USABLE_TOKENS - clip_token_estimate(", " + tail))
        return finish_prompt(f"{prompt}, {tail}", self.config.max_words)


def _stopper(interrupted: Callable[[], bool], deadline: float) -> Callable[[], str]:
    """A `should_stop` for the model: SUPERSEDED when interrupted, TIMEOUT after the deadline."""
    def should_stop() -> str:
        if interrupted():
            return SUPERSEDED
        return TIMEOUT if time.perf_counter() > deadline else ""

    return should_stop


@dataclass(frozen=True)
class LoadedModel:
    """What a loader gives the worker: a model (or None) and a note for the operator."""

    model: PromptModel | None
    note: str = ""


def load_prompt_model(config: BrainConfig, assets: Assets) -> LoadedModel:
    """Choose (local file, hub cache or download, else the bundled 270M) and load the brain's model."""
    if config.model == NO_MODEL:
        return LoadedModel(None, 'brain.model is "none": fallback prompts only, no language model')
    choice = choose_model(config)
    return LoadedModel(LlamaPromptModel(load_llama(choice.path, config), choice.name, config, assets.examples),
                       choice.note)


@dataclass(frozen=True)
class Control:
    """An operator command: pause, resume, reset, freeze, unfreeze, style, vibe, history, rate, summary or stop."""

    action: str
    value: str = ""


class BrainWorker(threading.Thread):
    """The brain's thread: loads the model itself, then turns the newest phrase into a prompt.

    `put` runs the phrase assembler in the caller's thread: feed it from one thread only.
    """

    def __init__(self, config: BrainConfig, events: queue.Queue,
                 loader: Callable[[BrainConfig, Assets], LoadedModel] = load_prompt_model) -> None:
        super().__init__(name="brain")
        self.config, self.events, self.loader = config, events, loader
        self.assets = load_assets(config.blocklist_file)
        self.assets.style(config.style)  # an unknown style fails now, not in the thread
        self.assembler = PhraseAssembler(config)
        self._cond = threading.Condition()
        self._pending: Phrase | None = None
        self._controls: deque[Control] = deque()
        self._next_allowed = 0.0  # monotonic time of the next prompt the rate allows
        self.summary_interval: float | None = config.summary_seconds if config.summary else None
        self._next_summary = math.inf  # monotonic time the next summary is due (set once the model is loaded)
        self._busy = False  # a phrase is being answered
        self.merged = 0  # phrases merged into a newer one while the brain was busy

    def put(self, event: Word | PhraseEnd | Phrase) -> None:
        """Feed a transcript event or a whole phrase; a waiting phrase is merged into the newer one."""
        phrase = event if isinstance(event, Phrase) else self.assembler.step(event)
        if phrase is None:
            return
        with self._cond:
            if self._pending is not None:
                self.merged += 1
                text = f"{self._pending.text} {phrase.text}"[-MERGED_CHARS:]
                phrase = Phrase(text, self._pending.t_start, phrase.t_end, phrase.reason, phrase.closed_at)
            self._pending = phrase
            self._cond.notify_all()

    def control(self, action: str, value: str | float = "") -> None:
        """Queue an operator command for the brain thread (any thread)."""
        with self._cond:
            self._controls.append(Control(action, str(value)))
            self._cond.notify_all()

    def stop(self) -> None:
        """Ask the thread to finish and wait for it."""
        self.control("stop")
        self.join(JOIN_SECONDS)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no phrase waits or is being answered (True), or until `timeout` (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self.is_alive() or self._pending is None and not self._busy,
                                       timeout)

    def _newer_waiting(self) -> bool:
        with self._cond:
            return self._pending is not None or any(c.action == "stop" for c in self._controls)

    def _phrase_ready(self) -> bool:
        """A phrase waits and the prompt rate lets it go (call under the lock)."""
        return self._pending is not None and time.monotonic() >= self._next_allowed

    def _summary_interrupted(self) -> bool:
        """A summary gives way to any phrase the rate allows and to any control."""
        with self._cond:
            return self._phrase_ready() or bool(self._controls)

    def _schedule_summary(self) -> None:
        self._next_summary = math.inf if self.summary_interval is None else time.monotonic() + self.summary_interval

    def _post(self, item: object) -> None:
        try:
            self.events.put_nowait(item)
        except queue.Full:
            log.warning("brain event queue full: dropping %s", type(item).__name__)

    def _brain(self) -> Brain:
        try:
            loaded = self.loader(self.config, self.assets)
        except ModelError as e:
            self._post(Status("brain", f"no language model, fallback prompts only: {e}", "error"))
            return Brain(None, self.config, self.assets, absent_reason=f"model failed to load: {e}")
        if loaded.note:
            self._post(Status("brain", loaded.note, "warning"))
        brain = Brain(loaded.model, self.config, self.assets)
        brain.warm_up()
        if loaded.model is not None:
            self._post(Status("brain", f"brain model: {loaded.model.name}"))
        return brain

    def _take(self) -> tuple[list[Control], Phrase | None, bool]:
        """Wait for controls, a phrase the prompt rate allows, or a summary falling due; take them."""
        with self._cond:
            while not self._controls and not self._phrase_ready():
                now = time.monotonic()
                if now >= self._next_summary:
                    break
                wake = min(self._next_summary, self._next_allowed if self._pending is not None else math.inf)
                self._cond.wait(None if wake == math.inf else wake - now)
            controls, self._controls = list(self._controls), deque()
            phrase = None
            if self._phrase_ready():
                phrase, self._pending = self._pending, None
                self._busy = True
            return controls, phrase, time.monotonic() >= self._next_summary

    def _done(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()

    def _apply(self, brain: Brain, c: Control) -> None:
        if c.action == "reset":
            brain.reset()
        elif c.action in ("pause", "resume"):
            brain.paused = c.action == "pause"
        elif c.action == "vibe":
            brain.vibe = c.value
        elif c.action == "style":
            brain.set_style(c.value)
        elif c.action in ("history", "rate"):
            key = "history_seconds" if c.action == "history" else "prompt_interval_seconds"
            brain.config = dataclasses.replace(brain.config, **{key: float(c.value)})
        else:
            raise ValueError(f"unknown brain control {c.action!r}")

    def run(self) -> None:
        """Load, then serve phrases (and summaries when idle) until stopped; an error never ends the show."""
        try:
            self._serve(self._brain())
        finally:
            self._done()  # wakes wait_idle() callers for good

    def _serve(self, brain: Brain) -> None:
        self._schedule_summary()
        frozen, held = False, {}  # while frozen, the newest prompt and summary wait for the release
        while True:
            controls, phrase, summary_due = self._take()
            for c in controls:
                if c.action == "stop":
                    return
                if c.action in ("freeze", "unfreeze"):
                    frozen = c.action == "freeze"
                    if not frozen:
                        for item in held.values():
                            self._post(item)
                        held = {}
                    continue
                if c.action == "summary":  # the operator asks for one now
                    self._next_summary = time.monotonic()
                    summary_due = True
                    continue
                try:
                    self._apply(brain, c)
                except (ConfigError, AssetError, ValueError) as e:
                    self._post(Status("brain", f"control {c.action} {c.value!r} refused: {e}", "warning"))
                if c.action == "reset":
                    self._schedule_summary()
            if phrase is not None:
                result: ImagePrompt | Summary | None = self._guarded(brain.step, phrase, self._newer_waiting)
                if result is not None:
                    self._next_allowed = time.monotonic() + brain.config.prompt_interval_seconds
            elif summary_due and not controls:
                result = self._guarded(brain.summarize, self._summary_interrupted)
                if result is not None or not self._summary_interrupted():
                    self._schedule_summary()  # made, or nothing to summarise; an interrupted one is retried
            else:
                continue
            if result is not None and frozen:
                held[type(result)] = result  # the screen keeps its image; the newest goes out on release
            elif result is not None:
                self._post(result)
            if phrase is not None:
                self._done()

    def _guarded(self, step: Callable[..., ImagePrompt | Summary | None],
                 *args: object) -> ImagePrompt | Summary | None:
        """Run one brain step; an error is logged and reported, and the show goes on."""
        try:
            return step(*args)
        except Exception as e:  # top of the worker loop: log it, tell the operator, keep going
            log.exception("brain step failed")
            self._post(Status("brain", f"brain error ({type(e).__name__}: {e}); continuing", "error"))
            return None
